//! Property test: for every first-order optimizer, any lengths, split points and options, saving
//! the state through JSON, loading it into a fresh optimizer and continuing equals an
//! uninterrupted run bit for bit.

use gradus::optim::{from_options, OptimizerState, NAMES};
use proptest::prelude::*;
use serde_json::json;

/// A few option sets per optimizer, covering the state each keeps.
fn options(name: &str, variant: usize) -> serde_json::Value {
    let sets = match name {
        "sgd" => vec![json!({"lr": 0.1}), json!({"lr": 0.05, "momentum": 0.9, "nesterov": true, "weight_decay": 0.01})],
        "adagrad" => vec![json!({"lr": 0.1}), json!({"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1})],
        "rmsprop" => vec![json!({}), json!({"momentum": 0.9, "centered": true, "weight_decay": 0.01})],
        "adadelta" => vec![json!({}), json!({"rho": 0.8, "weight_decay": 0.01})],
        "adam" => vec![json!({}), json!({"amsgrad": true, "weight_decay": 0.1})],
        "adamw" => vec![json!({}), json!({"amsgrad": true})],
        "nadam" => vec![json!({}), json!({"decoupled_weight_decay": true, "weight_decay": 0.05})],
        "radam" => vec![json!({}), json!({"decoupled_weight_decay": true, "weight_decay": 0.05})],
        "adamax" => vec![json!({}), json!({"weight_decay": 0.05})],
        "lion" => vec![json!({}), json!({"weight_decay": 0.1})],
        "sparse_adam" => vec![json!({}), json!({"betas": [0.8, 0.99], "eps": 1e-6, "maximize": true})],
        other => panic!("no options for {other}"),
    };
    sets[variant % sets.len()].clone()
}

fn gradient(len: usize, step: usize, seed: u64) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let h = (i as u64 ^ seed)
                .wrapping_mul(6364136223846793005)
                .wrapping_add((step as u64).wrapping_mul(1442695040888963407));
            ((h >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn save_load_continue_equals_an_uninterrupted_run(
        which in 0..NAMES.len(),
        variant in 0usize..2,
        len in 0usize..300,
        before in 1usize..6,
        after in 1usize..6,
        seed in any::<u64>(),
    ) {
        let name = NAMES[which];
        let options = options(name, variant);
        let params0: Vec<f32> = gradient(len, 999, seed).iter().map(|g| g * 4.0).collect();

        let mut straight = from_options(name, &options).unwrap();
        let mut expected = params0.clone();
        for t in 0..before + after {
            straight.step(&mut expected, &gradient(len, t, seed));
        }

        let mut first = from_options(name, &options).unwrap();
        let mut params = params0.clone();
        for t in 0..before {
            first.step(&mut params, &gradient(len, t, seed));
        }
        let text = serde_json::to_string(&first.state()).unwrap();
        let restored: OptimizerState = serde_json::from_str(&text).unwrap();
        let mut second = from_options(name, &options).unwrap();
        second.load_state(&restored).unwrap();
        for t in before..before + after {
            second.step(&mut params, &gradient(len, t, seed));
        }
        let same = params.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits());
        prop_assert!(same, "{} {}: resumed run differs", name, options);
        prop_assert_eq!(second.state(), straight.state());
    }
}
