//! Every first-order optimizer converges on the sphere and on the 2-D Rosenbrock function from
//! (−1.5, 2) with the documented settings of `common/convergence.rs`.

mod common;

use common::convergence::{run, ROSENBROCK, ROSENBROCK_TOL};
use gradus::surfaces::{Rosenbrock, Sphere, Surface};

#[test]
fn every_optimizer_converges_on_rosenbrock_from_the_classic_start() {
    let surface = Rosenbrock(2);
    let mut failures = Vec::new();
    for setting in ROSENBROCK {
        let result = run(&surface, &[-1.5, 2.0], setting, ROSENBROCK_TOL);
        if result.converged_at.is_none() {
            failures.push(format!("{} {}: ended at {:?}", setting.name, setting.options, result.end));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_optimizer_converges_on_the_sphere() {
    let surface = Sphere(10);
    let start = surface.default_start();
    for setting in ROSENBROCK {
        let result = run(&surface, &start, setting, ROSENBROCK_TOL);
        assert!(result.converged_at.is_some(), "{} {}: ended at {:?}", setting.name, setting.options, result.end);
    }
}

#[test]
fn every_optimizer_name_has_a_setting() {
    for name in gradus::optim::NAMES {
        assert!(ROSENBROCK.iter().any(|s| s.name == name), "no convergence setting for {name}");
    }
}
