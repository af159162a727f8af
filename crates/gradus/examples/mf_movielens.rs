//! k-fold cross-validation of matrix factorization (surprise's `SVD`) on a MovieLens ratings CSV.
//!
//! ```text
//! cargo run --release -p gradus --example mf_movielens -- \
//!     [--ratings data/movielens_small_ratings.csv] [--folds FILE | --write-folds FILE] \
//!     [--n-folds 5] [--seed 0] [--factors 100] [--epochs 20] [--lr 0.005] [--reg 0.02] \
//!     [--trainer sgd|dsgd]
//! ```
//!
//! The CSV has a header and rows `userId,movieId,rating,timestamp`; ids are mapped to dense
//! 0-based ids in order of first appearance. `--folds FILE` gives each data row's fold (one
//! integer a line, in row order), so that another program can evaluate on the very same folds;
//! without it the rows are shuffled from `--seed` and dealt into `--n-folds` folds, which
//! `--write-folds FILE` saves. `--trainer` picks the classic sequential SGD (`sgd`, the default)
//! or the stratified parallel one (`dsgd`, `MfConfig::parallel`), whose rayon pool, and so its
//! number of threads, follows `RAYON_NUM_THREADS` (the model does not depend on it). Prints one
//! JSON object: per fold the sizes, the fit time (training only, as surprise's `fit`; wall clock
//! and, on Linux, the CPU time of the whole process, every thread counted) and the held-out RMSE
//! and MAE, then the means.

use std::collections::HashMap;
use std::error::Error;
use std::time::Instant;

use gradus::mf::{MatrixFactorization, MfConfig, Ratings};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

struct Options {
    ratings: String,
    folds: Option<String>,
    write_folds: Option<String>,
    n_folds: usize,
    seed: u64,
    config: MfConfig,
}

fn parse_options() -> Result<Options, Box<dyn Error>> {
    let mut options = Options {
        ratings: "data/movielens_small_ratings.csv".into(),
        folds: None,
        write_folds: None,
        n_folds: 5,
        seed: 0,
        config: MfConfig::default(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--ratings" => options.ratings = value()?,
            "--folds" => options.folds = Some(value()?),
            "--write-folds" => options.write_folds = Some(value()?),
            "--n-folds" => options.n_folds = value()?.parse()?,
            "--seed" => options.seed = value()?.parse()?,
            "--factors" => options.config.n_factors = value()?.parse()?,
            "--epochs" => options.config.n_epochs = value()?.parse()?,
            "--lr" => options.config.lr_all = value()?.parse()?,
            "--reg" => options.config.reg_all = value()?.parse()?,
            "--trainer" => {
                options.config.parallel = match value()?.as_str() {
                    "dsgd" => true,
                    "sgd" => false,
                    other => return Err(format!("--trainer {other}: expected dsgd or sgd").into()),
                }
            }
            _ => return Err(format!("unknown option {flag}").into()),
        }
    }
    options.config.seed = options.seed;
    Ok(options)
}

/// The ratings with dense ids: users, items, ratings, and the counts of users and items.
struct Data {
    users: Vec<u32>,
    items: Vec<u32>,
    ratings: Vec<f32>,
    n_users: usize,
    n_items: usize,
}

fn read_ratings(path: &str) -> Result<Data, Box<dyn Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let (mut user_ids, mut item_ids) = (HashMap::new(), HashMap::new());
    let mut data = Data { users: Vec::new(), items: Vec::new(), ratings: Vec::new(), n_users: 0, n_items: 0 };
    for (number, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split(',');
        let mut field = || fields.next().ok_or_else(|| format!("{path}:{}: expected 4 fields", number + 1));
        let (user, item, rating) = (field()?.to_string(), field()?.to_string(), field()?.trim().parse::<f32>()?);
        let next_user = user_ids.len() as u32;
        data.users.push(*user_ids.entry(user).or_insert(next_user));
        let next_item = item_ids.len() as u32;
        data.items.push(*item_ids.entry(item).or_insert(next_item));
        data.ratings.push(rating);
    }
    data.n_users = user_ids.len();
    data.n_items = item_ids.len();
    Ok(data)
}

fn make_folds(rows: usize, n_folds: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in (1..rows).rev() {
        let j = ((u128::from(rng.next_u64()) * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
    let mut folds = vec![0; rows];
    for (position, &row) in order.iter().enumerate() {
        folds[row] = position % n_folds;
    }
    folds
}

/// CPU time the whole process (every thread) has run, in seconds, where the OS tells it: on a
/// shared machine a steadier measure than the wall clock, and fair to a trainer that uses several
/// threads.
fn process_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `time` is a valid timespec for the call to fill in.
        let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut time) };
        (status == 0).then_some(time.tv_sec as f64 + time.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(unix))]
    None
}

fn main() -> Result<(), Box<dyn Error>> {
    let options = parse_options()?;
    let data = read_ratings(&options.ratings)?;
    let folds: Vec<usize> = match &options.folds {
        Some(path) => std::fs::read_to_string(path)?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{path}: {e}"))?,
        None => make_folds(data.ratings.len(), options.n_folds, options.seed),
    };
    if folds.len() != data.ratings.len() {
        return Err(format!("{} fold ids for {} ratings", folds.len(), data.ratings.len()).into());
    }
    if let Some(path) = &options.write_folds {
        let text: String = folds.iter().map(|f| format!("{f}\n")).collect();
        std::fs::write(path, text)?;
    }
    let n_folds = folds.iter().max().map_or(0, |&f| f + 1);

    let mut results = Vec::new();
    for fold in 0..n_folds {
        let mut train = (Vec::new(), Vec::new(), Vec::new());
        let mut test = (Vec::new(), Vec::new(), Vec::new());
        for (k, &f) in folds.iter().enumerate() {
            let part = if f == fold { &mut test } else { &mut train };
            part.0.push(data.users[k]);
            part.1.push(data.items[k]);
            part.2.push(data.ratings[k]);
        }
        let ratings = Ratings::new(data.n_users, data.n_items, &train.0, &train.1, &train.2)?;
        let (start, cpu_start) = (Instant::now(), process_cpu_seconds());
        let model = MatrixFactorization::fit(&options.config, &ratings)?;
        let fit_seconds = start.elapsed().as_secs_f64();
        let fit_cpu_seconds = process_cpu_seconds().zip(cpu_start).map(|(end, start)| end - start);
        let start = Instant::now();
        let predicted = model.predict_all(&test.0, &test.1);
        let test_seconds = start.elapsed().as_secs_f64();
        results.push(json!({
            "fold": fold,
            "n_train": train.2.len(),
            "n_test": test.2.len(),
            "fit_seconds": fit_seconds,
            "fit_cpu_seconds": fit_cpu_seconds,
            "test_seconds": test_seconds,
            "rmse": gradus::mf::rmse(&predicted, &test.2).expect("one prediction per test rating"),
            "mae": gradus::mf::mae(&predicted, &test.2).expect("one prediction per test rating"),
        }));
    }
    let mean = |key: &str| results.iter().filter_map(|r| r[key].as_f64()).sum::<f64>() / results.len().max(1) as f64;
    let report = json!({
        "ratings": options.ratings,
        "n_ratings": data.ratings.len(),
        "n_users": data.n_users,
        "n_items": data.n_items,
        "config": options.config,
        "folds": results,
        "mean_rmse": mean("rmse"),
        "mean_mae": mean("mae"),
        "mean_fit_seconds": mean("fit_seconds"),
        "mean_fit_cpu_seconds": mean("fit_cpu_seconds"),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
