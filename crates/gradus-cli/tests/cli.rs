//! The `gradus` binary, run for real on tiny data in temporary folders: every command and flag
//! family, and a table of bad inputs checked for their exit code, a message naming the culprit,
//! and no partial output files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

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

/// Runs and expects success, returning stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, args);
    assert!(o.status.success(), "gradus {args:?} failed ({:?}):\n{}\n{}", o.status.code(), stdout(&o), stderr(&o));
    stdout(&o)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// A small two-feature binary data set (integer labels 3 and 7, not 0/1, to exercise the label map).
fn binary_csv() -> String {
    let mut s = String::from("a,b,label\n");
    for i in 0..40 {
        let a = (i as f64 * 0.37).sin() * 3.0;
        let b = (i as f64 * 0.91).cos() * 2.0 + 5.0;
        let label = if a + 0.5 * (b - 5.0) > 0.0 { 7 } else { 3 };
        s.push_str(&format!("{a:.4},{b:.4},{label}\n"));
    }
    s
}

/// A small regression data set with a large-scale target.
fn regression_csv() -> String {
    let mut s = String::from("u,v,w,target\n");
    for i in 0..50 {
        let u = (i as f64 * 0.13).sin();
        let v = (i as f64 * 0.71).cos() * 10.0;
        let w = i as f64 * 0.5;
        let t = 150.0 + 40.0 * u - 3.0 * v + 0.7 * w + (i as f64 * 1.7).sin();
        s.push_str(&format!("{u:.5},{v:.5},{w:.5},{t:.4}\n"));
    }
    s
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let f = Self { dir: tempfile::tempdir().unwrap() };
        f.write("bin.csv", &binary_csv());
        f.write("reg.csv", &regression_csv());
        f
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        fs::write(self.file(name), text).unwrap();
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(self.path(), args)
    }
}

#[test]
fn readme_first_command_trains_an_mlp_on_digits() {
    // `cargo run --release -- train`: no arguments at all.
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["train", "--metrics-json", "m.json"]);
    for expected in [
        "built-in data set `digits` (1797 rows × 64 features",
        "task: multiclass, 10 classes",
        "mlp 64-128-10 relu",
        "adam (lr 0.001)",
        "batch 32, 20 epochs",
        "features standardized on the training rows",
        "trained 20 epochs in",
        "validation",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    let m = read_json(&dir.path().join("m.json"));
    assert_eq!(m["history"].as_array().unwrap().len(), 20);
    assert!(m["validation"]["accuracy"].as_f64().unwrap() > 0.9, "{}", m["validation"]);
}

#[test]
fn train_on_a_csv_infers_and_says_the_task() {
    let f = Fixture::new();
    let out = f.ok(&["train", "--data", "bin.csv", "--epochs", "2", "--hidden", "8"]);
    assert!(out.contains("task: binary, 2 classes (inferred"), "{out}");
    let out = f.ok(&["train", "--data", "reg.csv", "--epochs", "2"]);
    assert!(out.contains("task: regression (inferred"), "{out}");
    assert!(out.contains("linear regression"), "{out}");
    assert!(out.contains("rmse") && out.contains("r2"), "{out}");
    let out = f.ok(&["train", "--data", "bin.csv", "--task", "multiclass", "--model", "softmax", "--epochs", "1"]);
    assert!(out.contains("given by --task") && out.contains("softmax regression"), "{out}");
}

#[test]
fn saved_classifier_evaluates_and_predicts_as_training_reported() {
    let f = Fixture::new();
    f.ok(&[
        "train",
        "--data",
        "bin.csv",
        "--epochs",
        "3",
        "--hidden",
        "8",
        "--val-fraction",
        "0",
        "--save",
        "m.json",
        "--metrics-json",
        "t.json",
        "-q",
    ]);
    let trained = read_json(&f.file("t.json"));
    let evaluated: Value = serde_json::from_str(&f.ok(&["evaluate", "m.json", "--data", "bin.csv", "--json"])).unwrap();
    for metric in ["loss", "accuracy"] {
        let a = trained["train"][metric].as_f64().unwrap();
        let b = evaluated["metrics"][metric].as_f64().unwrap();
        assert!(close(a, b), "{metric}: trained {a}, evaluated {b}");
    }
    f.ok(&["predict", "m.json", "--data", "bin.csv", "--out", "p.csv"]);
    let predictions = fs::read_to_string(f.file("p.csv")).unwrap();
    let mut lines = predictions.lines();
    assert_eq!(lines.next(), Some("prediction,p_3,p_7"));
    let csv = binary_csv();
    let labels: Vec<&str> = csv.lines().skip(1).map(|l| l.rsplit(',').next().unwrap()).collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 40);
    let hits = rows.iter().zip(&labels).filter(|(r, l)| r[0] == **l).count();
    let accuracy = hits as f64 / 40.0;
    assert!(close(accuracy, evaluated["metrics"]["accuracy"].as_f64().unwrap()));
    for r in &rows {
        let p: f64 = r[1].parse::<f64>().unwrap() + r[2].parse::<f64>().unwrap();
        assert!((p - 1.0).abs() < 1e-6, "{r:?}");
    }
    // The same predictions on stdout, and with the columns in another order and no target.
    let printed = f.ok(&["predict", "m.json", "--data", "bin.csv"]);
    assert_eq!(printed, predictions);
    let reordered: String = binary_csv()
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            format!("{},{}\n", c[1], c[0])
        })
        .collect();
    f.write("reordered.csv", &reordered);
    assert_eq!(f.ok(&["predict", "m.json", "--data", "reordered.csv"]), predictions);
}

