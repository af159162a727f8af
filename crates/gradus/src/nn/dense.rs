//! The dense (fully connected) passes shared by the `linear` layer and the linear models:
//! `y = x Wᵀ + b` forward, `∂W = δᵀ x` and `∂x = δ W` backward, with `W` stored `[out][in]` as
//! PyTorch's `Linear`. In `f32` they run the hand-written kernels of [`super::kernels`]; in `f64`
//! (reference checks, finite differences) a general matrix product.
//!
//! A pass big enough to be worth it is cut into pieces that run on rayon's pool; every output
//! element is computed by the same operations whichever piece holds it, so the split (and the
//! thread count) never changes a bit.

use std::any::TypeId;
use std::ops::Range;

use rayon::prelude::*;

use super::kernels::{self, RowSource};
use crate::loss::Real;

/// A block's input rows: a row-major matrix, or (in `f32` only) rows of the training set picked
/// by index, which the kernels read where they lie.
#[derive(Clone, Copy)]
pub(crate) enum Input<'a, T> {
    /// A row-major matrix.
    Dense(&'a [T]),
    /// Rows of the training set picked by index (`f32` only).
    Picked(RowSource<'a>),
    /// Rows of token indices (the input of `embedding` and `embedding_bag`).
    Tokens(Tokens<'a>),
}

/// Rows of token indices, as compressed rows: row `r` holds `ids[offsets[r]..offsets[r + 1]]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tokens<'a> {
    pub(crate) ids: &'a [u32],
    /// `rows + 1` positions into `ids`, from any start.
    pub(crate) offsets: &'a [usize],
}

impl<'a> Tokens<'a> {
    /// Row `r`'s indices.
    pub(crate) fn row(&self, r: usize) -> &'a [u32] {
        &self.ids[self.offsets[r]..self.offsets[r + 1]]
    }
}

impl<'a, T: Real> Input<'a, T> {
    /// Rows `range` (of `width` values each).
    pub(crate) fn rows_range(self, range: Range<usize>, width: usize) -> Self {
        match self {
            Input::Dense(x) => Input::Dense(&x[range.start * width..range.end * width]),
            Input::Picked(source) => Input::Picked(source.slice(range)),
            Input::Tokens(tokens) => {
                Input::Tokens(Tokens { ids: tokens.ids, offsets: &tokens.offsets[range.start..=range.end] })
            }
        }
    }

    /// The token rows (the first layer of a text network only).
    pub(crate) fn tokens(self) -> Tokens<'a> {
        match self {
            Input::Tokens(tokens) => tokens,
            _ => unreachable!("only an embedding layer takes token rows, and only from the network's input"),
        }
    }

    /// The rows for the `f32` kernels, when `T` is `f32`.
    pub(crate) fn source(self, width: usize) -> Option<RowSource<'a>> {
        match self {
            Input::Dense(x) => as_f32(x).map(|x| RowSource::dense(x, width)),
            Input::Picked(source) => Some(source),
            Input::Tokens(_) => unreachable!("token rows go to embedding layers only"),
        }
    }

    /// The matrix, for the generic passes (which never see picked rows: those are `f32` only, and
    /// `f32` always takes the kernels).
    pub(crate) fn dense(self) -> &'a [T] {
        match self {
            Input::Dense(x) => x,
            Input::Picked(_) => unreachable!("picked rows are f32 only and take the f32 kernels"),
            Input::Tokens(_) => unreachable!("token rows go to embedding layers only"),
        }
    }
}

/// `slice` as `f32`, when `T` is `f32`: the passes below take the hand-written kernels then.
pub(crate) fn as_f32<T: Real>(slice: &[T]) -> Option<&[f32]> {
    // SAFETY: `T` is `f32` itself, checked by its type id.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts(slice.as_ptr().cast::<f32>(), slice.len()) })
}

/// `slice` as `f32`, mutably, when `T` is `f32`.
pub(crate) fn as_f32_mut<T: Real>(slice: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: `T` is `f32` itself, checked by its type id.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts_mut(slice.as_mut_ptr().cast::<f32>(), slice.len()) })
}

/// Rows from which a layer pass with a dense input takes the blocked matrix product rather than
/// the hand-written kernels, when its weights hold at least [`LARGE_WEIGHTS`] values. The
/// kernels are made for the blocks of at most [`super::DENSE_BLOCK_ROWS`] rows of a dense
/// network, whose weights stay in the caches; a layer at every step of a sequence (a language
/// model's output layer: eight rows of 35 steps, over a vocabulary) sees hundreds of rows and
/// weights beyond the caches, which the kernels would read once per tile of four rows and the
/// product reads once per cache block.
pub(crate) const LARGE_ROWS: usize = 2 * super::DENSE_BLOCK_ROWS;
/// Weights from which [`LARGE_ROWS`] applies.
pub(crate) const LARGE_WEIGHTS: usize = 1 << 14;

/// Whether a pass of `rows` rows through an `n_in × n_out` layer takes the matrix product.
fn large(input: &Input<'_, impl Real>, rows: usize, n_in: usize, n_out: usize) -> bool {
    matches!(input, Input::Dense(_)) && rows >= LARGE_ROWS && n_in.saturating_mul(n_out) >= LARGE_WEIGHTS
}

