//! `gradus evaluate` and `gradus predict`: a saved model on new data.
//!
//! The data must hold the model's feature columns, matched by name (their order may differ); a
//! feature column missing, or a column that is neither a feature nor the model's target, is an
//! error naming it. `evaluate` also needs the model's target column, and for a classifier every
//! target must be one of the classes the model was trained on: that is how a model is caught
//! being evaluated on data of another task (a regression model's target column is missing from a
//! classification file, or a classifier meets target values it has no class for).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gradus::data::quote_cell;
use gradus::saved::{ModelSpec, SavedModel};
use gradus::train::metrics::argmax_rows;
use gradus::train::Task;
use serde_json::json;

use crate::args::{EvaluateArgs, PredictArgs};
use crate::error::CliError;
use crate::output::{label, metrics_table, write_file};
use crate::paths::Files;
use crate::prepare::{is_libsvm, read_table};
use gradus::data::{builtin, read_idx, Dataset};

/// Raw features in the model's input order, and the targets when the file holds them.
struct ModelData {
    features: Vec<f32>,
    targets: Option<Vec<f32>>,
    rows: usize,
}

/// Column names for a message: quoted ([`quote_cell`]), at most 20 of them.
fn list(names: &[String]) -> String {
    let mut shown: Vec<String> = names.iter().take(20).map(|n| format!("`{}`", quote_cell(n))).collect();
    if names.len() > 20 {
        shown.push(format!("… ({} in all)", names.len()));
    }
    shown.join(", ")
}

