//! How the process ends when it is told to, or when something unexpected happens:
//!
//! - Ctrl-C (`SIGINT`), `SIGTERM` and `SIGHUP` remove the temporary files of the atomic writes in
//!   flight ([`gradus::io::abandon_writes`]) and exit with 128 + the signal's number (130, 143,
//!   129), as shells report a process ended by that signal; an output file is either complete or
//!   untouched.
//! - A closed pipe on stdout (`gradus train --json | head -1`) ends the process quietly, as it
//!   does other Unix tools: `SIGPIPE` is set back to its default action (Rust ignores it, which
//!   turns every later `println!` into a panic).
//! - A panic (a bug) prints one line, `error: internal error: … (please report)`, removes the
//!   temporary files in flight and exits with 101; `RUST_BACKTRACE=1` adds the backtrace.

use std::panic::PanicHookInfo;

/// Exit code of an internal error (a panic), as Rust's own.
pub const EXIT_INTERNAL: i32 = 101;

/// Installs the signal handling and the panic hook; call first thing in `main`.
pub fn install() {
    #[cfg(unix)]
    {
        // SAFETY: setting a signal's disposition to its default has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            Ok(mut signals) => {
                let spawned = std::thread::Builder::new().name("signals".into()).spawn(move || {
                    if let Some(signal) = signals.forever().next() {
                        gradus::io::abandon_writes();
                        std::process::exit(128 + signal);
                    }
                });
                if let Err(e) = spawned {
                    eprintln!(
                        "warning: cannot watch for Ctrl-C ({e}): an interrupted write may leave a temporary file"
                    );
                }
            }
            Err(e) => {
                eprintln!("warning: cannot watch for Ctrl-C ({e}): an interrupted write may leave a temporary file")
            }
        }
    }
    std::panic::set_hook(Box::new(on_panic));
    // Test seam of debug builds: `GRADUS_TEST_PANIC=1` panics here, so that tests can see the
    // safety net at work.
    #[cfg(debug_assertions)]
    if std::env::var_os("GRADUS_TEST_PANIC").is_some() {
        panic!("a test panic asked for by GRADUS_TEST_PANIC");
    }
}

fn on_panic(info: &PanicHookInfo<'_>) {
    gradus::io::abandon_writes();
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_string());
    // One line, control characters escaped, at most 300 characters.
    let message: String = message.lines().next().unwrap_or("").escape_debug().take(300).collect();
    let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
    eprintln!("error: internal error: {message}{at} (please report this bug)");
    let backtrace = std::backtrace::Backtrace::capture();
    if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
        eprintln!("{backtrace}");
    }
    std::process::exit(EXIT_INTERNAL);
}
