//! Allocation of large output buffers.
//!
//! A fresh multi-megabyte output is bound by first-touch page faults, not by the copy: with
//! 4 KiB pages a 1 GiB output takes 262,144 faults. On Linux, where transparent huge pages are
//! commonly in `madvise` mode, asking for huge pages on the buffer cuts that 512-fold.

/// Outputs at least this large (bytes) ask for transparent huge pages.
const HUGE_PAGE_MIN_BYTES: usize = 8 << 20;

/// An empty `Vec` with capacity for `n` elements; large ones ask the kernel for huge pages.
pub(crate) fn output_buffer<T>(n: usize) -> Vec<T> {
    let out: Vec<T> = Vec::with_capacity(n);
    let bytes = n.saturating_mul(std::mem::size_of::<T>());
    if bytes >= HUGE_PAGE_MIN_BYTES {
        advise_huge_pages(out.as_ptr() as usize, bytes);
    }
    out
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(addr: usize, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = addr.div_ceil(HUGE) * HUGE;
    let end = (addr + len) / HUGE * HUGE;
    if end > start {
        // SAFETY: [start, end) lies inside the allocation just made and owned by the caller;
        // MADV_HUGEPAGE only changes how the kernel backs those pages, never their contents,
        // and a refusal (THP disabled) leaves the mapping as it was, so the result is ignored.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_addr: usize, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_have_the_asked_capacity() {
        let small: Vec<f32> = output_buffer(10);
        assert!(small.capacity() >= 10 && small.is_empty());
        let mut large: Vec<f32> = output_buffer(4 << 20);
        assert!(large.capacity() >= 4 << 20);
        large.resize(4 << 20, 1.5);
        assert_eq!(
            large.iter().map(|&x| x as f64).sum::<f64>(),
            1.5 * (4 << 20) as f64
        );
    }
}
