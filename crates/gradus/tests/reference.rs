//! The PyTorch oracle: every case in `tests/fixtures/reference/` (and every `*.json` in the folder
//! named by `GRADUS_REFERENCE_DIR`, when set) is checked by one test, whatever its kind, so a new
//! case is just a new file. A second test corrupts one expected number of each case and checks that
//! the comparison then fails, so the oracle cannot pass vacuously.

use std::path::{Path, PathBuf};

use gradus::loss::Loss;
use gradus::mlp::{Activation, Mlp};
use gradus::optim::lbfgs::{Lbfgs, LbfgsConfig};
use gradus::schedule::LrSchedule;
use gradus::surfaces::by_name;
use serde_json::Value;

/// Every case: the bundled fixtures, then `$GRADUS_REFERENCE_DIR`.
fn cases() -> Vec<(PathBuf, Value)> {
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference")];
    if let Some(extra) = std::env::var_os("GRADUS_REFERENCE_DIR") {
        dirs.push(PathBuf::from(extra));
    }
    let mut cases = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        let mut paths: Vec<PathBuf> = entries
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let case: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            cases.push((path, case));
        }
    }
    cases
}

fn tolerance(case: &Value) -> (f64, f64) {
    (case["tolerance"]["rel"].as_f64().unwrap_or(0.0), case["tolerance"]["abs"].as_f64().unwrap_or(0.0))
}

/// `|got − want| <= abs + rel |want|`, or a message saying what differed.
fn close(what: &str, got: f64, want: f64, (rel, abs): (f64, f64)) -> Result<(), String> {
    if (got - want).abs() <= abs + rel * want.abs() {
        Ok(())
    } else {
        Err(format!("{what}: got {got:e}, want {want:e}"))
    }
}

