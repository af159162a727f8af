//! Nothing lost, nothing panics: the `gradus` binary run as a hostile user would, on tiny data in
//! temporary folders.
//!
//! Every case checks the exit code, a message naming the culprit in at most four lines of stderr,
//! no panic or backtrace text, no temporary file left behind, and that every input file is byte
//! for byte what it was.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const GRADUS: &str = env!("CARGO_BIN_EXE_gradus");

/// A small binary classification table.
fn binary_csv(seed: usize) -> String {
    let mut s = String::from("a,b,label\n");
    for i in 0..16 {
        let a = ((i + seed) as f64 * 0.37).sin() * 3.0;
        let b = (i as f64 * 0.91).cos() * 2.0 + 5.0;
        let label = if a + 0.5 * (b - 5.0) > 0.0 { 1 } else { 0 };
        s.push_str(&format!("{a:.4},{b:.4},{label}\n"));
    }
    s
}

fn ratings_csv() -> String {
    let mut s = String::from("user,item,rating\n");
    for u in 0..6 {
        for i in 0..5 {
            s.push_str(&format!("u{u},i{i},{}\n", 1 + (u * 3 + i) % 5));
        }
    }
    s
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// `d.csv` (data), `d2.csv` (other data), `r.csv` (ratings), `c.toml` (a configuration).
    fn new() -> Self {
        let f = Self { dir: tempfile::tempdir().unwrap() };
        f.write("d.csv", &binary_csv(0));
        f.write("d2.csv", &binary_csv(5));
        f.write("r.csv", &ratings_csv());
        f.write("c.toml", "data = \"d.csv\"\nepochs = 1\nhidden = 3\n");
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

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(GRADUS);
        c.args(args).current_dir(self.path()).env_remove("RUST_BACKTRACE").env_remove("GRADUS_TEST_WRITE_PAUSE_MS");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the gradus binary runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "gradus {args:?} failed ({:?}):\n{}", o.status.code(), stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The contents of every plain file in the folder (links followed).
    fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(self.path())
            .unwrap()
            .filter_map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                fs::read(e.path()).ok().map(|bytes| (name, bytes))
            })
            .collect()
    }

    /// Names of temporary files in the folder.
    fn temporaries(&self) -> Vec<String> {
        fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The checks every case shares: a short message naming `expect`, no panic, no temporary file.
fn assert_clean_failure(f: &Fixture, name: &str, o: &Output, code: i32, expect: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{name}: exit code\nstderr: {err}");
    for e in expect {
        assert!(err.contains(e), "{name}: stderr lacks `{e}`:\n{err}");
    }
    assert_no_panic(name, &err);
    assert!(err.lines().filter(|l| !l.trim().is_empty()).count() <= 4, "{name}: too long:\n{err}");
    assert!(f.temporaries().is_empty(), "{name}: temporary files left: {:?}", f.temporaries());
}

fn assert_no_panic(name: &str, err: &str) {
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(!err.contains(bad), "{name}: `{bad}` in stderr:\n{err}");
    }
}

/// One failing command line: its files beyond the fixture's, and what it must say.
struct Case {
    name: &'static str,
    args: Vec<&'static str>,
    setup: fn(&Fixture),
    code: i32,
    expect: Vec<&'static str>,
}

fn case(name: &'static str, args: &[&'static str], expect: &[&'static str]) -> Case {
    Case { name, args: args.to_vec(), setup: |_| {}, code: 2, expect: expect.to_vec() }
}

impl Case {
    fn setup(mut self, setup: fn(&Fixture)) -> Self {
        self.setup = setup;
        self
    }
}

/// Runs each case in a fresh fixture, checking that every file in the folder is unchanged.
fn run_cases(cases: Vec<Case>) {
    for c in cases {
        let f = Fixture::new();
        (c.setup)(&f);
        let before = f.snapshot();
        let o = f.run(&c.args);
        assert_clean_failure(&f, c.name, &o, c.code, &c.expect);
        let after = f.snapshot();
        for (name, bytes) in &before {
            assert!(after.get(name) == Some(bytes), "{}: `{name}` changed or vanished", c.name);
        }
        let created: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
        assert!(created.is_empty(), "{}: files created: {created:?}", c.name);
    }
}

#[cfg(unix)]
fn symlink(f: &Fixture, target: &str, link: &str) {
    std::os::unix::fs::symlink(f.file(target), f.file(link)).unwrap();
}

