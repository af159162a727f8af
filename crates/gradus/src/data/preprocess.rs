//! Preparation fitted on training rows and saved with the model: feature standardization and
//! class labels.

use serde::{Deserialize, Serialize};

use super::{DataError, Dataset};

/// Per-column standardization `x ← (x − mean) / std`, fitted on training rows only.
///
/// The standard deviation is the population one (divide by n, as scikit-learn's
/// `StandardScaler`); a constant column (std 0) gets std 1 so that it maps to 0 instead of
/// dividing by zero. Statistics are accumulated in `f64`. Serializable, to be saved with the
/// model and applied unchanged to new data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Mean of each column over the training rows.
    pub means: Vec<f32>,
    /// Standard deviation of each column over the training rows (1 for constant columns).
    pub stds: Vec<f32>,
}

impl Standardizer {
    /// Fits on the rows of `data` listed in `train_rows` (the training part of a split), so that
    /// nothing about the test rows leaks into the model.
    pub fn fit(data: &Dataset, train_rows: &[usize]) -> Result<Self, DataError> {
        if train_rows.is_empty() {
            return Err(DataError::NoTrainingRows { origin: data.source.clone() });
        }
        let mut sums = vec![0.0f64; data.cols];
        for &index in train_rows {
            if index >= data.rows {
                return Err(DataError::RowOutOfRange { origin: data.source.clone(), index, rows: data.rows });
            }
            for (sum, &value) in sums.iter_mut().zip(data.row(index)) {
                *sum += f64::from(value);
            }
        }
        let count = train_rows.len() as f64;
        let means: Vec<f64> = sums.iter().map(|sum| sum / count).collect();
        // Two passes (sum of squared deviations from the mean) to avoid cancellation.
        let mut squares = vec![0.0f64; data.cols];
        for &index in train_rows {
            for ((square, &value), mean) in squares.iter_mut().zip(data.row(index)).zip(&means) {
                let deviation = f64::from(value) - mean;
                *square += deviation * deviation;
            }
        }
        let stds = squares
            .iter()
            .map(|square| {
                let std = (square / count).sqrt() as f32;
                if std > 0.0 && std.is_finite() {
                    std
                } else {
                    1.0
                }
            })
            .collect();
        Ok(Self { means: means.iter().map(|&mean| mean as f32).collect(), stds })
    }

    /// Number of columns it was fitted on.
    pub fn cols(&self) -> usize {
        self.means.len()
    }

    /// Checks that it can be applied: one std per mean, every mean finite and every std finite
    /// and `> 0` (its fields are public, and saved models are read from files).
    pub fn validate(&self) -> Result<(), DataError> {
        let problem = |problem: String| Err(DataError::InvalidStandardizer { problem });
        if self.means.len() != self.stds.len() {
            return problem(format!(
                "{} means and {} standard deviations: expected one of each per column",
                self.means.len(),
                self.stds.len()
            ));
        }
        if let Some(i) = self.means.iter().position(|m| !m.is_finite()) {
            return problem(format!("the mean of column {} is {}, expected a finite number", i + 1, self.means[i]));
        }
        if let Some(i) = self.stds.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return problem(format!(
                "the standard deviation of column {} is {}, expected a finite number > 0",
                i + 1,
                self.stds[i]
            ));
        }
        Ok(())
    }

    /// Standardizes every row of `data` in place.
    pub fn transform(&self, data: &mut Dataset) -> Result<(), DataError> {
        if data.cols != self.cols() {
            return Err(DataError::WidthMismatch {
                what: format!("standardizing `{}`", data.source),
                expected: self.cols(),
                found: data.cols,
            });
        }
        self.transform_rows(&mut data.features)
    }

    /// Standardizes a row-major matrix of `self.cols()` columns in place (a mini-batch, say).
    /// An error when the matrix is not a whole number of rows, or the standardizer itself is
    /// invalid ([`Standardizer::validate`]).
    pub fn transform_rows(&self, features: &mut [f32]) -> Result<(), DataError> {
        self.validate()?;
        let cols = self.cols();
        if cols == 0 && features.is_empty() {
            return Ok(());
        }
        if cols == 0 || !features.len().is_multiple_of(cols) {
            return Err(DataError::PartialRow { values: features.len(), cols });
        }
        for row in features.chunks_exact_mut(cols) {
            for ((value, mean), std) in row.iter_mut().zip(&self.means).zip(&self.stds) {
                *value = (*value - mean) / std;
            }
        }
        Ok(())
    }
}

