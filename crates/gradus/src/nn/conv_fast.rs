//! The `f32` convolution passes on CPUs with AVX2 and fused multiply-adds, for stride-1
//! convolutions whose padding is below the kernel size (others take the portable path).
//!
//! Convolutions of small images spend their time around the multiply-adds rather than in them:
//! a general matrix product on an im2col matrix packs both operands again, and its tiles fit
//! neither 6 output channels nor 25-long patches. These passes use one register-tile kernel,
//! `acc[r][0..8·V] += Σ_k a(r, k) · b(k)[0..8·V]`, whose `a` is read in place from a zero-padded
//! copy of the image (a patch element `(c, kh, kw)` of the output position `(oh, ow)` lies at a
//! fixed offset from the position's corner), so that no patch matrix is built:
//!
//! - forward, `y[m][p] = b[m] + Σ_k patch(p)[k] W[m][k]`: tiles of positions × output channels,
//!   the weights transposed and zero-padded once per pass (`Wᵀ`, `K × Mp`);
//! - the weight gradient, `∂W[m][k] = Σ_images Σ_p patch(p)[k] ∂y[m][p]`: tiles of patch elements
//!   × channels over the image's positions, `∂y` transposed (`P × Mp`), summed over the block's
//!   images in order;
//! - the input gradient, `∂patch(p)[k] = Σ_m ∂y[m][p] W[m][k]`, then added back onto the image
//!   positions each patch element was read from.
//!
//! Every tile shape and summation order is fixed by the layer's shape, never by the thread
//! count. The results differ from the portable path (a general matrix product on an im2col
//! matrix, which `f64` and other CPUs take) only in rounding; tests compare the two.

use super::layers::Conv2d;

/// Rows of a tile whose columns are one vector of 8, and of one whose columns are two.
const ROWS_8: usize = 12;
const ROWS_16: usize = 6;

/// Zeros kept after each padded image: the channels × positions tiles read up to 16 values past
/// the last window of a row (into the next row, or past the end), values they then discard.
const SLACK: usize = 32;

/// Whether this CPU runs these passes.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `acc[r][0..8V] = (fresh ? 0 : acc[r]) + Σ_{s, j} a[r][segments[s] + j · a_stride] · b[(s · seg_len + j) · b_stride + 0..8V]`
/// for `R` rows, `s` over the segments and `j < seg_len`.
///
/// # Safety
/// The CPU must have AVX2 and FMA; every element addressed must lie in its allocation.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)] // the register arrays are indexed in step
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize, const V: usize>(
    fresh: bool,
    a: &[*const f32],
    segments: &[usize],
    seg_len: usize,
    a_stride: usize,
    b: *const f32,
    b_stride: usize,
    acc: &mut [[f32; 16]],
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract.
    unsafe {
        let mut c = [[_mm256_setzero_ps(); V]; R];
        if !fresh {
            for r in 0..R {
                for v in 0..V {
                    c[r][v] = _mm256_loadu_ps(acc[r].as_ptr().add(8 * v));
                }
            }
        }
        let rows: [*const f32; R] = std::array::from_fn(|r| a[r]);
        let mut bp = b;
        for &offset in segments {
            for j in 0..seg_len {
                let bv: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(bp.add(8 * v)));
                let at = offset + j * a_stride;
                for r in 0..R {
                    let av = _mm256_broadcast_ss(&*rows[r].add(at));
                    for v in 0..V {
                        c[r][v] = _mm256_fmadd_ps(av, bv[v], c[r][v]);
                    }
                }
                bp = bp.add(b_stride);
            }
        }
        for r in 0..R {
            for v in 0..V {
                _mm256_storeu_ps(acc[r].as_mut_ptr().add(8 * v), c[r][v]);
            }
        }
    }
}

