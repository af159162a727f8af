//! Text as data: tokenization on Unicode word boundaries, a vocabulary built from training rows,
//! and hashed word n-grams (fastText's trick), all saved with a model so that new text is
//! tokenized exactly as in training.
//!
//! ```
//! use gradus::data::text::{TextOptions, Vocabulary};
//!
//! let options = TextOptions { ngrams: 2, buckets: 1000, ..TextOptions::default() };
//! let vocab = Vocabulary::fit(["Runs small, fabric feels cheap", "runs TRUE to size"], &options).unwrap();
//! let ids = vocab.encode("runs small");
//! assert_eq!(ids.len(), 3); // two words and one bigram
//! assert_eq!(ids[0], vocab.id("runs").unwrap());
//! assert_eq!(vocab.encode("never seen")[0], Vocabulary::UNKNOWN);
//! ```

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

use crate::error::ConfigError;

/// How text becomes tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextOptions {
    /// Lowercase every token (default true).
    pub lowercase: bool,
    /// Keep punctuation marks as tokens of their own (default false: words only).
    pub punctuation: bool,
    /// Longest word n-gram added as a token (1: words only; 2: words and bigrams; default 1).
    pub ngrams: usize,
    /// Hash buckets shared by the n-grams beyond words (default 100,000), when they are hashed.
    pub buckets: usize,
    /// How n-grams become tokens: `None` (the default) hashes every n-gram into one of
    /// `buckets` rows, as fastText does (unseen n-grams included, colliding n-grams sharing a
    /// row); `Some(k)` gives each n-gram seen at least `k` times in the training rows a row of
    /// its own, as scikit-learn's n-gram vocabularies (`min_df`), and drops the others.
    pub ngram_min_count: Option<usize>,
    /// Words seen fewer times in the training rows are unknown (default 1).
    pub min_count: usize,
    /// Keep at most this many of the most frequent words (default: all).
    pub max_size: Option<usize>,
}

impl Default for TextOptions {
    fn default() -> Self {
        Self {
            lowercase: true,
            punctuation: false,
            ngrams: 1,
            buckets: 100_000,
            ngram_min_count: None,
            min_count: 1,
            max_size: None,
        }
    }
}

impl TextOptions {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=5).contains(&self.ngrams) {
            return Err(ConfigError::new("ngrams", self.ngrams, "1 (words only) to 5"));
        }
        if self.ngram_min_count == Some(0) {
            return Err(ConfigError::new("ngram_min_count", 0, "at least 1"));
        }
        if self.ngrams > 1 && self.ngram_min_count.is_none() && self.buckets == 0 {
            return Err(ConfigError::new("buckets", 0, "at least 1 when n-grams are hashed"));
        }
        if self.buckets > 100_000_000 {
            return Err(ConfigError::new("buckets", self.buckets, "at most 100,000,000"));
        }
        if self.min_count == 0 {
            return Err(ConfigError::new("min_count", 0, "at least 1"));
        }
        if self.max_size == Some(0) {
            return Err(ConfigError::new("max_vocab", 0, "at least 1 word"));
        }
        Ok(())
    }

    /// The tokens of `text`: its words (and punctuation marks, when kept), lowercased when asked.
    /// Empty text has no tokens.
    pub fn tokenize<'a>(&self, text: &'a str) -> impl Iterator<Item = String> + 'a {
        let (lowercase, punctuation) = (self.lowercase, self.punctuation);
        text.split_word_bounds()
            .filter(move |piece| {
                let word = piece.chars().any(char::is_alphanumeric);
                word || (punctuation && !piece.chars().all(char::is_whitespace))
            })
            .map(move |piece| if lowercase { piece.to_lowercase() } else { piece.to_string() })
    }
}

/// The lines of a plain text file (gzip read transparently): the documents of a corpus, one
/// per line, empty lines included. Text that is not UTF-8 is an error naming the line.
pub fn read_lines(path: &std::path::Path) -> Result<Vec<String>, crate::data::DataError> {
    use std::io::BufRead as _;
    let mut reader = crate::data::source::open(path)?;
    let mut lines = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line).map_err(|source| crate::data::DataError::Io {
            path: path.to_path_buf(),
            line: Some(lines.len() + 1),
            source,
        })?;
        if read == 0 {
            break;
        }
        lines.push(line.trim_end_matches(['\n', '\r']).to_string());
    }
    Ok(lines)
}

