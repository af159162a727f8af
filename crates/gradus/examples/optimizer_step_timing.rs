//! Times one optimizer's `step` on a flat buffer, or the machine's streaming memory bandwidth.
//!
//! Used by `bench/optimizer_step.py`, which compares the timings with PyTorch; each run prints
//! one JSON line on stdout.
//!
//! ```text
//! optimizer_step_timing --optimizer adam --options '{"lr":1e-3}' --params 50000000 \
//!     --threads 2 --warmup 3 --reps 10 [--inner 1]
//! optimizer_step_timing --stream --threads 2 [--stream-elems 67108864] [--reps 10]
//! ```
//!
//! `--inner K` times K consecutive steps per sample and reports the time per step: for small
//! buffers a single step is too short for one clock reading to be meaningful.

use std::process::ExitCode;
use std::time::Instant;

use rayon::prelude::*;

/// What the command line asked for.
struct Args {
    optimizer: String,
    options: serde_json::Value,
    params: usize,
    threads: usize,
    warmup: usize,
    reps: usize,
    inner: usize,
    stream: bool,
    stream_elems: usize,
}

const USAGE: &str = "usage: optimizer_step_timing --optimizer NAME [--options JSON] [--params N] [--threads T] \
[--warmup W] [--reps R] [--inner K]\n       optimizer_step_timing --stream [--threads T] [--stream-elems N] [--reps R]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        optimizer: String::new(),
        options: serde_json::json!({}),
        params: 1_000_000,
        threads: 1,
        warmup: 3,
        reps: 10,
        inner: 1,
        stream: false,
        // 3 arrays of 256 MiB: far beyond any last-level cache.
        stream_elems: 64 << 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--stream" {
            args.stream = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_string());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let count = |v: &str| v.replace('_', "").parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--optimizer" => args.optimizer = value,
            "--options" => {
                args.options = serde_json::from_str(&value).map_err(|e| format!("--options {value}: {e}"))?;
            }
            "--params" => args.params = count(&value)?,
            "--threads" => args.threads = count(&value)?,
            "--warmup" => args.warmup = count(&value)?,
            "--reps" => args.reps = count(&value)?,
            "--inner" => args.inner = count(&value)?,
            "--stream-elems" => args.stream_elems = count(&value)?,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if !args.stream && args.optimizer.is_empty() {
        return Err(format!("--optimizer or --stream is required\n{USAGE}"));
    }
    if args.threads == 0 || args.reps == 0 || args.inner == 0 {
        return Err("--threads, --reps and --inner must be at least 1".to_string());
    }
    Ok(args)
}

