//! Matrix factorization for recommendation: the biased "SVD" of Simon Funk and scikit-surprise.
//!
//! A rating of user u for item i is predicted as
//!
//! ```text
//! r̂(u, i) = μ + b_u + b_i + p_u · q_i
//! ```
//!
//! with μ the mean of the training ratings, b_u and b_i the user's and the item's biases and
//! p_u, q_i their `n_factors`-long factor vectors. Training minimizes the squared error with an L2
//! penalty on every parameter a rating touches.
//!
//! Two trainers share one model:
//!
//! * [`MatrixFactorization::fit`] runs stochastic gradient descent one rating at a time, exactly
//!   the update of surprise's `SVD` (see [`MatrixFactorization::fit_sgd`]), in a tight `f32`
//!   loop over factors that are stored contiguously per user and per item.
//! * [`MatrixFactorization::fit_minibatch`] trains with any [`Optimizer`] of the crate on
//!   mini-batches: the parameters are one flat buffer described by a [`ParamLayout`] and
//!   [`MatrixFactorization::loss_and_gradient`] gives the batch loss and its gradient.
//!
//! Data comes as plain slices of dense, 0-based ids ([`Ratings`]). Training is reproducible: the
//! same configuration, data and seed give a bit-identical model.

use rand::{RngCore, SeedableRng};
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::{non_negative, ConfigError};
use crate::optim::Optimizer;
use crate::params::ParamLayout;
use crate::train::metrics::MetricsError;
use crate::transform::sum_of_squares;

/// Name of the segment holding the user biases b_u (`n_users` values).
pub const USER_BIAS: &str = "user_bias";
/// Name of the segment holding the item biases b_i (`n_items` values).
pub const ITEM_BIAS: &str = "item_bias";
/// Name of the segment holding the user factors p_u (`n_users × n_factors`, one user per row).
pub const USER_FACTORS: &str = "user_factors";
/// Name of the segment holding the item factors q_i (`n_items × n_factors`, one item per row).
pub const ITEM_FACTORS: &str = "item_factors";

/// The generator of every random number of matrix factorization: xoshiro256++, whose output for a
/// seed is fixed by its published algorithm (like ChaCha's, on every platform and version) at a
/// fraction of ChaCha8's cost per number (a MovieLens fit draws 2.6 million).
type MfRng = Xoshiro256PlusPlus;

/// A generator for `seed` and the stream named by `purpose` and `index`: the three numbers are
/// folded into one by SplitMix64's (bijective) mixing step, which seeds the generator
/// (`seed_from_u64` fills its state by SplitMix64 too). Distinct indices of one seed and purpose
/// give distinct streams, and every stream is fixed whatever ran before it.
fn keyed_rng(seed: u64, purpose: u64, index: u64) -> MfRng {
    let mix = |x: u64| {
        let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    MfRng::seed_from_u64(mix(mix(mix(seed) ^ purpose) ^ index))
}

/// [`keyed_rng`] purpose of the generator that orders the ratings of the sequential trainers.
const SHUFFLE_STREAM: u64 = 1;

/// [`keyed_rng`] purpose of the generators that draw the initial factors, one per block of
/// [`INIT_BLOCK`] values (the block is the index): the blocks are drawn in parallel, and the values
/// do not depend on the number of threads.
const INIT_STREAMS: u64 = 2;

/// Values of the factor tables drawn by one generator (see [`INIT_STREAMS`]).
const INIT_BLOCK: usize = 8192;

/// [`keyed_rng`] purpose of the generators of [`MatrixFactorization::fit_dsgd`]; the index is the
/// epoch and the block (see [`block_rng`]).
const DSGD_STREAMS: u64 = 3;

/// What went wrong with a model's configuration or data.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MfError {
    /// A hyperparameter is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The three slices of a [`Ratings`] differ in length.
    #[error("users, items and ratings differ in length ({users}, {items} and {ratings})")]
    LengthMismatch {
        /// Length of the user ids.
        users: usize,
        /// Length of the item ids.
        items: usize,
        /// Length of the ratings.
        ratings: usize,
    },
    /// A user id is not below the number of users.
    #[error("rating {index}: user id {id} is out of range, expected an id below n_users = {n_users}")]
    UserOutOfRange {
        /// Position of the rating.
        index: usize,
        /// The id found.
        id: u32,
        /// The number of users.
        n_users: usize,
    },
    /// An item id is not below the number of items.
    #[error("rating {index}: item id {id} is out of range, expected an id below n_items = {n_items}")]
    ItemOutOfRange {
        /// Position of the rating.
        index: usize,
        /// The id found.
        id: u32,
        /// The number of items.
        n_items: usize,
    },
    /// A rating is NaN or infinite.
    #[error("rating {index} is {value}, expected a finite number")]
    NonFiniteRating {
        /// Position of the rating.
        index: usize,
        /// The value found.
        value: f32,
    },
    /// There are no ratings to train on (the global mean would be undefined).
    #[error("no ratings to train on")]
    Empty,
    /// The data counts other users or items than the model was built for.
    #[error("the data has {data_users} users and {data_items} items, the model was built for {model_users} and {model_items}")]
    ShapeMismatch {
        /// Users counted by the data.
        data_users: usize,
        /// Items counted by the data.
        data_items: usize,
        /// Users of the model.
        model_users: usize,
        /// Items of the model.
        model_items: usize,
    },
    /// A deserialized model is inconsistent.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// The model would take more memory than the machine has available.
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
}

/// Hyperparameters of [`MatrixFactorization`], named and defaulted as in scikit-surprise's `SVD`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfConfig {
    /// Length of the factor vectors p_u and q_i (default 100).
    pub n_factors: usize,
    /// Passes over the training ratings made by [`MatrixFactorization::fit`] (default 20).
    pub n_epochs: usize,
    /// Mean of the normal distribution the factors are drawn from (default 0).
    pub init_mean: f64,
    /// Standard deviation of the normal distribution the factors are drawn from (default 0.1).
    pub init_std_dev: f64,
    /// Learning rate of the one-rating-at-a-time SGD for every parameter (default 0.005).
    pub lr_all: f64,
    /// L2 regularization strength for every parameter (default 0.02).
    pub reg_all: f64,
    /// Seed of the factor initialization and, in [`MatrixFactorization::fit`], of the order the
    /// ratings are visited in (default 0).
    pub seed: u64,
    /// Whether [`MatrixFactorization::fit`] trains with the stratified, parallel
    /// [`MatrixFactorization::fit_dsgd`] rather than the classic sequential
    /// [`MatrixFactorization::fit_sgd`] (default false). Both are reproducible bit for bit; they
    /// visit the ratings in different orders, so they give different models. The sequential one
    /// stays the default: on MovieLens 5-fold cross-validation its held-out RMSE is better (0.8736
    /// against 0.8751 with these defaults, 0.8594 against 0.8624 with `lr_all` 0.01, `reg_all` 0.05).
    pub parallel: bool,
}

impl Default for MfConfig {
    fn default() -> Self {
        Self {
            n_factors: 100,
            n_epochs: 20,
            init_mean: 0.0,
            init_std_dev: 0.1,
            lr_all: 0.005,
            reg_all: 0.02,
            seed: 0,
            parallel: false,
        }
    }
}

impl MfConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.init_mean.is_finite() {
            return Err(ConfigError::new("init_mean", self.init_mean, "a finite number"));
        }
        non_negative("init_std_dev", self.init_std_dev)?;
        non_negative("lr_all", self.lr_all)?;
        non_negative("reg_all", self.reg_all)?;
        Ok(())
    }
}

/// Borrowed (user, item, rating) triples with dense, 0-based ids, checked once on construction.
#[derive(Debug, Clone, Copy)]
pub struct Ratings<'a> {
    n_users: usize,
    n_items: usize,
    users: &'a [u32],
    items: &'a [u32],
    ratings: &'a [f32],
}

impl<'a> Ratings<'a> {
    /// Views `ratings[k]` as the rating of user `users[k]` for item `items[k]`. Fails unless the
    /// three slices have one length, every user id is below `n_users`, every item id below
    /// `n_items` and every rating is finite.
    pub fn new(
        n_users: usize,
        n_items: usize,
        users: &'a [u32],
        items: &'a [u32],
        ratings: &'a [f32],
    ) -> Result<Self, MfError> {
        if users.len() != items.len() || users.len() != ratings.len() {
            return Err(MfError::LengthMismatch { users: users.len(), items: items.len(), ratings: ratings.len() });
        }
        for (index, ((&user, &item), &rating)) in users.iter().zip(items).zip(ratings).enumerate() {
            if user as usize >= n_users {
                return Err(MfError::UserOutOfRange { index, id: user, n_users });
            }
            if item as usize >= n_items {
                return Err(MfError::ItemOutOfRange { index, id: item, n_items });
            }
            if !rating.is_finite() {
                return Err(MfError::NonFiniteRating { index, value: rating });
            }
        }
        Ok(Self { n_users, n_items, users, items, ratings })
    }

    /// The number of users ids may name.
    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// The number of items ids may name.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// The number of ratings.
    pub fn len(&self) -> usize {
        self.ratings.len()
    }

    /// Whether there are no ratings.
    pub fn is_empty(&self) -> bool {
        self.ratings.is_empty()
    }

    /// The `k`-th triple, if there is one.
    pub fn get(&self, k: usize) -> Option<(u32, u32, f32)> {
        Some((*self.users.get(k)?, *self.items.get(k)?, *self.ratings.get(k)?))
    }

    /// The user ids.
    pub fn users(&self) -> &'a [u32] {
        self.users
    }

    /// The item ids.
    pub fn items(&self) -> &'a [u32] {
        self.items
    }

    /// The ratings.
    pub fn ratings(&self) -> &'a [f32] {
        self.ratings
    }
}

/// A biased matrix-factorization model (Funk SVD, scikit-surprise's `SVD`).
///
/// Prediction, for a user and an item both seen in training:
///
/// ```text
/// r̂(u, i) = μ + b_u + b_i + p_u · q_i
/// ```
///
/// For a user or item that had no training rating (an id beyond the model's counts, or one that
/// simply never occurred in the training data) the terms that need it are dropped, as surprise
/// does: unknown user → μ + b_i, unknown item → μ + b_u, both unknown → μ. The prediction is then
/// clamped to the range of the ratings seen in training. (Surprise clamps to the rating scale
/// declared to its `Reader`; for data sets such as MovieLens that use their whole scale in
/// training the two agree.)
///
/// Parameters are one flat `f32` buffer laid out as [`MatrixFactorization::layout`] describes:
/// segments [`USER_BIAS`], [`ITEM_BIAS`], [`USER_FACTORS`] and [`ITEM_FACTORS`], factors
/// row-major (one contiguous row per user or item). The global mean μ is not a parameter: it is
/// the mean of the training ratings, fixed when the model is built.
///
/// The model serializes with serde; a deserialized model predicts bit-identically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ModelData")]
pub struct MatrixFactorization {
    config: MfConfig,
    n_users: usize,
    n_items: usize,
    global_mean: f32,
    rating_min: f32,
    rating_max: f32,
    user_known: Vec<bool>,
    item_known: Vec<bool>,
    params: Vec<f32>,
}

/// The serialized form, checked before it becomes a model.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelData {
    config: MfConfig,
    n_users: usize,
    n_items: usize,
    global_mean: f32,
    rating_min: f32,
    rating_max: f32,
    user_known: Vec<bool>,
    item_known: Vec<bool>,
    params: Vec<f32>,
}