/// [`tile`] for `a.len()` rows (at most [`ROWS_8`] with 8 columns, [`ROWS_16`] with 16).
///
/// # Safety
/// As [`tile`].
#[allow(clippy::too_many_arguments)]
unsafe fn run_tile(
    fresh: bool,
    wide: bool,
    a: &[*const f32],
    segments: &[usize],
    seg_len: usize,
    a_stride: usize,
    b: *const f32,
    b_stride: usize,
    acc: &mut [[f32; 16]],
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded; the row count selects an instance of the same kernel.
    unsafe {
        macro_rules! pick {
            ($v:literal, $($r:literal)*) => {
                match a.len() {
                    $($r => tile::<$r, $v>(fresh, a, segments, seg_len, a_stride, b, b_stride, acc),)*
                    _ => unreachable!("tile rows"),
                }
            };
        }
        if wide {
            pick!(2, 1 2 3 4 5 6)
        } else {
            pick!(1, 1 2 3 4 5 6 7 8 9 10 11 12)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (fresh, wide, a, segments, seg_len, a_stride, b, b_stride, acc);
        unreachable!("only called where `available()`");
    }
}

/// `acc[r][0..16] = Σ_{s, j} a[r][s · seg_len + j] · b[segments[s] + j + 0..16]` for `R` rows:
/// the forward pass of a layer with few output channels, rows being channels and the 16 columns
/// consecutive positions of an output row (read in place from the padded image).
///
/// # Safety
/// The CPU must have AVX2 and FMA; every element addressed must lie in its allocation.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn channel_tile<const R: usize>(
    a: &[*const f32],
    b: *const f32,
    segments: &[usize],
    seg_len: usize,
    acc: &mut [[f32; 16]],
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract.
    unsafe {
        let mut c = [[_mm256_setzero_ps(); 2]; R];
        let rows: [*const f32; R] = std::array::from_fn(|r| a[r]);
        let mut kk = 0;
        for &offset in segments {
            for j in 0..seg_len {
                let bp = b.add(offset + j);
                let bv = [_mm256_loadu_ps(bp), _mm256_loadu_ps(bp.add(8))];
                for r in 0..R {
                    let av = _mm256_broadcast_ss(&*rows[r].add(kk));
                    c[r][0] = _mm256_fmadd_ps(av, bv[0], c[r][0]);
                    c[r][1] = _mm256_fmadd_ps(av, bv[1], c[r][1]);
                }
                kk += 1;
            }
        }
        for r in 0..R {
            _mm256_storeu_ps(acc[r].as_mut_ptr(), c[r][0]);
            _mm256_storeu_ps(acc[r].as_mut_ptr().add(8), c[r][1]);
        }
    }
}

/// `out[i][j] = Σ_{row < rows} Σ_{c < chunks} Σ_lanes a[i][row · a_row + 8c + lane] · b[j][row · b_row + 8c + lane]`:
/// dot products of `I` runs with `J` runs, the weight gradient of a layer with few output
/// channels (`a`: rows of `∂y`, `b`: the patch element's view of the padded image).
///
/// # Safety
/// The CPU must have AVX2 and FMA; every element addressed must lie in its allocation.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn dot_tile<const I: usize, const J: usize>(
    a: &[*const f32],
    a_row: usize,
    b: &[*const f32],
    b_row: usize,
    rows: usize,
    chunks: usize,
    out: &mut [[f32; 2]],
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract.
    unsafe {
        let mut c = [[_mm256_setzero_ps(); J]; I];
        let (ap, bp): ([*const f32; I], [*const f32; J]) =
            (std::array::from_fn(|i| a[i]), std::array::from_fn(|j| b[j]));
        for row in 0..rows {
            for chunk in 0..chunks {
                let bv: [__m256; J] = std::array::from_fn(|j| _mm256_loadu_ps(bp[j].add(row * b_row + 8 * chunk)));
                for i in 0..I {
                    let av = _mm256_loadu_ps(ap[i].add(row * a_row + 8 * chunk));
                    for j in 0..J {
                        c[i][j] = _mm256_fmadd_ps(av, bv[j], c[i][j]);
                    }
                }
            }
        }
        for i in 0..I {
            for j in 0..J {
                // The eight lanes summed in a fixed order.
                let mut lanes = [0.0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), c[i][j]);
                out[i][j] =
                    ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
            }
        }
    }
}