/// Words of the training rows with their indices, and the options that tokenize new text.
///
/// Index 0 is the unknown word; known words follow by decreasing count (ties by first
/// appearance), then the n-grams: `buckets` hash buckets, or the n-grams of the vocabulary in
/// the same order (see [`TextOptions::ngram_min_count`]). [`Vocabulary::size`] is the number of
/// rows an embedding table over it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vocabulary {
    /// How text is tokenized.
    pub options: TextOptions,
    /// The known words, by index − 1.
    pub words: Vec<String>,
    /// The n-grams with rows of their own (their words joined by a space), by index − 1 −
    /// `words.len()`; empty when n-grams are hashed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ngrams: Vec<String>,
    /// Words and n-grams to their indices.
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl Vocabulary {
    /// The index of words not in the vocabulary.
    pub const UNKNOWN: u32 = 0;

    /// Builds the vocabulary of `texts` (the training rows only): every word seen at least
    /// `min_count` times, the `max_size` most frequent when given.
    pub fn fit<'a>(texts: impl IntoIterator<Item = &'a str>, options: &TextOptions) -> Result<Self, ConfigError> {
        options.validate()?;
        let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
        let mut ngram_counts: HashMap<String, (usize, usize)> = HashMap::new();
        let count_ngrams = options.ngrams > 1 && options.ngram_min_count.is_some();
        for text in texts {
            let tokens: Vec<String> = options.tokenize(text).collect();
            if count_ngrams {
                for n in 2..=options.ngrams {
                    for window in tokens.windows(n) {
                        let next = ngram_counts.len();
                        ngram_counts.entry(window.join(" ")).or_insert((0, next)).0 += 1;
                    }
                }
            }
            for token in tokens {
                let next = counts.len();
                counts.entry(token).or_insert((0, next)).0 += 1;
            }
        }
        // By decreasing count, ties by first appearance.
        let by_count = |counts: HashMap<String, (usize, usize)>, min: usize| {
            let mut kept: Vec<(String, usize, usize)> =
                counts.into_iter().filter(|(_, (n, _))| *n >= min).map(|(w, (n, first))| (w, n, first)).collect();
            kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
            kept.into_iter().map(|(w, _, _)| w).collect::<Vec<String>>()
        };
        let mut words = by_count(counts, options.min_count);
        if let Some(max) = options.max_size {
            words.truncate(max);
        }
        let ngrams = match options.ngram_min_count {
            Some(min) if count_ngrams => by_count(ngram_counts, min),
            _ => Vec::new(),
        };
        let ngram_rows = if options.ngram_min_count.is_some() { ngrams.len() } else { options.buckets };
        if words.len().checked_add(ngram_rows).and_then(|n| n.checked_add(1)).is_none_or(|n| n > u32::MAX as usize) {
            return Err(ConfigError::new("max_vocab", words.len(), "a vocabulary that fits 32-bit indices"));
        }
        let mut vocab = Self { options: options.clone(), words, ngrams, index: HashMap::new() };
        vocab.rebuild_index();
        Ok(vocab)
    }

    /// Rebuilds the word index (after deserializing).
    pub fn rebuild_index(&mut self) {
        // A word never holds a space, so words and n-grams cannot collide.
        self.index =
            self.words.iter().chain(&self.ngrams).enumerate().map(|(i, w)| (w.clone(), i as u32 + 1)).collect();
    }

    /// The number of known words.
    pub fn words_len(&self) -> usize {
        self.words.len()
    }

    /// Rows an embedding table needs: the unknown word, the known words and the n-grams (their
    /// buckets, or the n-grams of the vocabulary).
    pub fn size(&self) -> usize {
        let ngram_rows = match (self.options.ngrams, self.options.ngram_min_count) {
            (1, _) => 0,
            (_, None) => self.options.buckets,
            (_, Some(_)) => self.ngrams.len(),
        };
        1 + self.words.len() + ngram_rows
    }

    /// The index of `word` (as tokenized), if known.
    pub fn id(&self, word: &str) -> Option<u32> {
        self.index.get(word).filter(|&&id| id as usize <= self.words.len()).copied()
    }

    /// The index of the n-gram `window` (tokenized words): its hash bucket, or its row in the
    /// vocabulary (`None` for an n-gram it does not hold).
    pub fn ngram_id(&self, window: &[String]) -> Option<u32> {
        if self.options.ngram_min_count.is_some() {
            return self.index.get(&window.join(" ")).copied();
        }
        let mut hash = FNV_OFFSET;
        for word in window {
            hash = fnv1a(hash, word.as_bytes());
            hash = fnv1a(hash, b" ");
        }
        Some((1 + self.words.len() as u64 + hash % self.options.buckets as u64) as u32)
    }

    /// The word at `id`, if it is a known word (`<unk>` for 0; n-gram buckets have no word).
    pub fn word(&self, id: u32) -> Option<&str> {
        match id {
            0 => Some("<unk>"),
            i => self.words.get(i as usize - 1).map(String::as_str),
        }
    }

    /// The word indices of `text` (unknown words as [`Vocabulary::UNKNOWN`]).
    pub fn word_ids(&self, text: &str) -> Vec<u32> {
        self.options.tokenize(text).map(|t| self.id(&t).unwrap_or(Self::UNKNOWN)).collect()
    }

    /// The tokens of `text`: its word indices, then the indices of its n-grams of 2 up to
    /// `ngrams` words ([`Vocabulary::ngram_id`]: hashed as fastText does, from the words
    /// themselves so that unknown words count too, or those of the vocabulary).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let words: Vec<String> = self.options.tokenize(text).collect();
        let mut ids: Vec<u32> = words.iter().map(|t| self.id(t).unwrap_or(Self::UNKNOWN)).collect();
        for n in 2..=self.options.ngrams {
            ids.extend(words.windows(n).filter_map(|window| self.ngram_id(window)));
        }
        ids
    }
}