fn train_model(f: &Fixture) {
    f.ok(&["train", "--data", "d.csv", "--epochs", "1", "--hidden", "3", "--save", "m.json", "-q"]);
}

// ---------------------------------------------------------------------------------------------
// Data loss: an output never overwrites an input, nor another output
// ---------------------------------------------------------------------------------------------

#[test]
fn outputs_never_overwrite_inputs_or_each_other() {
    let refuse = "refusing to overwrite an input";
    let own = "expected a file of its own";
    let mut cases = vec![
        case(
            "train --save the data",
            &["train", "--data", "d.csv", "--save", "d.csv"],
            &["--save", "--data", "`d.csv`", refuse],
        ),
        case(
            "train --save ./data",
            &["train", "--data", "d.csv", "--save", "./d.csv"],
            &["--save", "--data", "./d.csv", refuse],
        ),
        case(
            "train --metrics-json the data via ..",
            &["train", "--data", "d.csv", "--metrics-json", "sub/../d.csv"],
            &["--metrics-json", "--data", refuse],
        )
        .setup(|f| fs::create_dir(f.file("sub")).unwrap()),
        case("train --plot the data", &["train", "--data", "d.svg", "--plot", "d.svg"], &["--plot", "--data", refuse])
            .setup(|f| fs::copy(f.file("d.csv"), f.file("d.svg")).map(|_| ()).unwrap()),
        case(
            "train --checkpoint the data",
            &["train", "--data", "d.csv", "--checkpoint-every", "1", "--checkpoint", "d.csv"],
            &["--checkpoint", "--data", refuse],
        ),
        case(
            "train default checkpoint is the data",
            &["train", "--data", "gradus.ckpt", "--checkpoint-every", "1"],
            &["--checkpoint", "--data", "gradus.ckpt", refuse],
        )
        .setup(|f| fs::copy(f.file("d.csv"), f.file("gradus.ckpt")).map(|_| ()).unwrap()),
        case(
            "train --save the config",
            &["train", "--config", "c.toml", "--save", "c.toml"],
            &["--save", "--config", refuse],
        ),
        case(
            "train --save the resumed checkpoint",
            &["train", "--data", "d.csv", "--resume", "run.ckpt", "--save", "run.ckpt"],
            &["--save", "--resume", refuse],
        )
        .setup(|f| f.write("run.ckpt", "a checkpoint\n")),
        case(
            "train --save a hard link of the data",
            &["train", "--data", "d.csv", "--save", "hard.json"],
            &["--save", "--data", "hard.json", refuse],
        )
        .setup(|f| fs::hard_link(f.file("d.csv"), f.file("hard.json")).unwrap()),
        case(
            "train two outputs alike",
            &["train", "--data", "d.csv", "--save", "x.json", "--metrics-json", "x.json"],
            &["--save", "--metrics-json", "`x.json`", own],
        ),
        case(
            "train two outputs spelled apart",
            &["train", "--data", "d.csv", "--save", "x.json", "--metrics-json", "./x.json"],
            &["--save", "--metrics-json", own],
        ),
        case(
            "train default checkpoint is --metrics-json",
            &[
                "train",
                "--data",
                "d.csv",
                "--save",
                "m.json",
                "--checkpoint-every",
                "1",
                "--metrics-json",
                "m.json.ckpt",
            ],
            &["--checkpoint", "--metrics-json", "m.json.ckpt", own],
        ),
        case(
            "train --plot and --checkpoint alike",
            &["train", "--data", "d.csv", "--plot", "p.svg", "--checkpoint-every", "1", "--checkpoint", "p.svg"],
            &["--plot", "--checkpoint", own],
        ),
        case(
            "mf train --save the ratings",
            &["train", "--model", "mf", "--data", "r.csv", "--save", "r.csv"],
            &["--save", "--data", refuse],
        ),
        case(
            "predict --out the model",
            &["predict", "m.json", "--data", "d.csv", "--out", "m.json"],
            &["--out", "the model", refuse],
        )
        .setup(train_model),
        case(
            "predict --out the data",
            &["predict", "m.json", "--data", "d.csv", "--out", "./d.csv"],
            &["--out", "--data", refuse],
        )
        .setup(train_model),
        case(
            "train --save the IDX labels",
            &["train", "--data", "images.idx", "--labels", "labels.idx", "--save", "labels.idx"],
            &["--save", "--labels", refuse],
        )
        .setup(|f| {
            f.write("images.idx", "not read");
            f.write("labels.idx", "not read");
        }),
        case(
            "predict --out an --image",
            &["predict", "m.json", "--image", "a.png", "pic.png", "--out", "./pic.png"],
            &["--out", "--image", refuse],
        )
        .setup(|f| {
            train_model(f);
            f.write("a.png", "not read");
            f.write("pic.png", "not read");
        }),
        case(
            "compare --metrics-json the data",
            &["compare", "--data", "d.csv", "--metrics-json", "d.csv"],
            &["--metrics-json", "--data", refuse],
        ),
        case(
            "compare two outputs alike",
            &["compare", "--data", "d.csv", "--plot", "c.svg", "--metrics-json", "./c.svg"],
            &["--plot", "--metrics-json", own],
        ),
        case(
            "lr-find --plot the data",
            &["lr-find", "--data", "d.svg", "--plot", "./d.svg"],
            &["--plot", "--data", refuse],
        )
        .setup(|f| fs::copy(f.file("d.csv"), f.file("d.svg")).map(|_| ()).unwrap()),
        case(
            "an output that is a device",
            &["train", "--data", "d.csv", "--metrics-json", "/dev/null"],
            &["--metrics-json", "/dev/null", "not a regular file"],
        ),
        case(
            "train --save a folder to be",
            &["train", "--data", "d.csv", "--save", "out/"],
            &["--save", "out/", "folder"],
        ),
        case("train --save a file's dot", &["train", "--data", "d.csv", "--save", "d.csv/."], &["--save", "folder"]),
        case("surface --plot a folder", &["surface", "sphere", "--plot", "sub.svg"], &["sub.svg", "folder"])
            .setup(|f| fs::create_dir(f.file("sub.svg")).unwrap()),
    ];
    #[cfg(unix)]
    cases.extend([
        case(
            "train --save a link to the data",
            &["train", "--data", "d.csv", "--save", "link.json"],
            &["--save", "--data", "link.json", refuse],
        )
        .setup(|f| symlink(f, "d.csv", "link.json")),
        case(
            "train --data through a link, --save the file",
            &["train", "--data", "link.csv", "--save", "d.csv"],
            &["--save", "--data", refuse],
        )
        .setup(|f| symlink(f, "d.csv", "link.csv")),
        case(
            "lr-find --plot a link to the data",
            &["lr-find", "--data", "d.csv", "--plot", "link.png"],
            &["--plot", "--data", refuse],
        )
        .setup(|f| symlink(f, "d.csv", "link.png")),
        case(
            "compare --plot a link to the data",
            &["compare", "--data", "d.csv", "--plot", "link.svg"],
            &["--plot", "--data", refuse],
        )
        .setup(|f| symlink(f, "d.csv", "link.svg")),
        case(
            "predict --out a link to the model",
            &["predict", "m.json", "--data", "d.csv", "--out", "link.csv"],
            &["--out", "the model", refuse],
        )
        .setup(|f| {
            train_model(f);
            symlink(f, "m.json", "link.csv");
        }),
    ]);
    run_cases(cases);
}

