//! `--config FILE.toml`: training options read from a TOML file, named as the flags (snake_case
//! or kebab-case: `batch_size` or `batch-size`). Flags given on the command line override the
//! file. An unknown key is an error naming it, its line and the file. Paths in the file are
//! taken relative to the current folder, as on the command line.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::args::TrainArgs;
use crate::error::CliError;

/// Every key a configuration file may hold (the `gradus train` flags but `--config`).
pub const KNOWN_KEYS: &[&str] = &[
    "data",
    "dataset",
    "target",
    "task",
    "labels",
    "text",
    "ngrams",
    "buckets",
    "ngram_min_count",
    "min_count",
    "max_vocab",
    "keep_punctuation",
    "embedding_dim",
    "bptt",
    "cell",
    "model",
    "layers",
    "input_shape",
    "init",
    "hidden",
    "activation",
    "factors",
    "mf_order",
    "l2",
    "l1",
    "optimizer",
    "lr",
    "momentum",
    "dampening",
    "beta1",
    "beta2",
    "eps",
    "weight_decay",
    "alpha",
    "rho",
    "amsgrad",
    "centered",
    "lr_decay",
    "batch_size",
    "epochs",
    "schedule",
    "gamma",
    "step_size",
    "milestones",
    "max_lr",
    "eta_min",
    "plateau_patience",
    "warmup",
    "clip_norm",
    "clip_value",
    "early_stop",
    "tol",
    "val_fraction",
    "seed",
    "threads",
    "no_standardize",
    "folds",
    "save",
    "checkpoint_every",
    "checkpoint",
    "resume",
    "plot",
    "metrics_json",
    "json",
];

/// The file's options, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data: Option<PathBuf>,
    dataset: Option<String>,
    target: Option<String>,
    task: Option<String>,
    labels: Option<PathBuf>,
    text: Option<Vec<String>>,
    ngrams: Option<usize>,
    buckets: Option<usize>,
    ngram_min_count: Option<usize>,
    min_count: Option<usize>,
    max_vocab: Option<usize>,
    keep_punctuation: Option<bool>,
    embedding_dim: Option<usize>,
    bptt: Option<usize>,
    cell: Option<String>,
    model: Option<String>,
    layers: Option<LayersValue>,
    input_shape: Option<String>,
    init: Option<String>,
    hidden: Option<Vec<usize>>,
    activation: Option<String>,
    factors: Option<usize>,
    mf_order: Option<String>,
    l2: Option<f64>,
    l1: Option<f64>,
    optimizer: Option<String>,
    lr: Option<f64>,
    momentum: Option<f64>,
    dampening: Option<f64>,
    beta1: Option<f64>,
    beta2: Option<f64>,
    eps: Option<f64>,
    weight_decay: Option<f64>,
    alpha: Option<f64>,
    rho: Option<f64>,
    amsgrad: Option<bool>,
    centered: Option<bool>,
    lr_decay: Option<f64>,
    batch_size: Option<String>,
    epochs: Option<usize>,
    schedule: Option<String>,
    gamma: Option<f64>,
    step_size: Option<u64>,
    milestones: Option<Vec<u64>>,
    max_lr: Option<f64>,
    eta_min: Option<f64>,
    plateau_patience: Option<usize>,
    warmup: Option<u64>,
    clip_norm: Option<f64>,
    clip_value: Option<f64>,
    early_stop: Option<usize>,
    tol: Option<f64>,
    val_fraction: Option<f64>,
    seed: Option<u64>,
    threads: Option<usize>,
    no_standardize: Option<bool>,
    folds: Option<usize>,
    save: Option<PathBuf>,
    checkpoint_every: Option<usize>,
    checkpoint: Option<PathBuf>,
    resume: Option<PathBuf>,
    plot: Option<PathBuf>,
    metrics_json: Option<PathBuf>,
    json: Option<bool>,
}

/// `layers` in a file: the `--layers` string, or `[[layers]]` tables in PyTorch's option names
/// (`type = "conv2d"`, `out_channels = 6`, `kernel_size = 5`, `padding = 2`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LayersValue {
    Text(String),
    Tables(Vec<gradus::nn::LayerSpec>),
}

/// The 1-based line where `key` (as written) is set in `text`, if it can be found.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            let rest = line
                .strip_prefix(key)
                .or_else(|| line.strip_prefix('"').and_then(|l| l.strip_prefix(key)).and_then(|l| l.strip_prefix('"')));
            matches!(rest.map(str::trim_start), Some(r) if r.starts_with('='))
        })
        .map(|i| i + 1)
}

