//! A word-level recurrent language model: `embedding → lstm | gru → linear` over the vocabulary,
//! trained to predict each next token of a corpus by truncated backpropagation through time, as
//! PyTorch's `word_language_model` example does.
//!
//! The corpus, one long sequence of token indices, is cut into `streams` equal streams read side
//! by side ([`LanguageModel::rows`]); each stream into chunks of `bptt` steps. A row is one chunk
//! of one stream, `bptt + 1` tokens: the inputs and, shifted by one, the targets. Rows are laid
//! out chunk after chunk, so that mini-batches of `streams` rows in order (no shuffling) are the
//! chunks of the corpus in reading order. Each row's recurrent layer starts from the state the
//! same stream's previous chunk ended in — the state is carried from one update to the next, and
//! the gradient stops there (truncated backpropagation through time). The loss is the mean cross
//! entropy over every predicted token, and `perplexity` is its exponential.
//!
//! The carried state is the model's only state besides its parameters: it is remembered for the
//! rows that continue the last batch's rows, so training that visits the rows in another order
//! (shuffled mini-batches) still trains, each row from a zero state.
//!
//! ```
//! use gradus::model::{evaluate, Model, Rows};
//! use gradus::nn::{LanguageModel, LanguageModelSpec, RecurrentCell};
//!
//! let spec = LanguageModelSpec {
//!     vocab: 5, embedding_dim: 4, hidden: 6, layers: 1, cell: RecurrentCell::Lstm, bptt: 3, streams: 2,
//! };
//! let model = LanguageModel::new(spec).unwrap();
//! let corpus: Vec<u32> = (0..40).map(|i| i % 5).collect();
//! let (ids, offsets, targets) = model.rows(&corpus);
//! assert_eq!(targets.len(), 12); // 2 streams of 20 tokens: 6 chunks of 3 steps each
//! let params = model.init_params(0);
//! let metrics = evaluate(&model, &params, Rows::with_ids(&ids, &offsets, &targets)).unwrap();
//! assert!((metrics["perplexity"] - metrics["loss"].exp()).abs() < 1e-9);
//! ```

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::network::{Carry, Network, NetworkSpec, TrainingStep};
use super::shape::Shape;
use super::spec::LayerSpec;
use crate::error::ConfigError;
use crate::loss::{Loss, TargetError};
use crate::model::{Model, Rows, RowsError};
use crate::params::ParamLayout;
use crate::train::metrics::Metrics;
use crate::train::Task;

/// The recurrent cell of a [`LanguageModel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecurrentCell {
    /// `torch.nn.LSTM`.
    Lstm,
    /// `torch.nn.GRU`.
    Gru,
}

impl RecurrentCell {
    /// `lstm` or `gru`.
    pub fn name(self) -> &'static str {
        match self {
            RecurrentCell::Lstm => "lstm",
            RecurrentCell::Gru => "gru",
        }
    }
}

/// The sizes of a [`LanguageModel`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageModelSpec {
    /// Tokens of the vocabulary (inputs and outputs).
    pub vocab: usize,
    /// Size of each token's embedding.
    pub embedding_dim: usize,
    /// Hidden size of the recurrent layer.
    pub hidden: usize,
    /// Stacked recurrent layers.
    pub layers: usize,
    /// LSTM or GRU.
    pub cell: RecurrentCell,
    /// Steps of truncated backpropagation through time: the length of each row's chunk.
    pub bptt: usize,
    /// Streams the corpus is read in side by side: the rows of one mini-batch.
    pub streams: usize,
}

impl LanguageModelSpec {
    /// The network: `embedding(vocab, embedding_dim)` on rows of `bptt` tokens, the recurrent
    /// layer, and `linear(vocab)` at every step, under cross entropy.
    pub fn network_spec(&self) -> NetworkSpec {
        let recurrent = match self.cell {
            RecurrentCell::Lstm => LayerSpec::Lstm { hidden_size: self.hidden, num_layers: self.layers },
            RecurrentCell::Gru => LayerSpec::Gru { hidden_size: self.hidden, num_layers: self.layers },
        };
        let layers = vec![
            LayerSpec::Embedding { num_embeddings: self.vocab, embedding_dim: self.embedding_dim },
            recurrent,
            LayerSpec::Linear { out_features: Some(self.vocab), bias: true },
        ];
        NetworkSpec::new(Shape(vec![self.bptt]), layers, Loss::CrossEntropy { label_smoothing: 0.0 })
    }

