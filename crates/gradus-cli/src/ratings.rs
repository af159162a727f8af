//! Matrix factorization of ratings (`--model mf`, `--task ratings`, the `movielens_small` data
//! set): loading (user, item, rating) triples, the options that apply, training one epoch at a
//! time (Funk SVD's per-rating SGD, or mini-batches with another optimizer), and evaluating or
//! predicting with a saved model on a ratings file.

use std::fmt::Write as _;
use std::path::Path;

use gradus::data::{builtin, read_ratings, Ratings, RatingsOptions};
use gradus::mf::{MatrixFactorization, MfConfig, MfModel, MfPass};
use gradus::model::{Model, Rows};
use gradus::optim::{Sgd, SgdConfig};
use gradus::saved::{ModelSpec, SavedModel, SavedModelError};
use gradus::train::{BatchMode, TrainConfig, Trainer};
use gradus::train::{CrossValidation, EpochRecord, Metrics, Observer, Task, Termination};
use serde_json::json;

use crate::args::{DataArgs, EvaluateArgs, PredictArgs, TrainArgs, TrainOptions};
use crate::commands::train::{curve_panels, Say};
use crate::error::CliError;
use crate::output::{metrics_table, write_file};
use crate::plot;
use crate::prepare::{fold_rows, is_libsvm, split_rows, DEFAULT_DATASET};
use crate::progress::{bar, bars_enabled, RunObserver};
use crate::setup::{optimizer_choice, parse_batch, OptimizerChoice, DEFAULT_EPOCHS, DEFAULT_VAL_FRACTION};

/// Default latent factors (scikit-surprise's `SVD`).
pub const DEFAULT_FACTORS: usize = 100;
/// Default learning rate of matrix factorization (surprise's `lr_all`).
pub const DEFAULT_LR: f64 = 0.005;
/// Default L2 regularization of matrix factorization (surprise's `reg_all`).
pub const DEFAULT_REG: f64 = 0.02;
/// Default mini-batch size with an optimizer other than plain SGD.
pub const DEFAULT_BATCH: usize = 32;

/// Whether the options ask for ratings: `--task ratings`, `--model mf`, or a built-in ratings set.
pub fn wanted(data: &DataArgs, opts: &TrainOptions) -> Result<bool, CliError> {
    if data.task.as_deref() == Some("ratings") || opts.model.as_deref() == Some("mf") {
        return Ok(true);
    }
    if data.data.is_none() {
        let name = data.dataset.as_deref().unwrap_or(DEFAULT_DATASET);
        return Ok(builtin::info(name)?.task == builtin::Task::Ratings);
    }
    Ok(false)
}

/// Ratings with where they came from.
pub struct LoadedRatings {
    /// The triples (dense ids, with the raw id maps).
    pub ratings: Ratings,
    /// For messages: "built-in data set `movielens_small`" or "`file.csv`".
    pub origin: String,
}

/// Loads the ratings named by `data`.
pub fn load(data: &DataArgs) -> Result<LoadedRatings, CliError> {
    if data.target.is_some() {
        return Err(CliError::usage(
            "--target does not apply to ratings: the first three columns are user, item and rating",
        ));
    }
    if let Some(task) = data.task.as_deref().filter(|t| *t != "ratings") {
        return Err(CliError::usage(format!("--task {task} does not fit --model mf: expected --task ratings")));
    }
    let (ratings, origin) = match &data.data {
        Some(path) => (read_ratings(path, &RatingsOptions::default())?, format!("`{}`", path.display())),
        None => {
            let name = data.dataset.as_deref().unwrap_or(DEFAULT_DATASET);
            if builtin::info(name)?.task != builtin::Task::Ratings {
                return Err(CliError::usage(format!(
                    "--model mf needs ratings: built-in data set `{name}` is a feature table"
                ))
                .hint("use --dataset movielens_small or a ratings file (user, item, rating)"));
            }
            (builtin::load(name)?.into_ratings()?, format!("built-in data set `{name}`"))
        }
    };
    if ratings.is_empty() {
        return Err(CliError::usage(format!("{origin}: no ratings")));
    }
    Ok(LoadedRatings { ratings, origin })
}