fn read(path: &Path) -> Result<FileConfig, CliError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CliError::usage(format!("--config `{shown}`: file not found")),
        _ => CliError::usage(format!("--config `{shown}`: cannot read the file: {e}")),
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let message = e.message().trim().replace('\n', ": ");
        let at = e
            .span()
            .map(|span| {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!(", line {line}")
            })
            .unwrap_or_default();
        CliError::usage(format!("`{shown}`{at}: not a valid TOML file: {message}"))
    })?;
    let mut normalized = toml::Table::new();
    for (key, value) in table {
        let name = key.replace('-', "_");
        let at = line_of(&text, &key).map(|l| format!(", line {l}")).unwrap_or_default();
        if !KNOWN_KEYS.contains(&name.as_str()) {
            return Err(CliError::usage(format!(
                "`{shown}`{at}: unknown option `{key}`: expected a `gradus train` option named as its flag \
                 (`lr`, `batch_size` or `batch-size`, ...)"
            ))
            .hint("see `gradus train --help` for the options"));
        }
        if normalized.contains_key(&name) {
            return Err(CliError::usage(format!("`{shown}`{at}: option `{key}` is given twice")));
        }
        // A few options read naturally as one type or another: `batch_size = 32` or `"full"`,
        // `hidden = 64` or `[64, 32]`.
        let value = match (name.as_str(), value) {
            ("batch_size", toml::Value::Integer(n)) => toml::Value::String(n.to_string()),
            ("hidden" | "milestones", toml::Value::Integer(n)) => toml::Value::Array(vec![toml::Value::Integer(n)]),
            ("text", toml::Value::String(column)) => toml::Value::Array(vec![toml::Value::String(column)]),
            (_, v) => v,
        };
        if let ("layers", toml::Value::Array(tables)) = (name.as_str(), &value) {
            for (i, table) in tables.iter().enumerate() {
                let layer: gradus::nn::LayerSpec = table.clone().try_into().map_err(|e: toml::de::Error| {
                    CliError::usage(format!("`{shown}`{at}: layers[{i}]: {}", e.message().trim_end()))
                })?;
                layer.validate().map_err(|e| CliError::usage(format!("`{shown}`{at}: layers[{i}]: {e}")))?;
            }
        }
        let single = toml::Table::from_iter([(name.clone(), value.clone())]);
        toml::Value::Table(single)
            .try_into::<FileConfig>()
            .map_err(|e| CliError::usage(format!("`{shown}`{at}: option `{key}`: {}", e.message().trim_end())))?;
        normalized.insert(name, value);
    }
    toml::Value::Table(normalized)
        .try_into::<FileConfig>()
        .map_err(|e| CliError::usage(format!("`{shown}`: {}", e.message().trim_end())))
}

macro_rules! fill {
    ($dst:expr, $src:expr; $($field:ident),* $(,)?) => {
        $( if $dst.$field.is_none() { $dst.$field = $src.$field.take(); } )*
    };
}

/// Reads `args.config` (if given) into `args`, keeping every option given as a flag.
pub fn apply(args: &mut TrainArgs) -> Result<(), CliError> {
    let Some(path) = args.config.clone() else { return Ok(()) };
    let mut file = read(&path)?;
    if args.data.data.is_some() || args.data.dataset.is_some() {
        // A data source given as a flag replaces the file's, whichever kind either is.
        file.data = None;
        file.labels = None;
        file.dataset = None;
    }
    if file.data.is_some() && file.dataset.is_some() {
        return Err(CliError::usage(format!("`{}`: give `data` or `dataset`, not both", path.display())));
    }
    fill!(args.data, file; data, labels, dataset, target, task);
    if args.options.layers.is_none() {
        args.options.layers = file.layers.take().map(|layers| match layers {
            LayersValue::Text(text) => text,
            LayersValue::Tables(tables) => gradus::nn::format_list(&tables),
        });
    }
    fill!(args.options, file;
        model, input_shape, init, hidden, activation, factors, mf_order, l2, l1, optimizer, lr, momentum, dampening, beta1, beta2, eps,
        weight_decay, alpha, rho, lr_decay, batch_size, epochs, schedule, gamma, step_size, milestones, max_lr,
        eta_min, plateau_patience, warmup, clip_norm, clip_value, early_stop, tol, val_fraction, seed, threads);
    fill!(args.text, file; text, ngrams, buckets, ngram_min_count, min_count, max_vocab, embedding_dim, bptt, cell);
    args.text.keep_punctuation |= file.keep_punctuation.unwrap_or(false);
    fill!(args, file; folds, save, checkpoint_every, checkpoint, resume, plot, metrics_json);
    args.options.amsgrad |= file.amsgrad.unwrap_or(false);
    args.options.centered |= file.centered.unwrap_or(false);
    args.options.no_standardize |= file.no_standardize.unwrap_or(false);
    args.json |= file.json.unwrap_or(false);
    Ok(())
}

#[cfg(test)]
#[path = "config_fuzz.rs"]
mod fuzz;

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every `gradus train` flag but `--config` (and the global `--quiet`) can be set from a file.
    #[test]
    fn every_train_flag_is_a_known_key() {
        let cli = crate::args::Cli::command();
        let train = cli.find_subcommand("train").unwrap();
        for arg in train.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "config" | "quiet" | "help") {
                continue;
            }
            assert!(KNOWN_KEYS.contains(&id), "`{id}` is missing from KNOWN_KEYS");
        }
        assert_eq!(
            KNOWN_KEYS.len(),
            train.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "config" | "quiet" | "help")).count()
        );
    }

    #[test]
    fn finds_the_line_of_a_key() {
        let text = "lr = 0.1\n\n  \"batch-size\" = 3\nepochs=2\n";
        assert_eq!(line_of(text, "lr"), Some(1));
        assert_eq!(line_of(text, "batch-size"), Some(3));
        assert_eq!(line_of(text, "epochs"), Some(4));
        assert_eq!(line_of(text, "seed"), None);
    }
}
