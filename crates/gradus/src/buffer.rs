//! Allocation of large `f32` buffers (parameters, gradients, optimizer state).
//!
//! An optimizer step streams every buffer through memory once, so it runs at memory bandwidth;
//! with 4 KiB pages, a 200 MB buffer spans 50,000 pages and the walk misses the TLB every 4 KiB.
//! On Linux, buffers of at least 2 MiB are advised onto transparent huge pages before they are
//! first written, which the kernel honours when its policy is `madvise` or `always`. Elsewhere,
//! or when the advice is refused, the buffer is an ordinary allocation: this changes speed only.

/// Buffers at least this long (in elements) are advised onto huge pages.
const HUGE_PAGE_ELEMENTS: usize = (2 << 20) / std::mem::size_of::<f32>();

/// A vector of `len` copies of `value`, on huge pages where the platform allows.
pub fn filled(len: usize, value: f32) -> Vec<f32> {
    if len < HUGE_PAGE_ELEMENTS {
        return vec![value; len];
    }
    let mut buffer: Vec<f32> = Vec::with_capacity(len);
    advise_huge_pages(buffer.as_mut_ptr() as *mut u8, len * std::mem::size_of::<f32>());
    buffer.resize(len, value);
    buffer
}

/// A vector holding a copy of `values`, on huge pages where the platform allows.
pub fn copied(values: &[f32]) -> Vec<f32> {
    if values.len() < HUGE_PAGE_ELEMENTS {
        return values.to_vec();
    }
    let mut buffer: Vec<f32> = Vec::with_capacity(values.len());
    advise_huge_pages(buffer.as_mut_ptr() as *mut u8, std::mem::size_of_val(values));
    buffer.extend_from_slice(values);
    buffer
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(start: *mut u8, bytes: usize) {
    // madvise wants a page-aligned start: advise the whole pages inside the allocation.
    const PAGE: usize = 4096;
    let first = (start as usize).next_multiple_of(PAGE);
    let end = (start as usize + bytes) / PAGE * PAGE;
    if end > first {
        // SAFETY: [first, end) lies inside an allocation this process owns; MADV_HUGEPAGE only
        // changes how the kernel backs it, never its contents. A failure is harmless and ignored.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: *mut u8, _bytes: usize) {}

#[cfg(test)]
mod tests {
    #[test]
    fn buffers_hold_what_was_asked() {
        for len in [0, 1, 1000, super::HUGE_PAGE_ELEMENTS + 3] {
            let b = super::filled(len, 1.5);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&v| v == 1.5));
            let c = super::copied(&b);
            assert_eq!(b, c);
        }
    }
}
