//! `gradus surface` (stub: the real command is written separately and replaces this file).

use crate::args::SurfaceArgs;
use crate::error::CliError;

/// Runs `gradus surface`.
pub fn run(args: &SurfaceArgs, quiet: bool) -> Result<(), CliError> {
    let _ = (args, quiet);
    Err(CliError::usage("gradus surface is not yet available"))
}
