//! `gradus compare`: the same task trained several ways (optimizers, learning rates, batch sizes
//! or schedules; several lists give every combination), with the same seed, split and
//! standardization; a table of the outcomes and every run's curves on one plot.

use gradus::train::{EpochRecord, Task};
use serde_json::json;

use crate::args::{CompareArgs, TrainOptions};
use crate::commands::train::{check_plot_path, set_threads, Say};
use crate::engine;
use crate::error::CliError;
use crate::output::{check_writable, num, table, write_file};
use crate::plot;
use crate::prepare;
use crate::progress::{bar, bars_enabled, RunObserver};
use crate::setup::{self, Settings};

/// One configuration to run.
struct Variant {
    label: String,
    options: TrainOptions,
}

/// The combinations of the lists given (default: sgd, momentum and adam).
fn variants(args: &CompareArgs) -> Result<Vec<Variant>, CliError> {
    let clash = |list: bool, single: bool, lists: &str, one: &str| {
        if list && single {
            Err(CliError::usage(format!("{lists} and {one}: give the values to compare in {lists} only")))
        } else {
            Ok(())
        }
    };
    clash(args.optimizers.is_some(), args.options.optimizer.is_some(), "--optimizers", "--optimizer")?;
    clash(args.lrs.is_some(), args.options.lr.is_some(), "--lrs", "--lr")?;
    clash(args.batch_sizes.is_some(), args.options.batch_size.is_some(), "--batch-sizes", "--batch-size")?;
    clash(args.schedules.is_some(), args.options.schedule.is_some(), "--schedules", "--schedule")?;
    let nothing_varies =
        args.optimizers.is_none() && args.lrs.is_none() && args.batch_sizes.is_none() && args.schedules.is_none();
    let optimizers: Vec<Option<String>> = match &args.optimizers {
        Some(list) => list.iter().map(|o| Some(o.trim().to_string())).collect(),
        None if nothing_varies => ["sgd", "momentum", "adam"].iter().map(|o| Some(o.to_string())).collect(),
        None => vec![None],
    };
    let lrs: Vec<Option<f64>> = match &args.lrs {
        Some(list) => list.iter().map(|&l| Some(l)).collect(),
        None => vec![None],
    };
    let batches: Vec<Option<String>> = match &args.batch_sizes {
        Some(list) => list.iter().map(|b| Some(b.trim().to_string())).collect(),
        None => vec![None],
    };
    let schedules: Vec<Option<String>> = match &args.schedules {
        Some(list) => list.iter().map(|s| Some(s.trim().to_string())).collect(),
        None => vec![None],
    };
    for (flag, len) in [
        ("--optimizers", optimizers.len()),
        ("--lrs", lrs.len()),
        ("--batch-sizes", batches.len()),
        ("--schedules", schedules.len()),
    ] {
        if len == 0 {
            return Err(CliError::usage(format!("{flag}: expected at least one value")));
        }
    }
    let mut out = Vec::new();
    for optimizer in &optimizers {
        for lr in &lrs {
            for batch in &batches {
                for schedule in &schedules {
                    let mut options = args.options.clone();
                    let mut label = Vec::new();
                    if let Some(o) = optimizer {
                        options.optimizer = Some(o.clone());
                        label.push(o.clone());
                    }
                    if let Some(l) = lr {
                        options.lr = Some(*l);
                        label.push(format!("lr={l}"));
                    }
                    if let Some(b) = batch {
                        options.batch_size = Some(b.clone());
                        label.push(format!("batch={b}"));
                    }
                    if let Some(s) = schedule {
                        options.schedule = Some(s.clone());
                        label.push(s.clone());
                    }
                    out.push(Variant { label: label.join(" "), options });
                }
            }
        }
    }
    Ok(out)
}

