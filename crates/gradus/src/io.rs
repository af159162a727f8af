//! Atomic file output: write to a temporary file beside the target, then rename it into place, so a
//! reader (or a crash) never sees a half-written model, checkpoint or plot.
//!
//! Temporary files never accumulate:
//!
//! - on every error path the temporary file is removed;
//! - every temporary file being written is listed in a process-wide registry, so that a signal
//!   handler (the command line installs one for Ctrl-C and `SIGTERM`) can remove them with
//!   [`abandon_writes`] before the process exits;
//! - a write of `NAME` removes the stale `NAME.tmp-<PID>…` siblings left by processes that no
//!   longer run (killed with `SIGKILL`, or by a power cut), see [`remove_stale_temps`].

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The temporary files this process is writing now.
static IN_FLIGHT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn in_flight() -> MutexGuard<'static, Vec<PathBuf>> {
    // A panic while the lock was held leaves the list as it was: still usable.
    IN_FLIGHT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes `bytes` to `path` atomically: into `path` + `.tmp-<pid>` first, then renamed over `path`.
/// On failure the temporary file is removed and `path` is untouched. Stale temporary files of
/// `path` left by dead processes are removed first.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (temp, mut file) = TempFile::create(path, "")?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    test_pause();
    temp.commit(path)
}

/// The temporary name used while `path` is being written.
pub fn temp_path(path: &Path) -> PathBuf {
    temp_path_with(path, "")
}

/// `NAME.tmp-<pid>` followed by `suffix` (e.g. `.png`, for writers that pick the format from the
/// extension).
fn temp_path_with(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp-{}{suffix}", std::process::id()));
    path.with_file_name(name)
}

/// A temporary file beside a target, registered while it exists: removed when dropped unless
/// [`TempFile::commit`]ted, and by [`abandon_writes`] if the process is stopped meanwhile.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    done: bool,
}

impl TempFile {
    /// Creates (or truncates) the temporary file for `target` (`NAME.tmp-<pid>` + `suffix`),
    /// after removing the stale temporary files of `target` left by dead processes.
    pub fn create(target: &Path, suffix: &str) -> io::Result<(TempFile, fs::File)> {
        remove_stale_temps(target);
        let path = temp_path_with(target, suffix);
        // Registered and created under the lock, so that `abandon_writes` never misses a file
        // that is about to exist.
        let mut list = in_flight();
        let file = fs::File::create(&path)?;
        list.push(path.clone());
        drop(list);
        Ok((TempFile { path, done: false }, file))
    }

    /// Where the temporary file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the temporary file onto `target`.
    pub fn commit(mut self, target: &Path) -> io::Result<()> {
        fs::rename(&self.path, target)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let mut list = in_flight();
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
        if let Some(i) = list.iter().position(|p| *p == self.path) {
            list.swap_remove(i);
        }
    }
}

/// Removes every temporary file this process is writing and blocks further atomic writes: for a
/// signal handler or panic hook about to end the process. Returns the files removed.
pub fn abandon_writes() -> Vec<PathBuf> {
    // Another thread holds the lock for a moment at most; a panic while this thread held it
    // would deadlock here, so give up after a second (nothing can be removed then).
    let mut tries = 0;
    let list = loop {
        match IN_FLIGHT.try_lock() {
            Ok(list) => break list,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => break poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::sync::TryLockError::WouldBlock) => return Vec::new(),
        }
    };
    let removed: Vec<PathBuf> = list.iter().filter(|p| fs::remove_file(p).is_ok()).cloned().collect();
    // Keep the lock for good: no temporary file can be created, renamed or forgotten from now on.
    std::mem::forget(list);
    removed
}

/// Removes the temporary files of `target` (`NAME.tmp-<pid>`, with any suffix) whose process no
/// longer runs, and those of this process's id that it is not writing (left by an earlier process
/// with the same id). Returns how many were removed. Errors are ignored: this is housekeeping.
pub fn remove_stale_temps(target: &Path) -> usize {
    // Once per target and process: a checkpoint written every epoch lists its folder once.
    static SWEPT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if swept.iter().any(|p| p == target) {
            return 0;
        }
        swept.push(target.to_path_buf());
    }
    let Some(name) = target.file_name().and_then(|n| n.to_str()) else { return 0 };
    let directory = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(directory) else { return 0 };
    let prefix = format!("{name}.tmp-");
    let own = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (pid, suffix) = rest.split_at(digits);
        let Ok(pid) = pid.parse::<u32>() else { continue };
        // Only the names this module makes: the pid, then nothing or an extension.
        if !(suffix.is_empty() || (suffix.starts_with('.') && !suffix[1..].contains(['.', '/']))) {
            continue;
        }
        // Named as `TempFile::create` names it, so that it compares equal to a registered path.
        let path = target.with_file_name(&file_name);
        let stale = if pid == own { !in_flight().contains(&path) } else { !process_runs(pid) };
        // Plain files only: a folder or link of that name is not ours.
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if stale && is_file && fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether process `pid` exists (when it cannot be told, it is taken to exist).
#[cfg(unix)]
fn process_runs(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return true };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 sends nothing; kill only checks that the process exists.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Whether process `pid` exists (when it cannot be told, it is taken to exist).
#[cfg(not(unix))]
fn process_runs(_pid: u32) -> bool {
    true
}

/// Test seam of debug builds: `GRADUS_TEST_WRITE_PAUSE_MS` holds every atomic write between
/// writing its temporary file and renaming it, so that tests can stop the process mid-write.
fn test_pause() {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("GRADUS_TEST_WRITE_PAUSE_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("gradus-io-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("out.json");
        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert!(!temp_path(&target).exists());
        // Other tests write concurrently: only this write's own entry must be gone.
        let temp = temp_path(&target);
        assert!(!in_flight().contains(&temp));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn removes_stale_temporary_files_of_dead_processes_only() {
        let dir = std::env::temp_dir().join(format!("gradus-io-stale-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("m.json");
        // A process that has exited.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.join(format!("m.json.tmp-{dead}"));
        let stale_png = dir.join(format!("m.json.tmp-{dead}.png"));
        let other = dir.join(format!("other.json.tmp-{dead}"));
        let unrelated = dir.join("m.json.tmp-notapid");
        for p in [&stale, &stale_png, &other, &unrelated] {
            fs::write(p, b"x").unwrap();
        }
        // A running process's file stays (pid 1 always runs).
        let alive = dir.join("m.json.tmp-1");
        fs::write(&alive, b"x").unwrap();
        write_atomic(&target, b"data").unwrap();
        assert!(!stale.exists() && !stale_png.exists());
        assert!(other.exists() && unrelated.exists() && alive.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
