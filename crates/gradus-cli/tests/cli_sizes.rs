//! Absurd sizes from flags, files and configuration files, through the binary: each is exit code
//! 2 with a short message (at most four lines on stderr) naming the flag or the field and, for
//! memory, the amount needed; never an abort or a panic. And data of the other kind for a saved
//! model: an error naming the model file and what it expects.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

const GRADUS: &str = env!("CARGO_BIN_EXE_gradus");

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(GRADUS).args(args).current_dir(dir).output().expect("the gradus binary runs")
}

/// Runs `args`, expecting exit code 2 and a short stderr holding every piece of `expected`.
fn refused(dir: &Path, args: &[&str], expected: &[&str]) -> String {
    let o = run_in(dir, args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "gradus {args:?}: expected exit 2, got {:?}\n{stderr}", o.status.code());
    assert!(!stderr.contains("panicked"), "gradus {args:?} panicked:\n{stderr}");
    assert!(!stderr.contains("memory allocation"), "gradus {args:?} aborted:\n{stderr}");
    assert!(stderr.lines().count() <= 4, "gradus {args:?}: more than 4 lines on stderr:\n{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    for piece in expected {
        assert!(stderr.contains(piece), "gradus {args:?}: expected {piece:?} in:\n{stderr}");
    }
    stderr
}

fn ok(dir: &Path, args: &[&str]) {
    let o = run_in(dir, args);
    assert!(o.status.success(), "gradus {args:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_hidden_layer_beyond_memory_names_the_flag_and_the_amount() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refused(
        dir.path(),
        &["train", "--hidden", "2000000000", "--epochs", "1", "--quiet"],
        &[
            "--hidden 2000000000 on 64 features: the model (150000000010 parameters) would need ",
            " TB for its parameters",
        ],
    );
    if cfg!(target_os = "linux") {
        assert!(stderr.contains("available"), "{stderr}");
    }
    refused(
        dir.path(),
        &["train", "--hidden", "64,3000000000000", "--epochs", "1", "--quiet"],
        &["--hidden 64,3000000000000 on 64 features", "would need"],
    );
    // The sizes of a configuration file reach the same check.
    std::fs::write(dir.path().join("run.toml"), "hidden = [4000000000, 4000000000]\nepochs = 1\n").unwrap();
    refused(dir.path(), &["train", "--config", "run.toml", "--quiet"], &["--hidden 4000000000,4000000000", "sizes"]);
    refused(dir.path(), &["lr-find", "--hidden", "2000000000", "--quiet"], &["--hidden 2000000000", "would need"]);
    // A network's layers alike.
    refused(
        dir.path(),
        &["train", "--model", "cnn", "--layers", "flatten,linear(3000000000),relu,linear", "--epochs", "1", "--quiet"],
        &["--layers on 64 features: the model (225000000010 parameters) would need ", " TB"],
    );
}

#[test]
fn too_many_factors_names_the_flag_and_the_amount() {
    let dir = tempfile::tempdir().unwrap();
    refused(
        dir.path(),
        &["train", "--dataset", "movielens_small", "--factors", "4000000000", "--epochs", "1", "--quiet"],
        &["--factors 4000000000: matrix factorization of ", "factors would need ", " TB"],
    );
    refused(
        dir.path(),
        &["train", "--model", "mf", "--dataset", "movielens_small", "--factors", "18446744073709551615", "--quiet"],
        &["--factors 18446744073709551615", "more than 18 EB"],
    );
}

#[test]
fn a_huge_libsvm_feature_index_names_file_line_column_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..8 {
        text.push_str(&format!("{} 1:0.5 3:1.0\n", i % 2));
    }
    text.push_str("1 1:0.5 30000000:1.0\n");
    std::fs::write(dir.path().join("wide.svm"), text).unwrap();
    refused(
        dir.path(),
        &["train", "--data", "wide.svm", "--epochs", "1", "--quiet"],
        &["`wide.svm`, line 9, column 3: feature index 30000000", "<= 10000000"],
    );
}