/// A built-in data set's file is an input too (here in a data folder of the test's own).
#[test]
fn a_built_in_data_sets_file_is_never_overwritten() {
    let f = Fixture::new();
    let data = f.file("data");
    fs::create_dir(&data).unwrap();
    let iris = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/iris.csv");
    fs::copy(iris, data.join("iris.csv")).unwrap();
    let before = fs::read(data.join("iris.csv")).unwrap();
    for args in [
        vec!["train", "--dataset", "iris", "--save", "data/iris.csv"],
        vec!["compare", "--dataset", "iris", "--metrics-json", "./data/iris.csv"],
    ] {
        let o = f.command(&args).env("GRADUS_DATA_DIR", &data).output().unwrap();
        assert_clean_failure(
            &f,
            "built-in data set",
            &o,
            2,
            &["--dataset", "iris.csv", "refusing to overwrite an input"],
        );
        assert_eq!(fs::read(data.join("iris.csv")).unwrap(), before);
    }
}

/// `--checkpoint` may name the `--resume` file: continuing a run replaces its checkpoint.
#[test]
fn a_resumed_run_may_write_its_checkpoint_over_the_one_it_resumed() {
    let f = Fixture::new();
    let common = ["train", "--data", "d.csv", "--hidden", "3", "-q"];
    let with = |extra: &[&str]| {
        let mut a = common.to_vec();
        a.extend_from_slice(extra);
        f.ok(&a)
    };
    with(&["--epochs", "1", "--checkpoint-every", "1", "--checkpoint", "run.ckpt"]);
    with(&["--epochs", "2", "--resume", "run.ckpt", "--checkpoint-every", "1", "--checkpoint", "./run.ckpt"]);
    let checkpoint: serde_json::Value = serde_json::from_str(&fs::read_to_string(f.file("run.ckpt")).unwrap()).unwrap();
    assert_eq!(checkpoint["epoch"], 2);
    assert!(f.temporaries().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Temporary files: removed on every path, including signals and dead processes
// ---------------------------------------------------------------------------------------------

/// The id of a process that has exited.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn stale_temporary_files_of_dead_processes_are_removed_by_the_next_write() {
    let f = Fixture::new();
    let dead = dead_pid();
    let stale = [format!("m.json.tmp-{dead}"), format!("p.png.tmp-{dead}.png"), format!("metrics.json.tmp-{dead}")];
    for name in &stale {
        f.write(name, "half a file");
    }
    // Not ours: another target's, a live process's (pid 1 always runs), and a name we never make.
    let kept = [format!("other.json.tmp-{dead}"), "m.json.tmp-1".to_string(), "m.json.tmp-x".to_string()];
    for name in &kept {
        f.write(name, "someone else's");
    }
    f.ok(&[
        "train",
        "--data",
        "d.csv",
        "--epochs",
        "1",
        "--hidden",
        "3",
        "--save",
        "m.json",
        "--plot",
        "p.png",
        "--metrics-json",
        "metrics.json",
        "-q",
    ]);
    for name in &stale {
        assert!(!f.file(name).exists(), "`{name}` was left");
    }
    for name in &kept {
        assert!(f.file(name).exists(), "`{name}` was removed");
    }
}

/// Starts `args` with every atomic write held `pause_ms` before its rename, and waits until a
/// temporary file exists (the process is mid-write).
// The caller signals the child and waits for it.
#[allow(clippy::zombie_processes)]
fn start_mid_write(f: &Fixture, args: &[&str], pause_ms: u64) -> std::process::Child {
    let mut child = f
        .command(args)
        .env("GRADUS_TEST_WRITE_PAUSE_MS", pause_ms.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A temporary file that stays (not the brief probe of the output checks made at the start).
    let start = Instant::now();
    loop {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no write started");
        }
        std::thread::sleep(Duration::from_millis(20));
        if !f.temporaries().is_empty() {
            std::thread::sleep(Duration::from_millis(300));
            if !f.temporaries().is_empty() {
                return child;
            }
        }
    }
}

#[cfg(unix)]
fn signal(child: &std::process::Child, signal: i32) {
    // SAFETY: sending a signal to our own child process.
    let result = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(result, 0);
}

#[cfg(unix)]
#[test]
fn a_kill_during_a_write_leaves_the_old_file_and_the_next_write_a_clean_folder() {
    use std::os::unix::process::ExitStatusExt;
    let f = Fixture::new();
    f.write("m.json", "the old model");
    let args = ["train", "--data", "d.csv", "--epochs", "1", "--hidden", "3", "--save", "m.json", "-q"];
    let mut child = start_mid_write(&f, &args, 20_000);
    signal(&child, libc::SIGKILL);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // Nothing can clean up after SIGKILL: the temporary file stays, the old model too.
    assert_eq!(f.temporaries().len(), 1);
    assert_eq!(fs::read_to_string(f.file("m.json")).unwrap(), "the old model");
    // The next write of that file removes it.
    f.ok(&args);
    assert!(f.temporaries().is_empty(), "{:?}", f.temporaries());
    assert!(fs::read_to_string(f.file("m.json")).unwrap().contains("gradus-model"));
}

#[cfg(unix)]
#[test]
fn ctrl_c_or_sigterm_during_a_write_removes_the_temporary_file() {
    let cases: [(&str, i32, i32, &[&str]); 4] = [
        ("SIGTERM saving a model", libc::SIGTERM, 143, &["--save", "m.json"]),
        ("SIGINT saving a model", libc::SIGINT, 130, &["--save", "m.json"]),
        ("SIGTERM drawing a plot", libc::SIGTERM, 143, &["--plot", "p.png"]),
        ("SIGHUP writing a checkpoint", libc::SIGHUP, 129, &["--checkpoint-every", "1", "--checkpoint", "m.json"]),
    ];
    for (name, sig, code, outputs) in cases {
        let f = Fixture::new();
        f.write("m.json", "the old model");
        let before = f.snapshot();
        let mut args = vec!["train", "--data", "d.csv", "--epochs", "1", "--hidden", "3", "-q"];
        args.extend_from_slice(outputs);
        let child = start_mid_write(&f, &args, 20_000);
        signal(&child, sig);
        let o = child.wait_with_output().unwrap();
        assert_clean_failure(&f, name, &o, code, &[]);
        assert_eq!(f.snapshot(), before, "{name}: files changed");
    }
}

#[cfg(unix)]
#[test]
fn sigterm_during_training_leaves_nothing() {
    let f = Fixture::new();
    let before = f.snapshot();
    let mut child = f
        .command(&[
            "train",
            "--data",
            "d.csv",
            "--epochs",
            "1000000",
            "--hidden",
            "3",
            "--json",
            "--save",
            "m.json",
            "--checkpoint-every",
            "1000000",
            "-q",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Training has started once the first epoch's line is out.
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("\"epoch\""), "{line}");
    signal(&child, libc::SIGTERM);
    let o = child.wait_with_output().unwrap();
    assert_clean_failure(&f, "SIGTERM while training", &o, 143, &[]);
    assert_eq!(f.snapshot(), before);
}

// ---------------------------------------------------------------------------------------------
// Resume belongs to its run
// ---------------------------------------------------------------------------------------------

#[test]
fn resume_refuses_another_run_naming_what_differs_and_the_checkpoint() {
    let base = ["train", "--data", "d.csv", "--hidden", "3", "--optimizer", "adam", "-q"];
    let f = Fixture::new();
    let mut first = base.to_vec();
    first.extend_from_slice(&["--epochs", "2", "--checkpoint-every", "2", "--checkpoint", "run.ckpt"]);
    f.ok(&first);
    let mut cosine = base.to_vec();
    cosine.extend_from_slice(&[
        "--epochs",
        "2",
        "--schedule",
        "cosine",
        "--checkpoint-every",
        "2",
        "--checkpoint",
        "cos.ckpt",
    ]);
    f.ok(&cosine);
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "another lr",
            vec!["--epochs", "4", "--resume", "run.ckpt", "--lr", "0.1"],
            vec!["run.ckpt", "lr 0.001 ≠ 0.1"],
        ),
        (
            "other data",
            vec!["--epochs", "4", "--resume", "run.ckpt", "--data", "d2.csv"],
            vec!["run.ckpt", "data hash"],
        ),
        ("another seed", vec!["--epochs", "4", "--resume", "run.ckpt", "--seed", "7"], vec!["seed 0 ≠ 7"]),
        ("another model", vec!["--epochs", "4", "--resume", "run.ckpt", "--hidden", "5"], vec!["hidden 3 ≠ 5"]),
        (
            "another optimizer",
            vec!["--epochs", "4", "--resume", "run.ckpt", "--optimizer", "sgd"],
            vec!["optimizer adam ≠ sgd"],
        ),
        (
            "another batch size",
            vec!["--epochs", "4", "--resume", "run.ckpt", "--batch-size", "4"],
            vec!["batch-size 32 ≠ 4"],
        ),
        (
            "unstandardized",
            vec!["--epochs", "4", "--resume", "run.ckpt", "--no-standardize"],
            vec!["scaling standardize ≠ none"],
        ),
        (
            "another split",
            vec!["--epochs", "4", "--resume", "run.ckpt", "--val-fraction", "0.5"],
            vec!["val-fraction 0.2 ≠ 0.5"],
        ),
        ("clipping", vec!["--epochs", "4", "--resume", "run.ckpt", "--clip-norm", "1"], vec!["clip-norm off ≠ 1"]),
        (
            "a schedule",
            vec!["--epochs", "4", "--resume", "run.ckpt", "--schedule", "step"],
            vec!["schedule constant ≠ step"],
        ),
        (
            "as many epochs",
            vec!["--epochs", "2", "--resume", "run.ckpt"],
            vec!["--epochs 2", "run.ckpt", "already trained 2 epochs"],
        ),
        (
            "fewer epochs",
            vec!["--epochs", "1", "--resume", "run.ckpt"],
            vec!["--epochs 1", "run.ckpt", "already trained 2 epochs"],
        ),
        (
            "a longer cosine schedule",
            vec!["--epochs", "4", "--schedule", "cosine", "--resume", "cos.ckpt"],
            vec!["cos.ckpt", "epochs (the schedule's length) 2 ≠ 4"],
        ),
    ];
    for (name, extra, expect) in cases {
        let before = f.snapshot();
        // The base run's options, but those the case gives itself.
        let mut args = vec!["train", "-q"];
        for pair in base[1..base.len() - 1].chunks(2) {
            if !extra.contains(&pair[0]) {
                args.extend_from_slice(pair);
            }
        }
        args.extend_from_slice(&extra);
        let o = f.run(&args);
        assert_clean_failure(&f, name, &o, 2, &expect);
        assert!(!stderr(&o).contains("(resume)"), "{name}: {}", stderr(&o));
        assert_eq!(f.snapshot(), before, "{name}: files changed");
    }
    // Output-only flags and more epochs continue the run.
    let mut resumed = base.to_vec();
    resumed.extend_from_slice(&[
        "--epochs",
        "3",
        "--resume",
        "run.ckpt",
        "--threads",
        "1",
        "--json",
        "--metrics-json",
        "m.json",
        "--plot",
        "p.svg",
        "--save",
        "model.json",
    ]);
    let out = f.ok(&resumed);
    assert_eq!(out.lines().count(), 1, "one more epoch: {out}");
}

