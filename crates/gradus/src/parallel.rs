//! Splitting element-wise work across threads at fixed boundaries.
//!
//! Every optimizer update is element-wise, so each element's result depends only on its own
//! inputs: splitting the buffers anywhere gives the same bits. Splits are still made at multiples
//! of [`CHUNK`] so that each piece stays SIMD-aligned and large enough to amortize a task.

use std::ops::Range;

/// Buffers shorter than this run on the calling thread: below it, waking workers costs more
/// than it saves (a step on 1,000 parameters takes well under a microsecond).
pub const PARALLEL_THRESHOLD: usize = 1 << 16;

/// Granularity of the splits, in elements (64 KiB of `f32`).
pub const CHUNK: usize = 1 << 14;

/// Runs `kernel(params, grads, states)` over the buffers, splitting them at the same indices and
/// running the pieces on rayon's pool when they are long. All slices must have equal length.
///
/// # Panics
/// When the slices differ in length (always in debug builds; in release builds when a split
/// falls beyond a shorter slice): the optimizers that call it check their buffers first.
///
/// Each piece runs through [`run_kernel`], which compiles the kernel a second time for AVX2 and
/// picks that build at run time where the CPU has it: the same IEEE operations on wider vectors,
/// so both builds give the same bits.
pub fn for_each_split<const K: usize, F>(params: &mut [f32], grads: &[f32], states: [&mut [f32]; K], kernel: &F)
where
    F: Fn(&mut [f32], &[f32], [&mut [f32]; K]) + Sync,
{
    debug_assert!(states.iter().all(|s| s.len() == params.len()));
    debug_assert_eq!(grads.len(), params.len());
    let threads = rayon::current_num_threads();
    if params.len() < PARALLEL_THRESHOLD || threads == 1 {
        run_kernel(params, grads, states, kernel);
        return;
    }
    // A few pieces per thread balance the load without paying for thousands of tiny tasks.
    let piece = params.len().div_ceil(4 * threads).next_multiple_of(CHUNK).max(PARALLEL_THRESHOLD / 2);
    split_run(params, grads, states, kernel, piece);
}

fn split_run<const K: usize, F>(params: &mut [f32], grads: &[f32], states: [&mut [f32]; K], kernel: &F, piece: usize)
where
    F: Fn(&mut [f32], &[f32], [&mut [f32]; K]) + Sync,
{
    let len = params.len();
    if len <= piece {
        run_kernel(params, grads, states, kernel);
        return;
    }
    let mid = (len / 2).div_ceil(CHUNK) * CHUNK;
    let mut left_states = states;
    let right_states: [&mut [f32]; K] = std::array::from_fn(|i| {
        let whole = std::mem::take(&mut left_states[i]);
        let (left, right) = whole.split_at_mut(mid);
        left_states[i] = left;
        right
    });
    let (left_params, right_params) = params.split_at_mut(mid);
    let (left_grads, right_grads) = grads.split_at(mid);
    rayon::join(
        || split_run(left_params, left_grads, left_states, kernel, piece),
        || split_run(right_params, right_grads, right_states, kernel, piece),
    );
}

/// Runs `kernel` once over the given slices, in its AVX2 build when the CPU supports it.
#[inline]
pub fn run_kernel<const K: usize, F>(params: &mut [f32], grads: &[f32], states: [&mut [f32]; K], kernel: &F)
where
    F: Fn(&mut [f32], &[f32], [&mut [f32]; K]),
{
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { run_kernel_avx2(params, grads, states, kernel) };
            return;
        }
    }
    kernel(params, grads, states);
}

/// The AVX2 build of a kernel: the closure is inlined here and vectorized 8 lanes wide. Only
/// AVX2 is enabled, not FMA, so no multiply-add is fused and the bits match the portable build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_kernel_avx2<const K: usize, F>(params: &mut [f32], grads: &[f32], states: [&mut [f32]; K], kernel: &F)
where
    F: Fn(&mut [f32], &[f32], [&mut [f32]; K]),
{
    kernel(params, grads, states);
}

/// Runs `kernel` on the pieces `pieces` (sorted by start, disjoint) of the buffers `mutable`
/// and `reads`, each piece with its own argument, splitting the list of pieces across rayon's
/// threads when they hold many elements together. Every buffer is cut at the same indices, so a
/// kernel sees the same piece of each; element-wise kernels give the same bits however the list
/// is split. Like [`run_kernel`], the pieces run in an AVX2 build where the CPU has it.
///
/// This is the sparse counterpart of [`for_each_split`]: the rows of an embedding table a batch
/// touched, a few thousand pieces of a few dozen elements, scattered over a large buffer.
///
/// # Panics
/// When a piece lies beyond a buffer.
pub fn for_each_piece<const M: usize, const R: usize, A, F>(
    mutable: [&mut [f32]; M],
    reads: [&[f32]; R],
    pieces: &[(Range<usize>, A)],
    kernel: &F,
) where
    A: Copy + Sync,
    F: Fn([&mut [f32]; M], [&[f32]; R], A) + Sync,
{
    let total: usize = pieces.iter().map(|(r, _)| r.len()).sum();
    let threads = rayon::current_num_threads();
    if total < PARALLEL_THRESHOLD || threads == 1 {
        run_pieces(mutable, reads, 0, pieces, kernel);
    } else {
        let target = total.div_ceil(4 * threads).max(PARALLEL_THRESHOLD / 2);
        split_pieces(mutable, reads, 0, pieces, total, kernel, target);
    }
}