impl TryFrom<ModelData> for MatrixFactorization {
    type Error = MfError;

    fn try_from(data: ModelData) -> Result<Self, MfError> {
        data.config.validate()?;
        let expected = param_count(data.n_users, data.n_items, data.config.n_factors)
            .ok_or_else(|| MfError::InvalidModel("the parameter count overflows".into()))?;
        if data.params.len() != expected {
            return Err(MfError::InvalidModel(format!(
                "{} parameters, expected {expected} for {} users, {} items and {} factors",
                data.params.len(),
                data.n_users,
                data.n_items,
                data.config.n_factors
            )));
        }
        if data.user_known.len() != data.n_users || data.item_known.len() != data.n_items {
            return Err(MfError::InvalidModel("known-user or known-item flags have the wrong length".into()));
        }
        if !(data.global_mean.is_finite()
            && data.rating_min.is_finite()
            && data.rating_max.is_finite()
            && data.rating_min <= data.rating_max)
        {
            return Err(MfError::InvalidModel("global mean or rating range is not finite and ordered".into()));
        }
        Ok(Self {
            config: data.config,
            n_users: data.n_users,
            n_items: data.n_items,
            global_mean: data.global_mean,
            rating_min: data.rating_min,
            rating_max: data.rating_max,
            user_known: data.user_known,
            item_known: data.item_known,
            params: data.params,
        })
    }
}

fn param_count(n_users: usize, n_items: usize, n_factors: usize) -> Option<usize> {
    let rows = n_users.checked_add(n_items)?;
    rows.checked_mul(n_factors.checked_add(1)?)
}

/// The four segments of a parameter (or gradient) buffer.
struct Parts<T> {
    user_bias: T,
    item_bias: T,
    user_factors: T,
    item_factors: T,
}

fn split(buffer: &[f32], n_users: usize, n_items: usize, k: usize) -> Parts<&[f32]> {
    let (user_bias, rest) = buffer.split_at(n_users);
    let (item_bias, rest) = rest.split_at(n_items);
    let (user_factors, item_factors) = rest.split_at(n_users * k);
    Parts { user_bias, item_bias, user_factors, item_factors }
}

fn split_mut(buffer: &mut [f32], n_users: usize, n_items: usize, k: usize) -> Parts<&mut [f32]> {
    let (user_bias, rest) = buffer.split_at_mut(n_users);
    let (item_bias, rest) = rest.split_at_mut(n_items);
    let (user_factors, item_factors) = rest.split_at_mut(n_users * k);
    Parts { user_bias, item_bias, user_factors, item_factors }
}

/// The width of the partial sums of [`dot`] and of the padded rows the SGD trainers work on: 16
/// `f32`, one 64-byte cache line, two AVX registers. Two independent registers of partial sums
/// halve the chain of dependent additions that one would make (the dot product is on the
/// critical path of every update).
const LANES: usize = 16;

/// One cache line of factors: the unit of the padded rows the SGD trainers work on.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
struct Lanes([f32; LANES]);

impl Lanes {
    const ZERO: Self = Self([0.0; LANES]);
}

/// Folds the partial sums in halves (lane j takes lane j + width) down to one.
#[inline(always)]
fn fold(mut partial: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        let (low, high) = partial.split_at_mut(width);
        for (l, &h) in low.iter_mut().zip(&high[..width]) {
            *l += h;
        }
        width /= 2;
    }
    partial[0]
}

/// `partial[lane] += x[lane] · y[lane]` for every lane.
#[inline(always)]
fn accumulate(partial: &mut [f32; LANES], x: &[f32; LANES], y: &[f32; LANES]) {
    for lane in 0..LANES {
        partial[lane] += x[lane] * y[lane];
    }
}

/// `a · b` over the common length, as if both were padded with zeros to a multiple of [`LANES`]:
/// [`LANES`] partial sums over whole chunks, then folded in halves. The order of the additions is
/// fixed, so the result is the same on every run and CPU, and it equals [`dot_rows`] on the
/// padded rows bit for bit (the padding adds 0 · 0 = +0 to each partial sum in both).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut partial = [0.0f32; LANES];
    let (mut a_chunks, mut b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut a_chunks).zip(&mut b_chunks) {
        // Fixed-size arrays: with the length known, the lanes map onto vector registers.
        match (x.try_into(), y.try_into()) {
            (Ok(x), Ok(y)) => accumulate(&mut partial, x, y),
            _ => unreachable!("chunks_exact yields chunks of LANES"),
        }
    }
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    if !a_rest.is_empty() {
        let (mut x, mut y) = ([0.0f32; LANES], [0.0f32; LANES]);
        x[..a_rest.len()].copy_from_slice(a_rest);
        y[..b_rest.len()].copy_from_slice(b_rest);
        accumulate(&mut partial, &x, &y);
    }
    fold(partial)
}

/// [`dot`] of two padded rows.
#[inline(always)]
fn dot_rows(a: &[Lanes], b: &[Lanes]) -> f32 {
    let mut partial = [0.0f32; LANES];
    for (x, y) in a.iter().zip(b) {
        accumulate(&mut partial, &x.0, &y.0);
    }
    fold(partial)
}

/// Copies a table of rows of `k` factors into rows of whole [`Lanes`], zero-padded: every row
/// starts on a cache line and the SGD update needs no scalar tail. The padding stays +0 under the
/// update (0 + γ(e·0 − λ·0) = +0).
#[cfg(test)]
fn pad_rows(factors: &[f32], k: usize) -> Vec<Lanes> {
    let mut rows = Vec::new();
    pad_rows_into(factors, k, &mut rows);
    rows
}

/// [`pad_rows`]' copy into `rows`, whose allocation is reused (a table refilled every epoch then costs
/// no fresh pages).
fn pad_rows_into(factors: &[f32], k: usize, rows: &mut Vec<Lanes>) {
    let width = k.div_ceil(LANES);
    let n_rows = factors.len().checked_div(k).unwrap_or(0);
    if rows.len() != n_rows * width {
        rows.clear();
        rows.resize(n_rows * width, Lanes::ZERO);
    }
    if k == 0 {
        return;
    }
    // Every lane is written whole (the padding too: a pass that met a NaN may have left one in
    // it), in parallel over the rows: a copy that runs every epoch of the engine's passes.
    rows.par_chunks_exact_mut(width).zip(factors.par_chunks_exact(k)).with_min_len(256).for_each(|(padded, row)| {
        for (lanes, chunk) in padded.iter_mut().zip(row.chunks(LANES)) {
            match <[f32; LANES]>::try_from(chunk) {
                Ok(full) => lanes.0 = full,
                Err(_) => {
                    lanes.0 = [0.0; LANES];
                    lanes.0[..chunk.len()].copy_from_slice(chunk);
                }
            }
        }
    });
}

/// Writes padded rows back into the table of rows of `k` factors they came from; returns whether
/// every factor is finite (read on the way, where a check of its own would read them again).
fn unpad_rows(rows: &[Lanes], factors: &mut [f32], k: usize) -> bool {
    if k == 0 {
        return true;
    }
    let width = k.div_ceil(LANES);
    // Every row is written, finite or not: no short-circuit.
    factors
        .par_chunks_exact_mut(k)
        .zip(rows.par_chunks_exact(width))
        .with_min_len(256)
        .map(|(row, padded)| {
            let mut finite = true;
            for (chunk, lanes) in row.chunks_mut(LANES).zip(padded) {
                match <&mut [f32; LANES]>::try_from(&mut *chunk) {
                    Ok(full) => *full = lanes.0,
                    Err(_) => chunk.copy_from_slice(&lanes.0[..chunk.len()]),
                }
                finite &= chunk.iter().fold(true, |all, v| all & v.is_finite());
            }
            finite
        })
        .reduce(|| true, |a, b| a & b)
}

/// A number in `0..n` (`n ≥ 1`) by multiply-shift range reduction: from one 32-bit draw while `n`
/// fits in 32 bits (half the generator's output of a 64-bit draw: the shuffles draw once per rating
/// and epoch), from a 64-bit draw beyond.
#[inline(always)]
fn below(n: usize, rng: &mut MfRng) -> usize {
    match u32::try_from(n) {
        Ok(n) => ((u64::from(rng.next_u32()) * u64::from(n)) >> 32) as usize,
        Err(_) => ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize,
    }
}

/// Fisher–Yates shuffle drawing from `rng` with [`below`]. Written out here
/// (rather than `rand`'s `shuffle`) so that the order for a seed is fixed by this crate alone.
fn shuffle(order: &mut [u32], rng: &mut MfRng) {
    for i in (1..order.len()).rev() {
        let j = below(i + 1, rng);
        order.swap(i, j);
    }
}

fn shuffle_rng(seed: u64) -> MfRng {
    keyed_rng(seed, SHUFFLE_STREAM, 0)
}

/// How many ratings ahead [`sgd_pass`] asks for the factor rows it will need (measured on
/// MovieLens: 2 to 8 do equally well, about 8% faster than none).
const PREFETCH_AHEAD: usize = 2;

/// Asks the CPU to bring the cache line at `line` into the cache: only a hint, which changes no
/// memory and cannot fault, whatever the address.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_line(line: *const Lanes) {
    // SAFETY: a prefetch is only a hint and never dereferences the pointer.
    unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.cast()) };
}

/// Asks the CPU to bring `row` into the cache, one request per 64-byte line.
#[inline(always)]
fn prefetch(row: &[Lanes]) {
    #[cfg(target_arch = "x86_64")]
    for line in row {
        // SAFETY: a prefetch is only a hint: it changes no memory and cannot fault, and the
        // pointer comes from a live slice anyway.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((line as *const Lanes).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// The constants of a pass of per-rating SGD.
#[derive(Clone, Copy)]
struct SgdStep {
    /// Row width in [`Lanes`].
    width: usize,
    lr: f32,
    reg: f32,
    mu: f32,
}

/// Runs `train` on the biases of `params` (a flat buffer of `(users, items, factors)`) and on
/// padded copies of its factor tables made in `rows` (see [`pad_rows_into`]), then writes the
/// factors back.
fn with_padded_tables(
    params: &mut [f32],
    (n_users, n_items, k): (usize, usize, usize),
    (user_rows, item_rows): (&mut Vec<Lanes>, &mut Vec<Lanes>),
    train: impl FnOnce(Tables<'_>),
) {
    let Parts { user_bias, item_bias, user_factors, item_factors } = split_mut(params, n_users, n_items, k);
    pad_rows_into(user_factors, k, user_rows);
    pad_rows_into(item_factors, k, item_rows);
    train(Tables { user_bias, item_bias, user_rows, item_rows });
    unpad_rows(user_rows, user_factors, k);
    unpad_rows(item_rows, item_factors, k);
}

/// What a pass of per-rating SGD updates: biases and padded factor rows (see [`pad_rows`]).
struct Tables<'a> {
    user_bias: &'a mut [f32],
    item_bias: &'a mut [f32],
    user_rows: &'a mut [Lanes],
    item_rows: &'a mut [Lanes],
}

impl Tables<'_> {
    /// The same tables, lent for a shorter while.
    fn reborrow(&mut self) -> Tables<'_> {
        Tables {
            user_bias: self.user_bias,
            item_bias: self.item_bias,
            user_rows: self.user_rows,
            item_rows: self.item_rows,
        }
    }
}

