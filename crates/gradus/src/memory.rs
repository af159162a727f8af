//! Memory budgets: sizes that come from files and flags are checked before they are allocated.
//!
//! A layer size, a number of factors, a feature index or a row count read from a file or a flag
//! decides how much memory a model or a data set takes. Such a size is first turned into a number
//! of bytes with checked arithmetic (an overflow is a size no machine has), then compared with the
//! memory the machine has available ([`available`]: `MemAvailable` of `/proc/meminfo` on Linux;
//! elsewhere nothing is known and only overflows are caught). What does not fit is a
//! [`MemoryError`] naming what would have been allocated and how much it would have needed:
//!
//! ```text
//! the model would need 6.3 TB for its parameters, optimizer state and gradients; this machine has 22.6 GB available
//! ```
//!
//! rather than an abort (`memory allocation of N bytes failed`) halfway through. Buffers whose
//! size passed the check are still reserved fallibly ([`try_filled`]), since other processes may
//! take the memory in between.

use std::fmt;

use thiserror::Error;

/// Bytes in an `f32`.
pub const F32_BYTES: u64 = std::mem::size_of::<f32>() as u64;

/// A size that cannot be honoured: more memory than the machine has available (or than any
/// machine can address).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{what} would need {} for {purpose}; {}", Bytes(*needed), machine(*available))]
pub struct MemoryError {
    /// What would have been allocated (`the model`, `a dense 9 × 30000000 matrix`, ...).
    pub what: String,
    /// What the memory is for (`its parameters, optimizer state and gradients`, ...).
    pub purpose: String,
    /// The bytes needed; `None` when the count overflows 64 bits.
    pub needed: Option<u64>,
    /// The bytes the machine had available when checked, when known.
    pub available: Option<u64>,
}

fn machine(available: Option<u64>) -> String {
    match available {
        Some(bytes) => format!("this machine has {} available", Bytes(Some(bytes))),
        None => "no machine can address that much".to_string(),
    }
}

/// A byte count for people: `6.3 TB`, `512 MB`, `12 bytes` (decimal units, as `df -H`).
/// `None` prints as "more than 18 EB" (a count that overflowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub Option<u64>);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(bytes) = self.0 else {
            return write!(f, "more than 18 EB");
        };
        const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
        if bytes < 1000 {
            return write!(f, "{bytes} bytes");
        }
        let mut value = bytes as f64 / 1000.0;
        let mut unit = 0;
        while value >= 999.95 && unit + 1 < UNITS.len() {
            value /= 1000.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}

/// The memory available to a new allocation, in bytes: `MemAvailable` of `/proc/meminfo` on
/// Linux (what the kernel can give without swapping), `None` where it cannot be read.
pub fn available() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        parse_meminfo(&text)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// `MemAvailable` (in kB in the file) of a `/proc/meminfo` text, in bytes.
fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with("MemAvailable:"))?;
    let kb: u64 = line.trim_start_matches("MemAvailable:").trim().trim_end_matches("kB").trim().parse().ok()?;
    kb.checked_mul(1024)
}

/// `count` values of `bytes_each` bytes, or `None` when the product overflows.
pub fn bytes_of(count: usize, bytes_each: u64) -> Option<u64> {
    u64::try_from(count).ok()?.checked_mul(bytes_each)
}

/// The sum of byte counts, `None` when any is `None` or the sum overflows.
pub fn total(counts: impl IntoIterator<Item = Option<u64>>) -> Option<u64> {
    counts.into_iter().try_fold(0u64, |sum, count| sum.checked_add(count?))
}

/// Checks that `needed` bytes (`None`: an overflowed count) can be allocated: not more than the
/// memory available now, nor than an allocation can address. An error names `what` and `purpose`
/// (see [`MemoryError`]).
pub fn check(what: impl Into<String>, purpose: impl Into<String>, needed: Option<u64>) -> Result<(), MemoryError> {
    check_against(what, purpose, needed, available())
}

/// [`check`] against `available` bytes (`None`: unknown, so only overflows and sizes beyond what
/// an allocation can address fail).
pub fn check_against(
    what: impl Into<String>,
    purpose: impl Into<String>,
    needed: Option<u64>,
    available: Option<u64>,
) -> Result<(), MemoryError> {
    let addressable = isize::MAX as u64;
    let fits = match needed {
        None => false,
        Some(bytes) => bytes <= addressable && available.is_none_or(|free| bytes <= free),
    };
    if fits {
        Ok(())
    } else {
        Err(MemoryError { what: what.into(), purpose: purpose.into(), needed, available })
    }
}

/// A vector of `len` copies of `value`, reserved fallibly: an allocation the system refuses is a
/// [`MemoryError`] naming `what`, not an abort.
pub fn try_filled<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>, MemoryError> {
    let mut values = Vec::new();
    values.try_reserve_exact(len).map_err(|_| MemoryError {
        what: what.to_string(),
        purpose: "its values".to_string(),
        needed: bytes_of(len, std::mem::size_of::<T>() as u64),
        available: available(),
    })?;
    values.resize(len, value);
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_print_in_decimal_units() {
        assert_eq!(Bytes(Some(12)).to_string(), "12 bytes");
        assert_eq!(Bytes(Some(1_500)).to_string(), "1.5 kB");
        assert_eq!(Bytes(Some(22_600_000_000)).to_string(), "22.6 GB");
        assert_eq!(Bytes(Some(6_300_000_000_000)).to_string(), "6.3 TB");
        assert_eq!(Bytes(Some(999_990_000)).to_string(), "1.0 GB");
        assert_eq!(Bytes(Some(u64::MAX)).to_string(), "18.4 EB");
        assert_eq!(Bytes(None).to_string(), "more than 18 EB");
    }

    #[test]
    fn meminfo_is_read_in_bytes() {
        let text = "MemTotal:       24683664 kB\nMemFree:        22794192 kB\nMemAvailable:   23721240 kB\n";
        assert_eq!(parse_meminfo(text), Some(23_721_240 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        if cfg!(target_os = "linux") {
            assert!(available().is_some_and(|bytes| bytes > 0));
        }
    }

    #[test]
    fn checks_name_the_amounts() {
        assert!(check_against("x", "y", Some(10), Some(100)).is_ok());
        assert!(check_against("x", "y", Some(10), None).is_ok());
        let err = check_against("the model", "its parameters", Some(6_300_000_000_000), Some(22_000_000_000));
        assert_eq!(
            err.unwrap_err().to_string(),
            "the model would need 6.3 TB for its parameters; this machine has 22.0 GB available"
        );
        let err = check_against("the model", "its parameters", None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the model would need more than 18 EB for its parameters; no machine can address that much"
        );
        assert!(check_against("x", "y", Some(u64::MAX / 2 + 1), None).is_err());
        assert_eq!(total([Some(1), Some(2)]), Some(3));
        assert_eq!(total([Some(u64::MAX), Some(2)]), None);
        assert_eq!(total([Some(1), None]), None);
        assert_eq!(bytes_of(usize::MAX, 8), None);
    }

    #[test]
    fn refused_allocations_are_errors() {
        assert_eq!(try_filled(3, 1.5f32, "a buffer").unwrap(), vec![1.5; 3]);
        let err = try_filled(usize::MAX / 4, 0.0f32, "a buffer").unwrap_err();
        assert!(err.to_string().starts_with("a buffer would need"), "{err}");
    }
}