    /// Checks every size, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("vocab", self.vocab),
            ("embedding_dim", self.embedding_dim),
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("bptt", self.bptt),
            ("streams", self.streams),
        ] {
            if value == 0 {
                return Err(ConfigError::new(name, 0, "at least 1"));
            }
        }
        if self.vocab > u32::MAX as usize {
            return Err(ConfigError::new("vocab", self.vocab, "a vocabulary that fits 32-bit indices"));
        }
        Ok(())
    }

    /// A short description, e.g. `language model: embedding 200, lstm 200 × 1, vocabulary 10002, bptt 35`.
    pub fn describe(&self) -> String {
        format!(
            "language model: embedding {}, {} {}{}, vocabulary {}, bptt {}",
            self.embedding_dim,
            self.cell.name(),
            self.hidden,
            if self.layers > 1 { format!(" × {} layers", self.layers) } else { String::new() },
            self.vocab,
            self.bptt
        )
    }
}

/// A recurrent language model (see the module documentation).
#[derive(Debug)]
pub struct LanguageModel {
    spec: LanguageModelSpec,
    net: Network,
    carry: Mutex<CarriedState>,
}

/// The state the last training batch's rows ended in, for the rows that continue them.
#[derive(Debug, Default)]
struct CarriedState {
    /// The data the rows belong to (address and length of its token indices).
    data: (usize, usize),
    /// The rows that continue the last batch's rows, in increasing order.
    next_rows: Vec<usize>,
    /// Their initial states, `state_width` values each.
    states: Vec<f32>,
}

impl LanguageModel {
    /// Builds the model; sizes that cannot be built are an error naming them.
    pub fn new(spec: LanguageModelSpec) -> Result<Self, ConfigError> {
        spec.validate()?;
        let net = Network::new(spec.network_spec())?;
        Ok(Self { spec, net, carry: Mutex::new(CarriedState::default()) })
    }

    /// Its sizes.
    pub fn spec(&self) -> &LanguageModelSpec {
        &self.spec
    }

    /// The network it trains.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The rows of a corpus (one sequence of token indices): `streams` streams of
    /// `len / streams` tokens (the rest dropped), each cut into chunks of `bptt` inputs and their
    /// `bptt` next tokens, chunk after chunk (see the module documentation). Returns the rows'
    /// token indices and offsets and one target per row (each row's stream), the input of
    /// [`Rows::with_ids`]. A corpus too short for one chunk gives no rows.
    pub fn rows(&self, corpus: &[u32]) -> (Vec<u32>, Vec<usize>, Vec<f32>) {
        let (streams, bptt) = (self.spec.streams, self.spec.bptt);
        let per_stream = corpus.len() / streams;
        let chunks = per_stream.saturating_sub(1) / bptt;
        let mut ids = Vec::with_capacity(chunks * streams * (bptt + 1));
        let mut offsets = Vec::with_capacity(chunks * streams + 1);
        let mut targets = Vec::with_capacity(chunks * streams);
        offsets.push(0);
        for chunk in 0..chunks {
            for stream in 0..streams {
                let start = stream * per_stream + chunk * bptt;
                ids.extend_from_slice(&corpus[start..start + bptt + 1]);
                offsets.push(ids.len());
                targets.push(stream as f32);
            }
        }
        (ids, offsets, targets)
    }

    /// Checks rows of tokens for this model: `bptt + 1` tokens each, every one in the vocabulary.
    fn check_token_rows(&self, data: &Rows<'_>) -> Result<(), String> {
        let Some(ids) = data.ids else {
            return Err("a language model reads rows of token indices".into());
        };
        let width = self.spec.bptt + 1;
        if let Some(r) = ids.offsets.windows(2).position(|w| w[1] - w[0] != width) {
            return Err(format!(
                "row {r} holds {} tokens, a language model of bptt {} takes {width}",
                ids.offsets[r + 1] - ids.offsets[r],
                self.spec.bptt
            ));
        }
        let all = &ids.ids[ids.offsets[0]..ids.offsets[data.rows]];
        if let Some(&id) = all.iter().find(|&&id| id as usize >= self.spec.vocab) {
            return Err(format!("token index {id} is not below the vocabulary size {}", self.spec.vocab));
        }
        Ok(())
    }

    /// The inputs (each row's first `bptt` tokens, as compressed rows) and targets (the `bptt`
    /// tokens after them) of the rows `rows` of `data`.
    fn split_rows(&self, data: &Rows<'_>, rows: impl Iterator<Item = usize>) -> (Vec<u32>, Vec<usize>, Vec<f32>) {
        let ids = data.ids.expect("rows of tokens");
        let bptt = self.spec.bptt;
        let (mut inputs, mut offsets, mut targets) = (Vec::new(), vec![0], Vec::new());
        for r in rows {
            let row = ids.row(r);
            inputs.extend_from_slice(&row[..bptt]);
            offsets.push(inputs.len());
            targets.extend(row[1..].iter().map(|&t| t as f32));
        }
        (inputs, offsets, targets)
    }