/// Maps raw target values to class indices `0..k`, in ascending order of the values.
///
/// Fitted on training targets; serializable, to be saved with the model so that predictions
/// map back to the original labels ([`LabelMap::decode`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelMap {
    /// The distinct target values, ascending; class `i` is `classes[i]`.
    pub classes: Vec<f32>,
}

impl LabelMap {
    /// The distinct values of `targets`. Fewer than two is an error naming `origin` (the file or
    /// data set), since a classifier needs at least two classes; so is a NaN or infinite target,
    /// which is no class.
    pub fn fit(targets: &[f32], origin: &str) -> Result<Self, DataError> {
        if let Some(row) = targets.iter().position(|t| !t.is_finite()) {
            return Err(DataError::NonFiniteTarget { origin: origin.to_string(), row: row + 1, value: targets[row] });
        }
        let mut classes: Vec<f32> = targets.iter().map(|&value| normalize(value)).collect();
        classes.sort_by(f32::total_cmp);
        classes.dedup();
        match classes.as_slice() {
            [] => Err(DataError::NoTargets { origin: origin.to_string() }),
            [only] => Err(DataError::SingleClass { origin: origin.to_string(), class: *only }),
            _ => Ok(Self { classes }),
        }
    }

    /// Fits on the targets of a data set.
    pub fn from_dataset(data: &Dataset) -> Result<Self, DataError> {
        Self::fit(&data.target, &data.source)
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// Checks that it maps labels both ways: at least two classes, every one finite, and in
    /// strictly ascending order (so none is repeated: `-0` and `0` are one label). Its field is
    /// public, and saved models are read from files.
    pub fn validate(&self) -> Result<(), DataError> {
        let problem = |problem: String| Err(DataError::InvalidLabelMap { problem });
        if self.classes.len() < 2 {
            return problem(format!("{} classes, expected at least 2", self.classes.len()));
        }
        if let Some(i) = self.classes.iter().position(|c| !c.is_finite()) {
            return problem(format!("class {i} is {}, expected a finite number", self.classes[i]));
        }
        if let Some(i) = self.classes.windows(2).position(|pair| normalize(pair[0]) >= normalize(pair[1])) {
            let (a, b) = (self.classes[i], self.classes[i + 1]);
            return problem(if normalize(a) == normalize(b) {
                format!("class {a} appears twice (classes {i} and {}): expected distinct classes", i + 1)
            } else {
                format!("class {b} follows {a}: expected the classes in ascending order")
            });
        }
        Ok(())
    }

    /// The class index of raw value `value`, if it is one of the classes.
    pub fn encode(&self, value: f32) -> Option<usize> {
        self.classes.binary_search_by(|class| class.total_cmp(&normalize(value))).ok()
    }

    /// The class indices of all `targets`; a value that is not a class is an error naming
    /// `origin` and the 1-based row, and so is an invalid map ([`LabelMap::validate`]).
    pub fn encode_all(&self, targets: &[f32], origin: &str) -> Result<Vec<usize>, DataError> {
        self.validate()?;
        targets
            .iter()
            .enumerate()
            .map(|(row, &value)| {
                self.encode(value).ok_or_else(|| DataError::UnknownClass {
                    origin: origin.to_string(),
                    row: row + 1,
                    value,
                    classes: self.classes.clone(),
                })
            })
            .collect()
    }

    /// The raw value of class `index`.
    pub fn decode(&self, index: usize) -> Option<f32> {
        self.classes.get(index).copied()
    }
}

/// `-0.0` and `0.0` are the same label.
fn normalize(value: f32) -> f32 {
    if value == 0.0 {
        0.0
    } else {
        value
    }
}
