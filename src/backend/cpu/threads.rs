//! The thread count the CPU kernels may use.

use std::sync::atomic::{AtomicUsize, Ordering};

/// 0 means "not set": use the machine's available parallelism.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads CPU kernels use (1 disables threading; 0 restores the default,
/// which is `HOOKLENS_THREADS` if set, else the available parallelism).
pub fn set_num_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// The thread count CPU kernels use.
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => {
            let n = std::env::var("HOOKLENS_THREADS")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            THREADS.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}