/// The initial factors (biases start at 0): normal draws from `seed`, in blocks of their own
/// generators, so that the draw runs on every thread and gives the same values on any count.
fn draw_factors(factors: &mut [f32], config: &MfConfig, seed: u64) -> Result<(), ConfigError> {
    let normal = Normal::new(config.init_mean, config.init_std_dev)
        .map_err(|_| ConfigError::new("init_std_dev", config.init_std_dev, "a finite number >= 0"))?;
    factors.par_chunks_mut(INIT_BLOCK).enumerate().for_each(|(block, values)| {
        let mut rng = keyed_rng(seed, INIT_STREAMS, block as u64);
        for p in values {
            *p = normal.sample(&mut rng) as f32;
        }
    });
    Ok(())
}

/// One pass of the per-rating update (see [`MatrixFactorization::fit_sgd`]) over `ratings`, in
/// their order. Inlined into each instruction-set variant so that each is compiled for its own.
#[inline(always)]
fn sgd_pass(step: SgdStep, tables: Tables<'_>, ratings: &[(u32, u32, f32)]) -> f64 {
    let SgdStep { width, lr, reg, mu } = step;
    let Tables { user_bias, item_bias, user_rows, item_rows } = tables;
    let mut squared = 0.0f64;
    for (position, &(u, i, r)) in ratings.iter().enumerate() {
        // The rows a few ratings ahead are random rows of tables larger than the L1 cache: ask
        // for them now so that they have arrived when their turn comes.
        if let Some(&(next_u, next_i, _)) = ratings.get(position + PREFETCH_AHEAD) {
            let (next_u, next_i) = (next_u as usize, next_i as usize);
            prefetch(&user_rows[next_u * width..(next_u + 1) * width]);
            prefetch(&item_rows[next_i * width..(next_i + 1) * width]);
        }
        // `Ratings::new` checked every id against the counts the tables were sized by.
        let (u, i) = (u as usize, i as usize);
        let pu = &mut user_rows[u * width..(u + 1) * width];
        let qi = &mut item_rows[i * width..(i + 1) * width];
        let (bu, bi) = (&mut user_bias[u], &mut item_bias[i]);
        let err = r - (mu + *bu + *bi + dot_rows(pu, qi));
        squared += f64::from(err) * f64::from(err);
        *bu += lr * (err - reg * *bu);
        *bi += lr * (err - reg * *bi);
        for (p, q) in pu.iter_mut().zip(qi.iter_mut()) {
            for lane in 0..LANES {
                let (pf, qf) = (p.0[lane], q.0[lane]);
                p.0[lane] += lr * (err * qf - reg * pf);
                q.0[lane] += lr * (err * pf - reg * qf);
            }
        }
    }
    squared
}

/// The two row operations of [`sgd_pass`], in one instruction set: written with intrinsics
/// because the compiler, left to itself, vectorized the portable loops across rows instead of
/// along them. Every implementation rounds exactly as the portable code (no fused multiply-add,
/// the same order of additions), so a model does not depend on the CPU it was trained on.
#[cfg(target_arch = "x86_64")]
trait RowKernel {
    /// [`dot_rows`] of the padded rows at `p` and `q`.
    ///
    /// # Safety
    /// The CPU must have the instruction set; both pointers must address `width` [`Lanes`].
    unsafe fn dot(p: *const Lanes, q: *const Lanes, width: usize) -> f32;

    /// The factor step of [`sgd_pass`]: `p += γ(e q − λ p)`, `q += γ(e p − λ q)` with the old
    /// `p` and `q`, lane by lane in the portable order of operations.
    ///
    /// # Safety
    /// As [`RowKernel::dot`], and the rows must not overlap.
    unsafe fn update(p: *mut Lanes, q: *mut Lanes, width: usize, err: f32, lr: f32, reg: f32);
}

/// AVX2: the 16 partial sums of a row are two 8-lane registers.
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl RowKernel for Avx2 {
    #[inline(always)]
    unsafe fn dot(p: *const Lanes, q: *const Lanes, width: usize) -> f32 {
        // SAFETY: forwarded from the caller.
        unsafe { dot_rows_avx2(p, q, width) }
    }

    #[inline(always)]
    unsafe fn update(p: *mut Lanes, q: *mut Lanes, width: usize, err: f32, lr: f32, reg: f32) {
        // SAFETY: forwarded from the caller.
        unsafe { update_rows_avx2(p, q, width, err, lr, reg) }
    }
}

/// AVX-512: one register per [`Lanes`], half the instructions of AVX2 (13% less time per
/// MovieLens fold).
#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl RowKernel for Avx512 {
    #[inline(always)]
    unsafe fn dot(p: *const Lanes, q: *const Lanes, width: usize) -> f32 {
        // SAFETY: forwarded from the caller.
        unsafe { dot_rows_avx512(p, q, width) }
    }

    #[inline(always)]
    unsafe fn update(p: *mut Lanes, q: *mut Lanes, width: usize, err: f32, lr: f32, reg: f32) {
        // SAFETY: forwarded from the caller.
        unsafe { update_rows_avx512(p, q, width, err, lr, reg) }
    }
}

/// Sums 8 partial sums as [`fold`] does: lane j takes lane j + 4, then j + 2, then j + 1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn fold_eight(eight: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let four = _mm_add_ps(_mm256_castps256_ps128(eight), _mm256_extractf128_ps::<1>(eight));
    let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
    _mm_cvtss_f32(_mm_add_ss(two, _mm_movehdup_ps(two)))
}

/// [`RowKernel::dot`] in AVX2: the partial sums are two 8-lane registers, folded in halves as
/// [`fold`] does.
///
/// # Safety
/// The CPU must support AVX2, and both pointers must address `width` [`Lanes`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn dot_rows_avx2(p: *const Lanes, q: *const Lanes, width: usize) -> f32 {
    use std::arch::x86_64::*;
    let (mut low, mut high) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for c in 0..width {
        // SAFETY: c < width.
        let (p, q) = unsafe { (p.add(c).cast::<f32>(), q.add(c).cast::<f32>()) };
        // SAFETY: each Lanes is 16 aligned floats.
        unsafe {
            low = _mm256_add_ps(low, _mm256_mul_ps(_mm256_load_ps(p), _mm256_load_ps(q)));
            high = _mm256_add_ps(high, _mm256_mul_ps(_mm256_load_ps(p.add(8)), _mm256_load_ps(q.add(8))));
        }
    }
    fold_eight(_mm256_add_ps(low, high))
}

/// [`RowKernel::update`] in AVX2.
///
/// # Safety
/// The CPU must support AVX2, and both pointers must address `width` [`Lanes`] that do not overlap.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn update_rows_avx2(p: *mut Lanes, q: *mut Lanes, width: usize, err: f32, lr: f32, reg: f32) {
    use std::arch::x86_64::*;
    let (err, lr, reg) = (_mm256_set1_ps(err), _mm256_set1_ps(lr), _mm256_set1_ps(reg));
    for half in 0..2 * width {
        // SAFETY: each Lanes is two halves of 8 aligned floats, and half < 2 width.
        unsafe {
            let (p, q) = (p.cast::<f32>().add(8 * half), q.cast::<f32>().add(8 * half));
            let (pv, qv) = (_mm256_load_ps(p), _mm256_load_ps(q));
            let step_p = _mm256_mul_ps(lr, _mm256_sub_ps(_mm256_mul_ps(err, qv), _mm256_mul_ps(reg, pv)));
            let step_q = _mm256_mul_ps(lr, _mm256_sub_ps(_mm256_mul_ps(err, pv), _mm256_mul_ps(reg, qv)));
            _mm256_store_ps(p, _mm256_add_ps(pv, step_p));
            _mm256_store_ps(q, _mm256_add_ps(qv, step_q));
        }
    }
}

/// [`RowKernel::dot`] in AVX-512: one 16-lane register of partial sums, folded in halves as
/// [`fold`] does.
///
/// # Safety
/// The CPU must support AVX-512F, and both pointers must address `width` [`Lanes`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
#[inline]
unsafe fn dot_rows_avx512(p: *const Lanes, q: *const Lanes, width: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut partial = _mm512_setzero_ps();
    for c in 0..width {
        // SAFETY: c < width, and each Lanes is 16 aligned floats.
        unsafe {
            let (p, q) = (p.add(c).cast::<f32>(), q.add(c).cast::<f32>());
            partial = _mm512_add_ps(partial, _mm512_mul_ps(_mm512_load_ps(p), _mm512_load_ps(q)));
        }
    }
    // Lane j takes lane j + 8 (the two 256-bit halves), then as AVX2.
    let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(partial)));
    fold_eight(_mm256_add_ps(_mm512_castps512_ps256(partial), high))
}

/// [`RowKernel::update`] in AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F, and both pointers must address `width` [`Lanes`] that do not
/// overlap.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
#[inline]
unsafe fn update_rows_avx512(p: *mut Lanes, q: *mut Lanes, width: usize, err: f32, lr: f32, reg: f32) {
    use std::arch::x86_64::*;
    let (err, lr, reg) = (_mm512_set1_ps(err), _mm512_set1_ps(lr), _mm512_set1_ps(reg));
    for c in 0..width {
        // SAFETY: c < width, and each Lanes is 16 aligned floats.
        unsafe {
            let (p, q) = (p.add(c).cast::<f32>(), q.add(c).cast::<f32>());
            let (pv, qv) = (_mm512_load_ps(p), _mm512_load_ps(q));
            let step_p = _mm512_mul_ps(lr, _mm512_sub_ps(_mm512_mul_ps(err, qv), _mm512_mul_ps(reg, pv)));
            let step_q = _mm512_mul_ps(lr, _mm512_sub_ps(_mm512_mul_ps(err, pv), _mm512_mul_ps(reg, qv)));
            _mm512_store_ps(p, _mm512_add_ps(pv, step_p));
            _mm512_store_ps(q, _mm512_add_ps(qv, step_q));
        }
    }
}