#[test]
fn matrix_factorization_refuses_checkpoints_before_any_work() {
    let f = Fixture::new();
    f.write("run.ckpt", "x");
    for extra in [["--resume", "run.ckpt"], ["--checkpoint-every", "1"]] {
        let before = f.snapshot();
        let mut args = vec!["train", "--model", "mf", "--data", "r.csv", "--epochs", "1"];
        args.extend_from_slice(&extra);
        let o = f.run(&args);
        assert_clean_failure(&f, "mf checkpoint", &o, 2, &["matrix factorization", "checkpoints"]);
        assert_eq!(f.snapshot(), before);
    }
}

/// Checkpoints written before they carried a fingerprint still resume; an engine error names the
/// checkpoint file, not `(resume)`.
#[test]
fn old_checkpoints_resume_and_engine_errors_name_the_file() {
    let f = Fixture::new();
    f.ok(&[
        "train",
        "--data",
        "d.csv",
        "--hidden",
        "3",
        "--epochs",
        "1",
        "--checkpoint-every",
        "1",
        "--checkpoint",
        "run.ckpt",
        "-q",
    ]);
    let mut checkpoint: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(f.file("run.ckpt")).unwrap()).unwrap();
    assert!(checkpoint["fingerprint"]["data hash"].is_string(), "{}", checkpoint["fingerprint"]);
    checkpoint.as_object_mut().unwrap().remove("fingerprint");
    f.write("old.ckpt", &checkpoint.to_string());
    f.ok(&["train", "--data", "d.csv", "--hidden", "3", "--epochs", "2", "--resume", "old.ckpt", "-q"]);
    let before = f.snapshot();
    let o = f.run(&["train", "--data", "d.csv", "--hidden", "4", "--epochs", "2", "--resume", "old.ckpt", "-q"]);
    assert_clean_failure(&f, "old checkpoint of another model", &o, 2, &["old.ckpt", "parameters"]);
    assert!(!stderr(&o).contains("(resume)"));
    assert_eq!(f.snapshot(), before);
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

