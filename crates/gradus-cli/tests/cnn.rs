//! Networks of layers through the command line: `--model cnn` with `--layers`, the summary table,
//! `[[layers]]` in a configuration file, IDX data, `evaluate --dataset`, `predict --image` with
//! PNG and JPEG files of any size, and the errors of each.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const GRADUS: &str = env!("CARGO_BIN_EXE_gradus");
const SMALL: &str = "conv2d(4,3,padding=1),relu,max_pool2d(2),flatten,linear(16),relu,linear";

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(GRADUS).args(args).current_dir(dir).output().expect("the gradus binary runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, args);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "gradus {args:?} failed ({:?}):\n{out}\n{err}", o.status.code());
    out.into_owned()
}

/// Runs and expects exit 2 with a short message holding `needle` and no panic.
fn usage_error(dir: &Path, args: &[&str], needle: &str) {
    let o = run_in(dir, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "gradus {args:?}: {err}");
    assert!(err.contains(needle), "gradus {args:?}: expected `{needle}` in:\n{err}");
    assert!(!err.contains("panicked") && err.lines().count() <= 4, "gradus {args:?}:\n{err}");
}

fn train_small(dir: &Path) {
    ok(
        dir,
        &[
            "train",
            "--dataset",
            "digits",
            "--model",
            "cnn",
            "--layers",
            SMALL,
            "--epochs",
            "3",
            "--save",
            "m.json",
            "-q",
        ],
    );
}

#[test]
fn trains_a_cnn_and_prints_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(
        dir.path(),
        &[
            "train",
            "--dataset",
            "digits",
            "--model",
            "cnn",
            "--layers",
            SMALL,
            "--epochs",
            "6",
            "--optimizer",
            "momentum",
            "--lr",
            "0.05",
            "--save",
            "m.json",
        ],
    );
    assert!(out.contains("conv1") && out.contains("conv2d(4,3,padding=1)") && out.contains("[4, 8, 8]"), "{out}");
    assert!(out.contains("pool1") && out.contains("linear2") && out.contains("linear(10)"), "{out}");
    assert!(out.contains("values divided by 16"), "digits' grey levels 0–16 are scaled into [0, 1]:\n{out}");
    let model: Value = serde_json::from_str(&fs::read_to_string(dir.path().join("m.json")).unwrap()).unwrap();
    assert_eq!(model["model"]["kind"], "network");
    assert_eq!(model["model"]["network"]["input"], serde_json::json!([1, 8, 8]));
    let eval = ok(dir.path(), &["evaluate", "m.json", "--dataset", "digits", "--json"]);
    let eval: Value = serde_json::from_str(&eval).unwrap();
    assert!(eval["metrics"]["accuracy"].as_f64().unwrap() > 0.8, "{eval}");
}

#[test]
fn layers_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = "model = \"cnn\"\nepochs = 1\n\n[[layers]]\ntype = \"conv2d\"\nout_channels = 3\nkernel_size = 3\n\n\
                  [[layers]]\ntype = \"relu\"\n\n[[layers]]\ntype = \"flatten\"\n\n[[layers]]\ntype = \"linear\"\n";
    fs::write(dir.path().join("c.toml"), config).unwrap();
    let out = ok(dir.path(), &["train", "--dataset", "digits", "--config", "c.toml"]);
    assert!(out.contains("conv2d(3,3)") && out.contains("[3, 6, 6]"), "{out}");
    fs::write(dir.path().join("bad.toml"), "[[layers]]\ntype = \"conv2d\"\nout_channels = 3\n").unwrap();
    usage_error(dir.path(), &["train", "--dataset", "digits", "--config", "bad.toml"], "layers[0]");
    fs::write(dir.path().join("bad2.toml"), "[[layers]]\ntype = \"dropout\"\np = 2.0\n").unwrap();
    usage_error(dir.path(), &["train", "--dataset", "digits", "--config", "bad2.toml"], "dropout.p");
}

fn idx(dims: &[u32], values: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(values);
    bytes
}

#[test]
fn trains_and_evaluates_on_idx_files() {
    let dir = tempfile::tempdir().unwrap();
    // 60 images of 6 × 6: class 1 lights the left half, class 0 the right half.
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for i in 0..60u32 {
        let class = (i % 2) as u8;
        for p in 0..36u32 {
            let left = p % 6 < 3;
            pixels.push(if left == (class == 1) { 200 + (i % 7) as u8 } else { (p * 3 % 20) as u8 });
        }
        labels.push(class);
    }
    fs::write(dir.path().join("x.idx"), idx(&[60, 6, 6], &pixels)).unwrap();
    fs::write(dir.path().join("y.idx"), idx(&[60], &labels)).unwrap();
    let layers = "conv2d(2,3),relu,flatten,linear";
    let out = ok(
        dir.path(),
        &[
            "train",
            "--data",
            "x.idx",
            "--labels",
            "y.idx",
            "--model",
            "cnn",
            "--layers",
            layers,
            "--epochs",
            "20",
            "--lr",
            "0.01",
            "--val-fraction",
            "0",
            "--save",
            "m.json",
        ],
    );
    assert!(out.contains("[2, 4, 4]"), "the IDX files give the images' shape:\n{out}");
    let eval: Value = serde_json::from_str(&ok(
        dir.path(),
        &["evaluate", "m.json", "--data", "x.idx", "--labels", "y.idx", "--json"],
    ))
    .unwrap();
    assert_eq!(eval["metrics"]["accuracy"].as_f64(), Some(1.0), "{eval}");
    fs::write(dir.path().join("short.idx"), idx(&[60], &labels[..50])).unwrap();
    usage_error(dir.path(), &["train", "--data", "x.idx", "--labels", "short.idx"], "the file holds 50");
    usage_error(dir.path(), &["train", "--data", "x.idx", "--labels", "x.idx"], "dimension(s): expected 1");
}