/// [`sgd_pass`] with the row operations of `K`, giving the same bits. Inlined into one
/// `target_feature` function per instruction set.
///
/// Two consecutive ratings that share neither their user nor their item are computed side by
/// side: neither reads what the other writes, so the result is that of taking them one after the
/// other, and the processor gets two independent chains of dependent operations to overlap.
///
/// # Safety
/// The CPU must have `K`'s instruction set, and every id of `ratings` must be within the tables.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn sgd_pass_simd<K: RowKernel>(step: SgdStep, tables: Tables<'_>, ratings: &[(u32, u32, f32)]) -> f64 {
    let SgdStep { width, lr, reg, mu } = step;
    let Tables { user_bias, item_bias, user_rows, item_rows } = tables;
    let (user_rows, item_rows) = (user_rows.as_mut_ptr(), item_rows.as_mut_ptr());
    let (user_bias, item_bias) = (user_bias.as_mut_ptr(), item_bias.as_mut_ptr());
    // SAFETY (whole body): the ids are within the tables (the caller's promise), so every row
    // and bias addressed lies in them; two rows updated side by side belong to different users
    // and items, so they do not overlap.
    unsafe {
        let fetch = |position: usize| {
            if let Some(&(u, i, _)) = ratings.get(position) {
                let (u, i) = (u as usize * width, i as usize * width);
                for line in 0..width {
                    prefetch_line(user_rows.add(u + line));
                    prefetch_line(item_rows.add(i + line));
                }
            }
        };
        let mut position = 0;
        let mut squared = 0.0f64;
        while position < ratings.len() {
            let (u, i, r) = ratings[position];
            let pair = ratings.get(position + 1).filter(|&&(next_u, next_i, _)| next_u != u && next_i != i);
            if let Some(&(u2, i2, r2)) = pair {
                fetch(position + PREFETCH_AHEAD);
                fetch(position + PREFETCH_AHEAD + 1);
                let (u, i, u2, i2) = (u as usize, i as usize, u2 as usize, i2 as usize);
                let (pu, qi) = (user_rows.add(u * width), item_rows.add(i * width));
                let (pu2, qi2) = (user_rows.add(u2 * width), item_rows.add(i2 * width));
                let (bu, bi, bu2, bi2) = (user_bias.add(u), item_bias.add(i), user_bias.add(u2), item_bias.add(i2));
                let dot = K::dot(pu, qi, width);
                let dot2 = K::dot(pu2, qi2, width);
                let err = r - (mu + *bu + *bi + dot);
                let err2 = r2 - (mu + *bu2 + *bi2 + dot2);
                squared += f64::from(err) * f64::from(err);
                squared += f64::from(err2) * f64::from(err2);
                *bu += lr * (err - reg * *bu);
                *bi += lr * (err - reg * *bi);
                *bu2 += lr * (err2 - reg * *bu2);
                *bi2 += lr * (err2 - reg * *bi2);
                K::update(pu, qi, width, err, lr, reg);
                K::update(pu2, qi2, width, err2, lr, reg);
                position += 2;
            } else {
                fetch(position + PREFETCH_AHEAD);
                let (u, i) = (u as usize, i as usize);
                let (pu, qi) = (user_rows.add(u * width), item_rows.add(i * width));
                let (bu, bi) = (user_bias.add(u), item_bias.add(i));
                let err = r - (mu + *bu + *bi + K::dot(pu, qi, width));
                squared += f64::from(err) * f64::from(err);
                *bu += lr * (err - reg * *bu);
                *bi += lr * (err - reg * *bi);
                K::update(pu, qi, width, err, lr, reg);
                position += 1;
            }
        }
        squared
    }
}

/// [`sgd_pass_simd`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2, and every id of `ratings` must be within the tables.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sgd_pass_avx2(step: SgdStep, tables: Tables<'_>, ratings: &[(u32, u32, f32)]) -> f64 {
    // SAFETY: forwarded from the caller.
    unsafe { sgd_pass_simd::<Avx2>(step, tables, ratings) }
}

/// [`sgd_pass_simd`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F and AVX2, and every id of `ratings` must be within the tables.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn sgd_pass_avx512(step: SgdStep, tables: Tables<'_>, ratings: &[(u32, u32, f32)]) -> f64 {
    // SAFETY: forwarded from the caller.
    unsafe { sgd_pass_simd::<Avx512>(step, tables, ratings) }
}

/// Runs [`sgd_pass`] in its widest build the CPU supports (the same bits in every one).
/// Returns the sum of the squared errors of the ratings, each taken before its update.
fn run_sgd_pass(step: SgdStep, tables: Tables<'_>, ratings: &[(u32, u32, f32)]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx2") {
            // SAFETY: the CPU supports both, as checked just above.
            return unsafe { sgd_pass_avx512(step, tables, ratings) };
        }
        if has!("avx2") {
            // SAFETY: the CPU supports AVX2, as checked just above.
            return unsafe { sgd_pass_avx2(step, tables, ratings) };
        }
    }
    sgd_pass(step, tables, ratings)
}

/// The number of user ranges and of item ranges of [`MatrixFactorization::fit_dsgd`]: fixed, so
/// that the model does not depend on the number of threads. 8 keeps 2 to 8 threads busy (8
/// blocks per sub-epoch) and each block's item rows within a fast cache on MovieLens-sized data.
pub const STRATA: usize = 8;

/// Tag of the generator that orders the sub-epochs of an epoch; block generators use the block's
/// index, below `STRATA²`.
const SUB_EPOCH_ORDER: u64 = u64::MAX;

/// The generator of one (seed, epoch, block) of [`MatrixFactorization::fit_dsgd`] (block
/// [`SUB_EPOCH_ORDER`]: the order of the sub-epochs), fixed whatever ran before it.
fn block_rng(seed: u64, epoch: u64, block: u64) -> MfRng {
    // Blocks are below STRATA² or SUB_EPOCH_ORDER; epochs below 2³² in any real run.
    keyed_rng(seed, DSGD_STREAMS, epoch.wrapping_mul(1 << 32) ^ block)
}

/// [`shuffle`] for rating triples: the same multiply-shift Fisher–Yates, so shuffling triples
/// that sit in the order of `order` gives the triples in the order that shuffling `order` gives.
fn shuffle_ratings(ratings: &mut [(u32, u32, f32)], rng: &mut MfRng) {
    for i in (1..ratings.len()).rev() {
        let j = below(i + 1, rng);
        ratings.swap(i, j);
    }
}

/// The blocks of [`MatrixFactorization::fit_dsgd`]: the user and item ranges, and the ratings
/// of each block with ids made local to their ranges.
#[derive(Debug, Clone)]
struct DsgdPlan {
    user_bounds: [usize; STRATA + 1],
    item_bounds: [usize; STRATA + 1],
    /// `blocks[s * STRATA + b]` is block (b, (b + s) mod STRATA), the b-th of sub-epoch s.
    blocks: Vec<Vec<(u32, u32, f32)>>,
}

impl DsgdPlan {
    /// The blocks of `train`, filled in the data's order, so that they depend on nothing else.
    fn new(n_users: usize, n_items: usize, train: &Ratings<'_>) -> Self {
        let user_bounds = strata_bounds(n_users, train.users);
        let item_bounds = strata_bounds(n_items, train.items);
        let user_stratum = stratum_of(&user_bounds);
        let item_stratum = stratum_of(&item_bounds);
        let mut blocks: Vec<Vec<(u32, u32, f32)>> = vec![Vec::new(); STRATA * STRATA];
        for ((&u, &i), &r) in train.users.iter().zip(train.items).zip(train.ratings) {
            let (b, c) = (user_stratum[u as usize] as usize, item_stratum[i as usize] as usize);
            let s = (c + STRATA - b) % STRATA;
            blocks[s * STRATA + b].push((u - user_bounds[b] as u32, i - item_bounds[c] as u32, r));
        }
        Self { user_bounds, item_bounds, blocks }
    }

    /// Trains `epochs` epochs on `tables` (each block shuffled in place, epoch after epoch) and
    /// returns the sum of the squared errors of the last one (the blocks' sums added in block
    /// order).
    fn run(&mut self, step: SgdStep, tables: Tables<'_>, epochs: usize, seed: u64) -> f64 {
        let Self { user_bounds, item_bounds, blocks } = self;
        let mut sub_epochs: [usize; STRATA] = std::array::from_fn(|s| s);
        let mut squared = 0.0f64;
        // Inside a scope the loop runs on one of rayon's workers, so that each sub-epoch's fork and
        // join is a cheap one between workers rather than a sleep and wake-up of this thread.
        rayon::scope(|_| {
            let Tables { user_bias, item_bias, user_rows, item_rows } = tables;
            for epoch in 0..epochs as u64 {
                squared = 0.0;
                let mut rng = block_rng(seed, epoch, SUB_EPOCH_ORDER);
                for s in (1..STRATA).rev() {
                    let j = below(s + 1, &mut rng);
                    sub_epochs.swap(s, j);
                }
                for &s in &sub_epochs {
                    let users = split_strata(user_bias, user_rows, user_bounds, step.width);
                    let mut items = split_strata(item_bias, item_rows, item_bounds, step.width);
                    items.rotate_left(s);
                    let sub_epoch = &mut blocks[s * STRATA..(s + 1) * STRATA];
                    let sums: Vec<f64> = users
                        .into_par_iter()
                        .zip(items)
                        .zip(sub_epoch.par_iter_mut())
                        .enumerate()
                        .map(|(b, (((user_bias, user_rows), (item_bias, item_rows)), block))| {
                            let id = (s * STRATA + b) as u64;
                            shuffle_ratings(block, &mut block_rng(seed, epoch, id));
                            run_sgd_pass(step, Tables { user_bias, item_bias, user_rows, item_rows }, block)
                        })
                        .collect();
                    squared += sums.iter().sum::<f64>();
                }
            }
        });
        squared
    }
}

/// Bounds of [`STRATA`] ranges of consecutive ids in `0..n` that hold about equal numbers of the
/// `ids` (ratings): range b is `bounds[b]..bounds[b + 1]`. Ranges may be empty.
fn strata_bounds(n: usize, ids: &[u32]) -> [usize; STRATA + 1] {
    let mut counts = vec![0usize; n];
    for &id in ids {
        counts[id as usize] += 1;
    }
    let mut bounds = [n; STRATA + 1];
    bounds[0] = 0;
    let (mut next, mut seen) = (1, 0usize);
    for (id, &count) in counts.iter().enumerate() {
        // Close range `next - 1` before the first id at which the running count reaches its share.
        while next < STRATA && seen * STRATA >= next * ids.len() {
            bounds[next] = id;
            next += 1;
        }
        seen += count;
    }
    bounds
}

/// The range of every id, from [`strata_bounds`].
fn stratum_of(bounds: &[usize; STRATA + 1]) -> Vec<u8> {
    let mut of = vec![0u8; bounds[STRATA]];
    for b in 0..STRATA {
        of[bounds[b]..bounds[b + 1]].fill(b as u8);
    }
    of
}

/// One (biases, padded rows) pair of sub-slices per range of `bounds`, rows `width` [`Lanes`] wide.
fn split_strata<'a>(
    mut bias: &'a mut [f32],
    mut rows: &'a mut [Lanes],
    bounds: &[usize; STRATA + 1],
    width: usize,
) -> Vec<(&'a mut [f32], &'a mut [Lanes])> {
    let mut pieces = Vec::with_capacity(STRATA);
    for b in 0..STRATA {
        let n = bounds[b + 1] - bounds[b];
        let (bias_here, bias_rest) = std::mem::take(&mut bias).split_at_mut(n);
        let (rows_here, rows_rest) = std::mem::take(&mut rows).split_at_mut(n * width);
        pieces.push((bias_here, rows_here));
        (bias, rows) = (bias_rest, rows_rest);
    }
    pieces
}

/// What [`MatrixFactorization::evaluate`] measures on a batch of ratings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MfMetrics {
    /// The mean loss of [`MatrixFactorization::loss_and_gradient`].
    pub loss: f64,
    /// Root mean squared error of the predictions (see [`rmse`]).
    pub rmse: f64,
    /// Mean absolute error of the predictions (see [`mae`]).
    pub mae: f64,
}

/// Squared norms of every factor row (see [`MatrixFactorization::evaluate`]).
struct RowNorms {
    users: Vec<f64>,
    items: Vec<f64>,
}

