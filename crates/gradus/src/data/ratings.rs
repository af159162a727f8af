//! (user, item, rating) triples for matrix factorization.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use super::csv::{cell_error, Record, RecordReader};
use super::source::{parse_number, show};
use super::DataError;

/// Column names used in messages when the file has no header.
const DEFAULT_NAMES: [&str; 3] = ["user", "item", "rating"];

/// Ratings: one (user, item, rating) triple per entry, users and items as dense indices.
///
/// Entry `i` is user `users[i]` rating item `items[i]` with `ratings[i]`. Dense indices run
/// `0..n_users()` and `0..n_items()` and are given in order of first appearance in the file;
/// `user_ids` / `item_ids` map the file's raw ids to them and `raw_user_ids` /
/// `raw_item_ids` map back.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratings {
    /// Dense user index of each entry.
    pub users: Vec<u32>,
    /// Dense item index of each entry.
    pub items: Vec<u32>,
    /// The rating of each entry.
    pub ratings: Vec<f32>,
    /// Raw user id (as written in the file) → dense index.
    pub user_ids: HashMap<String, u32>,
    /// Raw item id → dense index.
    pub item_ids: HashMap<String, u32>,
    /// Dense user index → raw id.
    pub raw_user_ids: Vec<String>,
    /// Dense item index → raw id.
    pub raw_item_ids: Vec<String>,
    /// Where the ratings came from (the file's path), for error messages.
    pub source: String,
}

impl Ratings {
    /// Number of ratings.
    pub fn len(&self) -> usize {
        self.ratings.len()
    }

    /// Whether there are no ratings.
    pub fn is_empty(&self) -> bool {
        self.ratings.is_empty()
    }

    /// Number of distinct users.
    pub fn n_users(&self) -> usize {
        self.raw_user_ids.len()
    }

    /// Number of distinct items.
    pub fn n_items(&self) -> usize {
        self.raw_item_ids.len()
    }

    /// The entries at `indices` (for a train/test split), keeping every user and item index (and
    /// the id maps) unchanged so that models fitted on one part apply to the other.
    pub fn select(&self, indices: &[usize]) -> Result<Ratings, DataError> {
        let mut part = Ratings {
            users: Vec::with_capacity(indices.len()),
            items: Vec::with_capacity(indices.len()),
            ratings: Vec::with_capacity(indices.len()),
            ..self.clone_without_entries()
        };
        for &index in indices {
            if index >= self.len() {
                return Err(DataError::RowOutOfRange { origin: self.source.clone(), index, rows: self.len() });
            }
            part.users.push(self.users[index]);
            part.items.push(self.items[index]);
            part.ratings.push(self.ratings[index]);
        }
        Ok(part)
    }

    fn clone_without_entries(&self) -> Ratings {
        Ratings {
            users: Vec::new(),
            items: Vec::new(),
            ratings: Vec::new(),
            user_ids: self.user_ids.clone(),
            item_ids: self.item_ids.clone(),
            raw_user_ids: self.raw_user_ids.clone(),
            raw_item_ids: self.raw_item_ids.clone(),
            source: self.source.clone(),
        }
    }
}

/// Options of [`read_ratings`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RatingsOptions {
    /// The field delimiter; `None` (default) detects it among `,`, `;` and tab.
    pub delimiter: Option<u8>,
    /// Whether the first row is a header; `None` (default) decides from the first row: it is a
    /// header when its rating field is not a number.
    pub header: Option<bool>,
}

/// Reads ratings: the first three fields of each row are user id, item id and rating; further
/// fields (a timestamp, say) are ignored. User and item ids are taken as text, so they need not
/// be numbers.
pub fn read_ratings(path: impl AsRef<Path>, options: &RatingsOptions) -> Result<Ratings, DataError> {
    let path = path.as_ref();
    let mut reader = RecordReader::open(path, options.delimiter)?;
    let mut record = Record::default();
    let mut names: Vec<String> = DEFAULT_NAMES.iter().map(|name| name.to_string()).collect();
    let mut ratings = Ratings {
        users: Vec::new(),
        items: Vec::new(),
        ratings: Vec::new(),
        user_ids: HashMap::new(),
        item_ids: HashMap::new(),
        raw_user_ids: Vec::new(),
        raw_item_ids: Vec::new(),
        source: path.display().to_string(),
    };
    let mut first = true;
    let mut header_line = None;
    while reader.read(&mut record)? {
        if record.len() < DEFAULT_NAMES.len() {
            return Err(DataError::RaggedRow {
                path: path.to_path_buf(),
                line: record.line,
                expected: "at least 3 fields (user, item, rating)".to_string(),
                found: record.len(),
            });
        }
        if std::mem::take(&mut first) {
            let is_header = options.header.unwrap_or_else(|| parse_number(record.field(2)).is_err());
            if is_header {
                for (column, name) in names.iter_mut().enumerate() {
                    *name = show(record.field(column).trim_ascii());
                }
                header_line = Some(record.line);
                continue;
            }
        }
        let user = id_cell(path, &record, 0, &names[0])?;
        let item = id_cell(path, &record, 1, &names[1])?;
        let rating = parse_number(record.field(2))
            .map_err(|problem| cell_error(path, record.line, 2, &names[2], record.field(2), problem))?;
        let user = dense_index(&mut ratings.user_ids, &mut ratings.raw_user_ids, &user);
        let item = dense_index(&mut ratings.item_ids, &mut ratings.raw_item_ids, &item);
        ratings.users.push(user);
        ratings.items.push(item);
        ratings.ratings.push(rating);
    }
    match (first, header_line) {
        (true, _) => Err(DataError::Empty { path: path.to_path_buf(), expected: "rows of user, item, rating" }),
        (false, Some(header_line)) if ratings.is_empty() => {
            Err(DataError::NoRows { path: path.to_path_buf(), header_line })
        }
        _ => Ok(ratings),
    }
}

/// A user or item id cell, trimmed (bytes that are not UTF-8 are replaced); empty is a missing
/// value.
fn id_cell<'a>(path: &Path, record: &'a Record, column: usize, name: &str) -> Result<Cow<'a, str>, DataError> {
    let cell = record.field(column).trim_ascii();
    if cell.is_empty() {
        return Err(DataError::MissingValue {
            path: path.to_path_buf(),
            line: record.line,
            column: column + 1,
            name: name.to_string(),
        });
    }
    Ok(String::from_utf8_lossy(cell))
}

/// The dense index of raw id `id`, assigning the next one at its first appearance.
fn dense_index(ids: &mut HashMap<String, u32>, raw_ids: &mut Vec<String>, id: &str) -> u32 {
    if let Some(&index) = ids.get(id) {
        return index;
    }
    // More than u32::MAX distinct ids would not fit in memory as strings anyway.
    let index = raw_ids.len() as u32;
    ids.insert(id.to_string(), index);
    raw_ids.push(id.to_string());
    index
}
