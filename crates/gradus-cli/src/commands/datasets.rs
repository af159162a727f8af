//! `gradus datasets`: the built-in data sets.

use gradus::data::builtin;

use crate::output::table;

/// Runs `gradus datasets`.
pub fn run() {
    let header: Vec<String> =
        ["name", "rows", "features", "task", "description"].iter().map(|s| s.to_string()).collect();
    let rows: Vec<Vec<String>> = builtin::list()
        .iter()
        .map(|info| {
            vec![
                info.name.to_string(),
                info.rows.to_string(),
                info.features.to_string(),
                info.task.to_string(),
                info.description.to_string(),
            ]
        })
        .collect();
    print!("{}", table(&header, &rows));
    println!();
    println!("licences:");
    for info in builtin::list() {
        println!("  {}: {}", info.name, info.licence);
    }
    let dir = builtin::data_dir();
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    println!("data folder: {} (set {} to use another)", dir.display(), builtin::DATA_DIR_VAR);
}
