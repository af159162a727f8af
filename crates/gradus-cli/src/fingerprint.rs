//! What makes a training run, written into its checkpoints so that `--resume` continues the run
//! that wrote the checkpoint and no other.
//!
//! A fingerprint is a small map of named values: the data as trained on (rows, columns and an
//! FNV-1a hash of the training and validation rows after splitting and standardization, over the
//! bits of each `f32`: the same on every run and platform), the task and model with its options,
//! the optimizer with every option (defaults filled in, so `--lr 0.001` and Adam's default agree),
//! the batch size, the schedule with its options, clipping, early stopping, the tolerance and the
//! seed. Options that change only what is shown or where it goes (`--plot`, `--metrics-json`,
//! `--json`, `--quiet`, `--save`), and `--threads` (results do not depend on it), are not part of
//! it; nor is `--epochs`, which may grow, unless the schedule's length depends on it (cosine,
//! polynomial, one-cycle).

use std::collections::BTreeMap;
use std::path::Path;

use gradus::train::{fingerprint_differences, Checkpoint};
use serde_json::Value;

use crate::error::CliError;
use crate::prepare::{Loaded, Prepared};
use crate::setup::{batch_label, Settings};

/// Named values of a run.
pub type Fingerprint = BTreeMap<String, String>;

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn floats(&mut self, values: &[f32]) {
        self.bytes(&(values.len() as u64).to_le_bytes());
        for v in values {
            self.bytes(&v.to_bits().to_le_bytes());
        }
    }
}

