//! `gradus evaluate` and `gradus predict`: a saved model on new data.
//!
//! The data must hold the model's feature columns, matched by name (their order may differ); a
//! feature column missing, or a column that is neither a feature nor the model's target, is an
//! error naming it. `evaluate` also needs the model's target column, and for a classifier every
//! target must be one of the classes the model was trained on: that is how a model is caught
//! being evaluated on data of another task (a regression model's target column is missing from a
//! classification file, or a classifier meets target values it has no class for).

use std::fmt::Write as _;
use std::path::Path;

use gradus::saved::{ModelSpec, SavedModel};
use gradus::train::metrics::argmax_rows;
use gradus::train::Task;
use serde_json::json;

use crate::args::{EvaluateArgs, PredictArgs};
use crate::error::CliError;
use crate::output::{check_writable, label, metrics_table, write_file};
use crate::prepare::{is_libsvm, read_table};

/// Raw features in the model's input order, and the targets when the file holds them.
struct ModelData {
    features: Vec<f32>,
    targets: Option<Vec<f32>>,
    rows: usize,
}

fn list(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Whether a header looks like a ratings file's (user, item, rating) rather than features.
fn looks_like_ratings(names: &[String]) -> bool {
    let numeric = names.iter().take(3).all(|n| n.trim().parse::<f64>().is_ok());
    let rating = names.iter().any(|n| n.to_lowercase().contains("rating"));
    numeric || rating
}

/// The hint for data that is not feature rows for `model`, read from `model_path`.
fn not_features_hint(model: &SavedModel, model_path: &Path, names: &[String]) -> Option<String> {
    looks_like_ratings(names).then(|| {
        format!(
            "this looks like a ratings file (user, item, rating); the model `{}` is a {} and takes rows of its features",
            model_path.display(),
            describe(model)
        )
    })
}

/// Reads `path` for `model` (read from `model_path`), matching columns by name.
fn read_for_model(
    model: &SavedModel,
    model_path: &Path,
    path: &Path,
    need_target: bool,
) -> Result<ModelData, CliError> {
    let shown = path.display();
    if is_libsvm(path) {
        let data = read_table(path, None, Some(model.inputs()))?;
        if data.cols != model.inputs() {
            return Err(CliError::usage(format!(
                "`{shown}`: {} feature columns, the model takes {}",
                data.cols,
                model.inputs()
            )));
        }
        return Ok(ModelData { rows: data.rows, features: data.features, targets: Some(data.target) });
    }
    // Read with the last column as the "target", then put it back: this gives every column,
    // whether or not the file holds the model's target.
    let data = read_table(path, None, None)?;
    let mut names = data.feature_names.clone();
    names.push(data.target_name.clone());
    let width = names.len();
    let column = |row: usize, col: usize| {
        if col + 1 == width {
            data.target[row]
        } else {
            data.features[row * data.cols + col]
        }
    };
    if need_target && !names.contains(&model.target_name) {
        let hint = not_features_hint(model, model_path, &names)
            .unwrap_or_else(|| "is this data for another task? `gradus predict` needs no target column".into());
        return Err(CliError::usage(format!(
            "`{shown}`: no target column `{}`: the model `{}` is a {}, and evaluation compares with its target \
             (the file's columns: {})",
            model.target_name,
            model_path.display(),
            describe(model),
            list(&names)
        ))
        .hint(hint));
    }
    let missing: Vec<String> = model.feature_names.iter().filter(|f| !names.contains(f)).cloned().collect();
    if !missing.is_empty() {
        let error = CliError::usage(format!(
            "`{shown}`: no column {} that the model `{}` was trained on: the file has {} columns ({}), the model \
             takes {} features",
            list(&missing),
            model_path.display(),
            width,
            list(&names),
            model.inputs()
        ));
        return Err(match not_features_hint(model, model_path, &names) {
            Some(hint) => error.hint(hint),
            None => error,
        });
    }
    let extra: Vec<String> =
        names.iter().filter(|n| !model.feature_names.contains(n) && **n != model.target_name).cloned().collect();
    if !extra.is_empty() {
        return Err(CliError::usage(format!(
            "`{shown}`: column {} is not one of the model's features (nor its target `{}`): expected the {} columns {}",
            list(&extra),
            model.target_name,
            model.inputs(),
            list(&model.feature_names)
        )));
    }
    let indices: Vec<usize> =
        model.feature_names.iter().map(|f| names.iter().position(|n| n == f).unwrap_or(0)).collect();
    let mut features = Vec::with_capacity(data.rows * indices.len());
    for row in 0..data.rows {
        features.extend(indices.iter().map(|&c| column(row, c)));
    }
    let targets =
        names.iter().position(|n| *n == model.target_name).map(|c| (0..data.rows).map(|row| column(row, c)).collect());
    Ok(ModelData { features, targets, rows: data.rows })
}

fn describe(model: &SavedModel) -> String {
    let task = match (&model.task, &model.label_map) {
        (Task::Binary | Task::Multiclass, Some(map)) => {
            format!("{} classifier of {} classes", model.task.name(), map.n_classes())
        }
        _ => "regression model".to_string(),
    };
    format!("{} ({task}, target `{}`)", model.model.describe(), model.target_name)
}

/// Runs `gradus evaluate`.
pub fn evaluate(args: &EvaluateArgs, quiet: bool) -> Result<(), CliError> {
    let model = SavedModel::load(&args.model)?;
    if matches!(model.model, ModelSpec::MatrixFactorization { .. }) {
        return crate::ratings::evaluate(&model, args, quiet);
    }
    let data = read_for_model(&model, &args.model, &args.data, true)?;
    let Some(targets) = data.targets else {
        return Err(CliError::usage(format!("`{}`: no target column `{}`", args.data.display(), model.target_name)));
    };
    let origin = args.data.display().to_string();
    let metrics = model.evaluate(&data.features, &targets, &origin).map_err(|e| {
        let hint = format!("the model is a {}: is this data for another task?", describe(&model));
        CliError::from(e).hint(hint)
    })?;
    if args.json {
        let value = json!({"data": origin, "rows": data.rows, "task": model.task.name(), "metrics": metrics});
        println!("{value}");
    } else if !quiet {
        println!("model: {}", describe(&model));
        println!("data: `{origin}` ({} rows)", data.rows);
        print!("{}", metrics_table(&[("metrics", &metrics)]));
    }
    Ok(())
}

/// Runs `gradus predict`.
pub fn predict(args: &PredictArgs, quiet: bool) -> Result<(), CliError> {
    if let Some(out) = &args.out {
        check_writable("--out", out)?;
    }
    let model = SavedModel::load(&args.model)?;
    if matches!(model.model, ModelSpec::MatrixFactorization { .. }) {
        return crate::ratings::predict(&model, args, quiet);
    }
    let data = read_for_model(&model, &args.model, &args.data, false)?;
    let outputs = model.outputs(&data.features, data.rows)?;
    let mut text = String::new();
    match (&model.task, &model.label_map) {
        (Task::Binary | Task::Multiclass, Some(map)) => {
            let probabilities = model.probabilities(&outputs);
            let k = map.n_classes();
            let header: Vec<String> = std::iter::once("prediction".to_string())
                .chain(map.classes.iter().map(|&c| format!("p_{}", label(c))))
                .collect();
            let _ = writeln!(text, "{}", header.join(","));
            // Classes from the logits, exactly as evaluation counts them.
            let classes = argmax_rows(&outputs, outputs.len() / data.rows.max(1))
                .map_err(|e| CliError::usage(format!("`{}`: {e}", args.data.display())))?;
            for (row, &best) in probabilities.chunks_exact(k).zip(&classes) {
                let cells: Vec<String> =
                    std::iter::once(label(map.classes[best])).chain(row.iter().map(|p| p.to_string())).collect();
                let _ = writeln!(text, "{}", cells.join(","));
            }
        }
        _ => {
            let _ = writeln!(text, "prediction");
            for value in &outputs {
                let _ = writeln!(text, "{value}");
            }
        }
    }
    match &args.out {
        Some(path) => {
            write_file("--out", path, text.as_bytes())?;
            if !quiet {
                eprintln!("wrote {} predictions to {}", data.rows, path.display());
            }
        }
        None => print!("{text}"),
    }
    Ok(())
}
