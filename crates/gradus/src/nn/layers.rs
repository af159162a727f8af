//! The layers: each a forward pass that writes its output, and a backward pass that writes the
//! gradient of its parameters (overwriting its own segments of the gradient buffer) and, when
//! there is a layer below to receive it, the gradient of its input.
//!
//! Layers hold no state during a pass (`&self`): what backward needs is the layer's input and
//! output, which the network keeps, and for batch normalization the batch statistics it saves.
//! Random choices (dropout masks) come from a hash of `(seed, step, layer, row, element)`, so they
//! are the same whichever thread or block computes them, and backward regenerates them instead of
//! storing them. Every pass is generic over [`Real`]: models train in `f32`, and the same code
//! runs in `f64` against PyTorch's float64 reference values and finite differences.

use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use super::dense::{self, as_f32, as_f32_mut, Input};
use super::recurrent::Recurrent;
use super::spec::Init;
use super::text::Embedding;
use crate::loss::Real;

/// Whether a pass trains (batch statistics, dropout) or evaluates (running statistics, no dropout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Training: batch normalization uses the batch's statistics, dropout drops.
    Train,
    /// Evaluation: batch normalization uses its running statistics, dropout passes values through.
    Eval,
}

/// What a layer's pass is told besides its data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pass<'a> {
    /// Training or evaluation.
    pub(crate) mode: Mode,
    /// Seed of the run (dropout masks).
    pub(crate) seed: u64,
    /// The update's number in the run (dropout masks).
    pub(crate) step: u64,
    /// The layer's index in the network.
    pub(crate) layer: usize,
    /// Index in the batch of the first row of this call.
    pub(crate) first_row: usize,
    /// The layer's slice of the network's running statistics.
    pub(crate) buffers: &'a [f32],
    /// The engine's sparse path: an embedding table's backward writes the rows of the tokens
    /// seen only, and the rest of its gradient is not read (see `TrainingStep::sparse`).
    pub(crate) sparse: bool,
    /// The initial states of a recurrent layer, `Recurrent::state_width` values per row of the
    /// whole batch (indexed from `first_row`), or zeros when `None`.
    pub(crate) state: Option<&'a [f32]>,
}

/// A layer's forward and backward passes.
pub(crate) trait Layer {
    /// Writes the output of `rows` rows of `x` into `y`, and into `saved` what backward needs
    /// besides the input and output (batch statistics).
    #[allow(clippy::too_many_arguments)]
    fn forward<T: Real>(
        &self,
        pass: &Pass<'_>,
        params: &[T],
        x: Input<'_, T>,
        rows: usize,
        y: &mut [T],
        saved: &mut [T],
    );

    /// From `dy`, the gradient of the loss with respect to the output `y`, writes the gradient
    /// with respect to the layer's parameters into its segments of `grad` (overwriting them) and,
    /// when `dx` is given, the gradient with respect to the input `x` (overwriting it).
    #[allow(clippy::too_many_arguments)]
    fn backward<T: Real>(
        &self,
        pass: &Pass<'_>,
        params: &[T],
        x: Input<'_, T>,
        y: &[T],
        saved: &[T],
        rows: usize,
        dy: &[T],
        dx: Option<&mut [T]>,
        grad: &mut [T],
    );
}

/// The first `len` elements of `buffer`, growing it (never shrinking) as needed.
pub(crate) fn grow<T: Real>(buffer: &mut Vec<T>, len: usize) -> &mut [T] {
    if buffer.len() < len {
        buffer.resize(len, T::ZERO);
    }
    &mut buffer[..len]
}

/// Fills `values` uniformly in `±bound`.
fn uniform(rng: &mut ChaCha8Rng, bound: f64, values: &mut [f32]) {
    for v in values {
        let u: f64 = rng.random();
        *v = (bound * (2.0 * u - 1.0)) as f32;
    }
}

/// Initializes a weight of `fan_in` inputs and `fan_out` outputs and its bias as `init` says;
/// `slope` is the negative slope of the activation that follows (`Some(0.0)` for relu), if one
/// of the relu family does.
fn init_weight_bias(
    init: Init,
    rng: &mut ChaCha8Rng,
    fan_in: usize,
    fan_out: usize,
    slope: Option<f64>,
    weight: &mut [f32],
    bias: &mut [f32],
) {
    let he = |rng: &mut ChaCha8Rng, weight: &mut [f32], a: f64| {
        let std = (2.0 / ((1.0 + a * a) * fan_in as f64)).sqrt();
        for w in weight.iter_mut() {
            let z: f64 = rng.sample(StandardNormal);
            *w = (std * z) as f32;
        }
    };
    let xavier = |rng: &mut ChaCha8Rng, weight: &mut [f32]| {
        uniform(rng, (6.0 / (fan_in + fan_out) as f64).sqrt(), weight);
    };
    match init {
        Init::Torch => {
            let bound = 1.0 / (fan_in as f64).sqrt();
            uniform(rng, bound, weight);
            uniform(rng, bound, bias);
        }
        Init::He => {
            he(rng, weight, slope.unwrap_or(0.0));
            bias.fill(0.0);
        }
        Init::Xavier => {
            xavier(rng, weight);
            bias.fill(0.0);
        }
        Init::Auto => {
            match slope {
                Some(a) => he(rng, weight, a),
                None => xavier(rng, weight),
            }
            bias.fill(0.0);
        }
    }
}

