//! `gradus lr-find`: not yet available (it needs `gradus::lr_find::range_test`).

use crate::args::LrFindArgs;
use crate::error::CliError;

/// Runs `gradus lr-find`.
pub fn run(args: &LrFindArgs, quiet: bool) -> Result<(), CliError> {
    let _ = (args, quiet);
    Err(CliError::usage("gradus lr-find is not yet available"))
}