#[test]
fn long_binary_and_duplicate_cells_make_short_safe_messages() {
    let long = "9".repeat(1 << 20);
    // One command-line argument holds at most 128 KiB on Linux.
    let long_arg = "9".repeat(100_000);
    let f = Fixture::new();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("long.csv", format!("a,b,y\n1,2,0\n1,{long}x,1\n").into_bytes()),
        ("binary.csv", b"a,b,y\n1,2,0\n1,x\x00\x1b[2J\x07,1\n".to_vec()),
        ("head.csv", format!("a,{long},y\n1,2,0\n2,3,1\n").into_bytes()),
        ("dup.csv", b"y,a,y\n1,2,0\n2,3,1\n".to_vec()),
        ("long.svm", format!("1 1:{long}x\n").into_bytes()),
    ];
    for (name, bytes) in &files {
        fs::write(f.file(name), bytes).unwrap();
    }
    f.ok(&["train", "--data", "d.csv", "--epochs", "1", "--hidden", "3", "--save", "m.json", "-q"]);
    let esc = "\u{1b}[31m";
    let target = format!("t{esc}{long_arg}");
    let surface = format!("x{esc}");
    let optimizers = format!("sgd,x{esc}");
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "a 1 MB cell",
            vec!["train", "--data", "long.csv"],
            vec!["long.csv", "line 3, column 2", "…", "1048577 bytes"],
        ),
        ("a 1 MB LIBSVM token", vec!["train", "--data", "long.svm"], vec!["long.svm", "…", "bytes"]),
        ("NUL and ESC in a cell", vec!["train", "--data", "binary.csv"], vec!["binary.csv", r"x\0\x1b[2J\x07"]),
        (
            "duplicate header",
            vec!["train", "--data", "dup.csv", "--target", "y"],
            vec!["dup.csv", "columns 1 and 3", "`y`"],
        ),
        ("a 1 MB header name", vec!["predict", "m.json", "--data", "head.csv"], vec!["head.csv", "…", "1048576 bytes"]),
        (
            "a 1 MB target name",
            vec!["train", "--data", "d.csv", "--target", &target],
            vec!["as the target", r"t\x1b[31m", "…"],
        ),
        (
            "a 1 MB flag value",
            vec!["train", "--data", "d.csv", "--epochs", &long_arg],
            vec!["--epochs", "…", "100000 bytes"],
        ),
        ("ESC in a flag value", vec!["train", "--data", "d.csv", "--seed", esc], vec!["--seed", r"\x1b[31m"]),
        ("a 100 kB batch size", vec!["train", "--data", "d.csv", "--batch-size", &long_arg], vec!["--batch-size", "…"]),
        ("ESC in a surface name", vec!["surface", &surface], vec!["unknown test function", r"x\x1b[31m"]),
        (
            "ESC in a compared optimizer",
            vec!["compare", "--data", "d.csv", "--optimizers", &optimizers],
            vec!["--optimizer", r"x\x1b[31m"],
        ),
        (
            "ESC in an unknown flag",
            vec!["train", "--data", "d.csv", "--x\u{1b}[2J\u{7}"],
            vec!["unexpected argument", "--x"],
        ),
    ];
    for (name, args, expect) in cases {
        let before = f.snapshot();
        let o = f.run(&args);
        assert_clean_failure(&f, name, &o, 2, &expect);
        assert!(o.stderr.len() < 600, "{name}: {} bytes of stderr", o.stderr.len());
        assert!(!o.stderr.iter().any(|&b| b == 0 || b == 0x1b || b == 7), "{name}: raw control bytes in stderr");
        assert_eq!(f.snapshot(), before, "{name}: files changed");
    }
}