/// `torch.nn.Linear` over the last dimension: `y = x Wᵀ + b`, `W` stored `[out][in]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Linear {
    pub(crate) inputs: usize,
    pub(crate) outputs: usize,
    /// Vectors per row (the product of the leading dimensions: 1 for flat rows, the steps of a sequence).
    pub(crate) vectors: usize,
    pub(crate) weight: Range<usize>,
    pub(crate) bias: Option<Range<usize>>,
}

impl Linear {
    pub(crate) fn init(&self, init: Init, rng: &mut ChaCha8Rng, slope: Option<f64>, params: &mut [f32]) {
        let mut no_bias = Vec::new();
        let (weight, bias) = split_weight_bias(params, &self.weight, self.bias.as_ref(), &mut no_bias);
        init_weight_bias(init, rng, self.inputs, self.outputs, slope, weight, bias);
    }

    fn bias<'a, T: Real>(&self, params: &'a [T], zeros: &'a mut Vec<T>) -> &'a [T] {
        match &self.bias {
            Some(range) => &params[range.clone()],
            None => {
                zeros.resize(self.outputs, T::ZERO);
                zeros
            }
        }
    }
}

/// The weight and bias slices of `params` (an empty throwaway bias when there is none).
fn split_weight_bias<'a>(
    params: &'a mut [f32],
    weight: &Range<usize>,
    bias: Option<&Range<usize>>,
    no_bias: &'a mut Vec<f32>,
) -> (&'a mut [f32], &'a mut [f32]) {
    match bias {
        Some(bias) => {
            assert_eq!(weight.end, bias.start, "a bias follows its weight");
            let (w, b) = params[weight.start..bias.end].split_at_mut(weight.len());
            (w, b)
        }
        None => (&mut params[weight.clone()], no_bias.as_mut_slice()),
    }
}

impl Layer for Linear {
    fn forward<T: Real>(&self, _: &Pass<'_>, params: &[T], x: Input<'_, T>, rows: usize, y: &mut [T], _: &mut [T]) {
        let mut zeros = Vec::new();
        let bias = self.bias(params, &mut zeros);
        dense::layer_forward(x, &params[self.weight.clone()], bias, rows * self.vectors, self.inputs, y);
    }

    fn backward<T: Real>(
        &self,
        _: &Pass<'_>,
        params: &[T],
        x: Input<'_, T>,
        _: &[T],
        _: &[T],
        rows: usize,
        dy: &[T],
        dx: Option<&mut [T]>,
        grad: &mut [T],
    ) {
        let vectors = rows * self.vectors;
        dense::layer_weight_grad(dy, x, vectors, self.outputs, &mut grad[self.weight.clone()]);
        if let Some(bias) = &self.bias {
            let bias_grad = &mut grad[bias.clone()];
            bias_grad.fill(T::ZERO);
            for row in dy.chunks_exact(self.outputs) {
                bias_grad.iter_mut().zip(row).for_each(|(g, &d)| *g += d);
            }
        }
        if let Some(dx) = dx {
            dense::layer_backprop(dy, &params[self.weight.clone()], vectors, self.outputs, dx);
        }
    }
}

/// `torch.nn.Conv2d` with a square kernel, by im2col and a matrix product per image: the image's
/// `C·k·k × OH·OW` columns, multiplied by the `M × C·k·k` weight, give its `M × OH·OW` output in
/// PyTorch's layout directly.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conv2d {
    pub(crate) in_channels: usize,
    pub(crate) out_channels: usize,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) out_height: usize,
    pub(crate) out_width: usize,
    pub(crate) weight: Range<usize>,
    pub(crate) bias: Range<usize>,
}

impl Conv2d {
    pub(crate) fn init(&self, init: Init, rng: &mut ChaCha8Rng, slope: Option<f64>, params: &mut [f32]) {
        let mut no_bias = Vec::new();
        let (weight, bias) = split_weight_bias(params, &self.weight, Some(&self.bias), &mut no_bias);
        let window = self.kernel * self.kernel;
        init_weight_bias(init, rng, self.in_channels * window, self.out_channels * window, slope, weight, bias);
    }

    /// Rows of the column matrix: one per (input channel, kernel row, kernel column).
    fn patch(&self) -> usize {
        self.in_channels * self.kernel * self.kernel
    }

    fn positions(&self) -> usize {
        self.out_height * self.out_width
    }

    /// The output columns `ow` whose window column `kw` reads inside the image, for stride 1:
    /// `iw = ow + kw − padding ∈ [0, width)`.
    fn valid_columns(&self, kw: usize) -> Range<usize> {
        let start = self.padding.saturating_sub(kw).min(self.out_width);
        let end = (self.width + self.padding).saturating_sub(kw).min(self.out_width).max(start);
        start..end
    }

