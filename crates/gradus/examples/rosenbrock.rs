//! Minimizes the 2-D Rosenbrock function from (−1.5, 2) with every optimizer and prints how many
//! steps each needs to converge (every coordinate within 1e-3 of the minimum (1, 1)), with the
//! settings documented in `tests/common/convergence.rs`, which the convergence tests share.
//!
//! Run: `cargo run --release -p gradus --example rosenbrock`

use gradus::optim::lbfgs::{Lbfgs, LbfgsConfig, LineSearch};
use gradus::surfaces::{Rosenbrock, Surface};

#[path = "../tests/common/convergence.rs"]
mod convergence;

fn main() {
    let surface = Rosenbrock(2);
    let start = [-1.5, 2.0];
    println!("Rosenbrock 2-D from (-1.5, 2): steps until |x - (1, 1)| <= {:e}", convergence::ROSENBROCK_TOL);
    println!("{:<10} {:<44} {:>8}  {:>24}  {:>10}", "optimizer", "settings", "steps", "end point", "loss");
    for setting in convergence::ROSENBROCK {
        let run = convergence::run(&surface, &start, setting, convergence::ROSENBROCK_TOL);
        let steps = run.converged_at.map_or("no".to_string(), |s| s.to_string());
        println!(
            "{:<10} {:<44} {:>8}  ({:>10.6}, {:>10.6})  {:>10.3e}",
            setting.name, setting.options, steps, run.end[0], run.end[1], run.loss
        );
    }
    let mut x = start.to_vec();
    let config = LbfgsConfig { line_search_fn: Some(LineSearch::StrongWolfe), ..LbfgsConfig::default() };
    let mut lbfgs = Lbfgs::new(config).expect("valid L-BFGS settings");
    let mut problem = Rosenbrock(2);
    lbfgs.minimize(&mut x, &mut problem, 100);
    println!(
        "{:<10} {:<44} {:>8}  ({:>10.6}, {:>10.6})  {:>10.3e}",
        "lbfgs",
        "strong_wolfe (evaluations shown)",
        lbfgs.evaluations(),
        x[0],
        x[1],
        surface.value(&x)
    );
}