fn split_pieces<const M: usize, const R: usize, A, F>(
    mutable: [&mut [f32]; M],
    reads: [&[f32]; R],
    offset: usize,
    pieces: &[(Range<usize>, A)],
    total: usize,
    kernel: &F,
    target: usize,
) where
    A: Copy + Sync,
    F: Fn([&mut [f32]; M], [&[f32]; R], A) + Sync,
{
    if total <= target || pieces.len() < 2 {
        run_pieces(mutable, reads, offset, pieces, kernel);
        return;
    }
    // The first piece of the right half: where the left one holds half of the elements.
    let (mut left_total, mut mid) = (0, 1);
    for (i, (range, _)) in pieces.iter().enumerate().take(pieces.len() - 1) {
        left_total += range.len();
        mid = i + 1;
        if 2 * left_total >= total {
            break;
        }
    }
    let at = pieces[mid].0.start - offset;
    let mut left = mutable;
    let right: [&mut [f32]; M] = std::array::from_fn(|i| {
        let whole = std::mem::take(&mut left[i]);
        let (l, r) = whole.split_at_mut(at);
        left[i] = l;
        r
    });
    let left_reads = reads.map(|r| &r[..at]);
    let right_reads = reads.map(|r| &r[at..]);
    rayon::join(
        || split_pieces(left, left_reads, offset, &pieces[..mid], left_total, kernel, target),
        || split_pieces(right, right_reads, offset + at, &pieces[mid..], total - left_total, kernel, target),
    );
}

/// The pieces one after the other, in the AVX2 build when the CPU has it.
fn run_pieces<const M: usize, const R: usize, A, F>(
    mutable: [&mut [f32]; M],
    reads: [&[f32]; R],
    offset: usize,
    pieces: &[(Range<usize>, A)],
    kernel: &F,
) where
    A: Copy,
    F: Fn([&mut [f32]; M], [&[f32]; R], A),
{
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { run_pieces_avx2(mutable, reads, offset, pieces, kernel) };
            return;
        }
    }
    run_pieces_portable(mutable, reads, offset, pieces, kernel);
}

#[inline(always)]
fn run_pieces_portable<const M: usize, const R: usize, A, F>(
    mut mutable: [&mut [f32]; M],
    reads: [&[f32]; R],
    offset: usize,
    pieces: &[(Range<usize>, A)],
    kernel: &F,
) where
    A: Copy,
    F: Fn([&mut [f32]; M], [&[f32]; R], A),
{
    for (range, argument) in pieces {
        let local = range.start - offset..range.end - offset;
        let m = mutable.each_mut().map(|buffer| &mut buffer[local.clone()]);
        let r = reads.map(|buffer| &buffer[local.clone()]);
        kernel(m, r, *argument);
    }
}

/// [`run_pieces_portable`] compiled for AVX2 (not FMA: the bits match the portable build).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_pieces_avx2<const M: usize, const R: usize, A, F>(
    mutable: [&mut [f32]; M],
    reads: [&[f32]; R],
    offset: usize,
    pieces: &[(Range<usize>, A)],
    kernel: &F,
) where
    A: Copy,
    F: Fn([&mut [f32]; M], [&[f32]; R], A),
{
    run_pieces_portable(mutable, reads, offset, pieces, kernel);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Adam-like kernel: sqrt, division and multiply-adds, the operations whose vector forms
    /// must round exactly as the scalar ones.
    fn kernel(p: &mut [f32], g: &[f32], [m, v]: [&mut [f32]; 2]) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = 0.9 * *m + 0.1 * g;
            *v = 0.999 * *v + 0.001 * g * g;
            *p -= 0.01 * *m / (v.sqrt() / 0.3 + 1e-8);
        }
    }

    #[test]
    fn the_dispatched_build_matches_the_portable_one_bit_for_bit() {
        let n = 4099;
        let g: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3).collect();
        let mut state = [vec![0.1f32; n], vec![0.2f32; n], vec![0.01f32; n]];
        let mut portable = state.clone();
        for _ in 0..5 {
            let [p, m, v] = &mut state;
            run_kernel(p, &g, [m, v], &kernel);
            let [p, m, v] = &mut portable;
            kernel(p, &g, [m, v]);
        }
        for (a, b) in state.iter().flatten().zip(portable.iter().flatten()) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }

    #[test]
    fn pieces_split_across_threads_give_the_sequential_bits() {
        let n = 300_000;
        let g: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3).collect();
        // Rows of 64 scattered over the buffer, each with its own factor.
        let pieces: Vec<(Range<usize>, f32)> =
            (0..n / 64).filter(|r| r % 3 != 1).map(|r| (r * 64..r * 64 + 64, 1.0 + r as f32 * 1e-3)).collect();
        let scale = |[p, m]: [&mut [f32]; 2], [g]: [&[f32]; 1], f: f32| {
            for ((p, m), &g) in p.iter_mut().zip(m.iter_mut()).zip(g) {
                *m = 0.9 * *m + 0.1 * g;
                *p -= f * *m / (m.abs().sqrt() + 1e-8);
            }
        };
        let (mut p, mut m) = (vec![0.5f32; n], vec![0.0f32; n]);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        pool.install(|| for_each_piece([&mut p, &mut m], [&g], &pieces, &scale));
        let (mut p1, mut m1) = (vec![0.5f32; n], vec![0.0f32; n]);
        for (range, f) in &pieces {
            scale([&mut p1[range.clone()], &mut m1[range.clone()]], [&g[range.clone()]], *f);
        }
        assert!(p.iter().zip(&p1).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(m.iter().zip(&m1).all(|(a, b)| a.to_bits() == b.to_bits()));
        // Rows outside the pieces are left alone.
        assert_eq!(p[64], 0.5);
        assert_ne!(p[0], 0.5);
    }
}