#[test]
fn saved_regression_model_evaluates_and_predicts_in_target_units() {
    let f = Fixture::new();
    f.ok(&[
        "train",
        "--data",
        "reg.csv",
        "--epochs",
        "40",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--val-fraction",
        "0",
        "--save",
        "r.json",
        "--metrics-json",
        "t.json",
        "-q",
    ]);
    let trained = read_json(&f.file("t.json"));
    let evaluated: Value = serde_json::from_str(&f.ok(&["evaluate", "r.json", "--data", "reg.csv", "--json"])).unwrap();
    for metric in ["loss", "rmse", "mae", "r2"] {
        let a = trained["train"][metric].as_f64().unwrap();
        let b = evaluated["metrics"][metric].as_f64().unwrap();
        assert!(close(a, b), "{metric}: trained {a}, evaluated {b}");
    }
    // Trained on a standardized target, it still predicts in the target's units.
    assert!(evaluated["metrics"]["r2"].as_f64().unwrap() > 0.8, "{evaluated}");
    let predictions = f.ok(&["predict", "r.json", "--data", "reg.csv"]);
    let values: Vec<f64> = predictions.lines().skip(1).map(|l| l.parse().unwrap()).collect();
    let targets: Vec<f64> =
        regression_csv().lines().skip(1).map(|l| l.rsplit(',').next().unwrap().parse().unwrap()).collect();
    let mae = values.iter().zip(&targets).map(|(p, t)| (p - t).abs()).sum::<f64>() / 50.0;
    let reported = evaluated["metrics"]["mae"].as_f64().unwrap();
    assert!((mae - reported).abs() < 1e-3 * reported.max(1.0), "mae from predictions {mae}, evaluate {reported}");
}

#[test]
fn metrics_json_has_every_field() {
    let f = Fixture::new();
    f.ok(&["train", "--data", "bin.csv", "--epochs", "3", "--hidden", "4", "--metrics-json", "m.json", "-q"]);
    let m = read_json(&f.file("m.json"));
    for field in ["task", "model", "optimizer", "epochs", "seconds", "train", "validation", "folds", "history"] {
        assert!(m.get(field).is_some(), "no `{field}` in {m}");
    }
    assert_eq!(m["task"], "binary");
    assert_eq!(m["model"], "mlp");
    assert_eq!(m["optimizer"], "adam");
    assert_eq!(m["epochs"], 3);
    assert_eq!(m["history"].as_array().unwrap().len(), 3);
    assert_eq!(m["history"][2]["epoch"], 3);
    assert!(m["train"]["loss"].is_number() && m["train"]["accuracy"].is_number());
    assert!(m["validation"]["accuracy"].is_number());
    assert_eq!(m["folds"], Value::Array(vec![]));
}

