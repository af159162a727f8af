//! The `gradus` command line: train, evaluate, predict, compare, surface, lr-find, datasets.
//!
//! Exit codes: 0 on success, 2 for bad usage or bad input (a message on stderr names the file,
//! line, column, option or value at fault and what was expected), 1 when training fails (it
//! diverged; the engine's hint follows).

mod args;
mod commands;
mod config;
mod engine;
mod error;
mod image;
mod output;
mod plot;
mod prepare;
mod progress;
mod ratings;
mod setup;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::CliError;

fn run(cli: Cli) -> Result<(), CliError> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Train(args) => commands::train::run(args, quiet),
        Command::Evaluate(args) => commands::evaluate::evaluate(&args, quiet),
        Command::Predict(args) => commands::evaluate::predict(&args, quiet),
        Command::Compare(args) => commands::compare::run(&args, quiet),
        Command::Surface(args) => commands::surface::run(&args, quiet).map_err(CliError::usage),
        Command::LrFind(args) => commands::lr_find::run(&args, quiet),
        Command::Datasets => {
            commands::datasets::run();
            Ok(())
        }
    }
}

fn main() {
    let cli = Cli::parse();
    if let Some(size) = cli.plot_size {
        plot::set_size_override(size);
    }
    if let Err(e) = run(cli) {
        eprintln!("error: {}", e.message);
        if let Some(hint) = &e.hint {
            eprintln!("hint: {hint}");
        }
        std::process::exit(e.code);
    }
}
