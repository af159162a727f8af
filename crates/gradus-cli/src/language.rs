//! Language models (`--task language_model`): a corpus of documents — the lines of a text file,
//! or the text columns of a CSV file or of the `reviews` data set — read as one sequence of
//! words, each document ending in `<eos>`, and a recurrent network (embedding → LSTM or GRU →
//! linear over the vocabulary) trained by the one engine to predict every next word, by
//! truncated backpropagation through time over `--bptt` steps with the state carried from one
//! mini-batch to the next. `gradus evaluate` reports perplexity on held-out text and
//! `gradus generate` continues a prompt.

use std::path::{Path, PathBuf};

use gradus::data::text::{read_lines, read_text_csv, TextOptions, Vocabulary, END_OF_TEXT};
use gradus::data::{builtin, quote_cell, LabelMap};
use gradus::model::{evaluate, Model, Rows};
use gradus::nn::{LanguageModel, LanguageModelSpec, RecurrentCell};
use gradus::saved::{ModelSpec, SavedModel, TextInput};
use gradus::train::{Checkpoint, CheckpointConfig, Metrics, Task};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::args::{EvaluateArgs, GenerateArgs, TrainArgs, TrainOptions};
use crate::commands::train::{checked_fingerprint, plot_history, termination_note, Say};
use crate::error::CliError;
use crate::output::{metrics_table, write_file};
use crate::prepare::{split_rows, Prepared, TokenRows, DEFAULT_DATASET};
use crate::progress::{bar, bars_enabled, RunObserver};
use crate::setup::{self, DEFAULT_VAL_FRACTION};
use crate::{engine, fingerprint};

/// Default embedding size (PyTorch's `word_language_model` example's default).
pub const DEFAULT_EMBEDDING_DIM: usize = 200;
/// Default hidden size of the recurrent layer (as the example's).
pub const DEFAULT_HIDDEN: usize = 200;
/// Default steps of truncated backpropagation through time (as the example's).
pub const DEFAULT_BPTT: usize = 35;
/// Default streams read side by side: the rows of a mini-batch.
pub const DEFAULT_STREAMS: usize = 32;
/// Default vocabulary: the 10,000 most frequent words (Penn Treebank's size).
pub const DEFAULT_MAX_VOCAB: usize = 10_000;
/// Default epochs.
pub const DEFAULT_EPOCHS: usize = 3;
/// Default learning rate of Adam for a language model.
pub const DEFAULT_LR: f64 = 0.002;
/// Default clipping of the gradient's global norm (as the example's): without it the recurrent
/// weights' gradient explodes now and then, the textbook failure of recurrent networks.
pub const DEFAULT_CLIP_NORM: f64 = 0.25;
/// Default length of a generated continuation, in tokens.
pub const DEFAULT_WORDS: usize = 20;

/// Whether `gradus train` asks for a language model.
pub fn wanted(args: &TrainArgs) -> bool {
    args.data.task.as_deref() == Some("language_model") || args.options.model.as_deref() == Some("language_model")
}

/// The documents of a corpus, where they came from, the CSV columns they were read from (none
/// for a text file), and class labels to stratify the split by (a data set's target).
struct Corpus {
    documents: Vec<String>,
    origin: String,
    columns: Vec<String>,
    strata: Option<Vec<usize>>,
}

fn is_csv(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    name.ends_with(".csv") || name.ends_with(".csv.gz")
}

