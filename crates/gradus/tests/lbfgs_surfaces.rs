//! L-BFGS against PyTorch's reference runs, and the test surfaces' gradients, minima and f32
//! bridge.

use std::path::{Path, PathBuf};

use gradus::optim::lbfgs::{
    CostGradient, FnProblem, Lbfgs, LbfgsConfig, LbfgsState, LineSearch, Termination,
};
use gradus::optim::{Optimizer, Sgd, SgdConfig};
use gradus::surfaces::{by_name, Booth, Himmelblau, Rosenbrock, Saddle, Sphere, Surface, NAMES};
use gradus::StateError;
use proptest::prelude::*;
use serde_json::Value;

/// Every `kind: "lbfgs"` case in the bundled fixtures and in `$GRADUS_REFERENCE_DIR`, if set.
fn lbfgs_cases() -> Vec<(PathBuf, Value)> {
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference")];
    if let Some(extra) = std::env::var_os("GRADUS_REFERENCE_DIR") {
        dirs.push(PathBuf::from(extra));
    }
    let mut cases = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
            let text = std::fs::read_to_string(&path).unwrap();
            let case: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if case["kind"] == "lbfgs" {
                cases.push((path, case));
            }
        }
    }
    cases
}

fn floats(value: &Value) -> Vec<f64> {
    value.as_array().expect("an array").iter().map(|v| v.as_f64().expect("a number")).collect()
}

#[test]
fn reaches_pytorchs_loss_within_one_and_a_half_times_its_evaluations() {
    let cases = lbfgs_cases();
    assert!(cases.len() >= 4, "expected the bundled lbfgs cases, found {}", cases.len());
    for (path, case) in cases {
        let name = path.display();
        let mut x = floats(&case["x0"]);
        let mut surface = by_name(case["function"].as_str().unwrap(), x.len()).unwrap();
        let config = LbfgsConfig::from_options(&case["options"]).unwrap();
        let losses = floats(&case["losses"]);
        let evaluations = floats(&case["evaluations"]);
        let want = *losses.last().unwrap();
        let target = want + 1e-9 * (1.0 + want.abs());
        let budget = (1.5 * evaluations.last().unwrap()).floor() as u64;

        let mut lbfgs = Lbfgs::new(config).unwrap();
        let mut reached = None;
        let mut last_loss = f64::NAN;
        for _ in 0..10_000 {
            let step = lbfgs.step(&mut x, &mut *surface);
            if step.evaluations > budget {
                break;
            }
            let loss = surface.value(&x);
            last_loss = loss;
            if loss <= target {
                reached = Some((step.evaluations, loss));
                break;
            }
        }
        let (used, loss) =
            reached.unwrap_or_else(|| panic!("{name}: loss {last_loss:e}, not within {target:e} in {budget} evaluations"));
        println!("{name}: loss {loss:e} (torch {want:e}) after {used} evaluations (torch {})", evaluations.last().unwrap());
    }
}

