//! Runs every quality case of the issue's acceptance list (5-fold cross-validation, seed 0, features
//! standardized on the training folds only) and prints a table: metric, target, time, settings.
//!
//! ```text
//! cargo run --release --example quality
//! ```
//!
//! Exits with status 1 when a target is missed. The cases live in `tests/quality.rs`, where the
//! cheap ones also run as tests.

#[path = "../tests/quality.rs"]
mod cases;

use std::time::Instant;

fn main() {
    let start = Instant::now();
    let mnist = cases::load("mnist_5k");
    let loading = start.elapsed().as_secs_f64();
    let outcomes = [
        cases::diabetes_linear(),
        cases::breast_cancer_logistic(),
        cases::digits_softmax(),
        cases::mnist_softmax(&mnist),
        cases::mnist_mlp(&mnist),
    ];
    println!("{}-fold cross-validation, seed {} (mnist_5k read in {loading:.2} s)\n", cases::FOLDS, cases::SEED);
    println!("| case | metric | value | target | met | time (s) | settings |");
    println!("|---|---|---|---|---|---|---|");
    for o in &outcomes {
        println!(
            "| {} | {} | {:.4} | {} | {} | {:.2} | {} |",
            o.case,
            o.metric,
            o.value,
            o.target,
            if o.passed() { "yes" } else { "NO" },
            o.seconds,
            o.settings
        );
    }
    println!();
    for o in &outcomes {
        let folds: Vec<String> = o.folds.iter().map(|v| format!("{v:.4}")).collect();
        println!("{}: folds {}", o.case, folds.join(" "));
    }
    if outcomes.iter().any(|o| !o.passed()) {
        std::process::exit(1);
    }
}
