//! Text classification (`--text COLUMNS`, `--model text_classifier`, the `reviews` data set):
//! the text columns of a CSV file, a vocabulary built from the training rows, and fastText's
//! model (the mean of the embeddings of a text's words and hashed n-grams, then one linear
//! layer) trained by the one engine as every other network, on rows of token indices. The
//! vocabulary and its options are saved with the model, so that `predict` and `evaluate`
//! tokenize new text exactly as training did.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gradus::data::text::{read_text_csv, TextOptions, TextTable, Vocabulary};
use gradus::data::{builtin, quote_cell, LabelMap};
use gradus::loss::Loss;
use gradus::model::{Model, Rows};
use gradus::nn::{BagMode, LayerSpec, Network, NetworkSpec, Shape};
use gradus::saved::{ModelSpec, SavedModel, TextInput};
use gradus::train::metrics::argmax_rows;
use gradus::train::{Checkpoint, CheckpointConfig, Task};

use crate::args::{EvaluateArgs, PredictArgs, TrainArgs, TrainOptions};
use crate::commands::train::{checked_fingerprint, plot_history, termination_note, Say};
use crate::error::CliError;
use crate::output::{label, metrics_table, write_file};
use crate::prepare::{split_rows, Prepared, TokenRows, DEFAULT_DATASET, MAX_INFERRED_CLASSES};
use crate::progress::{bar, bars_enabled, RunObserver};
use crate::setup::{self, batch_label, DEFAULT_VAL_FRACTION};
use crate::{engine, fingerprint};

/// Default size of each token's embedding (fastText's default is 100). On `reviews` (title +
/// review text, rows with a review, 80/20 stratified split, seed 0; training seeds 0, 1, 2), 32
/// held out 92.03, 91.83 and 91.79 % against 64's 92.05, 91.79 and 91.74 %, in three quarters of
/// the time: a sparse step moves every touched row's parameters and two moments through memory.
pub const DEFAULT_EMBEDDING_DIM: usize = 32;
/// Default longest n-gram: words and bigrams (fastText's `-wordNgrams 2`, which its authors
/// recommend for sentiment).
pub const DEFAULT_NGRAMS: usize = 2;
/// Default n-gram hash buckets, when n-grams are hashed (`--ngram-min-count 0`). fastText uses
/// 2,000,000; with the optimizer state gradus keeps, every bucket costs `3 × dim` floats, so
/// 100,000 is the memory-sensible size for data sets of tens of thousands of texts.
pub const DEFAULT_BUCKETS: usize = 100_000;
/// Default minimum count of an n-gram with an embedding of its own (0: hashed into buckets).
/// The reviews' training rows hold 193,000 distinct bigrams, 44,000 of them seen at least 3
/// times: those rows cost less than 100,000 buckets and share nothing by collision, and the
/// rarer bigrams, which cannot generalize, are left out. On `reviews` (as above, dimension 64)
/// bigrams seen 3 times held out 92.05 % in 1.8 s, seen twice 92.14 % in 2.0 s, hashed into
/// 100,000 buckets 91.63 % in 2.4 s (91.94 % with 1,000,000 buckets, a table ten times larger).
pub const DEFAULT_NGRAM_MIN_COUNT: usize = 3;
/// Default epochs (fastText's default is 5; the smaller steps of the default rate need one more).
pub const DEFAULT_EPOCHS: usize = 6;
/// Default optimizer of a text classifier: Adam's update for the rows a batch touched only
/// (PyTorch's `SparseAdam`), so that a step costs in proportion to the batch's words rather than
/// to the table (4.5 s for 6 epochs on `reviews` against 12 s for 5 with Adam), at the same accuracy.
pub const DEFAULT_OPTIMIZER: &str = "sparse_adam";
/// Default learning rate of (sparse) Adam for a text classifier: at dimension 32, 0.002 over 6
/// epochs held out 92.03 % on `reviews` (as above), 0.0015 91.79 %.
pub const DEFAULT_LR: f64 = 0.002;
/// Default mini-batch size.
pub const DEFAULT_BATCH: usize = 64;

/// Whether `gradus train` asks for a text classifier: `--text`, `--model text_classifier`, or a
/// built-in data set of text.
pub fn wanted(args: &TrainArgs) -> Result<bool, CliError> {
    if args.text.text.is_some() || args.options.model.as_deref() == Some("text_classifier") {
        return Ok(true);
    }
    if args.data.data.is_none() {
        let name = args.data.dataset.as_deref().unwrap_or(DEFAULT_DATASET);
        let info = builtin::info(name)?;
        if info.text_columns.is_some() {
            if let Some(model) = args.options.model.as_deref() {
                return Err(CliError::usage(format!(
                    "--model {model}: built-in data set `{name}` holds text: expected --model text_classifier"
                )));
            }
            return Ok(true);
        }
    }
    if let Some(flag) = args.text.first_given() {
        return Err(CliError::usage(format!("{flag} applies to text classifiers (--text COLUMNS)")));
    }
    Ok(false)
}

