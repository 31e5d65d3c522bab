//! Large zeroed buffers backed by transparent huge pages where the kernel offers them, so
//! filling hundreds of MB of weights at load costs a few hundred page faults instead of a
//! hundred thousand (each 4 KiB fault costs microseconds, more in a VM).
//!
//! Linux only: a buffer of at least [`HUGE_MIN_BYTES`] is allocated untouched, the 2 MiB
//! aligned part of it is marked `MADV_HUGEPAGE`, and the whole of it is faulted in with one
//! `MADV_POPULATE_WRITE` call (Linux 5.14+) before it is written, instead of one fault per
//! 4 KiB page for the parts not on huge pages. Elsewhere, or when the kernel refuses either
//! advice (THP `never`, an older kernel), it is an ordinary zeroed `Vec`.

/// Buffers from this size on are advised (a few pages' worth of faults is not worth a
/// system call).
pub const HUGE_MIN_BYTES: usize = 256 << 10;

/// The base page size advised in.
const PAGE: usize = 4 << 10;

/// The huge page size advised for (x86-64's 2 MiB).
const HUGE_PAGE: usize = 2 << 20;

/// `n` zeroed values, on huge pages where possible. The zeros cost nothing extra: a large
/// zeroed allocation is fresh memory the kernel hands out zeroed (`vec!` asks for it with
/// `calloc`), advised before anything touches it.
pub fn zeroed_vec(n: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    let bytes = n.saturating_mul(4);
    if bytes >= HUGE_MIN_BYTES {
        advise_huge(v.as_mut_ptr().cast(), bytes);
    }
    v
}

/// An empty `Vec` with room for `n` values, its memory on huge pages where possible and
/// faulted in already, for a caller that fills it by pushing (each value written once).
pub fn empty_vec<T>(n: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    let bytes = n.saturating_mul(std::mem::size_of::<T>());
    if bytes >= HUGE_MIN_BYTES {
        advise_huge(v.as_mut_ptr().cast(), bytes);
    }
    v
}

/// Marks the whole huge pages inside `[ptr, ptr + bytes)` for transparent huge pages, then
/// faults in the whole pages of the range.
#[cfg(target_os = "linux")]
fn advise_huge(ptr: *mut u8, bytes: usize) {
    static MODE: std::sync::OnceLock<(bool, bool)> = std::sync::OnceLock::new();
    let (huge, populate) = *MODE.get_or_init(|| {
        let v = std::env::var("HOOKLENS_HUGE_PAGES").unwrap_or_default();
        (v != "0" && v != "populate", v != "0" && v != "huge")
    });
    let advise = |align: usize, advice: libc::c_int| {
        let start = (ptr as usize).next_multiple_of(align);
        let end = (ptr as usize + bytes) / align * align;
        if end > start {
            // SAFETY: [start, end) lies inside the allocation that `ptr` starts (the caller's
            // capacity of `bytes` bytes), page aligned. MADV_HUGEPAGE changes only how the
            // kernel backs those pages and MADV_POPULATE_WRITE only faults them in (as a
            // write would, keeping their contents); a failure changes nothing.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) };
        }
    };
    if huge {
        advise(HUGE_PAGE, libc::MADV_HUGEPAGE);
    }
    if populate {
        advise(PAGE, libc::MADV_POPULATE_WRITE);
    }
}

/// No huge page advice off Linux.
#[cfg(not(target_os = "linux"))]
fn advise_huge(_ptr: *mut u8, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_vecs_take_what_is_pushed() {
        let n = HUGE_MIN_BYTES / 8 + 3;
        let mut v: Vec<u64> = empty_vec(n);
        assert!(v.is_empty() && v.capacity() >= n);
        v.extend(0..n as u64);
        assert_eq!((v[0], v[n - 1]), (0, n as u64 - 1));
    }

    #[test]
    fn zeroed_vecs_of_every_size_are_zero_and_writable() {
        for n in [0, 1, 1000, (HUGE_MIN_BYTES / 4) + 12_345] {
            let mut v = zeroed_vec(n);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 0.0));
            if let Some(last) = v.last_mut() {
                *last = 1.5;
                assert_eq!(v[n - 1], 1.5);
            }
        }
    }
}