#[test]
fn folds_report_each_fold_and_their_mean() {
    let f = Fixture::new();
    let out = f.ok(&[
        "train",
        "--data",
        "reg.csv",
        "--folds",
        "3",
        "--epochs",
        "2",
        "--metrics-json",
        "m.json",
        "--save",
        "s.json",
    ]);
    assert!(out.contains("fold 3") && out.contains("mean held-out"), "{out}");
    let m = read_json(&f.file("m.json"));
    let folds = m["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 3);
    let held_out: usize = folds.iter().map(|f| f["validation_rows"].as_u64().unwrap() as usize).sum();
    assert_eq!(held_out, 50, "every row is held out exactly once");
    for metric in ["loss", "rmse", "mae", "r2"] {
        let mean = folds.iter().map(|f| f["validation"][metric].as_f64().unwrap()).sum::<f64>() / 3.0;
        assert!(close(mean, m["validation"][metric].as_f64().unwrap()), "{metric}");
    }
    // The saved model is trained on all rows.
    assert!(out.contains("trained on all 50 rows"), "{out}");
    assert!(f.file("s.json").exists());
}

#[test]
fn json_prints_one_object_per_epoch_on_stdout() {
    let f = Fixture::new();
    let o = run_in(f.path(), &["train", "--data", "bin.csv", "--epochs", "4", "--hidden", "4", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("each stdout line is JSON")).collect();
    assert_eq!(lines.len(), 4, "{out}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["epoch"], i + 1);
        assert!(line["train"]["loss"].is_number() && line["validation"]["accuracy"].is_number());
        assert!(line["lr"].is_number());
    }
    assert!(stderr(&o).contains("trained 4 epochs"), "the summary goes to stderr with --json");
}

#[test]
fn config_file_sets_options_and_flags_override_it() {
    let f = Fixture::new();
    f.write(
        "run.toml",
        "data = \"bin.csv\"\nepochs = 5\nbatch-size = \"full\"\nlr = 0.02\nhidden = 6\noptimizer = \"momentum\"\nseed = 3\n",
    );
    f.ok(&["train", "--config", "run.toml", "--epochs", "2", "--metrics-json", "m.json", "-q"]);
    let m = read_json(&f.file("m.json"));
    assert_eq!(m["epochs"], 2, "the flag overrides the file");
    assert_eq!(m["batch_size"], "full");
    assert_eq!(m["optimizer"], "momentum");
    assert_eq!(m["optimizer_options"]["lr"], 0.02);
    assert_eq!(m["optimizer_options"]["momentum"], 0.9);
    assert_eq!(m["seed"], 3);
    assert!(m["model_description"].as_str().unwrap().contains("2-6-1"), "{}", m["model_description"]);
    // snake_case works too, and a data flag replaces the file's.
    f.write("snake.toml", "data = \"missing.csv\"\nbatch_size = 8\nval_fraction = 0.25\n");
    f.ok(&["train", "--config", "snake.toml", "--data", "bin.csv", "--epochs", "1", "--metrics-json", "s.json", "-q"]);
    assert_eq!(read_json(&f.file("s.json"))["batch_size"], "8");
}

#[test]
fn resume_reproduces_an_uninterrupted_run_exactly() {
    let f = Fixture::new();
    let common = ["train", "--data", "bin.csv", "--hidden", "8", "--optimizer", "adam", "--batch-size", "7", "-q"];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = common.to_vec();
        a.extend_from_slice(extra);
        f.ok(&a);
    };
    with(&["--epochs", "5", "--save", "full.json"]);
    with(&["--epochs", "2", "--checkpoint-every", "2", "--checkpoint", "run.ckpt"]);
    assert!(f.file("run.ckpt").exists());
    with(&["--epochs", "5", "--resume", "run.ckpt", "--save", "resumed.json", "--metrics-json", "m.json"]);
    let full = read_json(&f.file("full.json"));
    let resumed = read_json(&f.file("resumed.json"));
    assert_eq!(full["params"], resumed["params"], "resumed parameters differ from an uninterrupted run");
    assert_eq!(read_json(&f.file("m.json"))["history"].as_array().unwrap().len(), 5);
    // A default checkpoint name beside --save.
    with(&["--epochs", "2", "--checkpoint-every", "1", "--save", "x.json"]);
    assert!(f.file("x.json.ckpt").exists());
}

#[test]
fn compare_prints_a_table_of_runs() {
    let f = Fixture::new();
    let out = f.ok(&[
        "compare",
        "--data",
        "bin.csv",
        "--epochs",
        "3",
        "--hidden",
        "4",
        "--optimizers",
        "sgd,momentum,adam",
        "--target-metric",
        "0.5",
        "--metrics-json",
        "c.json",
    ]);
    let header = out.lines().find(|l| l.starts_with("run")).expect("a table header");
    for column in ["train loss", "val accuracy", "epochs to accuracy >= 0.5", "time (s)"] {
        assert!(header.contains(column), "{header}");
    }
    for run in ["sgd", "momentum", "adam"] {
        assert!(out.lines().any(|l| l.starts_with(run)), "no row for {run}:\n{out}");
    }
    let c = read_json(&f.file("c.json"));
    let runs = c["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r["history"].as_array().unwrap().len() == 3));

    let out = f.ok(&["compare", "--data", "bin.csv", "--epochs", "2", "--hidden", "4", "--batch-sizes", "1,8,full"]);
    for run in ["batch=1", "batch=8", "batch=full"] {
        assert!(out.contains(run), "{out}");
    }
    let out = f.ok(&[
        "compare",
        "--data",
        "reg.csv",
        "--epochs",
        "2",
        "--lrs",
        "0.001,0.01",
        "--schedules",
        "constant,cosine",
    ]);
    assert!(out.contains("lr=0.01 cosine") && out.contains("rmse"), "{out}");
    // A diverging run is reported, not fatal.
    let out = f.ok(&["compare", "--data", "bin.csv", "--epochs", "2", "--optimizer", "sgd", "--lrs", "0.01,1e9"]);
    assert!(out.contains("diverged"), "{out}");
}

#[test]
fn datasets_lists_the_builtins() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["datasets"]);
    for expected in ["digits", "1797", "iris", "diabetes", "regression", "breast_cancer", "binary", "licences", "CC BY"]
    {
        assert!(out.contains(expected), "missing {expected}:\n{out}");
    }
}