#[test]
fn predicts_png_and_jpeg_images_of_any_size() {
    let dir = tempfile::tempdir().unwrap();
    train_small(dir.path());
    // A 50 × 30 RGB PNG and a 9 × 13 grey JPEG.
    let png = image::RgbImage::from_fn(50, 30, |x, y| image::Rgb([(x * 5) as u8, (y * 8) as u8, 100]));
    png.save(dir.path().join("a.png")).unwrap();
    let jpeg = image::GrayImage::from_fn(9, 13, |x, y| image::Luma([((x + y) * 10) as u8]));
    jpeg.save(dir.path().join("b.jpg")).unwrap();
    let out = ok(dir.path(), &["predict", "m.json", "--image", "a.png", "b.jpg", "--top", "2"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("a.png: ") && lines[1].starts_with("b.jpg: "), "{out}");
    for line in &lines {
        let percents: f64 = line
            .split(", ")
            .map(|part| part.rsplit(' ').next().unwrap().trim_end_matches('%').parse::<f64>().unwrap())
            .sum();
        assert!(percents > 0.0 && percents <= 100.05, "{line}");
        assert_eq!(line.matches('%').count(), 2, "{line}");
    }
    let inverted = ok(dir.path(), &["predict", "m.json", "--image", "b.jpg", "--invert"]);
    assert!(inverted.starts_with("b.jpg: "), "{inverted}");
    fs::write(dir.path().join("not.png"), b"not an image").unwrap();
    usage_error(dir.path(), &["predict", "m.json", "--image", "not.png"], "not.png");
    usage_error(dir.path(), &["predict", "m.json", "--image", "missing.png"], "missing.png");
    ok(dir.path(), &["train", "--dataset", "iris", "--epochs", "1", "--save", "iris.json", "-q"]);
    usage_error(dir.path(), &["predict", "iris.json", "--image", "a.png"], "not an image model");
}

#[test]
fn errors_name_the_option_and_the_layers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    usage_error(
        d,
        &["train", "--dataset", "digits", "--model", "mlp", "--layers", "linear"],
        "--layers applies to --model cnn",
    );
    usage_error(d, &["train", "--dataset", "digits", "--model", "cnn", "--layers", "conv2d(4)"], "conv2d.kernel_size");
    usage_error(
        d,
        &["train", "--dataset", "digits", "--model", "cnn", "--layers", "conv2d(4,3),linear"],
        "`linear(10)` (layer 2), whose input is [4, 6, 6] from `conv2d(4,3)`",
    );
    usage_error(
        d,
        &["train", "--dataset", "digits", "--model", "cnn", "--layers", "conv2d(4,9),flatten,linear"],
        "[1, 8, 8]",
    );
    usage_error(d, &["train", "--dataset", "digits", "--model", "cnn", "--layers", "flatten,linear(3)"], "linear(3)");
    usage_error(
        d,
        &["train", "--dataset", "digits", "--model", "cnn", "--input-shape", "2,8,8"],
        "--input-shape 2,8,8",
    );
    usage_error(d, &["train", "--dataset", "digits", "--model", "cnn", "--input-shape", "0,8"], "input-shape");
    usage_error(d, &["train", "--dataset", "movielens_small", "--model", "cnn"], "cnn");
}

/// `compare` trains the same network with each optimizer, and `lr-find` sweeps the learning rate
/// of a network: both through the one engine.
#[test]
fn compare_and_lr_find_take_networks() {
    let dir = tempfile::tempdir().unwrap();
    let common = ["--dataset", "digits", "--model", "cnn", "--layers", SMALL];
    let mut compare = vec!["compare", "--optimizers", "sgd,adam", "--epochs", "2", "--metrics-json", "c.json"];
    compare.extend(common);
    let out = ok(dir.path(), &compare);
    assert!(out.lines().any(|l| l.starts_with("sgd")) && out.lines().any(|l| l.starts_with("adam")), "{out}");
    let runs: Value = serde_json::from_str(&fs::read_to_string(dir.path().join("c.json")).unwrap()).unwrap();
    let text = runs.to_string();
    assert!(text.contains("\"sgd\"") && text.contains("\"adam\""), "{text}");

    let mut lr_find = vec!["lr-find", "--num-steps", "30"];
    lr_find.extend(common);
    let out = ok(dir.path(), &lr_find);
    assert!(out.contains("network conv2d(4,3,padding=1)"), "{out}");
    assert!(out.contains("suggested learning rate"), "{out}");
}
