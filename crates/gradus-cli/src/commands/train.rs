//! `gradus train`: train one model (or K, with `--folds`), say what was done, and write the
//! requested model, metrics and plot files.

use std::path::{Path, PathBuf};

use gradus::saved::SavedModel;
use gradus::train::{Checkpoint, CheckpointConfig, CrossValidation, EpochRecord, Metrics, Task, Termination};
use serde_json::json;

use crate::args::TrainArgs;
use crate::engine::{self, RunOutput};
use crate::error::CliError;
use crate::fingerprint;
use crate::output::{metrics_table, write_file};
use crate::paths::Files;
use crate::prepare::{self, Loaded, Prepared};
use crate::progress::{bar, bars_enabled, RunObserver};
use crate::setup::{self, batch_label, Scaling, Settings};
use crate::{config, plot};

/// Where messages go: stdout, or stderr when stdout carries `--json` lines; nowhere with `--quiet`.
#[derive(Clone, Copy)]
pub struct Say {
    quiet: bool,
    to_stderr: bool,
}

impl Say {
    /// Messages for a command with these output flags.
    pub fn new(quiet: bool, to_stderr: bool) -> Self {
        Self { quiet, to_stderr }
    }

    /// Prints `text` (one or more lines).
    pub fn line(&self, text: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let text = text.as_ref().trim_end();
        if self.to_stderr {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

/// The most worker threads `--threads` takes: 4 per core the machine offers, and never more than
/// [`MAX_THREADS`] (more only cost the time to start them: results do not depend on the count).
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (4 * cores).min(MAX_THREADS)
}

/// The most worker threads on any machine.
pub const MAX_THREADS: usize = 1024;

/// Sets the size of rayon's global pool.
pub fn set_threads(threads: Option<usize>) -> Result<(), CliError> {
    let Some(n) = threads else { return Ok(()) };
    if n == 0 {
        return Err(CliError::flag("--threads", 0, "at least 1"));
    }
    let most = max_threads();
    if n > most {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        return Err(CliError::flag(
            "--threads",
            n,
            &format!("1 to {most} (4 × the {cores} cores here, at most {MAX_THREADS}; results do not depend on it)"),
        ));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| CliError::usage(format!("--threads {n}: cannot start the thread pool: {e}")))
}

/// Checks a `--plot` path's name: a PNG or SVG file (whether it can be written is checked with
/// the command's other files, [`Files::check`]).
pub fn check_plot_path(path: &Path) -> Result<(), CliError> {
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
    if ext != "png" && ext != "svg" {
        return Err(CliError::usage(format!(
            "--plot `{}`: expected a file name ending in .png or .svg",
            path.display()
        )));
    }
    Ok(())
}

/// Describes why training ended.
pub fn termination_note(output: &RunOutput, settings: &Settings, task: Task) -> String {
    match output.report.termination {
        Termination::MaxEpochs => "all epochs ran".to_string(),
        Termination::Converged => "converged: the training loss changed by less than --tol".to_string(),
        Termination::EarlyStopped => format!(
            "early stop: validation {} did not improve for {} epochs; kept epoch {}",
            task.primary_metric().0,
            settings.early_stop.unwrap_or(0),
            output.report.best_epoch
        ),
        Termination::Interrupted => "interrupted".to_string(),
    }
}

fn data_line(loaded: &Loaded) -> String {
    format!(
        "data: {} ({} rows × {} features, target `{}`)",
        loaded.origin,
        loaded.rows(),
        loaded.data.cols,
        gradus::data::quote_cell(&loaded.data.target_name)
    )
}

fn task_line(loaded: &Loaded) -> String {
    let classes = match loaded.task {
        Task::Binary | Task::Multiclass => format!(", {} classes", loaded.classes()),
        _ => String::new(),
    };
    format!("task: {}{classes} ({})", loaded.task.name(), loaded.task_note)
}

fn settings_lines(settings: &Settings, spec: &gradus::saved::ModelSpec, params: usize) -> String {
    let schedule = match (settings.schedule.as_str(), settings.warmup) {
        (s, 0) => s.to_string(),
        (s, w) => format!("{w} warmup updates, then {s}"),
    };
    format!(
        "model: {} ({params} parameters)\noptimizer: {}, batch {}, {} epochs, schedule {schedule}, seed {}",
        spec.describe(),
        settings.optimizer.describe(),
        batch_label(settings.batch),
        settings.epochs,
        settings.seed
    )
}

/// Loss and primary-metric panels for a set of runs' histories.
pub fn curve_panels(task: Task, runs: &[(String, &[EpochRecord])]) -> Vec<plot::Panel> {
    let metric = task.primary_metric().0;
    let series = |pick: &dyn Fn(&EpochRecord) -> Option<f64>, suffix: &str| -> Vec<plot::Series> {
        runs.iter()
            .filter_map(|(label, history)| {
                let points: Vec<(f64, f64)> =
                    history.iter().filter_map(|r| pick(r).map(|v| (r.epoch as f64, v))).collect();
                (!points.is_empty()).then(|| plot::Series {
                    label: if suffix.is_empty() {
                        label.clone()
                    } else {
                        format!("{label} {suffix}").trim().to_string()
                    },
                    x: points.iter().map(|p| p.0).collect(),
                    y: points.iter().map(|p| p.1).collect(),
                })
            })
            .collect()
    };
    let mut loss = series(&|r| r.train.get("loss").copied(), "train");
    loss.extend(series(&|r| r.validation.get("loss").copied(), "validation"));
    let mut metric_series = series(&|r| r.train.get(metric).copied(), "train");
    metric_series.extend(series(&|r| r.validation.get(metric).copied(), "validation"));
    vec![
        plot::Panel {
            title: "Loss".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            series: loss,
            log_x: false,
            log_y: true,
        },
        plot::Panel {
            title: metric.to_string(),
            x_label: "epoch".into(),
            y_label: metric.into(),
            series: metric_series,
            log_x: false,
            log_y: false,
        },
    ]
}

/// Draws the learning curves of one run's `history` into `path` (`--plot`), under `title`.
pub fn plot_history(path: &Path, task: Task, title: &str, history: &[EpochRecord]) -> Result<(), CliError> {
    let panels = curve_panels(task, &[(String::new(), history)]);
    plot::draw_panels(path, title, &panels, (1200, 500)).map_err(CliError::usage)
}

/// The fingerprint of a run that writes or reads checkpoints (`run` builds it; an empty one
/// otherwise, as hashing the data costs a pass), checked against the checkpoint resumed.
pub fn checked_fingerprint(
    args: &TrainArgs,
    resume: Option<&Checkpoint>,
    writes: bool,
    epochs: usize,
    run: impl FnOnce() -> fingerprint::Fingerprint,
) -> Result<fingerprint::Fingerprint, CliError> {
    if resume.is_none() && !writes {
        return Ok(fingerprint::Fingerprint::new());
    }
    let run = run();
    if let (Some(cp), Some(path)) = (resume, &args.resume) {
        fingerprint::check_resume(path, cp, &run, epochs)?;
    }
    Ok(run)
}

/// Runs `gradus train`.
pub fn run(mut args: TrainArgs, quiet: bool) -> Result<(), CliError> {
    config::apply(&mut args)?;
    if let Some(path) = &args.plot {
        check_plot_path(path)?;
    }
    let checkpoint = match (args.checkpoint_every, &args.checkpoint) {
        (Some(0), _) => return Err(CliError::flag("--checkpoint-every", 0, "at least 1 epoch")),
        (Some(every), path) => {
            let path = path.clone().unwrap_or_else(|| match &args.save {
                Some(save) => PathBuf::from(format!("{}.ckpt", save.display())),
                None => PathBuf::from("gradus.ckpt"),
            });
            Some(CheckpointConfig { every, path })
        }
        (None, Some(_)) => return Err(CliError::usage("--checkpoint needs --checkpoint-every N")),
        (None, None) => None,
    };
    let builtin = prepare::builtin_file(&args.data);
    Files::new()
        .input("--config", args.config.as_deref())
        .input("--data", args.data.data.as_deref())
        .input("--labels", args.data.labels.as_deref())
        .input("--dataset", builtin.iter().map(PathBuf::as_path))
        .input("--resume", args.resume.as_deref())
        .output("--save", args.save.as_deref())
        .output("--metrics-json", args.metrics_json.as_deref())
        .output("--plot", args.plot.as_deref())
        .output("--checkpoint", checkpoint.as_ref().map(|c| c.path.as_path()))
        .check()?;
    set_threads(args.options.threads)?;
    if crate::ratings::wanted(&args.data, &args.options)? {
        if let Some(flag) = args.text.first_given() {
            return Err(CliError::usage(format!("{flag} applies to text classifiers, not matrix factorization")));
        }
        return crate::ratings::train(&args, quiet);
    }
    let resume = match &args.resume {
        Some(path) if !path.exists() => {
            return Err(CliError::usage(format!("--resume `{}`: checkpoint file not found", path.display())))
        }
        Some(path) => Some(Checkpoint::load(path).map_err(|e| CliError::usage(format!("--resume: {e}")))?),
        None => None,
    };
    if args.folds.is_some() && (resume.is_some() || checkpoint.is_some()) {
        return Err(CliError::usage("--folds cannot be combined with --checkpoint-every or --resume"));
    }
    if crate::language::wanted(&args) {
        return crate::language::train(&args, quiet, resume, checkpoint);
    }
    if crate::text::wanted(&args)? {
        return crate::text::train(&args, quiet, resume, checkpoint);
    }
    if args.folds.is_some() && args.options.val_fraction.is_some_and(|f| f != 0.0) {
        return Err(CliError::usage(
            "--val-fraction and --folds: with --folds each fold's held-out rows are its validation; give one or the other",
        ));
    }
    let say = Say::new(quiet, args.json);
    let loaded = prepare::load(&args.data)?;
    let settings = setup::resolve(&args.options, loaded.task)?;
    let val_fraction =
        args.options.val_fraction.unwrap_or(if args.folds.is_some() { 0.0 } else { setup::DEFAULT_VAL_FRACTION });
    if settings.early_stop.is_some() && val_fraction == 0.0 && args.folds.is_none() {
        return Err(CliError::usage("--early-stop watches validation rows: give --val-fraction > 0 or --folds"));
    }
    say.line(data_line(&loaded));
    say.line(task_line(&loaded));
    match args.folds {
        Some(k) => run_folds(&args, &loaded, &settings, k, say, quiet),
        None => run_single(&args, &loaded, &settings, val_fraction, say, quiet, resume, checkpoint),
    }
}

/// What was done to the features, for the split line.
fn scaling_note(settings: &Settings, standardizer: Option<&gradus::data::Standardizer>, rows: &str) -> String {
    match (settings.scaling, standardizer) {
        (Scaling::Standardize, _) => format!("; features standardized on {rows}"),
        (Scaling::Images, Some(s)) => {
            format!(
                "; values divided by {} (the largest of {rows}) into [0, 1]",
                s.stds.first().copied().unwrap_or(1.0)
            )
        }
        _ => String::new(),
    }
}

/// The network as a table, as Keras' `summary` prints it.
fn network_table(spec: &gradus::saved::ModelSpec) -> Option<String> {
    let gradus::saved::ModelSpec::Network { network } = spec else { return None };
    let net = gradus::nn::Network::new(network.clone()).ok()?;
    let summary = net.summary();
    let width = summary.iter().map(|l| l.layer.len()).max().unwrap_or(5).max(5);
    let names = summary.iter().map(|l| l.name.len()).max().unwrap_or(5).max(5);
    let mut text = format!("  {:<names$} {:<width$} {:<16} {:>10}\n", "name", "layer", "output", "parameters");
    text.push_str(&format!("  {:<names$} {:<width$} {:<16} {:>10}\n", "input", "", net.input_shape().to_string(), ""));
    for layer in &summary {
        text.push_str(&format!(
            "  {:<names$} {:<width$} {:<16} {:>10}\n",
            layer.name,
            layer.layer,
            layer.output.to_string(),
            layer.params
        ));
    }
    text.push_str(&format!("  {:<names$} {:<width$} {:<16} {:>10}", "total", "", "", net.num_params()));
    Some(text)
}

fn saved_model(
    loaded: &Loaded,
    data: &Prepared,
    model: &dyn gradus::model::Model,
    spec: gradus::saved::ModelSpec,
    params: Vec<f32>,
) -> SavedModel {
    let task = model.task();
    SavedModel {
        buffers: model.buffers(),
        class_names: loaded.class_names.clone(),
        text: None,
        task,
        model: spec,
        params,
        standardizer: data.standardizer.clone(),
        target_scale: data.target_scale,
        label_map: loaded.label_map.clone(),
        feature_names: loaded.data.feature_names.clone(),
        target_name: loaded.data.target_name.clone(),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_single(
    args: &TrainArgs,
    loaded: &Loaded,
    settings: &Settings,
    val_fraction: f64,
    say: Say,
    quiet: bool,
    resume: Option<Checkpoint>,
    checkpoint: Option<CheckpointConfig>,
) -> Result<(), CliError> {
    let (train_rows, val_rows) = prepare::split(loaded, val_fraction, settings.seed)?;
    let data = prepare::prepare(loaded, &train_rows, &val_rows, settings.scaling)?;
    let (model, spec) = settings.model(
        loaded.task,
        loaded.data.cols,
        loaded.classes(),
        data.target_scale,
        loaded.image_shape.as_ref(),
    )?;
    let run = checked_fingerprint(args, resume.as_ref(), checkpoint.is_some(), settings.epochs, || {
        fingerprint::of(settings, loaded, &data, val_fraction, engine::steps_per_epoch(settings, data.train_y.len()))
    })?;
    let stratified = if matches!(loaded.task, Task::Binary | Task::Multiclass) && !val_rows.is_empty() {
        "stratified, "
    } else {
        ""
    };
    say.line(format!(
        "split: {} training rows, {} validation rows ({stratified}seed {}){}",
        train_rows.len(),
        val_rows.len(),
        settings.seed,
        scaling_note(settings, data.standardizer.as_ref(), "the training rows")
    ));
    say.line(settings_lines(settings, &spec, model.layout().len()));
    if let Some(table) = network_table(&spec) {
        say.line(table);
    }
    if let Some(cp) = &resume {
        let from = args.resume.as_ref().map_or(String::new(), |p| format!(" `{}`", p.display()));
        say.line(format!("resuming after epoch {} of the checkpoint{from}", cp.epoch));
    }
    let done = resume.as_ref().map_or(0, |c| c.epoch);
    let progress = bar(settings.epochs.saturating_sub(done) as u64, bars_enabled(quiet));
    let mut observer = RunObserver {
        bar: &progress,
        json: args.json,
        tags: serde_json::Map::new(),
        warnings: !quiet,
        metric: model.task().primary_metric().0,
    };
    let result = engine::fit_run(model.as_ref(), settings, &data, &mut observer, resume, checkpoint, run);
    progress.finish_and_clear();
    let output = result?;
    let Some(last) = output.final_record() else {
        return Err(CliError::usage("nothing to train: the checkpoint already holds every epoch"));
    };
    let epochs_run = output.report.history.len();
    let resumed = if done > 0 { format!(", {done} of them from the checkpoint") } else { String::new() };
    say.line(format!(
        "trained {epochs_run} epochs{resumed} in {:.2} s ({})",
        output.seconds,
        termination_note(&output, settings, model.task())
    ));
    say.line(metrics_table(&[("train", &last.train), ("validation", &last.validation)]));
    if output.report.skipped_updates > 0 {
        say.line(format!("{} updates skipped for non-finite gradients", output.report.skipped_updates));
    }
    let train_metrics = last.train.clone();
    let validation_metrics = last.validation.clone();
    let history = output.report.history.clone();
    if let Some(path) = &args.plot {
        let title = format!("{} on {}", spec.describe(), loaded.origin.replace('`', ""));
        plot_history(path, model.task(), &title, &history)?;
        say.line(format!("plot: {}", path.display()));
    }
    if let Some(path) = &args.metrics_json {
        let value = metrics_json(loaded, settings, &spec, &output, &train_metrics, &validation_metrics, &[], &history);
        write_file("--metrics-json", path, format!("{value:#}\n").as_bytes())?;
        say.line(format!("metrics: {}", path.display()));
    }
    if let Some(path) = &args.save {
        saved_model(loaded, &data, model.as_ref(), spec, output.params).save(path)?;
        say.line(format!("saved model: {}", path.display()));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn metrics_json(
    loaded: &Loaded,
    settings: &Settings,
    spec: &gradus::saved::ModelSpec,
    output: &RunOutput,
    train: &Metrics,
    validation: &Metrics,
    folds: &[serde_json::Value],
    history: &[EpochRecord],
) -> serde_json::Value {
    json!({
        "task": loaded.task.name(),
        "model": settings.model,
        "model_description": spec.describe(),
        "optimizer": settings.optimizer.label,
        "optimizer_options": settings.optimizer.options,
        "batch_size": batch_label(settings.batch),
        "schedule": settings.schedule,
        "seed": settings.seed,
        "data": loaded.origin.replace('`', ""),
        "epochs": history.len(),
        "best_epoch": output.report.best_epoch,
        "termination": output.report.termination,
        "seconds": output.seconds,
        "train": train,
        "validation": validation,
        "folds": folds,
        "history": history,
    })
}

fn run_folds(
    args: &TrainArgs,
    loaded: &Loaded,
    settings: &Settings,
    k: usize,
    say: Say,
    quiet: bool,
) -> Result<(), CliError> {
    let folds = prepare::folds(loaded, k, settings.seed)?;
    let progress = bar((settings.epochs as u64).saturating_mul(k as u64), bars_enabled(quiet));
    let mut fold_train = Vec::new();
    let mut fold_validation = Vec::new();
    let mut fold_values = Vec::new();
    let mut histories: Vec<(String, Vec<EpochRecord>)> = Vec::new();
    let mut seconds = 0.0;
    let mut last_output = None;
    let mut described = false;
    for (i, (train_rows, test_rows)) in folds.iter().enumerate() {
        let data = prepare::prepare(loaded, train_rows, test_rows, settings.scaling)?;
        let (model, spec) = settings.model(
            loaded.task,
            loaded.data.cols,
            loaded.classes(),
            data.target_scale,
            loaded.image_shape.as_ref(),
        )?;
        if !described {
            say.line(format!(
                "cross-validation: {k} folds of about {} held-out rows each (seed {}){}",
                test_rows.len(),
                settings.seed,
                scaling_note(settings, data.standardizer.as_ref(), "each fold's training rows")
            ));
            say.line(settings_lines(settings, &spec, model.layout().len()));
            described = true;
        }
        let mut tags = serde_json::Map::new();
        tags.insert("fold".into(), json!(i + 1));
        let mut observer = RunObserver {
            bar: &progress,
            json: args.json,
            tags,
            warnings: !quiet,
            metric: model.task().primary_metric().0,
        };
        progress.set_prefix(format!("fold {}/{k} ", i + 1));
        let result = engine::fit(model.as_ref(), settings, &data, &mut observer, None, None);
        let output = match result {
            Ok(o) => o,
            Err(e) => {
                progress.finish_and_clear();
                return Err(CliError { message: format!("fold {}: {}", i + 1, e.message), ..e });
            }
        };
        let last = output.final_record().cloned().unwrap_or_else(|| EpochRecord {
            epoch: 0,
            train: Metrics::new(),
            validation: Metrics::new(),
            lr: 0.0,
            grad_norm: 0.0,
            seconds: 0.0,
        });
        seconds += output.seconds;
        fold_values.push(json!({
            "fold": i + 1,
            "train_rows": train_rows.len(),
            "validation_rows": test_rows.len(),
            "epochs": output.report.history.len(),
            "seconds": output.seconds,
            "train": last.train,
            "validation": last.validation,
        }));
        fold_train.push(last.train.clone());
        fold_validation.push(last.validation.clone());
        histories.push((format!("fold {}", i + 1), output.report.history.clone()));
        last_output = Some((output, spec));
    }
    progress.finish_and_clear();
    let train = CrossValidation::from_folds(fold_train).mean;
    let validation = CrossValidation::from_folds(fold_validation.clone());
    say.line(format!("trained {k} folds in {seconds:.2} s"));
    let mut rows: Vec<(String, &Metrics)> =
        fold_validation.iter().enumerate().map(|(i, m)| (format!("fold {}", i + 1), m)).collect();
    rows.push(("mean train".into(), &train));
    rows.push(("mean held-out".into(), &validation.mean));
    let labelled: Vec<(&str, &Metrics)> = rows.iter().map(|(l, m)| (l.as_str(), *m)).collect();
    say.line(metrics_table(&labelled));

    let (output, spec) = last_output.expect("at least two folds ran");
    let task = gradus::saved::ModelSpec::build(&spec).map(|m| m.task()).unwrap_or(loaded.task);
    if let Some(path) = &args.plot {
        let runs: Vec<(String, &[EpochRecord])> = histories.iter().map(|(l, h)| (l.clone(), h.as_slice())).collect();
        plot::draw_panels(path, &format!("{k}-fold cross-validation"), &curve_panels(task, &runs), (1200, 500))
            .map_err(CliError::usage)?;
        say.line(format!("plot: {}", path.display()));
    }
    if let Some(path) = &args.metrics_json {
        let mut value = metrics_json(loaded, settings, &spec, &output, &train, &validation.mean, &fold_values, &[]);
        value["epochs"] = json!(settings.epochs);
        value["seconds"] = json!(seconds);
        write_file("--metrics-json", path, format!("{value:#}\n").as_bytes())?;
        say.line(format!("metrics: {}", path.display()));
    }
    if let Some(path) = &args.save {
        // The folds estimate how well the model generalizes; the saved model is trained on every row.
        let all: Vec<usize> = (0..loaded.rows()).collect();
        let data = prepare::prepare(loaded, &all, &[], settings.scaling)?;
        let (model, spec) = settings.model(
            loaded.task,
            loaded.data.cols,
            loaded.classes(),
            data.target_scale,
            loaded.image_shape.as_ref(),
        )?;
        let final_bar = bar(settings.epochs as u64, bars_enabled(quiet));
        let mut observer = RunObserver {
            bar: &final_bar,
            json: false,
            tags: serde_json::Map::new(),
            warnings: !quiet,
            metric: model.task().primary_metric().0,
        };
        let result = engine::fit(model.as_ref(), settings, &data, &mut observer, None, None);
        final_bar.finish_and_clear();
        let output = result?;
        saved_model(loaded, &data, model.as_ref(), spec, output.params).save(path)?;
        say.line(format!("saved model (trained on all {} rows): {}", loaded.rows(), path.display()));
    }
    Ok(())
}