/// A validated matrix-factorization run.
#[derive(Debug, Clone)]
pub struct MfSettings {
    /// The model's hyperparameters (factors, epochs, lr, reg, seed).
    pub config: MfConfig,
    /// `None`: Funk SVD's per-rating SGD; else the optimizer of mini-batch training.
    pub optimizer: Option<OptimizerChoice>,
    /// Ratings per mini-batch (`None` with per-rating SGD; `usize::MAX` for `full`).
    pub batch: Option<usize>,
}

impl MfSettings {
    /// `sgd (Funk SVD, lr 0.005, reg 0.02)` and the like.
    pub fn describe(&self) -> String {
        match &self.optimizer {
            None => format!(
                "sgd per rating ({}, lr {}, l2 {})",
                if self.config.parallel { "stratified order, DSGD" } else { "Funk SVD" },
                self.config.lr_all,
                self.config.reg_all
            ),
            Some(o) => format!("{}, l2 {}", o.describe(), self.config.reg_all),
        }
    }

    fn batch_label(&self) -> String {
        match self.batch {
            None => "1".into(),
            Some(usize::MAX) => "full".into(),
            Some(n) => n.to_string(),
        }
    }
}

/// Validates the options of a matrix-factorization run; flags that do not apply are errors.
pub fn resolve(opts: &TrainOptions) -> Result<MfSettings, CliError> {
    if let Some(model) = opts.model.as_deref().filter(|m| *m != "mf") {
        return Err(CliError::usage(format!("--model {model} does not fit a ratings task: expected mf")));
    }
    let not_applying = [
        ("--hidden", opts.hidden.is_some()),
        ("--activation", opts.activation.is_some()),
        ("--l1", opts.l1.is_some()),
        ("--schedule", opts.schedule.is_some()),
        ("--gamma", opts.gamma.is_some()),
        ("--step-size", opts.step_size.is_some()),
        ("--milestones", opts.milestones.is_some()),
        ("--max-lr", opts.max_lr.is_some()),
        ("--eta-min", opts.eta_min.is_some()),
        ("--plateau-patience", opts.plateau_patience.is_some()),
        ("--warmup", opts.warmup.is_some()),
        ("--clip-norm", opts.clip_norm.is_some()),
        ("--clip-value", opts.clip_value.is_some()),
        ("--early-stop", opts.early_stop.is_some()),
        ("--tol", opts.tol.is_some()),
        ("--no-standardize", opts.no_standardize),
    ];
    if let Some((flag, _)) = not_applying.iter().find(|(_, given)| *given) {
        return Err(CliError::usage(format!("{flag} does not apply to matrix factorization (--model mf)")));
    }
    let epochs = opts.epochs.unwrap_or(DEFAULT_EPOCHS);
    if epochs == 0 {
        return Err(CliError::flag("--epochs", 0, "at least 1"));
    }
    let lr = opts.lr.unwrap_or(DEFAULT_LR);
    if !(lr.is_finite() && lr > 0.0) {
        return Err(CliError::flag("--lr", lr, "a finite number > 0"));
    }
    let config = MfConfig {
        n_factors: opts.factors.unwrap_or(DEFAULT_FACTORS),
        n_epochs: epochs,
        lr_all: lr,
        reg_all: opts.l2.unwrap_or(DEFAULT_REG),
        seed: opts.seed.unwrap_or(0),
        parallel: match opts.mf_order.as_deref() {
            None | Some("random") => false,
            Some("stratified") => true,
            // Flags are checked by the parser; a configuration file's value arrives here unchecked.
            Some(other) => return Err(CliError::flag("--mf-order", other, "random or stratified")),
        },
        ..MfConfig::default()
    };
    config.validate().map_err(|mut e| {
        e.option = match e.option.as_str() {
            "n_factors" => "factors".into(),
            "reg_all" => "l2".into(),
            "lr_all" => "lr".into(),
            other => other.into(),
        };
        CliError::from(e)
    })?;
    let label = opts.optimizer.as_deref().unwrap_or("sgd");
    let batch = opts.batch_size.as_deref().map(parse_batch).transpose()?;
    let plain_sgd =
        label == "sgd" && opts.momentum.is_none() && opts.dampening.is_none() && opts.weight_decay.is_none();
    let per_rating = plain_sgd && matches!(batch, None | Some(gradus::train::BatchMode::Stochastic));
    if per_rating {
        return Ok(MfSettings { config, optimizer: None, batch: None });
    }
    if opts.mf_order.is_some() {
        return Err(CliError::usage(
            "--mf-order applies to per-rating sgd (--optimizer sgd with no momentum, batch size 1), not mini-batches",
        ));
    }
    if label == "lbfgs" {
        return Err(CliError::usage(
            "--optimizer lbfgs does not train matrix factorization: use sgd or a first-order optimizer",
        ));
    }
    let with_lr = TrainOptions { lr: Some(lr), ..opts.clone() };
    let optimizer = optimizer_choice(label, &with_lr)?;
    let batch = match batch {
        None => DEFAULT_BATCH,
        Some(gradus::train::BatchMode::Full) => usize::MAX,
        Some(b) => b.size(1),
    };
    Ok(MfSettings { config, optimizer: Some(optimizer), batch: Some(batch) })
}