/// [`channel_tile`] for `a.len()` (1 to 6) rows.
///
/// # Safety
/// As [`channel_tile`].
unsafe fn run_channel_tile(a: &[*const f32], b: *const f32, segments: &[usize], seg_len: usize, acc: &mut [[f32; 16]]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded.
    unsafe {
        match a.len() {
            1 => channel_tile::<1>(a, b, segments, seg_len, acc),
            2 => channel_tile::<2>(a, b, segments, seg_len, acc),
            3 => channel_tile::<3>(a, b, segments, seg_len, acc),
            4 => channel_tile::<4>(a, b, segments, seg_len, acc),
            5 => channel_tile::<5>(a, b, segments, seg_len, acc),
            6 => channel_tile::<6>(a, b, segments, seg_len, acc),
            _ => unreachable!("tile rows"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, b, segments, seg_len, acc);
        unreachable!("only called where `available()`");
    }
}

/// [`dot_tile`] for `a.len()` (1 to 6) runs of `a` and `b.len()` (1 or 2) of `b`.
///
/// # Safety
/// As [`dot_tile`].
#[allow(clippy::too_many_arguments)]
unsafe fn run_dot_tile(
    a: &[*const f32],
    a_row: usize,
    b: &[*const f32],
    b_row: usize,
    rows: usize,
    chunks: usize,
    out: &mut [[f32; 2]],
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded.
    unsafe {
        macro_rules! pick {
            ($($i:literal)*) => {
                match (a.len(), b.len()) {
                    $(($i, 1) => dot_tile::<$i, 1>(a, a_row, b, b_row, rows, chunks, out),
                      ($i, 2) => dot_tile::<$i, 2>(a, a_row, b, b_row, rows, chunks, out),)*
                    _ => unreachable!("tile shape"),
                }
            };
        }
        pick!(1 2 3 4 5 6)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, a_row, b, b_row, rows, chunks, out);
        unreachable!("only called where `available()`");
    }
}

/// Output channels at most this many take the channels × positions passes.
const FEW_CHANNELS: usize = 8;

/// Channels rounded up to a tile's width: 8 for up to 8, else a multiple of 16.
fn padded_width(channels: usize) -> usize {
    if channels <= 8 {
        8
    } else {
        channels.next_multiple_of(16)
    }
}

impl Conv2d {
    /// Whether the fast passes apply: stride 1 and padding below the kernel size, on a CPU with
    /// AVX2 and FMA.
    pub(crate) fn fast(&self) -> bool {
        self.stride == 1 && self.padding < self.kernel && available()
    }

    fn padded_height(&self) -> usize {
        self.height + 2 * self.padding
    }

    fn padded_width(&self) -> usize {
        self.width + 2 * self.padding
    }

    /// Values kept per image for the backward pass: its zero-padded copy.
    pub(crate) fn saved_per_row_fast(&self) -> usize {
        self.in_channels * self.padded_height() * self.padded_width() + SLACK
    }

    /// `image` with `padding` zeros on every side, into `padded`.
    fn pad(&self, image: &[f32], padded: &mut [f32]) {
        let (h, w, pad, wp) = (self.height, self.width, self.padding, self.padded_width());
        let hp = self.padded_height();
        padded.fill(0.0);
        for c in 0..self.in_channels {
            for ih in 0..h {
                let at = (c * hp + ih + pad) * wp + pad;
                padded[at..at + w].copy_from_slice(&image[(c * h + ih) * w..(c * h + ih + 1) * w]);
            }
        }
    }

    /// Where patch element `(c, kh, kw)` lies from the corner of its window in the padded image.
    fn patch_offsets(&self) -> Vec<usize> {
        let (k, hp, wp) = (self.kernel, self.padded_height(), self.padded_width());
        let mut offsets = Vec::with_capacity(self.in_channels * k * k);
        for c in 0..self.in_channels {
            for kh in 0..k {
                for kw in 0..k {
                    offsets.push((c * hp + kh) * wp + kw);
                }
            }
        }
        offsets
    }

