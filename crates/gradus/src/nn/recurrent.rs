//! Recurrent layers over sequences, as PyTorch's `LSTM` and `GRU` with `batch_first=True`: rows of
//! `[time, input]` values in, rows of `[time, hidden]` out (the top layer's hidden state at every
//! step), one or more stacked layers, PyTorch's gate order and parameter layout.
//!
//! LSTM (gates i, f, g, o stacked in `weight_ih_lK` `[4H][in]`, `weight_hh_lK` `[4H][H]`):
//!
//! ```text
//! (i, f, g, o) = (σ, σ, tanh, σ)(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)
//! c_t = f ⊙ c_{t−1} + i ⊙ g        h_t = o ⊙ tanh(c_t)
//! ```
//!
//! GRU (gates r, z, n stacked in `[3H][in]` and `[3H][H]`):
//!
//! ```text
//! r = σ(W_ir x + b_ir + W_hr h + b_hr)     z = σ(W_iz x + b_iz + W_hz h + b_hz)
//! n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))     h' = (1 − z) ⊙ n + z ⊙ h
//! ```
//!
//! Each row starts from a zero state, or from the state a caller hands in (`Pass::state`: a
//! language model's rows continue the rows of the previous batch, truncated backpropagation
//! through time). Backward runs through the time steps in reverse (backpropagation through time
//! over the row's steps) and stops at the initial state, which is a constant of the row; the
//! weight gradients are summed over every row and step by matrix products in a fixed order.

use std::ops::Range;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::dense::Input;
use super::layers::{grow, Layer, Pass};
use crate::loss::Real;

/// Which recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cell {
    Lstm,
    Gru,
}

impl Cell {
    /// Gates per hidden unit.
    fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
}

/// One stacked layer's parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StackedParams {
    pub(crate) input: usize,
    pub(crate) w_ih: Range<usize>,
    pub(crate) w_hh: Range<usize>,
    pub(crate) b_ih: Range<usize>,
    pub(crate) b_hh: Range<usize>,
}

/// An LSTM or GRU of one or more stacked layers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recurrent {
    pub(crate) cell: Cell,
    pub(crate) hidden: usize,
    pub(crate) steps: usize,
    pub(crate) layers: Vec<StackedParams>,
}

/// `C ← α A B + β C` on row-major slices with row strides `lda`, `ldb`, `ldc`; `A` transposed
/// when `ta` (then `lda` is the stride of its stored rows), `B` likewise.
#[allow(clippy::too_many_arguments)]
fn gemm<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    lda: usize,
    ta: bool,
    b: &[T],
    ldb: usize,
    tb: bool,
    beta: T,
    c: &mut [T],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let (rsa, csa) = if ta { (1, lda as isize) } else { (lda as isize, 1) };
    let (rsb, csb) = if tb { (1, ldb as isize) } else { (ldb as isize, 1) };
    // Every element addressed lies in its slice: checked on the largest index.
    let last_a = if ta { (k - 1) * lda + m - 1 } else { (m - 1) * lda + k - 1 };
    let last_b = if tb { (n - 1) * ldb + k - 1 } else { (k - 1) * ldb + n - 1 };
    assert!(k == 0 || (last_a < a.len() && last_b < b.len()), "matrix operands out of bounds");
    assert!((m - 1) * ldc + n - 1 < c.len(), "matrix result out of bounds");
    if k == 0 {
        c.chunks_mut(ldc).take(m).for_each(|row| row[..n].iter_mut().for_each(|v| *v *= beta));
        return;
    }
    // SAFETY: the bounds of every operand were checked above.
    unsafe {
        T::gemm(m, k, n, T::ONE, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), ldc as isize, 1);
    }
}

/// The logistic function by the vectorizing exponential ([`Real::exp_fast`]): the gates of
/// every step would otherwise spend more time in the library's `exp` than in their products.
#[inline(always)]
fn sigmoid<T: Real>(v: T) -> T {
    let e = (-v.abs()).exp_fast();
    let inverse = T::ONE / (T::ONE + e);
    if v >= T::ZERO {
        inverse
    } else {
        e * inverse
    }
}

/// `tanh` by the vectorizing exponential: `sign(v) (1 − 2 / (e^{2|v|} + 1))`, within a few
/// units in the last place (absolute) of the library's.
#[inline(always)]
fn tanh<T: Real>(v: T) -> T {
    let e = (T::from_f64(2.0) * v.abs()).exp_fast();
    let t = T::ONE - T::from_f64(2.0) / (e + T::ONE);
    if v >= T::ZERO {
        t
    } else {
        -t
    }
}