/// Multiply-adds below which a layer pass stays on the calling thread.
pub(crate) const SPLIT_WORK: usize = 1 << 20;

/// How many pieces to cut a pass of `work` multiply-adds over `items` rows (or columns) into,
/// each at least `granule` items. Any split gives the same bits: every output element is
/// computed by the same operations whichever piece holds it.
pub(crate) fn pieces(work: usize, items: usize, granule: usize) -> usize {
    if work < SPLIT_WORK {
        return 1;
    }
    rayon::current_num_threads().min(items.div_ceil(granule)).max(1)
}

/// `output (rows × n_out) = input (rows × n_in) · Wᵀ + bias`, `W` stored `[n_out][n_in]`.
pub(crate) fn layer_forward<T: Real>(
    input: Input<'_, T>,
    weight: &[T],
    bias: &[T],
    rows: usize,
    n_in: usize,
    output: &mut [T],
) {
    let n_out = bias.len();
    if large(&input, rows, n_in, n_out) {
        // Falls through to the matrix product.
    } else if let (Some(x), Some(w), Some(b), Some(out)) =
        (input.source(n_in), as_f32(weight), as_f32(bias), as_f32_mut(output))
    {
        let parts = pieces(rows * n_in * n_out, rows, 4);
        if parts > 1 {
            let chunk = rows.div_ceil(parts).next_multiple_of(4);
            out.par_chunks_mut(chunk * n_out).enumerate().for_each(|(p, out)| {
                let start = p * chunk;
                kernels::forward(x.slice(start..start + out.len() / n_out), w, b, n_in, out)
            });
        } else {
            kernels::forward(x.slice(0..rows), w, b, n_in, out);
        }
        return;
    }
    let input = input.dense();
    output.chunks_exact_mut(n_out).for_each(|row| row.copy_from_slice(bias));
    // SAFETY: the dimensions and strides address exactly the three slices.
    unsafe {
        T::gemm(
            rows,
            n_in,
            n_out,
            T::ONE,
            input.as_ptr(),
            n_in as isize,
            1,
            weight.as_ptr(),
            1,
            n_in as isize,
            T::ONE,
            output.as_mut_ptr(),
            n_out as isize,
            1,
        );
    }
}

/// `grad_w (n_out × n_in) = deltaᵀ (n_out × rows) · input (rows × n_in)`, overwritten.
pub(crate) fn layer_weight_grad<T: Real>(
    delta: &[T],
    input: Input<'_, T>,
    rows: usize,
    n_out: usize,
    grad_w: &mut [T],
) {
    let n_in = grad_w.len() / n_out;
    if large(&input, rows, n_in, n_out) {
        // Falls through to the matrix product.
    } else if let (Some(d), Some(x), Some(g)) = (as_f32(delta), input.source(n_in), as_f32_mut(grad_w)) {
        let parts = pieces(rows * n_in * n_out, n_out, 4);
        let chunk = n_out.div_ceil(parts).next_multiple_of(4).min(n_out);
        g.par_chunks_mut(chunk * n_in).enumerate().for_each(|(p, g)| {
            let start = p * chunk;
            kernels::outer(d, n_out, x, n_in, rows, start..start + g.len() / n_in, g);
        });
        return;
    }
    let input = input.dense();
    // SAFETY: the dimensions and strides address exactly the three slices.
    unsafe {
        T::gemm(
            n_out,
            rows,
            n_in,
            T::ONE,
            delta.as_ptr(),
            1,
            n_out as isize,
            input.as_ptr(),
            n_in as isize,
            1,
            T::ZERO,
            grad_w.as_mut_ptr(),
            n_in as isize,
            1,
        );
    }
}

/// `below (rows × n_in) = delta (rows × n_out) · W (n_out × n_in)`, overwritten.
pub(crate) fn layer_backprop<T: Real>(delta: &[T], weight: &[T], rows: usize, n_out: usize, below: &mut [T]) {
    let n_in = weight.len() / n_out;
    if large(&Input::Dense(delta), rows, n_in, n_out) {
        // Falls through to the matrix product.
    } else if let (Some(d), Some(w), Some(out)) = (as_f32(delta), as_f32(weight), as_f32_mut(below)) {
        // The kernel sums over its first operand's rows: hand it deltaᵀ (n_out × rows).
        let mut transposed = vec![0.0f32; n_out * rows];
        for (r, row) in d.chunks_exact(n_out).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                transposed[j * rows + r] = v;
            }
        }
        let parts = pieces(rows * n_in * n_out, rows, 4);
        let chunk = rows.div_ceil(parts).next_multiple_of(4).min(rows).max(1);
        out.par_chunks_mut(chunk * n_in).enumerate().for_each(|(p, out)| {
            let start = p * chunk;
            kernels::outer(
                &transposed,
                rows,
                RowSource::dense(w, n_in),
                n_in,
                n_out,
                start..start + out.len() / n_in,
                out,
            );
        });
        return;
    }
    // SAFETY: the dimensions and strides address exactly the three slices.
    unsafe {
        T::gemm(
            rows,
            n_out,
            n_in,
            T::ONE,
            delta.as_ptr(),
            n_out as isize,
            1,
            weight.as_ptr(),
            n_in as isize,
            1,
            T::ZERO,
            below.as_mut_ptr(),
            n_in as isize,
            1,
        );
    }
}