    /// The forward pass of `rows` images (see the module documentation), keeping each image's
    /// padded copy in `saved`.
    pub(crate) fn forward_fast(
        &self,
        weight: &[f32],
        bias: &[f32],
        x: &[f32],
        rows: usize,
        y: &mut [f32],
        saved: &mut [f32],
    ) {
        let (m, k, wp) = (self.out_channels, self.kernel, self.padded_width());
        let patch = self.in_channels * k * k;
        let positions = self.out_height * self.out_width;
        // Segments (c, kh): k contiguous patch elements each.
        let segments: Vec<usize> =
            (0..self.in_channels * k).map(|s| (s / k * self.padded_height() + s % k) * wp).collect();
        if m <= FEW_CHANNELS {
            return self.forward_few_channels(weight, bias, x, rows, y, saved, &segments);
        }
        let mp = padded_width(m);
        let wide = mp >= 16;
        // Wᵀ, zero-padded: K × Mp, patch elements in the order (c, kh, kw).
        let mut wt = vec![0.0f32; patch * mp];
        for (j, w_row) in weight.chunks_exact(patch).enumerate() {
            for (kk, &v) in w_row.iter().enumerate() {
                wt[kk * mp + j] = v;
            }
        }
        let (tile_rows, width) = if wide { (ROWS_16, 16) } else { (ROWS_8, 8) };
        let in_len = self.in_channels * self.height * self.width;
        let padded_len = self.saved_per_row_fast();
        let mut acc = [[0.0f32; 16]; ROWS_8];
        let mut a = [std::ptr::null::<f32>(); ROWS_8];
        for r in 0..rows {
            let padded = &mut saved[r * padded_len..(r + 1) * padded_len];
            self.pad(&x[r * in_len..(r + 1) * in_len], padded);
            let out = &mut y[r * m * positions..(r + 1) * m * positions];
            // The corner of each output position's window, walked in order (no divisions).
            let (mut oh, mut ow) = (0, 0);
            for p0 in (0..positions).step_by(tile_rows) {
                let n = tile_rows.min(positions - p0);
                for a in &mut a[..n] {
                    *a = padded[oh * wp + ow..].as_ptr();
                    ow += 1;
                    if ow == self.out_width {
                        (oh, ow) = (oh + 1, 0);
                    }
                }
                for m0 in (0..mp).step_by(width) {
                    // SAFETY: every window lies in the padded image; `wt` has `patch` rows of `mp
                    // >= m0 + width` values; the CPU was checked by `available`.
                    unsafe { run_tile(true, wide, &a[..n], &segments, k, 1, wt.as_ptr().add(m0), mp, &mut acc[..n]) };
                    for j in 0..width.min(m.saturating_sub(m0)) {
                        let b = bias[m0 + j];
                        let dst = &mut out[(m0 + j) * positions + p0..(m0 + j) * positions + p0 + n];
                        for (d, row) in dst.iter_mut().zip(&acc[..n]) {
                            *d = row[j] + b;
                        }
                    }
                }
            }
        }
    }