/// The first epoch whose metric reaches `target` (validation, or training without validation).
fn epochs_to_target(history: &[EpochRecord], metric: &str, higher_is_better: bool, target: f64) -> Option<usize> {
    history.iter().find_map(|r| {
        let value = r.validation.get(metric).or_else(|| r.train.get(metric)).copied()?;
        let reached = if higher_is_better { value >= target } else { value <= target };
        reached.then_some(r.epoch)
    })
}

/// What one run came to.
struct Outcome {
    label: String,
    settings: Settings,
    history: Vec<EpochRecord>,
    /// The record of the kept parameters (the best epoch under early stopping).
    kept: Option<EpochRecord>,
    seconds: f64,
    failure: Option<String>,
}

/// Runs `gradus compare`.
pub fn run(args: &CompareArgs, quiet: bool) -> Result<(), CliError> {
    if let Some(path) = &args.plot {
        check_plot_path(path)?;
    }
    if let Some(path) = &args.metrics_json {
        check_writable("--metrics-json", path)?;
    }
    set_threads(args.options.threads)?;
    let variants = variants(args)?;
    let loaded = prepare::load(&args.data)?;
    // Every configuration is checked before anything trains.
    let mut runs: Vec<(String, Settings)> = Vec::new();
    for v in &variants {
        let settings = setup::resolve(&v.options, loaded.task)
            .map_err(|e| CliError { message: format!("run `{}`: {}", v.label, e.message), ..e })?;
        runs.push((v.label.clone(), settings));
    }
    let base = &runs[0].1;
    let val_fraction = args.options.val_fraction.unwrap_or(setup::DEFAULT_VAL_FRACTION);
    let (train_rows, val_rows) = prepare::split(&loaded, val_fraction, base.seed)?;
    let data = prepare::prepare(&loaded, &train_rows, &val_rows, base.scaling)?;
    let say = Say::new(quiet, false);
    say.line(format!(
        "data: {} ({} rows × {} features); task {} ({}); {} training rows, {} validation rows; seed {}",
        loaded.origin,
        loaded.rows(),
        loaded.data.cols,
        loaded.task.name(),
        loaded.task_note,
        train_rows.len(),
        val_rows.len(),
        base.seed
    ));
    let total: usize = runs.iter().map(|(_, s)| s.epochs).sum();
    let progress = bar(total as u64, bars_enabled(quiet));
    let mut outcomes = Vec::new();
    let mut task = loaded.task;
    for (label, settings) in runs {
        let (model, _) = settings.model(
            loaded.task,
            loaded.data.cols,
            loaded.classes(),
            data.target_scale,
            loaded.image_shape.as_ref(),
        )?;
        task = model.task();
        progress.set_prefix(format!("{label} "));
        let mut observer = RunObserver {
            bar: &progress,
            json: false,
            tags: serde_json::Map::new(),
            warnings: false,
            metric: task.primary_metric().0,
        };
        let started = std::time::Instant::now();
        let outcome = match engine::fit(model.as_ref(), &settings, &data, &mut observer, None, None) {
            Ok(output) => Outcome {
                label,
                settings,
                kept: output.final_record().cloned(),
                history: output.report.history,
                seconds: output.seconds,
                failure: None,
            },
            Err(e) if e.code == crate::error::EXIT_TRAINING => Outcome {
                label,
                settings,
                history: Vec::new(),
                kept: None,
                seconds: started.elapsed().as_secs_f64(),
                failure: Some(e.message),
            },
            Err(e) => {
                progress.finish_and_clear();
                return Err(e);
            }
        };
        outcomes.push(outcome);
    }
    progress.finish_and_clear();
    report(args, &outcomes, task, say)?;
    if outcomes.iter().all(|o| o.failure.is_some()) {
        return Err(CliError::training("every run failed").hint("try lower learning rates (--lrs)"));
    }
    Ok(())
}

