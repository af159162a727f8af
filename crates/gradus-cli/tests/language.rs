//! Language models end to end: `gradus train --task language_model` on a small corpus,
//! `evaluate` (perplexity), `generate` (reproducible from its seed), and the flags and commands
//! that do not apply, in temporary folders.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GRADUS: &str = env!("CARGO_BIN_EXE_gradus");

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(GRADUS).args(args).current_dir(dir).output().expect("the gradus binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, args);
    assert!(o.status.success(), "gradus {args:?} failed:\n{}\n{}", text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, args);
    assert_eq!(o.status.code(), Some(2), "gradus {args:?}:\n{}\n{}", text(&o.stdout), text(&o.stderr));
    assert!(!text(&o.stderr).contains("panicked"), "{}", text(&o.stderr));
    text(&o.stderr)
}

/// A corpus of short documents in a small grammar, so that the next word is predictable.
fn corpus(dir: &Path, name: &str, lines: usize, seed: usize) -> PathBuf {
    let subjects = ["the dress", "this top", "the skirt", "my sweater"];
    let verbs = ["runs", "fits", "feels", "looks"];
    let objects = ["small", "true to size", "soft", "lovely", "cheap"];
    let mut out = String::new();
    for i in 0..lines {
        let k = i * 7 + seed;
        out.push_str(&format!("{} {} {}. i love it!\n", subjects[k % 4], verbs[(k / 4) % 4], objects[(k / 16) % 5]));
        if i % 10 == 3 {
            out.push('\n'); // empty documents are skipped
        }
    }
    let path = dir.join(name);
    fs::write(&path, out).unwrap();
    path
}

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradus-lm-{name}-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

const SMALL: [&str; 16] = [
    "--task",
    "language_model",
    "--hidden",
    "24",
    "--embedding-dim",
    "12",
    "--bptt",
    "6",
    "--batch-size",
    "4",
    "--epochs",
    "4",
    "--lr",
    "0.02",
    "--seed",
    "3",
];

