//! The data layer: readers and their error messages, preprocessing, splits, built-in data sets
//! and streaming.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use gradus::data::{
    builtin, kfold, read_csv, read_libsvm, read_ratings, stratified_kfold, stratified_train_test_split,
    train_test_split, CsvOptions, DataError, Dataset, LabelMap, RatingsOptions, Standardizer, StreamFormat,
    StreamingReader,
};

/// A file in the temp folder, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("gradus-data-test-{}-{unique}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn shown(&self) -> String {
        format!("`{}`", self.0.display())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn csv_error(contents: &str, options: &CsvOptions) -> (TempFile, String) {
    let file = TempFile::new("table.csv", contents.as_bytes());
    let error = read_csv(file.path(), options).expect_err("the file should be rejected");
    let message = error.to_string();
    (file, message)
}

fn assert_contains(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "message {message:?} lacks {part:?}");
    }
}

// ---------------------------------------------------------------- CSV reading

#[test]
fn csv_reads_features_and_last_column_target() {
    let file = TempFile::new("plain.csv", b"a,b,y\n1,2,3\n4.5,-6e-1,7\n");
    let data = read_csv(file.path(), &CsvOptions::default()).unwrap();
    assert_eq!((data.rows, data.cols), (2, 2));
    assert_eq!(data.features, [1.0, 2.0, 4.5, -0.6]);
    assert_eq!(data.target, [3.0, 7.0]);
    assert_eq!(data.feature_names, ["a", "b"]);
    assert_eq!(data.target_name, "y");
    assert_eq!(data.row(1), [4.5, -0.6]);
}

