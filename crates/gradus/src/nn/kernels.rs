//! Hand-written `f32` layer passes for small batches, where a general matrix product spends much
//! of its time packing its operands.
//!
//! Every output element is computed by the same sequence of operations whichever tile, row range
//! or thread it falls in, so splitting the work (across threads, or into tiles of any shape)
//! never changes a bit. Each pass is compiled three times: for AVX-512 and for AVX2 (both with
//! fused multiply-adds, chosen at run time; they give the same bits, only their tile shapes
//! differ) and for the baseline target (unfused, so its last bits may differ).

/// The rows of a row-major matrix, in place or picked by index (so that a batch of scattered
/// training rows needs no copy).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowSource<'a> {
    data: &'a [f32],
    width: usize,
    index: Option<&'a [usize]>,
    rows: usize,
}

impl<'a> RowSource<'a> {
    /// All rows of `data`, `width` wide.
    pub(crate) fn dense(data: &'a [f32], width: usize) -> Self {
        assert!(width > 0, "rows of width 0");
        Self { data, width, index: None, rows: data.len() / width }
    }

    /// The rows of `data` at `index`, in that order.
    ///
    /// # Panics
    /// If an index is out of range.
    pub(crate) fn indexed(data: &'a [f32], width: usize, index: &'a [usize]) -> Self {
        assert!(width > 0, "rows of width 0");
        let rows = data.len() / width;
        assert!(index.iter().all(|&i| i < rows), "row index out of range");
        Self { data, width, index: Some(index), rows: index.len() }
    }

    /// Rows `range` of this source.
    pub(crate) fn slice(self, range: std::ops::Range<usize>) -> Self {
        assert!(range.start <= range.end && range.end <= self.rows, "row range out of bounds");
        match self.index {
            Some(index) => Self { index: Some(&index[range.clone()]), rows: range.len(), ..self },
            None => {
                Self { data: &self.data[range.start * self.width..range.end * self.width], rows: range.len(), ..self }
            }
        }
    }

    /// The number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Row `r`'s first element.
    ///
    /// # Safety
    /// `r` must be below [`RowSource::rows`].
    #[inline(always)]
    unsafe fn row(&self, r: usize) -> *const f32 {
        // SAFETY: `r < rows`, and every index was checked against the data at construction.
        unsafe {
            let i = match self.index {
                Some(index) => *index.get_unchecked(r),
                None => r,
            };
            self.data.as_ptr().add(i * self.width)
        }
    }
}

/// Interleaved partial sums per dot product (one 512-bit or two 256-bit vectors).
const LANES: usize = 16;

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Adds the lanes pairwise (a fixed tree), then `tail`.
#[inline(always)]
fn reduce(mut lanes: [f32; LANES], tail: f32) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    lanes[0] + tail
}