/// The token a language model reads at the end of each document (line or row) of its corpus:
/// the first word of its vocabulary (index 1, after the unknown word). The tokenizer never
/// makes it from text (`<` and `>` are punctuation of their own).
pub const END_OF_TEXT: &str = "<eos>";

impl Vocabulary {
    /// The vocabulary of a language model's corpus `texts` (the training documents only): as
    /// [`Vocabulary::fit`] (n-grams are not tokens of a language model), with [`END_OF_TEXT`]
    /// as the first word. `max_size` counts the words of the texts only.
    pub fn fit_corpus<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        options: &TextOptions,
    ) -> Result<Self, ConfigError> {
        if options.ngrams != 1 {
            return Err(ConfigError::new("ngrams", options.ngrams, "1: a language model reads words"));
        }
        let mut vocab = Self::fit(texts, options)?;
        vocab.words.insert(0, END_OF_TEXT.to_string());
        vocab.rebuild_index();
        Ok(vocab)
    }

    /// The corpus of `texts` for a language model: each text's word indices followed by
    /// [`END_OF_TEXT`], texts without words left out, one sequence.
    pub fn corpus<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> Vec<u32> {
        let end = self.id(END_OF_TEXT).unwrap_or(Self::UNKNOWN);
        let mut ids = Vec::new();
        for text in texts {
            let words = self.word_ids(text);
            if !words.is_empty() {
                ids.extend(words);
                ids.push(end);
            }
        }
        ids
    }

    /// The tokens of every text ([`Vocabulary::encode`]) as compressed rows: row `r` holds
    /// `ids[offsets[r]..offsets[r + 1]]`, the input of [`crate::model::Rows::with_ids`].
    pub fn encode_all<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> (Vec<u32>, Vec<usize>) {
        let mut ids = Vec::new();
        let mut offsets = vec![0];
        for text in texts {
            ids.extend(self.encode(text));
            offsets.push(ids.len());
        }
        (ids, offsets)
    }
}