/// Text rows with their task decided.
struct LoadedText {
    table: TextTable,
    origin: String,
    task: Task,
    task_note: String,
    label_map: LabelMap,
    y: Vec<f32>,
    target_name: String,
}

fn load(args: &TrainArgs) -> Result<LoadedText, CliError> {
    let data = &args.data;
    if data.labels.is_some() {
        return Err(CliError::usage("--labels does not apply to text: give a CSV file with --data"));
    }
    let (path, origin, default_columns, known) = match &data.data {
        Some(path) => (path.clone(), format!("`{}`", path.display()), None, None),
        None => {
            let name = data.dataset.as_deref().unwrap_or(DEFAULT_DATASET);
            let (info, path, columns) = builtin_text(name, "--text", ": give a CSV file with --data")?;
            let known = (data.target.is_none() || data.target.as_deref() == Some(info.target)).then_some((
                info.target,
                match info.task {
                    builtin::Task::Binary => Task::Binary,
                    _ => Task::Multiclass,
                },
            ));
            let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
            (path, format!("built-in data set `{name}`"), Some(columns), known)
        }
    };
    let columns = match (&args.text.text, default_columns) {
        (Some(columns), _) => columns.clone(),
        (None, Some(columns)) => columns,
        (None, None) => {
            return Err(CliError::usage(format!(
                "--model text_classifier: which columns of {origin} hold the text? give --text COLUMN[,COLUMN...]"
            )))
        }
    };
    if let Some(empty) = columns.iter().find(|c| c.trim().is_empty()) {
        return Err(CliError::flag("--text", empty, "column names, e.g. `--text title,review_text`"));
    }
    let target = data.target.clone().or_else(|| known.map(|(t, _)| t.to_string()));
    let target_name = match target {
        Some(t) => t,
        None => last_column(&path)?,
    };
    if columns.contains(&target_name) {
        return Err(CliError::usage(format!(
            "--text: column `{}` is the target: a text column cannot also be what is predicted",
            quote_cell(&target_name)
        )));
    }
    let table = read_text_csv(&path, &columns, Some(&target_name))?;
    let explicit = match data.task.as_deref() {
        None => None,
        Some("binary") => Some(Task::Binary),
        Some("multiclass") => Some(Task::Multiclass),
        Some(other) => {
            return Err(CliError::flag("--task", other, "binary or multiclass: a text classifier predicts classes"))
        }
    };
    let map = LabelMap::fit(&table.target, &table.source)?;
    let integral = table.target.iter().all(|v| v.fract() == 0.0);
    let (task, task_note) = match (explicit, known) {
        (Some(task), _) => (task, "given by --task".to_string()),
        (None, Some((_, task))) => (task, "the data set's task".to_string()),
        (None, None) => {
            if !integral || map.n_classes() > MAX_INFERRED_CLASSES {
                return Err(CliError::usage(format!(
                    "target `{}` of {origin} holds {} distinct values{}: a text classifier needs classes \
                     (at most {MAX_INFERRED_CLASSES} distinct whole numbers, or --task multiclass)",
                    quote_cell(&target_name),
                    map.n_classes(),
                    if integral { "" } else { ", not all whole numbers" }
                )));
            }
            let task = if map.n_classes() <= 2 { Task::Binary } else { Task::Multiclass };
            let note = format!(
                "inferred: target `{}` holds {} distinct integer values; --task overrides",
                quote_cell(&target_name),
                map.n_classes()
            );
            (task, note)
        }
    };
    if task == Task::Binary && map.n_classes() != 2 {
        return Err(CliError::usage(format!(
            "--task binary: target `{}` of {origin} holds {} distinct values, expected 2",
            quote_cell(&target_name),
            map.n_classes()
        ))
        .hint("use --task multiclass"));
    }
    let y = map.encode_all(&table.target, &table.source)?.into_iter().map(|c| c as f32).collect();
    Ok(LoadedText { table, origin, task, task_note, label_map: map, y, target_name })
}

/// The last column of a CSV file's header (the target by default, as for feature tables).
fn last_column(path: &Path) -> Result<String, CliError> {
    match read_text_csv(path, &[], Some("\u{0}no such column\u{0}")) {
        Err(gradus::data::DataError::UnknownTarget { available, .. }) => available
            .last()
            .cloned()
            .ok_or_else(|| CliError::usage(format!("`{}`: the header has no columns", path.display()))),
        Err(other) => Err(other.into()),
        Ok(_) => Err(CliError::usage(format!("`{}`: cannot find the target column: give --target", path.display()))),
    }
}