impl Recurrent {
    /// PyTorch's initialization: every weight and bias uniform in `±1/√hidden`.
    pub(crate) fn init(&self, rng: &mut ChaCha8Rng, params: &mut [f32]) {
        let bound = 1.0 / (self.hidden as f64).sqrt();
        for layer in &self.layers {
            for range in [&layer.w_ih, &layer.w_hh, &layer.b_ih, &layer.b_hh] {
                for w in &mut params[range.clone()] {
                    let u: f64 = rng.random();
                    *w = (bound * (2.0 * u - 1.0)) as f32;
                }
            }
        }
    }

    /// Saved per row and stacked layer: the gates after their nonlinearities, the cell states
    /// (LSTM) or `W_hn h + b_hn` (GRU), and the hidden states, at every step.
    fn per_layer(&self) -> usize {
        let (g, h) = (self.cell.gates(), self.hidden);
        self.steps * (g * h + 2 * h)
    }

    /// Values saved per row for backward: each stacked layer's steps, then each stacked layer's
    /// initial hidden and cell states ([`Recurrent::state_width`]).
    pub(crate) fn saved_per_row(&self) -> usize {
        self.layers.len() * self.per_layer() + self.state_width()
    }

    /// The values of a row's state: the hidden and the cell state (zeros for a GRU) of every
    /// stacked layer, `[layer][h, c]`.
    pub(crate) fn state_width(&self) -> usize {
        self.layers.len() * 2 * self.hidden
    }

    /// Where stacked layer `k`'s initial hidden state (then its initial cell state) lies in a
    /// row's saved values.
    fn initial_at(&self, k: usize) -> usize {
        self.layers.len() * self.per_layer() + k * 2 * self.hidden
    }

    /// Writes the state after the last step of a row (saved by forward) into `state`
    /// (`state_width` values): what the next chunk of the row's sequence starts from.
    pub(crate) fn final_state<T: Real>(&self, saved_row: &[T], state: &mut [f32]) {
        let (h, t) = (self.hidden, self.steps);
        for (k, out) in state.chunks_exact_mut(2 * h).enumerate().take(self.layers.len()) {
            let (_, cell_at, hidden_at) = self.offsets(k);
            let (hidden, cell) = out.split_at_mut(h);
            for (o, &v) in hidden.iter_mut().zip(&saved_row[hidden_at + (t - 1) * h..hidden_at + t * h]) {
                *o = v.to_f64() as f32;
            }
            match self.cell {
                Cell::Lstm => {
                    for (o, &v) in cell.iter_mut().zip(&saved_row[cell_at + (t - 1) * h..cell_at + t * h]) {
                        *o = v.to_f64() as f32;
                    }
                }
                Cell::Gru => cell.fill(0.0),
            }
        }
    }

    /// The offsets of layer `k`'s gates, cell (or `hn`) and hidden states within a row's saved values.
    fn offsets(&self, k: usize) -> (usize, usize, usize) {
        let (g, h, t) = (self.cell.gates(), self.hidden, self.steps);
        let base = k * self.per_layer();
        (base, base + t * g * h, base + t * (g * h + h))
    }
}