/// The FNV-1a hash of the prepared rows (features and targets, training then validation), as 16
/// hex digits.
pub fn data_hash(data: &Prepared) -> String {
    let mut h = Fnv::new();
    h.bytes(&(data.cols as u64).to_le_bytes());
    for part in [&data.train_x, &data.train_y, &data.val_x, &data.val_y] {
        h.floats(part);
    }
    // Text models: the token rows as well (the features are then empty).
    if let Some(tokens) = &data.tokens {
        for (ids, offsets) in [(&tokens.train_ids, &tokens.train_offsets), (&tokens.val_ids, &tokens.val_offsets)] {
            h.bytes(&(ids.len() as u64).to_le_bytes());
            ids.iter().for_each(|id| h.bytes(&id.to_le_bytes()));
            offsets.iter().for_each(|o| h.bytes(&(*o as u64).to_le_bytes()));
        }
    }
    format!("{:016x}", h.0)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every option of the optimizer, its defaults filled in by the library's own configuration type.
fn optimizer_options(settings: &Settings) -> BTreeMap<String, String> {
    fn resolved<T: serde::de::DeserializeOwned + serde::Serialize>(options: &Value) -> Option<Value> {
        serde_json::from_value::<T>(options.clone()).ok().and_then(|c| serde_json::to_value(c).ok())
    }
    use gradus::optim::*;
    let options = &settings.optimizer.options;
    let full = match settings.optimizer.name {
        "sgd" => resolved::<SgdConfig>(options),
        "adam" => resolved::<AdamConfig>(options),
        "adamw" => resolved::<AdamWConfig>(options),
        "nadam" => resolved::<NAdamConfig>(options),
        "radam" => resolved::<RAdamConfig>(options),
        "adamax" => resolved::<AdamaxConfig>(options),
        "adagrad" => resolved::<AdagradConfig>(options),
        "adadelta" => resolved::<AdadeltaConfig>(options),
        "rmsprop" => resolved::<RmsPropConfig>(options),
        "lion" => resolved::<LionConfig>(options),
        "sparse_adam" => resolved::<SparseAdamConfig>(options),
        _ => None,
    };
    full.unwrap_or_else(|| options.clone())
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_default()
}

/// The fingerprint of a run of `settings` on `data` (from `loaded`, split with `val_fraction`),
/// whose schedule takes `steps_per_epoch` updates per epoch.
pub fn of(
    settings: &Settings,
    loaded: &Loaded,
    data: &Prepared,
    val_fraction: f64,
    steps_per_epoch: u64,
) -> Fingerprint {
    let mut model = Vec::new();
    if settings.model == "mlp" {
        model.push(("hidden", settings.hidden.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(",")));
        model.push(("activation", format!("{:?}", settings.activation).to_lowercase()));
    } else if settings.model == "cnn" {
        model.push(("layers", settings.layers.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(",")));
        model
            .push(("input-shape", settings.input_shape.as_ref().map_or("(the data's)".to_string(), |s| s.to_string())));
        model.push(("init", format!("{:?}", settings.init).to_lowercase()));
    } else {
        model.push(("l1", settings.penalty.l1.to_string()));
        model.push(("l2", settings.penalty.l2.to_string()));
    }
    let task = format!("{} ({} classes)", loaded.task.name(), loaded.classes());
    of_model(settings, &task, data, val_fraction, steps_per_epoch, &model)
}

/// The fingerprint of a run of `settings` on `data` for `task`, whose model is described by
/// `model` (its options by name, beside `settings.model`): the part common to every model.
pub fn of_model(
    settings: &Settings,
    task: &str,
    data: &Prepared,
    val_fraction: f64,
    steps_per_epoch: u64,
    model: &[(&str, String)],
) -> Fingerprint {
    let mut f = Fingerprint::new();
    let mut put = |name: &str, value: String| {
        f.insert(name.to_string(), value);
    };
    put("data rows", format!("{} training + {} validation", data.train_y.len(), data.val_y.len()));
    put("data columns", data.cols.to_string());
    put("data hash", data_hash(data));
    put("task", task.to_string());
    put("val-fraction", val_fraction.to_string());
    put("scaling", format!("{:?}", settings.scaling).to_lowercase());
    put("model", settings.model.clone());
    for (name, value) in model {
        put(name, value.clone());
    }
    put("optimizer", settings.optimizer.label.clone());
    for (name, value) in optimizer_options(settings) {
        put(&name.replace('_', "-"), value);
    }
    put("batch-size", batch_label(settings.batch));
    put("seed", settings.seed.to_string());
    let show = |o: Option<f64>| o.map_or("off".to_string(), |v| v.to_string());
    put("clip-norm", show(settings.clip_norm));
    put("clip-value", show(settings.clip_value));
    put("tol", show(settings.tol));
    put("early-stop", settings.early_stop.map_or("off".to_string(), |p| p.to_string()));
    put("warmup", settings.warmup.to_string());
    put("schedule", settings.schedule.clone());
    let options =
        settings.schedule_options(steps_per_epoch, settings.optimizer.lr()).map(|(_, o)| o).unwrap_or_default();
    let mut length_follows_epochs = false;
    if let Some(o) = options.as_object() {
        for (name, value) in o {
            if matches!(name.as_str(), "T_max" | "total_iters" | "total_steps") {
                length_follows_epochs = true;
                continue;
            }
            put(&format!("schedule {name}"), text(value));
        }
    }
    if length_follows_epochs {
        // The schedule spans the run: another --epochs is another schedule.
        put("epochs (the schedule's length)", settings.epochs.to_string());
    }
    f
}

/// Checks that `checkpoint` (read from `path`) was written by the run `now` describes, and that
/// `epochs` continues it. The message names the checkpoint file and lists what differs.
pub fn check_resume(path: &Path, checkpoint: &Checkpoint, now: &Fingerprint, epochs: usize) -> Result<(), CliError> {
    let shown = path.display();
    if checkpoint.fingerprint.is_empty() {
        // Written before checkpoints carried fingerprints: nothing to compare with.
    } else {
        let differences = fingerprint_differences(&checkpoint.fingerprint, now);
        if !differences.is_empty() {
            return Err(CliError::usage(format!(
                "--resume `{shown}` was written by another run: {}",
                differences.join("; ")
            ))
            .hint("resume with the options of the run that wrote the checkpoint; only --epochs may grow"));
        }
    }
    if epochs <= checkpoint.epoch {
        return Err(CliError::usage(format!(
            "--epochs {epochs}: the checkpoint `{shown}` has already trained {} epochs: expected more than {} to \
             continue it",
            checkpoint.epoch, checkpoint.epoch
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_1a_matches_the_reference_values() {
        let mut h = Fnv::new();
        h.bytes(b"");
        assert_eq!(h.0, 0xcbf2_9ce4_8422_2325);
        let mut h = Fnv::new();
        h.bytes(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv::new();
        h.bytes(b"foobar");
        assert_eq!(h.0, 0x8594_4171_f739_67e8);
    }
}