/// The built-in data set `name`, which must hold text: its description, its file (which must be
/// there) and its text columns. `asked` names what wanted text, `advice` follows the error.
pub fn builtin_text(
    name: &str,
    asked: &str,
    advice: &str,
) -> Result<(&'static builtin::BuiltinInfo, PathBuf, &'static [&'static str]), CliError> {
    let info = builtin::info(name)?;
    let Some(columns) = info.text_columns else {
        return Err(CliError::usage(format!("{asked}: built-in data set `{name}` holds numbers, not text{advice}"))
            .hint("`gradus datasets` lists the data sets; `reviews` holds text"));
    };
    let path = builtin::data_dir().join(info.file);
    if !path.exists() {
        return Err(gradus::data::DataError::BuiltinMissing { name: name.to_string(), path }.into());
    }
    Ok((info, path, columns))
}

/// The tokenization options of the flags.
fn text_options(args: &TrainArgs) -> Result<TextOptions, CliError> {
    let options = TextOptions {
        lowercase: true,
        punctuation: args.text.keep_punctuation,
        ngrams: args.text.ngrams.unwrap_or(DEFAULT_NGRAMS),
        buckets: args.text.buckets.unwrap_or(DEFAULT_BUCKETS),
        // Buckets given alone ask for hashed n-grams; with a vocabulary of n-grams they mean nothing.
        ngram_min_count: match (args.text.ngram_min_count, args.text.buckets) {
            (Some(0), _) | (None, Some(_)) => None,
            (Some(n), Some(_)) => {
                return Err(CliError::usage(format!(
                    "--buckets {} with --ngram-min-count {n}: buckets hold hashed n-grams, expected \
                     --ngram-min-count 0 (hash every n-gram) or no --buckets",
                    args.text.buckets.unwrap_or_default()
                )))
            }
            (Some(n), None) => Some(n),
            (None, None) => Some(DEFAULT_NGRAM_MIN_COUNT),
        },
        min_count: args.text.min_count.unwrap_or(1),
        max_size: args.text.max_vocab,
    };
    options.validate()?;
    Ok(options)
}

/// The training options of a text classifier: the engine's, with fastText-like defaults; flags
/// of other models are errors.
fn settings(opts: &TrainOptions, task: Task) -> Result<setup::Settings, CliError> {
    let not_applying = [
        ("--layers", opts.layers.is_some()),
        ("--input-shape", opts.input_shape.is_some()),
        ("--init", opts.init.is_some()),
        ("--hidden", opts.hidden.is_some()),
        ("--activation", opts.activation.is_some()),
        ("--factors", opts.factors.is_some()),
        ("--mf-order", opts.mf_order.is_some()),
        ("--l1", opts.l1.is_some()),
        ("--l2", opts.l2.is_some()),
        ("--no-standardize", opts.no_standardize),
    ];
    if let Some((flag, _)) = not_applying.iter().find(|(_, given)| *given) {
        return Err(CliError::usage(format!("{flag} does not apply to a text classifier (--model text_classifier)")));
    }
    if let Some(model) = opts.model.as_deref().filter(|m| *m != "text_classifier") {
        return Err(CliError::usage(format!("--model {model} does not read text: expected --model text_classifier")));
    }
    let optimizer = opts.optimizer.clone().unwrap_or_else(|| DEFAULT_OPTIMIZER.into());
    let lr = opts.lr.or(matches!(optimizer.as_str(), "adam" | "sparse_adam").then_some(DEFAULT_LR));
    let with_defaults = TrainOptions {
        optimizer: Some(optimizer),
        lr,
        epochs: Some(opts.epochs.unwrap_or(DEFAULT_EPOCHS)),
        batch_size: Some(opts.batch_size.clone().unwrap_or_else(|| DEFAULT_BATCH.to_string())),
        ..opts.clone()
    };
    setup::resolve_built_network("text_classifier", &with_defaults, task)
}

/// fastText's model over `vocab`: `embedding_bag(vocab, dim, mode=mean)` then `linear(outputs)`
/// (one output and a logistic loss for two classes, which is the two-class softmax).
fn network_spec(vocab: &Vocabulary, dim: usize, task: Task, classes: usize) -> Result<NetworkSpec, CliError> {
    if dim == 0 {
        return Err(CliError::flag("--embedding-dim", 0, "at least 1"));
    }
    let (outputs, loss) = match task {
        Task::Binary => (1, Loss::BceWithLogits),
        _ => (classes, Loss::CrossEntropy { label_smoothing: 0.0 }),
    };
    let layers = vec![
        LayerSpec::EmbeddingBag { num_embeddings: vocab.size(), embedding_dim: dim, mode: BagMode::Mean },
        LayerSpec::Linear { out_features: Some(outputs), bias: true },
    ];
    Ok(NetworkSpec::new(Shape(Vec::new()), layers, loss))
}

/// fastText's network with fastText's starting point: the embedding table drawn from
/// `N(0, 1)` (PyTorch's default) and scaled by `1 / dim`, about fastText's `U(−1/dim, 1/dim)`.
/// With PyTorch's unit-variance vectors, every rare word and n-gram starts as loud as a common
/// one and the model learns to tell the training rows apart by that noise (99 % train accuracy,
/// 90.7 % on held-out reviews); small vectors let the words that matter grow out of it. Only the
/// starting point differs: the saved model is the plain network.
struct TextClassifier {
    net: Network,
    scale: f32,
}

impl Model for TextClassifier {
    fn task(&self) -> Task {
        Model::task(&self.net)
    }
    fn layout(&self) -> &gradus::params::ParamLayout {
        Model::layout(&self.net)
    }
    fn inputs(&self) -> usize {
        Model::inputs(&self.net)
    }
    fn outputs(&self) -> usize {
        Model::outputs(&self.net)
    }
    fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut params = Model::init_params(&self.net, seed);
        if let Some(table) = Model::layout(&self.net).segments().first() {
            params[table.range()].iter_mut().for_each(|p| *p *= self.scale);
        }
        params
    }
    fn check_targets(&self, targets: &[f32], rows: usize) -> Result<(), gradus::loss::TargetError> {
        self.net.check_targets(targets, rows)
    }
    fn working_memory(&self, rows: usize) -> Option<usize> {
        self.net.working_memory(rows)
    }
    fn loss_and_gradient(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, grad: &mut [f32]) -> f64 {
        Model::loss_and_gradient(&self.net, params, x, y, rows, grad)
    }
    fn loss_and_gradient_rows(&self, params: &[f32], data: Rows<'_>, indices: &[usize], grad: &mut [f32]) -> f64 {
        self.net.loss_and_gradient_rows(params, data, indices, grad)
    }
    fn train_step(
        &self,
        params: &[f32],
        data: Rows<'_>,
        indices: Option<&[usize]>,
        seed: u64,
        step: u64,
        grad: &mut [f32],
    ) -> f64 {
        self.net.train_step(params, data, indices, seed, step, grad)
    }
    fn forward(&self, params: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
        Model::forward(&self.net, params, x, rows, out)
    }
    fn forward_rows(&self, params: &[f32], data: Rows<'_>, out: &mut [f32]) {
        self.net.forward_rows(params, data, out)
    }
    fn forward_and_loss_rows(&self, params: &[f32], data: Rows<'_>, out: &mut [f32]) -> f64 {
        self.net.forward_and_loss_rows(params, data, out)
    }
    fn diagnostic_segments(&self) -> Vec<(String, std::ops::Range<usize>)> {
        self.net.diagnostic_segments()
    }
    fn sparse_segments(&self) -> Vec<gradus::model::SparseSegment> {
        self.net.sparse_segments()
    }
    fn train_step_sparse(
        &self,
        params: &[f32],
        data: Rows<'_>,
        indices: Option<&[usize]>,
        seed: u64,
        step: u64,
        grad: &mut [f32],
        touched: &mut [Vec<u32>],
    ) -> f64 {
        self.net.train_step_sparse(params, data, indices, seed, step, grad, touched)
    }
}