/// A trained model and its per-epoch history.
pub struct MfRun {
    /// The model.
    pub model: MatrixFactorization,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

fn as_mf<'a>(r: &'a Ratings) -> Result<gradus::mf::Ratings<'a>, CliError> {
    gradus::mf::Ratings::new(r.n_users(), r.n_items(), &r.users, &r.items, &r.ratings)
        .map_err(|e| CliError::usage(format!("`{}`: {e}", r.source)))
}

/// Trains on `train` one epoch at a time (epoch `e` shuffles with seed `seed + e`), recording
/// training and validation metrics after each.
pub fn fit(
    train: &Ratings,
    validation: Option<&Ratings>,
    settings: &MfSettings,
    observer: &mut dyn Observer,
) -> Result<MfRun, CliError> {
    let start = std::time::Instant::now();
    let r = as_mf(train)?;
    let usage = |e: gradus::mf::MfError| match e {
        // The size of the model comes from --factors (and the data's users and items).
        gradus::mf::MfError::Memory(e) => {
            CliError::usage(format!("--factors {}: {e}", settings.config.n_factors)).hint("use fewer --factors")
        }
        e => CliError::usage(e.to_string()),
    };
    let pass = match (&settings.optimizer, settings.config.parallel) {
        (Some(_), _) => MfPass::Engine,
        (None, true) => MfPass::Stratified,
        (None, false) => MfPass::Sequential,
    };
    let model = MfModel::new(MatrixFactorization::new(&settings.config, &r).map_err(usage)?, pass);
    // The same draw as the factorization's own initial factors.
    let mut params = model.init_params(settings.config.seed);
    let lr = settings.config.lr_all;
    let optimizer = match &settings.optimizer {
        Some(choice) => choice.build()?,
        // The per-rating pass steps with the factorization's own rate: the engine's plain SGD
        // names it (messages, history) and steps nothing.
        None => Box::new(Sgd::new(SgdConfig { lr, ..SgdConfig::default() })?),
    };
    let batch = match settings.batch {
        None => BatchMode::Stochastic,
        Some(usize::MAX) => BatchMode::Full,
        Some(n) => BatchMode::MiniBatch(n),
    };
    // Training metrics are the running mean of the loss over the epoch (no second pass over the
    // training ratings); validation ratings are measured after each epoch.
    let config = TrainConfig {
        epochs: settings.config.n_epochs,
        batch,
        seed: settings.config.seed,
        evaluate_train: false,
        ..TrainConfig::default()
    };
    let pairs = |ratings: &Ratings| -> (Vec<u32>, Vec<usize>) {
        let ids = ratings.users.iter().zip(&ratings.items).flat_map(|(&u, &i)| [u, i]).collect();
        (ids, (0..=ratings.len()).map(|k| 2 * k).collect())
    };
    let (train_ids, train_offsets) = pairs(train);
    let train_rows = Rows::with_ids(&train_ids, &train_offsets, &train.ratings);
    let validation_pairs = validation.map(pairs);
    let validation_rows =
        validation.zip(validation_pairs.as_ref()).map(|(v, (ids, offsets))| Rows::with_ids(ids, offsets, &v.ratings));
    let mut trainer = Trainer::new(config, optimizer)?;
    let report = trainer.fit(&model, &mut params, train_rows, validation_rows, &mut [observer])?;
    Ok(MfRun { model: model.with_params(&params), history: report.history, seconds: start.elapsed().as_secs_f64() })
}

