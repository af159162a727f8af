//! The subcommands.

pub mod compare;
pub mod datasets;
pub mod evaluate;
pub mod lr_find;
pub mod surface;
pub mod train;