/// [`dot_tile`] of a 4 × 4 tile in AVX-512, with the same bits: the same fused multiply-adds
/// into 16 lanes per product, each product's lanes summed by [`reduce`]'s tree (lane i +
/// lane i + 8, then + 4, + 2, + 1), then its tail, then the bias.
///
/// Instead of 16 horizontal sums (a fifth of the generic tile's time), four rounds of
/// shuffles pair up the accumulators so that every add works on 16 lanes: after round one
/// each vector holds two products' eight partial sums, after round two four products' four,
/// and so on, until one vector holds row r's four sums in its 128-bit block r. A function of
/// its own, compiled for AVX-512 and not inlined, with its sixteen accumulators named one by
/// one: so written, they stay in registers.
///
/// # Safety
/// The CPU must have AVX-512F and FMA; each `x[r]` and `w[c]` must address `n` readable
/// floats, `bias` 4 and each `out[r]` 4 writable ones.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dot_tile_4x4_avx512(x: [*const f32; 4], w: [*const f32; 4], n: usize, bias: *const f32, out: [*mut f32; 4]) {
    use std::arch::x86_64::*;
    let z = _mm512_setzero_ps();
    // a{c}{r} accumulates x[r] · w[c].
    let (mut a00, mut a01, mut a02, mut a03) = (z, z, z, z);
    let (mut a10, mut a11, mut a12, mut a13) = (z, z, z, z);
    let (mut a20, mut a21, mut a22, mut a23) = (z, z, z, z);
    let (mut a30, mut a31, mut a32, mut a33) = (z, z, z, z);
    let full = n / LANES * LANES;
    let mut k = 0;
    while k < full {
        // SAFETY: k + LANES <= n.
        unsafe {
            let (x0, x1, x2, x3) = (
                _mm512_loadu_ps(x[0].add(k)),
                _mm512_loadu_ps(x[1].add(k)),
                _mm512_loadu_ps(x[2].add(k)),
                _mm512_loadu_ps(x[3].add(k)),
            );
            let w0 = _mm512_loadu_ps(w[0].add(k));
            a00 = _mm512_fmadd_ps(x0, w0, a00);
            a01 = _mm512_fmadd_ps(x1, w0, a01);
            a02 = _mm512_fmadd_ps(x2, w0, a02);
            a03 = _mm512_fmadd_ps(x3, w0, a03);
            let w1 = _mm512_loadu_ps(w[1].add(k));
            a10 = _mm512_fmadd_ps(x0, w1, a10);
            a11 = _mm512_fmadd_ps(x1, w1, a11);
            a12 = _mm512_fmadd_ps(x2, w1, a12);
            a13 = _mm512_fmadd_ps(x3, w1, a13);
            let w2 = _mm512_loadu_ps(w[2].add(k));
            a20 = _mm512_fmadd_ps(x0, w2, a20);
            a21 = _mm512_fmadd_ps(x1, w2, a21);
            a22 = _mm512_fmadd_ps(x2, w2, a22);
            a23 = _mm512_fmadd_ps(x3, w2, a23);
            let w3 = _mm512_loadu_ps(w[3].add(k));
            a30 = _mm512_fmadd_ps(x0, w3, a30);
            a31 = _mm512_fmadd_ps(x1, w3, a31);
            a32 = _mm512_fmadd_ps(x2, w3, a32);
            a33 = _mm512_fmadd_ps(x3, w3, a33);
        }
        k += LANES;
    }
    let mut tails = [0.0f32; 16];
    for (t, tail) in tails.iter_mut().enumerate() {
        let (r, c) = (t / 4, t % 4);
        for k in full..n {
            // SAFETY: k < n.
            *tail = unsafe { (*x[r].add(k)).mul_add(*w[c].add(k), *tail) };
        }
    }
    // Vector 4c + r is x[r] · w[c] (column-major), so that the sums come out by rows.
    let acc = [a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33];
    // Lanes i + 8 onto i: [a.lo, b.lo] + [a.hi, b.hi] (256-bit halves).
    let s: [__m512; 8] = std::array::from_fn(|m| {
        let (a, b) = (acc[2 * m], acc[2 * m + 1]);
        _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(a, b), _mm512_shuffle_f32x4::<0xEE>(a, b))
    });
    // Lanes i + 4 onto i: 128-bit blocks 0, 2 of each plus blocks 1, 3.
    let t: [__m512; 4] = std::array::from_fn(|p| {
        let (a, b) = (s[2 * p], s[2 * p + 1]);
        _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(a, b), _mm512_shuffle_f32x4::<0xDD>(a, b))
    });
    // Lanes i + 2 onto i, within each 128-bit block.
    let u: [__m512; 2] = std::array::from_fn(|q| {
        let (a, b) = (t[2 * q], t[2 * q + 1]);
        _mm512_add_ps(_mm512_shuffle_ps::<0x44>(a, b), _mm512_shuffle_ps::<0xEE>(a, b))
    });
    // Lane i + 1 onto i: block r now holds row r's four sums.
    let sums = _mm512_add_ps(_mm512_shuffle_ps::<0x88>(u[0], u[1]), _mm512_shuffle_ps::<0xDD>(u[0], u[1]));
    // SAFETY: `tails` holds 16 floats, `bias` 4.
    let (tails, bias) = unsafe { (_mm512_loadu_ps(tails.as_ptr()), _mm512_broadcast_f32x4(_mm_loadu_ps(bias))) };
    let rows = _mm512_add_ps(bias, _mm512_add_ps(sums, tails));
    // SAFETY: each `out[r]` addresses 4 writable floats.
    unsafe {
        _mm_storeu_ps(out[0], _mm512_extractf32x4_ps::<0>(rows));
        _mm_storeu_ps(out[1], _mm512_extractf32x4_ps::<1>(rows));
        _mm_storeu_ps(out[2], _mm512_extractf32x4_ps::<2>(rows));
        _mm_storeu_ps(out[3], _mm512_extractf32x4_ps::<3>(rows));
    }
}