#[test]
fn help_describes_flags_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let top = ok(dir.path(), &["--help"]);
    for cmd in ["train", "evaluate", "predict", "compare", "surface", "lr-find", "datasets"] {
        assert!(top.contains(cmd), "{top}");
    }
    let train = ok(dir.path(), &["train", "--help"]);
    for expected in [
        "--epochs",
        "[default: 20; 10 for --model cnn]",
        "--batch-size",
        "[default: 32]",
        "--optimizer",
        "[default: adam]",
        "--config",
    ] {
        assert!(train.contains(expected), "missing {expected}");
    }
    let compare = ok(dir.path(), &["compare", "--help"]);
    assert!(compare.contains("--optimizers") && compare.contains("--target-metric"));
}

#[test]
fn other_training_options_run() {
    let f = Fixture::new();
    for extra in [
        &["--optimizer", "nesterov", "--schedule", "step", "--step-size", "1", "--gamma", "0.5"][..],
        &["--optimizer", "sgd", "--warmup", "3", "--schedule", "cosine", "--clip-norm", "1"],
        &["--optimizer", "rmsprop", "--alpha", "0.9", "--centered", "--clip-value", "0.5"],
        &["--optimizer", "adamw", "--weight-decay", "0.1", "--amsgrad", "--batch-size", "full"],
        &["--optimizer", "adagrad", "--batch-size", "1", "--threads", "1"],
        &["--optimizer", "lion", "--beta2", "0.98", "--schedule", "one_cycle"],
        &["--optimizer", "lbfgs", "--model", "logistic"],
        &["--model", "logistic", "--l2", "0.01", "--no-standardize"],
        &["--early-stop", "1", "--tol", "1e-9", "--activation", "tanh", "--hidden", "4,3"],
    ] {
        let mut args = vec!["train", "--data", "bin.csv", "--epochs", "3", "-q"];
        args.extend_from_slice(extra);
        f.ok(&args);
    }
}

/// One bad input: the arguments, the files it needs, the exit code, what the message must name.
struct Bad {
    name: &'static str,
    args: Vec<&'static str>,
    files: Vec<(&'static str, &'static str)>,
    code: i32,
    expect: Vec<&'static str>,
}

fn bad(name: &'static str, args: &[&'static str], code: i32, expect: &[&'static str]) -> Bad {
    Bad { name, args: args.to_vec(), files: Vec::new(), code, expect: expect.to_vec() }
}

impl Bad {
    fn with(mut self, name: &'static str, text: &'static str) -> Self {
        self.files.push((name, text));
        self
    }
}

const OUTPUTS: [&str; 3] = ["out-model.json", "out-metrics.json", "out-predictions.csv"];

