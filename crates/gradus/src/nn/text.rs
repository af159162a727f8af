//! Layers over token indices: `embedding` (a vector per token of a sequence) and
//! `embedding_bag` (the mean or sum of a bag of tokens' vectors), as PyTorch's `Embedding` and
//! `EmbeddingBag`. Their weight is a table `[num_embeddings][embedding_dim]`; the gradient of a
//! pass touches only the rows of the tokens it saw.

use std::ops::Range;

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use rayon::prelude::*;

use super::dense::{Input, Tokens};
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

/// Below this many table elements read or written by a pass (tokens × dimension), the pass stays
/// on the calling thread: waking workers would cost more than it saves.
const PARALLEL_ELEMENTS: usize = 1 << 15;

/// How many tokens ahead the gather loops ask for a row: the rows of a large table are scattered,
/// so each token would otherwise wait on memory.
const PREFETCH_AHEAD: usize = 8;

/// Sets bit `id` of `bits`; whether it was clear (the first time `id` is marked).
#[inline]
pub(crate) fn mark(bits: &mut [u64], id: u32) -> bool {
    let (word, bit) = (id as usize / 64, 1u64 << (id % 64));
    let first = bits[word] & bit == 0;
    bits[word] |= bit;
    first
}

/// Asks the CPU to bring `row` into the cache (a hint: no effect on results).
#[inline(always)]
fn prefetch_row<T>(row: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let bytes = std::mem::size_of_val(row);
        let base = row.as_ptr().cast::<i8>();
        let mut at = 0;
        while at < bytes {
            // SAFETY: a prefetch never faults, and `base + at` lies within `row`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.add(at)) };
            at += 64;
        }
    }
}

