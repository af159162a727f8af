//! Models of text through the library: a vocabulary, rows of token indices
//! ([`Rows::with_ids`]), fastText's network trained by the engine, and saved with its vocabulary.

use std::path::Path;

use gradus::data::text::{read_text_csv, TextOptions, Vocabulary};
use gradus::data::LabelMap;
use gradus::loss::Loss;
use gradus::model::{evaluate, Model, Rows};
use gradus::nn::{BagMode, LayerSpec, Network, NetworkSpec, Shape};
use gradus::optim::{Adam, AdamConfig};
use gradus::saved::{ModelSpec, SavedModel, TextInput};
use gradus::train::{BatchMode, Task, TrainConfig, Trainer};

/// Texts whose label (1 good, 0 bad) follows their sentiment words, among neutral ones.
fn texts() -> (Vec<String>, Vec<f32>) {
    let good = ["lovely", "soft", "great", "perfect"];
    let bad = ["cheap", "awful", "scratchy", "tight"];
    let neutral = ["the", "dress", "fabric", "color", "is", "and"];
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    for i in 0..240usize {
        let positive = (i * 7) % 5 < 3;
        let words = if positive { good } else { bad };
        let text = match i % 5 {
            0 => String::new(),
            _ => format!("{} {} {} {}", neutral[i % 6], words[i % 4], neutral[(i / 6) % 6], words[(i / 4) % 4]),
        };
        texts.push(text);
        labels.push(if positive { 1.0 } else { 0.0 });
    }
    (texts, labels)
}

fn network(vocab: &Vocabulary) -> Network {
    let layers = vec![
        LayerSpec::EmbeddingBag { num_embeddings: vocab.size(), embedding_dim: 8, mode: BagMode::Mean },
        LayerSpec::Linear { out_features: Some(1), bias: true },
    ];
    Network::new(NetworkSpec::new(Shape(Vec::new()), layers, Loss::BceWithLogits)).unwrap()
}

#[test]
fn a_text_classifier_trains_through_the_engine_and_reloads() {
    let (texts, labels) = texts();
    let options = TextOptions { ngrams: 2, buckets: 50, ..TextOptions::default() };
    let vocab = Vocabulary::fit(texts.iter().map(String::as_str), &options).unwrap();
    let (ids, offsets) = vocab.encode_all(texts.iter().map(String::as_str));
    assert_eq!(offsets.len(), texts.len() + 1);
    let net = network(&vocab);
    assert_eq!(Model::inputs(&net), 0, "a network over tokens reads no feature columns");
    let rows = Rows::with_ids(&ids, &offsets, &labels);
    let mut params = net.init_params(0);
    let config = TrainConfig { epochs: 15, batch: BatchMode::MiniBatch(16), ..Default::default() };
    let optimizer = Box::new(Adam::new(AdamConfig { lr: 0.05, ..Default::default() }).unwrap());
    let report = Trainer::new(config, optimizer).unwrap().fit(&net, &mut params, rows, Some(rows), &mut []).unwrap();
    let last = report.history.last().unwrap();
    // Empty texts (every fifth) are a coin flip for the model: the others must all be right.
    assert!(last.validation["accuracy"] >= 0.8, "{last:?}");
    let metrics = evaluate(&net, &params, rows).unwrap();
    assert_eq!(metrics["accuracy"], last.validation["accuracy"]);

    let saved = SavedModel {
        task: Task::Binary,
        model: ModelSpec::Network { network: net.spec().clone() },
        params: params.clone(),
        standardizer: None,
        target_scale: None,
        label_map: Some(LabelMap::fit(&labels, "texts").unwrap()),
        feature_names: Vec::new(),
        target_name: "recommended".into(),
        buffers: Vec::new(),
        class_names: None,
        text: Some(TextInput { columns: vec!["review_text".into()], vocabulary: vocab.clone() }),
    };
    let back = SavedModel::from_json_bytes(saved.to_json().as_bytes(), Path::new("m.json")).unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_eq!(back.text_outputs(&refs).unwrap(), saved.text_outputs(&refs).unwrap());
    assert_eq!(back.evaluate_text(&refs, &labels, "texts").unwrap()["accuracy"], metrics["accuracy"]);
    // Unknown words and empty texts are rows like any other.
    assert_eq!(back.text_outputs(&["never seen words", ""]).unwrap().len(), 2);
    // A feature model's methods refuse a model of text, and the reverse.
    assert!(back.outputs(&[1.0], 1).is_err());

    // The vocabulary must fit the embedding table.
    let mut wrong = saved.clone();
    wrong.text.as_mut().unwrap().vocabulary.options.buckets = 49;
    let err = SavedModel::from_json_bytes(wrong.to_json().as_bytes(), Path::new("m.json")).unwrap_err();
    assert!(err.to_string().contains("embedding table"), "{err}");
    let mut missing = saved.clone();
    missing.text = None;
    let err = SavedModel::from_json_bytes(missing.to_json().as_bytes(), Path::new("m.json")).unwrap_err();
    assert!(err.to_string().contains("vocabulary"), "{err}");
}

#[test]
fn reads_text_columns_of_a_csv() {
    let dir = std::env::temp_dir().join(format!("gradus-text-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("r.csv");
    std::fs::write(&path, "id,title,body,y\n1,Nice,\"soft, warm\nand light\",1\n2,,,0\n3,Bad,,0\n").unwrap();
    let table = read_text_csv(&path, &["title".to_string(), "body".to_string()], Some("y")).unwrap();
    assert_eq!(table.texts, ["Nice soft, warm\nand light", "", "Bad"]);
    assert_eq!(table.target, [1.0, 0.0, 0.0]);
    let err = read_text_csv(&path, &["text".to_string()], Some("y")).unwrap_err().to_string();
    assert!(err.contains("no column named `text`") && err.contains("`title`, `body`"), "{err}");
    let err = read_text_csv(&path, &["title".to_string()], Some("title")).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("title"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
