//! Text classifiers end to end: `gradus train --text`, `predict --text`, `predict --data`,
//! `evaluate`, on small synthetic reviews (positive and negative words) in temporary folders.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const GRADUS: &str = env!("CARGO_BIN_EXE_gradus");

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(GRADUS).args(args).current_dir(dir).output().expect("the gradus binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, args);
    assert!(o.status.success(), "gradus {args:?} failed ({:?}):\n{}\n{}", o.status.code(), stdout(&o), stderr(&o));
    stdout(&o)
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, args);
    assert_eq!(o.status.code(), Some(2), "gradus {args:?}:\n{}\n{}", stdout(&o), stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    stderr(&o)
}

const GOOD: [&str; 6] = ["lovely", "great", "soft", "perfect", "flattering", "comfortable"];
const BAD: [&str; 6] = ["cheap", "scratchy", "awful", "tight", "returned", "disappointing"];
const FILLER: [&str; 6] = ["the", "dress", "fabric", "color", "fits", "and"];

/// Reviews whose label follows their sentiment words: a title, a review (some empty, some quoted
/// with commas and line breaks), a 1–5 rating and a 0/1 recommendation.
fn reviews_csv(rows: usize) -> String {
    let mut s = String::from("id,title,review_text,rating,recommended\n");
    for i in 0..rows {
        let positive = (i * 7 + i / 3) % 5 < 3;
        let words = if positive { GOOD } else { BAD };
        let w1 = words[i % 6];
        let w2 = words[(i / 6 + 1) % 6];
        let f = FILLER[(i * 5) % 6];
        let title = if i % 4 == 0 { String::new() } else { format!("{w1}!") };
        let review = match i % 9 {
            0 => String::new(),
            1 => format!("\"{f} {w2}, really {w1}\nvery {w2}\""),
            _ => format!("{f} is {w2} {f} {w1}"),
        };
        let (rating, recommended) = if positive { (4 + i % 2, 1) } else { (1 + i % 3, 0) };
        s.push_str(&format!("{i},{title},{review},{rating},{recommended}\n"));
    }
    s
}

fn setup(rows: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("reviews.csv"), reviews_csv(rows)).unwrap();
    dir
}

fn accuracy(out: &str, set: &str) -> f64 {
    let line = out.lines().find(|l| l.trim_start().starts_with(set)).unwrap_or_else(|| panic!("no {set} line:\n{out}"));
    line.split_whitespace().last().unwrap().parse().unwrap()
}

const FAST: [&str; 8] = ["--lr", "0.05", "--epochs", "8", "--buckets", "1000", "--embedding-dim", "16"];