/// A deterministic value in [-1, 1) for index `i` (a multiplicative hash, cheap to fill 50M).
fn fill_value(i: usize, seed: u64) -> f32 {
    let x = (i as u64 ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let x = (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    ((x >> 40) as f32) / ((1u64 << 23) as f32) - 1.0
}

/// Fills `buffer` in parallel so that its pages are touched (and placed) by the pool's threads.
fn fill(buffer: &mut [f32], seed: u64) {
    buffer.par_chunks_mut(1 << 16).enumerate().for_each(|(c, chunk)| {
        for (j, v) in chunk.iter_mut().enumerate() {
            *v = fill_value(c * (1 << 16) + j, seed);
        }
    });
}

/// Median, minimum and mean of `samples` (sorted in place).
fn summary(samples: &mut [f64]) -> (f64, f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let n = samples.len();
    let median = if n % 2 == 1 { samples[n / 2] } else { 0.5 * (samples[n / 2 - 1] + samples[n / 2]) };
    (median, samples[0], samples.iter().sum::<f64>() / n as f64)
}

fn time_optimizer(args: &Args) -> Result<serde_json::Value, String> {
    let mut optimizer = gradus::optim::from_options(&args.optimizer, &args.options).map_err(|e| e.to_string())?;
    let mut params = gradus::buffer::filled(args.params, 0.0);
    let mut grads = gradus::buffer::filled(args.params, 0.0);
    fill(&mut params, 1);
    // Gradients of a tenth of the parameters' scale, like a real training step.
    fill(&mut grads, 2);
    grads.par_iter_mut().for_each(|g| *g *= 0.1);
    // The first step allocates the state buffers; warm-up steps pay for it, not the samples.
    for _ in 0..args.warmup.max(1) {
        optimizer.step(&mut params, &grads);
    }
    let mut samples = Vec::with_capacity(args.reps);
    for _ in 0..args.reps {
        let start = Instant::now();
        for _ in 0..args.inner {
            optimizer.step(&mut params, &grads);
        }
        samples.push(start.elapsed().as_secs_f64() / args.inner as f64);
    }
    // Keep the result observable so no step can be optimized away.
    let checksum: f64 = params.iter().step_by((params.len() / 1024).max(1)).map(|&p| p as f64).sum();
    let (median, min, mean) = summary(&mut samples);
    Ok(serde_json::json!({
        "mode": "step",
        "optimizer": args.optimizer,
        "options": args.options,
        "params": args.params,
        "threads": rayon::current_num_threads(),
        "warmup": args.warmup,
        "reps": args.reps,
        "inner": args.inner,
        "median_s": median,
        "min_s": min,
        "mean_s": mean,
        "checksum": checksum,
    }))
}

/// Times `kernel` over the pool `reps` times (after one untimed pass) and returns the median,
/// minimum and mean seconds.
fn time_kernel(reps: usize, mut kernel: impl FnMut()) -> (f64, f64, f64) {
    kernel();
    let mut samples: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            kernel();
            start.elapsed().as_secs_f64()
        })
        .collect();
    summary(&mut samples)
}

/// STREAM-style bandwidth: the triad `a = b + s c` (12 bytes counted per element: two reads,
/// one write) and the read-modify-write update `a = a + s b` (also 12 bytes), each split into
/// one contiguous piece per thread as STREAM's static schedule does.
fn stream(args: &Args) -> serde_json::Value {
    let n = args.stream_elems;
    let threads = rayon::current_num_threads();
    let piece = n.div_ceil(threads).div_ceil(16) * 16;
    let mut a = vec![0.0f32; n];
    let mut b = vec![0.0f32; n];
    let mut c = vec![0.0f32; n];
    fill(&mut a, 3);
    fill(&mut b, 4);
    fill(&mut c, 5);
    let scalar = 0.5f32;
    let triad = time_kernel(args.reps, || {
        a.par_chunks_mut(piece).zip(b.par_chunks(piece)).zip(c.par_chunks(piece)).for_each(|((a, b), c)| {
            for ((a, &b), &c) in a.iter_mut().zip(b).zip(c) {
                *a = b + scalar * c;
            }
        });
    });
    let update = time_kernel(args.reps, || {
        a.par_chunks_mut(piece).zip(b.par_chunks(piece)).for_each(|(a, b)| {
            for (a, &b) in a.iter_mut().zip(b) {
                *a += scalar * b;
            }
        });
    });
    let checksum: f64 = a.iter().step_by((n / 1024).max(1)).map(|&x| x as f64).sum();
    let bytes = (12 * n) as f64;
    serde_json::json!({
        "mode": "stream",
        "threads": threads,
        "elements": n,
        "array_bytes": 4 * n,
        "reps": args.reps,
        "triad_bytes_per_s": bytes / triad.0,
        "triad_median_s": triad.0,
        "triad_min_s": triad.1,
        "update_bytes_per_s": bytes / update.0,
        "update_median_s": update.0,
        "update_min_s": update.1,
        "checksum": checksum,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(args.threads).build() {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("cannot start {} threads: {e}", args.threads);
            return ExitCode::FAILURE;
        }
    };
    let result = pool.install(|| if args.stream { Ok(stream(&args)) } else { time_optimizer(&args) });
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