/// A model file trained for real, then edited.
fn saved_model(dir: &Path) -> Value {
    let mut csv = String::from("a,b,c,d,y\n");
    for i in 0..30 {
        let v = i as f64 * 0.1;
        csv.push_str(&format!("{v},{},{},{},{}\n", v * 2.0, 1.0 - v, v * v, i % 3));
    }
    std::fs::write(dir.join("four.csv"), csv).unwrap();
    ok(dir, &["train", "--data", "four.csv", "--hidden", "3", "--epochs", "1", "--save", "m.json", "--quiet"]);
    serde_json::from_str(&std::fs::read_to_string(dir.join("m.json")).unwrap()).unwrap()
}

#[test]
fn a_saved_model_with_absurd_sizes_is_a_corrupt_file_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = saved_model(dir.path());
    model["model"]["sizes"] = json!([4, 2305843009213693960u64, 3]);
    std::fs::write(dir.path().join("huge.json"), model.to_string()).unwrap();
    for command in ["evaluate", "predict"] {
        refused(
            dir.path(),
            &[command, "huge.json", "--data", "four.csv"],
            &["`huge.json`: corrupt gradus model file: `sizes` [4, 2305843009213693960, 3]", "overflows"],
        );
    }
    model["model"]["sizes"] = json!([4, 1_000_000_000_000u64, 3]);
    std::fs::write(dir.path().join("big.json"), model.to_string()).unwrap();
    refused(dir.path(), &["evaluate", "big.json", "--data", "four.csv"], &["`big.json`", "`params` holds"]);
    let mut classes = saved_model(dir.path());
    classes["label_map"] = json!({"classes": [0.0, 0.0, 2.0]});
    std::fs::write(dir.path().join("dup.json"), classes.to_string()).unwrap();
    refused(dir.path(), &["evaluate", "dup.json", "--data", "four.csv"], &["`dup.json`", "class 0 appears twice"]);
}

#[test]
fn epochs_and_steps_whose_update_counts_overflow_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let max = "18446744073709551615";
    refused(
        dir.path(),
        &["train", "--epochs", max, "--schedule", "one_cycle", "--quiet"],
        &["--epochs 18446744073709551615"],
    );
    refused(
        dir.path(),
        &["train", "--schedule", "step", "--step-size", max, "--warmup", "2", "--quiet"],
        &["--step-size 18446744073709551615"],
    );
    refused(
        dir.path(),
        &["train", "--schedule", "multi_step", "--milestones", &format!("2,{max}"), "--warmup", "2", "--quiet"],
        &["--milestones 18446744073709551615"],
    );
}

#[test]
fn a_model_given_data_of_the_other_kind_names_the_model_file() {
    let dir = tempfile::tempdir().unwrap();
    saved_model(dir.path());
    ok(
        dir.path(),
        &["train", "--dataset", "movielens_small", "--factors", "3", "--epochs", "1", "--save", "mf.json", "--quiet"],
    );
    let iris = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/iris.csv");
    for command in ["evaluate", "predict"] {
        refused(
            dir.path(),
            &[command, "mf.json", "--data", iris],
            &["does not fit the model `mf.json`", "is this a ratings file"],
        );
    }
    std::fs::write(dir.path().join("f.svm"), "1 1:0.5\n0 2:1\n").unwrap();
    refused(
        dir.path(),
        &["evaluate", "mf.json", "--data", "f.svm"],
        &["`f.svm` is a LIBSVM file", "the model `mf.json`", "expects a ratings file"],
    );
    std::fs::write(dir.path().join("ratings.csv"), "userId,movieId,rating,timestamp\n1,31,2.5,1\n1,1029,3,2\n")
        .unwrap();
    refused(
        dir.path(),
        &["evaluate", "m.json", "--data", "ratings.csv"],
        &["the model `m.json`", "hint: this looks like a ratings file", "takes rows of its features"],
    );
}
