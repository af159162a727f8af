//! The PyTorch oracle: every case in `tests/fixtures/reference/` (and every `*.json` in the folder
//! named by `GRADUS_REFERENCE_DIR`, when set) is checked by one test, whatever its kind, so a new
//! case is just a new file. A second test corrupts one expected number of each case and checks that
//! the comparison then fails, so the oracle cannot pass vacuously.

use std::path::{Path, PathBuf};

use gradus::loss::Loss;
use gradus::mlp::{Activation, Mlp};
use gradus::nn::{BagMode, LayerSpec, Network, NetworkSpec, Shape};
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

/// Layer kinds of the language issue, whose cases are skipped until those layers exist.
const PENDING_LAYERS: [&str; 0] = [];

/// Whether `case` uses a layer listed in [`PENDING_LAYERS`].
fn pending(case: &Value) -> bool {
    case["kind"] == "network"
        && case["layers"].as_array().is_some_and(|layers| {
            layers.iter().any(|l| l["type"].as_str().is_some_and(|t| PENDING_LAYERS.contains(&t)))
        })
}

fn check_network(case: &Value) -> Result<(), String> {
    let usize_of = |layer: &Value, key: &str| -> Result<usize, String> {
        layer[key].as_u64().map(|v| v as usize).ok_or_else(|| format!("layer without `{key}`"))
    };
    let layers = case["layers"].as_array().ok_or("no `layers`")?;
    let mut specs = Vec::new();
    let mut params = Vec::new();
    let mut want_grad = Vec::new();
    let grads = case["grads"].as_array().ok_or("no `grads`")?;
    for (layer, grad) in layers.iter().zip(grads) {
        let spec = match layer["type"].as_str().ok_or("a layer without `type`")? {
            "conv2d" => LayerSpec::Conv2d {
                out_channels: usize_of(layer, "out_channels")?,
                kernel_size: usize_of(layer, "kernel_size")?,
                stride: usize_of(layer, "stride")?,
                padding: usize_of(layer, "padding")?,
            },
            "linear" => LayerSpec::Linear { out_features: Some(usize_of(layer, "out_features")?), bias: true },
            "max_pool2d" => LayerSpec::MaxPool2d {
                kernel_size: usize_of(layer, "kernel_size")?,
                stride: Some(usize_of(layer, "stride")?),
            },
            "avg_pool2d" => LayerSpec::AvgPool2d {
                kernel_size: usize_of(layer, "kernel_size")?,
                stride: Some(usize_of(layer, "stride")?),
            },
            "flatten" => LayerSpec::Flatten,
            "relu" => LayerSpec::Relu,
            "tanh" => LayerSpec::Tanh,
            "sigmoid" => LayerSpec::Sigmoid,
            "embedding" => LayerSpec::Embedding {
                num_embeddings: usize_of(layer, "num_embeddings")?,
                embedding_dim: usize_of(layer, "embedding_dim")?,
            },
            "embedding_bag" => LayerSpec::EmbeddingBag {
                num_embeddings: usize_of(layer, "num_embeddings")?,
                embedding_dim: usize_of(layer, "embedding_dim")?,
                mode: match layer["mode"].as_str() {
                    Some("sum") => BagMode::Sum,
                    _ => BagMode::Mean,
                },
            },
            kind @ ("lstm" | "gru") => {
                if layer["batch_first"] != Value::Bool(true) {
                    return Err("recurrent layers are batch-first".into());
                }
                let hidden_size = usize_of(layer, "hidden_size")?;
                let num_layers = layer["num_layers"].as_u64().unwrap_or(1) as usize;
                if kind == "lstm" {
                    LayerSpec::Lstm { hidden_size, num_layers }
                } else {
                    LayerSpec::Gru { hidden_size, num_layers }
                }
            }
            kind @ ("batch_norm1d" | "batch_norm2d") => {
                let eps = layer["eps"].as_f64().ok_or("no `eps`")?;
                let momentum = layer["momentum"].as_f64().ok_or("no `momentum`")?;
                if kind == "batch_norm1d" {
                    LayerSpec::BatchNorm1d { eps, momentum }
                } else {
                    LayerSpec::BatchNorm2d { eps, momentum }
                }
            }
            other => return Err(format!("unknown layer type `{other}`")),
        };
        // Each layer's parameters lie in the flat buffer in PyTorch's order.
        for name in ["weight", "bias", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"] {
            if !layer[name].is_null() {
                params.extend(flatten(&layer[name]).0);
                want_grad.extend(flatten(&grad[name]).0);
            }
        }
        specs.push(spec);
    }
    let dims: Vec<usize> = flatten(&case["input_shape"]).0.iter().map(|&d| d as usize).collect();
    let bags = case["offsets"].is_array();
    // Token rows: bags from PyTorch's offsets (each bag's start, the last running to the end),
    // or sequences of `dims[1]` tokens.
    let (rows, shape, token_offsets): (usize, Shape, Option<Vec<usize>>) = if bags {
        let mut offsets: Vec<usize> = flatten(&case["offsets"]).0.iter().map(|&o| o as usize).collect();
        offsets.push(dims[0]);
        (offsets.len() - 1, Shape(Vec::new()), Some(offsets))
    } else if matches!(specs.first(), Some(LayerSpec::Embedding { .. })) {
        (dims[0], Shape(dims[1..].to_vec()), Some((0..=dims[0]).map(|r| r * dims[1]).collect()))
    } else {
        (dims[0], Shape(dims[1..].to_vec()), None)
    };
    let net = Network::new(NetworkSpec::new(shape, specs, loss_of(case)?)).map_err(|e| e.to_string())?;
    if net.num_params() != params.len() {
        return Err(format!("the network has {} parameters, the case {}", net.num_params(), params.len()));
    }
    let x = flatten(&case["x"]).0;
    let y = flatten(&case["y"]).0;
    let tol = tolerance(case);
    if let Some(offsets) = token_offsets {
        let ids: Vec<u32> = x.iter().map(|&v| v as u32).collect();
        let mut out = vec![0.0f64; rows * net.output_size()];
        net.predict_tokens(&params, &ids, &offsets, &mut out);
        for (i, (&got, &want)) in out.iter().zip(&flatten(&case["output"]).0).enumerate() {
            close(&format!("output[{i}]"), got, want, tol)?;
        }
        let mut grad = vec![0.0f64; params.len()];
        let value = net.loss_and_gradients_tokens(&params, &ids, &offsets, &y, &mut grad, false);
        close("value", value, case["value"].as_f64().ok_or("no `value`")?, tol)?;
        for (i, (&g, &want)) in grad.iter().zip(&want_grad).enumerate() {
            close(&format!("grad[{i}] ({})", segment_of(net.layout(), i)), g, want, tol)?;
        }
        return Ok(());
    }
    let has_batch_norm = !net.buffer_layout().is_empty();
    if !has_batch_norm {
        // Without batch normalization, evaluation and training give the same outputs.
        let mut out = vec![0.0f64; rows * net.output_size()];
        net.predict(&params, &x, rows, &mut out);
        for (i, (&got, &want)) in out.iter().zip(&flatten(&case["output"]).0).enumerate() {
            close(&format!("output[{i}]"), got, want, tol)?;
        }
    }
    // The case's tolerance is tighter than f32 can hold: the same generic code runs in f64.
    let mut grad = vec![0.0f64; params.len()];
    let mut grad_input = vec![0.0f64; x.len()];
    let value = net.loss_and_gradients(&params, &x, rows, &y, &mut grad, Some(&mut grad_input), true);
    close("value", value, case["value"].as_f64().ok_or("no `value`")?, tol)?;
    for (i, (&g, &want)) in grad.iter().zip(&want_grad).enumerate() {
        close(&format!("grad[{i}] ({})", segment_of(net.layout(), i)), g, want, tol)?;
    }
    for (i, (&g, &want)) in grad_input.iter().zip(&flatten(&case["grad_input"]).0).enumerate() {
        close(&format!("grad_input[{i}]"), g, want, tol)?;
    }
    let want_stats: Vec<f64> = case["running_stats"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| flatten(&s["running_mean"]).0.into_iter().chain(flatten(&s["running_var"]).0))
        .collect();
    let stats = net.buffers();
    if stats.len() != want_stats.len() {
        return Err(format!("{} running statistics, the case has {}", stats.len(), want_stats.len()));
    }
    for (i, (&got, &want)) in stats.iter().zip(&want_stats).enumerate() {
        close(&format!("running_stats[{i}]"), f64::from(got), want, tol)?;
    }
    Ok(())
}

