//! The `gradus` command line (its commands arrive with the CLI issue).

fn main() {
    println!("gradus {}", env!("CARGO_PKG_VERSION"));
}