fn saved(run: MfRun, loaded: &LoadedRatings) -> SavedModel {
    SavedModel {
        task: Task::Ratings,
        model: ModelSpec::MatrixFactorization {
            mf: Box::new(run.model),
            user_ids: loaded.ratings.raw_user_ids.clone(),
            item_ids: loaded.ratings.raw_item_ids.clone(),
        },
        params: Vec::new(),
        standardizer: None,
        target_scale: None,
        label_map: None,
        feature_names: vec!["user".into(), "item".into()],
        target_name: "rating".into(),
        buffers: Vec::new(),
        class_names: None,
        text: None,
    }
}

fn observer<'a>(progress: &'a indicatif::ProgressBar, json: bool, fold: Option<usize>, quiet: bool) -> RunObserver<'a> {
    let mut tags = serde_json::Map::new();
    if let Some(f) = fold {
        tags.insert("fold".into(), json!(f));
    }
    RunObserver { bar: progress, json, tags, warnings: !quiet, metric: "rmse" }
}

/// `gradus train` on ratings (the caller has checked the output paths).
pub fn train(args: &TrainArgs, quiet: bool) -> Result<(), CliError> {
    if args.checkpoint_every.is_some() || args.checkpoint.is_some() || args.resume.is_some() {
        return Err(CliError::usage("matrix factorization does not write or resume checkpoints"));
    }
    if args.folds.is_some() && args.options.val_fraction.is_some_and(|f| f != 0.0) {
        return Err(CliError::usage(
            "--val-fraction and --folds: with --folds each fold's held-out ratings are its validation; give one or the other",
        ));
    }
    let settings = resolve(&args.options)?;
    let loaded = load(&args.data)?;
    let r = &loaded.ratings;
    let say = Say::new(quiet, args.json);
    say.line(format!(
        "data: {} ({} ratings by {} users of {} items)",
        loaded.origin,
        r.len(),
        r.n_users(),
        r.n_items()
    ));
    say.line("task: ratings (matrix factorization)");
    say.line(format!(
        "model: matrix factorization, {} factors\noptimizer: {}, batch {}, {} epochs, seed {}",
        settings.config.n_factors,
        settings.describe(),
        settings.batch_label(),
        settings.config.n_epochs,
        settings.config.seed
    ));
    let seed = settings.config.seed;
    let splits = match args.folds {
        Some(k) => fold_rows(r.len(), None, k, seed)?,
        None => {
            let fraction = args.options.val_fraction.unwrap_or(DEFAULT_VAL_FRACTION);
            vec![split_rows(r.len(), None, fraction, seed, &loaded.origin)?]
        }
    };
    let k = splits.len();
    let progress = bar((settings.config.n_epochs as u64).saturating_mul(k as u64), bars_enabled(quiet));
    let mut runs = Vec::new();
    for (i, (train_rows, val_rows)) in splits.iter().enumerate() {
        let train_part = r.select(train_rows)?;
        let val_part = r.select(val_rows)?;
        if args.folds.is_some() {
            progress.set_prefix(format!("fold {}/{k} ", i + 1));
        }
        let mut obs = observer(&progress, args.json, args.folds.map(|_| i + 1), quiet);
        let run = fit(&train_part, (!val_part.is_empty()).then_some(&val_part), &settings, &mut obs);
        let run = run.map_err(|e| match args.folds {
            Some(_) => CliError { message: format!("fold {}: {}", i + 1, e.message), ..e },
            None => e,
        });
        let run = match run {
            Ok(run) => run,
            Err(e) => {
                progress.finish_and_clear();
                return Err(e);
            }
        };
        runs.push((train_rows.len(), val_rows.len(), run));
    }
    progress.finish_and_clear();
    let seconds: f64 = runs.iter().map(|(_, _, r)| r.seconds).sum();
    let last = |run: &MfRun| {
        run.history.last().cloned().unwrap_or_else(|| EpochRecord {
            epoch: 0,
            train: Metrics::new(),
            validation: Metrics::new(),
            lr: 0.0,
            grad_norm: 0.0,
            seconds: 0.0,
        })
    };
    let (train_metrics, validation_metrics, folds_json) = if args.folds.is_some() {
        let records: Vec<EpochRecord> = runs.iter().map(|(_, _, run)| last(run)).collect();
        say.line(format!("trained {k} folds in {seconds:.2} s"));
        let train = CrossValidation::from_folds(records.iter().map(|r| r.train.clone()).collect()).mean;
        let held_out = CrossValidation::from_folds(records.iter().map(|r| r.validation.clone()).collect()).mean;
        let mut rows: Vec<(String, &Metrics)> =
            records.iter().enumerate().map(|(i, r)| (format!("fold {}", i + 1), &r.validation)).collect();
        rows.push(("mean train".into(), &train));
        rows.push(("mean held-out".into(), &held_out));
        let labelled: Vec<(&str, &Metrics)> = rows.iter().map(|(l, m)| (l.as_str(), *m)).collect();
        say.line(metrics_table(&labelled));
        let folds: Vec<serde_json::Value> = runs
            .iter()
            .zip(&records)
            .enumerate()
            .map(|(i, ((t, v, run), rec))| {
                json!({"fold": i + 1, "train_rows": t, "validation_rows": v, "epochs": run.history.len(),
                       "seconds": run.seconds, "train": rec.train, "validation": rec.validation})
            })
            .collect();
        (train, held_out, folds)
    } else {
        let (t, v, run) = &runs[0];
        let rec = last(run);
        say.line(format!(
            "split: {t} training ratings, {v} validation ratings (seed {seed})\ntrained {} epochs in {:.2} s (all epochs ran)",
            run.history.len(),
            run.seconds
        ));
        say.line(metrics_table(&[("train", &rec.train), ("validation", &rec.validation)]));
        (rec.train, rec.validation, Vec::new())
    };
    if let Some(path) = &args.plot {
        let histories: Vec<(String, &[EpochRecord])> = runs
            .iter()
            .enumerate()
            .map(|(i, (_, _, run))| {
                (if args.folds.is_some() { format!("fold {}", i + 1) } else { String::new() }, run.history.as_slice())
            })
            .collect();
        let title = format!("matrix factorization on {}", loaded.origin.replace('`', ""));
        plot::draw_panels(path, &title, &curve_panels(Task::Ratings, &histories), (1200, 500))
            .map_err(CliError::usage)?;
        say.line(format!("plot: {}", path.display()));
    }
    if let Some(path) = &args.metrics_json {
        let history = if args.folds.is_some() { Vec::new() } else { runs[0].2.history.clone() };
        let value = json!({
            "task": "ratings",
            "model": "mf",
            "model_description": format!("matrix factorization, {} factors", settings.config.n_factors),
            "optimizer": settings.optimizer.as_ref().map_or("sgd", |o| o.label.as_str()),
            "optimizer_options": settings.optimizer.as_ref().map_or(json!({"lr": settings.config.lr_all}), |o| o.options.clone()),
            "l2": settings.config.reg_all,
            "factors": settings.config.n_factors,
            "batch_size": settings.batch_label(),
            "schedule": "constant",
            "seed": seed,
            "data": loaded.origin.replace('`', ""),
            "epochs": settings.config.n_epochs,
            "best_epoch": settings.config.n_epochs,
            "termination": Termination::MaxEpochs,
            "seconds": seconds,
            "train": train_metrics,
            "validation": validation_metrics,
            "folds": folds_json,
            "history": history,
        });
        write_file("--metrics-json", path, format!("{value:#}\n").as_bytes())?;
        say.line(format!("metrics: {}", path.display()));
    }
    if let Some(path) = &args.save {
        let run = if args.folds.is_some() {
            // The folds estimate how well the model generalizes; the saved model trains on every rating.
            let final_bar = bar(settings.config.n_epochs as u64, bars_enabled(quiet));
            let mut obs = observer(&final_bar, false, None, quiet);
            let run = fit(r, None, &settings, &mut obs);
            final_bar.finish_and_clear();
            run?
        } else {
            runs.pop().map(|(_, _, run)| run).expect("one run")
        };
        saved(run, &loaded).save(path)?;
        say.line(format!("saved model: {}", path.display()));
    }
    Ok(())
}

