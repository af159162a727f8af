//! The `gradus` command line: train, evaluate, predict, compare, surface, lr-find, datasets.
//!
//! Exit codes: 0 on success, 2 for bad usage or bad input (a message on stderr names the file,
//! line, column, option or value at fault and what was expected), 1 when training fails (it
//! diverged; the engine's hint follows), 101 for an internal error (a bug: please report it), and
//! 128 + the signal's number when stopped by Ctrl-C (130), `SIGTERM` (143) or `SIGHUP` (129).
//! Nothing a command reads is ever overwritten ([`paths`]), and no temporary file outlives it
//! ([`safety`]).

mod args;
mod commands;
mod config;
mod engine;
mod error;
mod fingerprint;
mod image;
mod language;
mod output;
mod paths;
mod plot;
mod prepare;
mod progress;
mod ratings;
mod safety;
mod setup;
mod text;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::CliError;

fn run(cli: Cli) -> Result<(), CliError> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Train(args) => commands::train::run(args, quiet),
        Command::Evaluate(args) => commands::evaluate::evaluate(&args, quiet),
        Command::Predict(args) => commands::evaluate::predict(&args, quiet),
        Command::Generate(args) => crate::language::generate(&args, quiet),
        Command::Compare(args) => commands::compare::run(&args, quiet),
        Command::Surface(args) => commands::surface::run(&args, quiet).map_err(CliError::usage),
        Command::LrFind(args) => commands::lr_find::run(&args, quiet),
        Command::Datasets => {
            commands::datasets::run();
            Ok(())
        }
    }
}

/// Parses the command line; a bad value gets the command line's usual one-line message naming the
/// option, the value (quoted: at most 40 characters, control characters escaped) and what was
/// expected.
fn parse() -> Cli {
    let e = match Cli::try_parse() {
        Ok(cli) => return cli,
        Err(e) => e,
    };
    if !e.use_stderr() {
        // --help and --version.
        e.exit();
    }
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    if e.kind() == ErrorKind::ValueValidation {
        if let (Some(arg), Some(value)) = (context(ContextKind::InvalidArg), context(ContextKind::InvalidValue)) {
            let flag = arg.split_whitespace().next().unwrap_or(&arg).to_string();
            let reason =
                std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| "expected another value".into());
            let shown = if value.is_empty() { "''".to_string() } else { gradus::data::quote_cell(&value) };
            eprintln!("error: invalid value {shown} for {flag}: {reason}");
            std::process::exit(error::EXIT_USAGE);
        }
    }
    // Clap's own message, with what the user typed made harmless (control characters escaped,
    // long values cut).
    let rendered = e.render().to_string();
    for line in rendered.lines() {
        let safe: String = line
            .split('\'')
            .enumerate()
            .map(|(i, part)| if i % 2 == 1 { gradus::data::quote_cell(part) } else { part.to_string() })
            .collect::<Vec<_>>()
            .join("'");
        eprintln!("{safe}");
    }
    std::process::exit(e.exit_code());
}

fn main() {
    safety::install();
    let cli = parse();
    if let Some(size) = cli.plot_size {
        plot::set_size_override(size);
    }
    if let Err(e) = run(cli) {
        eprintln!("error: {}", error::printable(&e.message));
        if let Some(hint) = &e.hint {
            eprintln!("hint: {}", error::printable(hint));
        }
        std::process::exit(e.code);
    }
}