/// Runs `gradus train` of a text classifier.
pub fn train(
    args: &TrainArgs,
    quiet: bool,
    resume: Option<Checkpoint>,
    checkpoint: Option<CheckpointConfig>,
) -> Result<(), CliError> {
    if args.folds.is_some() {
        return Err(CliError::usage("--folds is not available for text classifiers yet"));
    }
    let say = Say::new(quiet, args.json);
    let options = text_options(args)?;
    let loaded = load(args)?;
    let settings = settings(&args.options, loaded.task)?;
    let rows = loaded.table.rows();
    let empty = loaded.table.texts.iter().filter(|t| t.trim().is_empty()).count();
    say.line(format!(
        "data: {} ({rows} rows, text {}{}, target `{}`)",
        loaded.origin,
        loaded.table.text_columns.iter().map(|c| format!("`{}`", quote_cell(c))).collect::<Vec<_>>().join(" + "),
        if empty > 0 { format!("; {empty} rows without text") } else { String::new() },
        quote_cell(&loaded.target_name)
    ));
    say.line(format!("task: {}, {} classes ({})", loaded.task.name(), loaded.label_map.n_classes(), loaded.task_note));
    let val_fraction = args.options.val_fraction.unwrap_or(DEFAULT_VAL_FRACTION);
    if settings.early_stop.is_some() && val_fraction == 0.0 {
        return Err(CliError::usage("--early-stop watches validation rows: give --val-fraction > 0"));
    }
    let labels: Vec<usize> = loaded.y.iter().map(|&c| c as usize).collect();
    let (train_rows, val_rows) = split_rows(rows, Some(&labels), val_fraction, settings.seed, &loaded.origin)?;
    let texts = &loaded.table.texts;
    let vocab = Vocabulary::fit(train_rows.iter().map(|&r| texts[r].as_str()), &options)?;
    let (train_ids, train_offsets) = vocab.encode_all(train_rows.iter().map(|&r| texts[r].as_str()));
    let (val_ids, val_offsets) = vocab.encode_all(val_rows.iter().map(|&r| texts[r].as_str()));
    let data = Prepared {
        train_x: Vec::new(),
        train_y: train_rows.iter().map(|&r| loaded.y[r]).collect(),
        val_x: Vec::new(),
        val_y: val_rows.iter().map(|&r| loaded.y[r]).collect(),
        cols: 0,
        standardizer: None,
        target_scale: None,
        tokens: Some(TokenRows { train_ids, train_offsets, val_ids, val_offsets }),
    };
    say.line(format!(
        "split: {} training rows, {} validation rows (stratified, seed {}); vocabulary of the training rows: {} \
         words{}, {}",
        train_rows.len(),
        val_rows.len(),
        settings.seed,
        vocab.words_len(),
        if options.ngrams > 1 {
            let sizes = (2..=options.ngrams).map(|n| n.to_string()).collect::<Vec<_>>().join(",");
            match options.ngram_min_count {
                None => format!(" + {} hash buckets for {sizes}-grams", options.buckets),
                Some(min) => format!(" + {} {sizes}-grams seen at least {min} times", vocab.ngrams.len()),
            }
        } else {
            String::new()
        },
        if options.punctuation { "punctuation kept" } else { "words only" }
    ));
    let dim = args.text.embedding_dim.unwrap_or(DEFAULT_EMBEDDING_DIM);
    let spec = network_spec(&vocab, dim, loaded.task, loaded.label_map.n_classes())?;
    let classifier = TextClassifier { net: Network::new(spec.clone())?, scale: 1.0 / dim as f32 };
    let spec = ModelSpec::Network { network: spec };
    let model: &dyn Model = &classifier;
    say.line(format!(
        "model: text_classifier, {} ({} parameters)\noptimizer: {}, batch {}, {} epochs, seed {}",
        spec.describe(),
        model.layout().len(),
        settings.optimizer.describe(),
        batch_label(settings.batch),
        settings.epochs,
        settings.seed
    ));
    // What makes the run, for its checkpoints: the tokens (in the data hash), how text became
    // them, and the network.
    let spe = engine::steps_per_epoch(&settings, data.train_y.len());
    let run = checked_fingerprint(args, resume.as_ref(), checkpoint.is_some(), settings.epochs, || {
        let task = format!("{} ({} classes)", loaded.task.name(), loaded.label_map.n_classes());
        let described = [
            ("text", loaded.table.text_columns.join(",")),
            ("tokens", format!("{options:?}")),
            ("vocabulary", vocab.size().to_string()),
            ("network", spec.describe()),
        ];
        fingerprint::of_model(&settings, &task, &data, val_fraction, spe, &described)
    })?;
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
    let result = engine::fit_run(model, &settings, &data, &mut observer, resume, checkpoint, run);
    progress.finish_and_clear();
    let output = result?;
    let Some(last) = output.final_record() else {
        return Err(CliError::usage("nothing to train: the checkpoint already holds every epoch"));
    };
    let resumed = if done > 0 { format!(", {done} of them from the checkpoint") } else { String::new() };
    say.line(format!(
        "trained {} epochs{resumed} in {:.2} s ({})",
        output.report.history.len(),
        output.seconds,
        termination_note(&output, &settings, model.task())
    ));
    say.line(metrics_table(&[("train", &last.train), ("validation", &last.validation)]));
    if let Some(path) = &args.plot {
        let title = format!("text_classifier on {}", loaded.origin.replace('`', ""));
        plot_history(path, model.task(), &title, &output.report.history)?;
        say.line(format!("plot: {}", path.display()));
    }
    if let Some(path) = &args.metrics_json {
        let value = serde_json::json!({
            "task": loaded.task.name(),
            "model": "text_classifier",
            "model_description": spec.describe(),
            "optimizer": settings.optimizer.label,
            "optimizer_options": settings.optimizer.options,
            "batch_size": batch_label(settings.batch),
            "seed": settings.seed,
            "data": loaded.origin.replace('`', ""),
            "text": loaded.table.text_columns,
            "vocabulary_words": vocab.words_len(),
            "epochs": output.report.history.len(),
            "best_epoch": output.report.best_epoch,
            "termination": output.report.termination,
            "seconds": output.seconds,
            "train": last.train,
            "validation": last.validation,
            "history": output.report.history,
        });
        write_file("--metrics-json", path, format!("{value:#}\n").as_bytes())?;
        say.line(format!("metrics: {}", path.display()));
    }
    if let Some(path) = &args.save {
        let saved = SavedModel {
            task: model.task(),
            model: spec,
            params: output.params,
            standardizer: None,
            target_scale: None,
            label_map: Some(loaded.label_map.clone()),
            feature_names: Vec::new(),
            target_name: loaded.target_name.clone(),
            buffers: Vec::new(),
            class_names: None,
            text: Some(TextInput { columns: loaded.table.text_columns.clone(), vocabulary: vocab }),
        };
        saved.save(path)?;
        say.line(format!("saved model: {}", path.display()));
    }
    Ok(())
}

