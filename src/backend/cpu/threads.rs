//! The thread count the CPU kernels may use.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

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

/// Extra worker threads currently running kernels, across every caller.
static BUSY_WORKERS: AtomicUsize = AtomicUsize::new(0);

std::thread_local! {
    /// True on a kernel's worker thread: kernels it calls run inline.
    static IN_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Worker threads reserved for one kernel call; released when dropped.
#[must_use = "the reservation ends when the guard is dropped"]
pub struct Workers {
    extra: usize,
}

impl Workers {
    /// Threads the call may use, its own included (at least 1).
    pub fn threads(&self) -> usize {
        1 + self.extra
    }

    /// Runs `task(i)` for every `i` in `0..self.threads()`: `0` on the calling thread, the
    /// others on parked pool workers (`super::pool`); returns when all are done.
    pub fn run(&self, task: impl Fn(usize) + Sync) {
        super::pool::run(self.extra, &task);
    }

    /// Runs `f` on every part, on up to [`Workers::threads`] threads; each thread takes the next
    /// part not yet taken, so a thread slowed by other work leaves its share to the others.
    pub fn run_parts<T: Send>(&self, parts: Vec<T>, f: impl Fn(T) + Sync) {
        if self.extra == 0 || parts.len() <= 1 {
            parts.into_iter().for_each(f);
            return;
        }
        let parts: Vec<Mutex<Option<T>>> = parts.into_iter().map(|p| Mutex::new(Some(p))).collect();
        let next = AtomicUsize::new(0);
        super::pool::run(self.extra.min(parts.len() - 1), &|_| {
            while let Some(part) = parts.get(next.fetch_add(1, Ordering::Relaxed)) {
                let part = part.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(part) = part {
                    f(part);
                }
            }
        });
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        BUSY_WORKERS.fetch_sub(self.extra, Ordering::AcqRel);
    }
}

/// Reserves up to `wanted - 1` extra threads from the shared budget of `num_threads() - 1`.
/// Kernels called concurrently from several caller threads (a caller that is itself parallel)
/// therefore share the budget instead of each starting `num_threads()` threads, and a kernel
/// called from a worker thread gets none.
pub fn reserve_workers(wanted: usize) -> Workers {
    if wanted <= 1 || IN_WORKER.with(|w| w.get()) {
        return Workers { extra: 0 };
    }
    Workers {
        extra: take_from(&BUSY_WORKERS, num_threads().saturating_sub(1), wanted - 1),
    }
}

/// Threads worth using for a pass over `len` values when each should get at least
/// `min_per_thread` of them (thread hand-off costs a few µs): between 1 and [`num_threads`].
pub fn threads_for(len: usize, min_per_thread: usize) -> usize {
    (len / min_per_thread.max(1)).clamp(1, num_threads())
}

/// Atomically takes up to `wanted` from what `busy` leaves of `budget`; returns how many.
fn take_from(busy: &AtomicUsize, budget: usize, wanted: usize) -> usize {
    let mut now = busy.load(Ordering::Acquire);
    loop {
        let take = wanted.min(budget.saturating_sub(now));
        if take == 0 {
            return 0;
        }
        match busy.compare_exchange_weak(now, now + take, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return take,
            Err(seen) => now = seen,
        }
    }
}

/// Marks the current thread as a kernel worker for the rest of its life (pool workers call it
/// when they start; a thread a caller spawns for kernels can call it too).
pub fn mark_worker() {
    IN_WORKER.with(|w| w.set(true));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_reservations_share_one_budget() {
        let busy = AtomicUsize::new(0);
        assert_eq!(take_from(&busy, 3, 3), 3);
        assert_eq!(take_from(&busy, 3, 3), 0, "the budget is spent");
        busy.fetch_sub(2, Ordering::AcqRel);
        assert_eq!(take_from(&busy, 3, 5), 2);
        assert_eq!(busy.load(Ordering::Acquire), 3);
    }

    #[test]
    fn threads_for_scales_with_the_length() {
        assert_eq!(threads_for(0, 100), 1);
        assert_eq!(threads_for(199, 100), 1);
        assert_eq!(threads_for(200, 100).min(2), 2.min(num_threads()));
        assert_eq!(threads_for(usize::MAX, 1), num_threads());
    }

    #[test]
    fn workers_never_start_workers() {
        let inner = std::thread::spawn(|| {
            mark_worker();
            reserve_workers(4).threads()
        })
        .join()
        .unwrap();
        assert_eq!(inner, 1);
    }
}