#[test]
fn bad_inputs_fail_clearly_without_partial_files() {
    let save = ["--save", "out-model.json", "--metrics-json", "out-metrics.json"];
    let train = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut a = vec!["train"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&save);
        a
    };
    let cases = vec![
        bad("missing file", &train(&["--data", "nope.csv"]), 2, &["nope.csv", "not found"]),
        bad("empty file", &train(&["--data", "empty.csv"]), 2, &["empty.csv", "empty"]).with("empty.csv", ""),
        bad("header only", &train(&["--data", "header.csv"]), 2, &["header.csv", "no data rows"])
            .with("header.csv", "a,b,y\n"),
        bad("ragged row", &train(&["--data", "ragged.csv"]), 2, &["ragged.csv", "line 3", "found 2"])
            .with("ragged.csv", "a,b,y\n1,2,0\n1,2\n3,4,1\n"),
        bad("non-numeric cell", &train(&["--data", "text.csv"]), 2, &["text.csv", "line 3, column 2", "`b`", "\"x7\""])
            .with("text.csv", "a,b,y\n1,2,0\n1,x7,1\n"),
        bad("NaN cell", &train(&["--data", "nan.csv"]), 2, &["nan.csv", "line 2, column 1", "finite", "NaN"])
            .with("nan.csv", "a,b,y\nNaN,2,0\n1,3,1\n"),
        bad("inf cell", &train(&["--data", "inf.csv"]), 2, &["inf.csv", "column 2", "inf"])
            .with("inf.csv", "a,b,y\n1,2,0\n1,inf,1\n"),
        bad("unknown target column", &train(&["--data", "bin.csv", "--target", "nosuch"]), 2, &["`nosuch`", "`label`"]),
        bad("single class", &train(&["--data", "one.csv", "--task", "binary"]), 2, &["one.csv", "two classes"])
            .with("one.csv", "a,b,y\n1,2,5\n2,3,5\n3,3,5\n"),
        bad("negative lr", &train(&["--data", "bin.csv", "--lr", "-0.1"]), 2, &["--lr", "-0.1", "> 0"]),
        bad("zero lr", &train(&["--data", "bin.csv", "--lr", "0"]), 2, &["--lr", "> 0"]),
        bad("batch size 0", &train(&["--data", "bin.csv", "--batch-size", "0"]), 2, &["--batch-size", "full"]),
        bad("unknown optimizer", &train(&["--data", "bin.csv", "--optimizer", "adamm"]), 2, &["adamm", "--optimizer"]),
        bad(
            "option for another optimizer",
            &train(&["--data", "bin.csv", "--momentum", "0.5"]),
            2,
            &["--momentum", "adam"],
        ),
        bad(
            "unknown option in config",
            &train(&["--config", "bad.toml"]),
            2,
            &["bad.toml", "line 2", "`learning_rate`"],
        )
        .with("bad.toml", "data = \"bin.csv\"\nlearning_rate = 0.1\n"),
        bad("config not TOML", &train(&["--config", "notoml.toml"]), 2, &["notoml.toml", "TOML"])
            .with("notoml.toml", "{\"epochs\": 3}\n"),
        bad("config value of the wrong type", &train(&["--config", "type.toml"]), 2, &["type.toml", "`epochs`"])
            .with("type.toml", "epochs = \"many\"\n"),
        bad(
            "corrupt model file",
            &["evaluate", "corrupt.json", "--data", "bin.csv"],
            2,
            &["corrupt.json", "not a gradus model"],
        )
        .with("corrupt.json", "this is not a model\n"),
        bad("truncated model file", &["evaluate", "trunc.json", "--data", "bin.csv"], 2, &["trunc.json", "truncated"])
            .with(
                "trunc.json",
                "{\"format\": \"gradus-model\", \"version\": 1, \"task\": \"binary\", \"params\": [0.1, 0.",
            ),
        bad(
            "another format",
            &["predict", "other.json", "--data", "bin.csv"],
            2,
            &["other.json", "expected a gradus model file"],
        )
        .with("other.json", "{\"format\": \"something\", \"version\": 1}"),
        bad(
            "classifier on regression data",
            &["evaluate", "cls.json", "--data", "reg-named.csv"],
            2,
            &["reg-named.csv", "row 1", "is not one of the classes", "another task"],
        ),
        bad(
            "regression model on classification data",
            &["evaluate", "reg.json", "--data", "cls-named.csv"],
            2,
            &["cls-named.csv", "no target column `target`", "regression model", "another task"],
        )
        .with("cls-named.csv", "u,v,w,label\n1,2,3,0\n2,3,4,1\n"),
        bad(
            "predicting with a missing column",
            &["predict", "cls.json", "--data", "missing-col.csv"],
            2,
            &["missing-col.csv", "`b`"],
        )
        .with("missing-col.csv", "a,c\n1,2\n"),
        bad(
            "predicting with an extra column",
            &["predict", "cls.json", "--data", "extra-col.csv"],
            2,
            &["extra-col.csv", "`c`", "not one of the model's features"],
        )
        .with("extra-col.csv", "a,b,c\n1,2,3\n"),
        bad(
            "unwritable --save",
            &["train", "--data", "bin.csv", "--save", "no/such/dir/m.json"],
            2,
            &["--save", "no/such/dir"],
        ),
        bad(
            "unwritable --metrics-json",
            &["train", "--data", "bin.csv", "--metrics-json", "nodir/m.json"],
            2,
            &["--metrics-json", "nodir"],
        ),
        bad(
            "unwritable --out",
            &["predict", "cls.json", "--data", "bin.csv", "--out", "nodir/p.csv"],
            2,
            &["--out", "nodir"],
        ),
        bad("--save is a folder", &["train", "--data", "bin.csv", "--save", "."], 2, &["--save", "folder"]),
        bad("epochs 0", &train(&["--data", "bin.csv", "--epochs", "0"]), 2, &["--epochs", "at least 1"]),
        bad(
            "bad plot size",
            &train(&["--data", "bin.csv", "--plot-size", "12xq", "--plot", "p.png"]),
            2,
            &["12xq", "WIDTHxHEIGHT"],
        ),
        bad("val-fraction 1.5", &train(&["--data", "bin.csv", "--val-fraction", "1.5"]), 2, &["--val-fraction", "1.5"]),
        bad("folds 1", &train(&["--data", "bin.csv", "--folds", "1"]), 2, &["--folds", "1"]),
        bad("unknown dataset", &train(&["--dataset", "nosuchset"]), 2, &["nosuchset", "digits"]),
        bad("hidden size 0", &train(&["--data", "bin.csv", "--hidden", "8,0"]), 2, &["--hidden", "0"]),
        bad(
            "model for another task",
            &train(&["--data", "reg.csv", "--model", "logistic"]),
            2,
            &["--model logistic", "regression"],
        ),
        bad(
            "diverging run",
            &train(&["--data", "bin.csv", "--optimizer", "sgd", "--lr", "1e12", "--epochs", "3"]),
            1,
            &["diverged", "hint:", "learning rate"],
        ),
        bad(
            "resume of a missing checkpoint",
            &train(&["--data", "bin.csv", "--resume", "gone.ckpt"]),
            2,
            &["--resume", "gone.ckpt", "not found"],
        ),
        bad(
            "resume of a model file",
            &train(&["--data", "bin.csv", "--resume", "cls.json"]),
            2,
            &["--resume", "cls.json"],
        ),
        bad(
            "plot with an unknown extension",
            &train(&["--data", "bin.csv", "--plot", "curves.jpg"]),
            2,
            &["--plot", ".png"],
        ),
        bad(
            "non-numeric rating",
            &train(&["--model", "mf", "--data", "badr.csv"]),
            2,
            &["badr.csv", "line 3, column 3", "\"abc\""],
        )
        .with("badr.csv", "user,item,rating\nu1,i1,4\nu2,i1,abc\n"),
        bad(
            "mf with an mlp flag",
            &train(&["--model", "mf", "--data", "r.csv", "--hidden", "3"]),
            2,
            &["--hidden", "matrix factorization"],
        ),
        bad("mf on a feature table", &train(&["--model", "mf", "--dataset", "iris"]), 2, &["iris", "ratings"]),
        bad(
            "rating order for a feature model",
            &train(&["--data", "bin.csv", "--mf-order", "stratified"]),
            2,
            &["--mf-order", "--model mf"],
        ),
        bad(
            "unknown rating order in a config file",
            &train(&["--config", "order.toml"]),
            2,
            &["--mf-order", "diagonal", "stratified"],
        )
        .with("order.toml", "data = \"r.csv\"\nmodel = \"mf\"\nmf_order = \"diagonal\"\n"),
        bad(
            "rating order with mini-batches",
            &train(&["--model", "mf", "--data", "r.csv", "--mf-order", "stratified", "--optimizer", "adam"]),
            2,
            &["--mf-order", "mini-batches"],
        ),
        bad(
            "compare on ratings",
            &["compare", "--dataset", "movielens_small"],
            2,
            &["movielens_small", "gradus train"],
        ),
        bad(
            "lr-find with end below start",
            &["lr-find", "--data", "bin.csv", "--start-lr", "0.1", "--end-lr", "0.01"],
            2,
            &["--end-lr", "start"],
        ),
        bad("compare with a bad lr", &["compare", "--data", "bin.csv", "--lrs", "0.1,-1"], 2, &["lr=-1", "--lr"]),
    ];
    assert!(cases.len() >= 25);

    let f = Fixture::new();
    // Two saved models for the model-file cases, and a file with the regression columns but class-like names.
    f.ok(&["train", "--data", "bin.csv", "--epochs", "1", "--hidden", "3", "--save", "cls.json", "-q"]);
    f.ok(&["train", "--data", "reg.csv", "--epochs", "1", "--save", "reg.json", "-q"]);
    f.write("reg-named.csv", "a,b,label\n0.5,1.5,2.25\n1,2,3.5\n");
    f.write("r.csv", &ratings_csv());
    for case in &cases {
        for (name, text) in &case.files {
            f.write(name, text);
        }
        let o = run_in(f.path(), &case.args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(case.code), "{}: exit code\nstderr: {err}", case.name);
        for expected in &case.expect {
            assert!(err.contains(expected), "{}: stderr lacks `{expected}`:\n{err}", case.name);
        }
        assert!(!err.contains("panicked"), "{}: {err}", case.name);
        assert!(err.lines().filter(|l| !l.trim().is_empty()).count() <= 4, "{}: too long:\n{err}", case.name);
        for output in OUTPUTS {
            assert!(!f.file(output).exists(), "{}: left `{output}` behind", case.name);
        }
        let leftovers: Vec<String> = fs::read_dir(f.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{}: temporary files left: {leftovers:?}", case.name);
    }
}

