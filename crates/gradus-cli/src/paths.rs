//! Nothing a command reads is overwritten, and no two outputs of one command land in one file.
//!
//! Every command lists the files it reads (`--data`, `--config`, a model, `--resume`, a built-in
//! data set's file) and those it writes (`--save`, `--metrics-json`, `--plot`, `--checkpoint`,
//! `--out`) in a [`Files`], and [`Files::check`] runs before any work starts. Files are compared by
//! what they are on disk, not by how they are spelled: an existing file by its device and inode
//! (so `./x` and `x`, a symbolic link and its target, and two hard links are one file), a file
//! that does not exist yet by its folder's canonical path and its name. A clash is an error naming
//! both options and the file.
//!
//! One pair is allowed: `--checkpoint` naming the `--resume` file (continuing a run replaces the
//! checkpoint it resumed from).

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::output::check_writable;

/// The inputs and outputs of one command.
#[derive(Debug, Default)]
pub struct Files {
    inputs: Vec<(String, PathBuf)>,
    outputs: Vec<(String, PathBuf)>,
}

/// What a path is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Identity {
    /// An existing file (symbolic links followed): its device and inode.
    #[cfg(unix)]
    File(u64, u64),
    /// An existing file, by its canonical path (where there are no inodes).
    #[cfg(not(unix))]
    Canonical(PathBuf),
    /// A file that does not exist yet: its folder's canonical path and its name.
    New(PathBuf, OsString),
}

fn identity(path: &Path) -> Option<Identity> {
    if let Ok(meta) = fs::metadata(path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            return Some(Identity::File(meta.dev(), meta.ino()));
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            return fs::canonicalize(path).ok().map(Identity::Canonical);
        }
    }
    let name = path.file_name()?.to_os_string();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(Identity::New(fs::canonicalize(parent).ok()?, name))
}

impl Files {
    /// No files yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Files the command reads (none, one or several), named by option `flag`.
    pub fn input<'p>(&mut self, flag: &str, paths: impl IntoIterator<Item = &'p Path>) -> &mut Self {
        for path in paths {
            self.inputs.push((flag.to_string(), path.to_path_buf()));
        }
        self
    }

    /// A file the command writes, named by option `flag` (if given).
    pub fn output(&mut self, flag: &str, path: Option<&Path>) -> &mut Self {
        if let Some(path) = path {
            self.outputs.push((flag.to_string(), path.to_path_buf()));
        }
        self
    }

    /// Fails if an output is an input (but `--checkpoint` the `--resume` file), if two outputs
    /// are one file, or if an output cannot be written (see [`check_writable`]).
    pub fn check(&self) -> Result<(), CliError> {
        let inputs: Vec<(&str, &Path, Identity)> = self
            .inputs
            .iter()
            .filter_map(|(flag, path)| identity(path).map(|id| (flag.as_str(), path.as_path(), id)))
            // A missing input is reported by the command that reads it ("file not found").
            .filter(|(_, _, id)| !matches!(id, Identity::New(..)))
            .collect();
        let mut seen: Vec<(&str, &Path, Identity)> = Vec::new();
        for (flag, path) in &self.outputs {
            let Some(id) = identity(path) else {
                // No folder to write in, or no file name: the writability check says which.
                check_writable(flag, path)?;
                continue;
            };
            for (input_flag, input_path, input_id) in &inputs {
                if *input_id == id && !(flag == "--checkpoint" && *input_flag == "--resume") {
                    return Err(CliError::usage(format!(
                        "{}; refusing to overwrite an input",
                        same_file(flag, path, input_flag, input_path)
                    )));
                }
            }
            for (other_flag, other_path, other_id) in &seen {
                if *other_id == id {
                    return Err(CliError::usage(format!(
                        "{}: expected a file of its own for each output",
                        same_file(other_flag, other_path, flag, path)
                    )));
                }
            }
            check_writable(flag, path)?;
            seen.push((flag.as_str(), path.as_path(), id));
        }
        Ok(())
    }
}

/// `--save and --data name the same file `d.csv`` (one path when both are spelled alike).
fn same_file(flag_a: &str, a: &Path, flag_b: &str, b: &Path) -> String {
    if a == b {
        format!("{flag_a} and {flag_b} name the same file `{}`", a.display())
    } else {
        format!("{flag_a} `{}` and {flag_b} `{}` are the same file", a.display(), b.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_links_and_new_files_compare_by_what_they_are() {
        let dir = std::env::temp_dir().join(format!("gradus-paths-{}", std::process::id()));
        fs::create_dir_all(dir.join("sub")).unwrap();
        let data = dir.join("d.csv");
        fs::write(&data, "a,b\n1,2\n").unwrap();
        let dotted = dir.join("sub").join("..").join("d.csv");
        assert_eq!(identity(&data), identity(&dotted));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&data, dir.join("link.csv")).unwrap();
            fs::hard_link(&data, dir.join("hard.csv")).unwrap();
            assert_eq!(identity(&data), identity(&dir.join("link.csv")));
            assert_eq!(identity(&data), identity(&dir.join("hard.csv")));
        }
        assert_eq!(identity(&dir.join("new.json")), identity(&dir.join("sub/../new.json")));
        assert_ne!(identity(&dir.join("new.json")), identity(&dir.join("other.json")));
        let mut files = Files::new();
        files.input("--data", Some(data.as_path())).output("--save", Some(&dotted));
        let message = files.check().unwrap_err().message;
        assert!(message.contains("--save") && message.contains("--data"), "{message}");
        let mut files = Files::new();
        files.input("--resume", Some(data.as_path())).output("--checkpoint", Some(&data));
        files.check().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