/// The name of class index `class` of `model`.
fn class_name(model: &SavedModel, class: usize) -> String {
    match (&model.class_names, &model.label_map) {
        (Some(names), _) => names[class].clone(),
        (None, Some(map)) => label(map.classes[class]),
        (None, None) => class.to_string(),
    }
}

/// Reads the model's text columns (and its target, when `need_target`) from `path`.
fn read_for_model(model: &SavedModel, path: &Path, need_target: bool) -> Result<TextTable, CliError> {
    let columns = model.text_columns().unwrap_or_default().to_vec();
    let target = need_target.then_some(model.target_name.as_str());
    read_text_csv(path, &columns, target).map_err(|e| {
        let hint = format!(
            "the model reads the text of column{} {}{}",
            if columns.len() == 1 { "" } else { "s" },
            columns.iter().map(|c| format!("`{}`", quote_cell(c))).collect::<Vec<_>>().join(", "),
            if need_target {
                format!(" and compares with target `{}`", quote_cell(&model.target_name))
            } else {
                String::new()
            }
        );
        CliError::from(e).hint(hint)
    })
}

/// `gradus evaluate` of a text classifier.
pub fn evaluate(model: &SavedModel, args: &EvaluateArgs, quiet: bool) -> Result<(), CliError> {
    let path: PathBuf = match (&args.data, &args.dataset) {
        (Some(path), _) => path.clone(),
        (None, Some(name)) => {
            let info = builtin::info(name)?;
            if info.text_columns.is_none() {
                return Err(CliError::usage(format!("built-in data set `{name}` holds numbers, the model reads text")));
            }
            builtin::data_dir().join(info.file)
        }
        (None, None) => return Err(CliError::usage("no data: give --data FILE or --dataset NAME")),
    };
    let table = read_for_model(model, &path, true)?;
    let texts: Vec<&str> = table.texts.iter().map(String::as_str).collect();
    let origin = path.display().to_string();
    let metrics = model.evaluate_text(&texts, &table.target, &origin)?;
    if args.json {
        let value =
            serde_json::json!({"data": origin, "rows": table.rows(), "task": model.task.name(), "metrics": metrics});
        println!("{value}");
    } else if !quiet {
        println!(
            "model: {} (text classifier of {} classes, target `{}`)",
            model.model.describe(),
            model.label_map.as_ref().map_or(0, LabelMap::n_classes),
            quote_cell(&model.target_name)
        );
        println!("data: `{origin}` ({} rows)", table.rows());
        print!("{}", metrics_table(&[("metrics", &metrics)]));
    }
    Ok(())
}

