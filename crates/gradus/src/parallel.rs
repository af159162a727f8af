//! Splitting element-wise work across threads at fixed boundaries.
//!
//! Every optimizer update is element-wise, so each element's result depends only on its own
//! inputs: splitting the buffers anywhere gives the same bits. Splits are still made at multiples
//! of [`CHUNK`] so that each piece stays SIMD-aligned and large enough to amortize a task.

/// Buffers shorter than this run on the calling thread: below it, waking workers costs more
/// than it saves (a step on 1,000 parameters takes well under a microsecond).
pub const PARALLEL_THRESHOLD: usize = 1 << 16;

/// Granularity of the splits, in elements (64 KiB of `f32`).
pub const CHUNK: usize = 1 << 14;

/// Runs `kernel(params, grads, states)` over the buffers, splitting them at the same indices and
/// running the pieces on rayon's pool when they are long. All slices must have equal length.
pub fn for_each_split<const K: usize, F>(params: &mut [f32], grads: &[f32], states: [&mut [f32]; K], kernel: &F)
where
    F: Fn(&mut [f32], &[f32], [&mut [f32]; K]) + Sync,
{
    debug_assert!(states.iter().all(|s| s.len() == params.len()));
    debug_assert_eq!(grads.len(), params.len());
    let len = params.len();
    if len < PARALLEL_THRESHOLD || rayon::current_num_threads() == 1 {
        kernel(params, grads, states);
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
        || for_each_split(left_params, left_grads, left_states, kernel),
        || for_each_split(right_params, right_grads, right_states, kernel),
    );
}
