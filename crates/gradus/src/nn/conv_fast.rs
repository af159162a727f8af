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
        self.in_channels * self.padded_height() * self.padded_width()
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
        let mp = padded_width(m);
        let wide = mp >= 16;
        // Wᵀ, zero-padded: K × Mp, patch elements in the order (c, kh, kw).
        let mut wt = vec![0.0f32; patch * mp];
        for (j, w_row) in weight.chunks_exact(patch).enumerate() {
            for (kk, &v) in w_row.iter().enumerate() {
                wt[kk * mp + j] = v;
            }
        }
        // Segments (c, kh): k contiguous patch elements each.
        let segments: Vec<usize> =
            (0..self.in_channels * k).map(|s| (s / k * self.padded_height() + s % k) * wp).collect();
        let (tile_rows, width) = if wide { (ROWS_16, 16) } else { (ROWS_8, 8) };
        let in_len = self.in_channels * self.height * self.width;
        let padded_len = self.saved_per_row_fast();
        let mut acc = [[0.0f32; 16]; ROWS_8];
        let mut a = [std::ptr::null::<f32>(); ROWS_8];
        for r in 0..rows {
            let padded = &mut saved[r * padded_len..(r + 1) * padded_len];
            self.pad(&x[r * in_len..(r + 1) * in_len], padded);
            let out = &mut y[r * m * positions..(r + 1) * m * positions];
            for p0 in (0..positions).step_by(tile_rows) {
                let n = tile_rows.min(positions - p0);
                for (i, a) in a[..n].iter_mut().enumerate() {
                    let (oh, ow) = ((p0 + i) / self.out_width, (p0 + i) % self.out_width);
                    *a = padded[oh * wp + ow..].as_ptr();
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
        let (m, k, wp) = (self.out_channels, self.kernel, self.padded_width());
        let patch = self.in_channels * k * k;
        let (ow_n, positions) = (self.out_width, self.out_height * self.out_width);
        let out_len = m * positions;
        let padded_len = self.saved_per_row_fast();
        if rows == 0 {
            grad_weight.fill(0.0);
            grad_bias.fill(0.0);
            return;
        }
        let mut acc = [[0.0f32; 16]; ROWS_8];
        let mut a = [std::ptr::null::<f32>(); ROWS_8];
        // ∂b: each channel's sum over the images and positions, in order.
        grad_bias.fill(0.0);
        for r in 0..rows {
            for (g, channel) in grad_bias.iter_mut().zip(dy[r * out_len..(r + 1) * out_len].chunks_exact(positions)) {
                *g += channel.iter().sum::<f32>();
            }
        }
        // ∂W: tiles of patch elements × channels over each image's positions (segments: the
        // output rows), summed over the images in order.
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
        let Some(dx) = dx else { return };
        // ∂patch(p) = Σ_m ∂y[m][p] W[m]: tiles of positions × 16 patch elements over the channels.
        let kp = patch.next_multiple_of(16);
        let mut w_padded = vec![0.0f32; m * kp];
        for (dst, src) in w_padded.chunks_exact_mut(kp).zip(weight.chunks_exact(patch)) {
            dst[..patch].copy_from_slice(src);
        }
        let in_len = self.in_channels * self.height * self.width;
        let mut dpatch = vec![0.0f32; positions * kp];
        for r in 0..rows {
            let dy_image = &dy[r * out_len..(r + 1) * out_len];
            for p0 in (0..positions).step_by(ROWS_16) {
                let n = ROWS_16.min(positions - p0);
                for (i, a) in a[..n].iter_mut().enumerate() {
                    *a = dy_image[p0 + i..].as_ptr();
                }
                for k0 in (0..kp).step_by(16) {
                    // SAFETY: a(i, j) = ∂y[j][p0 + i] lies in the image's ∂y for j < m;
                    // `w_padded` has `m` rows of `kp >= k0 + 16` values.
                    unsafe {
                        run_tile(true, true, &a[..n], &[0], m, positions, w_padded.as_ptr().add(k0), kp, &mut acc[..n])
                    };
                    for (i, row) in acc[..n].iter().enumerate() {
                        dpatch[(p0 + i) * kp + k0..(p0 + i) * kp + k0 + 16].copy_from_slice(row);
                    }
                }
            }
            self.scatter_patches(&dpatch, kp, &mut dx[r * in_len..(r + 1) * in_len]);
        }
    }

    /// Adds each position's patch gradient (`dpatch`, rows of `kp`) onto the image positions it
    /// was read from, overwriting `image` first.
    fn scatter_patches(&self, dpatch: &[f32], kp: usize, image: &mut [f32]) {
        image.fill(0.0);
        let (k, pad, h, w) = (self.kernel, self.padding, self.height, self.width);
        for (p, row) in dpatch.chunks_exact(kp).enumerate() {
            let (oh, ow) = (p / self.out_width, p % self.out_width);
            let left = ow.wrapping_sub(pad);
            let inside = left < w && left + k <= w;
            for c in 0..self.in_channels {
                for kh in 0..k {
                    let ih = (oh + kh).wrapping_sub(pad);
                    if ih >= h {
                        continue;
                    }
                    let src = &row[(c * k + kh) * k..(c * k + kh + 1) * k];
                    let dst = &mut image[(c * h + ih) * w..(c * h + ih + 1) * w];
                    if inside {
                        for (d, &v) in dst[left..left + k].iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (kw, &v) in src.iter().enumerate() {
                            let iw = left.wrapping_add(kw);
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