#[test]
fn trains_evaluates_and_generates() {
    let dir = dir("train");
    corpus(&dir, "corpus.txt", 400, 0);
    corpus(&dir, "held_out.txt", 80, 5);
    let mut args = vec!["train", "--data", "corpus.txt"];
    args.extend(SMALL);
    args.extend(["--save", "lm.json", "--metrics-json", "m.json"]);
    let out = ok(&dir, &args);
    assert!(out.contains("perplexity"), "{out}");
    assert!(out.contains("vocabulary: 23 words"), "{out}");
    let metrics: serde_json::Value = serde_json::from_str(&fs::read_to_string(dir.join("m.json")).unwrap()).unwrap();
    let perplexity = metrics["validation"]["perplexity"].as_f64().unwrap();
    // 21 tokens: a uniform guess has perplexity 21; the grammar leaves a few choices per word.
    assert!(perplexity < 5.0, "validation perplexity {perplexity}");
    let evaluated: serde_json::Value =
        serde_json::from_str(&ok(&dir, &["evaluate", "lm.json", "--data", "held_out.txt", "--json"])).unwrap();
    let held_out = evaluated["metrics"]["perplexity"].as_f64().unwrap();
    assert!(held_out < 5.0 && held_out > 1.0, "{evaluated}");
    assert!((evaluated["metrics"]["loss"].as_f64().unwrap().exp() - held_out).abs() < 1e-9);
    // Generation: from the seed, reproducibly; greedy decoding follows the grammar.
    let generate = ["generate", "lm.json", "--prompt", "the dress", "--words", "6", "--seed", "7"];
    let first = ok(&dir, &generate);
    assert_eq!(first, ok(&dir, &generate));
    assert!(first.starts_with("the dress "), "{first}");
    let greedy =
        ok(&dir, &["generate", "lm.json", "--prompt", "my sweater fits", "--temperature", "0", "--words", "3"]);
    assert!(
        ["small", "true", "soft", "lovely", "cheap"]
            .iter()
            .any(|w| greedy.starts_with(&format!("my sweater fits {w}"))),
        "{greedy}"
    );
    let samples = ok(&dir, &["generate", "lm.json", "--samples", "3", "--top-k", "3", "--words", "4"]);
    assert_eq!(samples.lines().count(), 3, "{samples}");
    // An unknown prompt word is said, not fatal.
    let o = run_in(&dir, &["generate", "lm.json", "--prompt", "zebra", "--words", "2"]);
    assert!(o.status.success() && text(&o.stderr).contains("`zebra`"), "{}", text(&o.stderr));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flags_and_commands_that_do_not_apply_are_errors() {
    let dir = dir("errors");
    corpus(&dir, "corpus.txt", 200, 0);
    let mut args = vec!["train", "--data", "corpus.txt"];
    args.extend(SMALL);
    args.extend(["--save", "lm.json"]);
    ok(&dir, &args);
    for (extra, expected) in [
        (vec!["--folds", "3"], "--folds is not available for language models"),
        (vec!["--resume", "x.ckpt"], "--resume `x.ckpt`: checkpoint file not found"),
        (vec!["--plot", "p.txt"], "expected a file name ending in .png or .svg"),
        (vec!["--ngrams", "2"], "--ngrams does not apply to a language model"),
        (vec!["--batch-size", "full"], "--batch-size"),
        (vec!["--hidden", "8,16"], "all equal"),
        (vec!["--bptt", "0"], "--bptt"),
        (vec!["--optimizer", "lbfgs"], "lbfgs"),
        (vec!["--batch-size", "1000"], "too few for one chunk"),
        (vec!["--model", "mlp"], "does not predict the next word"),
        (vec!["--hidden", "3000000000"], "--hidden 3000000000, --embedding-dim 200"),
    ] {
        let mut args = vec!["train", "--data", "corpus.txt", "--task", "language_model"];
        args.extend(extra);
        let err = fails(&dir, &args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    fs::write(dir.join("c.toml"), "task = \"language_model\"\ncell = \"rnn\"\n").unwrap();
    let err = fails(&dir, &["train", "--data", "corpus.txt", "--config", "c.toml"]);
    assert!(err.contains("--cell") && err.contains("lstm or gru"), "{err}");
    let err = fails(&dir, &["predict", "lm.json", "--text", "the dress"]);
    assert!(err.contains("gradus generate"), "{err}");
    let err = fails(&dir, &["generate", "lm.json", "--temperature", "-1"]);
    assert!(err.contains("--temperature"), "{err}");
    let err = fails(&dir, &["generate", "lm.json", "--top-k", "0"]);
    assert!(err.contains("--top-k"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}

/// A language model's run written to checkpoints and resumed ends with the uninterrupted run's
/// parameters, bit for bit; a resume with another network is refused; `--plot` draws the curves.
#[test]
fn checkpoints_resume_a_language_model_exactly() {
    let dir = dir("resume");
    corpus(&dir, "corpus.txt", 300, 1);
    // SMALL without its epochs and hidden size, which these runs set.
    let small: Vec<&str> =
        SMALL.chunks(2).filter(|pair| !matches!(pair[0], "--epochs" | "--hidden")).flatten().copied().collect();
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut args = vec!["train", "--data", "corpus.txt"];
        args.extend(&small);
        args.extend(extra);
        args
    };
    let run = |extra: &[&'static str]| ok(&dir, &with(&[extra, &["--hidden", "24"]].concat()));
    run(&["--epochs", "3", "--save", "full.json"]);
    run(&["--epochs", "2", "--checkpoint-every", "1", "--checkpoint", "lm.ckpt"]);
    let out = run(&["--epochs", "3", "--resume", "lm.ckpt", "--save", "resumed.json", "--plot", "curves.svg"]);
    assert!(out.contains("resuming after epoch 2"), "{out}");
    let params = |name: &str| {
        let saved: serde_json::Value = serde_json::from_str(&fs::read_to_string(dir.join(name)).unwrap()).unwrap();
        saved["params"].clone()
    };
    assert_eq!(params("full.json"), params("resumed.json"));
    assert!(fs::read_to_string(dir.join("curves.svg")).unwrap().contains("<svg"));
    let err = fails(&dir, &with(&["--epochs", "3", "--resume", "lm.ckpt", "--hidden", "20"]));
    assert!(err.contains("was written by another run") && err.contains("network"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}