impl Layer for Recurrent {
    fn forward<T: Real>(
        &self,
        pass: &Pass<'_>,
        params: &[T],
        x: Input<'_, T>,
        rows: usize,
        y: &mut [T],
        saved: &mut [T],
    ) {
        let x = x.dense();
        let (g, h, steps) = (self.cell.gates(), self.hidden, self.steps);
        let gh = g * h;
        let per_row = self.saved_per_row();
        let width = self.state_width();
        let initial = self.initial_at(0);
        for r in 0..rows {
            let slot = &mut saved[r * per_row + initial..r * per_row + initial + width];
            match pass.state {
                Some(state) => {
                    let from = (pass.first_row + r) * width;
                    slot.iter_mut().zip(&state[from..from + width]).for_each(|(s, &v)| *s = T::from_f64(v as f64));
                }
                None => slot.fill(T::ZERO),
            }
        }
        T::with_scratch(3, |scratch| {
            let hidden_part = grow(scratch, rows * gh);
            for (k, layer) in self.layers.iter().enumerate() {
                let (gates_at, _, hidden_at) = self.offsets(k);
                let (w_ih, w_hh) = (&params[layer.w_ih.clone()], &params[layer.w_hh.clone()]);
                let (b_ih, b_hh) = (&params[layer.b_ih.clone()], &params[layer.b_hh.clone()]);
                // The input projections of every step: gates ← x W_ihᵀ + b_ih, row by row.
                for r in 0..rows {
                    let (below, row) = saved[r * per_row..(r + 1) * per_row].split_at_mut(gates_at);
                    let input: &[T] = if k == 0 {
                        &x[r * steps * layer.input..(r + 1) * steps * layer.input]
                    } else {
                        let (_, _, previous_hidden) = self.offsets(k - 1);
                        &below[previous_hidden..previous_hidden + steps * h]
                    };
                    let gates = &mut row[..steps * gh];
                    for step in gates.chunks_exact_mut(gh) {
                        step.copy_from_slice(b_ih);
                    }
                    gemm(steps, layer.input, gh, input, layer.input, false, w_ih, layer.input, true, T::ONE, gates, gh);
                }
                for t in 0..steps {
                    // The hidden projections of every row: W_hh h_{t−1} + b_hh (h_{−1} the
                    // initial state, skipped when it is zero).
                    for row in hidden_part.chunks_exact_mut(gh) {
                        row.copy_from_slice(b_hh);
                    }
                    if t > 0 || pass.state.is_some() {
                        let at = if t > 0 { hidden_at + (t - 1) * h } else { self.initial_at(k) };
                        gemm(rows, h, gh, &saved[at..], per_row, false, w_hh, h, true, T::ONE, hidden_part, gh);
                    }
                    for r in 0..rows {
                        let row = &mut saved[r * per_row..(r + 1) * per_row];
                        let hp = &hidden_part[r * gh..(r + 1) * gh];
                        self.step_forward(row, k, t, hp);
                    }
                }
            }
            let (_, _, top) = self.offsets(self.layers.len() - 1);
            for (r, out) in y.chunks_exact_mut(steps * h).take(rows).enumerate() {
                out.copy_from_slice(&saved[r * per_row + top..r * per_row + top + steps * h]);
            }
        });
    }