impl MatrixFactorization {
    /// An untrained model for `train`'s users and items: μ is the mean of `train`'s ratings, the
    /// clamping range their minimum and maximum, the known users and items those with at least
    /// one rating in `train`; biases are zero and factors are drawn from
    /// N(`init_mean`, `init_std_dev`²) with xoshiro256++ generators keyed by `config.seed`, one
    /// per block of 8192 values of the factor tables (users' rows first, then items'),
    /// drawn on rayon's threads: the same values on any number of threads.
    pub fn new(config: &MfConfig, train: &Ratings<'_>) -> Result<Self, MfError> {
        config.validate()?;
        if train.is_empty() {
            return Err(MfError::Empty);
        }
        let (n_users, n_items, k) = (train.n_users, train.n_items, config.n_factors);
        // The parameters, and the padded copies of the factor tables the SGD trainers work on.
        let len = param_count(n_users, n_items, k);
        let padded =
            n_users.checked_add(n_items).and_then(|rows| rows.checked_mul(k.div_ceil(LANES).checked_mul(LANES)?));
        let needed = crate::memory::total([
            len.and_then(|len| crate::memory::bytes_of(len, crate::memory::F32_BYTES)),
            padded.and_then(|padded| crate::memory::bytes_of(padded, crate::memory::F32_BYTES)),
        ]);
        crate::memory::check(
            format!("matrix factorization of {n_users} users and {n_items} items with {k} factors"),
            "its parameters and the copies training works on",
            needed,
        )?;
        let len = len.expect("a count that fits in memory does not overflow");
        let sum: f64 = train.ratings.iter().map(|&r| f64::from(r)).sum();
        let global_mean = (sum / train.len() as f64) as f32;
        let rating_min = train.ratings.iter().copied().fold(f32::INFINITY, f32::min);
        let rating_max = train.ratings.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut user_known = vec![false; n_users];
        let mut item_known = vec![false; n_items];
        for (&u, &i) in train.users.iter().zip(train.items) {
            user_known[u as usize] = true;
            item_known[i as usize] = true;
        }

        let mut params = vec![0.0f32; len];
        draw_factors(&mut params[n_users + n_items..], config, config.seed)?;
        Ok(Self {
            config: config.clone(),
            n_users,
            n_items,
            global_mean,
            rating_min,
            rating_max,
            user_known,
            item_known,
            params,
        })
    }

    /// Builds a model with [`MatrixFactorization::new`] and trains it for `config.n_epochs` epochs
    /// seeded by `config.seed` with [`MatrixFactorization::fit_sgd`] (the default) or, with
    /// `config.parallel`, [`MatrixFactorization::fit_dsgd`]: scikit-surprise's `SVD().fit(trainset)`.
    pub fn fit(config: &MfConfig, train: &Ratings<'_>) -> Result<Self, MfError> {
        let mut model = Self::new(config, train)?;
        if config.parallel {
            model.fit_dsgd(train, config.n_epochs, config.seed)?;
        } else {
            model.fit_sgd(train, config.n_epochs, config.seed)?;
        }
        Ok(model)
    }

    /// Trains by stochastic gradient descent one rating at a time, as Funk SVD and
    /// scikit-surprise's `SVD` do. With learning rate γ = `lr_all` and λ = `reg_all`, for each
    /// rating r of user u for item i:
    ///
    /// ```text
    /// e   ← r − (μ + b_u + b_i + p_u · q_i)
    /// b_u ← b_u + γ (e − λ b_u)
    /// b_i ← b_i + γ (e − λ b_i)
    /// p_u ← p_u + γ (e q_i − λ p_u)      } simultaneously: both use the
    /// q_i ← q_i + γ (e p_u − λ q_i)      } old p_u and q_i
    /// ```
    ///
    /// Each epoch visits the ratings in a new random order, drawn from a xoshiro256++ generator
    /// keyed by `seed` (surprise visits them in its trainset's order). Arithmetic is `f32` (surprise's
    /// is `f64`). The order for a seed is the same as [`MatrixFactorization::fit_minibatch`]'s,
    /// so that mini-batch training with plain SGD at learning rate γ on batches of one rating
    /// gives this same model bit for bit.
    pub fn fit_sgd(&mut self, train: &Ratings<'_>, epochs: usize, seed: u64) -> Result<(), MfError> {
        self.sgd(train, epochs, seed).map(|_| ())
    }

    /// One epoch of [`MatrixFactorization::fit_sgd`] (`epochs` 1, shuffled from `seed`) that
    /// returns half the mean squared error of the ratings, each measured before its update: the
    /// running training loss of the pass, free of a second pass over the ratings.
    pub fn sgd_epoch(&mut self, train: &Ratings<'_>, seed: u64) -> Result<f64, MfError> {
        let squared = self.sgd(train, 1, seed)?;
        Ok(0.5 * squared / train.len().max(1) as f64)
    }

    /// [`MatrixFactorization::fit_sgd`], returning the sum of the squared errors of its last epoch.
    fn sgd(&mut self, train: &Ratings<'_>, epochs: usize, seed: u64) -> Result<f64, MfError> {
        self.check_shape(train)?;
        let mut rng = shuffle_rng(seed);
        // The triples themselves are shuffled, in place, with the swaps that would shuffle their
        // indices: the same order as `fit_minibatch`'s, without gathering the triples each epoch.
        let mut ordered: Vec<(u32, u32, f32)> =
            (0..train.len()).map(|k| (train.users[k], train.items[k], train.ratings[k])).collect();
        if epochs == 0 {
            return Ok(0.0);
        }
        shuffle_ratings(&mut ordered, &mut rng);
        let mut next = ordered.clone();
        // While one thread trains on this epoch's order, another (when rayon has one) shuffles a
        // copy of it into the next epoch's: the same draws in the same sequence as shuffling in
        // place between the passes, so the same model, with the shuffle off the critical path.
        let mut squared = 0.0;
        self.with_tables(|step, mut tables| {
            rayon::scope(|_| {
                for epoch in 0..epochs {
                    let tables = tables.reborrow();
                    if epoch + 1 == epochs {
                        squared = run_sgd_pass(step, tables, &ordered);
                        break;
                    }
                    rayon::join(
                        || {
                            run_sgd_pass(step, tables, &ordered);
                        },
                        || {
                            next.copy_from_slice(&ordered);
                            shuffle_ratings(&mut next, &mut rng);
                        },
                    );
                    std::mem::swap(&mut ordered, &mut next);
                }
            })
        });
        Ok(squared)
    }

    /// Trains by the same per-rating update as [`MatrixFactorization::fit_sgd`], visiting the
    /// ratings in a stratified order whose pieces run in parallel: distributed SGD ("DSGD",
    /// Gemulla, Nijkamp, Haas and Sismanis, KDD 2011).
    ///
    /// Users are cut into [`STRATA`] ranges of consecutive ids holding about equal numbers of
    /// ratings, and so are items; block (b, c) holds the ratings of user range b for item range c.
    /// Each epoch runs [`STRATA`] sub-epochs, in an order drawn from (`seed`, epoch); sub-epoch s
    /// trains the blocks (b, (b + s) mod [`STRATA`]) for b = 0, 1, …, which share no user and no
    /// item, so they run at once on rayon's pool without touching the same parameter. Within a
    /// block the ratings are visited in an order shuffled from (`seed`, epoch, block).
    ///
    /// Every block's result depends only on its own rows and ratings, and [`STRATA`] is a
    /// constant, so the model is the same bit for bit on any number of threads (and on one).
    /// Sequential [`MatrixFactorization::fit_sgd`] visits the ratings in one uniformly random
    /// order instead; on MovieLens 5-fold cross-validation that order's held-out RMSE is 0.0015 to
    /// 0.003 better (see [`MfConfig::parallel`]), while this one's time per fold falls with the
    /// threads available.
    pub fn fit_dsgd(&mut self, train: &Ratings<'_>, epochs: usize, seed: u64) -> Result<(), MfError> {
        self.dsgd(train, epochs, seed).map(|_| ())
    }

    /// One epoch of [`MatrixFactorization::fit_dsgd`] that returns half the mean squared error of
    /// the ratings, each measured before its update (see [`MatrixFactorization::sgd_epoch`]).
    pub fn dsgd_epoch(&mut self, train: &Ratings<'_>, seed: u64) -> Result<f64, MfError> {
        let squared = self.dsgd(train, 1, seed)?;
        Ok(0.5 * squared / train.len().max(1) as f64)
    }

    /// [`MatrixFactorization::fit_dsgd`], returning the sum of the squared errors of its last
    /// epoch (the blocks' sums added in block order).
    fn dsgd(&mut self, train: &Ratings<'_>, epochs: usize, seed: u64) -> Result<f64, MfError> {
        self.check_shape(train)?;
        let mut plan = DsgdPlan::new(self.n_users, self.n_items, train);
        let mut squared = 0.0;
        self.with_tables(|step, tables| squared = plan.run(step, tables, epochs, seed));
        Ok(squared)
    }