/// Raw (user, item) ids of each rating of `r`.
fn raw_ids(r: &Ratings) -> (Vec<String>, Vec<String>) {
    let users = r.users.iter().map(|&u| r.raw_user_ids[u as usize].clone()).collect();
    let items = r.items.iter().map(|&i| r.raw_item_ids[i as usize].clone()).collect();
    (users, items)
}

/// Reads the ratings of `data` for the matrix-factorization `model` read from `model_path`: a
/// file of features (LIBSVM, or a CSV whose ids and ratings cannot be this model's) is an error
/// naming both files and what the model expects.
fn read_for_model(
    model: &SavedModel,
    model_path: &Path,
    data: &Path,
) -> Result<(Ratings, Vec<String>, Vec<String>), CliError> {
    let expects = || {
        format!(
            "the model `{}` is a {}: it predicts from (user, item) ids and expects a ratings file (user, item, rating)",
            model_path.display(),
            model.model.describe()
        )
    };
    if is_libsvm(data) {
        return Err(CliError::usage(format!("`{}` is a LIBSVM file of features: {}", data.display(), expects())));
    }
    let r = read_ratings(data, &RatingsOptions::default()).map_err(|e| CliError::from(e).hint(expects()))?;
    let (users, items) = raw_ids(&r);
    let ratings = Some(r.ratings.as_slice());
    model.check_ratings_data(&users, &items, ratings, &format!("`{}`", data.display())).map_err(|e| match e {
        SavedModelError::WrongData { origin, problem } => {
            CliError::usage(format!("{origin} does not fit the model `{}`: {problem}", model_path.display()))
        }
        other => CliError::from(other),
    })?;
    Ok((r, users, items))
}