    /// [`Conv2d::forward_fast`] for at most [`FEW_CHANNELS`] output channels: tiles of channels ×
    /// 16 consecutive positions of an output row, stored as whole runs.
    #[allow(clippy::too_many_arguments)]
    fn forward_few_channels(
        &self,
        weight: &[f32],
        bias: &[f32],
        x: &[f32],
        rows: usize,
        y: &mut [f32],
        saved: &mut [f32],
        segments: &[usize],
    ) {
        let (m, k, wp) = (self.out_channels, self.kernel, self.padded_width());
        let patch = self.in_channels * k * k;
        let (oh_n, ow_n) = (self.out_height, self.out_width);
        let positions = oh_n * ow_n;
        let in_len = self.in_channels * self.height * self.width;
        let padded_len = self.saved_per_row_fast();
        let mut acc = [[0.0f32; 16]; ROWS_16];
        let mut a = [std::ptr::null::<f32>(); ROWS_16];
        for r in 0..rows {
            let padded = &mut saved[r * padded_len..(r + 1) * padded_len];
            self.pad(&x[r * in_len..(r + 1) * in_len], padded);
            let out = &mut y[r * m * positions..(r + 1) * m * positions];
            for m0 in (0..m).step_by(ROWS_16) {
                let n = ROWS_16.min(m - m0);
                for (i, a) in a[..n].iter_mut().enumerate() {
                    *a = weight[(m0 + i) * patch..].as_ptr();
                }
                for oh in 0..oh_n {
                    for ow0 in (0..ow_n).step_by(16) {
                        // SAFETY: the weights hold `patch` values per channel; the columns read lie
                        // in the padded image or its slack; the CPU was checked by `available`.
                        unsafe {
                            run_channel_tile(&a[..n], padded[oh * wp + ow0..].as_ptr(), segments, k, &mut acc[..n])
                        };
                        let valid = 16.min(ow_n - ow0);
                        for (i, row) in acc[..n].iter().enumerate() {
                            let at = (m0 + i) * positions + oh * ow_n + ow0;
                            let b = bias[m0 + i];
                            for (d, &v) in out[at..at + valid].iter_mut().zip(&row[..valid]) {
                                *d = v + b;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The backward pass of `rows` images: the weight and bias gradients (overwritten) and, when
    /// asked, the input gradient, from the padded copies kept in `saved`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward_fast(
        &self,
        weight: &[f32],
        saved: &[f32],
        rows: usize,
        dy: &[f32],
        dx: Option<&mut [f32]>,
        grad_weight: &mut [f32],
        grad_bias: &mut [f32],
    ) {
        let (m, k) = (self.out_channels, self.kernel);
        let patch = self.in_channels * k * k;
        let positions = self.out_height * self.out_width;
        let out_len = m * positions;
        if rows == 0 {
            grad_weight.fill(0.0);
            grad_bias.fill(0.0);
            return;
        }
        // ∂b: each channel's sum over the images and positions, in order.
        grad_bias.fill(0.0);
        for r in 0..rows {
            for (g, channel) in grad_bias.iter_mut().zip(dy[r * out_len..(r + 1) * out_len].chunks_exact(positions)) {
                *g += channel.iter().sum::<f32>();
            }
        }
        if m <= FEW_CHANNELS {
            self.weight_grad_few_channels(saved, rows, dy, grad_weight);
        } else {
            self.weight_grad_many_channels(saved, rows, dy, grad_weight);
        }
        let Some(dx) = dx else { return };
        // ∂col[kk][p] = Σ_m W[m][kk] ∂y[m][p]: tiles of 6 patch elements × 16 positions over the
        // channels, from ∂y with each channel's positions padded to whole tiles; then each patch
        // element's row of positions is added back onto the image rows it was read from.
        let p16 = positions.next_multiple_of(16);
        let in_len = self.in_channels * self.height * self.width;
        let mut dy_padded = vec![0.0f32; m * p16];
        let mut dcol = vec![0.0f32; patch * p16];
        let mut acc = [[0.0f32; 16]; ROWS_16];
        let mut a = [std::ptr::null::<f32>(); ROWS_16];
        for r in 0..rows {
            for (dst, src) in
                dy_padded.chunks_exact_mut(p16).zip(dy[r * out_len..(r + 1) * out_len].chunks_exact(positions))
            {
                dst[..positions].copy_from_slice(src);
            }
            for k0 in (0..patch).step_by(ROWS_16) {
                let n = ROWS_16.min(patch - k0);
                for (i, a) in a[..n].iter_mut().enumerate() {
                    *a = weight[k0 + i..].as_ptr();
                }
                for p0 in (0..p16).step_by(16) {
                    // SAFETY: a(i, j) = W[j][k0 + i] for j < m; `dy_padded` has `m` rows of `p16 >=
                    // p0 + 16` values; the CPU was checked by `available`.
                    unsafe {
                        run_tile(true, true, &a[..n], &[0], m, patch, dy_padded.as_ptr().add(p0), p16, &mut acc[..n])
                    };
                    for (i, row) in acc[..n].iter().enumerate() {
                        dcol[(k0 + i) * p16 + p0..(k0 + i) * p16 + p0 + 16].copy_from_slice(row);
                    }
                }
            }
            self.col2im_rows(&dcol, p16, &mut dx[r * in_len..(r + 1) * in_len]);
        }
    }

    /// Adds each patch element's gradient over the output positions (`dcol`, rows of `stride`
    /// values) onto the image positions it was read from, overwriting `image` first: whole output
    /// rows at once.
    fn col2im_rows(&self, dcol: &[f32], stride: usize, image: &mut [f32]) {
        image.fill(0.0);
        let (k, pad, h, w) = (self.kernel, self.padding, self.height, self.width);
        let ow_n = self.out_width;
        for c in 0..self.in_channels {
            for kh in 0..k {
                for kw in 0..k {
                    let row = &dcol[((c * k + kh) * k + kw) * stride..][..stride];
                    // Output columns whose input column `ow + kw − pad` lies in the image.
                    let first = pad.saturating_sub(kw);
                    let last = (w + pad).saturating_sub(kw).min(ow_n);
                    if first >= last {
                        continue;
                    }
                    for oh in 0..self.out_height {
                        let ih = (oh + kh).wrapping_sub(pad);
                        if ih >= h {
                            continue;
                        }
                        let src = &row[oh * ow_n + first..oh * ow_n + last];
                        let start = (c * h + ih) * w + first + kw - pad;
                        for (d, &v) in image[start..start + src.len()].iter_mut().zip(src) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }

    /// `∂W` for many output channels: tiles of patch elements × channels over each image's
    /// positions (segments: the output rows), summed over the images in order.
    fn weight_grad_many_channels(&self, saved: &[f32], rows: usize, dy: &[f32], grad_weight: &mut [f32]) {
        let (m, k, wp) = (self.out_channels, self.kernel, self.padded_width());
        let patch = self.in_channels * k * k;
        let (ow_n, positions) = (self.out_width, self.out_height * self.out_width);
        let out_len = m * positions;
        let padded_len = self.saved_per_row_fast();
        let mut acc = [[0.0f32; 16]; ROWS_8];
        let mut a = [std::ptr::null::<f32>(); ROWS_8];
        let mp = padded_width(m);
        let wide = mp >= 16;
        let (tile_rows, width) = if wide { (ROWS_16, 16) } else { (ROWS_8, 8) };
        let mut dyt = vec![0.0f32; rows * positions * mp];
        for r in 0..rows {
            let dy_image = &dy[r * out_len..(r + 1) * out_len];
            let t = &mut dyt[r * positions * mp..(r + 1) * positions * mp];
            for (j, channel) in dy_image.chunks_exact(positions).enumerate() {
                for (p, &v) in channel.iter().enumerate() {
                    t[p * mp + j] = v;
                }
            }
        }
        let segments: Vec<usize> = (0..self.out_height).map(|oh| oh * wp).collect();
        let offsets = self.patch_offsets();
        for k0 in (0..patch).step_by(tile_rows) {
            let n = tile_rows.min(patch - k0);
            for m0 in (0..mp).step_by(width) {
                for r in 0..rows {
                    let padded = &saved[r * padded_len..(r + 1) * padded_len];
                    for (i, a) in a[..n].iter_mut().enumerate() {
                        *a = padded[offsets[k0 + i]..].as_ptr();
                    }
                    let t = &dyt[r * positions * mp..];
                    // SAFETY: every window lies in the padded image; `dyt` has `positions` rows of
                    // `mp >= m0 + width` values; the CPU was checked by `available`.
                    unsafe {
                        run_tile(r == 0, wide, &a[..n], &segments, ow_n, 1, t.as_ptr().add(m0), mp, &mut acc[..n])
                    };
                }
                for (i, row) in acc[..n].iter().enumerate() {
                    for j in 0..width.min(m.saturating_sub(m0)) {
                        grad_weight[(m0 + j) * patch + k0 + i] = row[j];
                    }
                }
            }
        }
    }

    /// `∂W` for few output channels: dot products of each channel's `∂y` (rows padded to whole
    /// vectors with zeros) with each patch element's view of the padded image, summed over the
    /// images in order.
    fn weight_grad_few_channels(&self, saved: &[f32], rows: usize, dy: &[f32], grad_weight: &mut [f32]) {
        let (m, k, wp) = (self.out_channels, self.kernel, self.padded_width());
        let patch = self.in_channels * k * k;
        let (oh_n, ow_n) = (self.out_height, self.out_width);
        let row_len = ow_n.next_multiple_of(8);
        let positions = oh_n * ow_n;
        let padded_len = self.saved_per_row_fast();
        let offsets = self.patch_offsets();
        // Each image's ∂y with rows of whole vectors.
        let mut dyp = vec![0.0f32; rows * m * oh_n * row_len];
        for (dst, src) in dyp.chunks_exact_mut(row_len).zip(dy[..rows * m * positions].chunks_exact(ow_n)) {
            dst[..ow_n].copy_from_slice(src);
        }
        let mut sums = vec![0.0f32; m * patch];
        let mut out = [[0.0f32; 2]; ROWS_16];
        let (mut a, mut b) = ([std::ptr::null::<f32>(); ROWS_16], [std::ptr::null::<f32>(); 2]);
        for r in 0..rows {
            let padded = &saved[r * padded_len..(r + 1) * padded_len];
            let image_dy = &dyp[r * m * oh_n * row_len..(r + 1) * m * oh_n * row_len];
            for m0 in (0..m).step_by(ROWS_16) {
                let n = ROWS_16.min(m - m0);
                for (i, a) in a[..n].iter_mut().enumerate() {
                    *a = image_dy[(m0 + i) * oh_n * row_len..].as_ptr();
                }
                for k0 in (0..patch).step_by(2) {
                    let kn = 2.min(patch - k0);
                    for (j, b) in b[..kn].iter_mut().enumerate() {
                        *b = padded[offsets[k0 + j]..].as_ptr();
                    }
                    // SAFETY: ∂y rows hold `row_len` values; each patch element's view reads at
                    // most `row_len − 1` past a window's corner, inside the padded image or its
                    // slack; the CPU was checked by `available`.
                    unsafe { run_dot_tile(&a[..n], row_len, &b[..kn], wp, oh_n, row_len / 8, &mut out[..n]) };
                    for (i, pair) in out[..n].iter().enumerate() {
                        for (j, &v) in pair[..kn].iter().enumerate() {
                            sums[(m0 + i) * patch + k0 + j] += v;
                        }
                    }
                }
            }
        }
        grad_weight.copy_from_slice(&sums);
    }
}
