//! Criterion benchmarks of one optimizer step on a flat buffer of 1,000 and 1,000,000 parameters.
//!
//! Every optimizer is built by name through [`gradus::optim::from_options`]; names it does not
//! know are skipped with a note, so the file runs whatever set of optimizers is present. Steps run
//! on rayon's global pool (`RAYON_NUM_THREADS` sets its size). `bench/optimizer_step.py` gives
//! the comparison with PyTorch.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;

/// Benchmark label, `from_options` name and options (PyTorch's names).
fn configurations() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    vec![
        ("sgd", "sgd", json!({})),
        ("sgd_momentum", "sgd", json!({"momentum": 0.9})),
        ("adagrad", "adagrad", json!({})),
        ("rmsprop", "rmsprop", json!({})),
        ("adadelta", "adadelta", json!({})),
        ("adamax", "adamax", json!({})),
        ("adam", "adam", json!({})),
        ("adamw", "adamw", json!({})),
        ("nadam", "nadam", json!({})),
        ("radam", "radam", json!({})),
        ("lion", "lion", json!({})),
    ]
}

const SIZES: [usize; 2] = [1_000, 1_000_000];

/// A deterministic value in [-scale, scale) for index `i`.
fn fill_value(i: usize, seed: u64, scale: f32) -> f32 {
    let x = (i as u64 ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let x = (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    scale * (((x >> 40) as f32) / ((1u64 << 23) as f32) - 1.0)
}

fn optimizer_steps(c: &mut Criterion) {
    for (label, name, options) in configurations() {
        if let Err(error) = gradus::optim::from_options(name, &options) {
            eprintln!("skipping {label}: {error}");
            continue;
        }
        let mut group = c.benchmark_group(format!("step/{label}"));
        for len in SIZES {
            let Ok(mut optimizer) = gradus::optim::from_options(name, &options) else {
                continue;
            };
            let mut params: Vec<f32> = (0..len).map(|i| fill_value(i, 1, 1.0)).collect();
            let grads: Vec<f32> = (0..len).map(|i| fill_value(i, 2, 0.1)).collect();
            // The first step allocates the state buffers; keep that out of the measurement.
            optimizer.step(&mut params, &grads);
            group.throughput(Throughput::Elements(len as u64));
            group.bench_function(BenchmarkId::from_parameter(len), |b| {
                b.iter(|| optimizer.step(black_box(&mut params), black_box(&grads)))
            });
        }
        group.finish();
    }
}

fn config() -> Criterion {
    // Short windows keep the whole file to about a minute on a 2-core machine.
    Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = optimizer_steps
}
criterion_main!(benches);