    /// The first row of `data` as an index into the rows it was sliced from (rows are
    /// `bptt + 1` tokens laid end to end from the start of the token buffer).
    fn first_row(&self, data: &Rows<'_>) -> usize {
        data.ids.map_or(0, |ids| ids.offsets[0] / (self.spec.bptt + 1))
    }

    fn data_key(data: &Rows<'_>) -> (usize, usize) {
        data.ids.map_or((0, 0), |ids| (ids.ids.as_ptr() as usize, ids.ids.len()))
    }

    /// A training pass over rows `batch` of `data` (indices of the slice), starting each row
    /// from the state its stream's previous chunk ended in when that was the last batch, and
    /// remembering the states they end in.
    fn train_batch(
        &self,
        params: &[f32],
        data: Rows<'_>,
        batch: &[usize],
        step: TrainingStep,
        grad: &mut [f32],
    ) -> f64 {
        let width = self.net.state_width().expect("one recurrent layer");
        let base = self.first_row(&data);
        let key = Self::data_key(&data);
        let (inputs, offsets, targets) = self.split_rows(&data, batch.iter().copied());
        let mut carry = self.carry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut initial = vec![0.0f32; batch.len() * width];
        let mut found = false;
        if carry.data == key {
            for (&r, state) in batch.iter().zip(initial.chunks_exact_mut(width)) {
                if let Ok(at) = carry.next_rows.binary_search(&(base + r)) {
                    state.copy_from_slice(&carry.states[at * width..(at + 1) * width]);
                    found = true;
                }
            }
        }
        let mut last = vec![0.0f32; batch.len() * width];
        let loss = self.net.train_tokens_with_state(
            params,
            &inputs,
            &offsets,
            &targets,
            grad,
            step,
            Carry { initial: found.then_some(&initial[..]), last: Some(&mut last) },
        );
        // Remembered for the rows that continue these, in increasing order.
        let mut next: Vec<(usize, usize)> =
            batch.iter().enumerate().map(|(i, &r)| (base + r + self.spec.streams, i)).collect();
        next.sort_unstable();
        next.dedup_by_key(|(row, _)| *row);
        carry.data = key;
        carry.next_rows = next.iter().map(|&(row, _)| row).collect();
        carry.states.clear();
        for &(_, i) in &next {
            carry.states.extend_from_slice(&last[i * width..(i + 1) * width]);
        }
        loss
    }

    /// Forgets the carried state, so that the next batch starts from zero states.
    pub fn reset_state(&self) {
        *self.carry.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = CarriedState::default();
    }

    /// Loss (mean cross entropy per predicted token), `perplexity` and next-token `accuracy` of
    /// the rows of `data`, read in order `streams` rows at a time, each group continuing the
    /// state of the one before (the rows of [`LanguageModel::rows`] in order).
    pub fn measure(&self, params: &[f32], data: Rows<'_>) -> Result<Metrics, String> {
        self.check_token_rows(&data)?;
        let (streams, vocab) = (self.spec.streams, self.spec.vocab);
        let width = self.net.state_width().expect("one recurrent layer");
        let mut state: Vec<f32> = Vec::new();
        let (mut loss_sum, mut correct, mut count) = (0.0f64, 0usize, 0usize);
        let (mut logits, mut scratch) = (Vec::new(), Vec::new());
        for start in (0..data.rows).step_by(streams) {
            let group = start..(start + streams).min(data.rows);
            let (inputs, offsets, targets) = self.split_rows(&data, group.clone());
            logits.clear();
            logits.resize(targets.len() * vocab, 0.0f32);
            let mut last = vec![0.0f32; group.len() * width];
            let initial = (state.len() == last.len()).then_some(&state[..]);
            self.net.predict_tokens_with_state(
                params,
                &inputs,
                &offsets,
                Carry { initial, last: Some(&mut last) },
                &mut logits,
            );
            state = last;
            let (sum, right) = cross_entropy_sum(&logits, &targets, vocab, &mut scratch);
            loss_sum += sum;
            correct += right;
            count += targets.len();
        }
        let mut metrics = Metrics::new();
        if count > 0 {
            let loss = loss_sum / count as f64;
            metrics.insert("loss".into(), loss);
            metrics.insert("perplexity".into(), loss.exp());
            metrics.insert("accuracy".into(), correct as f64 / count as f64);
        }
        Ok(metrics)
    }

    /// The logits of the next token after `token`, read from `state` (updated; empty for a zero
    /// state): one step of generation, with `network` the model's [`LanguageModel::stepper`].
    ///
    /// # Panics
    /// If `network` is not this model's stepper, or `token` is not below the vocabulary size.
    pub fn step(&self, network: &Network, params: &[f32], token: u32, state: &mut Vec<f32>) -> Vec<f32> {
        let width = self.net.state_width().expect("one recurrent layer");
        let mut last = vec![0.0f32; width];
        let mut logits = vec![0.0f32; self.spec.vocab];
        let initial = (state.len() == width).then_some(&state[..]);
        network.predict_tokens_with_state(
            params,
            &[token],
            &[0, 1],
            Carry { initial, last: Some(&mut last) },
            &mut logits,
        );
        *state = last;
        logits
    }