    /// Runs `train` on the biases and on padded copies of the factor tables (see [`pad_rows`]),
    /// then writes the factors back.
    fn with_tables(&mut self, train: impl FnOnce(SgdStep, Tables<'_>)) {
        let step = self.sgd_step();
        let (mut user_rows, mut item_rows) = (Vec::new(), Vec::new());
        let shape = (self.n_users, self.n_items, self.config.n_factors);
        with_padded_tables(&mut self.params, shape, (&mut user_rows, &mut item_rows), |tables| train(step, tables));
    }

    /// The constants of the per-rating update.
    fn sgd_step(&self) -> SgdStep {
        SgdStep {
            width: self.config.n_factors.div_ceil(LANES),
            lr: self.config.lr_all as f32,
            reg: self.config.reg_all as f32,
            mu: self.global_mean,
        }
    }

    /// Trains with `optimizer` on mini-batches of `batch_size` ratings for `epochs` epochs and
    /// returns each epoch's mean batch loss (weighted by batch size).
    ///
    /// Each epoch visits the ratings in a new random order from a xoshiro256++ generator keyed by
    /// `seed` (the same order as [`MatrixFactorization::fit_sgd`]) and cuts it into consecutive
    /// batches, the last one possibly shorter; every batch is one [`Optimizer::step`] on the
    /// flat buffer with the gradient of [`MatrixFactorization::loss_and_gradient`]. Parameter
    /// groups (say, no weight decay on the biases) can be set on the optimizer beforehand with
    /// [`MatrixFactorization::layout`]'s segment names.
    ///
    /// Any `Box<dyn Optimizer>` trains it through `&mut *boxed`. μ, the clamping range and the
    /// known users and items stay those of the data the model was built with.
    pub fn fit_minibatch(
        &mut self,
        train: &Ratings<'_>,
        optimizer: &mut dyn Optimizer,
        batch_size: usize,
        epochs: usize,
        seed: u64,
    ) -> Result<Vec<f64>, MfError> {
        self.check_shape(train)?;
        if batch_size == 0 {
            return Err(ConfigError::new("batch_size", batch_size, "an integer >= 1").into());
        }
        // The gradient and the optimizer's state, each as long as the parameters.
        let buffers = 1 + if optimizer.steps() == 0 { optimizer.state_buffers() } else { 0 };
        crate::memory::check(
            format!("mini-batch training of matrix factorization ({} parameters)", self.params.len()),
            "its gradient and optimizer state",
            self.params.len().checked_mul(buffers).and_then(|n| crate::memory::bytes_of(n, crate::memory::F32_BYTES)),
        )?;
        let mut rng = shuffle_rng(seed);
        let mut order: Vec<u32> = (0..train.len() as u32).collect();
        let mut params = std::mem::take(&mut self.params);
        let mut grad = vec![0.0f32; params.len()];
        let mut batch: Vec<(u32, u32, f32)> = Vec::with_capacity(batch_size.min(train.len()));
        // One loss per epoch, grown as they run (`epochs` is the caller's number, not memory's).
        let mut losses = Vec::new();
        for _ in 0..epochs {
            shuffle(&mut order, &mut rng);
            let mut total = 0.0f64;
            for chunk in order.chunks(batch_size) {
                batch.clear();
                batch.extend(chunk.iter().map(|&k| {
                    let k = k as usize;
                    (train.users[k], train.items[k], train.ratings[k])
                }));
                total += self.loss_and_gradient(&params, &batch, &mut grad) * batch.len() as f64;
                optimizer.step(&mut params, &grad);
            }
            losses.push(total / train.len() as f64);
        }
        self.params = params;
        Ok(losses)
    }

    /// The mini-batch loss at `params` and its gradient, written to `grad` (every entry is
    /// overwritten; parameters no rating touches get 0).
    ///
    /// For a batch B of (u, i, r) triples, with e = r − (μ + b_u + b_i + p_u · q_i) and
    /// λ = `reg_all`:
    ///
    /// ```text
    /// L = 1/|B| Σ_B [ ½ e² + ½ λ (b_u² + b_i² + ‖p_u‖² + ‖q_i‖²) ]
    /// ```
    ///
    /// that is, half the mean squared error plus the L2 penalty of the rows each rating touches,
    /// counted once per rating, as surprise's per-rating update penalizes them. The halves make
    /// the gradient of a one-rating batch exactly the step of
    /// [`MatrixFactorization::fit_sgd`] divided by its learning rate. The loss is accumulated in
    /// `f64`, the gradient in `f32`. An empty batch has loss 0 and gradient 0.
    ///
    /// # Panics
    /// If `params` or `grad` is not [`MatrixFactorization::layout`]'s length, or a triple names a
    /// user or item beyond the model's counts: both are programming errors (the trainers check
    /// their data once with [`Ratings::new`]).
    pub fn loss_and_gradient(&self, params: &[f32], batch: &[(u32, u32, f32)], grad: &mut [f32]) -> f64 {
        self.loss_and_gradient_parts(params, batch, grad).0
    }

    /// [`MatrixFactorization::loss_and_gradient`]'s loss, and half the mean squared error alone.
    fn loss_and_gradient_parts(&self, params: &[f32], batch: &[(u32, u32, f32)], grad: &mut [f32]) -> (f64, f64) {
        let len = self.params_len();
        assert_eq!(params.len(), len, "the parameter buffer holds {} values, the model {len}", params.len());
        assert_eq!(grad.len(), len, "the gradient buffer holds {} values, the model {len}", grad.len());
        grad.fill(0.0);
        if batch.is_empty() {
            return (0.0, 0.0);
        }
        let k = self.config.n_factors;
        let reg = self.config.reg_all as f32;
        let mut squared = 0.0f64;
        let scale = (1.0 / batch.len() as f64) as f32;
        let p = split(params, self.n_users, self.n_items, k);
        let g = split_mut(grad, self.n_users, self.n_items, k);
        let norms = self.row_norms(&p, batch.len());
        let mut loss = 0.0f64;
        for &(u, i, r) in batch {
            let (u, i) = (u as usize, i as usize);
            let (estimate, rating_loss) = self.rating_loss(&p, norms.as_ref(), u, i, r);
            let err = r - estimate;
            loss += rating_loss;
            squared += 0.5 * f64::from(err) * f64::from(err);
            let (pu, qi) = (&p.user_factors[u * k..(u + 1) * k], &p.item_factors[i * k..(i + 1) * k]);
            let (bu, bi) = (p.user_bias[u], p.item_bias[i]);
            g.user_bias[u] += scale * (reg * bu - err);
            g.item_bias[i] += scale * (reg * bi - err);
            let gpu = &mut g.user_factors[u * k..(u + 1) * k];
            for ((gp, &pf), &qf) in gpu.iter_mut().zip(pu).zip(qi) {
                *gp += scale * (reg * pf - err * qf);
            }
            let gqi = &mut g.item_factors[i * k..(i + 1) * k];
            for ((gq, &qf), &pf) in gqi.iter_mut().zip(qi).zip(pu) {
                *gq += scale * (reg * qf - err * pf);
            }
        }
        (loss / batch.len() as f64, squared / batch.len() as f64)
    }

    /// The loss of [`MatrixFactorization::loss_and_gradient`] (at the model's own parameters,
    /// without the gradient) and the RMSE and MAE of [`MatrixFactorization::predict`] on `batch`,
    /// from one pass on rayon's threads. The batch is cut into fixed chunks whose sums are added in
    /// order, so the figures do not depend on the thread count. An empty batch gives NaN for each.
    ///
    /// # Panics
    /// If a triple names a user or item beyond the model's counts.
    pub fn evaluate(&self, batch: &[(u32, u32, f32)]) -> MfMetrics {
        /// Ratings per chunk: enough to amortize a task, few enough to spread over the threads.
        const CHUNK: usize = 4096;
        let p = split(&self.params, self.n_users, self.n_items, self.config.n_factors);
        let norms = self.row_norms(&p, batch.len());
        let chunk_sums = |chunk: &[(u32, u32, f32)]| {
            let (mut loss, mut squared, mut absolute) = (0.0f64, 0.0f64, 0.0f64);
            for &(u, i, r) in chunk {
                let (estimate, rating_loss) = self.rating_loss(&p, norms.as_ref(), u as usize, i as usize, r);
                loss += rating_loss;
                let known = self.user_known[u as usize] && self.item_known[i as usize];
                let predicted =
                    if known { estimate.clamp(self.rating_min, self.rating_max) } else { self.predict(u, i) };
                let error = f64::from(predicted) - f64::from(r);
                squared += error * error;
                absolute += error.abs();
            }
            [loss, squared, absolute]
        };
        let sums: Vec<[f64; 3]> = batch.par_chunks(CHUNK).map(chunk_sums).collect();
        let [loss, squared, absolute] =
            sums.iter().fold([0.0; 3], |total, s| [total[0] + s[0], total[1] + s[1], total[2] + s[2]]);
        let n = batch.len() as f64;
        MfMetrics { loss: loss / n, rmse: (squared / n).sqrt(), mae: absolute / n }
    }

    /// `‖p_u‖²` of every user and `‖q_i‖²` of every item under `p`, when a batch of `ratings`
    /// ratings would compute more of them one rating at a time (two per rating) than there are
    /// rows. The same numbers either way: both take [`sum_of_squares`] of the same row.
    fn row_norms(&self, p: &Parts<&[f32]>, ratings: usize) -> Option<RowNorms> {
        let k = self.config.n_factors;
        if k == 0 || 2 * ratings <= self.n_users + self.n_items {
            return None;
        }
        let norms = |rows: &[f32]| rows.par_chunks(k).map(sum_of_squares).collect::<Vec<f64>>();
        Some(RowNorms { users: norms(p.user_factors), items: norms(p.item_factors) })
    }

    /// The unclamped estimate `μ + b_u + b_i + p_u · q_i` of user `u`'s rating of item `i` under
    /// parameters `p`, and the term `½ e² + ½ λ (b_u² + b_i² + ‖p_u‖² + ‖q_i‖²)` of the loss for
    /// rating `r`, with `e = r − estimate` (the squared norms from `norms` when given).
    #[inline]
    fn rating_loss(&self, p: &Parts<&[f32]>, norms: Option<&RowNorms>, u: usize, i: usize, r: f32) -> (f32, f64) {
        assert!(u < self.n_users && i < self.n_items, "rating of unknown user {u} or item {i} in a batch");
        let k = self.config.n_factors;
        let (pu, qi) = (&p.user_factors[u * k..(u + 1) * k], &p.item_factors[i * k..(i + 1) * k]);
        let (bu, bi) = (p.user_bias[u], p.item_bias[i]);
        let estimate = self.global_mean + bu + bi + dot(pu, qi);
        let err = r - estimate;
        let (norm_u, norm_i) = match norms {
            Some(norms) => (norms.users[u], norms.items[i]),
            None => (sum_of_squares(pu), sum_of_squares(qi)),
        };
        let squares = f64::from(bu) * f64::from(bu) + f64::from(bi) * f64::from(bi) + norm_u + norm_i;
        (estimate, 0.5 * f64::from(err) * f64::from(err) + 0.5 * self.config.reg_all as f32 as f64 * squares)
    }

    fn check_shape(&self, data: &Ratings<'_>) -> Result<(), MfError> {
        if data.n_users != self.n_users || data.n_items != self.n_items {
            return Err(MfError::ShapeMismatch {
                data_users: data.n_users,
                data_items: data.n_items,
                model_users: self.n_users,
                model_items: self.n_items,
            });
        }
        Ok(())
    }

    /// The length of the flat buffer, from the shape (the buffer itself is lent out while
    /// [`MatrixFactorization::fit_minibatch`] runs).
    fn params_len(&self) -> usize {
        (self.n_users + self.n_items) * (self.config.n_factors + 1)
    }

    /// The predicted rating of `user` for `item`, with the fallbacks for unknown users and items
    /// and the clamping described on [`MatrixFactorization`].
    pub fn predict(&self, user: u32, item: u32) -> f32 {
        self.predict_with(&self.params, user, item)
    }

    /// [`MatrixFactorization::predict`] with the parameters `params` (laid out as the model's).
    fn predict_with(&self, params: &[f32], user: u32, item: u32) -> f32 {
        let (u, i) = (user as usize, item as usize);
        let user_known = self.user_known.get(u).copied().unwrap_or(false);
        let item_known = self.item_known.get(i).copied().unwrap_or(false);
        let k = self.config.n_factors;
        let p = split(params, self.n_users, self.n_items, k);
        let estimate = match (user_known, item_known) {
            (true, true) => {
                let (pu, qi) = (&p.user_factors[u * k..(u + 1) * k], &p.item_factors[i * k..(i + 1) * k]);
                self.global_mean + p.user_bias[u] + p.item_bias[i] + dot(pu, qi)
            }
            (true, false) => self.global_mean + p.user_bias[u],
            (false, true) => self.global_mean + p.item_bias[i],
            (false, false) => self.global_mean,
        };
        estimate.clamp(self.rating_min, self.rating_max)
    }

    /// Predictions for each pair `(users[k], items[k])`, over the shorter of the two slices.
    pub fn predict_all(&self, users: &[u32], items: &[u32]) -> Vec<f32> {
        users.iter().zip(items).map(|(&u, &i)| self.predict(u, i)).collect()
    }

    /// Root mean squared error of the model's predictions on `users`, `items`, `ratings` (see
    /// [`rmse`]); an error when the three slices differ in length.
    pub fn rmse(&self, users: &[u32], items: &[u32], ratings: &[f32]) -> Result<f64, MetricsError> {
        rmse(&self.predict_triples(users, items, ratings)?, ratings)
    }

    /// Mean absolute error of the model's predictions on `users`, `items`, `ratings` (see
    /// [`mae`]); an error when the three slices differ in length.
    pub fn mae(&self, users: &[u32], items: &[u32], ratings: &[f32]) -> Result<f64, MetricsError> {
        mae(&self.predict_triples(users, items, ratings)?, ratings)
    }

    /// Predictions for the pairs of `users` and `items`, which must be as many as `ratings`.
    fn predict_triples(&self, users: &[u32], items: &[u32], ratings: &[f32]) -> Result<Vec<f32>, MetricsError> {
        if users.len() != ratings.len() || items.len() != ratings.len() {
            return Err(MetricsError::Length { predicted: users.len().min(items.len()), targets: ratings.len() });
        }
        Ok(self.predict_all(users, items))
    }

    /// The layout of the flat parameter buffer: [`USER_BIAS`], [`ITEM_BIAS`], [`USER_FACTORS`],
    /// [`ITEM_FACTORS`], in that order.
    pub fn layout(&self) -> ParamLayout {
        let k = self.config.n_factors;
        let mut layout = ParamLayout::new();
        layout.push(USER_BIAS, self.n_users);
        layout.push(ITEM_BIAS, self.n_items);
        layout.push(USER_FACTORS, self.n_users * k);
        layout.push(ITEM_FACTORS, self.n_items * k);
        layout
    }

    /// The flat parameter buffer.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The flat parameter buffer, to train it with an outside loop.
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &MfConfig {
        &self.config
    }

    /// The number of users.
    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// The number of items.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// The global mean μ of the training ratings.
    pub fn global_mean(&self) -> f32 {
        self.global_mean
    }

    /// The smallest and largest training rating: the range predictions are clamped to.
    pub fn rating_range(&self) -> (f32, f32) {
        (self.rating_min, self.rating_max)
    }

    /// Whether `user` had a rating in the training data.
    pub fn is_known_user(&self, user: u32) -> bool {
        self.user_known.get(user as usize).copied().unwrap_or(false)
    }

    /// Whether `item` had a rating in the training data.
    pub fn is_known_item(&self, item: u32) -> bool {
        self.item_known.get(item as usize).copied().unwrap_or(false)
    }

    /// The bias b_u of `user`, if the id is within the model's counts.
    pub fn user_bias(&self, user: u32) -> Option<f32> {
        self.params.get(..self.n_users)?.get(user as usize).copied()
    }

    /// The bias b_i of `item`, if the id is within the model's counts.
    pub fn item_bias(&self, item: u32) -> Option<f32> {
        self.params.get(self.n_users..self.n_users + self.n_items)?.get(item as usize).copied()
    }

    /// The factors p_u of `user`, if the id is within the model's counts.
    pub fn user_factors(&self, user: u32) -> Option<&[f32]> {
        let k = self.config.n_factors;
        let p = split(&self.params, self.n_users, self.n_items, k);
        let u = user as usize;
        (u < self.n_users).then(|| &p.user_factors[u * k..(u + 1) * k])
    }

    /// The factors q_i of `item`, if the id is within the model's counts.
    pub fn item_factors(&self, item: u32) -> Option<&[f32]> {
        let k = self.config.n_factors;
        let p = split(&self.params, self.n_users, self.n_items, k);
        let i = item as usize;
        (i < self.n_items).then(|| &p.item_factors[i * k..(i + 1) * k])
    }
}

/// Checks that `predicted` and `actual` pair up: one length, not empty, every rating finite.
fn check_pairs(predicted: &[f32], actual: &[f32]) -> Result<(), MetricsError> {
    if predicted.len() != actual.len() {
        return Err(MetricsError::Length { predicted: predicted.len(), targets: actual.len() });
    }
    if actual.is_empty() {
        return Err(MetricsError::Empty);
    }
    match actual.iter().position(|a| !a.is_finite()) {
        Some(row) => Err(MetricsError::NonFiniteTarget { row, value: actual[row] }),
        None => Ok(()),
    }
}

/// Root mean squared error `sqrt(mean((predicted − actual)²))` of paired slices, in `f64`.
///
/// An error when the slices differ in length, are empty, or a rating is not finite.
pub fn rmse(predicted: &[f32], actual: &[f32]) -> Result<f64, MetricsError> {
    check_pairs(predicted, actual)?;
    let sum: f64 = predicted.iter().zip(actual).map(|(&p, &a)| (f64::from(p) - f64::from(a)).powi(2)).sum();
    Ok((sum / actual.len() as f64).sqrt())
}

/// Mean absolute error `mean(|predicted − actual|)` of paired slices, in `f64`.
///
/// An error when the slices differ in length, are empty, or a rating is not finite.
pub fn mae(predicted: &[f32], actual: &[f32]) -> Result<f64, MetricsError> {
    check_pairs(predicted, actual)?;
    let sum: f64 = predicted.iter().zip(actual).map(|(&p, &a)| (f64::from(p) - f64::from(a)).abs()).sum();
    Ok(sum / actual.len() as f64)
}

/// How [`MfModel`] trains an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfPass {
    /// The engine's loop of updates (mini-batches through any optimizer).
    Engine,
    /// Funk SVD's per-rating SGD in one shuffled sequence ([`MatrixFactorization::sgd_epoch`]).
    Sequential,
    /// Per-rating SGD in stratified blocks on every thread ([`MatrixFactorization::dsgd_epoch`]).
    Stratified,
}

