//! Typed errors of the golden model.

use thiserror::Error;

/// Everything the golden model can reject.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GoldenError {
    /// A parameter outside its valid range.
    #[error("{name} = {value} is out of range: valid range is {range}")]
    OutOfRange {
        /// Parameter name as the user knows it (CLI flag or config key).
        name: &'static str,
        /// The offending value, printed.
        value: String,
        /// The valid range, printed.
        range: String,
    },
    /// A vector whose length does not match the declared dimension.
    #[error("{what}: length {actual} does not match the expected {expected}")]
    LengthMismatch {
        /// Which vector.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        actual: usize,
    },
    /// A malformed sparse matrix (column out of range, unsorted or duplicate columns).
    #[error("invalid sparse matrix: {0}")]
    BadMatrix(String),
}

impl GoldenError {
    /// Shorthand for [`GoldenError::OutOfRange`].
    pub fn out_of_range(name: &'static str, value: impl ToString, range: impl ToString) -> Self {
        GoldenError::OutOfRange {
            name,
            value: value.to_string(),
            range: range.to_string(),
        }
    }
}
