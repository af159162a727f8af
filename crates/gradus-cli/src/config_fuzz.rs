//! Mutation fuzzing of the `--config FILE.toml` reader: valid configuration files, mutated by bit
//! flips, truncations, insertions (huge and negative numbers, NaN, separators, duplicated keys,
//! deep nesting) and deletions, are read as `gradus train --config` reads them. The property: an
//! `Ok` or a [`CliError`] (exit code 2), never a panic, in bounded time.
//!
//! `GRADUS_FUZZ_CASES` sets the number of cases (default 300). Crashes found are kept as named
//! regression tests below.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use clap::Parser;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::args::{Cli, Command};

const SEEDS: &[&str] = &[
    "dataset = \"iris\"\nmodel = \"mlp\"\nhidden = [64, 32]\nlr = 0.01\nbatch-size = 32\nepochs = 5\n",
    "data = \"train.csv\"\ntarget = \"y\"\noptimizer = \"adam\"\nbeta1 = 0.9\nbeta2 = 0.999\namsgrad = true\n\
     schedule = \"multi_step\"\nmilestones = [10, 15]\ngamma = 0.5\nwarmup = 3\nseed = 7\n",
    "\"batch_size\" = \"full\"\nfolds = 5\nclip_norm = 1.5\nno_standardize = true\nsave = \"m.json\"\n\
     checkpoint_every = 2\nthreads = 2\n# a comment\nval_fraction = 0.2\n",
    "model = \"mf\"\nfactors = 50\nmf_order = \"stratified\"\nl2 = 0.02\n",
    "model = \"cnn\"\nepochs = 1\ninput_shape = \"1,8,8\"\n\n[[layers]]\ntype = \"conv2d\"\nout_channels = 3\n\
     kernel_size = 3\npadding = 1\n\n[[layers]]\ntype = \"relu\"\n\n[[layers]]\ntype = \"max_pool2d\"\nkernel_size = 2\n\n\
     [[layers]]\ntype = \"flatten\"\n\n[[layers]]\ntype = \"linear\"\n",
    "model = \"cnn\"\nlayers = \"conv2d(4,3),relu,flatten,dropout(0.5),linear(16),relu,linear\"\n",
];

const TOKENS: &[&str] = &[
    "nan",
    "inf",
    "-inf",
    "-1",
    "-0",
    "1e999",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999999999",
    "0x7fffffffffffffff",
    "1979-05-27T07:32:00Z",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "=",
    "\n",
    "\r\n",
    "#",
    ",",
    ".",
    "[",
    "]",
    "[[a]]\n",
    "[table]\n",
    "{",
    "}",
    "\\u0000",
    "\u{feff}",
    "\u{e9}",
    "\u{1f600}",
    "lr = 0.1\n",
    "epochs = 18446744073709551615\n",
    "hidden = [4000000000, 4000000000]\n",
    "threads = 0\n",
    "epochs = -3\n",
    "surprise = 1\n",
    "batch-size = 3\nbatch_size = 4\n",
    "hidden = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "a = {b = {c = {d = {e = {f = {g = {h = {i = {j = {k = {l = {m = {n = {o = {p = {q = {r = {s = {t = ",
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    Truncate(Index),
    Insert(Index, Index),
    Delete(Index, u8),
    Duplicate(Index, u16),
    Nest(Index, u16, bool),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(at, token)| Mutation::Insert(at, token)),
        (any::<Index>(), 1u8..24).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (any::<Index>(), 1u16..120).prop_map(|(at, len)| Mutation::Duplicate(at, len)),
        (any::<Index>(), 1u16..2000, any::<bool>()).prop_map(|(at, depth, square)| Mutation::Nest(at, depth, square)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let at = |index: &Index, len: usize| index.index(len + 1);
        match m {
            Mutation::FlipBit(i, bit) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len())),
            Mutation::Insert(i, token) => {
                let i = at(i, bytes.len());
                bytes.splice(i..i, TOKENS[token.index(TOKENS.len())].bytes());
            }
            Mutation::Delete(i, len) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                let end = (i + *len as usize).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::Duplicate(i, len) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                let end = (i + *len as usize).min(bytes.len());
                let copy = bytes[i..end].to_vec();
                bytes.splice(end..end, copy);
            }
            Mutation::Nest(i, depth, square) => {
                let i = at(i, bytes.len());
                let open = if *square { b'[' } else { b'{' };
                bytes.splice(i..i, std::iter::repeat_n(open, *depth as usize));
            }
            _ => {}
        }
    }
    bytes
}

/// Reads `bytes` as `gradus train --config FILE` does, then resolves the options as training
/// would (without touching any data): the outcome must be a value or an error, never a panic.
fn read_config(path: &std::path::Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    let cli = Cli::try_parse_from(["gradus", "train", "--config", path.to_str().unwrap()]).unwrap();
    let Command::Train(mut args) = cli.command else { unreachable!("a train command") };
    if crate::config::apply(&mut args).is_err() {
        return;
    }
    for task in [gradus::train::Task::Regression, gradus::train::Task::Multiclass] {
        if let Ok(settings) = crate::setup::resolve(&args.options, task) {
            let _ = settings.schedule(1000, settings.optimizer.lr());
            let _ = settings.model(task, 4, 3, None, None);
            let _ = settings.model(task, 64, 3, None, None);
        }
    }
    let _ = crate::ratings::resolve(&args.options);
}

fn cases() -> u32 {
    std::env::var("GRADUS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gradus-config-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn fuzz_config_files() {
    let path = scratch("config.toml");
    let cases = cases();
    let config = Config { cases, max_shrink_iters: 2000, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let strategy = (0..SEEDS.len(), prop::collection::vec(mutation(), 1..6));
    let result = runner.run(&strategy, |(seed, mutations)| {
        let bytes = apply(SEEDS[seed].as_bytes().to_vec(), &mutations);
        let start = Instant::now();
        if catch_unwind(AssertUnwindSafe(|| read_config(&path, &bytes))).is_err() {
            return Err(TestCaseError::fail(format!("panicked on {:?}", String::from_utf8_lossy(&bytes))));
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Err(TestCaseError::fail(format!("too slow on {:?}", String::from_utf8_lossy(&bytes))));
        }
        Ok(())
    });
    let _ = std::fs::remove_file(&path);
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("fuzz config.toml: {cases} executions, no crash");
}