/// `gradus predict` of a text classifier: `--text` (each text's class and its probability, and
/// with `--explain` the tokens behind it) or `--data` (a CSV of predictions, as for other
/// classifiers).
pub fn predict(model: &SavedModel, args: &PredictArgs, quiet: bool) -> Result<(), CliError> {
    if args.image.is_some() {
        return Err(CliError::usage("--image: the model is a text classifier: give --text or --data"));
    }
    let (texts, from_file): (Vec<String>, bool) = match (&args.text, &args.data) {
        (Some(texts), _) => (texts.clone(), false),
        (None, Some(path)) => (read_for_model(model, path, false)?.texts, true),
        (None, None) => return Err(CliError::usage("no text: give --text \"...\" or --data FILE")),
    };
    if args.explain {
        for (flag, given) in [("--data", args.data.is_some()), ("--out", args.out.is_some())] {
            if given {
                return Err(CliError::usage(format!(
                    "--explain prints the tokens behind each --text prediction: it does not apply with {flag}"
                )));
            }
        }
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let outputs = model.text_outputs(&refs)?;
    let explainer = if args.explain { Some(Explainer::new(model)?) } else { None };
    let probabilities = model.probabilities(&outputs);
    let k = model.label_map.as_ref().map_or(1, LabelMap::n_classes).max(1);
    let classes = argmax_rows(&outputs, outputs.len() / texts.len().max(1))
        .map_err(|e| CliError::usage(format!("the texts: {e}")))?;
    let mut out = String::new();
    if from_file || args.out.is_some() {
        let header: Vec<String> = std::iter::once("prediction".to_string())
            .chain((0..k).map(|c| format!("p_{}", class_name(model, c))))
            .collect();
        let _ = writeln!(out, "{}", header.join(","));
        for (row, &best) in probabilities.chunks_exact(k).zip(&classes) {
            let cells: Vec<String> =
                std::iter::once(class_name(model, best)).chain(row.iter().map(|p| p.to_string())).collect();
            let _ = writeln!(out, "{}", cells.join(","));
        }
    } else {
        for ((text, row), &best) in texts.iter().zip(probabilities.chunks_exact(k)).zip(&classes) {
            let _ = writeln!(
                out,
                "{} {:.1}%  {}",
                class_name(model, best),
                100.0 * row[best],
                crate::error::printable(&quote_cell(text))
            );
            if let Some(explainer) = &explainer {
                let explanation = explainer.explain(text, best)?;
                explanation.write(&mut out, &class_name(model, best));
            }
        }
    }
    match &args.out {
        Some(path) => {
            write_file("--out", path, out.as_bytes())?;
            if !quiet {
                eprintln!("wrote {} predictions to {}", texts.len(), path.display());
            }
        }
        None => print!("{out}"),
    }
    Ok(())
}

/// Tokens listed in each direction by `--explain`.
const EXPLAINED_TOKENS: usize = 5;

/// The parameters of fastText's network that `--explain` reads: the embedding table
/// `[vocabulary][dim]` of a mean bag, the linear weight `[outputs][dim]` and its bias.
struct Explainer<'a> {
    vocabulary: &'a Vocabulary,
    table: &'a [f32],
    rows: usize,
    dim: usize,
    weight: &'a [f32],
    bias: Option<&'a [f32]>,
    outputs: usize,
    binary: bool,
}