#[test]
fn csv_target_by_name_and_delimiters() {
    // Semicolons detected, target in the middle, CRLF endings, a blank line, spaces around cells.
    let file = TempFile::new("semi.csv", b"a;label;b\r\n1; 9 ;2\r\n\r\n3;8;4\r\n");
    let data = read_csv(file.path(), &CsvOptions::default().target("label")).unwrap();
    assert_eq!(data.features, [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(data.target, [9.0, 8.0]);
    assert_eq!(data.feature_names, ["a", "b"]);

    let tabs = TempFile::new("tabs.tsv", b"a\tb\ty\n1\t2\t3\n");
    let data = read_csv(tabs.path(), &CsvOptions::default()).unwrap();
    assert_eq!((data.features.as_slice(), data.target.as_slice()), (&[1.0, 2.0][..], &[3.0][..]));

    // Given explicitly: `|` would never be detected.
    let pipes = TempFile::new("pipes.csv", b"a|b|y\n1|2|3\n");
    let data = read_csv(pipes.path(), &CsvOptions::default().delimiter(b'|')).unwrap();
    assert_eq!(data.features, [1.0, 2.0]);
}

#[test]
fn csv_quoted_fields() {
    let contents = "\u{feff}\"width, cm\",\"the \"\"height\"\"\",\"multi\nline\"\n\"1.5\", \"2\",3\n";
    let file = TempFile::new("quoted.csv", contents.as_bytes());
    let data = read_csv(file.path(), &CsvOptions::default()).unwrap();
    assert_eq!(data.feature_names, ["width, cm", "the \"height\""]);
    assert_eq!(data.target_name, "multi\nline");
    assert_eq!(data.features, [1.5, 2.0]);
    assert_eq!(data.target, [3.0]);

    // The record after a two-line header starts on line 3.
    let (file, message) = csv_error("\"a\nb\",y\n1,x\n", &CsvOptions::default());
    assert_contains(&message, &[&file.shown(), "line 3, column 2 (`y`)", "\"x\""]);

    let (file, message) = csv_error("a,y\n1,\"2\n", &CsvOptions::default());
    assert_contains(&message, &[&file.shown(), "line 2", "never closed", "expected a closing"]);
}

#[test]
fn csv_gzip_round_trip() {
    let text = "p,q,target\n0.25,1,0\n-3,2.5,1\n7,8,0\n";
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    let plain = TempFile::new("round.csv", text.as_bytes());
    let gzipped = TempFile::new("round.csv.gz", &encoder.finish().unwrap());
    let from_plain = read_csv(plain.path(), &CsvOptions::default()).unwrap();
    let from_gzip = read_csv(gzipped.path(), &CsvOptions::default()).unwrap();
    assert_eq!(from_gzip.features, from_plain.features);
    assert_eq!(from_gzip.target, [0.0, 1.0, 0.0]);
    assert_eq!(from_gzip.feature_names, ["p", "q"]);
}

// ---------------------------------------------------------------- CSV errors

#[test]
fn error_missing_file() {
    let path = std::env::temp_dir().join(format!("gradus-data-test-{}-does-not-exist.csv", std::process::id()));
    let error = read_csv(&path, &CsvOptions::default()).unwrap_err();
    assert!(matches!(error, DataError::NotFound { .. }));
    assert_contains(&error.to_string(), &[&format!("`{}`", path.display()), "file not found"]);
}

#[test]
fn error_empty_file() {
    for contents in ["", "\n  \n"] {
        let (file, message) = csv_error(contents, &CsvOptions::default());
        assert_contains(&message, &[&file.shown(), "empty", "expected a header row"]);
    }
}

#[test]
fn error_header_only() {
    let (file, message) = csv_error("a,b,y\n\n", &CsvOptions::default());
    assert_contains(&message, &[&file.shown(), "no data rows", "line 1", "expected at least one row"]);
}

#[test]
fn error_ragged_row() {
    let (file, message) = csv_error("a,b,y\n1,2,3\n4,5\n", &CsvOptions::default());
    assert_contains(&message, &[&file.shown(), "line 3", "expected 3 fields", "found 2"]);
    let (_, message) = csv_error("a,b,y\n1,2,3,4\n", &CsvOptions::default());
    assert_contains(&message, &["line 2", "expected 3 fields", "found 4"]);
}

#[test]
fn error_missing_value() {
    let (file, message) = csv_error("a,b,y\n1,2,3\n1, ,3\n", &CsvOptions::default());
    assert_contains(&message, &[&file.shown(), "line 3, column 2 (`b`)", "empty cell", "expected a number"]);
    // A missing target names the target column.
    let (_, message) = csv_error("a,b,y\n1,2,\n", &CsvOptions::default());
    assert_contains(&message, &["line 2, column 3 (`y`)", "empty cell"]);
}

#[test]
fn error_non_numeric_cell() {
    let (file, message) = csv_error("a,b,y\n1,2,3\n1,\"two, really\",3\n", &CsvOptions::default());
    assert_contains(&message, &[&file.shown(), "line 3, column 2 (`b`)", "expected a number", "found \"two, really\""]);
}

#[test]
fn error_non_finite_cell() {
    for cell in ["NaN", "inf", "-Infinity", "1e39"] {
        let (file, message) = csv_error(&format!("a,b,y\n1,2,3\n{cell},2,3\n"), &CsvOptions::default());
        assert_contains(
            &message,
            &[&file.shown(), "line 3, column 1 (`a`)", "expected a finite number", &format!("found \"{cell}\"")],
        );
    }
}

#[test]
fn error_unknown_target_lists_columns() {
    let (file, message) = csv_error("alpha,beta,y\n1,2,3\n", &CsvOptions::default().target("gamma"));
    assert_contains(&message, &[&file.shown(), "`gamma`", "`alpha`, `beta`, `y`"]);
}

#[test]
fn error_single_column_suggests_delimiter() {
    let (file, message) = csv_error("a b y\n1 2 3\n", &CsvOptions::default());
    assert_contains(&message, &[&file.shown(), "line 1", "1 column", "expected at least 2", "delimiter"]);
}

// ---------------------------------------------------------------- LIBSVM

#[test]
fn libsvm_parses_and_densifies() {
    let text = "# a comment line\n1 1:0.5 3:2\n\n-1 2:-1.5 # trailing comment\n+1 qid:4 4:1e-1\n";
    let file = TempFile::new("small.svm", text.as_bytes());
    let data = read_libsvm(file.path(), None).unwrap();
    assert_eq!((data.rows, data.cols), (3, 4));
    assert_eq!(data.target, [1.0, -1.0, 1.0]);
    #[rustfmt::skip]
    assert_eq!(data.features, [
        0.5, 0.0, 2.0, 0.0,
        0.0, -1.5, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.1,
    ]);
    assert_eq!(data.feature_names, ["x1", "x2", "x3", "x4"]);

    let wide = read_libsvm(file.path(), Some(6)).unwrap();
    assert_eq!((wide.rows, wide.cols), (3, 6));
    assert_eq!(wide.row(2), [0.0, 0.0, 0.0, 0.1, 0.0, 0.0]);
}

#[test]
fn libsvm_errors_name_line_and_column() {
    let cases: [(&str, Option<usize>, &[&str]); 6] = [
        ("1 1:2\nabc 1:2\n", None, &["line 2, column 1", "a finite numeric label", "found \"abc\""]),
        ("1 1:2 3\n", None, &["line 1, column 3", "`index:value`", "found \"3\""]),
        ("1 0:2\n", None, &["line 1, column 2", "a feature index >= 1", "found \"0:2\""]),
        ("1 1:2\n0 2:1 9:1\n", Some(8), &["line 2, column 3", "<= 8", "found \"9:1\""]),
        ("1 3:2 2:1\n", None, &["line 1, column 3", "ascending order", "found \"2:1\""]),
        ("1 1:2\n\n1 2:NaN\n", None, &["line 3, column 2", "a finite number", "found \"2:NaN\""]),
    ];
    for (text, width, parts) in cases {
        let file = TempFile::new("bad.svm", text.as_bytes());
        let message = read_libsvm(file.path(), width).unwrap_err().to_string();
        assert_contains(&message, &[&file.shown()]);
        assert_contains(&message, parts);
    }
    let empty = TempFile::new("empty.svm", b"# nothing\n");
    assert_contains(&read_libsvm(empty.path(), None).unwrap_err().to_string(), &[&empty.shown(), "empty"]);
}

// ---------------------------------------------------------------- ratings

#[test]
fn ratings_with_header_and_extra_columns() {
    let text = "userId,movieId,rating,timestamp\n10,200,4.0,964982703\n11,200,3.5,964982704\n10,300,5,1\n";
    let file = TempFile::new("ratings.csv", text.as_bytes());
    let ratings = read_ratings(file.path(), &RatingsOptions::default()).unwrap();
    assert_eq!(ratings.len(), 3);
    assert_eq!(ratings.users, [0, 1, 0]);
    assert_eq!(ratings.items, [0, 0, 1]);
    assert_eq!(ratings.ratings, [4.0, 3.5, 5.0]);
    assert_eq!((ratings.n_users(), ratings.n_items()), (2, 2));
    assert_eq!(ratings.user_ids["11"], 1);
    assert_eq!(ratings.item_ids["300"], 1);
    assert_eq!(ratings.raw_item_ids, ["200", "300"]);

    let part = ratings.select(&[2]).unwrap();
    assert_eq!((part.users.as_slice(), part.items.as_slice(), part.n_items()), (&[0][..], &[1][..], 2));
}

#[test]
fn ratings_without_header_and_errors() {
    let file = TempFile::new("noheader.tsv", b"alice\tbook\t1\nbob\tbook\t2\textra\n");
    let ratings = read_ratings(file.path(), &RatingsOptions::default()).unwrap();
    assert_eq!((ratings.len(), ratings.n_users(), ratings.n_items()), (2, 2, 1));
    assert_eq!(ratings.raw_user_ids, ["alice", "bob"]);

    let bad = TempFile::new("bad_ratings.csv", b"user,item,stars\n1,2,3\n1,3,good\n");
    let message = read_ratings(bad.path(), &RatingsOptions::default()).unwrap_err().to_string();
    assert_contains(&message, &[&bad.shown(), "line 3, column 3 (`stars`)", "expected a number", "\"good\""]);

    let short = TempFile::new("short_ratings.csv", b"1,2,3\n1,2\n");
    let message = read_ratings(short.path(), &RatingsOptions::default()).unwrap_err().to_string();
    assert_contains(&message, &[&short.shown(), "line 2", "at least 3", "found 2"]);
}

// ---------------------------------------------------------------- preprocessing

fn table(features: Vec<f32>, cols: usize, target: Vec<f32>) -> Dataset {
    Dataset {
        rows: target.len(),
        cols,
        feature_names: (0..cols).map(|col| format!("f{col}")).collect(),
        features,
        target,
        target_name: "y".into(),
        source: "made-up.csv".into(),
    }
}

#[test]
fn standardizer_is_fitted_on_training_rows_only() {
    #[rustfmt::skip]
    let mut data = table(vec![
        1.0, 5.0, 10.0,
        3.0, 5.0, 20.0,
        1000.0, 5.0, -500.0, // test row: must not move the statistics
    ], 3, vec![0.0, 1.0, 0.0]);
    let scaler = Standardizer::fit(&data, &[0, 1]).unwrap();
    assert_eq!(scaler.means, [2.0, 5.0, 15.0]);
    assert_eq!(scaler.stds, [1.0, 1.0, 5.0]); // the constant middle column gets std 1
    scaler.transform(&mut data).unwrap();
    assert_eq!(data.features[..6], [-1.0, 0.0, -1.0, 1.0, 0.0, 1.0]);
    assert_eq!(data.features[6..], [998.0, 0.0, -103.0]);

    let saved = serde_json::to_string(&scaler).unwrap();
    assert_eq!(serde_json::from_str::<Standardizer>(&saved).unwrap(), scaler);

    assert!(matches!(Standardizer::fit(&data, &[]), Err(DataError::NoTrainingRows { .. })));
    assert!(matches!(Standardizer::fit(&data, &[3]), Err(DataError::RowOutOfRange { index: 3, rows: 3, .. })));
    let mut batch = [4.0, 5.0, 25.0, 2.0, 5.0, 15.0];
    scaler.transform_rows(&mut batch).unwrap();
    assert_eq!(batch, [2.0, 0.0, 2.0, 0.0, 0.0, 0.0]);
    assert!(matches!(scaler.transform_rows(&mut [1.0; 4]), Err(DataError::PartialRow { values: 4, cols: 3 })));
    let mut narrow = table(vec![1.0, 2.0], 2, vec![0.0]);
    assert!(matches!(scaler.transform(&mut narrow), Err(DataError::WidthMismatch { expected: 3, found: 2, .. })));
}

#[test]
fn label_map_sorts_classes() {
    let labels = LabelMap::fit(&[3.0, -1.0, 3.0, 0.5, -0.0, 0.0], "t.csv").unwrap();
    assert_eq!(labels.classes, [-1.0, 0.0, 0.5, 3.0]);
    assert_eq!(labels.n_classes(), 4);
    assert_eq!(labels.encode(0.5), Some(2));
    assert_eq!(labels.encode(-0.0), Some(1));
    assert_eq!(labels.encode(2.0), None);
    assert_eq!(labels.decode(3), Some(3.0));
    assert_eq!(labels.encode_all(&[3.0, -1.0], "t.csv").unwrap(), [3, 0]);
    let message = labels.encode_all(&[3.0, 7.0], "test.csv").unwrap_err().to_string();
    assert_contains(&message, &["`test.csv`", "row 2", "7"]);

    let saved = serde_json::to_string(&labels).unwrap();
    assert_eq!(serde_json::from_str::<LabelMap>(&saved).unwrap(), labels);
}

#[test]
fn single_class_is_an_error_naming_the_file() {
    let file = TempFile::new("one_class.csv", b"a,y\n1,4\n2,4\n");
    let data = read_csv(file.path(), &CsvOptions::default()).unwrap();
    let message = LabelMap::from_dataset(&data).unwrap_err().to_string();
    assert_contains(&message, &[&file.shown(), "at least two classes", "4"]);
}

// ---------------------------------------------------------------- splits

#[test]
fn train_test_split_is_a_reproducible_partition() {
    let (train, test) = train_test_split(101, 0.25, 3).unwrap();
    assert_eq!((train.len(), test.len()), (75, 26)); // ceil(0.25 · 101) = 26
    let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..101).collect::<Vec<_>>());
    assert_eq!(train_test_split(101, 0.25, 3).unwrap(), (train.clone(), test.clone()));
    assert_ne!(train_test_split(101, 0.25, 4).unwrap().1, test);
    assert_ne!(test, (75..101).collect::<Vec<_>>(), "the split is shuffled");

    for fraction in [0.0, 1.0, -0.5, f64::NAN] {
        let message = train_test_split(10, fraction, 0).unwrap_err().to_string();
        assert_contains(&message, &["test_fraction"]);
    }
    assert!(train_test_split(1, 0.5, 0).is_err());
}