/// Ratings of 24 users for 10 items (about two thirds of the pairs), 1 to 5, from a rank-one
/// pattern plus user and item offsets.
fn ratings_csv() -> String {
    let mut s = String::from("user,item,rating,timestamp\n");
    for u in 0..24 {
        for i in 0..10 {
            if (u * 7 + i * 3) % 3 == 0 {
                continue;
            }
            let taste = ((u as f64) * 0.9).sin() * ((i as f64) * 1.3).cos();
            let r = (3.0 + 1.5 * taste + 0.3 * ((u % 3) as f64 - 1.0)).round().clamp(1.0, 5.0);
            s.push_str(&format!("user{u},item{i},{r},{}\n", 1000 + u * 10 + i));
        }
    }
    s
}

/// The PNG signature, and the width and height of the IHDR chunk that follows it.
fn assert_png(path: &Path, size: (u32, u32)) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 24, "{}: {} bytes", path.display(), bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}: not a PNG", path.display());
    assert_eq!(&bytes[12..16], b"IHDR", "{}: no IHDR chunk first", path.display());
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), size, "{}: picture size", path.display());
}

fn assert_svg(path: &Path) {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.contains("<svg"), "{}: not an SVG:\n{}", path.display(), &text[..text.len().min(200)]);
}

/// An SVG whose root declares `width` and `height` of `size`.
fn assert_svg_size(path: &Path, size: (u32, u32)) {
    assert_svg(path);
    let text = fs::read_to_string(path).unwrap();
    let root = &text[text.find("<svg").unwrap()..];
    let root = &root[..root.find('>').unwrap()];
    assert!(root.contains(&format!("width=\"{}\"", size.0)), "{}: root {root}", path.display());
    assert!(root.contains(&format!("height=\"{}\"", size.1)), "{}: root {root}", path.display());
}

