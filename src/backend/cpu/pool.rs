//! A pool of parked worker threads that the CPU kernels hand their parts to.
//!
//! Starting a scoped thread costs about 40 µs on the measured machine (a VM), and each new
//! thread also starts with empty thread-local packing buffers; a parked worker wakes in a few
//! µs and keeps its buffers. Workers spin for [`SPIN`] after a job before they park, so the
//! back-to-back products of a forward pass find them awake.
//!
//! [`run`] lends `extra` workers to one call: the caller runs part 0, worker `i` runs part `i`,
//! and `run` returns when all parts are done, so the task may borrow from the caller's stack.
//! Callers take their worker count from the shared budget in [`super::threads`], so concurrent
//! callers never ask for more workers than the budget; the pool grows to the largest number of
//! workers lent at once.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::threads::mark_worker;

/// How long an idle worker (or a caller waiting for its workers) spins before it parks. At
/// 100 µs, generation with quantised rows (`qgemv`: about 200 products of 20-90 µs per token)
/// found its worker parked at most products and spent 11 % of the caller's time waking it
/// (17,247 futex calls for 128 tokens of SmolLM2 on the Xeon); at 1 ms, 1,603.
const SPIN: Duration = Duration::from_micros(1000);

/// A task shared by the caller and its workers: called once with each part index.
type Task<'a> = &'a (dyn Fn(usize) + Sync);