/// One token of a text (a word, an unknown word or an n-gram) and its share of the predicted
/// class's logit, summed over its occurrences.
struct Contribution {
    name: String,
    count: usize,
    value: f64,
}

/// Why a text got its class: the predicted class's logit as the bias plus each token's share.
struct Explanation {
    logit: f64,
    bias: f64,
    tokens: usize,
    /// Distinct tokens in order of first appearance.
    contributions: Vec<Contribution>,
}

impl<'a> Explainer<'a> {
    /// The parts of `model`, which must be fastText's network (`embedding_bag(mode=mean)` then
    /// `linear`), found through the network's parameter layout.
    fn new(model: &'a SavedModel) -> Result<Self, CliError> {
        let not_explained = |why: String| {
            CliError::usage(format!("--explain: {why}"))
                .hint("--explain reads text classifiers of `embedding_bag(mode=mean),linear`")
        };
        let (ModelSpec::Network { network }, Some(text)) = (&model.model, &model.text) else {
            return Err(not_explained(format!("the model is a {}, not a text classifier", model.model.describe())));
        };
        let not_fasttext = || not_explained(format!("the model is a {}", model.model.describe()));
        let (rows, dim) = match network.layers.first() {
            Some(LayerSpec::EmbeddingBag { num_embeddings, embedding_dim, mode: BagMode::Mean }) => {
                (*num_embeddings, *embedding_dim)
            }
            _ => return Err(not_fasttext()),
        };
        let (outputs, has_bias) = match network.layers.get(1..) {
            Some([LayerSpec::Linear { out_features: Some(outputs), bias }]) => (*outputs, *bias),
            _ => return Err(not_fasttext()),
        };
        let binary = match model.task {
            Task::Binary if outputs == 1 => true,
            Task::Multiclass if outputs >= 2 => false,
            _ => {
                return Err(not_explained(format!(
                    "a {} model of {outputs} outputs is not a classifier",
                    model.task.name()
                )))
            }
        };
        let net = Network::new(network.clone()).map_err(|e| not_explained(e.to_string()))?;
        let layout = net.layout();
        if layout.len() != model.params.len() {
            return Err(not_explained(format!(
                "the model holds {} parameters, its network {}",
                model.params.len(),
                layout.len()
            )));
        }
        let segment = |index: usize, suffix: &str, len: usize| {
            layout
                .segments()
                .get(index)
                .filter(|s| s.name.ends_with(suffix) && s.range().len() == len)
                .map(|s| &model.params[s.range()])
                .ok_or_else(|| {
                    not_explained(format!("parameter segment {} is not the expected `*{suffix}`", index + 1))
                })
        };
        let table = segment(0, ".weight", rows.saturating_mul(dim))?;
        let weight = segment(1, ".weight", outputs.saturating_mul(dim))?;
        let bias = if has_bias { Some(segment(2, ".bias", outputs)?) } else { None };
        if layout.segments().len() != 2 + usize::from(has_bias) {
            return Err(not_explained("the network has more parameters than a bag and a linear layer".into()));
        }
        Ok(Self { vocabulary: &text.vocabulary, table, rows, dim, weight, bias, outputs, binary })
    }