/// Where evaluation or prediction rows come from.
enum Source<'a> {
    /// A CSV or LIBSVM file.
    File(&'a Path),
    /// An IDX image file and its label file.
    Idx(&'a Path, &'a Path),
    /// A built-in data set.
    Builtin(&'a str),
}

impl<'a> Source<'a> {
    fn new(data: Option<&'a Path>, labels: Option<&'a Path>, dataset: Option<&'a str>) -> Result<Self, CliError> {
        match (data, labels, dataset) {
            (Some(images), Some(labels), _) => Ok(Source::Idx(images, labels)),
            (Some(path), None, _) => Ok(Source::File(path)),
            (None, _, Some(name)) => Ok(Source::Builtin(name)),
            (None, _, None) => Err(CliError::usage("no data: give --data FILE or --dataset NAME")),
        }
    }

    /// For JSON output: the file, or the data set's name.
    fn origin(&self) -> String {
        match self {
            Source::File(path) | Source::Idx(path, _) => path.display().to_string(),
            Source::Builtin(name) => name.to_string(),
        }
    }

    /// For messages.
    fn shown(&self) -> String {
        match self {
            Source::Builtin(name) => format!("built-in data set `{name}`"),
            other => format!("`{}`", other.origin()),
        }
    }
}

/// Reads the rows of `source` for `model`, matching columns by name.
fn read_for_model(
    model: &SavedModel,
    model_path: &Path,
    source: &Source<'_>,
    need_target: bool,
) -> Result<ModelData, CliError> {
    let data = match source {
        Source::File(path) => return read_file_for_model(model, model_path, path, need_target),
        Source::Idx(images, labels) => read_idx(images, labels)?.0,
        Source::Builtin(name) => builtin::load(name)?.into_table()?,
    };
    match_columns(model, model_path, data, &source.shown(), need_target)
}

/// Reads `path` for `model`, matching columns by name.
fn read_file_for_model(
    model: &SavedModel,
    model_path: &Path,
    path: &Path,
    need_target: bool,
) -> Result<ModelData, CliError> {
    if is_libsvm(path) {
        let shown = path.display();
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
    match_columns(model, model_path, data, &format!("`{}`", path.display()), need_target)
}

/// The model's feature columns (and target, when present) of `data`, matched by name: its
/// features and its target column together are the table's columns.
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

fn match_columns(
    model: &SavedModel,
    model_path: &Path,
    data: Dataset,
    shown: &str,
    need_target: bool,
) -> Result<ModelData, CliError> {
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
            "{shown}: no target column `{}`: the model `{}` is a {}, and evaluation compares with its target \
             (the file's columns: {})",
            quote_cell(&model.target_name),
            model_path.display(),
            describe(model),
            list(&names)
        ))
        .hint(hint));
    }
    let missing: Vec<String> = model.feature_names.iter().filter(|f| !names.contains(f)).cloned().collect();
    if !missing.is_empty() {
        let error = CliError::usage(format!(
            "{shown}: no column {} that the model `{}` was trained on: the file has {} columns ({}), the model \
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
            "{shown}: column {} is not one of the model's features (nor its target `{}`): expected the {} columns {}",
            list(&extra),
            quote_cell(&model.target_name),
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
    format!("{} ({task}, target `{}`)", model.model.describe(), quote_cell(&model.target_name))
}

/// Runs `gradus evaluate`.
pub fn evaluate(args: &EvaluateArgs, quiet: bool) -> Result<(), CliError> {
    // No outputs: listed all the same, so that every command goes through the one check.
    let builtin = args.dataset.as_deref().map(crate::prepare::builtin_files).unwrap_or_default();
    Files::new()
        .input("the model", Some(args.model.as_path()))
        .input("--data", args.data.as_deref())
        .input("--labels", args.labels.as_deref())
        .input("--dataset", builtin.iter().map(PathBuf::as_path))
        .check()?;
    let model = SavedModel::load(&args.model)?;
    if matches!(model.model, ModelSpec::MatrixFactorization { .. }) {
        return crate::ratings::evaluate(&model, args, quiet);
    }
    if matches!(model.model, ModelSpec::LanguageModel { .. }) {
        return crate::language::evaluate_model(&model, args, quiet);
    }
    if model.text.is_some() {
        return crate::text::evaluate(&model, args, quiet);
    }
    let source = Source::new(args.data.as_deref(), args.labels.as_deref(), args.dataset.as_deref())?;
    let data = read_for_model(&model, &args.model, &source, true)?;
    let origin = source.origin();
    let Some(targets) = data.targets else {
        return Err(CliError::usage(format!(
            "{}: no target column `{}`",
            source.shown(),
            quote_cell(&model.target_name)
        )));
    };
    let metrics = model.evaluate(&data.features, &targets, &origin).map_err(|e| {
        let hint = format!("the model is a {}: is this data for another task?", describe(&model));
        CliError::from(e).hint(hint)
    })?;
    if args.json {
        let value = json!({"data": origin, "rows": data.rows, "task": model.task.name(), "metrics": metrics});
        println!("{value}");
    } else if !quiet {
        println!("model: {}", describe(&model));
        println!("data: {} ({} rows)", source.shown(), data.rows);
        print!("{}", metrics_table(&[("metrics", &metrics)]));
    }
    Ok(())
}

/// Runs `gradus predict`.
pub fn predict(args: &PredictArgs, quiet: bool) -> Result<(), CliError> {
    Files::new()
        .input("the model", Some(args.model.as_path()))
        .input("--data", args.data.as_deref())
        .input("--image", args.image.iter().flatten().map(PathBuf::as_path))
        .output("--out", args.out.as_deref())
        .check()?;
    let model = SavedModel::load(&args.model)?;
    if matches!(model.model, ModelSpec::MatrixFactorization { .. }) {
        return crate::ratings::predict(&model, args, quiet);
    }
    if matches!(model.model, ModelSpec::LanguageModel { .. }) {
        return Err(CliError::usage(format!(
            "`{}` is a language model: `gradus generate` continues a prompt, `gradus evaluate` measures its perplexity",
            args.model.display()
        )));
    }
    if model.text.is_some() {
        return crate::text::predict(&model, args, quiet);
    }
    if args.explain {
        return Err(CliError::usage(format!(
            "--explain: `{}` is a {}: the words behind a prediction are a text classifier's",
            args.model.display(),
            describe(&model)
        )));
    }
    if args.text.is_some() {
        return Err(CliError::usage(format!(
            "--text: `{}` is a {}, which reads features, not text",
            args.model.display(),
            describe(&model)
        )));
    }
    if let Some(images) = &args.image {
        return predict_images(&model, images, args, quiet);
    }
    let source = Source::new(args.data.as_deref(), None, None)?;
    let data = read_for_model(&model, &args.model, &source, false)?;
    let outputs = model.outputs(&data.features, data.rows)?;
    let mut text = String::new();
    match (&model.task, &model.label_map) {
        (Task::Binary | Task::Multiclass, Some(map)) => {
            let probabilities = model.probabilities(&outputs);
            let k = map.n_classes();
            let header: Vec<String> = std::iter::once("prediction".to_string())
                .chain((0..k).map(|c| format!("p_{}", class_name(&model, c))))
                .collect();
            let _ = writeln!(text, "{}", header.join(","));
            // Classes from the logits, exactly as evaluation counts them.
            let classes = argmax_rows(&outputs, outputs.len() / data.rows.max(1))
                .map_err(|e| CliError::usage(format!("{}: {e}", source.shown())))?;
            for (row, &best) in probabilities.chunks_exact(k).zip(&classes) {
                let cells: Vec<String> =
                    std::iter::once(class_name(&model, best)).chain(row.iter().map(|p| p.to_string())).collect();
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

/// The name of class index `class`: its name when the model has class names, else its label.
fn class_name(model: &SavedModel, class: usize) -> String {
    match (&model.class_names, &model.label_map) {
        (Some(names), _) => names[class].clone(),
        (None, Some(map)) => label(map.classes[class]),
        (None, None) => class.to_string(),
    }
}

/// `gradus predict --image`: each image converted to the model's input (channels, size, scaling)
/// and its most likely classes with their probabilities.
fn predict_images(
    model: &SavedModel,
    images: &[std::path::PathBuf],
    args: &PredictArgs,
    quiet: bool,
) -> Result<(), CliError> {
    let ModelSpec::Network { network } = &model.model else {
        return Err(CliError::usage(format!(
            "--image: `{}` is a {}, not an image model (train one with --model cnn)",
            args.model.display(),
            model.model.describe()
        )));
    };
    let Some((channels, height, width)) = network.input.as_image() else {
        return Err(CliError::usage(format!(
            "--image: `{}` takes flat rows of {} values, not images",
            args.model.display(),
            network.input.len()
        )));
    };
    if !matches!(model.task, Task::Binary | Task::Multiclass) {
        return Err(CliError::usage("--image: the model is not a classifier"));
    }
    let top = args.top.unwrap_or(3);
    if top == 0 {
        return Err(CliError::flag("--top", 0, "at least 1"));
    }
    // Pixels as the model's training data held them: grey levels 0–255 when it was scaled (its
    // standardizer divides by the training maximum), else 0–1 (IDX files are read as x / 255).
    let unit = if model.standardizer.is_some() { 255.0 } else { 1.0 };
    let mut features = Vec::with_capacity(images.len() * channels * height * width);
    for path in images {
        features.extend(
            crate::image::read_image(path, channels, height, width, args.invert)?.into_iter().map(|v| v * unit),
        );
    }
    let outputs = model.outputs(&features, images.len())?;
    let probabilities = model.probabilities(&outputs);
    let classes = model.label_map.as_ref().map_or(1, |m| m.n_classes());
    let mut text = String::new();
    for (path, row) in images.iter().zip(probabilities.chunks_exact(classes)) {
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        let best: Vec<String> =
            order.iter().take(top).map(|&c| format!("{} {:.1}%", class_name(model, c), 100.0 * row[c])).collect();
        let _ = writeln!(text, "{}: {}", path.display(), best.join(", "));
    }
    match &args.out {
        Some(path) => {
            write_file("--out", path, text.as_bytes())?;
            if !quiet {
                eprintln!("wrote {} predictions to {}", images.len(), path.display());
            }
        }
        None => print!("{text}"),
    }
    Ok(())
}
