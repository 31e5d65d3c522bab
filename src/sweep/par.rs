//! Host-side work over a pass's variants (their metrics: a log-softmax over the vocabulary
//! each), split into contiguous ranges across the worker pool.

use std::sync::Mutex;

use crate::backend::host::reserve_workers;

/// `f(i)` for every `i` in `0..n`, in order; the ranges of `i` run on the pool's threads.
pub fn map_in_ranges<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let workers = reserve_workers(n);
    let per_part = n.div_ceil(workers.threads()).max(1);
    let ranges: Vec<(usize, std::ops::Range<usize>)> = (0..n)
        .step_by(per_part)
        .enumerate()
        .map(|(part, start)| (part, start..(start + per_part).min(n)))
        .collect();
    let slots: Vec<Mutex<Vec<T>>> = ranges.iter().map(|_| Mutex::new(Vec::new())).collect();
    workers.run_parts(ranges, |(part, range)| {
        let values: Vec<T> = range.map(&f).collect();
        *slots[part].lock().unwrap_or_else(|e| e.into_inner()) = values;
    });
    slots
        .into_iter()
        .flat_map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::map_in_ranges;
    use crate::backend::cpu::threads::set_num_threads;

    #[test]
    fn values_come_back_in_order_for_any_count_and_thread_budget() {
        for threads in [1, 2, 3] {
            set_num_threads(threads);
            for n in [0, 1, 2, 5, 17] {
                let got = map_in_ranges(n, |i| i * i);
                assert_eq!(
                    got,
                    (0..n).map(|i| i * i).collect::<Vec<_>>(),
                    "{n} on {threads}"
                );
            }
        }
        set_num_threads(0);
    }
}