/// What the caller and the workers of one [`run`] share.
struct Latch {
    /// Parts not yet finished by workers.
    remaining: AtomicUsize,
    /// The caller, woken by the worker that finishes last.
    caller: Thread,
    /// The first panic of a worker's part, re-raised on the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// One part handed to one worker.
struct Job {
    /// Lifetime erased: [`run`] waits for every part before the task goes out of scope.
    task: *const (dyn Fn(usize) + Sync + 'static),
    index: usize,
    /// Lives on the stack of [`run`], which waits until every worker has released it.
    latch: *const Latch,
}

/// A worker: its mailbox and how to wake it.
struct Slot {
    /// Jobs posted so far; the worker runs one each time this moves.
    posted: AtomicU64,
    /// The job the last `posted` increment announced; written only by the caller that holds
    /// `claimed`, before the increment, and read only by the worker, after it.
    job: UnsafeCell<Option<Job>>,
    /// The worker is parked (or about to park) and needs an unpark.
    sleeping: AtomicBool,
    /// Lent to a caller right now.
    claimed: AtomicBool,
    thread: Thread,
}

// SAFETY: `job` is accessed by the one caller that holds `claimed` (before it bumps `posted`)
// and by the slot's worker (after it sees the bump), never both at once; the raw pointers in a
// Job point at data the posting call keeps alive until the worker has finished with them.
unsafe impl Sync for Slot {}
// SAFETY: as for Sync.
unsafe impl Send for Slot {}

/// Every worker started so far.
static POOL: Mutex<Vec<Arc<Slot>>> = Mutex::new(Vec::new());

/// Runs `task(0)` on the calling thread and `task(1)` .. `task(extra)` on pool workers, and
/// returns once all have finished. A panic in any part is re-raised here after all parts end.
pub(crate) fn run(extra: usize, task: &(dyn Fn(usize) + Sync)) {
    if extra == 0 {
        task(0);
        return;
    }
    let slots = claim(extra);
    let latch = Latch {
        remaining: AtomicUsize::new(slots.len()),
        caller: std::thread::current(),
        panic: Mutex::new(None),
    };
    // SAFETY: the lifetime is erased only for the workers, and this function does not return
    // (not even by unwinding: the caller's own part is caught below) before `remaining` is 0,
    // that is, before every worker is done with `task` and `latch`.
    let erased: *const (dyn Fn(usize) + Sync + 'static) =
        unsafe { std::mem::transmute::<Task<'_>, Task<'static>>(task) };
    for (i, slot) in slots.iter().enumerate() {
        // SAFETY: this caller holds `claimed`, and the worker reads `job` only after the
        // increment below (Release / Acquire on `posted`).
        unsafe {
            *slot.job.get() = Some(Job {
                task: erased,
                index: i + 1,
                latch: &latch,
            })
        };
        slot.posted.fetch_add(1, Ordering::SeqCst);
        if slot.sleeping.load(Ordering::SeqCst) {
            slot.thread.unpark();
        }
    }
    // Parts without a worker (only if starting one failed) run here, after the caller's own.
    let own = catch_unwind(AssertUnwindSafe(|| {
        task(0);
        for i in slots.len() + 1..=extra {
            task(i);
        }
    }));
    wait_until(|| latch.remaining.load(Ordering::Acquire) == 0);
    for slot in &slots {
        slot.claimed.store(false, Ordering::Release);
    }
    if let Err(payload) = own {
        resume_unwind(payload);
    }
    let worker_panic = latch.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(payload) = worker_panic {
        resume_unwind(payload);
    }
}

/// Claims up to `n` idle workers, starting new ones where too few are idle (fewer only if the
/// system refuses to start a thread).
fn claim(n: usize) -> Vec<Arc<Slot>> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let mut mine: Vec<Arc<Slot>> = pool
        .iter()
        .filter(|s| {
            s.claimed
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
        .take(n)
        .cloned()
        .collect();
    while mine.len() < n {
        let Some(slot) = start_worker() else { break };
        pool.push(slot.clone());
        mine.push(slot);
    }
    mine
}

/// Starts a worker thread, already claimed; `None` if the system refuses a new thread.
fn start_worker() -> Option<Arc<Slot>> {
    let (tx, rx) = std::sync::mpsc::channel::<Arc<Slot>>();
    let handle = std::thread::Builder::new()
        .name("hooklens-worker".into())
        .spawn(move || {
            mark_worker();
            // The sender outlives this receive (start_worker sends right after spawning).
            if let Ok(slot) = rx.recv() {
                worker_loop(&slot);
            }
        })
        .ok()?;
    let slot = Arc::new(Slot {
        posted: AtomicU64::new(0),
        job: UnsafeCell::new(None),
        sleeping: AtomicBool::new(false),
        claimed: AtomicBool::new(true),
        thread: handle.thread().clone(),
    });
    // The worker is blocked in recv until this arrives, so the send cannot fail.
    let _ = tx.send(slot.clone());
    Some(slot)
}

/// A worker's life: wait for a job, run it, report, repeat.
fn worker_loop(slot: &Slot) {
    let mut seen = 0;
    loop {
        wait_for_job(slot, seen);
        seen = slot.posted.load(Ordering::Acquire);
        // SAFETY: the posting caller wrote `job` before bumping `posted` (seen above, Acquire)
        // and writes it again only after this job's latch reaches 0, which is below.
        let job = unsafe { (*slot.job.get()).take() }.expect("a posted job");
        // SAFETY: `run` keeps the task and the latch alive until `remaining` reaches 0, and
        // this worker decrements it only after its last use of either.
        let latch = unsafe { &*job.latch };
        // SAFETY: as above, the task outlives this call.
        let result = catch_unwind(AssertUnwindSafe(|| unsafe { (*job.task)(job.index) }));
        if let Err(payload) = result {
            let mut first = latch.panic.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(payload);
        }
        let caller = latch.caller.clone();
        if latch.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            caller.unpark();
        }
    }
}

/// Returns once `posted` moves past `seen`: spinning first, then parked.
fn wait_for_job(slot: &Slot, seen: u64) {
    let has_job = || slot.posted.load(Ordering::Acquire) != seen;
    if spin_until(has_job) {
        return;
    }
    loop {
        slot.sleeping.store(true, Ordering::SeqCst);
        // Checked after announcing sleep: a caller that posted before it saw `sleeping` false
        // is caught here; one that posts after sees `sleeping` true and unparks.
        if slot.posted.load(Ordering::SeqCst) != seen {
            slot.sleeping.store(false, Ordering::SeqCst);
            return;
        }
        std::thread::park();
        slot.sleeping.store(false, Ordering::SeqCst);
        if has_job() {
            return;
        }
    }
}

/// Spins for up to [`SPIN`] until `done()`; returns whether it became true.
fn spin_until(done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() > SPIN {
            return done();
        }
    }
}

/// Returns once `done()`: spinning first, then parked (the last worker unparks the caller).
fn wait_until(done: impl Fn() -> bool) {
    if spin_until(&done) {
        return;
    }
    while !done() {
        std::thread::park_timeout(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once_on_distinct_threads() {
        for extra in 0..4 {
            for _ in 0..50 {
                let hits: Vec<AtomicUsize> = (0..=extra).map(|_| AtomicUsize::new(0)).collect();
                let ids = Mutex::new(Vec::new());
                run(extra, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                    ids.lock().unwrap().push(std::thread::current().id());
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                let mut ids = ids.into_inner().unwrap();
                ids.sort_by_key(|id| format!("{id:?}"));
                ids.dedup();
                assert_eq!(ids.len(), extra + 1, "parts ran on distinct threads");
            }
        }
    }

    #[test]
    fn concurrent_callers_get_their_own_workers() {
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..200 {
                        run(2, &|i| {
                            total.fetch_add(i + 1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 3 * 200 * (1 + 2 + 3));
    }

    #[test]
    fn a_panicking_part_reaches_the_caller_after_all_parts_end() {
        let finished = AtomicUsize::new(0);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            run(2, &|i| {
                if i == 1 {
                    panic!("part one fails");
                }
                std::thread::sleep(Duration::from_millis(5));
                finished.fetch_add(1, Ordering::Relaxed);
            })
        }));
        let message = caught.expect_err("the panic is re-raised");
        assert_eq!(message.downcast_ref::<&str>(), Some(&"part one fails"));
        assert_eq!(
            finished.load(Ordering::Relaxed),
            2,
            "the other parts ran to the end"
        );
        // The pool still works afterwards.
        let hits = AtomicUsize::new(0);
        run(2, &|_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn sleeping_workers_wake() {
        run(1, &|_| {});
        std::thread::sleep(SPIN * 5);
        let hits = AtomicUsize::new(0);
        run(1, &|_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 2);
    }
}