    /// The tokens of `text` as [`Vocabulary::encode`] lists them (words, then the n-grams of 2 up
    /// to `ngrams` words), each with its id and its name.
    fn tokens(&self, text: &str) -> Result<Vec<(u32, String)>, CliError> {
        let vocabulary = self.vocabulary;
        let words: Vec<String> = vocabulary.options.tokenize(text).collect();
        let ids = vocabulary.encode(text);
        let mut names: Vec<String> =
            words
                .iter()
                .zip(&ids)
                .map(|(word, &id)| {
                    if id == Vocabulary::UNKNOWN {
                        format!("{} (unknown)", quote_cell(word))
                    } else {
                        quote_cell(word)
                    }
                })
                .collect();
        for n in 2..=vocabulary.options.ngrams {
            // The n-grams that have a token (all of them when hashed).
            names.extend(
                words
                    .windows(n)
                    .filter(|window| vocabulary.ngram_id(window).is_some())
                    .map(|window| format!("\"{}\"", quote_cell(&window.join(" ")))),
            );
        }
        if names.len() != ids.len() {
            return Err(CliError::usage(format!(
                "--explain: {} token names for the {} tokens of the text",
                names.len(),
                ids.len()
            )));
        }
        Ok(ids.into_iter().zip(names).collect())
    }

    /// The contributions of the tokens of `text` to the logit of `class`: for a mean bag,
    /// `W_class · e_token / n` each (the negated output's for the negative class of a binary
    /// model), so that with the bias they sum to the logit.
    fn explain(&self, text: &str, class: usize) -> Result<Explanation, CliError> {
        let tokens = self.tokens(text)?;
        let (row, sign) = match (self.binary, class) {
            (true, 0) => (0, -1.0),
            (true, _) => (0, 1.0),
            (false, c) if c < self.outputs => (c, 1.0),
            (false, c) => return Err(CliError::usage(format!("--explain: class {c} of {} outputs", self.outputs))),
        };
        let w = &self.weight[row * self.dim..(row + 1) * self.dim];
        let bias = sign * self.bias.map_or(0.0, |b| f64::from(b[row]));
        let n = tokens.len() as f64;
        let mut contributions: Vec<Contribution> = Vec::new();
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (id, name) in tokens.iter() {
            let id = *id as usize;
            if id >= self.rows {
                return Err(CliError::usage(format!(
                    "--explain: token id {id} beyond the model's {} embeddings: is the vocabulary the model's?",
                    self.rows
                )));
            }
            let e = &self.table[id * self.dim..(id + 1) * self.dim];
            let dot: f64 = w.iter().zip(e).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
            let value = sign * dot / n;
            match seen.get(name) {
                Some(&at) => {
                    contributions[at].count += 1;
                    contributions[at].value += value;
                }
                None => {
                    seen.insert(name.clone(), contributions.len());
                    contributions.push(Contribution { name: name.clone(), count: 1, value });
                }
            }
        }
        let logit = bias + contributions.iter().map(|c| c.value).sum::<f64>();
        Ok(Explanation { logit, bias, tokens: tokens.len(), contributions })
    }
}

impl Explanation {
    /// Writes the explanation under a prediction's line: the tokens towards and against `class`,
    /// and the logit as the bias plus the tokens' total.
    fn write(&self, out: &mut String, class: &str) {
        if self.tokens == 0 {
            let _ =
                writeln!(out, "  no tokens: the text has no words (logit {:.2} = bias {:.2})", self.logit, self.bias);
            return;
        }
        for (direction, towards) in [("towards", true), ("against", false)] {
            let mut listed: Vec<&Contribution> =
                self.contributions.iter().filter(|c| if towards { c.value > 0.0 } else { c.value < 0.0 }).collect();
            listed.sort_by(|a, b| b.value.abs().total_cmp(&a.value.abs()));
            let mut items: Vec<String> = listed
                .iter()
                .take(EXPLAINED_TOKENS)
                .map(|c| {
                    let times = if c.count > 1 { format!(" ×{}", c.count) } else { String::new() };
                    format!("{}{times} {:+.2}", c.name, c.value)
                })
                .collect();
            if listed.len() > EXPLAINED_TOKENS {
                let rest = &listed[EXPLAINED_TOKENS..];
                items.push(format!("{} more {:+.2}", rest.len(), rest.iter().map(|c| c.value).sum::<f64>()));
            }
            if items.is_empty() {
                items.push("none".into());
            }
            let _ = writeln!(out, "  {direction} {class}: {}", items.join(", "));
        }
        let _ = writeln!(
            out,
            "  (logit {:.2} = bias {:.2} + the {} {} {:.2})",
            self.logit,
            self.bias,
            self.tokens,
            if self.tokens == 1 { "token's" } else { "tokens'" },
            self.logit - self.bias
        );
    }
}
