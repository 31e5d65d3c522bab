//! A read-only mapping of a whole file that the GEMM reads weights from in place (the
//! packed-weight cache). On Linux it starts on a 2 MiB boundary and is advised for huge
//! pages, so the page cache's large folios can be mapped whole: a 4 KiB mapping of hundreds
//! of MB of weights costs the GEMM TLB misses that anonymous huge pages do not.

use std::fs::File;

/// Huge page size on x86-64.
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;

/// A read-only mapping of a file, unmapped on drop.
pub struct MappedFile {
    inner: Inner,
}

enum Inner {
    /// Mapped by hand at an aligned address: `len` bytes at `ptr`.
    #[cfg(target_os = "linux")]
    Aligned { ptr: *const u8, len: usize },
    /// Wherever the system put it (other platforms, an empty file, or a refused placement).
    Plain(memmap2::Mmap),
}

// SAFETY: the mapping is read-only and owned by this value; sharing a read-only view of memory
// between threads is sound, and only `drop` unmaps it.
unsafe impl Send for MappedFile {}
// SAFETY: as for Send: every access is a read.
unsafe impl Sync for MappedFile {}

impl MappedFile {
    /// Maps all of `file` read-only and faults it in (the file should not change while
    /// mapped: see the caller's contract).
    ///
    /// # Safety
    /// The file must not be modified in place while the mapping lives (a truncation or an
    /// in-place write would change or remove memory the returned slices borrow).
    pub unsafe fn map(file: &File) -> std::io::Result<Self> {
        #[cfg(target_os = "linux")]
        {
            let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
            // SAFETY: passed through from the caller.
            if let Some(inner) = unsafe { map_aligned(file, len) } {
                return Ok(Self { inner });
            }
        }
        // SAFETY: passed through from the caller.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(file)? };
        Ok(Self {
            inner: Inner::Plain(map),
        })
    }
}

impl std::ops::Deref for MappedFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.inner {
            #[cfg(target_os = "linux")]
            // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
            Inner::Aligned { ptr, len } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
            Inner::Plain(map) => map,
        }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Inner::Aligned { ptr, len } = self.inner {
            // SAFETY: the range is the mapping `map_aligned` made, unmapped once, here.
            unsafe { libc::munmap(ptr as *mut libc::c_void, len) };
        }
    }
}

/// Maps `len` bytes of `file` at a 2 MiB-aligned address (a larger anonymous reservation,
/// trimmed), advises huge pages and faults the range in; `None` when any step is refused.
///
/// # Safety
/// As [`MappedFile::map`].
#[cfg(target_os = "linux")]
unsafe fn map_aligned(file: &File, len: usize) -> Option<Inner> {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return None;
    }
    let reserve_len = len.checked_add(HUGE_PAGE)?;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: a fresh inaccessible reservation at an address of the kernel's choice.
    let reserve = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            reserve_len,
            libc::PROT_NONE,
            flags,
            -1,
            0,
        )
    };
    if reserve == libc::MAP_FAILED {
        return None;
    }
    let start = reserve as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let fixed = libc::MAP_SHARED | libc::MAP_FIXED;
    // SAFETY: [aligned, aligned + len) lies inside the reservation made above, which nothing
    // else uses; MAP_FIXED replaces that part of it with the file.
    let ptr = unsafe {
        libc::mmap(
            aligned as *mut libc::c_void,
            len,
            libc::PROT_READ,
            fixed,
            file.as_raw_fd(),
            0,
        )
    };
    let end = (aligned + len).next_multiple_of(4096);
    // SAFETY: the reservation's head and tail around the file mapping are ours to unmap.
    unsafe {
        if aligned > start {
            libc::munmap(reserve, aligned - start);
        }
        if start + reserve_len > end {
            libc::munmap(end as *mut libc::c_void, start + reserve_len - end);
        }
    }
    if ptr == libc::MAP_FAILED {
        // SAFETY: the middle of the reservation, still ours.
        unsafe { libc::munmap(aligned as *mut libc::c_void, len) };
        return None;
    }
    // SAFETY: advice on the mapping just made; a refusal changes nothing.
    unsafe {
        libc::madvise(ptr, len, libc::MADV_HUGEPAGE);
        libc::madvise(ptr, len, libc::MADV_POPULATE_READ);
    }
    Some(Inner::Aligned {
        ptr: ptr as *const u8,
        len,
    })
}
