//! Parallel weight loading and where its time goes: the layers (and the embedding) are read,
//! dequantised and packed on every thread of the budget at once, and each thread's time in
//! each phase is summed, so `--verbose` can say where a load's time went.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::weight_cache::CacheUse;
use std::time::{Duration, Instant};

use crate::backend::host::reserve_workers;
use crate::backend::{Backend, HostMatrix, HostOrder};
use crate::error::Result;
use crate::model::weights::TokenEmbedding;

/// Where the time of one model load went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadTimes {
    /// Wall time from the call to a ready model.
    pub total: Duration,
    /// Wall time opening the files: mapping them, parsing headers, metadata and config.
    pub open: Duration,
    /// Thread time reading tensors from the mapped files and converting them to f32 (page
    /// faults of a cold file land here), summed over threads.
    pub dequantize: Duration,
    /// Thread time packing weight matrices into the GEMM's panel layout, summed over threads.
    pub pack: Duration,
    /// Wall time building the tokenizer (it overlaps the weights).
    pub tokenizer: Duration,
    /// Threads that loaded the weights.
    pub threads: usize,
    /// What the packed-weight cache did.
    pub cache: CacheUse,
}

impl std::fmt::Display for LoadTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let CacheUse::Read(time) = self.cache {
            return write!(
                f,
                "load {:.3} s: open {:.3} s; weights from the packed-weight cache, mapped and \
                 checked in {:.3} s; tokenizer {:.3} s (alongside)",
                self.total.as_secs_f64(),
                self.open.as_secs_f64(),
                time.as_secs_f64(),
                self.tokenizer.as_secs_f64()
            );
        }
        write!(
            f,
            "load {:.3} s: open {:.3} s; weights on {} threads: read + dequantize {:.3} s, \
             pack {:.3} s (thread time); tokenizer {:.3} s (alongside)",
            self.total.as_secs_f64(),
            self.open.as_secs_f64(),
            self.threads,
            self.dequantize.as_secs_f64(),
            self.pack.as_secs_f64(),
            self.tokenizer.as_secs_f64()
        )?;
        match self.cache {
            CacheUse::Written(time) => write!(
                f,
                "; packed-weight cache written in {:.3} s",
                time.as_secs_f64()
            ),
            CacheUse::WriteFailed => write!(f, "; the packed-weight cache could not be written"),
            CacheUse::Unused | CacheUse::Read(_) => Ok(()),
        }
    }
}

/// Thread time of the load phases, added to from every loading thread.
#[derive(Debug, Default)]
pub struct LoadClock {
    dequantize_ns: AtomicU64,
    pack_ns: AtomicU64,
    threads: AtomicU64,
    cache: Mutex<CacheUse>,
}

impl LoadClock {
    /// Runs `read` (reading and dequantising a tensor), adding its time to the read phase.
    pub fn dequantize<T>(&self, read: impl FnOnce() -> T) -> T {
        Self::timed(&self.dequantize_ns, read)
    }

    /// Runs `pack` (packing a matrix), adding its time to the pack phase.
    pub fn pack<T>(&self, pack: impl FnOnce() -> T) -> T {
        Self::timed(&self.pack_ns, pack)
    }

    fn timed<T>(total: &AtomicU64, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let value = f();
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        total.fetch_add(ns, Ordering::Relaxed);
        value
    }

    /// Records what the packed-weight cache did.
    pub fn record_cache(&self, used: CacheUse) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = used;
    }

    /// The phases' sums so far, in a [`LoadTimes`] whose wall times are still zero.
    pub fn times(&self) -> LoadTimes {
        let load = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        LoadTimes {
            dequantize: load(&self.dequantize_ns),
            pack: load(&self.pack_ns),
            threads: self.threads.load(Ordering::Relaxed) as usize,
            cache: *self.cache.lock().unwrap_or_else(|e| e.into_inner()),
            ..LoadTimes::default()
        }
    }

    /// The embedding job and `layer(l)` for every layer, all in parallel through
    /// [`LoadClock::par_map`], the embedding first (it is the largest job).
    pub fn par_layers<E: Send, L: Send>(
        &self,
        n_layers: usize,
        embedding: impl Fn() -> Result<E> + Sync,
        layer: impl Fn(usize) -> Result<L> + Sync,
    ) -> Result<(E, Vec<L>)> {
        enum Part<E, L> {
            Embedding(E),
            Layer(L),
        }
        let parts = self.par_map(n_layers + 1, |job| match job {
            0 => embedding().map(Part::Embedding),
            l => layer(l - 1).map(Part::Layer),
        })?;
        let mut parts = parts.into_iter();
        let Some(Part::Embedding(e)) = parts.next() else {
            unreachable!("job 0 is the embedding")
        };
        let layers = parts
            .map(|p| match p {
                Part::Layer(l) => l,
                Part::Embedding(_) => unreachable!("only job 0 is the embedding"),
            })
            .collect();
        Ok((e, layers))
    }

    /// The token embedding and the unembedding prepared from `lm_head`, or from the embedding
    /// itself when `lm_head` is `None` (tied; then a backend that reads the embedding from
    /// the unembedding keeps no second copy of the table).
    /// w_e: `[d_vocab, d_model]`   lm_head: `[d_vocab, d_model]`
    pub fn embedding_pair<B: Backend>(
        &self,
        backend: &B,
        w_e: Vec<f32>,
        lm_head: Option<&[f32]>,
        (d_vocab, d_model): (usize, usize),
    ) -> (TokenEmbedding<B>, B::Matrix) {
        let data = lm_head.unwrap_or(&w_e);
        let (k, n, order) = (d_model, d_vocab, HostOrder::NByK);
        let unembed = self.pack(|| backend.matrix(HostMatrix { data, k, n, order }));
        let table = match lm_head.is_none() && B::EMBEDS_FROM_UNEMBED {
            true => TokenEmbedding::TiedToUnembed,
            false => TokenEmbedding::Table(backend.vector(w_e)),
        };
        (table, unembed)
    }

    /// `load(i)` for every `i` in `0..n`, on the threads the budget allows (each takes the
    /// next index not yet taken), in order. The first error (by index) is returned.
    pub fn par_map<T: Send>(
        &self,
        n: usize,
        load: impl Fn(usize) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        let workers = reserve_workers(n);
        self.threads
            .fetch_max(workers.threads() as u64, Ordering::Relaxed);
        let slots: Vec<Mutex<Option<Result<T>>>> = (0..n).map(|_| Mutex::new(None)).collect();
        workers.run_parts((0..n).collect(), |i| {
            let value = load(i);
            *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
        });
        slots
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .expect("run_parts ran every part")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::HookLensError;

    #[test]
    fn par_map_keeps_order_and_returns_the_first_error() {
        let clock = LoadClock::default();
        let squares = clock.par_map(37, |i| Ok(i * i)).unwrap();
        assert_eq!(squares, (0..37).map(|i| i * i).collect::<Vec<_>>());
        let failed = clock.par_map(10, |i| {
            if i == 3 || i == 7 {
                Err(HookLensError::input(format!("bad {i}")))
            } else {
                Ok(i)
            }
        });
        assert!(failed.unwrap_err().to_string().contains("bad 3"));
    }

    #[test]
    fn phases_add_up() {
        let clock = LoadClock::default();
        let v = clock.pack(|| {
            std::thread::sleep(Duration::from_millis(2));
            5
        });
        assert_eq!(v, 5);
        assert!(clock.times().pack >= Duration::from_millis(2));
        assert_eq!(clock.times().dequantize, Duration::ZERO);
    }
}