#[test]
fn stratified_split_keeps_class_shares() {
    let labels: Vec<usize> = (0..100).map(|row| usize::from(row >= 80)).collect(); // 80 / 20
    let (train, test) = stratified_train_test_split(&labels, 0.25, 9).unwrap();
    assert_eq!((train.len(), test.len()), (75, 25));
    let minority_in_test = test.iter().filter(|&&row| labels[row] == 1).count();
    assert!((4..=6).contains(&minority_in_test), "{minority_in_test} of 20 minority rows in test");
}

#[test]
fn kfold_partitions_every_row_once_and_is_reproducible() {
    let folds = kfold(23, 5, 11).unwrap();
    assert_eq!(folds.len(), 5);
    let mut tested = vec![0; 23];
    for (train, test) in &folds {
        for &row in test {
            tested[row] += 1;
        }
        let train_set: HashSet<usize> = train.iter().copied().collect();
        assert_eq!(train.len() + test.len(), 23);
        assert!(test.iter().all(|row| !train_set.contains(row)));
        assert!((4..=5).contains(&test.len()));
    }
    assert_eq!(tested, vec![1; 23]);
    assert_eq!(kfold(23, 5, 11).unwrap(), folds);
    assert_ne!(kfold(23, 5, 12).unwrap(), folds);

    assert_contains(&kfold(10, 1, 0).unwrap_err().to_string(), &["`k`"]);
    assert!(kfold(3, 4, 0).is_err());
}

