//! Writing output files safely and printing tables.
//!
//! Every file the command line writes goes through [`gradus::io::write_atomic`], so a failure
//! never leaves a half-written file; and every output path is checked before any work starts
//! ([`check_writable`], through [`crate::paths::Files::check`], which also refuses an output that
//! is one of the command's inputs), so a typo in a folder name fails at once instead of after
//! training.

use std::path::Path;

use gradus::train::Metrics;

use crate::error::CliError;

/// Fails unless `path` can be created or replaced: its folder exists and accepts a new file, and
/// `path` itself is not a folder. `flag` names the option in the message.
pub fn check_writable(flag: &str, path: &Path) -> Result<(), CliError> {
    let shown = path.display();
    if path.is_dir() {
        return Err(CliError::usage(format!("{flag} `{shown}`: is a folder, expected a file path")));
    }
    let text = path.as_os_str().to_string_lossy();
    let last = text.rsplit(['/', std::path::MAIN_SEPARATOR]).next().unwrap_or("");
    if matches!(last, "" | "." | "..") || path.file_name().is_none() {
        // `out/` names a folder to be: the file could not be renamed into place after the work.
        return Err(CliError::usage(format!("{flag} `{shown}`: names a folder, expected a file path")));
    }
    if path.exists() && !path.is_file() {
        // Replacing `/dev/null` (or a pipe) with a regular file is not what anyone wants.
        return Err(CliError::usage(format!(
            "{flag} `{shown}`: is not a regular file (a device, pipe or socket): expected a file path"
        )));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(CliError::usage(format!(
            "{flag} `{shown}`: cannot write there: the folder `{}` does not exist",
            parent.display()
        )));
    }
    // Probe with the same temporary file the atomic write will use (removed when dropped).
    match gradus::io::TempFile::create(path, "") {
        Ok(_) => Ok(()),
        Err(e) => Err(CliError::usage(format!("{flag} `{shown}`: cannot write there: {e}"))),
    }
}

/// Writes `bytes` to `path` atomically; `flag` names the option in the message.
pub fn write_file(flag: &str, path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    gradus::io::write_atomic(path, bytes)
        .map_err(|e| CliError::usage(format!("{flag} `{}`: cannot write the file: {e}", path.display())))
}

/// A number for a table: 4 significant decimals, scientific for very large or small values.
pub fn num(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-3..1e6).contains(&magnitude) {
        format!("{value:.3e}")
    } else {
        format!("{value:.4}")
    }
}

/// The metric names in display order that appear in any of `sets`.
pub fn metric_names<'a>(sets: impl IntoIterator<Item = &'a Metrics>) -> Vec<String> {
    const ORDER: [&str; 5] = ["loss", "accuracy", "rmse", "mae", "r2"];
    let mut names: Vec<String> = Vec::new();
    for set in sets {
        for key in set.keys() {
            if !names.contains(key) {
                names.push(key.clone());
            }
        }
    }
    names.sort_by_key(|n| ORDER.iter().position(|o| o == n).unwrap_or(ORDER.len()));
    names
}

/// Renders rows of cells as a left-aligned text table with a header row.
pub fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let text: Vec<String> =
            cells.iter().enumerate().map(|(i, c)| format!("{c:<width$}", width = widths[i])).collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(row);
    }
    out
}

/// A metrics table: one row per named set (`train`, `validation`, ...).
pub fn metrics_table(sets: &[(&str, &Metrics)]) -> String {
    let names = metric_names(sets.iter().map(|(_, m)| *m).filter(|m| !m.is_empty()));
    let mut header = vec![String::new()];
    header.extend(names.iter().cloned());
    let rows: Vec<Vec<String>> = sets
        .iter()
        .filter(|(_, m)| !m.is_empty())
        .map(|(label, m)| {
            let mut row = vec![label.to_string()];
            row.extend(names.iter().map(|n| m.get(n).map_or("-".to_string(), |v| num(*v))));
            row
        })
        .collect();
    table(&header, &rows)
}

/// A raw label value as written in data files: `3` rather than `3.0`.
pub fn label(value: f32) -> String {
    if value.fract() == 0.0 && value.abs() < 1e9 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}