impl Embedding {
    /// The forward pass of rows `first..` into `y` (whole rows of this layer's output).
    fn forward_rows<T: Real>(&self, table: &[T], tokens: Tokens<'_>, first: usize, y: &mut [T]) {
        let dim = self.dim;
        let vector = |id: u32| &table[id as usize * dim..(id as usize + 1) * dim];
        match self.steps {
            Some(steps) => {
                for (r, out) in y.chunks_exact_mut(steps * dim).enumerate() {
                    let ids = tokens.row(first + r);
                    for (k, (o, &id)) in out.chunks_exact_mut(dim).zip(ids).enumerate() {
                        if let Some(&ahead) = ids.get(k + PREFETCH_AHEAD) {
                            prefetch_row(vector(ahead));
                        }
                        o.copy_from_slice(vector(id));
                    }
                }
            }
            None => {
                for (r, out) in y.chunks_exact_mut(dim).enumerate() {
                    let bag = tokens.row(first + r);
                    let next = tokens.row((first + r + 1).min(tokens.offsets.len() - 2));
                    out.fill(T::ZERO);
                    for (k, &id) in bag.iter().enumerate() {
                        // The row a few tokens on, in this bag or the next.
                        let ahead = bag.get(k + PREFETCH_AHEAD).or_else(|| next.get(k + PREFETCH_AHEAD - bag.len()));
                        if let Some(&ahead) = ahead {
                            prefetch_row(vector(ahead));
                        }
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

    /// The backward pass into the table rows of ids `ids` only (`table` holds those rows,
    /// starting at row `ids.start`): every row of the batch is read, in order, so each row of
    /// the table gets its terms in the same order however the ids are split. On the sparse path
    /// the rows of the tokens seen are written only (the first term of each is added to zero, as
    /// the dense pass does, rather than clearing the row first); otherwise the whole table.
    fn backward_ids<T: Real>(
        &self,
        sparse: bool,
        tokens: Tokens<'_>,
        rows: usize,
        dy: &[T],
        ids: Range<u32>,
        table: &mut [T],
    ) {
        let dim = self.dim;
        let mine = |id: u32| ids.contains(&id);
        let row = |id: u32| (id - ids.start) as usize * dim..(id - ids.start + 1) as usize * dim;
        // Which rows hold a term already (sparse path); the dense path clears the whole table.
        let mut written = if sparse { vec![0u64; (ids.len()).div_ceil(64)] } else { Vec::new() };
        if !sparse {
            table.fill(T::ZERO);
        }
        let mut add = |id: u32, d: &[T], scale: T| {
            let target = &mut table[row(id)];
            if sparse && mark(&mut written, id - ids.start) {
                // `0 + x` rather than `x`: the same bits as clearing and adding, −0 included.
                target.iter_mut().zip(d).for_each(|(t, &x)| *t = T::ZERO + x * scale);
                return;
            }
            Self::add_scaled(target, d, scale);
        };
        for r in 0..rows {
            let bag = tokens.row(r);
            match self.steps {
                Some(steps) => {
                    for (d, &id) in dy[r * steps * dim..(r + 1) * steps * dim].chunks_exact(dim).zip(bag) {
                        if mine(id) {
                            add(id, d, T::ONE);
                        }
                    }
                }
                None => {
                    let d = &dy[r * dim..(r + 1) * dim];
                    let scale = match self.mode {
                        BagMode::Mean if !bag.is_empty() => T::from_f64(1.0 / bag.len() as f64),
                        _ => T::ONE,
                    };
                    for &id in bag.iter().filter(|&&id| mine(id)) {
                        add(id, d, scale);
                    }
                }
            }
        }
    }
}

impl Layer for Embedding {
    fn forward<T: Real>(&self, _: &Pass<'_>, params: &[T], x: Input<'_, T>, rows: usize, y: &mut [T], _: &mut [T]) {
        let tokens = x.tokens();
        let table = &params[self.weight.clone()];
        let width = self.steps.unwrap_or(1) * self.dim;
        let y = &mut y[..rows * width];
        let elements = (tokens.offsets[rows] - tokens.offsets[0]) * self.dim;
        let threads = rayon::current_num_threads();
        if elements < PARALLEL_ELEMENTS || threads == 1 || rows < 2 {
            self.forward_rows(table, tokens, 0, y);
        } else {
            // Rows are independent: any split gives the same bits.
            let per_task = rows.div_ceil(2 * threads);
            y.par_chunks_mut(per_task * width)
                .enumerate()
                .for_each(|(task, y)| self.forward_rows(table, tokens, task * per_task, y));
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
        let table = &mut grad[self.weight.clone()];
        let all = &tokens.ids[tokens.offsets[0]..tokens.offsets[rows]];
        let threads = rayon::current_num_threads();
        let num = self.num as u32;
        if all.len() * self.dim < PARALLEL_ELEMENTS || threads == 1 || num < 2 {
            self.backward_ids(pass.sparse, tokens, rows, dy, 0..num, table);
            return;
        }
        // The table split into ranges of ids holding about as many of the batch's tokens each
        // (counted in 256 coarse bins), one task each.
        const BINS: usize = 256;
        let bin_width = (num as usize).div_ceil(BINS);
        let mut counts = [0usize; BINS];
        for &id in all {
            counts[id as usize / bin_width] += 1;
        }
        let tasks = 2 * threads;
        let mut bounds = vec![0u32];
        let mut seen = 0;
        for (bin, &count) in counts.iter().enumerate() {
            seen += count;
            if seen * tasks >= bounds.len() * all.len() && bounds.len() < tasks {
                bounds.push(((bin + 1) * bin_width).min(num as usize) as u32);
            }
        }
        if *bounds.last().expect("starts with 0") < num {
            bounds.push(num);
        }
        bounds.dedup();
        let mut pieces = Vec::with_capacity(bounds.len());
        let mut rest = table;
        for ids in bounds.windows(2) {
            let (piece, tail) = std::mem::take(&mut rest).split_at_mut((ids[1] - ids[0]) as usize * self.dim);
            pieces.push((ids[0]..ids[1], piece));
            rest = tail;
        }
        pieces.into_par_iter().for_each(|(ids, piece)| self.backward_ids(pass.sparse, tokens, rows, dy, ids, piece));
    }
}
