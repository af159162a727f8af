//! Layers over token indices: `embedding` (a vector per token of a sequence) and
//! `embedding_bag` (the mean or sum of a bag of tokens' vectors), as PyTorch's `Embedding` and
//! `EmbeddingBag`. Their weight is a table `[num_embeddings][embedding_dim]`; the gradient of a
//! pass touches only the rows of the tokens it saw.

use std::ops::Range;

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::dense::Input;
use super::layers::{Layer, Pass};
use crate::loss::Real;

/// How `embedding_bag` reduces a bag's vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BagMode {
    /// The mean of the bag's vectors (zeros for an empty bag, as PyTorch).
    Mean,
    /// Their sum.
    Sum,
}

/// `torch.nn.Embedding` over sequences of `steps` tokens, or `torch.nn.EmbeddingBag` over bags of
/// any length (`steps` is `None`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Embedding {
    pub(crate) num: usize,
    pub(crate) dim: usize,
    /// Tokens per row of a sequence; `None` for bags.
    pub(crate) steps: Option<usize>,
    pub(crate) mode: BagMode,
    pub(crate) weight: Range<usize>,
}

impl Embedding {
    /// PyTorch's initialization: every entry drawn from `N(0, 1)`.
    pub(crate) fn init(&self, rng: &mut ChaCha8Rng, params: &mut [f32]) {
        for w in &mut params[self.weight.clone()] {
            let z: f64 = StandardNormal.sample(rng);
            *w = z as f32;
        }
    }

    /// Adds `scale × v` to `row`.
    #[inline]
    fn add_scaled<T: Real>(row: &mut [T], v: &[T], scale: T) {
        row.iter_mut().zip(v).for_each(|(r, &x)| *r += x * scale);
    }
}

impl Layer for Embedding {
    fn forward<T: Real>(&self, _: &Pass<'_>, params: &[T], x: Input<'_, T>, rows: usize, y: &mut [T], _: &mut [T]) {
        let tokens = x.tokens();
        let table = &params[self.weight.clone()];
        let dim = self.dim;
        let vector = |id: u32| &table[id as usize * dim..(id as usize + 1) * dim];
        match self.steps {
            Some(steps) => {
                for (r, out) in y.chunks_exact_mut(steps * dim).take(rows).enumerate() {
                    for (o, &id) in out.chunks_exact_mut(dim).zip(tokens.row(r)) {
                        o.copy_from_slice(vector(id));
                    }
                }
            }
            None => {
                for (r, out) in y.chunks_exact_mut(dim).take(rows).enumerate() {
                    out.fill(T::ZERO);
                    let bag = tokens.row(r);
                    for &id in bag {
                        Self::add_scaled(out, vector(id), T::ONE);
                    }
                    if self.mode == BagMode::Mean && !bag.is_empty() {
                        let scale = T::from_f64(1.0 / bag.len() as f64);
                        out.iter_mut().for_each(|o| *o *= scale);
                    }
                }
            }
        }
    }

    fn backward<T: Real>(
        &self,
        pass: &Pass<'_>,
        _: &[T],
        x: Input<'_, T>,
        _: &[T],
        _: &[T],
        rows: usize,
        dy: &[T],
        _: Option<&mut [T]>,
        grad: &mut [T],
    ) {
        let tokens = x.tokens();
        let dim = self.dim;
        let table = &mut grad[self.weight.clone()];
        if pass.sparse {
            // The rest of the table is zero already (or not read): clear only the rows written.
            for r in 0..rows {
                for &id in tokens.row(r) {
                    table[id as usize * dim..(id as usize + 1) * dim].fill(T::ZERO);
                }
            }
        } else {
            table.fill(T::ZERO);
        }
        for r in 0..rows {
            let ids = tokens.row(r);
            match self.steps {
                Some(steps) => {
                    for (d, &id) in dy[r * steps * dim..(r + 1) * steps * dim].chunks_exact(dim).zip(ids) {
                        Self::add_scaled(&mut table[id as usize * dim..(id as usize + 1) * dim], d, T::ONE);
                    }
                }
                None => {
                    let d = &dy[r * dim..(r + 1) * dim];
                    let scale = match self.mode {
                        BagMode::Mean if !ids.is_empty() => T::from_f64(1.0 / ids.len() as f64),
                        _ => T::ONE,
                    };
                    for &id in ids {
                        Self::add_scaled(&mut table[id as usize * dim..(id as usize + 1) * dim], d, scale);
                    }
                }
            }
        }
    }
}
