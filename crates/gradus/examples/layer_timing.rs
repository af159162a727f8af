//! Times each layer kind of LeNet-5 alone (forward, and forward + backward), on batches of 64.
//! `cargo run --release -p gradus --example layer_timing`
/// Seconds of CPU time this process has used (all threads): steadier than the wall clock on a
/// busy machine.
fn cpu_seconds() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

use gradus::loss::Loss;
use gradus::nn::{LayerSpec, Network, NetworkSpec, Shape};

fn time(name: &str, input: Shape, layers: &str) {
    if std::env::var("ONLY").is_ok_and(|only| !name.contains(&only)) {
        return;
    }
    let spec = NetworkSpec::new(input.clone(), LayerSpec::parse_list(layers).unwrap(), Loss::Mse);
    let net = Network::new(spec).unwrap();
    let params = net.init_params(0);
    let rows = 64;
    let x: Vec<f32> = (0..rows * input.len()).map(|i| ((i * 7919) % 1999) as f32 / 1000.0 - 1.0).collect();
    let y = vec![0.1f32; rows * net.output_size()];
    let mut out = vec![0.0f32; rows * net.output_size()];
    let mut grad = vec![0.0f32; net.num_params()];
    let batches: usize = std::env::var("BATCHES").ok().and_then(|b| b.parse().ok()).unwrap_or(300);
    let start = cpu_seconds();
    for _ in 0..batches {
        net.predict(&params, &x, rows, &mut out);
    }
    let forward = (cpu_seconds() - start) / batches as f64;
    let start = cpu_seconds();
    for _ in 0..batches {
        net.loss_and_gradient(&params, &x, rows, &y, &mut grad);
    }
    let both = (cpu_seconds() - start) / batches as f64;
    // Per epoch of 60,000 images: 938 batches.
    println!(
        "{name:<28} forward {:>7.1} µs  train {:>7.1} µs  per epoch {:.3} s",
        forward * 1e6,
        both * 1e6,
        both * 938.0
    );
}

fn main() {
    time("conv1 (1→6, 5, pad 2)", Shape::image(1, 28, 28), "conv2d(6,5,padding=2)");
    time("relu 6×28×28", Shape::image(6, 28, 28), "relu");
    time("maxpool 6×28×28", Shape::image(6, 28, 28), "max_pool2d(2)");
    time("conv2 (6→16, 5)", Shape::image(6, 14, 14), "conv2d(16,5)");
    time("relu 16×10×10", Shape::image(16, 10, 10), "relu");
    time("maxpool 16×10×10", Shape::image(16, 10, 10), "max_pool2d(2)");
    time("flatten+fc 400-120-84-10", Shape::image(16, 5, 5), "flatten,linear(120),relu,linear(84),relu,linear(10)");
    time("lenet", Shape::image(1, 28, 28), "conv2d(6,5,padding=2),relu,max_pool2d(2),conv2d(16,5),relu,max_pool2d(2),flatten,linear(120),relu,linear(84),relu,linear(10)");
}