#[test]
fn stratified_kfold_spreads_each_class() {
    let labels: Vec<usize> = (0..30).map(|row| if row < 6 { 2 } else { row % 2 }).collect();
    let folds = stratified_kfold(&labels, 3, 5).unwrap();
    let mut tested = vec![0; 30];
    for (train, test) in &folds {
        assert_eq!(train.len() + test.len(), 30);
        assert_eq!(test.len(), 10);
        assert_eq!(test.iter().filter(|&&row| labels[row] == 2).count(), 2);
        test.iter().for_each(|&row| tested[row] += 1);
    }
    assert_eq!(tested, vec![1; 30]);
}

// ---------------------------------------------------------------- built-in data sets

#[test]
fn every_builtin_loads_with_its_shape() {
    let expected = [
        ("digits", 1797, 64, 10),
        ("mnist_5k", 5000, 784, 10),
        ("breast_cancer", 569, 30, 2),
        ("diabetes", 442, 10, 0),
        ("wine", 178, 13, 3),
        ("iris", 150, 4, 3),
    ];
    for (name, rows, cols, classes) in expected {
        let data = builtin::load(name).unwrap().into_table().unwrap();
        assert_eq!((data.rows, data.cols), (rows, cols), "{name}");
        assert_eq!((data.features.len(), data.target.len(), data.feature_names.len()), (rows * cols, rows, cols));
        let info = builtin::info(name).unwrap();
        assert_eq!((info.rows, info.features), (rows, cols), "{name}'s listing");
        if classes > 0 {
            assert_eq!(LabelMap::from_dataset(&data).unwrap().n_classes(), classes, "{name}");
        }
    }
    let ratings = builtin::load("movielens_small").unwrap().into_ratings().unwrap();
    assert_eq!((ratings.len(), ratings.n_users(), ratings.n_items()), (100_836, 610, 9724));
    assert!(ratings.ratings.iter().all(|rating| (0.5..=5.0).contains(rating)));
}