#[test]
fn plot_size_sets_the_size_of_every_picture() {
    let f = Fixture::new();
    let train =
        ["train", "--data", "bin.csv", "--epochs", "2", "--hidden", "3", "-q", "--plot-size", "640x480", "--plot"];
    f.ok(&[&train[..], &["t.png"]].concat());
    assert_png(&f.file("t.png"), (640, 480));
    f.ok(&[&train[..], &["t.svg"]].concat());
    assert_svg_size(&f.file("t.svg"), (640, 480));
    f.ok(&["surface", "saddle", "--steps", "20", "-q", "--plot-size", "300x200", "--plot", "s.svg"]);
    assert_svg_size(&f.file("s.svg"), (300, 200));
}

#[test]
fn plots_are_png_or_svg_of_each_commands_size() {
    let f = Fixture::new();
    let train = ["train", "--data", "bin.csv", "--epochs", "2", "--hidden", "3", "-q", "--plot"];
    f.ok(&[&train[..], &["t.png"]].concat());
    assert_png(&f.file("t.png"), (1200, 500));
    f.ok(&[&train[..], &["t.svg"]].concat());
    assert_svg_size(&f.file("t.svg"), (1200, 500));
    f.ok(&["compare", "--data", "bin.csv", "--epochs", "2", "--hidden", "3", "-q", "--plot", "c.png"]);
    assert_png(&f.file("c.png"), (1200, 500));
    f.ok(&["surface", "rosenbrock", "--steps", "20", "-q", "--plot", "s.png"]);
    assert_png(&f.file("s.png"), (1100, 850));
    let lr_find = ["lr-find", "--data", "bin.csv", "--hidden", "3", "--num-steps", "20", "-q", "--plot"];
    f.ok(&[&lr_find[..], &["l.png"]].concat());
    assert_png(&f.file("l.png"), (900, 600));
    f.ok(&[&lr_find[..], &["l.svg"]].concat());
    assert_svg(&f.file("l.svg"));
}

