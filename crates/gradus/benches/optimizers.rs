//! Criterion benchmarks of optimizer steps (filled in with the optimizer core).
fn main() {}