#[test]
fn builtin_listing_and_errors() {
    let names: Vec<&str> = builtin::list().iter().map(|info| info.name).collect();
    assert_eq!(
        names,
        [
            "digits",
            "mnist_5k",
            "breast_cancer",
            "diabetes",
            "wine",
            "iris",
            "movielens_small",
            "fashion_mnist",
            "fashion_mnist_test",
            "reviews"
        ]
    );
    let message = builtin::load("reviews").unwrap_err().to_string();
    assert_contains(&message, &["`reviews`", "text"]);
    assert!(builtin::list().iter().all(|info| !info.licence.is_empty()));
    assert_eq!(builtin::info("iris").unwrap().task.to_string(), "multiclass (3 classes)");
    assert_eq!(builtin::info("movielens_small").unwrap().task.to_string(), "ratings");

    let message = builtin::load("cifar").unwrap_err().to_string();
    assert_contains(&message, &["`cifar`", "`iris`", "`movielens_small`"]);
    let message = builtin::load("iris").unwrap().into_ratings().unwrap_err().to_string();
    assert_contains(&message, &["iris.csv", "feature table", "expected ratings"]);
}

// ---------------------------------------------------------------- streaming

fn numbered_csv(rows: usize) -> TempFile {
    let mut text = String::from("id,twice,y\n");
    for row in 0..rows {
        text.push_str(&format!("{row},{},{}\n", 2 * row, row % 3));
    }
    TempFile::new("stream.csv", text.as_bytes())
}