/// The name of the segment holding element `i` of a flat buffer.
fn segment_of(layout: &gradus::ParamLayout, i: usize) -> String {
    layout.segments().iter().find(|s| s.range().contains(&i)).map_or("?".into(), |s| s.name.clone())
}

fn check(case: &Value) -> Result<(), String> {
    match case["kind"].as_str() {
        Some("optimizer") => check_optimizer(case),
        Some("schedule") => check_schedule(case),
        Some("lbfgs") => check_lbfgs(case),
        Some("loss") => check_loss(case),
        Some("mlp") => check_mlp(case),
        Some("network") if pending(case) => Ok(()),
        Some("network") => check_network(case),
        other => Err(format!("unknown kind {other:?}")),
    }
}

#[test]
fn every_reference_case_passes() {
    let cases = cases();
    assert!(cases.len() >= 61, "expected the 61 bundled cases, found {}", cases.len());
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
        Some("loss" | "mlp" | "network") => &mut case["value"],
        _ => panic!("unknown kind"),
    };
    target
}

#[test]
fn a_wrong_number_in_any_case_fails() {
    for (path, mut case) in cases() {
        if pending(&case) {
            continue;
        }
        let slot = planted_error(&mut case);
        let want = slot.as_f64().expect("a number");
        // Far outside any tolerance; for L-BFGS, a loss below the true minimum cannot be reached.
        *slot = Value::from(want - 0.5 - 0.5 * want.abs());
        assert!(check(&case).is_err(), "{}: a wrong expected value went unnoticed", path.display());
    }
}