#[test]
fn trains_saves_and_predicts_sentiment() {
    let dir = setup(400);
    let d = dir.path();
    let mut args = vec!["train", "--data", "reviews.csv", "--text", "title,review_text", "--target", "recommended"];
    args.extend(FAST);
    args.extend(["--save", "m.json"]);
    let out = ok(d, &args);
    assert!(out.contains("text `title` + `review_text`"), "{out}");
    assert!(out.contains("rows without text"), "{out}");
    assert!(out.contains("embedding_bag("), "{out}");
    assert!(accuracy(&out, "validation") >= 0.95, "{out}");

    // predict --text: the class and its probability, unknown words included.
    let out = ok(d, &["predict", "m.json", "--text", "lovely soft fabric", "--text", "cheap scratchy, returned it"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("1 ") && lines[0].contains('%'), "{out}");
    assert!(lines[1].starts_with("0 "), "{out}");
    let out = ok(d, &["predict", "m.json", "--text", "zzz qqq never seen", "--text", ""]);
    assert_eq!(out.lines().count(), 2, "{out}");

    // predict --data writes one row per text, as for other classifiers; the file needs only the
    // text columns, and outputs never overwrite inputs.
    fs::write(d.join("new.csv"), "title,review_text\nperfect!,so lovely and soft\n,\"awful, tight\"\n").unwrap();
    ok(d, &["predict", "m.json", "--data", "new.csv", "--out", "p.csv"]);
    let p = fs::read_to_string(d.join("p.csv")).unwrap();
    let rows: Vec<&str> = p.lines().collect();
    assert_eq!(rows[0], "prediction,p_0,p_1");
    assert!(rows[1].starts_with("1,") && rows[2].starts_with("0,"), "{p}");
    fails(d, &["predict", "m.json", "--data", "new.csv", "--out", "new.csv"]);

    // The reloaded model predicts exactly what was saved, and evaluates the training file.
    let again = ok(d, &["predict", "m.json", "--data", "new.csv"]);
    assert_eq!(again, p);
    let out = ok(d, &["evaluate", "m.json", "--data", "reviews.csv"]);
    assert!(accuracy(&out, "metrics") >= 0.95, "{out}");
    let saved: serde_json::Value = serde_json::from_str(&fs::read_to_string(d.join("m.json")).unwrap()).unwrap();
    assert_eq!(saved["text"]["columns"], serde_json::json!(["title", "review_text"]));
    assert_eq!(saved["text"]["vocabulary"]["options"]["ngrams"], 2);

    // A file without the text columns names them.
    fs::write(d.join("other.csv"), "a,b\n1,2\n").unwrap();
    let err = fails(d, &["predict", "m.json", "--data", "other.csv"]);
    assert!(err.contains("`title`") && err.contains("`a`, `b`"), "{err}");
}

#[test]
fn five_ratings_and_words_only() {
    let dir = setup(300);
    let mut args =
        vec!["train", "--data", "reviews.csv", "--text", "review_text", "--target", "rating", "--ngrams", "1"];
    args.extend(FAST);
    let out = ok(dir.path(), &args);
    assert!(out.contains("multiclass, 5 classes"), "{out}");
    assert!(out.contains("linear(5)"), "{out}");
    assert!(!out.contains("hash buckets") && !out.contains("grams"), "{out}");
}

/// By default the bigrams seen at least 3 times in the training rows are tokens of their own,
/// saved with the model, and `predict --explain` names them.
#[test]
fn an_ngram_vocabulary_by_default() {
    let dir = setup(300);
    let d = dir.path();
    let out = ok(
        d,
        &[
            "train",
            "--data",
            "reviews.csv",
            "--text",
            "title,review_text",
            "--target",
            "recommended",
            "--epochs",
            "2",
            "--save",
            "m.json",
        ],
    );
    assert!(out.contains("2-grams seen at least 3 times"), "{out}");
    let saved: serde_json::Value = serde_json::from_str(&fs::read_to_string(d.join("m.json")).unwrap()).unwrap();
    let vocabulary = &saved["text"]["vocabulary"];
    assert_eq!(vocabulary["options"]["ngram_min_count"], 3);
    let ngrams = vocabulary["ngrams"].as_array().unwrap();
    assert!(!ngrams.is_empty() && ngrams.iter().all(|n| n.as_str().unwrap().contains(' ')), "{vocabulary}");
    let words = vocabulary["words"].as_array().unwrap().len();
    let table = saved["model"]["network"]["layers"][0]["num_embeddings"].as_u64().unwrap() as usize;
    assert_eq!(table, 1 + words + ngrams.len());
    let first = ngrams[0].as_str().unwrap();
    let out = ok(d, &["predict", "m.json", "--text", &format!("{first} nice"), "--explain"]);
    assert!(out.contains(&format!("\"{first}\"")), "{out}");
}

#[test]
fn bad_text_options_are_errors() {
    let dir = setup(40);
    let d = dir.path();
    let err = fails(d, &["train", "--data", "reviews.csv", "--text", "title,body", "--target", "recommended"]);
    assert!(err.contains("no column named `body`") && err.contains("`review_text`"), "{err}");
    let err = fails(d, &["train", "--data", "reviews.csv", "--text", "recommended", "--target", "recommended"]);
    assert!(err.contains("is the target"), "{err}");
    let err = fails(d, &["train", "--data", "reviews.csv", "--model", "text_classifier"]);
    assert!(err.contains("--text"), "{err}");
    let err = fails(d, &["train", "--data", "reviews.csv", "--text", "title", "--ngrams", "0"]);
    assert!(err.contains("ngrams"), "{err}");
    let err =
        fails(d, &["train", "--data", "reviews.csv", "--text", "title", "--buckets", "10", "--ngram-min-count", "2"]);
    assert!(err.contains("--buckets 10 with --ngram-min-count 2"), "{err}");
    let err = fails(d, &["train", "--dataset", "iris", "--ngram-min-count", "2"]);
    assert!(err.contains("--ngram-min-count applies to text"), "{err}");
    let err = fails(d, &["train", "--data", "reviews.csv", "--text", "title", "--hidden", "8"]);
    assert!(err.contains("--hidden does not apply"), "{err}");
    let err = fails(d, &["train", "--dataset", "iris", "--ngrams", "2"]);
    assert!(err.contains("--ngrams applies to text"), "{err}");
    let err = fails(d, &["train", "--dataset", "reviews", "--model", "mlp"]);
    assert!(err.contains("holds text"), "{err}");
    // A table beyond memory names the flags that size it, before anything that large is allocated.
    let err = fails(d, &["train", "--data", "reviews.csv", "--text", "title", "--embedding-dim", "4000000000"]);
    assert!(err.contains("--embedding-dim") && err.contains("available"), "{err}");
}

#[test]
fn text_options_from_a_config_file() {
    let dir = setup(120);
    let d = dir.path();
    fs::write(
        d.join("c.toml"),
        "data = \"reviews.csv\"\ntext = [\"title\", \"review_text\"]\ntarget = \"recommended\"\nbuckets = 500\n\
         embedding_dim = 8\nepochs = 2\nmin_count = 2\n",
    )
    .unwrap();
    let out = ok(d, &["train", "--config", "c.toml"]);
    assert!(out.contains("500 hash buckets"), "{out}");
    assert!(out.contains("embedding_bag("), "{out}");
}

#[test]
fn models_from_before_text_still_load() {
    let dir = setup(10);
    let d = dir.path();
    fs::write(d.join("num.csv"), "a,b,y\n0,1,0\n1,0,1\n0,0,0\n1,1,1\n0,1,0\n1,0,1\n").unwrap();
    ok(d, &["train", "--data", "num.csv", "--model", "logistic", "--epochs", "2", "--save", "old.json"]);
    let text = fs::read_to_string(d.join("old.json")).unwrap();
    assert!(!text.contains("\"text\""), "files of feature models are unchanged");
    ok(d, &["predict", "old.json", "--data", "num.csv"]);
    let err = fails(d, &["predict", "old.json", "--text", "hello"]);
    assert!(err.contains("not text"), "{err}");
}

/// The numbers of an `--explain` block: each listed contribution (and each `N more` total), the
/// logit, the bias and the tokens' total.
struct Explained {
    towards: Vec<(String, f64)>,
    against: Vec<(String, f64)>,
    logit: f64,
    bias: f64,
    tokens: f64,
}

fn items(line: &str) -> Vec<(String, f64)> {
    let (_, list) = line.split_once(": ").unwrap_or_else(|| panic!("no list: {line}"));
    if list == "none" {
        return Vec::new();
    }
    list.split(", ")
        .map(|item| {
            let (name, value) = item.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {item}"));
            (name.to_string(), value.parse().unwrap_or_else(|_| panic!("not a number: {item}")))
        })
        .collect()
}

/// The explanation of the prediction whose line starts `lines[0]` (the next three lines).
fn explained(lines: &[&str]) -> Explained {
    let towards = lines[1].strip_prefix("  towards ").unwrap_or_else(|| panic!("{lines:?}"));
    let against = lines[2].strip_prefix("  against ").unwrap_or_else(|| panic!("{lines:?}"));
    // "  (logit 3.27 = bias 0.35 + the 7 tokens' 2.92)"
    let check = lines[3].trim().trim_start_matches('(').trim_end_matches(')');
    let words: Vec<&str> = check.split_whitespace().collect();
    assert_eq!(words[0], "logit", "{check}");
    Explained {
        towards: items(towards),
        against: items(against),
        logit: words[1].parse().unwrap(),
        bias: words[4].parse().unwrap(),
        tokens: words.last().unwrap().parse().unwrap(),
    }
}

/// The probability (0 to 1) of a prediction line `CLASS P%  TEXT`.
fn probability(line: &str) -> f64 {
    let p = line.split_whitespace().nth(1).unwrap();
    p.strip_suffix('%').unwrap().parse::<f64>().unwrap() / 100.0
}

#[test]
fn explain_sums_to_the_logit_of_the_printed_probability() {
    let dir = setup(400);
    let d = dir.path();
    let mut args = vec!["train", "--data", "reviews.csv", "--text", "title,review_text", "--target", "recommended"];
    args.extend(FAST);
    args.extend(["--save", "m.json"]);
    ok(d, &args);
    let texts = ["lovely soft, lovely", "cheap scratchy, returned it", "the dress fits and the color is awful"];
    let mut args = vec!["predict", "m.json", "--explain"];
    for t in texts {
        args.extend(["--text", t]);
    }
    let out = ok(d, &args);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4 * texts.len(), "{out}");
    for block in lines.chunks(4) {
        let e = explained(block);
        // Contributions plus bias are the logit: every token's share is listed or summed in `N more`.
        let listed: f64 = e.towards.iter().chain(&e.against).map(|(_, v)| v).sum();
        let shown = e.towards.len() + e.against.len();
        assert!((listed - e.tokens).abs() <= 0.005 * shown as f64 + 1e-9, "{out}");
        assert!((e.bias + e.tokens - e.logit).abs() <= 0.0151, "{out}");
        // The logit is the predicted class's: its sigmoid is the printed probability (binary).
        let p = 1.0 / (1.0 + (-e.logit).exp());
        assert!((p - probability(block[0])).abs() <= 0.0025, "sigmoid({}) = {p}:\n{out}", e.logit);
        assert!(e.logit >= 0.0, "the predicted class's logit is positive: {out}");
        assert!(e.towards.iter().all(|(_, v)| *v >= 0.0) && e.against.iter().all(|(_, v)| *v <= 0.0), "{out}");
        assert!(e.towards.len() <= 6 && e.against.len() <= 6, "{out}");
    }
    // The repeated word is listed once, counted twice; n-grams are named by their words (the
    // five tokens of the first text, four distinct, are all listed).
    assert!(lines[0].starts_with("1 "), "{out}");
    assert!(out.contains("lovely ×2 +"), "{out}");
    assert!(out.contains("\"lovely soft\""), "{out}");
    assert!(lines[4].starts_with("0 ") && lines[5].starts_with("  towards 0: "), "{out}");

    // Unknown words are named with a mark; an empty text has no tokens.
    let out = ok(d, &["predict", "m.json", "--explain", "--text", "lovely zzzq", "--text", ""]);
    assert!(out.contains("zzzq (unknown)"), "{out}");
    let last = out.lines().last().unwrap();
    assert!(last.contains("no tokens"), "{out}");

    // A multiclass model: the same sum for the predicted class's logit.
    let mut args =
        vec!["train", "--data", "reviews.csv", "--text", "review_text", "--target", "rating", "--save", "r.json"];
    args.extend(FAST);
    ok(d, &args);
    let out = ok(d, &["predict", "r.json", "--explain", "--text", "so lovely and soft, perfect"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    let e = explained(&lines);
    assert!((e.bias + e.tokens - e.logit).abs() <= 0.0151, "{out}");
}

#[test]
fn explain_lists_the_deciding_word_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let filler = ["the", "shirt", "was", "blue", "with", "pockets", "and", "buttons"];
    let mut csv = String::from("text,label\n");
    for i in 0..300 {
        let key = if i % 2 == 0 { "zorble" } else { "quimby" };
        let mut words: Vec<&str> = (0..4).map(|k| filler[(i * 3 + k * 5 + i / 7) % filler.len()]).collect();
        words.insert((i / 2) % 5, key);
        csv.push_str(&format!("{},{}\n", words.join(" "), 1 - i % 2));
    }
    fs::write(d.join("keys.csv"), csv).unwrap();
    let mut args = vec!["train", "--data", "keys.csv", "--text", "text", "--target", "label", "--save", "k.json"];
    args.extend(FAST);
    ok(d, &args);
    for (text, class, key) in
        [("the blue shirt zorble with pockets", "1", "zorble"), ("quimby the shirt and buttons", "0", "quimby")]
    {
        let out = ok(d, &["predict", "k.json", "--explain", "--text", text]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with(&format!("{class} ")), "{out}");
        let e = explained(&lines);
        assert_eq!(e.towards[0].0, key, "{out}");
    }
}

#[test]
fn explain_needs_text_and_the_terminal() {
    let dir = setup(60);
    let d = dir.path();
    let err = fails(d, &["predict", "m.json", "--explain"]);
    assert!(err.contains("--text"), "{err}");
    let mut args = vec!["train", "--data", "reviews.csv", "--text", "title,review_text", "--target", "recommended"];
    args.extend(["--epochs", "1", "--buckets", "100", "--embedding-dim", "4", "--save", "m.json"]);
    ok(d, &args);
    let err = fails(d, &["predict", "m.json", "--explain", "--data", "reviews.csv"]);
    assert!(err.contains("--explain") && err.contains("--data"), "{err}");
    let err = fails(d, &["predict", "m.json", "--explain", "--text", "lovely", "--out", "p.csv"]);
    assert!(err.contains("--explain") && err.contains("--out"), "{err}");
    assert!(!d.join("p.csv").exists());
}

/// A text classifier's run written to checkpoints and resumed ends with the uninterrupted run's
/// parameters, bit for bit (the sparse path's rollback record included); another tokenization is
/// refused; `--plot` draws the curves.
#[test]
fn checkpoints_resume_a_text_classifier_exactly() {
    let dir = setup(300);
    let d = dir.path();
    let base = ["train", "--data", "reviews.csv", "--text", "title,review_text", "--target", "recommended"];
    let run = |extra: &[&str]| ok(d, &[&base[..], extra].concat());
    run(&["--epochs", "3", "--save", "full.json"]);
    run(&["--epochs", "2", "--checkpoint-every", "1", "--checkpoint", "t.ckpt"]);
    let out = run(&["--epochs", "3", "--resume", "t.ckpt", "--save", "resumed.json", "--plot", "curves.svg"]);
    assert!(out.contains("resuming after epoch 2"), "{out}");
    let params = |name: &str| {
        let saved: serde_json::Value = serde_json::from_str(&fs::read_to_string(d.join(name)).unwrap()).unwrap();
        saved["params"].clone()
    };
    assert_eq!(params("full.json"), params("resumed.json"));
    assert!(fs::read_to_string(d.join("curves.svg")).unwrap().contains("<svg"));
    let err = fails(d, &[&base[..], &["--epochs", "3", "--resume", "t.ckpt", "--ngram-min-count", "2"]].concat());
    assert!(err.contains("was written by another run") && err.contains("tokens"), "{err}");
}
