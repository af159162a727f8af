//! Data for the models: reading files, preparing features, splitting rows, built-in data sets
//! and streaming files larger than memory.
//!
//! Two shapes of data come out of here:
//!
//! - [`Dataset`]: a dense row-major `f32` feature matrix and one `f32` target per row, for
//!   regression and classification. Read from CSV ([`read_csv`]) or LIBSVM ([`read_libsvm`]).
//! - [`Ratings`]: (user, item, rating) triples with dense user and item indices, for matrix
//!   factorization. Read with [`read_ratings`].
//!
//! Preparation is fitted on training rows only and saved with the model: [`Standardizer`]
//! (per-column mean and standard deviation) and [`LabelMap`] (raw target values to class
//! indices). Splits ([`train_test_split`], [`kfold`] and their stratified forms) are shuffled
//! reproducibly from a seed. [`builtin`] loads the small data sets shipped in the repository's
//! `data/` folder by name, and [`StreamingReader`] walks a file in mini-batches, epoch after
//! epoch, with bounded memory.
//!
//! Every failure is a [`DataError`] whose message names the file, the line and the column.

mod csv;
mod error;
mod idx;
mod libsvm;
mod preprocess;
mod ratings;
mod source;
mod split;
mod stream;

pub mod builtin;
pub mod text;

pub use csv::{read_csv, CsvOptions};
pub use error::{quote_cell, DataError};
pub use idx::read_idx;
pub use libsvm::read_libsvm;
pub use preprocess::{LabelMap, Standardizer};
pub use ratings::{read_ratings, Ratings, RatingsOptions};
pub use split::{kfold, stratified_kfold, stratified_train_test_split, train_test_split, Split};
pub use stream::{Batch, Epoch, StreamFormat, StreamingReader};

/// The largest 1-based feature index a LIBSVM file may hold: ten million features.
///
/// Rows are stored dense, so the largest index sets the width of every row: one stray index of
/// thirty million in a file of nine rows would ask for a gigabyte of zeros (and a model of as
/// many inputs). Data sets this wide need a sparse representation, which gradus does not have.
pub const MAX_FEATURES: usize = 10_000_000;

/// A feature table: `rows` rows of `cols` `f32` features, stored row-major, and one `f32` target
/// per row.
///
/// Row `i` is `features[i * cols..(i + 1) * cols]` (see [`Dataset::row`]); its target is
/// `target[i]`. For classification the target holds the raw class values as read; map them to
/// class indices with a [`LabelMap`].
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The feature matrix, `rows × cols`, row-major.
    pub features: Vec<f32>,
    /// Number of rows (examples).
    pub rows: usize,
    /// Number of feature columns.
    pub cols: usize,
    /// One name per feature column, from the file's header (`x1`, `x2`, ... for LIBSVM).
    pub feature_names: Vec<String>,
    /// One target per row.
    pub target: Vec<f32>,
    /// The target column's name.
    pub target_name: String,
    /// Where the rows came from (the file's path), for error messages.
    pub source: String,
}

impl Dataset {
    /// Row `index`'s features.
    ///
    /// # Panics
    ///
    /// If `index >= self.rows`, as slice indexing does.
    pub fn row(&self, index: usize) -> &[f32] {
        &self.features[index * self.cols..(index + 1) * self.cols]
    }

    /// A new data set holding the rows at `indices`, in that order (indices may repeat), such as
    /// the training rows of a split.
    pub fn select(&self, indices: &[usize]) -> Result<Dataset, DataError> {
        let too_large =
            || DataError::TooLarge { path: self.source.clone().into(), rows: indices.len(), cols: self.cols };
        let mut features = Vec::new();
        features
            .try_reserve_exact(indices.len().checked_mul(self.cols).ok_or_else(too_large)?)
            .map_err(|_| too_large())?;
        let mut target = Vec::with_capacity(indices.len());
        for &index in indices {
            if index >= self.rows {
                return Err(DataError::RowOutOfRange { origin: self.source.clone(), index, rows: self.rows });
            }
            features.extend_from_slice(self.row(index));
            target.push(self.target[index]);
        }
        Ok(Dataset {
            features,
            rows: indices.len(),
            cols: self.cols,
            feature_names: self.feature_names.clone(),
            target,
            target_name: self.target_name.clone(),
            source: self.source.clone(),
        })
    }
}