/// The ids (first feature) of every row of an epoch, checking each batch on the way.
fn epoch_ids(reader: &mut StreamingReader, batch_size: usize) -> (Vec<usize>, usize) {
    let mut epoch = reader.epoch().unwrap();
    let mut ids = Vec::new();
    let mut batches = 0;
    for batch in epoch.by_ref() {
        let batch = batch.unwrap();
        batches += 1;
        assert!(batch.rows >= 1 && batch.rows <= batch_size);
        assert_eq!((batch.features.len(), batch.target.len()), (batch.rows * 2, batch.rows));
        for row in 0..batch.rows {
            let id = batch.row(row)[0];
            assert_eq!(batch.row(row)[1], 2.0 * id, "features stay with their row");
            assert_eq!(batch.target[row], (id as usize % 3) as f32, "targets stay with their row");
            ids.push(id as usize);
        }
    }
    assert!(epoch.peak_buffered_rows() <= reader.max_buffered_rows());
    (ids, batches)
}

#[test]
fn streaming_yields_every_row_each_epoch_with_bounded_memory() {
    let file = numbered_csv(103);
    let mut in_order = StreamingReader::open(file.path(), StreamFormat::Csv(CsvOptions::default()), 10).unwrap();
    assert_eq!((in_order.cols(), in_order.feature_names()), (2, vec!["id".to_string(), "twice".to_string()]));
    for _ in 0..2 {
        let (ids, batches) = epoch_ids(&mut in_order, 10);
        assert_eq!(ids, (0..103).collect::<Vec<_>>());
        assert_eq!(batches, 11);
    }
    assert_eq!(in_order.epochs_started(), 2);

    let mut shuffled =
        StreamingReader::open(file.path(), StreamFormat::Csv(CsvOptions::default()), 10).unwrap().with_shuffle(16, 7);
    let mut epoch = shuffled.epoch().unwrap();
    let rows: usize = epoch.by_ref().map(|batch| batch.unwrap().rows).sum();
    assert_eq!(rows, 103);
    // The whole file never sits in memory: at most a batch plus the shuffle buffer.
    assert!(epoch.peak_buffered_rows() > 10 && epoch.peak_buffered_rows() <= 26, "{}", epoch.peak_buffered_rows());

    let (first, _) = epoch_ids(&mut shuffled, 10);
    let (second, _) = epoch_ids(&mut shuffled, 10);
    assert_ne!(first, (0..103).collect::<Vec<_>>(), "shuffled");
    assert_ne!(first, second, "each epoch has its own order");
    for ids in [&first, &second] {
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..103).collect::<Vec<_>>(), "every row exactly once");
    }
    // Reproducible: a new reader with the same seed replays the same epochs.
    let mut again =
        StreamingReader::open(file.path(), StreamFormat::Csv(CsvOptions::default()), 10).unwrap().with_shuffle(16, 7);
    again.epoch().unwrap().for_each(drop);
    assert_eq!(epoch_ids(&mut again, 10).0, first);
}

#[test]
fn streaming_libsvm_and_errors() {
    let file = TempFile::new("stream.svm", b"0 1:1\n1 3:2\n0\n1 2:5 3:1\n0 1:4\n");
    let mut reader = StreamingReader::open(file.path(), StreamFormat::Libsvm { width: None }, 2).unwrap();
    assert_eq!(reader.cols(), 3);
    let batches: Vec<_> = reader.epoch().unwrap().map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|batch| batch.rows).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(batches[1].features, [0.0, 0.0, 0.0, 0.0, 5.0, 1.0]);
    assert_eq!(batches[1].target, [0.0, 1.0]);

    let bad = TempFile::new("stream_bad.csv", b"a,y\n1,0\n2,0\n3,zero\n4,0\n");
    let mut reader = StreamingReader::open(bad.path(), StreamFormat::Csv(CsvOptions::default()), 2).unwrap();
    let mut epoch = reader.epoch().unwrap();
    assert!(epoch.next().unwrap().is_ok());
    let message = epoch.next().unwrap().unwrap_err().to_string();
    assert_contains(&message, &[&bad.shown(), "line 4, column 2 (`y`)", "\"zero\""]);
    assert!(epoch.next().is_none(), "nothing after an error");

    let header_only = TempFile::new("stream_header.csv", b"a,y\n");
    let message =
        StreamingReader::open(header_only.path(), StreamFormat::Csv(CsvOptions::default()), 2).unwrap_err().to_string();
    assert_contains(&message, &["no data rows"]);
    assert!(StreamingReader::open(file.path(), StreamFormat::Libsvm { width: None }, 0).is_err());
}