/// `gradus evaluate` with a matrix-factorization model on a ratings file.
pub fn evaluate(model: &SavedModel, args: &EvaluateArgs, quiet: bool) -> Result<(), CliError> {
    let Some(path) = args.data.as_deref().filter(|_| args.labels.is_none()) else {
        return Err(CliError::usage("a matrix-factorization model is evaluated on a ratings file: give --data FILE"));
    };
    let (r, users, items) = read_for_model(model, &args.model, path)?;
    let predicted = model.predict_ratings(&users, &items)?;
    let mut metrics = Metrics::new();
    let measure = |e: gradus::train::metrics::MetricsError| CliError::usage(format!("`{}`: {e}", path.display()));
    metrics.insert("rmse".into(), gradus::mf::rmse(&predicted, &r.ratings).map_err(measure)?);
    metrics.insert("mae".into(), gradus::mf::mae(&predicted, &r.ratings).map_err(measure)?);
    let origin = path.display().to_string();
    if args.json {
        println!("{}", json!({"data": origin, "rows": r.len(), "task": "ratings", "metrics": metrics}));
    } else if !quiet {
        println!("model: {}", model.model.describe());
        println!("data: `{origin}` ({} ratings)", r.len());
        print!("{}", metrics_table(&[("metrics", &metrics)]));
    }
    Ok(())
}

/// `gradus predict` with a matrix-factorization model: `user,item,prediction` per rating row.
pub fn predict(model: &SavedModel, args: &PredictArgs, quiet: bool) -> Result<(), CliError> {
    // The caller (`commands::evaluate::predict`) has checked the files.
    let Some(path) = args.data.as_deref() else {
        return Err(CliError::usage(
            "a matrix-factorization model predicts ratings: give --data FILE of user,item rows",
        ));
    };
    let (r, users, items) = read_for_model(model, &args.model, path)?;
    let predicted = model.predict_ratings(&users, &items)?;
    let mut text = String::from("user,item,prediction\n");
    for ((u, i), p) in users.iter().zip(&items).zip(&predicted) {
        let _ = writeln!(text, "{u},{i},{p}");
    }
    match &args.out {
        Some(path) => {
            write_file("--out", path, text.as_bytes())?;
            if !quiet {
                eprintln!("wrote {} predictions to {}", r.len(), path.display());
            }
        }
        None => print!("{text}"),
    }
    Ok(())
}