/// Rows of text read from a CSV file: the text of each row (its text columns joined with a
/// space) and its target when the file has the target column.
#[derive(Debug, Clone, PartialEq)]
pub struct TextTable {
    /// One text per row.
    pub texts: Vec<String>,
    /// One target per row (empty when no target column was read).
    pub target: Vec<f32>,
    /// The text columns, in the order they are joined.
    pub text_columns: Vec<String>,
    /// The target column, when read.
    pub target_name: Option<String>,
    /// The file.
    pub source: String,
}

impl TextTable {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.texts.len()
    }
}

/// Reads the columns `text_columns` of a CSV file (header row; quoted fields may hold the
/// delimiter and line breaks; `.gz` read transparently) and its numeric column `target` when
/// given. A row's text is its text cells joined with a space: an empty cell adds nothing, and a
/// row whose text cells are all empty has no tokens (that is data, not an error). A column that
/// is not in the header is an error listing the header; a target cell that is not a number is an
/// error naming its line and column. Other columns are ignored whatever they hold.
pub fn read_text_csv(
    path: impl AsRef<std::path::Path>,
    text_columns: &[String],
    target: Option<&str>,
) -> Result<TextTable, crate::data::DataError> {
    use super::csv::{cell_error, Record, RecordReader};
    use super::source::{parse_number, show};
    use super::DataError;

    let path = path.as_ref();
    let mut reader = RecordReader::open(path, None)?;
    let mut record = Record::default();
    if !reader.read(&mut record)? {
        return Err(DataError::Empty { path: path.to_path_buf(), expected: "a header row followed by data rows" });
    }
    let header_line = record.line;
    let names: Vec<String> = record.fields().map(|name| show(name.trim_ascii())).collect();
    let find = |wanted: &str| names.iter().position(|n| n == wanted);
    let mut text_at = Vec::with_capacity(text_columns.len());
    for column in text_columns {
        let at = find(column).ok_or_else(|| DataError::UnknownTextColumn {
            path: path.to_path_buf(),
            option: "--text".into(),
            name: column.clone(),
            available: names.clone(),
        })?;
        text_at.push(at);
    }
    let target_at = match target {
        Some(wanted) => Some(find(wanted).ok_or_else(|| DataError::UnknownTarget {
            path: path.to_path_buf(),
            name: wanted.to_string(),
            available: names.clone(),
        })?),
        None => None,
    };
    let mut texts = Vec::new();
    let mut targets = Vec::new();
    while reader.read(&mut record)? {
        if record.len() != names.len() {
            return Err(DataError::RaggedRow {
                path: path.to_path_buf(),
                line: record.line,
                expected: format!("{} fields (as in the header)", names.len()),
                found: record.len(),
            });
        }
        let mut text = String::new();
        for &at in &text_at {
            let cell = String::from_utf8_lossy(record.field(at));
            let cell = cell.trim();
            if !cell.is_empty() {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(cell);
            }
        }
        texts.push(text);
        if let Some(at) = target_at {
            let cell = record.field(at);
            let value =
                parse_number(cell).map_err(|problem| cell_error(path, record.line, at, &names[at], cell, problem))?;
            targets.push(value);
        }
    }
    if texts.is_empty() {
        return Err(DataError::NoRows { path: path.to_path_buf(), header_line });
    }
    Ok(TextTable {
        texts,
        target: targets,
        text_columns: text_columns.to_vec(),
        target_name: target_at.map(|at| names[at].clone()),
        source: path.display().to_string(),
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `bytes`, from `hash`: fixed by its definition, the same on every platform.
fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_on_word_boundaries() {
        let options = TextOptions::default();
        let tokens: Vec<String> = options.tokenize("Runs small, doesn't fit — 5.5 inches! Ça va").collect();
        assert_eq!(tokens, ["runs", "small", "doesn't", "fit", "5.5", "inches", "ça", "va"]);
        let with_punctuation = TextOptions { punctuation: true, lowercase: false, ..TextOptions::default() };
        let tokens: Vec<String> = with_punctuation.tokenize("Nice, soft!").collect();
        assert_eq!(tokens, ["Nice", ",", "soft", "!"]);
        assert_eq!(options.tokenize("").count(), 0);
        assert_eq!(options.tokenize("   ,.! ").count(), 0);
    }

    #[test]
    fn vocabulary_orders_by_count_and_respects_limits() {
        let texts = ["b a b c", "a b d", "b"];
        let vocab = Vocabulary::fit(texts, &TextOptions::default()).unwrap();
        assert_eq!(vocab.words, ["b", "a", "c", "d"]);
        assert_eq!(vocab.size(), 5);
        let vocab = Vocabulary::fit(texts, &TextOptions { min_count: 2, ..TextOptions::default() }).unwrap();
        assert_eq!(vocab.words, ["b", "a"]);
        assert_eq!(vocab.word_ids("a c b"), [2, 0, 1]);
        let vocab = Vocabulary::fit(texts, &TextOptions { max_size: Some(1), ..TextOptions::default() }).unwrap();
        assert_eq!(vocab.words, ["b"]);
        assert_eq!(vocab.word(0), Some("<unk>"));
        for bad in [
            TextOptions { ngrams: 0, ..TextOptions::default() },
            TextOptions { min_count: 0, ..TextOptions::default() },
            TextOptions { ngrams: 2, buckets: 0, ..TextOptions::default() },
            TextOptions { ngrams: 2, ngram_min_count: Some(0), ..TextOptions::default() },
        ] {
            assert!(Vocabulary::fit(texts, &bad).is_err());
        }
    }

    #[test]
    fn hashed_ngrams_are_stable_and_in_range() {
        let options = TextOptions { ngrams: 3, buckets: 50, ..TextOptions::default() };
        let vocab = Vocabulary::fit(["the dress runs small"], &options).unwrap();
        let ids = vocab.encode("The dress runs large");
        assert_eq!(ids.len(), 4 + 3 + 2);
        assert!(ids[4..].iter().all(|&id| (5..55).contains(&id)));
        assert_eq!(ids, vocab.encode("the DRESS runs large"));
        assert_eq!(ids[4], vocab.encode("the dress")[2]);
        // A saved vocabulary tokenizes as the original.
        let mut back: Vocabulary = serde_json::from_str(&serde_json::to_string(&vocab).unwrap()).unwrap();
        back.rebuild_index();
        assert_eq!(back.encode("The dress runs large"), ids);
    }

    /// An n-gram vocabulary: the n-grams seen at least `ngram_min_count` times get rows after the
    /// words, by count, and the others (unseen ones included) are no token at all.
    #[test]
    fn an_ngram_vocabulary_keeps_the_frequent_ngrams_and_drops_the_rest() {
        let options = TextOptions { ngrams: 3, ngram_min_count: Some(2), ..TextOptions::default() };
        let texts = ["the dress runs small", "the dress is small", "runs small, the dress"];
        let vocab = Vocabulary::fit(texts, &options).unwrap();
        // "the dress" 3 times, "runs small" twice; every other n-gram once.
        assert_eq!(vocab.ngrams, ["the dress", "runs small"]);
        let words = vocab.words_len();
        assert_eq!(vocab.size(), 1 + words + 2);
        let ids = vocab.encode("The dress runs small today");
        let word_ids = vocab.word_ids("The dress runs small today");
        assert_eq!(ids[..5], word_ids[..]);
        assert_eq!(ids[5..], [1 + words as u32, 2 + words as u32]);
        assert_eq!(vocab.ngram_id(&["small".into(), "today".into()]), None);
        // Words never resolve to n-grams, nor n-grams to words.
        assert_eq!(vocab.id("the dress"), None);
        assert!(ids.iter().all(|&id| (id as usize) < vocab.size()));
        // Saved and loaded, it tokenizes as the original; a vocabulary saved without n-grams
        // (hashed, or from before n-gram vocabularies) still loads.
        let mut back: Vocabulary = serde_json::from_str(&serde_json::to_string(&vocab).unwrap()).unwrap();
        back.rebuild_index();
        assert_eq!(back.encode("The dress runs small today"), ids);
        let hashed = Vocabulary::fit(texts, &TextOptions { ngrams: 2, ..TextOptions::default() }).unwrap();
        let json = serde_json::to_string(&hashed).unwrap();
        assert!(!json.contains("\"ngrams\":["), "{json}");
        let old: Vocabulary = serde_json::from_str(&json.replace(",\"ngram_min_count\":null", "")).unwrap();
        assert_eq!(old.options.ngram_min_count, None);
    }
}