    fn backward<T: Real>(
        &self,
        _: &Pass<'_>,
        params: &[T],
        x: Input<'_, T>,
        _: &[T],
        saved: &[T],
        rows: usize,
        dy: &[T],
        dx: Option<&mut [T]>,
        grad: &mut [T],
    ) {
        let x = x.dense();
        let (g, h, steps) = (self.cell.gates(), self.hidden, self.steps);
        let gh = g * h;
        let per_row = self.saved_per_row();
        let top_input = self.layers[0].input;
        T::with_scratch(3, |scratch| {
            // dh from above (rows × steps × h), the gates' gradients on the input and hidden
            // sides, the layer's input and previous hidden states as matrices, dh_next, dc_next.
            let widest_input = self.layers.iter().map(|l| l.input).max().unwrap_or(0).max(h);
            let rs = rows * steps;
            let space =
                grow(scratch, rs * h + 2 * rs * gh + rs * widest_input + rs * h + 2 * rows * h + rs * widest_input);
            let (dh_above, rest) = space.split_at_mut(rs * h);
            let (d_input_gates, rest) = rest.split_at_mut(rs * gh);
            let (d_hidden_gates, rest) = rest.split_at_mut(rs * gh);
            let (inputs, rest) = rest.split_at_mut(rs * widest_input);
            let (previous, rest) = rest.split_at_mut(rs * h);
            let (dh_next, rest) = rest.split_at_mut(rows * h);
            let (dc_next, rest) = rest.split_at_mut(rows * h);
            let below = &mut rest[..rs * widest_input];
            dh_above.copy_from_slice(&dy[..rs * h]);
            for (k, layer) in self.layers.iter().enumerate().rev() {
                let (_, _, hidden_at) = self.offsets(k);
                let w_hh = &params[layer.w_hh.clone()];
                let n_in = layer.input;
                // This layer's inputs and previous hidden states, one row per (row, step).
                for r in 0..rows {
                    let row = &saved[r * per_row..(r + 1) * per_row];
                    let input: &[T] = if k == 0 {
                        &x[r * steps * top_input..(r + 1) * steps * top_input]
                    } else {
                        let (_, _, previous_hidden) = self.offsets(k - 1);
                        &row[previous_hidden..previous_hidden + steps * h]
                    };
                    inputs[r * steps * n_in..(r + 1) * steps * n_in].copy_from_slice(input);
                    let prev = &mut previous[r * steps * h..(r + 1) * steps * h];
                    prev[..h].copy_from_slice(&row[self.initial_at(k)..self.initial_at(k) + h]);
                    prev[h..].copy_from_slice(&row[hidden_at..hidden_at + (steps - 1) * h]);
                }
                dh_next.fill(T::ZERO);
                dc_next.fill(T::ZERO);
                for t in (0..steps).rev() {
                    for r in 0..rows {
                        let row = &saved[r * per_row..(r + 1) * per_row];
                        let at = (r * steps + t) * gh;
                        self.step_backward(
                            row,
                            k,
                            t,
                            &dh_above[(r * steps + t) * h..(r * steps + t + 1) * h],
                            &mut dh_next[r * h..(r + 1) * h],
                            &mut dc_next[r * h..(r + 1) * h],
                            &mut d_input_gates[at..at + gh],
                            &mut d_hidden_gates[at..at + gh],
                        );
                    }
                    // dh_{t−1} (recurrent part) = d_hidden_gates_t W_hh, added to the direct part
                    // step_backward left in dh_next.
                    if t > 0 {
                        let d_gates_t = &d_hidden_gates[t * gh..];
                        gemm(rows, gh, h, d_gates_t, steps * gh, false, w_hh, h, false, T::ONE, dh_next, h);
                    }
                }
                // ∂W_ih = Σ d_input_gatesᵀ x, ∂W_hh = Σ d_hidden_gatesᵀ h_prev, biases the column sums.
                let inputs = &inputs[..rs * n_in];
                gemm(
                    gh,
                    rs,
                    n_in,
                    d_input_gates,
                    gh,
                    true,
                    inputs,
                    n_in,
                    false,
                    T::ZERO,
                    &mut grad[layer.w_ih.clone()],
                    n_in,
                );
                gemm(
                    gh,
                    rs,
                    h,
                    d_hidden_gates,
                    gh,
                    true,
                    previous,
                    h,
                    false,
                    T::ZERO,
                    &mut grad[layer.w_hh.clone()],
                    h,
                );
                for (range, d) in [(&layer.b_ih, &*d_input_gates), (&layer.b_hh, &*d_hidden_gates)] {
                    let b = &mut grad[range.clone()];
                    b.fill(T::ZERO);
                    for row in d.chunks_exact(gh) {
                        b.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
                    }
                }
                // The gradient of this layer's input: dh from above for the layer below, or ∂x.
                let w_ih = &params[layer.w_ih.clone()];
                if k > 0 {
                    gemm(
                        rs,
                        gh,
                        n_in,
                        d_input_gates,
                        gh,
                        false,
                        w_ih,
                        n_in,
                        false,
                        T::ZERO,
                        &mut below[..rs * n_in],
                        n_in,
                    );
                    dh_above.copy_from_slice(&below[..rs * h]);
                } else if let Some(dx) = dx {
                    gemm(
                        rs,
                        gh,
                        n_in,
                        d_input_gates,
                        gh,
                        false,
                        w_ih,
                        n_in,
                        false,
                        T::ZERO,
                        &mut dx[..rs * n_in],
                        n_in,
                    );
                    return;
                }
            }
        });
    }
}

impl Recurrent {
    /// Step `t` of stacked layer `k` for one row: the gates from their pre-activations (the input
    /// projection already in the saved gates, plus `hidden_part`), then the cell and hidden states.
    fn step_forward<T: Real>(&self, row: &mut [T], k: usize, t: usize, hidden_part: &[T]) {
        let h = self.hidden;
        let gh = self.cell.gates() * h;
        let (gates_at, cell_at, hidden_at) = self.offsets(k);
        let initial_at = self.initial_at(k);
        let (head, tail) = row.split_at_mut(cell_at);
        let gates = &mut head[gates_at + t * gh..gates_at + (t + 1) * gh];
        let (cells, rest) = tail.split_at_mut(hidden_at - cell_at);
        let (hiddens, initial) = rest.split_at_mut(initial_at - hidden_at);
        let (initial_hidden, initial_cell) = initial[..2 * h].split_at(h);
        let (previous_hidden, hidden): (&[T], &mut [T]) = if t == 0 {
            (initial_hidden, &mut hiddens[..h])
        } else {
            let (before, after) = hiddens.split_at_mut(t * h);
            (&before[(t - 1) * h..t * h], &mut after[..h])
        };
        match self.cell {
            Cell::Lstm => {
                let (before, after) = cells.split_at_mut(t * h);
                let previous_cell: &[T] = if t == 0 { initial_cell } else { &before[(t - 1) * h..] };
                let cell = &mut after[..h];
                for j in 0..h {
                    let i = sigmoid(gates[j] + hidden_part[j]);
                    let f = sigmoid(gates[h + j] + hidden_part[h + j]);
                    let g = tanh(gates[2 * h + j] + hidden_part[2 * h + j]);
                    let o = sigmoid(gates[3 * h + j] + hidden_part[3 * h + j]);
                    (gates[j], gates[h + j], gates[2 * h + j], gates[3 * h + j]) = (i, f, g, o);
                    let c = f * previous_cell[j] + i * g;
                    cell[j] = c;
                    hidden[j] = o * tanh(c);
                }
            }
            Cell::Gru => {
                let hn = &mut cells[t * h..(t + 1) * h];
                for j in 0..h {
                    let r = sigmoid(gates[j] + hidden_part[j]);
                    let z = sigmoid(gates[h + j] + hidden_part[h + j]);
                    hn[j] = hidden_part[2 * h + j];
                    let n = tanh(gates[2 * h + j] + r * hn[j]);
                    (gates[j], gates[h + j], gates[2 * h + j]) = (r, z, n);
                    hidden[j] = (T::ONE - z) * n + z * previous_hidden[j];
                }
            }
        }
    }