fn load(args: &TrainArgs) -> Result<Corpus, CliError> {
    let data = &args.data;
    if data.labels.is_some() {
        return Err(CliError::usage("--labels does not apply to a language model: give a text file with --data"));
    }
    match &data.data {
        Some(path) if is_csv(path) => {
            let Some(columns) = args.text.text.clone() else {
                return Err(CliError::usage(format!(
                    "--task language_model: which columns of `{}` hold the text? give --text COLUMN[,COLUMN...] \
                     (a file that is not .csv is read as plain text, one document per line)",
                    path.display()
                )));
            };
            let table = read_text_csv(path, &columns, None)?;
            Ok(Corpus { documents: table.texts, origin: format!("`{}`", path.display()), columns, strata: None })
        }
        Some(path) => {
            if args.text.text.is_some() {
                return Err(CliError::usage(format!(
                    "--text names CSV columns: `{}` is read as plain text, one document per line",
                    path.display()
                )));
            }
            if data.target.is_some() {
                return Err(CliError::usage("--target does not apply to a language model: it predicts the next word"));
            }
            let documents = read_lines(path)?;
            Ok(Corpus { documents, origin: format!("`{}`", path.display()), columns: Vec::new(), strata: None })
        }
        None => {
            let name = data.dataset.as_deref().unwrap_or(DEFAULT_DATASET);
            let (info, path, default_columns) = crate::text::builtin_text(name, "--task language_model", "")?;
            let columns =
                args.text.text.clone().unwrap_or_else(|| default_columns.iter().map(|c| c.to_string()).collect());
            // The split is the classifier's (stratified by the data set's target), so that a
            // language model and a classifier of the same seed hold out the same documents.
            let table = read_text_csv(&path, &columns, Some(info.target))?;
            let map = LabelMap::fit(&table.target, &table.source)?;
            let strata = map.encode_all(&table.target, &table.source)?;
            Ok(Corpus {
                documents: table.texts,
                origin: format!("built-in data set `{name}`"),
                columns,
                strata: Some(strata),
            })
        }
    }
}

/// The recurrent cell, sizes and batch of the flags; flags of other models are errors.
fn model_flags(args: &TrainArgs) -> Result<(RecurrentCell, usize, usize, usize, usize, usize), CliError> {
    let opts = &args.options;
    let not_applying = [
        ("--layers", opts.layers.is_some()),
        ("--input-shape", opts.input_shape.is_some()),
        ("--init", opts.init.is_some()),
        ("--activation", opts.activation.is_some()),
        ("--factors", opts.factors.is_some()),
        ("--mf-order", opts.mf_order.is_some()),
        ("--l1", opts.l1.is_some()),
        ("--l2", opts.l2.is_some()),
        ("--no-standardize", opts.no_standardize),
        ("--ngrams", args.text.ngrams.is_some()),
        ("--buckets", args.text.buckets.is_some()),
        ("--ngram-min-count", args.text.ngram_min_count.is_some()),
        ("--keep-punctuation", args.text.keep_punctuation),
    ];
    if let Some((flag, _)) = not_applying.iter().find(|(_, given)| *given) {
        let why =
            if *flag == "--keep-punctuation" { " (it always keeps punctuation, so that text reads back)" } else { "" };
        return Err(CliError::usage(format!("{flag} does not apply to a language model{why}")));
    }
    if let Some(model) = opts.model.as_deref().filter(|m| *m != "language_model") {
        return Err(CliError::usage(format!(
            "--model {model} does not predict the next word: --task language_model trains --model language_model"
        )));
    }
    if let Some(task) = args.data.task.as_deref().filter(|t| *t != "language_model") {
        return Err(CliError::flag("--task", task, "language_model for --model language_model"));
    }
    let cell = match args.text.cell.as_deref() {
        None | Some("lstm") => RecurrentCell::Lstm,
        Some("gru") => RecurrentCell::Gru,
        Some(other) => return Err(CliError::flag("--cell", other, "lstm or gru")),
    };
    let (hidden, layers) = match &opts.hidden {
        None => (DEFAULT_HIDDEN, 1),
        Some(sizes) if sizes.is_empty() || sizes.contains(&0) => {
            return Err(CliError::flag("--hidden", format_sizes(sizes), "hidden sizes of at least 1"))
        }
        Some(sizes) if sizes.iter().any(|&s| s != sizes[0]) => {
            return Err(CliError::flag(
                "--hidden",
                format_sizes(sizes),
                "one size per stacked recurrent layer, all equal (as torch.nn.LSTM's hidden_size), e.g. 200,200",
            ))
        }
        Some(sizes) => (sizes[0], sizes.len()),
    };
    let embedding_dim = args.text.embedding_dim.unwrap_or(DEFAULT_EMBEDDING_DIM);
    if embedding_dim == 0 {
        return Err(CliError::flag("--embedding-dim", 0, "at least 1"));
    }
    let bptt = args.text.bptt.unwrap_or(DEFAULT_BPTT);
    if bptt == 0 {
        return Err(CliError::flag("--bptt", 0, "at least 1 step"));
    }
    let streams = match opts.batch_size.as_deref() {
        None => DEFAULT_STREAMS,
        Some(size) => match size.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(CliError::flag(
                    "--batch-size",
                    size,
                    "a number of streams of the corpus read side by side, e.g. 32 (a language model reads its \
                     corpus in order: no full or stochastic batches)",
                ))
            }
        },
    };
    Ok((cell, hidden, layers, embedding_dim, bptt, streams))
}