/// `out[r][c] = bias[c] + x[r] · w[c]` for an `R × C` tile; `x` and `w` point at rows `n` long.
///
/// # Safety
/// Each `x[r]` and `w[c]` must address `n` readable elements, each `out[r]` `C` writable ones.
#[inline(always)]
unsafe fn dot_tile<const FMA: bool, const AVX512: bool, const R: usize, const C: usize>(
    x: [*const f32; R],
    w: [*const f32; C],
    n: usize,
    bias: &[f32],
    out: [*mut f32; R],
) {
    #[cfg(target_arch = "x86_64")]
    if AVX512 && R == 4 && C == 4 {
        // Called through an opaque pointer: inlined here (`#[inline(never)]` did not prevent
        // it), the kernel's accumulators were spilled to the stack on every step, and the
        // pass ran 25% slower than with the generic tile instead of 25% faster.
        let kernel: unsafe fn([*const f32; 4], [*const f32; 4], usize, *const f32, [*mut f32; 4]) = dot_tile_4x4_avx512;
        // SAFETY: `AVX512` is set only in the AVX-512 kernels, which run only where the CPU
        // has it; the rows and outputs are the caller's promise.
        unsafe {
            std::hint::black_box(kernel)(
                std::array::from_fn(|r| x[r % R]),
                std::array::from_fn(|c| w[c % C]),
                n,
                bias.as_ptr(),
                std::array::from_fn(|r| out[r % R]),
            )
        };
        return;
    }
    let mut acc = [[[0.0f32; LANES]; C]; R];
    let full = n / LANES * LANES;
    let mut k = 0;
    while k < full {
        for r in 0..R {
            // SAFETY: k + LANES <= n.
            let xv: [f32; LANES] = unsafe { *(x[r].add(k) as *const [f32; LANES]) };
            for c in 0..C {
                let wv: [f32; LANES] = unsafe { *(w[c].add(k) as *const [f32; LANES]) };
                for l in 0..LANES {
                    acc[r][c][l] = madd::<FMA>(xv[l], wv[l], acc[r][c][l]);
                }
            }
        }
        k += LANES;
    }
    for r in 0..R {
        for c in 0..C {
            let mut tail = 0.0f32;
            for k in full..n {
                // SAFETY: k < n.
                tail = unsafe { madd::<FMA>(*x[r].add(k), *w[c].add(k), tail) };
            }
            // SAFETY: c < C.
            unsafe { *out[r].add(c) = bias[c] + reduce(acc[r][c], tail) };
        }
    }
}

/// `out (rows × n_out) = x (rows × n_in) · wᵀ + bias`, `w` stored `[n_out][n_in]`.
#[inline(always)]
fn forward_impl<const FMA: bool, const AVX512: bool, const R: usize, const C: usize>(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n_in: usize,
    out: &mut [f32],
) {
    let n_out = bias.len();
    let rows = out.len() / n_out;
    assert!(x.len() >= rows * n_in && w.len() >= n_out * n_in && out.len() == rows * n_out);
    let (xp, wp, op) = (x.as_ptr(), w.as_ptr(), out.as_mut_ptr());
    // SAFETY (all calls): the asserts above bound every row and column addressed.
    unsafe {
        let mut r = 0;
        while r + R <= rows {
            let xr: [*const f32; R] = std::array::from_fn(|i| xp.add((r + i) * n_in));
            let orow: [*mut f32; R] = std::array::from_fn(|i| op.add((r + i) * n_out));
            let mut c = 0;
            while c + C <= n_out {
                let wc: [*const f32; C] = std::array::from_fn(|j| wp.add((c + j) * n_in));
                dot_tile::<FMA, AVX512, R, C>(xr, wc, n_in, &bias[c..], orow.map(|p| p.add(c)));
                c += C;
            }
            if C > 2 && c + 2 <= n_out {
                let wc = [wp.add(c * n_in), wp.add((c + 1) * n_in)];
                dot_tile::<FMA, AVX512, R, 2>(xr, wc, n_in, &bias[c..], orow.map(|p| p.add(c)));
                c += 2;
            }
            for c in c..n_out {
                dot_tile::<FMA, AVX512, R, 1>(xr, [wp.add(c * n_in)], n_in, &bias[c..], orow.map(|p| p.add(c)));
            }
            r += R;
        }
        for r in r..rows {
            let xr = [xp.add(r * n_in)];
            let orow = [op.add(r * n_out)];
            let mut c = 0;
            while c + C <= n_out {
                let wc: [*const f32; C] = std::array::from_fn(|j| wp.add((c + j) * n_in));
                dot_tile::<FMA, AVX512, 1, C>(xr, wc, n_in, &bias[c..], orow.map(|p| p.add(c)));
                c += C;
            }
            for c in c..n_out {
                dot_tile::<FMA, AVX512, 1, 1>(xr, [wp.add(c * n_in)], n_in, &bias[c..], orow.map(|p| p.add(c)));
            }
        }
    }
}