/// A number or nested arrays of numbers, flattened, with the innermost width.
fn flatten(value: &Value) -> (Vec<f64>, usize) {
    fn walk(value: &Value, out: &mut Vec<f64>) {
        match value {
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            other => out.push(other.as_f64().expect("a number")),
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    let width = match value.as_array().and_then(|a| a.first()) {
        Some(Value::Array(inner)) => inner.len(),
        _ => 1,
    };
    (out, width)
}

fn check_optimizer(case: &Value) -> Result<(), String> {
    let name = case["optimizer"].as_str().ok_or("no `optimizer`")?;
    let mut optimizer = gradus::optim::from_options(name, &case["options"]).map_err(|e| e.to_string())?;
    let mut params: Vec<f32> = flatten(&case["params0"]).0.iter().map(|&v| v as f32).collect();
    let grads = case["grads"].as_array().ok_or("no `grads`")?;
    let expected = case["params"].as_array().ok_or("no `params`")?;
    if grads.len() != expected.len() {
        return Err("`grads` and `params` differ in length".into());
    }
    for (t, (g, want)) in grads.iter().zip(expected).enumerate() {
        let g: Vec<f32> = flatten(g).0.iter().map(|&v| v as f32).collect();
        optimizer.step(&mut params, &g);
        for (i, (&got, &want)) in params.iter().zip(&flatten(want).0).enumerate() {
            close(&format!("step {} param {i}", t + 1), got as f64, want, tolerance(case))?;
        }
    }
    Ok(())
}

fn check_schedule(case: &Value) -> Result<(), String> {
    let name = case["schedule"].as_str().ok_or("no `schedule`")?;
    let base_lr = case["base_lr"].as_f64().ok_or("no `base_lr`")?;
    let mut schedule = gradus::schedule::from_options(name, &case["options"], base_lr).map_err(|e| e.to_string())?;
    let want = flatten(&case["lrs"]).0;
    let metrics = case.get("metrics").map(|m| flatten(m).0).unwrap_or_default();
    let mut lr = base_lr;
    for (t, &want) in want.iter().enumerate() {
        match &mut schedule {
            LrSchedule::Function(s) => lr = s.lr(t as u64),
            LrSchedule::Plateau(p) => {
                if t > 0 {
                    lr = p.observe(*metrics.get(t - 1).ok_or("missing metric")?);
                }
            }
        }
        close(&format!("lr after {t} steps"), lr, want, tolerance(case))?;
    }
    Ok(())
}

fn check_lbfgs(case: &Value) -> Result<(), String> {
    let mut x = flatten(&case["x0"]).0;
    let function = case["function"].as_str().ok_or("no `function`")?;
    let mut surface = by_name(function, x.len()).ok_or(format!("unknown function {function}"))?;
    let mut lbfgs = Lbfgs::new(LbfgsConfig::from_options(&case["options"]).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let want = *flatten(&case["losses"]).0.last().ok_or("no `losses`")?;
    let target = want + 1e-9 * (1.0 + want.abs());
    let budget = (1.5 * flatten(&case["evaluations"]).0.last().ok_or("no `evaluations`")?).floor() as u64;
    let mut best = f64::INFINITY;
    for _ in 0..10_000 {
        let step = lbfgs.step(&mut x, &mut *surface);
        if step.evaluations > budget {
            break;
        }
        best = best.min(surface.value(&x));
        if best <= target {
            return Ok(());
        }
    }
    Err(format!("best loss {best:e} is not within {target:e} after {budget} evaluations"))
}

fn loss_of(case: &Value) -> Result<Loss, String> {
    let options = &case["options"];
    Ok(match case["loss"].as_str().ok_or("no `loss`")? {
        "mse" => Loss::Mse,
        "l1" => Loss::L1,
        "huber" => Loss::huber(options["delta"].as_f64().unwrap_or(1.0)).map_err(|e| e.to_string())?,
        "bce_with_logits" => Loss::BceWithLogits,
        "cross_entropy" => {
            Loss::cross_entropy(options["label_smoothing"].as_f64().unwrap_or(0.0)).map_err(|e| e.to_string())?
        }
        "hinge" => Loss::Hinge,
        other => return Err(format!("unknown loss {other}")),
    })
}

fn check_loss(case: &Value) -> Result<(), String> {
    let loss = loss_of(case)?;
    let (input, cols) = flatten(&case["input"]);
    let target = flatten(&case["target"]).0;
    let mut grad = vec![0.0f64; input.len()];
    let value = loss.value_grad(&input, &target, cols, &mut grad);
    close("value", value, case["value"].as_f64().ok_or("no `value`")?, tolerance(case))?;
    for (i, (&g, &want)) in grad.iter().zip(&flatten(&case["grad"]).0).enumerate() {
        close(&format!("grad[{i}]"), g, want, tolerance(case))?;
    }
    Ok(())
}

fn check_mlp(case: &Value) -> Result<(), String> {
    let sizes: Vec<usize> = flatten(&case["sizes"]).0.iter().map(|&s| s as usize).collect();
    let activations = case["activations"]
        .as_array()
        .ok_or("no `activations`")?
        .iter()
        .map(|a| match a.as_str() {
            Some("relu") => Ok(Activation::Relu),
            Some("leaky_relu") => Ok(Activation::LeakyRelu),
            Some("tanh") => Ok(Activation::Tanh),
            Some("sigmoid") => Ok(Activation::Sigmoid),
            Some("identity") => Ok(Activation::Identity),
            other => Err(format!("unknown activation {other:?}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mlp = Mlp::new(&sizes, &activations, loss_of(case)?).map_err(|e| e.to_string())?;
    // The flat buffer holds layer{i}.weight ([out][in], as the case stores it), then layer{i}.bias.
    let interleave = |weights: &Value, biases: &Value| -> Vec<f64> {
        let mut flat = Vec::new();
        for (w, b) in weights.as_array().into_iter().flatten().zip(biases.as_array().into_iter().flatten()) {
            flat.extend(flatten(w).0);
            flat.extend(flatten(b).0);
        }
        flat
    };
    let params = interleave(&case["weights"], &case["biases"]);
    let want_grad = interleave(&case["grad_weights"], &case["grad_biases"]);
    let x = flatten(&case["x"]).0;
    let y = flatten(&case["y"]).0;
    let rows = x.len() / sizes[0];
    // The case's tolerance is tighter than f32 can hold, so the check runs the same generic code in f64.
    let mut grad = vec![0.0f64; params.len()];
    let value = mlp.loss_and_gradient(&params, &x, rows, &y, &mut grad);
    close("value", value, case["value"].as_f64().ok_or("no `value`")?, tolerance(case))?;
    for (i, (&g, &want)) in grad.iter().zip(&want_grad).enumerate() {
        close(&format!("grad[{i}]"), g, want, tolerance(case))?;
    }
    Ok(())
}

fn check(case: &Value) -> Result<(), String> {
    match case["kind"].as_str() {
        Some("optimizer") => check_optimizer(case),
        Some("schedule") => check_schedule(case),
        Some("lbfgs") => check_lbfgs(case),
        Some("loss") => check_loss(case),
        Some("mlp") => check_mlp(case),
        other => Err(format!("unknown kind {other:?}")),
    }
}

#[test]
fn every_reference_case_passes() {
    let cases = cases();
    assert!(cases.len() >= 54, "expected the 54 bundled cases, found {}", cases.len());
    let failures: Vec<String> =
        cases.iter().filter_map(|(path, case)| check(case).err().map(|e| format!("{}: {e}", path.display()))).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// The expected number of `case` that a wrong value is planted in.
fn planted_error(case: &mut Value) -> &mut Value {
    let target = match case["kind"].as_str() {
        Some("optimizer") => &mut case["params"][0][0],
        Some("schedule") => &mut case["lrs"][3],
        Some("lbfgs") => {
            let losses = case["losses"].as_array_mut().expect("losses");
            losses.last_mut().expect("a loss")
        }
        Some("loss" | "mlp") => &mut case["value"],
        _ => panic!("unknown kind"),
    };
    target
}

#[test]
fn a_wrong_number_in_any_case_fails() {
    for (path, mut case) in cases() {
        let slot = planted_error(&mut case);
        let want = slot.as_f64().expect("a number");
        // Far outside any tolerance; for L-BFGS, a loss below the true minimum cannot be reached.
        *slot = Value::from(want - 0.5 - 0.5 * want.abs());
        assert!(check(&case).is_err(), "{}: a wrong expected value went unnoticed", path.display());
    }
}
