//! Reproducible train/test splits and k-fold cross-validation.
//!
//! Rows are shuffled with a Fisher–Yates shuffle driven by `ChaCha8Rng` seeded from the given
//! `u64`, so the same seed gives the same split on every platform. Returned index lists are
//! sorted ascending (file order, cache-friendly); training shuffles its own batches anyway.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::ConfigError;

/// `(train, test)`: the row indices of the two parts of a split, each sorted ascending.
pub type Split = (Vec<usize>, Vec<usize>);

/// `0..n` in an order shuffled from `seed`.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for last in (1..n).rev() {
        let pick = rng.random_range(0..=last as u64) as usize;
        order.swap(last, pick);
    }
    order
}

/// `0..labels.len()` shuffled from `seed`, then grouped by class (ascending class index),
/// each class's rows staying in shuffled order.
fn shuffled_by_class(labels: &[usize], seed: u64) -> Vec<usize> {
    let mut order = shuffled(labels.len(), seed);
    order.sort_by_key(|&row| labels[row]);
    order
}

/// How many of `n` rows go to the test part, following scikit-learn: `ceil(test_fraction · n)`,
/// with both parts non-empty.
fn test_count(n: usize, test_fraction: f64) -> Result<usize, ConfigError> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(ConfigError::new("test_fraction", test_fraction, "a number in (0, 1)"));
    }
    let count = (test_fraction * n as f64).ceil() as usize;
    if count == 0 || count >= n {
        return Err(ConfigError::new(
            "test_fraction",
            test_fraction,
            "a fraction leaving at least one row in each of the train and test parts",
        ));
    }
    Ok(count)
}

fn sorted(mut indices: Vec<usize>) -> Vec<usize> {
    indices.sort_unstable();
    indices
}

/// Splits rows `0..n` into `(train, test)`, with `ceil(test_fraction · n)` test rows chosen at
/// random from `seed`.
///
/// Fails when `test_fraction` is not in (0, 1) or would leave one part empty.
pub fn train_test_split(n: usize, test_fraction: f64, seed: u64) -> Result<Split, ConfigError> {
    let test = test_count(n, test_fraction)?;
    let mut order = shuffled(n, seed);
    let train = order.split_off(test);
    Ok((sorted(train), sorted(order)))
}

/// Like [`train_test_split`], but each class (given as class indices, one per row, see
/// [`LabelMap`](super::LabelMap)) keeps its share in both parts, to within one row.
pub fn stratified_train_test_split(labels: &[usize], test_fraction: f64, seed: u64) -> Result<Split, ConfigError> {
    let n = labels.len();
    let test = test_count(n, test_fraction)?;
    let (mut train_rows, mut test_rows) = (Vec::with_capacity(n - test), Vec::with_capacity(test));
    // Positions spread evenly over the class-grouped order: exactly `test` of them, and each
    // class's run of positions receives its proportional share.
    for (position, row) in shuffled_by_class(labels, seed).into_iter().enumerate() {
        if (position + 1) * test / n > position * test / n {
            test_rows.push(row);
        } else {
            train_rows.push(row);
        }
    }
    Ok((sorted(train_rows), sorted(test_rows)))
}

fn check_folds(n: usize, k: usize) -> Result<(), ConfigError> {
    if k < 2 || k > n {
        return Err(ConfigError::new(
            "k",
            format!("{k} for {n} rows"),
            "a number of folds >= 2 and <= the number of rows",
        ));
    }
    Ok(())
}

/// Assigns `order[position]` to fold `assign(position)` and returns each fold's `(train, test)`.
fn folds(order: &[usize], k: usize, assign: impl Fn(usize) -> usize) -> Vec<Split> {
    let mut fold_of = vec![0; order.len()];
    for (position, &row) in order.iter().enumerate() {
        fold_of[row] = assign(position);
    }
    (0..k)
        .map(|fold| {
            let (test, train): (Vec<usize>, Vec<usize>) = (0..order.len()).partition(|&row| fold_of[row] == fold);
            (train, test)
        })
        .collect()
}

/// K-fold cross-validation over rows `0..n`: `k` pairs `(train, test)` whose test parts
/// partition the rows (every row is tested exactly once) after a shuffle from `seed`. As in
/// scikit-learn, the first `n % k` folds have one test row more than the others.
///
/// Fails when `k < 2` or `k > n`.
pub fn kfold(n: usize, k: usize, seed: u64) -> Result<Vec<Split>, ConfigError> {
    check_folds(n, k)?;
    let (small, extra) = (n / k, n % k);
    // The first `extra` folds hold `small + 1` positions each, the rest `small`.
    let fold_of_position = |position: usize| {
        let big_span = extra * (small + 1);
        if position < big_span {
            position / (small + 1)
        } else {
            extra + (position - big_span) / small
        }
    };
    Ok(folds(&shuffled(n, seed), k, fold_of_position))
}

/// K-fold cross-validation where each class (class indices, one per row) is spread over the
/// folds as evenly as possible: every fold's test part holds `⌊n_c / k⌋` or `⌈n_c / k⌉` rows of
/// class `c`, and fold sizes differ by at most one.
pub fn stratified_kfold(labels: &[usize], k: usize, seed: u64) -> Result<Vec<Split>, ConfigError> {
    check_folds(labels.len(), k)?;
    Ok(folds(&shuffled_by_class(labels, seed), k, |position| position % k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let first = shuffled(50, 7);
        assert_eq!(first, shuffled(50, 7));
        assert_ne!(first, shuffled(50, 8));
        assert_ne!(first, (0..50).collect::<Vec<_>>());
        assert_eq!(sorted(first), (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn fold_sizes_follow_scikit_learn() {
        let sizes: Vec<usize> = kfold(11, 3, 0).unwrap().iter().map(|(_, test)| test.len()).collect();
        assert_eq!(sizes, [4, 4, 3]);
    }
}