/// `out[j][k] = Σᵣ a[r][j] b[r][k]` (rows in order, starting from zero) for the `J × K` tile
/// at (`j`, `k`); `a` is `rows × a_stride`, `b` is `rows × b_stride`, `out` is `[…][out_stride]`.
///
/// # Safety
/// Every element addressed must lie in the buffers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn outer_tile<const FMA: bool, const J: usize, const K: usize>(
    a: *const f32,
    a_stride: usize,
    b: RowSource<'_>,
    rows: usize,
    j: usize,
    k: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let mut acc = [[0.0f32; K]; J];
    for r in 0..rows {
        // SAFETY: forwarded from the caller.
        let bv: [f32; K] = unsafe { *(b.row(r).add(k) as *const [f32; K]) };
        for (jj, acc) in acc.iter_mut().enumerate() {
            let av = unsafe { *a.add(r * a_stride + j + jj) };
            for l in 0..K {
                acc[l] = madd::<FMA>(av, bv[l], acc[l]);
            }
        }
    }
    for (jj, acc) in acc.iter().enumerate() {
        // SAFETY: forwarded from the caller.
        unsafe { *(out.add((j + jj) * out_stride + k) as *mut [f32; K]) = *acc };
    }
}

/// `out[j][k] = Σᵣ a[r][j] b[r][k]` for `j` in `j_range` (written to `out`'s rows from 0) and
/// every `k < b_width`: `aᵀ b` over `rows` rows, each element summed over the rows in order.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn outer_impl<const FMA: bool, const J: usize, const K: usize, const K_TAIL: usize>(
    a: &[f32],
    a_width: usize,
    b: RowSource<'_>,
    b_width: usize,
    rows: usize,
    j_range: std::ops::Range<usize>,
    out: &mut [f32],
) {
    assert!(a.len() >= rows * a_width && b.rows >= rows && b.width == b_width && j_range.end <= a_width);
    assert!(out.len() >= j_range.len() * b_width);
    let (ap, bp) = (a.as_ptr(), b);
    // `out` row o is j = j_range.start + o: shift `a` so that column j lines up with o.
    // SAFETY (all calls): the asserts above bound every element addressed.
    unsafe {
        let ap = ap.add(j_range.start);
        let op = out.as_mut_ptr();
        let js = j_range.len();
        let mut j = 0;
        while j + J <= js {
            let mut k = 0;
            while k + K <= b_width {
                outer_tile::<FMA, J, K>(ap, a_width, bp, rows, j, k, op, b_width);
                k += K;
            }
            while k + K_TAIL <= b_width {
                outer_tile::<FMA, J, K_TAIL>(ap, a_width, bp, rows, j, k, op, b_width);
                k += K_TAIL;
            }
            for k in k..b_width {
                outer_tile::<FMA, J, 1>(ap, a_width, bp, rows, j, k, op, b_width);
            }
            j += J;
        }
        if J > 2 && j + 2 <= js {
            let mut k = 0;
            while k + K <= b_width {
                outer_tile::<FMA, 2, K>(ap, a_width, bp, rows, j, k, op, b_width);
                k += K;
            }
            while k + K_TAIL <= b_width {
                outer_tile::<FMA, 2, K_TAIL>(ap, a_width, bp, rows, j, k, op, b_width);
                k += K_TAIL;
            }
            for k in k..b_width {
                outer_tile::<FMA, 2, 1>(ap, a_width, bp, rows, j, k, op, b_width);
            }
            j += 2;
        }
        for j in j..js {
            let mut k = 0;
            while k + K <= b_width {
                outer_tile::<FMA, 1, K>(ap, a_width, bp, rows, j, k, op, b_width);
                k += K;
            }
            while k + K_TAIL <= b_width {
                outer_tile::<FMA, 1, K_TAIL>(ap, a_width, bp, rows, j, k, op, b_width);
                k += K_TAIL;
            }
            for k in k..b_width {
                outer_tile::<FMA, 1, 1>(ap, a_width, bp, rows, j, k, op, b_width);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn forward_avx512(x: &[f32], w: &[f32], bias: &[f32], n_in: usize, out: &mut [f32]) {
    forward_impl::<true, true, 4, 4>(x, w, bias, n_in, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_avx2(x: &[f32], w: &[f32], bias: &[f32], n_in: usize, out: &mut [f32]) {
    forward_impl::<true, false, 2, 3>(x, w, bias, n_in, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn outer_avx512(
    a: &[f32],
    a_width: usize,
    b: RowSource<'_>,
    b_width: usize,
    rows: usize,
    j: std::ops::Range<usize>,
    out: &mut [f32],
) {
    outer_impl::<true, 4, 64, 16>(a, a_width, b, b_width, rows, j, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn outer_avx2(
    a: &[f32],
    a_width: usize,
    b: RowSource<'_>,
    b_width: usize,
    rows: usize,
    j: std::ops::Range<usize>,
    out: &mut [f32],
) {
    outer_impl::<true, 4, 24, 8>(a, a_width, b, b_width, rows, j, out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Isa {
    Avx512,
    Avx2,
    Baseline,
}

fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx2") && has!("fma") {
            return Isa::Avx512;
        }
        if has!("avx2") && has!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}

/// `out (rows × n_out) = x (rows × n_in) · wᵀ + bias` with `w` stored `[n_out][n_in]`.
pub(crate) fn forward(x: RowSource<'_>, w: &[f32], bias: &[f32], n_in: usize, out: &mut [f32]) {
    assert_eq!(x.width, n_in, "input width");
    let rows = out.len() / bias.len();
    assert!(x.rows >= rows, "too few input rows");
    match x.index {
        None => forward_dense(&x.data[..rows * n_in], w, bias, n_in, out),
        Some(index) => {
            // Picked rows are copied out for this pass (the product reads each row many
            // times; read through the index, its loop compiles to much slower code).
            thread_local! {
                static PICKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            let gather = |buffer: &mut Vec<f32>| {
                buffer.clear();
                for &i in &index[..rows] {
                    buffer.extend_from_slice(&x.data[i * n_in..(i + 1) * n_in]);
                }
            };
            PICKED.with(|cell| match cell.try_borrow_mut() {
                Ok(mut buffer) => {
                    gather(&mut buffer);
                    forward_dense(&buffer, w, bias, n_in, out)
                }
                Err(_) => {
                    let mut buffer = Vec::new();
                    gather(&mut buffer);
                    forward_dense(&buffer, w, bias, n_in, out)
                }
            })
        }
    }
}

fn forward_dense(x: &[f32], w: &[f32], bias: &[f32], n_in: usize, out: &mut [f32]) {
    match isa() {
        // SAFETY: the CPU has the features, checked by `isa`.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { forward_avx512(x, w, bias, n_in, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { forward_avx2(x, w, bias, n_in, out) },
        _ => forward_impl::<false, false, 2, 2>(x, w, bias, n_in, out),
    }
}

/// Rows `j_range` of `aᵀ b` into `out` (`j_range.len() × b_width`): `a` is `rows × a_width`,
/// `b` is `rows × b_width`; each element is summed over the rows in order.
pub(crate) fn outer(
    a: &[f32],
    a_width: usize,
    b: RowSource<'_>,
    b_width: usize,
    rows: usize,
    j_range: std::ops::Range<usize>,
    out: &mut [f32],
) {
    match isa() {
        // SAFETY: the CPU has the features, checked by `isa`.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { outer_avx512(a, a_width, b, b_width, rows, j_range, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { outer_avx2(a, a_width, b, b_width, rows, j_range, out) },
        _ => outer_impl::<false, 2, 16, 4>(a, a_width, b, b_width, rows, j_range, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    /// The tile shape decides only which elements are computed together, never their bits:
    /// the dispatched kernels (big tiles) match 1 × 1 tiles of the same arithmetic.
    #[test]
    fn tile_shapes_do_not_change_a_bit() {
        if isa() == Isa::Baseline {
            return;
        }
        for (rows, n_in, n_out) in [(1, 1, 1), (7, 33, 5), (13, 100, 19), (64, 784, 12)] {
            let (x, w, bias) = (values(rows * n_in, 1), values(n_out * n_in, 2), values(n_out, 3));
            let (mut tiled, mut single) = (vec![0.0; rows * n_out], vec![0.0; rows * n_out]);
            forward(RowSource::dense(&x, n_in), &w, &bias, n_in, &mut tiled);
            forward_impl::<true, false, 1, 1>(&x, &w, &bias, n_in, &mut single);
            assert_eq!(tiled, single);
            let (mut tiled, mut single) = (vec![0.0; n_out * n_in], vec![0.0; n_out * n_in]);
            outer(&bias.repeat(rows), n_out, RowSource::dense(&x, n_in), n_in, rows, 0..n_out, &mut tiled);
            outer_impl::<true, 1, 1, 1>(
                &bias.repeat(rows),
                n_out,
                RowSource::dense(&x, n_in),
                n_in,
                rows,
                0..n_out,
                &mut single,
            );
            assert_eq!(tiled, single);
            // A range of rows of the product equals those rows of the whole.
            let mut part = vec![0.0; n_in];
            outer(&bias.repeat(rows), n_out, RowSource::dense(&x, n_in), n_in, rows, n_out - 1..n_out, &mut part);
            assert_eq!(part, tiled[(n_out - 1) * n_in..]);
        }
    }

    /// Rows picked by index give the same bits as the same rows copied out first.
    #[test]
    fn indexed_rows_match_gathered_rows() {
        let (rows, n_in, n_out) = (20, 45, 7);
        let (x, w, bias) = (values(rows * n_in, 8), values(n_out * n_in, 9), values(n_out, 10));
        let index: Vec<usize> = (0..13).map(|i| (i * 7) % rows).collect();
        let gathered: Vec<f32> = index.iter().flat_map(|&i| x[i * n_in..(i + 1) * n_in].to_vec()).collect();
        let (mut by_index, mut by_copy) = (vec![0.0; 13 * n_out], vec![0.0; 13 * n_out]);
        forward(RowSource::indexed(&x, n_in, &index), &w, &bias, n_in, &mut by_index);
        forward(RowSource::dense(&gathered, n_in), &w, &bias, n_in, &mut by_copy);
        assert_eq!(by_index, by_copy);
        let delta = values(13 * n_out, 11);
        let (mut by_index, mut by_copy) = (vec![0.0; n_out * n_in], vec![0.0; n_out * n_in]);
        let source = RowSource::indexed(&x, n_in, &index).slice(0..13);
        outer(&delta, n_out, source, n_in, 13, 0..n_out, &mut by_index);
        outer(&delta, n_out, RowSource::dense(&gathered, n_in), n_in, 13, 0..n_out, &mut by_copy);
        assert_eq!(by_index, by_copy);
    }

    #[test]
    fn kernels_compute_the_products() {
        let (rows, n_in, n_out) = (6, 37, 9);
        let (x, w, bias) = (values(rows * n_in, 4), values(n_out * n_in, 5), values(n_out, 6));
        let mut out = vec![0.0; rows * n_out];
        forward(RowSource::dense(&x, n_in), &w, &bias, n_in, &mut out);
        let delta = values(rows * n_out, 7);
        let mut grad = vec![0.0; n_out * n_in];
        outer(&delta, n_out, RowSource::dense(&x, n_in), n_in, rows, 0..n_out, &mut grad);
        for r in 0..rows {
            for c in 0..n_out {
                let exact: f64 =
                    bias[c] as f64 + (0..n_in).map(|k| x[r * n_in + k] as f64 * w[c * n_in + k] as f64).sum::<f64>();
                assert!((out[r * n_out + c] as f64 - exact).abs() < 1e-4, "forward {r} {c}");
            }
        }
        for j in 0..n_out {
            for k in 0..n_in {
                let exact: f64 = (0..rows).map(|r| delta[r * n_out + j] as f64 * x[r * n_in + k] as f64).sum();
                assert!((grad[j * n_in + k] as f64 - exact).abs() < 1e-5, "outer {j} {k}");
            }
        }
    }
}