fn format_sizes(sizes: &[usize]) -> String {
    sizes.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// The engine's settings for a language model: Adam, clipping and the other defaults above.
fn settings(opts: &TrainOptions, streams: usize) -> Result<setup::Settings, CliError> {
    let optimizer = opts.optimizer.clone().unwrap_or_else(|| "adam".into());
    let lr = opts.lr.or((optimizer == "adam").then_some(DEFAULT_LR));
    let with_defaults = TrainOptions {
        hidden: None,
        optimizer: Some(optimizer),
        lr,
        epochs: Some(opts.epochs.unwrap_or(DEFAULT_EPOCHS)),
        batch_size: Some(streams.to_string()),
        clip_norm: opts.clip_norm.or(Some(DEFAULT_CLIP_NORM)),
        ..opts.clone()
    };
    let settings = setup::resolve_built_network("language_model", &with_defaults, Task::Multiclass)?;
    if settings.optimizer.name == "lbfgs" {
        return Err(CliError::usage(
            "--optimizer lbfgs does not train a language model: its state carries from one mini-batch to the next",
        ));
    }
    Ok(settings)
}

/// `gradus train --task language_model`.
pub fn train(
    args: &TrainArgs,
    quiet: bool,
    resume: Option<Checkpoint>,
    checkpoint: Option<CheckpointConfig>,
) -> Result<(), CliError> {
    if args.folds.is_some() {
        return Err(CliError::usage("--folds is not available for language models yet"));
    }
    let say = Say::new(quiet, args.json);
    let (cell, hidden, layers, embedding_dim, bptt, streams) = model_flags(args)?;
    let settings = settings(&args.options, streams)?;
    let corpus = load(args)?;
    let options = TextOptions {
        lowercase: true,
        punctuation: true,
        ngrams: 1,
        min_count: args.text.min_count.unwrap_or(1),
        max_size: Some(args.text.max_vocab.unwrap_or(DEFAULT_MAX_VOCAB)),
        ..TextOptions::default()
    };
    options.validate()?;
    let val_fraction = args.options.val_fraction.unwrap_or(DEFAULT_VAL_FRACTION);
    if settings.early_stop.is_some() && val_fraction == 0.0 {
        return Err(CliError::usage("--early-stop watches validation text: give --val-fraction > 0"));
    }
    let documents = &corpus.documents;
    let (train_docs, val_docs) =
        split_rows(documents.len(), corpus.strata.as_deref(), val_fraction, settings.seed, &corpus.origin)?;
    let vocab = Vocabulary::fit_corpus(train_docs.iter().map(|&d| documents[d].as_str()), &options)?;
    let train_corpus = vocab.corpus(train_docs.iter().map(|&d| documents[d].as_str()));
    let val_corpus = vocab.corpus(val_docs.iter().map(|&d| documents[d].as_str()));
    let spec = LanguageModelSpec { vocab: vocab.size(), embedding_dim, hidden, layers, cell, bptt, streams };
    // The network's own error names its layers (`lstm(3000000000)`): say it in the flags given here.
    let model = LanguageModel::new(spec.clone()).map_err(|e| {
        CliError::usage(format!(
            "--hidden {hidden}, --embedding-dim {embedding_dim} and a vocabulary of {} tokens: expected {}",
            spec.vocab, e.expected
        ))
        .hint("use a smaller --hidden, --embedding-dim or --max-vocab")
    })?;
    let (train_ids, train_offsets, train_y) = model.rows(&train_corpus);
    let (val_ids, val_offsets, val_y) = model.rows(&val_corpus);
    if train_y.is_empty() {
        return Err(CliError::usage(format!(
            "{}: the training documents hold {} tokens, too few for one chunk of {bptt} steps in each of {streams} \
             streams ({} tokens)",
            corpus.origin,
            train_corpus.len(),
            streams * (bptt + 1)
        ))
        .hint("give a smaller --batch-size or --bptt, or more text"));
    }
    say.line(format!(
        "data: {} ({} documents{}), task: language_model (predict each next word)",
        corpus.origin,
        documents.len(),
        if corpus.columns.is_empty() {
            " — lines".to_string()
        } else {
            format!(
                ", text {}",
                corpus.columns.iter().map(|c| format!("`{}`", quote_cell(c))).collect::<Vec<_>>().join(" + ")
            )
        }
    ));
    say.line(format!(
        "split: {} training documents ({} tokens), {} validation documents ({} tokens){}, seed {}; vocabulary: {} \
         words of the training documents + <unk> + {END_OF_TEXT}",
        train_docs.len(),
        train_corpus.len(),
        val_docs.len(),
        val_corpus.len(),
        if corpus.strata.is_some() { " (stratified as the classifier's)" } else { "" },
        settings.seed,
        vocab.words_len() - 1
    ));
    let data = Prepared {
        train_x: Vec::new(),
        train_y,
        val_x: Vec::new(),
        val_y,
        cols: 0,
        standardizer: None,
        target_scale: None,
        tokens: Some(TokenRows { train_ids, train_offsets, val_ids, val_offsets }),
    };
    let saved_spec = ModelSpec::LanguageModel { language_model: spec.clone() };
    say.line(format!(
        "model: {} ({} parameters)\noptimizer: {}, {} streams × {bptt} steps per update ({} updates per epoch), \
         clip-norm {}, {} epochs, seed {}",
        saved_spec.describe(),
        model.layout().len(),
        settings.optimizer.describe(),
        streams,
        data.train_y.len() / streams,
        settings.clip_norm.map_or("none".to_string(), |c| c.to_string()),
        settings.epochs,
        settings.seed
    ));
    // What makes the run, for its checkpoints: the tokens (in the data hash), the vocabulary and
    // the network.
    let spe = engine::steps_per_epoch(&settings, data.train_y.len());
    let run = checked_fingerprint(args, resume.as_ref(), checkpoint.is_some(), settings.epochs, || {
        let described = [
            ("text", corpus.columns.join(",")),
            ("tokens", format!("{options:?}")),
            ("vocabulary", vocab.size().to_string()),
            ("network", saved_spec.describe()),
        ];
        fingerprint::of_model(&settings, "language_model", &data, val_fraction, spe, &described)
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
        metric: "perplexity",
    };
    // Each epoch starts from zero states, so that a resumed run reads the corpus as the
    // uninterrupted one did.
    model.reset_state();
    let result = engine::fit_run(&model, &settings, &data, &mut observer, resume, checkpoint, run);
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
    if let Some(path) = &args.plot {
        let title = format!("{} on {}", saved_spec.describe(), corpus.origin.replace('`', ""));
        plot_history(path, model.task(), &title, &output.report.history)?;
        say.line(format!("plot: {}", path.display()));
    }
    let with_perplexity = |metrics: &Metrics| {
        let mut metrics = metrics.clone();
        if let Some(&loss) = metrics.get("loss") {
            metrics.entry("perplexity".into()).or_insert(loss.exp());
        }
        metrics
    };
    let (train_metrics, val_metrics) = (with_perplexity(&last.train), with_perplexity(&last.validation));
    say.line(metrics_table(&[("train", &train_metrics), ("validation", &val_metrics)]));
    if let Some(path) = &args.metrics_json {
        let value = serde_json::json!({
            "task": "language_model",
            "model": "language_model",
            "model_description": saved_spec.describe(),
            "optimizer": settings.optimizer.label,
            "optimizer_options": settings.optimizer.options,
            "streams": streams,
            "bptt": bptt,
            "seed": settings.seed,
            "data": corpus.origin.replace('`', ""),
            "vocabulary_words": vocab.words_len() - 1,
            "train_tokens": train_corpus.len(),
            "validation_tokens": val_corpus.len(),
            "epochs": output.report.history.len(),
            "best_epoch": output.report.best_epoch,
            "termination": output.report.termination,
            "seconds": output.seconds,
            "train": train_metrics,
            "validation": val_metrics,
            "history": output.report.history,
        });
        write_file("--metrics-json", path, format!("{value:#}\n").as_bytes())?;
        say.line(format!("metrics: {}", path.display()));
    }
    if let Some(path) = &args.save {
        let saved = SavedModel {
            task: Task::Multiclass,
            model: saved_spec,
            params: output.params,
            standardizer: None,
            target_scale: None,
            label_map: None,
            feature_names: Vec::new(),
            target_name: String::new(),
            buffers: Vec::new(),
            class_names: None,
            text: Some(TextInput { columns: corpus.columns.clone(), vocabulary: vocab }),
        };
        saved.save(path)?;
        say.line(format!("saved model: {}", path.display()));
    }
    Ok(())
}

/// The language model of a saved model, with its vocabulary.
fn language_model(saved: &SavedModel) -> Result<(LanguageModel, &TextInput), CliError> {
    let ModelSpec::LanguageModel { language_model } = &saved.model else {
        return Err(CliError::usage(format!("the model is a {}, not a language model", saved.model.describe())));
    };
    let text = saved.text.as_ref().ok_or_else(|| CliError::usage("the language model has no vocabulary"))?;
    Ok((LanguageModel::new(language_model.clone())?, text))
}

/// The documents of `path` for a saved language model: its text columns of a CSV file, or the
/// lines of a text file.
fn documents_for(text: &TextInput, path: &Path) -> Result<Vec<String>, CliError> {
    if text.columns.is_empty() || !is_csv(path) {
        return Ok(read_lines(path)?);
    }
    Ok(read_text_csv(path, &text.columns, None)?.texts)
}

/// `gradus evaluate` of a language model: loss, perplexity and next-word accuracy.
pub fn evaluate_model(saved: &SavedModel, args: &EvaluateArgs, quiet: bool) -> Result<(), CliError> {
    let (model, text) = language_model(saved)?;
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
    let documents = documents_for(text, &path)?;
    let corpus = text.vocabulary.corpus(documents.iter().map(String::as_str));
    let (ids, offsets, y) = model.rows(&corpus);
    let origin = path.display().to_string();
    if y.is_empty() {
        let spec = model.spec();
        return Err(CliError::usage(format!(
            "`{origin}`: {} tokens, too few for one chunk of {} steps in each of the model's {} streams",
            corpus.len(),
            spec.bptt,
            spec.streams
        )));
    }
    let metrics = evaluate(&model, &saved.params, Rows::with_ids(&ids, &offsets, &y))
        .map_err(|e| CliError::usage(format!("`{origin}`: {e}")))?;
    let scored = y.len() * model.spec().bptt;
    if args.json {
        let value = serde_json::json!({
            "data": origin, "documents": documents.len(), "tokens": corpus.len(), "predicted_tokens": scored,
            "task": "language_model", "metrics": metrics
        });
        println!("{value}");
    } else if !quiet {
        println!("model: {}", saved.model.describe());
        println!(
            "data: `{origin}` ({} documents, {} tokens; {scored} predicted, in {} streams of {}-step chunks)",
            documents.len(),
            corpus.len(),
            model.spec().streams,
            model.spec().bptt
        );
        print!("{}", metrics_table(&[("metrics", &metrics)]));
    }
    Ok(())
}

/// `gradus generate`: continues a prompt with a saved language model.
pub fn generate(args: &GenerateArgs, quiet: bool) -> Result<(), CliError> {
    let saved = SavedModel::load(&args.model)?;
    let (model, text) = language_model(&saved)?;
    let words = args.words.unwrap_or(DEFAULT_WORDS);
    let temperature = args.temperature.unwrap_or(1.0);
    if !(temperature.is_finite() && temperature >= 0.0) {
        return Err(CliError::flag("--temperature", temperature, "a number ≥ 0 (0: the most likely word each time)"));
    }
    let vocab = model.spec().vocab;
    let top_k = args.top_k.unwrap_or(vocab);
    if top_k == 0 {
        return Err(CliError::flag("--top-k", 0, "at least 1"));
    }
    let samples = args.samples.unwrap_or(1);
    if samples == 0 {
        return Err(CliError::flag("--samples", 0, "at least 1"));
    }
    let prompt = args.prompt.clone().unwrap_or_default();
    let vocabulary = &text.vocabulary;
    let end = vocabulary.id(END_OF_TEXT).unwrap_or(Vocabulary::UNKNOWN);
    let prompt_ids = vocabulary.word_ids(&prompt);
    let unknown: Vec<String> = vocabulary.options.tokenize(&prompt).filter(|w| vocabulary.id(w).is_none()).collect();
    if !unknown.is_empty() && !quiet {
        eprintln!(
            "note: not in the model's vocabulary, read as <unk>: {}",
            unknown.iter().map(|w| format!("`{}`", crate::error::printable(w))).collect::<Vec<_>>().join(", ")
        );
    }
    let stepper = model.stepper();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed.unwrap_or(0));
    for _ in 0..samples {
        // A document starts after an end of text: the state the model reads a new review from.
        let mut state = Vec::new();
        let mut logits = model.step(&stepper, &saved.params, end, &mut state);
        for &id in &prompt_ids {
            logits = model.step(&stepper, &saved.params, id, &mut state);
        }
        let mut generated = Vec::new();
        let mut ended = false;
        for _ in 0..words {
            let next = sample(&logits, temperature, top_k, &mut rng);
            if next == end {
                ended = true;
                break;
            }
            generated.push(next);
            logits = model.step(&stepper, &saved.params, next, &mut state);
        }
        let prompt_words: Vec<String> = vocabulary.options.tokenize(&prompt).collect();
        let continuation: Vec<&str> = generated.iter().map(|&id| vocabulary.word(id).unwrap_or("<unk>")).collect();
        let mut line = detokenize(prompt_words.iter().map(String::as_str).chain(continuation.iter().copied()));
        if ended {
            line.push_str(" ⏎");
        }
        println!("{}", crate::error::printable(&line));
    }
    Ok(())
}

/// The index drawn from `logits / temperature` among the `top_k` largest (the unknown word
/// never: it is not a word to write), or the largest when `temperature` is 0.
fn sample(logits: &[f32], temperature: f64, top_k: usize, rng: &mut ChaCha8Rng) -> u32 {
    let mut order: Vec<usize> = (1..logits.len()).filter(|&i| logits[i].is_finite()).collect();
    if order.is_empty() {
        return 0;
    }
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if temperature == 0.0 {
        return order[0] as u32;
    }
    order.truncate(top_k.max(1));
    let max = logits[order[0]] as f64;
    let weights: Vec<f64> = order.iter().map(|&i| ((logits[i] as f64 - max) / temperature).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut draw = rng.random::<f64>() * total;
    for (&i, &w) in order.iter().zip(&weights) {
        if draw < w {
            return i as u32;
        }
        draw -= w;
    }
    *order.last().expect("not empty") as u32
}

/// Tokens joined back into text: spaces between words, none before closing punctuation or
/// after opening punctuation.
fn detokenize<'a>(tokens: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    let mut glue_next = true;
    for token in tokens {
        let closing = matches!(token, "." | "," | "!" | "?" | ";" | ":" | ")" | "]" | "%" | "'" | "’" | "...");
        if !out.is_empty() && !glue_next && !closing {
            out.push(' ');
        }
        out.push_str(token);
        glue_next = matches!(token, "(" | "[" | "$" | "#");
    }
    out
}