    /// The image's patches as a `patch() × positions()` matrix.
    fn im2col<T: Real>(&self, image: &[T], col: &mut [T]) {
        let (k, s, pad) = (self.kernel, self.stride, self.padding);
        let (h, w, ow_n) = (self.height, self.width, self.out_width);
        let positions = self.positions();
        for ci in 0..self.in_channels {
            let channel = &image[ci * h * w..(ci + 1) * h * w];
            for kh in 0..k {
                for kw in 0..k {
                    let row = &mut col[((ci * k + kh) * k + kw) * positions..][..positions];
                    let valid = self.valid_columns(kw);
                    for oh in 0..self.out_height {
                        let dst = &mut row[oh * ow_n..(oh + 1) * ow_n];
                        let ih = (oh * s + kh).wrapping_sub(pad);
                        if ih >= h {
                            dst.fill(T::ZERO);
                            continue;
                        }
                        let src = &channel[ih * w..(ih + 1) * w];
                        if s == 1 {
                            dst[..valid.start].fill(T::ZERO);
                            dst[valid.end..].fill(T::ZERO);
                            if !valid.is_empty() {
                                let first = valid.start + kw - pad;
                                dst[valid.clone()].copy_from_slice(&src[first..first + valid.len()]);
                            }
                        } else {
                            for (ow, d) in dst.iter_mut().enumerate() {
                                let iw = (ow * s + kw).wrapping_sub(pad);
                                *d = if iw < w { src[iw] } else { T::ZERO };
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds the columns' values back onto the image positions they were read from (overwriting
    /// `image` first).
    fn col2im<T: Real>(&self, col: &[T], image: &mut [T]) {
        image.fill(T::ZERO);
        let (k, s, pad) = (self.kernel, self.stride, self.padding);
        let (h, w, ow_n) = (self.height, self.width, self.out_width);
        let positions = self.positions();
        for ci in 0..self.in_channels {
            let channel = &mut image[ci * h * w..(ci + 1) * h * w];
            for kh in 0..k {
                for kw in 0..k {
                    let row = &col[((ci * k + kh) * k + kw) * positions..][..positions];
                    let valid = self.valid_columns(kw);
                    for oh in 0..self.out_height {
                        let ih = (oh * s + kh).wrapping_sub(pad);
                        if ih >= h {
                            continue;
                        }
                        let src = &row[oh * ow_n..(oh + 1) * ow_n];
                        let dst = &mut channel[ih * w..(ih + 1) * w];
                        if s == 1 {
                            if !valid.is_empty() {
                                let first = valid.start + kw - pad;
                                dst[first..first + valid.len()]
                                    .iter_mut()
                                    .zip(&src[valid.clone()])
                                    .for_each(|(d, &v)| *d += v);
                            }
                        } else {
                            for (ow, &v) in src.iter().enumerate() {
                                let iw = (ow * s + kw).wrapping_sub(pad);
                                if iw < w {
                                    dst[iw] += v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Layer for Conv2d {
    fn forward<T: Real>(&self, _: &Pass<'_>, params: &[T], x: Input<'_, T>, rows: usize, y: &mut [T], saved: &mut [T]) {
        let x = x.dense();
        if let (Some(p), Some(x), Some(y), Some(saved)) = (as_f32(params), as_f32(x), as_f32_mut(y), as_f32_mut(saved))
        {
            if self.fast() {
                let (weight, bias) = (&p[self.weight.clone()], &p[self.bias.clone()]);
                return self.forward_fast(weight, bias, x, rows, y, saved);
            }
        }
        let (patch, positions, m) = (self.patch(), self.positions(), self.out_channels);
        let in_len = self.in_channels * self.height * self.width;
        let weight = &params[self.weight.clone()];
        let bias = &params[self.bias.clone()];
        T::with_scratch(3, |scratch| {
            let col = grow(scratch, patch * positions);
            for (image, out) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(m * positions)).take(rows) {
                self.im2col(image, col);
                for (row, &b) in out.chunks_exact_mut(positions).zip(bias) {
                    row.fill(b);
                }
                // SAFETY: out (m × positions) = weight (m × patch) · col (patch × positions), row-major.
                unsafe {
                    T::gemm(
                        m,
                        patch,
                        positions,
                        T::ONE,
                        weight.as_ptr(),
                        patch as isize,
                        1,
                        col.as_ptr(),
                        positions as isize,
                        1,
                        T::ONE,
                        out.as_mut_ptr(),
                        positions as isize,
                        1,
                    );
                }
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
        mut dx: Option<&mut [T]>,
        grad: &mut [T],
    ) {
        let x = x.dense();
        let (patch, positions, m) = (self.patch(), self.positions(), self.out_channels);
        let in_len = self.in_channels * self.height * self.width;
        let weight = &params[self.weight.clone()];
        let (grad_weight, grad_bias) = grad[self.weight.start..self.bias.end].split_at_mut(self.weight.len());
        if let (Some(w), Some(saved), Some(dy), Some(gw), Some(gb)) =
            (as_f32(weight), as_f32(saved), as_f32(dy), as_f32_mut(grad_weight), as_f32_mut(grad_bias))
        {
            if self.fast() {
                let dx = dx.map(|d| as_f32_mut(d).expect("the same type as the others"));
                return self.backward_fast(w, saved, rows, dy, dx, gw, gb);
            }
        }
        grad_bias.fill(T::ZERO);
        T::with_scratch(3, |scratch| {
            let buffer = grow(scratch, 2 * patch * positions);
            let (col, dcol) = buffer.split_at_mut(patch * positions);
            for r in 0..rows {
                let image = &x[r * in_len..(r + 1) * in_len];
                let dy_image = &dy[r * m * positions..(r + 1) * m * positions];
                self.im2col(image, col);
                // ∂W (m × patch) (+)= dy (m × positions) · colᵀ (positions × patch); the first
                // image overwrites, so the images are summed in order.
                let beta = if r == 0 { T::ZERO } else { T::ONE };
                // SAFETY: the dimensions and strides address exactly the three slices.
                unsafe {
                    T::gemm(
                        m,
                        positions,
                        patch,
                        T::ONE,
                        dy_image.as_ptr(),
                        positions as isize,
                        1,
                        col.as_ptr(),
                        1,
                        positions as isize,
                        beta,
                        grad_weight.as_mut_ptr(),
                        patch as isize,
                        1,
                    );
                }
                for (g, row) in grad_bias.iter_mut().zip(dy_image.chunks_exact(positions)) {
                    *g += row.iter().fold(T::ZERO, |s, &v| s + v);
                }
                if let Some(dx) = dx.as_deref_mut() {
                    // dcol (patch × positions) = Wᵀ (patch × m) · dy (m × positions).
                    // SAFETY: the dimensions and strides address exactly the three slices.
                    unsafe {
                        T::gemm(
                            patch,
                            m,
                            positions,
                            T::ONE,
                            weight.as_ptr(),
                            1,
                            patch as isize,
                            dy_image.as_ptr(),
                            positions as isize,
                            1,
                            T::ZERO,
                            dcol.as_mut_ptr(),
                            positions as isize,
                            1,
                        );
                    }
                    self.col2im(dcol, &mut dx[r * in_len..(r + 1) * in_len]);
                }
            }
            if rows == 0 {
                grad_weight.fill(T::ZERO);
            }
        });
    }
}

/// Which pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolKind {
    Max,
    Avg,
}

/// `torch.nn.MaxPool2d` / `AvgPool2d` with square windows, no padding, floor mode.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pool2d {
    pub(crate) kind: PoolKind,
    pub(crate) channels: usize,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) out_height: usize,
    pub(crate) out_width: usize,
}

impl Pool2d {
    fn out_len(&self) -> usize {
        self.channels * self.out_height * self.out_width
    }

    /// Values saved per row for backward: the position of each window's maximum (max pooling).
    pub(crate) fn saved_per_row(&self) -> usize {
        match self.kind {
            PoolKind::Max => self.out_len(),
            PoolKind::Avg => 0,
        }
    }

    /// Max pooling of one channel: each window's maximum into `out` and its position in the
    /// channel into `at`. As PyTorch, a value replaces the maximum when it is larger or NaN: the
    /// first largest value in scan order wins, or the last NaN. Written with selects, and for
    /// 2 × 2 windows of stride 2 as whole rows, so that it vectorizes.
    fn max_channel<T: Real>(&self, channel: &[T], out: &mut [T], at: &mut [T]) {
        #[inline(always)]
        fn take<T: Real>(v: T, max: T) -> bool {
            #[allow(clippy::eq_op)]
            let v_nan = v != v;
            v > max || v_nan
        }
        let (k, s, w) = (self.kernel, self.stride, self.width);
        let ow_n = self.out_width;
        for oh in 0..self.out_height {
            let out_row = &mut out[oh * ow_n..(oh + 1) * ow_n];
            let at_row = &mut at[oh * ow_n..(oh + 1) * ow_n];
            let top = oh * s * w;
            if k == 2 && s == 2 {
                // The four values of each window as four contiguous runs, so that the selects
                // below run on whole vectors.
                const CHUNK: usize = 64;
                let (mut e0, mut o0, mut e1, mut o1) =
                    ([T::ZERO; CHUNK], [T::ZERO; CHUNK], [T::ZERO; CHUNK], [T::ZERO; CHUNK]);
                let (one, below, below_right) = (T::ONE, T::from_f64(w as f64), T::from_f64((w + 1) as f64));
                for c0 in (0..ow_n).step_by(CHUNK) {
                    let n = CHUNK.min(ow_n - c0);
                    let r0 = &channel[top + 2 * c0..top + 2 * (c0 + n)];
                    let r1 = &channel[top + w + 2 * c0..top + w + 2 * (c0 + n)];
                    for i in 0..n {
                        (e0[i], o0[i], e1[i], o1[i]) = (r0[2 * i], r0[2 * i + 1], r1[2 * i], r1[2 * i + 1]);
                    }
                    let left = (top + 2 * c0) as i32;
                    for i in 0..n {
                        let (mut max, mut code) = (e0[i], T::ZERO);
                        let t = take(o0[i], max);
                        max = if t { o0[i] } else { max };
                        code = if t { one } else { code };
                        let t = take(e1[i], max);
                        max = if t { e1[i] } else { max };
                        code = if t { below } else { code };
                        let t = take(o1[i], max);
                        max = if t { o1[i] } else { max };
                        code = if t { below_right } else { code };
                        let corner = T::from_f64(f64::from(left + 2 * i as i32));
                        out_row[c0 + i] = max;
                        at_row[c0 + i] = corner + code;
                    }
                }
            } else {
                for (ow, (o, a)) in out_row.iter_mut().zip(at_row.iter_mut()).enumerate() {
                    let first = top + ow * s;
                    let (mut max, mut pos) = (channel[first], first);
                    for kh in 0..k {
                        for kw in 0..k {
                            let p = first + kh * w + kw;
                            if take(channel[p], max) {
                                (max, pos) = (channel[p], p);
                            }
                        }
                    }
                    *o = max;
                    *a = T::from_f64(f64::from(pos as u32));
                }
            }
        }
    }
}

impl Layer for Pool2d {
    fn forward<T: Real>(&self, _: &Pass<'_>, _: &[T], x: Input<'_, T>, rows: usize, y: &mut [T], saved: &mut [T]) {
        let x = x.dense();
        let (in_area, out_area) = (self.height * self.width, self.out_height * self.out_width);
        let channels = x.chunks_exact(in_area).zip(y.chunks_exact_mut(out_area)).take(rows * self.channels);
        match self.kind {
            PoolKind::Max => {
                for ((channel, out), at) in channels.zip(saved.chunks_exact_mut(out_area)) {
                    self.max_channel(channel, out, at);
                }
            }
            PoolKind::Avg => {
                let scale = T::from_f64(1.0 / (self.kernel * self.kernel) as f64);
                for (channel, out) in channels {
                    for oh in 0..self.out_height {
                        for ow in 0..self.out_width {
                            let (top, left) = (oh * self.stride, ow * self.stride);
                            let mut sum = T::ZERO;
                            for kh in 0..self.kernel {
                                let row = (top + kh) * self.width + left;
                                sum = channel[row..row + self.kernel].iter().fold(sum, |s, &v| s + v);
                            }
                            out[oh * self.out_width + ow] = sum * scale;
                        }
                    }
                }
            }
        }
    }

    fn backward<T: Real>(
        &self,
        _: &Pass<'_>,
        _: &[T],
        _: Input<'_, T>,
        _: &[T],
        saved: &[T],
        rows: usize,
        dy: &[T],
        dx: Option<&mut [T]>,
        _: &mut [T],
    ) {
        let Some(dx) = dx else { return };
        let (in_area, out_area) = (self.height * self.width, self.out_height * self.out_width);
        let channels = dx.chunks_exact_mut(in_area).zip(dy.chunks_exact(out_area)).take(rows * self.channels);
        match self.kind {
            PoolKind::Max => {
                for ((d_in, d_out), at) in channels.zip(saved.chunks_exact(out_area)) {
                    d_in.fill(T::ZERO);
                    for (&g, &p) in d_out.iter().zip(at) {
                        d_in[p.to_f64() as usize] += g;
                    }
                }
            }
            PoolKind::Avg => {
                let scale = T::from_f64(1.0 / (self.kernel * self.kernel) as f64);
                for (d_in, d_out) in channels {
                    d_in.fill(T::ZERO);
                    for oh in 0..self.out_height {
                        for ow in 0..self.out_width {
                            let g = d_out[oh * self.out_width + ow] * scale;
                            let (top, left) = (oh * self.stride, ow * self.stride);
                            for kh in 0..self.kernel {
                                let row = (top + kh) * self.width + left;
                                d_in[row..row + self.kernel].iter_mut().for_each(|d| *d += g);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `torch.nn.Flatten`: the values unchanged, one flat row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Flatten;

impl Layer for Flatten {
    fn forward<T: Real>(&self, _: &Pass<'_>, _: &[T], x: Input<'_, T>, _: usize, y: &mut [T], _: &mut [T]) {
        y.copy_from_slice(&x.dense()[..y.len()]);
    }

    fn backward<T: Real>(
        &self,
        _: &Pass<'_>,
        _: &[T],
        _: Input<'_, T>,
        _: &[T],
        _: &[T],
        _: usize,
        dy: &[T],
        dx: Option<&mut [T]>,
        _: &mut [T],
    ) {
        if let Some(dx) = dx {
            dx.copy_from_slice(dy);
        }
    }
}

/// `torch.nn.BatchNorm1d` / `BatchNorm2d`: each channel normalized by the batch's mean and
/// (biased) variance in training, by the running statistics in evaluation, then scaled and
/// shifted: `y = γ (x − μ) / √(σ² + ε) + β`. After a training pass the running statistics move
/// towards the batch's: `r ← (1 − momentum) r + momentum · s`, with the unbiased variance
/// `σ² n / (n − 1)`, as PyTorch updates them.
///
/// A row is `channels × spatial` values (`spatial` is 1 for flat rows, `H·W` for images).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BatchNorm {
    pub(crate) channels: usize,
    pub(crate) spatial: usize,
    pub(crate) eps: f64,
    pub(crate) momentum: f64,
    pub(crate) weight: Range<usize>,
    pub(crate) bias: Range<usize>,
}

impl BatchNorm {
    /// Values saved per batch: each channel's mean, inverse standard deviation and variance.
    pub(crate) fn saved_len(&self) -> usize {
        3 * self.channels
    }

    pub(crate) fn init_buffers(&self, buffers: &mut [f32]) {
        let (mean, var) = buffers.split_at_mut(self.channels);
        mean.fill(0.0);
        var.fill(1.0);
    }

    pub(crate) fn init(&self, params: &mut [f32]) {
        params[self.weight.clone()].fill(1.0);
        params[self.bias.clone()].fill(0.0);
    }

    /// Moves the running statistics towards those of the batch of `rows` rows in `saved`.
    pub(crate) fn update_buffers<T: Real>(&self, saved: &[T], rows: usize, buffers: &mut [f32]) {
        let n = rows * self.spatial;
        let (mean, var) = buffers.split_at_mut(self.channels);
        let m = self.momentum;
        for c in 0..self.channels {
            mean[c] = ((1.0 - m) * f64::from(mean[c]) + m * saved[c].to_f64()) as f32;
            // One value per channel has no unbiased variance (PyTorch refuses to train on it):
            // the running variance is then left as it is.
            if n > 1 {
                let unbiased = saved[2 * self.channels + c].to_f64() * n as f64 / (n - 1) as f64;
                var[c] = ((1.0 - m) * f64::from(var[c]) + m * unbiased) as f32;
            }
        }
    }
}

/// The sum of `values` in `f64`, over eight interleaved partial sums added in a fixed order:
/// vectorizable, and the same bits wherever it runs.
#[inline]
fn sum_f64<T: Real>(values: &[T], mut f: impl FnMut(usize, T) -> f64) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = values.chunks_exact(8);
    let tail = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        for (l, (lane, &v)) in lanes.iter_mut().zip(chunk).enumerate() {
            *lane += f(c * 8 + l, v);
        }
    }
    let base = values.len() - tail.len();
    for (l, &v) in tail.iter().enumerate() {
        lanes[l] += f(base + l, v);
    }
    ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
}

/// Batch normalization's work split: per channel (statistics) and per row (the elementwise
/// passes), on rayon's pool when the batch is large; each result is computed by one task in a
/// fixed order, so the split never changes a bit.
const BATCH_NORM_SPLIT: usize = 1 << 15;

impl BatchNorm {
    /// Each channel's `f(c)`, in parallel when the batch is large.
    fn per_channel<R: Send>(&self, rows: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
        if rows * self.channels * self.spatial >= BATCH_NORM_SPLIT {
            (0..self.channels).into_par_iter().map(f).collect()
        } else {
            (0..self.channels).map(f).collect()
        }
    }

    /// Runs `f(row, out_row)` over the rows of `out`, in parallel when the batch is large.
    fn per_row<T: Real>(&self, out: &mut [T], rows: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
        let width = self.channels * self.spatial;
        if rows * width >= BATCH_NORM_SPLIT {
            out[..rows * width].par_chunks_mut(width).enumerate().for_each(|(r, row)| f(r, row));
        } else {
            out[..rows * width].chunks_mut(width).enumerate().for_each(|(r, row)| f(r, row));
        }
    }

    /// Channel `c`'s values of row `r`.
    #[inline]
    fn part<'a, T>(&self, x: &'a [T], r: usize, c: usize) -> &'a [T] {
        let at = (r * self.channels + c) * self.spatial;
        &x[at..at + self.spatial]
    }
}

impl Layer for BatchNorm {
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
        let (channels, spatial) = (self.channels, self.spatial);
        let gamma = &params[self.weight.clone()];
        let beta = &params[self.bias.clone()];
        let stats: Vec<(f64, f64)> = match pass.mode {
            Mode::Train => {
                // Sums in f64, each channel's in row order: the same bits whatever the thread count.
                let n = (rows * spatial) as f64;
                let stats = self.per_channel(rows, |c| {
                    let sum: f64 = (0..rows).map(|r| sum_f64(self.part(x, r, c), |_, v| v.to_f64())).sum();
                    let mean = sum / n;
                    let squares: f64 = (0..rows)
                        .map(|r| sum_f64(self.part(x, r, c), |_, v| (v.to_f64() - mean) * (v.to_f64() - mean)))
                        .sum();
                    (mean, squares / n)
                });
                for (c, &(mean, var)) in stats.iter().enumerate() {
                    saved[c] = T::from_f64(mean);
                    saved[channels + c] = T::from_f64(1.0 / (var + self.eps).sqrt());
                    saved[2 * channels + c] = T::from_f64(var);
                }
                stats
            }
            Mode::Eval => {
                (0..channels).map(|c| (f64::from(pass.buffers[c]), f64::from(pass.buffers[channels + c]))).collect()
            }
        };
        // y = x · scale + shift per channel, with scale = γ/σ and shift = β − γ μ/σ.
        let affine: Vec<(T, T)> = stats
            .iter()
            .enumerate()
            .map(|(c, &(mean, var))| {
                let inv_std = 1.0 / (var + self.eps).sqrt();
                let scale = gamma[c].to_f64() * inv_std;
                (T::from_f64(scale), T::from_f64(beta[c].to_f64() - scale * mean))
            })
            .collect();
        self.per_row(y, rows, |r, out| {
            for (c, &(scale, shift)) in affine.iter().enumerate() {
                let src = self.part(x, r, c);
                out[c * spatial..(c + 1) * spatial].iter_mut().zip(src).for_each(|(o, &v)| *o = v * scale + shift);
            }
        });
    }

    fn backward<T: Real>(
        &self,
        pass: &Pass<'_>,
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
        let (channels, spatial) = (self.channels, self.spatial);
        let n = (rows * spatial) as f64;
        let stats: Vec<(f64, f64)> = (0..channels)
            .map(|c| match pass.mode {
                Mode::Train => (saved[c].to_f64(), saved[channels + c].to_f64()),
                Mode::Eval => {
                    let var = f64::from(pass.buffers[channels + c]);
                    (f64::from(pass.buffers[c]), 1.0 / (var + self.eps).sqrt())
                }
            })
            .collect();
        // Σ ∂y and Σ ∂y x̂ per channel.
        let sums = self.per_channel(rows, |c| {
            let (mean, inv_std) = stats[c];
            let sum_dy: f64 = (0..rows).map(|r| sum_f64(self.part(dy, r, c), |_, d| d.to_f64())).sum();
            let sum_dy_x: f64 = (0..rows)
                .map(|r| {
                    let xs = self.part(x, r, c);
                    sum_f64(self.part(dy, r, c), |i, d| d.to_f64() * (xs[i].to_f64() - mean))
                })
                .sum();
            (sum_dy, sum_dy_x * inv_std)
        });
        for (c, &(sum_dy, sum_dy_xhat)) in sums.iter().enumerate() {
            grad[self.weight.start + c] = T::from_f64(sum_dy_xhat);
            grad[self.bias.start + c] = T::from_f64(sum_dy);
        }
        let Some(dx) = dx else { return };
        // ∂x = γ/σ · (∂y − mean(∂y) − x̂ · mean(∂y x̂)) in training, γ/σ · ∂y in evaluation, with
        // x̂ = (x − μ)/σ formed per element (so that a batch of one value gives exactly 0).
        let coefficients: Vec<[T; 5]> = (0..channels)
            .map(|c| {
                let gamma = params[self.weight.start + c].to_f64();
                let (mean, inv_std) = stats[c];
                let (sum_dy, sum_dy_xhat) = sums[c];
                let (mean_dy, mean_dy_xhat) = match pass.mode {
                    Mode::Train => (sum_dy / n, sum_dy_xhat / n),
                    Mode::Eval => (0.0, 0.0),
                };
                [gamma * inv_std, mean_dy, mean, inv_std, mean_dy_xhat].map(T::from_f64)
            })
            .collect();
        self.per_row(dx, rows, |r, out| {
            for (c, &[a, mean_dy, mean, inv_std, mean_dy_xhat]) in coefficients.iter().enumerate() {
                let (xs, ds) = (self.part(x, r, c), self.part(dy, r, c));
                for ((o, &v), &g) in out[c * spatial..(c + 1) * spatial].iter_mut().zip(xs).zip(ds) {
                    *o = a * ((g - mean_dy) - (v - mean) * inv_std * mean_dy_xhat);
                }
            }
        });
    }
}

/// The 64-bit mix of SplitMix64: a bijection whose outputs look independent for nearby inputs.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `torch.nn.Dropout`, inverted: in training each value is zeroed with probability `p` and the
/// others scaled by `1 / (1 − p)`; in evaluation values pass unchanged. Whether a value is kept is
/// a hash of `(seed, step, layer, row in the batch, element)`: reproducible from the seed and the
/// step, the same on any thread count, and recomputed by the backward pass rather than stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dropout {
    pub(crate) p: f64,
    pub(crate) width: usize,
}

impl Dropout {
    /// Calls `f(element, kept)` for every element of the rows of this pass.
    fn for_each_mask<T: Real>(&self, pass: &Pass<'_>, rows: usize, values: &mut [T], mut f: impl FnMut(&mut T, bool)) {
        // Drop when the top 53 bits of the hash, as a fraction of 2^53, fall below p.
        let threshold = (self.p * (1u64 << 53) as f64) as u64;
        let key = mix(mix(mix(pass.seed) ^ pass.step) ^ (pass.layer as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for r in 0..rows {
            let row_key = mix(key ^ (pass.first_row + r) as u64);
            for (e, v) in values[r * self.width..(r + 1) * self.width].iter_mut().enumerate() {
                let kept = (mix(row_key.wrapping_add(e as u64)) >> 11) >= threshold;
                f(v, kept);
            }
        }
    }
}

impl Layer for Dropout {
    fn forward<T: Real>(&self, pass: &Pass<'_>, _: &[T], x: Input<'_, T>, rows: usize, y: &mut [T], _: &mut [T]) {
        y.copy_from_slice(&x.dense()[..y.len()]);
        if pass.mode == Mode::Eval || self.p == 0.0 {
            return;
        }
        let scale = T::from_f64(1.0 / (1.0 - self.p));
        self.for_each_mask(pass, rows, y, |v, kept| *v = if kept { *v * scale } else { T::ZERO });
    }

    fn backward<T: Real>(
        &self,
        pass: &Pass<'_>,
        _: &[T],
        _: Input<'_, T>,
        _: &[T],
        _: &[T],
        rows: usize,
        dy: &[T],
        dx: Option<&mut [T]>,
        _: &mut [T],
    ) {
        let Some(dx) = dx else { return };
        dx.copy_from_slice(dy);
        if pass.mode == Mode::Eval || self.p == 0.0 {
            return;
        }
        let scale = T::from_f64(1.0 / (1.0 - self.p));
        self.for_each_mask(pass, rows, dx, |v, kept| *v = if kept { *v * scale } else { T::ZERO });
    }
}

/// An element-wise activation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Activation {
    /// `max(0, x)`; its derivative at 0 is 0, as PyTorch's.
    Relu,
    /// `x` for `x > 0`, else `slope · x`.
    LeakyRelu(f64),
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^{−x})`.
    Sigmoid,
    /// `x Φ(x) = x (1 + erf(x / √2)) / 2`.
    Gelu,
}

impl Activation {
    /// `f(x)`; NaN stays NaN, so that non-finite checks see it.
    pub(crate) fn apply<T: Real>(self, x: &[T], y: &mut [T]) {
        let pairs = y.iter_mut().zip(x);
        match self {
            // Selects rather than branches: the signs are random, and selects vectorize.
            Activation::Relu => pairs.for_each(|(o, &v)| *o = if v < T::ZERO { T::ZERO } else { v }),
            Activation::LeakyRelu(slope) => {
                let slope = T::from_f64(slope);
                pairs.for_each(|(o, &v)| *o = if v < T::ZERO { v * slope } else { v })
            }
            Activation::Tanh => pairs.for_each(|(o, &v)| *o = v.tanh()),
            Activation::Sigmoid => pairs.for_each(|(o, &v)| {
                // Written so that the exponential never overflows.
                let e = (-v.abs()).exp();
                *o = if v >= T::ZERO { T::ONE / (T::ONE + e) } else { e / (T::ONE + e) };
            }),
            Activation::Gelu => {
                let (half, root_half) = (T::from_f64(0.5), T::from_f64(std::f64::consts::FRAC_1_SQRT_2));
                pairs.for_each(|(o, &v)| *o = half * v * (T::ONE + (v * root_half).erf()))
            }
        }
    }

    /// `dx = dy · f′(x)`, from the input `x` or the output `y`, whichever the activation needs.
    pub(crate) fn derivative<T: Real>(self, x: &[T], y: &[T], dy: &[T], dx: &mut [T]) {
        match self {
            Activation::Relu => {
                dx.iter_mut().zip(dy).zip(y).for_each(|((o, &d), &out)| *o = if out <= T::ZERO { T::ZERO } else { d })
            }
            Activation::LeakyRelu(slope) => {
                let slope = T::from_f64(slope);
                dx.iter_mut().zip(dy).zip(x).for_each(|((o, &d), &v)| *o = if v <= T::ZERO { d * slope } else { d })
            }
            Activation::Tanh => dx.iter_mut().zip(dy).zip(y).for_each(|((o, &d), &out)| *o = d * (T::ONE - out * out)),
            Activation::Sigmoid => {
                dx.iter_mut().zip(dy).zip(y).for_each(|((o, &d), &out)| *o = d * out * (T::ONE - out))
            }
            Activation::Gelu => {
                let (half, root_half) = (T::from_f64(0.5), T::from_f64(std::f64::consts::FRAC_1_SQRT_2));
                let density = T::from_f64(1.0 / (2.0 * std::f64::consts::PI).sqrt());
                dx.iter_mut().zip(dy).zip(x).for_each(|((o, &d), &v)| {
                    let cdf = half * (T::ONE + (v * root_half).erf());
                    let pdf = density * (-(half * v * v)).exp();
                    *o = d * (cdf + v * pdf);
                })
            }
        }
    }

    /// The negative slope He initialization assumes for a weight this activation follows, when
    /// it is one of the relu family.
    pub(crate) fn he_slope(self) -> Option<f64> {
        match self {
            Activation::Relu => Some(0.0),
            Activation::LeakyRelu(slope) => Some(slope),
            _ => None,
        }
    }
}

impl Layer for Activation {
    fn forward<T: Real>(&self, _: &Pass<'_>, _: &[T], x: Input<'_, T>, _: usize, y: &mut [T], _: &mut [T]) {
        let x = x.dense();
        self.apply(&x[..y.len()], y);
    }

    fn backward<T: Real>(
        &self,
        _: &Pass<'_>,
        _: &[T],
        x: Input<'_, T>,
        y: &[T],
        _: &[T],
        _: usize,
        dy: &[T],
        dx: Option<&mut [T]>,
        _: &mut [T],
    ) {
        if let Some(dx) = dx {
            let x = x.dense();
            self.derivative(&x[..y.len()], y, dy, dx);
        }
    }
}

/// A built layer of any kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AnyLayer {
    Linear(Linear),
    Conv2d(Conv2d),
    Pool2d(Pool2d),
    Flatten(Flatten),
    BatchNorm(BatchNorm),
    Dropout(Dropout),
    Activation(Activation),
    Embedding(Embedding),
    Recurrent(Recurrent),
}

macro_rules! dispatch {
    ($self:expr, $layer:ident => $body:expr) => {
        match $self {
            AnyLayer::Linear($layer) => $body,
            AnyLayer::Conv2d($layer) => $body,
            AnyLayer::Pool2d($layer) => $body,
            AnyLayer::Flatten($layer) => $body,
            AnyLayer::BatchNorm($layer) => $body,
            AnyLayer::Dropout($layer) => $body,
            AnyLayer::Activation($layer) => $body,
            AnyLayer::Embedding($layer) => $body,
            AnyLayer::Recurrent($layer) => $body,
        }
    };
}

impl AnyLayer {
    /// Whether a training pass over one row needs no other rows (all but batch normalization).
    pub(crate) fn row_local(&self, mode: Mode) -> bool {
        !(mode == Mode::Train && matches!(self, AnyLayer::BatchNorm(_)))
    }

    /// Values saved for backward per batch (whole-batch layers) besides [`AnyLayer::saved_per_row`].
    pub(crate) fn saved_per_batch(&self) -> usize {
        match self {
            AnyLayer::BatchNorm(bn) => bn.saved_len(),
            _ => 0,
        }
    }

    /// Values saved for backward per row.
    pub(crate) fn saved_per_row(&self) -> usize {
        match self {
            AnyLayer::Pool2d(pool) => pool.saved_per_row(),
            AnyLayer::Conv2d(conv) => conv.saved_per_row_fast(),
            AnyLayer::Recurrent(recurrent) => recurrent.saved_per_row(),
            _ => 0,
        }
    }

    /// Whether the layer reads input rows picked by index where they lie (a `linear` layer on
    /// flat rows); other first layers get the picked rows copied out.
    pub(crate) fn is_linear_with_picked_input(&self) -> bool {
        matches!(self, AnyLayer::Linear(l) if l.vectors == 1)
    }
}

impl Layer for AnyLayer {
    fn forward<T: Real>(
        &self,
        pass: &Pass<'_>,
        params: &[T],
        x: Input<'_, T>,
        rows: usize,
        y: &mut [T],
        saved: &mut [T],
    ) {
        dispatch!(self, layer => layer.forward(pass, params, x, rows, y, saved))
    }

    fn backward<T: Real>(
        &self,
        pass: &Pass<'_>,
        params: &[T],
        x: Input<'_, T>,
        y: &[T],
        saved: &[T],
        rows: usize,
        dy: &[T],
        dx: Option<&mut [T]>,
        grad: &mut [T],
    ) {
        dispatch!(self, layer => layer.backward(pass, params, x, y, saved, rows, dy, dx, grad))
    }
}

/// A random stream of its own for layer `index`: inserting a layer leaves the others' initial
/// values unchanged.
pub(crate) fn layer_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}