fn report(args: &CompareArgs, outcomes: &[Outcome], task: Task, say: Say) -> Result<(), CliError> {
    let (metric, higher) = task.primary_metric();
    let mut header: Vec<String> =
        vec!["run".into(), "train loss".into(), format!("train {metric}"), "val loss".into(), format!("val {metric}")];
    if let Some(t) = args.target_metric {
        header.push(format!("epochs to {metric} {} {t}", if higher { ">=" } else { "<=" }));
    }
    header.push("epochs".into());
    header.push("time (s)".into());
    let mut rows = Vec::new();
    let mut runs_json = Vec::new();
    for o in outcomes {
        let last = o.kept.as_ref();
        let cell = |pick: &dyn Fn(&EpochRecord) -> Option<f64>| last.and_then(pick).map_or("-".to_string(), num);
        let to_target = args.target_metric.map(|t| epochs_to_target(&o.history, metric, higher, t));
        let mut row = vec![
            o.label.clone(),
            cell(&|r| r.train.get("loss").copied()),
            cell(&|r| r.train.get(metric).copied()),
            cell(&|r| r.validation.get("loss").copied()),
            cell(&|r| r.validation.get(metric).copied()),
        ];
        if let Some(reached) = to_target {
            row.push(reached.map_or("not reached".into(), |e| e.to_string()));
        }
        row.push(match &o.failure {
            Some(_) => "diverged".into(),
            None => o.history.len().to_string(),
        });
        row.push(format!("{:.2}", o.seconds));
        rows.push(row);
        runs_json.push(json!({
            "run": o.label,
            "optimizer": o.settings.optimizer.label,
            "optimizer_options": o.settings.optimizer.options,
            "batch_size": setup::batch_label(o.settings.batch),
            "schedule": o.settings.schedule,
            "epochs": o.history.len(),
            "seconds": o.seconds,
            "train": last.map(|r| r.train.clone()).unwrap_or_default(),
            "validation": last.map(|r| r.validation.clone()).unwrap_or_default(),
            "epochs_to_target": to_target.flatten(),
            "failure": o.failure,
            "history": o.history,
        }));
    }
    say.line(table(&header, &rows));
    for o in outcomes {
        if let Some(f) = &o.failure {
            say.line(format!("{}: {f}", o.label));
        }
    }
    if let Some(path) = &args.plot {
        let series = |pick: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<plot::Series> {
            outcomes
                .iter()
                .filter(|o| !o.history.is_empty())
                .map(|o| {
                    let points: Vec<(f64, f64)> =
                        o.history.iter().filter_map(|r| pick(r).map(|v| (r.epoch as f64, v))).collect();
                    plot::Series {
                        label: o.label.clone(),
                        x: points.iter().map(|p| p.0).collect(),
                        y: points.iter().map(|p| p.1).collect(),
                    }
                })
                .collect()
        };
        let has_validation = outcomes.iter().any(|o| o.history.iter().any(|r| !r.validation.is_empty()));
        let (which, metric_series) = if has_validation {
            ("validation", series(&|r| r.validation.get(metric).copied()))
        } else {
            ("train", series(&|r| r.train.get(metric).copied()))
        };
        let panels = vec![
            plot::Panel {
                title: format!("{which} {metric}"),
                x_label: "epoch".into(),
                y_label: metric.into(),
                series: metric_series,
                log_x: false,
                log_y: false,
            },
            plot::Panel {
                title: "train loss".into(),
                x_label: "epoch".into(),
                y_label: "loss".into(),
                series: series(&|r| r.train.get("loss").copied()),
                log_x: false,
                log_y: true,
            },
        ];
        plot::draw_panels(path, "gradus compare", &panels, (1200, 500)).map_err(CliError::usage)?;
        say.line(format!("plot: {}", path.display()));
    }
    if let Some(path) = &args.metrics_json {
        let value = json!({"task": task.name(), "target_metric": args.target_metric, "runs": runs_json});
        write_file("--metrics-json", path, format!("{value:#}\n").as_bytes())?;
        say.line(format!("metrics: {}", path.display()));
    }
    Ok(())
}
