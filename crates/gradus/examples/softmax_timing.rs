//! Times gradus training softmax regression on mnist_5k, for `bench/softmax_vs_sklearn.py`.
//!
//! ```text
//! cargo run --release --example softmax_timing -- [runs] [batch] [lr]
//! ```
//!
//! Same split and preparation as `mlp_timing` (rows whose index is a multiple of 5 are the 1,000
//! test rows; features standardized on the 4,000 training rows). Trains 20 epochs of mini-batches
//! of `batch` rows (default 256, which spreads each batch over the threads) with SGD (`lr`,
//! default 0.01, momentum 0.9) and an L2 penalty of 1e-2, `runs` times (default 5).
//! Prints one JSON object: the seconds of each run (training only), their median, the test
//! accuracy and the thread count.

use std::time::Instant;

use gradus::data::{builtin, Standardizer};
use gradus::linear::{LinearModel, Penalty};
use gradus::model::{evaluate, Model, Rows};
use gradus::optim::{Sgd, SgdConfig};
use gradus::train::{BatchMode, TrainConfig, Trainer};

fn main() {
    let arg = |i: usize, default: &str| std::env::args().nth(i).unwrap_or_else(|| default.to_string());
    let runs: usize = arg(1, "5").parse().expect("runs: a number");
    let batch: usize = arg(2, "256").parse().expect("batch: a number");
    let lr: f64 = arg(3, "0.01").parse().expect("lr: a number");
    let data = builtin::load("mnist_5k").and_then(|b| b.into_table()).expect("mnist_5k");
    let (train_rows, test_rows): (Vec<usize>, Vec<usize>) = (0..data.rows).partition(|i| i % 5 != 0);
    let scaler = Standardizer::fit(&data, &train_rows).unwrap();
    let mut train = data.select(&train_rows).unwrap();
    let mut test = data.select(&test_rows).unwrap();
    scaler.transform(&mut train).unwrap();
    scaler.transform(&mut test).unwrap();
    let train = Rows::new(&train.features, &train.target, train.cols);
    let test_view = Rows::new(&test.features, &test.target, test.cols);

    let model = LinearModel::softmax(784, 10, Penalty { l2: 1e-2, l1: 0.0 }).unwrap();
    // Like scikit-learn's loop, no extra pass over the training rows per epoch.
    let config = TrainConfig {
        epochs: 20,
        batch: BatchMode::MiniBatch(batch),
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
        let optimizer = Sgd::new(SgdConfig { lr, momentum: 0.9, ..Default::default() }).unwrap();
        let mut trainer = Trainer::new(config.clone(), Box::new(optimizer)).unwrap();
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
        "model": "softmax regression 784-10, l2 1e-2",
        "optimizer": format!("sgd lr {lr} momentum 0.9"),
        "epochs": 20,
        "batch": batch,
        "train_rows": train.rows,
        "threads": rayon::current_num_threads(),
        "seconds": seconds,
        "median_seconds": sorted[sorted.len() / 2],
        "test_accuracy": accuracy,
    });
    println!("{json}");
}