    /// A network of the same parameters that reads one token per row, for [`LanguageModel::step`].
    pub fn stepper(&self) -> Network {
        let spec = LanguageModelSpec { bptt: 1, ..self.spec.clone() };
        Network::new(spec.network_spec()).expect("a network of the same sizes builds")
    }
}

/// The summed cross entropy of rows of `vocab` logits against class `targets` (the loss's own
/// softmax, `scratch` holding its gradient), and how many rows have their target as a largest
/// logit.
fn cross_entropy_sum(logits: &[f32], targets: &[f32], vocab: usize, scratch: &mut Vec<f32>) -> (f64, usize) {
    scratch.resize(logits.len(), 0.0);
    let sum = Loss::CrossEntropy { label_smoothing: 0.0 }.sum_grad(logits, targets, vocab, 1.0, scratch);
    // The target is the prediction when no logit is larger (a tie counts as right).
    let correct = logits
        .chunks_exact(vocab)
        .zip(targets)
        .filter(|(row, &target)| row[target as usize] >= crate::loss::max_of(row))
        .count();
    (sum, correct)
}

impl Model for LanguageModel {
    fn task(&self) -> Task {
        Task::Multiclass
    }

    fn layout(&self) -> &ParamLayout {
        self.net.layout()
    }

    fn inputs(&self) -> usize {
        0
    }

    fn outputs(&self) -> usize {
        self.spec.bptt * self.spec.vocab
    }

    fn init_params(&self, seed: u64) -> Vec<f32> {
        self.net.init_params(seed)
    }

    /// Each row's target is its stream (the targets of a row are its tokens shifted by one).
    fn check_targets(&self, targets: &[f32], rows: usize) -> Result<(), TargetError> {
        if targets.len() != rows {
            return Err(TargetError::Length { rows, cols: 1, expected: rows, found: targets.len() });
        }
        Ok(())
    }

    fn working_memory(&self, rows: usize) -> Option<usize> {
        crate::model::network_working_memory(&self.net, rows.min(self.spec.streams))
    }

    fn loss_and_gradient(&self, _: &[f32], _: &[f32], _: &[f32], _: usize, _: &mut [f32]) -> f64 {
        panic!("a language model reads rows of token indices (Rows::with_ids)")
    }

    fn loss_and_gradient_rows(&self, params: &[f32], data: Rows<'_>, indices: &[usize], grad: &mut [f32]) -> f64 {
        let step = TrainingStep { seed: 0, step: 0, update_buffers: false, sparse: false };
        let (inputs, offsets, targets) = self.split_rows(&data, indices.iter().copied());
        self.net.train_tokens_with_state(params, &inputs, &offsets, &targets, grad, step, Carry::default())
    }

    fn train_step(
        &self,
        params: &[f32],
        data: Rows<'_>,
        indices: Option<&[usize]>,
        seed: u64,
        step: u64,
        grad: &mut [f32],
    ) -> f64 {
        let step = TrainingStep { seed, step, update_buffers: true, sparse: false };
        match indices {
            Some(batch) => self.train_batch(params, data, batch, step, grad),
            None => {
                let all: Vec<usize> = (0..data.rows).collect();
                self.train_batch(params, data, &all, step, grad)
            }
        }
    }

    fn forward(&self, _: &[f32], _: &[f32], _: usize, _: &mut [f32]) {
        panic!("a language model reads rows of token indices (Rows::with_ids)")
    }

    fn forward_rows(&self, params: &[f32], data: Rows<'_>, out: &mut [f32]) {
        let (inputs, offsets, _) = self.split_rows(&data, 0..data.rows);
        self.net.predict_tokens(params, &inputs, &offsets, out);
    }

    /// Evaluation reads `streams` rows at a time.
    fn evaluation_memory(&self, rows: usize) -> Option<usize> {
        rows.min(self.spec.streams).checked_mul(self.outputs())?.checked_mul(2)
    }

    fn evaluate_rows(&self, params: &[f32], data: Rows<'_>) -> Option<Result<Metrics, RowsError>> {
        Some(self.measure(params, data).map_err(|e| RowsError::Tokens { what: "the rows".into(), message: e }))
    }

    fn check_data(&self, data: &Rows<'_>, what: &str) -> Result<(), RowsError> {
        self.check_token_rows(data).map_err(|message| RowsError::Tokens { what: what.to_string(), message })
    }
}
