//! Times gradus training a 784-128-10 relu MLP on mnist_5k, for `bench/mlp_vs_torch.py`.
//!
//! ```text
//! cargo run --release --example mlp_timing -- [adam|sgd] [runs]
//! ```
//!
//! The split and preparation are the ones the benchmark script reproduces for PyTorch: rows whose
//! index is a multiple of 5 are the 1,000 test rows, the other 4,000 train; features are
//! standardized with the training rows' mean and (population) standard deviation. Training runs
//! 20 epochs of mini-batches of 64 (reshuffled every epoch) with Adam (lr 1e-3) or SGD (lr 0.01,
//! momentum 0.9), `runs` times (default 5) from the same initialization. Prints one JSON object:
//! the seconds of each run (training only, data loading excluded), their median, the test accuracy
//! and the thread count.

use std::time::Instant;

use gradus::data::{builtin, Standardizer};
use gradus::loss::Loss;
use gradus::mlp::{Activation, Mlp};
use gradus::model::{evaluate, Model, Rows};
use gradus::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use gradus::train::{BatchMode, TrainConfig, Trainer};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let optimizer_name = args.first().map(String::as_str).unwrap_or("adam").to_string();
    let runs: usize = args.get(1).map(|r| r.parse().expect("runs: a number")).unwrap_or(5);
    let optimizer = || -> Box<dyn Optimizer> {
        match optimizer_name.as_str() {
            "adam" => Box::new(Adam::new(AdamConfig { lr: 1e-3, ..Default::default() }).unwrap()),
            "sgd" => Box::new(Sgd::new(SgdConfig { lr: 0.01, momentum: 0.9, ..Default::default() }).unwrap()),
            other => panic!("unknown optimizer `{other}`: adam or sgd"),
        }
    };

    let data = builtin::load("mnist_5k").and_then(|b| b.into_table()).expect("mnist_5k");
    let (train_rows, test_rows): (Vec<usize>, Vec<usize>) = (0..data.rows).partition(|i| i % 5 != 0);
    let scaler = Standardizer::fit(&data, &train_rows).unwrap();
    let mut train = data.select(&train_rows).unwrap();
    let mut test = data.select(&test_rows).unwrap();
    scaler.transform(&mut train).unwrap();
    scaler.transform(&mut test).unwrap();
    let train = Rows::new(&train.features, &train.target, train.cols);
    let test_view = Rows::new(&test.features, &test.target, test.cols);

    let model = Mlp::new(
        &[784, 128, 10],
        &[Activation::Relu, Activation::Identity],
        Loss::CrossEntropy { label_smoothing: 0.0 },
    )
    .unwrap();
    // Like the PyTorch loop it is compared with, no extra pass over the training rows per epoch: the
    // history's training loss is the running mean of the batch losses.
    let config = TrainConfig {
        epochs: 20,
        batch: BatchMode::MiniBatch(64),
        seed: 0,
        evaluate_train: false,
        ..Default::default()
    };
    let mut seconds = Vec::new();
    let mut accuracy = 0.0;
    // One untimed run first: it starts rayon's threads and faults in the buffers, as the peers'
    // warm-up runs do.
    for run in 0..=runs {
        let mut params = model.init_params(0);
        let mut trainer = Trainer::new(config.clone(), optimizer()).unwrap();
        let start = Instant::now();
        trainer.fit(&model, &mut params, train, None, &mut []).unwrap();
        if run > 0 {
            seconds.push(start.elapsed().as_secs_f64());
        }
        accuracy = evaluate(&model, &params, test_view).expect("the test rows fit the model")["accuracy"];
    }
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let json = serde_json::json!({
        "library": "gradus",
        "model": "mlp 784-128-10 relu",
        "optimizer": optimizer_name,
        "epochs": 20,
        "batch": 64,
        "train_rows": train.rows,
        "threads": rayon::current_num_threads(),
        "seconds": seconds,
        "median_seconds": sorted[sorted.len() / 2],
        "test_accuracy": accuracy,
    });
    println!("{json}");
}
