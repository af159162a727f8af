//! The shape of one row of a layer's input or output.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// The shape of one row's values, the batch dimension left out, in PyTorch's order: `[features]`
/// for a flat row, `[channels, height, width]` for an image, `[time, features]` for a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// A flat row of `features` values.
    pub fn flat(features: usize) -> Self {
        Self(vec![features])
    }

    /// An image of `channels × height × width` values.
    pub fn image(channels: usize, height: usize, width: usize) -> Self {
        Self(vec![channels, height, width])
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// The number of values in one row, or `None` when the product overflows.
    pub fn checked_len(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// The number of values in one row.
    ///
    /// # Panics
    /// If the product overflows; shapes of built networks are checked when they are built.
    pub fn len(&self) -> usize {
        self.checked_len().expect("shape size overflows")
    }

    /// Whether a row holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last dimension (the features of a flat row or of each step of a sequence).
    pub fn last(&self) -> usize {
        self.0.last().copied().unwrap_or(1)
    }

    /// `(channels, height, width)` when the shape is an image.
    pub fn as_image(&self) -> Option<(usize, usize, usize)> {
        match self.0[..] {
            [c, h, w] => Some((c, h, w)),
            _ => None,
        }
    }

    /// Parses `C,H,W` or `N` (as `--input-shape` takes it), each dimension at least 1.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let expected = "dimensions >= 1 separated by commas, e.g. `1,28,28` or `784`";
        let dims = text
            .split(['x', ','])
            .map(|d| d.trim().parse::<usize>().ok().filter(|&d| d > 0))
            .collect::<Option<Vec<usize>>>()
            .filter(|d| !d.is_empty() && d.len() <= 3)
            .ok_or_else(|| ConfigError::new("input_shape", text, expected))?;
        let shape = Self(dims);
        shape.checked_len().ok_or_else(|| ConfigError::new("input_shape", text, expected))?;
        Ok(shape)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!(Shape::parse("1,28,28").unwrap(), Shape::image(1, 28, 28));
        assert_eq!(Shape::parse("3x32x32").unwrap(), Shape::image(3, 32, 32));
        assert_eq!(Shape::parse("784").unwrap(), Shape::flat(784));
        for bad in ["", "0,28,28", "a", "1,2,3,4", "-1"] {
            assert_eq!(Shape::parse(bad).unwrap_err().option, "input_shape", "{bad}");
        }
        assert_eq!(Shape::image(6, 14, 14).to_string(), "[6, 14, 14]");
        assert_eq!(Shape(vec![usize::MAX, 2]).checked_len(), None);
    }
}