#[test]
fn negative_numbers_reach_each_options_own_check() {
    let train = |flag: &'static str, value: &'static str, extra: &[&'static str]| -> Vec<&'static str> {
        let mut a = vec!["train", "--data", "d.csv", "--epochs", "1", flag, value];
        a.extend_from_slice(extra);
        a
    };
    let mut cases: Vec<(Vec<&'static str>, &'static str)> = Vec::new();
    for flag in [
        "--seed",
        "--hidden",
        "--threads",
        "--folds",
        "--checkpoint-every",
        "--early-stop",
        "--step-size",
        "--milestones",
        "--plateau-patience",
        "--warmup",
        "--batch-size",
        "--gamma",
        "--max-lr",
        "--eta-min",
        "--clip-norm",
        "--clip-value",
        "--tol",
        "--val-fraction",
        "--lr",
        "--weight-decay",
        "--eps",
        "--beta1",
        "--beta2",
    ] {
        cases.push((train(flag, "-1", &[]), flag));
    }
    cases.extend([
        (vec!["train", "--data", "d.csv", "--epochs", "-3"], "--epochs"),
        (train("--l2", "-1", &["--model", "logistic"]), "--l2"),
        (train("--l1", "-1", &["--model", "logistic"]), "--l1"),
        (train("--momentum", "-1", &["--optimizer", "sgd"]), "--momentum"),
        (train("--dampening", "-1", &["--optimizer", "sgd"]), "--dampening"),
        (train("--alpha", "-1", &["--optimizer", "rmsprop"]), "--alpha"),
        (train("--rho", "-1", &["--optimizer", "adadelta"]), "--rho"),
        (train("--lr-decay", "-1", &["--optimizer", "adagrad"]), "--lr-decay"),
        (vec!["train", "--model", "mf", "--data", "r.csv", "--factors", "-2"], "--factors"),
        (vec!["compare", "--data", "d.csv", "--lrs", "-1"], "--lr"),
        (vec!["compare", "--data", "d.csv", "--batch-sizes", "-1"], "--batch-size"),
        (vec!["surface", "sphere", "--lr", "-1"], "--lr"),
        (vec!["surface", "sphere", "--steps", "-1"], "--steps"),
        (vec!["lr-find", "--data", "d.csv", "--start-lr", "-1"], "--start-lr"),
        (vec!["lr-find", "--data", "d.csv", "--end-lr", "-1"], "--end-lr"),
        (vec!["lr-find", "--data", "d.csv", "--num-steps", "-1"], "--num-steps"),
        (vec!["train", "--data", "d.csv", "--plot-size", "-100x100"], "--plot-size"),
    ]);
    let f = Fixture::new();
    let before = f.snapshot();
    for (args, flag) in &cases {
        let o = f.run(args);
        let name = format!("{args:?}");
        assert_clean_failure(&f, &name, &o, 2, &[flag, "invalid value -", "expected"]);
        assert!(!stderr(&o).contains("unexpected argument"), "{name}: {}", stderr(&o));
    }
    assert_eq!(f.snapshot(), before);
}

#[test]
fn empty_lists_are_errors_naming_the_option() {
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["train", "--data", "d.csv", "--hidden", ""], "--hidden"),
        (vec!["train", "--data", "d.csv", "--hidden", "8,"], "--hidden"),
        (vec!["train", "--data", "d.csv", "--schedule", "multi_step", "--milestones", ""], "--milestones"),
        (vec!["compare", "--data", "d.csv", "--optimizers", ""], "--optimizers"),
        (vec!["compare", "--data", "d.csv", "--optimizers", "sgd,,adam"], "--optimizers"),
        (vec!["compare", "--data", "d.csv", "--lrs", ""], "--lrs"),
        (vec!["compare", "--data", "d.csv", "--batch-sizes", ""], "--batch-sizes"),
        (vec!["compare", "--data", "d.csv", "--schedules", ""], "--schedules"),
        (vec!["surface", "sphere", "--optimizers", ""], "--optimizers"),
        (vec!["surface", "sphere", "--start", ""], "--start"),
    ];
    let f = Fixture::new();
    f.write("empty.toml", "data = \"d.csv\"\nhidden = []\n");
    let before = f.snapshot();
    for (args, flag) in cases.iter().chain(&[(vec!["train", "--config", "empty.toml"], "--hidden")]) {
        let o = f.run(args);
        assert_clean_failure(&f, &format!("{args:?}"), &o, 2, &[flag]);
    }
    assert_eq!(f.snapshot(), before);
}