#[test]
fn lr_find_suggests_a_learning_rate_and_prints_json() {
    let f = Fixture::new();
    let args = ["lr-find", "--data", "bin.csv", "--hidden", "4", "--num-steps", "40"];
    let out = f.ok(&args);
    assert!(out.contains("suggested learning rate:"), "{out}");
    assert!(out.contains("a tenth of that"), "{out}");
    let json = f.ok(&[&args[..], &["--json", "--start-lr", "1e-5", "--end-lr", "1"]].concat());
    let v: Value = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    let lrs: Vec<f64> = v["lrs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    let steps = v["steps_run"].as_u64().unwrap() as usize;
    assert!((2..=40).contains(&steps), "{steps}");
    assert_eq!(lrs.len(), steps);
    assert_eq!(v["losses"].as_array().unwrap().len(), steps);
    assert_eq!(v["smoothed"].as_array().unwrap().len(), steps);
    assert!(close(lrs[0], 1e-5), "{}", lrs[0]);
    assert!(lrs.windows(2).all(|w| w[1] > w[0]), "learning rates rise");
    let suggestion = v["suggestion"].as_f64().unwrap();
    assert!((1e-5..=1.0).contains(&suggestion), "{suggestion}");
    let min_lr = v["min_loss_lr"].as_f64().unwrap();
    assert!(close(v["min_loss_suggestion"].as_f64().unwrap(), (min_lr / 10.0).max(1e-5)));
    assert!(!v["rule"].as_str().unwrap().is_empty());
}

#[test]
fn matrix_factorization_trains_saves_predicts_and_evaluates() {
    let f = Fixture::new();
    f.write("r.csv", &ratings_csv());
    let n_ratings = ratings_csv().lines().count() - 1;
    let train = [
        "train",
        "--model",
        "mf",
        "--data",
        "r.csv",
        "--factors",
        "4",
        "--epochs",
        "30",
        "--lr",
        "0.02",
        "--seed",
        "3",
    ];
    let out = f.ok(&[&train[..], &["--save", "mf.json", "--metrics-json", "m1.json"]].concat());
    assert!(out.contains("Funk SVD") && out.contains("rmse") && out.contains("validation"), "{out}");
    let m = read_json(&f.file("m1.json"));
    assert_eq!(m["task"], "ratings");
    let history = m["history"].as_array().unwrap();
    assert_eq!(history.len(), 30);
    let rmse = |r: &Value| r["train"]["rmse"].as_f64().unwrap();
    assert!(rmse(&history[29]) < rmse(&history[0]), "training rmse falls");
    assert!(history[29]["validation"]["mae"].as_f64().is_some());
    // Same seed, same run.
    f.ok(&[&train[..], &["--metrics-json", "m2.json", "-q"]].concat());
    assert_eq!(read_json(&f.file("m2.json"))["train"], m["train"]);

    let predictions = f.ok(&["predict", "mf.json", "--data", "r.csv"]);
    let lines: Vec<&str> = predictions.lines().collect();
    assert_eq!(lines[0], "user,item,prediction");
    assert_eq!(lines.len(), n_ratings + 1);
    for line in &lines[1..] {
        let p: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!((1.0..=5.0).contains(&p), "{line}");
    }
    let v: Value = serde_json::from_str(f.ok(&["evaluate", "mf.json", "--data", "r.csv", "--json"]).trim()).unwrap();
    assert_eq!(v["rows"].as_u64(), Some(n_ratings as u64));
    let evaluated = v["metrics"]["rmse"].as_f64().unwrap();
    assert!(evaluated.is_finite() && evaluated < 1.5, "{evaluated}");

    // Unknown users and items fall back to the biases and the global mean: still a rating.
    f.write("new.csv", "user,item,rating\nstranger,item1,3\nuser1,novel,4\nstranger,novel,2\n");
    let out = f.ok(&["predict", "mf.json", "--data", "new.csv"]);
    assert_eq!(out.lines().count(), 4, "{out}");
    for line in out.lines().skip(1) {
        let p: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!((1.0..=5.0).contains(&p), "{line}");
    }

    let folds =
        f.ok(&["train", "--task", "ratings", "--data", "r.csv", "--factors", "3", "--epochs", "3", "--folds", "2"]);
    for expected in ["fold 1", "fold 2", "mean held-out"] {
        assert!(folds.contains(expected), "{folds}");
    }
    f.ok(&[
        "train",
        "--model",
        "mf",
        "--data",
        "r.csv",
        "--factors",
        "3",
        "--epochs",
        "3",
        "--optimizer",
        "adam",
        "--batch-size",
        "16",
        "--metrics-json",
        "adam.json",
        "-q",
    ]);
    let adam = read_json(&f.file("adam.json"));
    assert_eq!(adam["optimizer"], "adam");
    assert_eq!(adam["batch_size"], "16");

    // The stratified (DSGD) order: a different model than the shuffled one, which also learns, and
    // the same one on one thread as on several.
    let stratified = [&train[..], &["--mf-order", "stratified"]].concat();
    let out = f.ok(&[&stratified[..], &["--metrics-json", "s1.json", "--threads", "1"]].concat());
    assert!(out.contains("stratified order"), "{out}");
    let s1 = read_json(&f.file("s1.json"));
    let history = s1["history"].as_array().unwrap();
    assert!(rmse(&history[29]) < rmse(&history[0]), "training rmse falls");
    assert_ne!(s1["train"], m["train"]);
    f.ok(&[&stratified[..], &["--metrics-json", "s3.json", "--threads", "3", "-q"]].concat());
    assert_eq!(read_json(&f.file("s3.json"))["train"], s1["train"]);
}
