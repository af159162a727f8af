//! `gradus lr-find`: the learning-rate range test ([`gradus::lr_find::range_test`]) on the model
//! and training rows that `gradus train` would use with the same options, its suggested learning
//! rate, and a plot of the loss against the learning rate.

use std::path::PathBuf;

use gradus::lr_find::{range_test_with_progress, RangeTest, RangeTestConfig, RangeTestError};
use gradus::train::Task;
use serde_json::json;

use crate::args::LrFindArgs;
use crate::commands::train::{check_plot_path, set_threads, Say};
use crate::error::CliError;
use crate::paths::Files;
use crate::plot;
use crate::prepare;
use crate::setup::{self, batch_label};

/// Size of the `--plot` picture, in pixels.
pub const PLOT_SIZE: (u32, u32) = (900, 600);

fn range_test_error(e: RangeTestError) -> CliError {
    match e {
        RangeTestError::Config(c) => c.into(),
        RangeTestError::NoFiniteLoss { .. } => {
            CliError::training(e.to_string()).hint("try a smaller --start-lr, or standardized features")
        }
        other => CliError::usage(other.to_string()),
    }
}

/// Runs `gradus lr-find`.
pub fn run(args: &LrFindArgs, quiet: bool) -> Result<(), CliError> {
    if let Some(path) = &args.plot {
        check_plot_path(path)?;
    }
    let builtin = prepare::builtin_file(&args.data);
    Files::new()
        .input("--data", args.data.data.as_deref())
        .input("--labels", args.data.labels.as_deref())
        .input("--dataset", builtin.iter().map(PathBuf::as_path))
        .output("--plot", args.plot.as_deref())
        .check()?;
    set_threads(args.options.threads)?;
    if crate::ratings::wanted(&args.data, &args.options)? {
        return Err(CliError::usage(
            "gradus lr-find runs on feature tables; matrix factorization (ratings) trains by per-rating SGD",
        )
        .hint("give the learning rate of `gradus train --model mf` with --lr (default 0.005)"));
    }
    let loaded = prepare::load(&args.data)?;
    let settings = setup::resolve(&args.options, loaded.task)?;
    if settings.optimizer.name == "lbfgs" {
        return Err(CliError::usage("--optimizer lbfgs chooses its steps by line search: lr-find does not apply"));
    }
    let defaults = RangeTestConfig::default();
    // The test trains on the rows training would train on (the validation rows are held out).
    let val_fraction = args.options.val_fraction.unwrap_or(setup::DEFAULT_VAL_FRACTION);
    let (train_rows, _) = prepare::split(&loaded, val_fraction, settings.seed)?;
    let data = prepare::prepare(&loaded, &train_rows, &[], settings.scaling)?;
    let (model, spec) = settings.model(
        loaded.task,
        loaded.data.cols,
        loaded.classes(),
        data.target_scale,
        loaded.image_shape.as_ref(),
    )?;
    let config = RangeTestConfig {
        start_lr: args.start_lr.unwrap_or(defaults.start_lr),
        end_lr: args.end_lr.unwrap_or(defaults.end_lr),
        num_steps: args.num_steps.unwrap_or(defaults.num_steps),
        batch_size: settings.batch.size(train_rows.len()),
        seed: settings.seed,
        ..defaults
    };
    config.validate()?;
    let say = Say::new(quiet, args.json);
    say.line(format!("data: {} ({} training rows); task {}", loaded.origin, train_rows.len(), loaded.task.name()));
    say.line(format!(
        "model: {}; optimizer {}; batch {}; {} mini-batches, lr {:e} to {:e}",
        spec.describe(),
        settings.optimizer.label,
        batch_label(settings.batch),
        config.num_steps,
        config.start_lr,
        config.end_lr
    ));
    crate::engine::check_memory(model.as_ref(), &settings, train_rows.len())?;
    let params = model.init_params(settings.seed);
    let started = std::time::Instant::now();
    let bar = crate::progress::step_bar(config.num_steps as u64, crate::progress::bars_enabled(quiet));
    let mut on_step = |step: usize, lr: f64, smoothed: f64| {
        bar.set_position(step as u64);
        bar.set_message(format!("lr {lr:.1e} smoothed loss {smoothed:.4}"));
    };
    let result = range_test_with_progress(
        model.as_ref(),
        &params,
        data.train(),
        settings.optimizer.build()?,
        &config,
        &mut on_step,
    );
    bar.finish_and_clear();
    let result = result.map_err(range_test_error)?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let value = json!({
            "task": loaded.task.name(),
            "model": spec.describe(),
            "optimizer": settings.optimizer.label,
            "batch_size": config.batch_size,
            "start_lr": config.start_lr,
            "end_lr": config.end_lr,
            "num_steps": config.num_steps,
            "steps_run": result.lrs.len(),
            "stopped_early": result.stopped_early,
            "suggestion": result.suggestion,
            "rule": result.rule,
            "min_loss_lr": result.min_loss_lr,
            "min_loss_suggestion": result.min_loss_suggestion,
            "seconds": seconds,
            "lrs": result.lrs,
            "losses": result.losses,
            "smoothed": result.smoothed,
        });
        println!("{value}");
    }
    say.line(format!(
        "ran {} of {} mini-batches in {seconds:.2} s{}",
        result.lrs.len(),
        config.num_steps,
        if result.stopped_early { " (stopped early: the loss blew up)" } else { "" }
    ));
    say.line(format!("suggested learning rate: {:.3e} ({})", result.suggestion, result.rule));
    say.line(format!(
        "smoothed loss lowest at lr {:.3e}; a tenth of that: {:.3e}",
        result.min_loss_lr, result.min_loss_suggestion
    ));
    if let Some(path) = &args.plot {
        let title = format!("learning-rate range test: {} on {}", spec.describe(), loaded.origin.replace('`', ""));
        plot::draw_panels(path, &title, &[panel(&result, loaded.task)], PLOT_SIZE).map_err(CliError::usage)?;
        say.line(format!("plot: {}", path.display()));
    }
    Ok(())
}

/// Raw and smoothed loss against the learning rate (log scale), with the suggestion marked by a
/// vertical line.
fn panel(result: &RangeTest, task: Task) -> plot::Panel {
    let finite = result.losses.iter().chain(&result.smoothed).copied().filter(|v| v.is_finite());
    let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let mut series = vec![
        plot::Series { label: "loss".into(), x: result.lrs.clone(), y: result.losses.clone() },
        plot::Series { label: "smoothed loss".into(), x: result.lrs.clone(), y: result.smoothed.clone() },
    ];
    if low.is_finite() && high.is_finite() {
        series.push(plot::Series {
            label: format!("suggestion {:.2e}", result.suggestion),
            x: vec![result.suggestion, result.suggestion],
            y: vec![low, high],
        });
    }
    plot::Panel {
        title: format!("{} loss per mini-batch", task.name()),
        x_label: "learning rate".into(),
        y_label: "loss".into(),
        series,
        log_x: true,
        log_y: false,
    }
}