    /// Backward through step `t` of stacked layer `k` for one row: from `dh_above` (the loss's
    /// gradient at this step's output) plus the recurrent `dh_next`, writes the gates' gradients
    /// on the input and hidden sides, and leaves in `dh_next` the direct part of `∂h_{t−1}` (the
    /// caller adds the part through `W_hh`) and in `dc_next` `∂c_{t−1}` (LSTM).
    #[allow(clippy::too_many_arguments)]
    fn step_backward<T: Real>(
        &self,
        row: &[T],
        k: usize,
        t: usize,
        dh_above: &[T],
        dh_next: &mut [T],
        dc_next: &mut [T],
        d_input: &mut [T],
        d_hidden: &mut [T],
    ) {
        let h = self.hidden;
        let gh = self.cell.gates() * h;
        let (gates_at, cell_at, hidden_at) = self.offsets(k);
        let gates = &row[gates_at + t * gh..gates_at + (t + 1) * gh];
        let initial_at = self.initial_at(k);
        match self.cell {
            Cell::Lstm => {
                let cell = &row[cell_at + t * h..cell_at + (t + 1) * h];
                let previous_cell = if t == 0 {
                    &row[initial_at + h..initial_at + 2 * h]
                } else {
                    &row[cell_at + (t - 1) * h..cell_at + t * h]
                };
                for j in 0..h {
                    let (i, f, g, o) = (gates[j], gates[h + j], gates[2 * h + j], gates[3 * h + j]);
                    let dh = dh_above[j] + dh_next[j];
                    let tc = tanh(cell[j]);
                    let d_o = dh * tc * o * (T::ONE - o);
                    let dc = dh * o * (T::ONE - tc * tc) + dc_next[j];
                    let d_i = dc * g * i * (T::ONE - i);
                    let d_g = dc * i * (T::ONE - g * g);
                    let d_f = dc * previous_cell[j] * f * (T::ONE - f);
                    (d_input[j], d_input[h + j], d_input[2 * h + j], d_input[3 * h + j]) = (d_i, d_f, d_g, d_o);
                    dc_next[j] = dc * f;
                    dh_next[j] = T::ZERO;
                }
                d_hidden.copy_from_slice(d_input);
            }
            Cell::Gru => {
                let hn = &row[cell_at + t * h..cell_at + (t + 1) * h];
                let previous = if t == 0 {
                    &row[initial_at..initial_at + h]
                } else {
                    &row[hidden_at + (t - 1) * h..hidden_at + t * h]
                };
                for j in 0..h {
                    let (r, z, n) = (gates[j], gates[h + j], gates[2 * h + j]);
                    let dh = dh_above[j] + dh_next[j];
                    let prev = previous[j];
                    let dn = dh * (T::ONE - z) * (T::ONE - n * n);
                    let dz = dh * (prev - n) * z * (T::ONE - z);
                    let dr = dn * hn[j] * r * (T::ONE - r);
                    (d_input[j], d_input[h + j], d_input[2 * h + j]) = (dr, dz, dn);
                    (d_hidden[j], d_hidden[h + j], d_hidden[2 * h + j]) = (dr, dz, dn * r);
                    dh_next[j] = dh * z;
                }
            }
        }
    }
}