#[test]
fn too_many_threads_are_refused_at_once() {
    let f = Fixture::new();
    for command in [
        vec!["train", "--data", "d.csv", "--threads", "100000"],
        vec!["compare", "--data", "d.csv", "--threads", "5000"],
        vec!["lr-find", "--data", "d.csv", "--threads", "100000"],
    ] {
        let start = Instant::now();
        let o = f.run(&command);
        assert_clean_failure(&f, "--threads", &o, 2, &["--threads", "expected 1 to"]);
        assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    }
    f.write("threads.toml", "data = \"d.csv\"\nthreads = 100000\n");
    let o = f.run(&["train", "--config", "threads.toml"]);
    assert_clean_failure(&f, "--threads in a config", &o, 2, &["--threads"]);
}

/// A reader that goes away early (`gradus … | head -1`) ends gradus quietly.
#[test]
fn a_closed_pipe_ends_output_quietly() {
    let f = Fixture::new();
    let commands: [&[&str]; 3] = [
        &["train", "--data", "d.csv", "--hidden", "3", "--epochs", "100000", "--json"],
        &["surface", "rosenbrock", "--json", "--steps", "200000"],
        &["datasets"],
    ];
    for args in commands {
        let mut child = f.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty());
        drop(stdout);
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert_no_panic(&format!("{args:?}"), &err);
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert!(o.status.success() || o.status.signal() == Some(libc::SIGPIPE), "{args:?}: {:?}\n{err}", o.status);
        }
        assert!(!err.contains("error"), "{args:?}: {err}");
        assert!(f.temporaries().is_empty());
    }
}

/// The last line of defence: a panic (a bug) is one line asking for a report, exit code 101.
#[test]
fn an_internal_error_is_one_line_without_a_backtrace() {
    let f = Fixture::new();
    let o = f.command(&["datasets"]).env("GRADUS_TEST_PANIC", "1").output().unwrap();
    // (A debug build's seam: the release binary has no such variable.)
    assert_clean_failure(&f, "panic", &o, 101, &["error: internal error:", "please report"]);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}