/// Matrix factorization as a [`crate::model::Model`]: the training engine trains it like every
/// other model (early stopping, divergence rollback, checkpoints, observers), on rows of (user,
/// item) ids ([`crate::model::Rows::with_ids`], two ids per row) with the ratings as targets.
///
/// With [`MfPass::Sequential`] or [`MfPass::Stratified`] each epoch is the model's own per-rating
/// SGD pass (its learning rate and regularization are the [`MfConfig`]'s), in an order drawn from
/// the run's seed plus the epoch; with [`MfPass::Engine`] the engine's optimizer steps on
/// mini-batches of the gradient of [`MatrixFactorization::loss_and_gradient`].
///
/// Its reported `loss` is half the mean squared error: of the estimates before each update
/// during a per-rating pass, of the predictions (with their fallbacks and clamping) on held-out
/// rows. The L2 penalty shapes the gradient but is left out of the figure, so that training and
/// validation losses compare (and a pass need not compute the rows' norms).
pub struct MfModel {
    template: MatrixFactorization,
    layout: ParamLayout,
    pass: MfPass,
    /// What the per-rating passes keep from one epoch to the next.
    cache: std::sync::Mutex<PassCache>,
}

/// A rating as the per-rating passes read it: (user, item, rating).
type Triple = (u32, u32, f32);

/// What [`MfModel`]'s per-rating passes keep between epochs, so that an epoch through the engine
/// costs what an epoch of [`MatrixFactorization::fit_sgd`] does: the training triples in the
/// data's order (checked against the rows at each epoch), the next epoch's order (shuffled on
/// another thread during this epoch's pass), the stratified blocks, and the padded tables.
#[derive(Default)]
struct PassCache {
    /// The training rows' (user, item, rating), in their order; empty until the first pass.
    triples: Vec<Triple>,
    /// The order of the epoch shuffled from the seed it holds, prepared ahead.
    next: Option<(u64, Vec<Triple>)>,
    /// A buffer for the order of the epoch after the one running.
    spare: Vec<Triple>,
    /// The stratified blocks in the data's order, and a copy that each epoch shuffles.
    blocks: Option<(DsgdPlan, DsgdPlan)>,
    /// The padded factor tables, and the address of the parameters whose factors they held when
    /// written back last (a pass that continues on them need not copy them again).
    user_rows: Vec<Lanes>,
    item_rows: Vec<Lanes>,
    tables_of: Option<usize>,
}

impl PassCache {
    /// Whether the cache holds `data`'s triples, compared value by value, so that other rows at
    /// the same address are never mistaken for them.
    fn holds(triples: &[(u32, u32, f32)], data: crate::model::Rows<'_>) -> bool {
        let ids = data.ids.expect("matrix factorization reads rows of (user, item) ids");
        triples.len() == data.rows
            && triples
                .par_iter()
                .enumerate()
                .with_min_len(4096)
                .all(|(r, &(u, i, v))| ids.row(r) == [u, i] && v.to_bits() == data.y[r].to_bits())
    }

    /// Makes the cache hold `data`'s triples, dropping everything derived from other ones.
    fn rebuild(&mut self, data: crate::model::Rows<'_>, n_users: usize, n_items: usize) {
        let ids = data.ids.expect("matrix factorization reads rows of (user, item) ids");
        // The engine checked the rows against the model: two ids each, within the tables.
        self.triples = (0..data.rows)
            .map(|r| match ids.row(r) {
                &[u, i] if (u as usize) < n_users && (i as usize) < n_items => (u, i, data.y[r]),
                other => panic!("row {r} holds ids {other:?}, not a known (user, item) pair"),
            })
            .collect();
        self.next = None;
        self.blocks = None;
        self.tables_of = None;
    }

    /// The stratified blocks of the held triples, made once.
    fn blocks(&mut self, n_users: usize, n_items: usize) -> &mut (DsgdPlan, DsgdPlan) {
        let triples = &self.triples;
        self.blocks.get_or_insert_with(|| {
            let users: Vec<u32> = triples.iter().map(|t| t.0).collect();
            let items: Vec<u32> = triples.iter().map(|t| t.1).collect();
            let ratings: Vec<f32> = triples.iter().map(|t| t.2).collect();
            let train = Ratings { users: &users, items: &items, ratings: &ratings, n_users, n_items };
            let plan = DsgdPlan::new(n_users, n_items, &train);
            (plan.clone(), plan)
        })
    }

    /// `triples` shuffled from `seed`, as [`MatrixFactorization::fit_sgd`] orders its first epoch,
    /// into `order`.
    fn shuffled_into(triples: &[(u32, u32, f32)], seed: u64, order: &mut Vec<(u32, u32, f32)>) {
        order.clear();
        order.extend_from_slice(triples);
        shuffle_ratings(order, &mut shuffle_rng(seed));
    }
}

impl MfModel {
    /// The model `mf` (its shape, fallbacks and initial parameters), trained by `pass`.
    pub fn new(mf: MatrixFactorization, pass: MfPass) -> Self {
        let layout = mf.layout();
        Self { template: mf, layout, pass, cache: std::sync::Mutex::new(PassCache::default()) }
    }

    /// The matrix factorization with `params` as its parameters.
    pub fn with_params(&self, params: &[f32]) -> MatrixFactorization {
        let mut mf = self.template.clone();
        mf.params.copy_from_slice(params);
        mf
    }

    /// The (user, item, rating) triples of `data`'s rows at `indices` (all when `None`).
    fn triples(data: crate::model::Rows<'_>, indices: Option<&[usize]>) -> Vec<(u32, u32, f32)> {
        let ids = data.ids.expect("matrix factorization reads rows of (user, item) ids");
        let triple = |r: usize| {
            let pair = ids.row(r);
            (pair[0], pair[1], data.y[r])
        };
        match indices {
            Some(indices) => indices.iter().map(|&r| triple(r)).collect(),
            None => (0..data.rows).map(triple).collect(),
        }
    }
}

impl crate::model::Model for MfModel {
    fn task(&self) -> crate::train::Task {
        crate::train::Task::Ratings
    }

    fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    fn inputs(&self) -> usize {
        0
    }

    fn outputs(&self) -> usize {
        1
    }

    fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut params = vec![0.0f32; self.layout.len()];
        let biases = self.template.n_users + self.template.n_items;
        draw_factors(&mut params[biases..], &self.template.config, seed).expect("a model's configuration is valid");
        params
    }

    fn check_targets(&self, targets: &[f32], rows: usize) -> Result<(), crate::loss::TargetError> {
        crate::loss::Loss::Mse.check_targets(targets, rows, 1)
    }

    fn working_memory(&self, rows: usize) -> Option<usize> {
        rows.checked_mul(4)
    }

    /// # Panics
    /// Always: matrix factorization reads rows of ids ([`crate::model::Model::train_step`] with
    /// [`crate::model::Rows::with_ids`]), not feature matrices.
    fn loss_and_gradient(&self, _: &[f32], _: &[f32], _: &[f32], _: usize, _: &mut [f32]) -> f64 {
        panic!("matrix factorization reads rows of (user, item) ids, not a feature matrix");
    }

    /// # Panics
    /// Always, as its `loss_and_gradient`.
    fn forward(&self, _: &[f32], _: &[f32], _: usize, _: &mut [f32]) {
        panic!("matrix factorization reads rows of (user, item) ids, not a feature matrix");
    }

    fn train_step(
        &self,
        params: &[f32],
        data: crate::model::Rows<'_>,
        indices: Option<&[usize]>,
        _: u64,
        _: u64,
        grad: &mut [f32],
    ) -> f64 {
        let batch = Self::triples(data, indices);
        self.template.loss_and_gradient_parts(params, &batch, grad).1
    }

    fn forward_rows(&self, params: &[f32], data: crate::model::Rows<'_>, out: &mut [f32]) {
        let ids = data.ids.expect("matrix factorization reads rows of (user, item) ids");
        out.par_iter_mut().enumerate().for_each(|(r, o)| {
            let pair = ids.row(r);
            *o = self.template.predict_with(params, pair[0], pair[1]);
        });
    }

    fn forward_and_loss_rows(&self, params: &[f32], data: crate::model::Rows<'_>, out: &mut [f32]) -> f64 {
        self.forward_rows(params, data, out);
        // Half the squared errors, summed over fixed chunks in order (any thread count, same bits).
        let sums: Vec<f64> = out
            .par_chunks(1024)
            .zip(data.y.par_chunks(1024))
            .map(|(o, y)| o.iter().zip(y).map(|(&p, &r)| 0.5 * f64::from(p - r) * f64::from(p - r)).sum())
            .collect();
        sums.iter().sum::<f64>() / data.rows.max(1) as f64
    }

    fn epoch_pass(&self, pass: crate::model::EpochPass<'_>) -> Option<crate::train::Metrics> {
        if self.pass == MfPass::Engine {
            return None;
        }
        let crate::model::EpochPass { params, before, data, seed, epoch, continues } = pass;
        let mf = &self.template;
        let (n_users, n_items, k) = (mf.n_users, mf.n_items, mf.config.n_factors);
        let biases = n_users + n_items;
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Each epoch shuffles from the run's seed plus its number, as the command line always has.
        let epoch_seed = seed.wrapping_add(epoch as u64);
        let step = mf.sgd_step();
        let address = params.as_ptr() as usize;
        // The rollback point: the biases now (the pass updates them in place), the factors while
        // the pass trains their padded copies.
        before[..biases].copy_from_slice(&params[..biases]);
        let Parts { user_bias, item_bias, user_factors, item_factors } = split_mut(params, n_users, n_items, k);
        let mut squared = 0.0;
        // Rows that continue the previous pass's are the triples held (the engine's promise).
        let mut checked = continues && cache.tables_of == Some(address);
        if !checked
            && (cache.triples.len() != data.rows
                || (self.pass == MfPass::Stratified && !PassCache::holds(&cache.triples, data)))
        {
            cache.rebuild(data, n_users, n_items);
            checked = true;
        }
        loop {
            let padded = continues && cache.tables_of == Some(address);
            cache.tables_of = None;
            if !padded {
                pad_rows_into(user_factors, k, &mut cache.user_rows);
                pad_rows_into(item_factors, k, &mut cache.item_rows);
            }
            let factors_before = &mut before[biases..];
            if self.pass == MfPass::Stratified {
                factors_before[..user_factors.len()].copy_from_slice(user_factors);
                factors_before[user_factors.len()..].copy_from_slice(item_factors);
                let (mut user_rows, mut item_rows) =
                    (std::mem::take(&mut cache.user_rows), std::mem::take(&mut cache.item_rows));
                let (base, plan) = cache.blocks(n_users, n_items);
                plan.blocks.iter_mut().zip(&base.blocks).for_each(|(block, original)| block.clone_from(original));
                let tables = Tables { user_bias, item_bias, user_rows: &mut user_rows, item_rows: &mut item_rows };
                squared = plan.run(step, tables, 1, epoch_seed);
                (cache.user_rows, cache.item_rows) = (user_rows, item_rows);
                break;
            }
            // Sequential: the triples held are checked against the rows on another thread while
            // the pass trains, and the next epoch's order is shuffled there; should the triples
            // differ, the pass is undone (its padded factors dropped, the biases restored) and
            // run again on the rows' own.
            let PassCache { triples, next, spare, user_rows, item_rows, .. } = &mut *cache;
            let mut order = match next.take() {
                Some((prepared, order)) if prepared == epoch_seed => order,
                other => {
                    let mut order = other.map(|(_, order)| order).unwrap_or_default();
                    PassCache::shuffled_into(triples, epoch_seed, &mut order);
                    order
                }
            };
            let following = epoch_seed.wrapping_add(1);
            let mut held = true;
            let (users_now, items_now) = (&*user_factors, &*item_factors);
            rayon::join(
                || {
                    let tables =
                        Tables { user_bias: &mut *user_bias, item_bias: &mut *item_bias, user_rows, item_rows };
                    squared = run_sgd_pass(step, tables, &order);
                },
                || {
                    held = checked || PassCache::holds(triples, data);
                    if held {
                        factors_before[..users_now.len()].copy_from_slice(users_now);
                        factors_before[users_now.len()..].copy_from_slice(items_now);
                        PassCache::shuffled_into(triples, following, spare);
                    }
                },
            );
            if held {
                // The prepared order is the next epoch's; this epoch's buffer the next spare.
                std::mem::swap(spare, &mut order);
                *next = Some((following, order));
                break;
            }
            user_bias.copy_from_slice(&before[..n_users]);
            item_bias.copy_from_slice(&before[n_users..biases]);
            cache.rebuild(data, n_users, n_items);
            checked = true;
        }
        let finite = unpad_rows(&cache.user_rows, user_factors, k)
            & unpad_rows(&cache.item_rows, item_factors, k)
            & user_bias.iter().chain(item_bias.iter()).all(|b| b.is_finite());
        cache.tables_of = Some(address);
        // A parameter that is not finite makes the loss not finite, as the engine expects.
        let squared = if finite { squared } else { f64::NAN };
        let loss = 0.5 * squared / data.rows.max(1) as f64;
        // The loss is half the mean squared error: its RMSE comes with it.
        Some(crate::train::Metrics::from([("loss".to_string(), loss), ("rmse".to_string(), (2.0 * loss).sqrt())]))
    }

    fn diagnostic_segments(&self) -> Vec<(String, std::ops::Range<usize>)> {
        self.layout
            .segments()
            .iter()
            .filter(|s| s.name.ends_with("factors") && s.len > 0)
            .map(|s| (s.name.clone(), s.range()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;

    /// Every (seed, purpose, index) names its own stream, the same on every call.
    #[test]
    fn keyed_generators_are_fixed_and_distinct() {
        let first = |seed, purpose, index| keyed_rng(seed, purpose, index).next_u64();
        let keys = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1), (u64::MAX, 3, u64::MAX)];
        let draws: Vec<u64> = keys.iter().map(|&(s, p, i)| first(s, p, i)).collect();
        for (k, &(s, p, i)) in keys.iter().enumerate() {
            assert_eq!(first(s, p, i), draws[k]);
            assert!(draws[k + 1..].iter().all(|&d| d != draws[k]), "{:?}", keys[k]);
        }
        assert_ne!(block_rng(5, 0, SUB_EPOCH_ORDER).next_u64(), block_rng(5, 1, SUB_EPOCH_ORDER).next_u64());
        assert_ne!(block_rng(5, 0, 3).next_u64(), block_rng(5, 1, 3).next_u64());
    }

    #[test]
    fn dot_matches_a_plain_sum_for_every_length() {
        for n in 0..40 {
            let a: Vec<f32> = (0..n).map(|x| x as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|x| 1.0 - x as f32 * 0.25).collect();
            let plain: f64 = a.iter().zip(&b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
            assert!((f64::from(dot(&a, &b)) - plain).abs() < 1e-3, "n = {n}");
        }
    }

    #[test]
    fn shuffle_is_a_permutation_and_depends_on_the_seed() {
        let mut a: Vec<u32> = (0..1000).collect();
        let mut b = a.clone();
        shuffle(&mut a, &mut shuffle_rng(1));
        shuffle(&mut b, &mut shuffle_rng(2));
        assert_ne!(a, b);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
    }

    /// The AVX2 build of the pass must round exactly as the portable one, or a model would depend
    /// on the CPU it was trained on.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_passes_match_the_portable_pass_bit_for_bit() {
        use std::arch::is_x86_feature_detected as has;
        if !has!("avx2") {
            return;
        }
        let (n_users, n_items, k) = (7usize, 5usize, 37usize);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let normal = Normal::new(0.0f64, 0.3).unwrap();
        let mut portable: Vec<f32> =
            (0..(n_users + n_items) * (k + 1)).map(|_| normal.sample(&mut rng) as f32).collect();
        // Random ids: some neighbours share a user or an item (taken one by one), most do not
        // (taken in pairs by the AVX2 pass).
        let ratings: Vec<(u32, u32, f32)> =
            (0..300u32).map(|j| (rng.next_u32() % 7, rng.next_u32() % 5, (j % 9) as f32 * 0.5 + 1.0)).collect();
        let shared = ratings.windows(2).filter(|w| w[0].0 == w[1].0 || w[0].1 == w[1].1).count();
        assert!(shared > 20 && shared < 200, "{shared} neighbours share a row");
        let step = SgdStep { width: k.div_ceil(LANES), lr: 0.01, reg: 0.05, mu: 3.1 };
        #[derive(Clone, Copy, PartialEq)]
        enum Build {
            Portable,
            Avx2,
            Avx512,
        }
        let run = |params: &mut Vec<f32>, build: Build| {
            let Parts { user_bias, item_bias, user_factors, item_factors } = split_mut(params, n_users, n_items, k);
            let (mut user_rows, mut item_rows) = (pad_rows(user_factors, k), pad_rows(item_factors, k));
            let tables = Tables { user_bias, item_bias, user_rows: &mut user_rows, item_rows: &mut item_rows };
            let squared = match build {
                Build::Portable => sgd_pass(step, tables, &ratings),
                // SAFETY: AVX2 support was checked above.
                Build::Avx2 => unsafe { sgd_pass_avx2(step, tables, &ratings) },
                // SAFETY: only called after checking for AVX-512F.
                Build::Avx512 => unsafe { sgd_pass_avx512(step, tables, &ratings) },
            };
            unpad_rows(&user_rows, user_factors, k);
            unpad_rows(&item_rows, item_factors, k);
            squared
        };
        let start = portable.clone();
        let portable_squared = run(&mut portable, Build::Portable);
        assert!(portable_squared > 0.0 && portable_squared.is_finite());
        assert!(portable.iter().all(|p| p.is_finite()));
        assert!(portable != start, "the pass changed nothing");
        let mut builds = vec![Build::Avx2];
        if has!("avx512f") {
            builds.push(Build::Avx512);
        }
        for build in builds {
            let mut wide = start.clone();
            assert_eq!(run(&mut wide, build).to_bits(), portable_squared.to_bits(), "the squared errors");
            assert!(portable.iter().zip(&wide).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    #[test]
    fn config_errors_name_the_option() {
        let config = MfConfig { lr_all: -1.0, ..MfConfig::default() };
        assert_eq!(config.validate().unwrap_err().option, "lr_all");
        let config = MfConfig { init_std_dev: f64::NAN, ..MfConfig::default() };
        assert_eq!(config.validate().unwrap_err().option, "init_std_dev");
    }
}
