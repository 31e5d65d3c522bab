//! The bytes a run copies, counted by the engine where each copy happens (not estimated).
//!
//! A copy is any move of values between memory the caller owns and the engine's buffers, or
//! between host and device: the CPU backend's `upload` / `upload_into` / `download` /
//! `append` (memcpys), and every host-to-device or device-to-host transfer of a GPU backend.
//! Views are not copies: a CPU hook sees the engine's buffer itself, and the CPU's logits
//! leave the pass without a copy. Each copy is booked under the purpose the engine was
//! serving when it made it: its own work (inputs, outputs, tables), the activation cache,
//! host views for closures, or built-in interventions.
//!
//! The ledger is per thread (a pass issues its copies from the thread that runs it), so
//! concurrent runs on other threads do not mix into a count. Wrap the work in [`counted`].

use std::cell::Cell;

use serde::Serialize;

/// Bytes copied, by what the copy was for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CopyStats {
    /// The engine's own transfers: the input residual, outputs leaving a device, index and
    /// mask tables for a device, rows handed between a sweep's passes.
    pub engine: u64,
    /// Captures into the activation cache.
    pub cache: u64,
    /// Host views for hook closures, and writing their edits back (a device backend).
    pub hook_views: u64,
    /// Values and index tables a built-in intervention sent to the device during the pass.
    pub interventions: u64,
}

impl CopyStats {
    /// Every byte counted.
    pub fn total(&self) -> u64 {
        self.engine + self.cache + self.hook_views + self.interventions
    }

    fn add(&mut self, other: &CopyStats) {
        self.engine += other.engine;
        self.cache += other.cache;
        self.hook_views += other.hook_views;
        self.interventions += other.interventions;
    }

    fn book(&mut self, purpose: Purpose, bytes: u64) {
        let slot = match purpose {
            Purpose::Engine => &mut self.engine,
            Purpose::Cache => &mut self.cache,
            Purpose::HookViews => &mut self.hook_views,
            Purpose::Interventions => &mut self.interventions,
        };
        *slot += bytes;
    }
}

/// What a copy is for (see [`CopyStats`]'s fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    Engine,
    Cache,
    HookViews,
    Interventions,
}

thread_local! {
    /// The counts of the innermost [`counted`] on this thread.
    static LEDGER: Cell<CopyStats> = const { Cell::new(CopyStats { engine: 0, cache: 0, hook_views: 0, interventions: 0 }) };
    /// What the engine is copying for now.
    static PURPOSE: Cell<Purpose> = const { Cell::new(Purpose::Engine) };
}

/// Books `bytes` copied under the current purpose. A few loads and stores: called once
/// per copy, never per value or per empty hook slot.
#[inline]
pub(crate) fn record(bytes: usize) {
    let purpose = PURPOSE.with(Cell::get);
    LEDGER.with(|l| {
        let mut stats = l.get();
        stats.book(purpose, bytes as u64);
        l.set(stats);
    });
}

/// Runs `f` with its copies booked under `purpose`.
#[inline]
pub(crate) fn for_purpose<R>(purpose: Purpose, f: impl FnOnce() -> R) -> R {
    let outer = PURPOSE.with(|p| p.replace(purpose));
    let out = f();
    PURPOSE.with(|p| p.set(outer));
    out
}

/// Runs `f` and returns what it copied on this thread. Nested calls each see their own
/// copies, and an outer call sees the inner ones too.
pub fn counted<R>(f: impl FnOnce() -> R) -> (R, CopyStats) {
    let outer = LEDGER.with(|l| l.replace(CopyStats::default()));
    let out = f();
    let inner = LEDGER.with(Cell::get);
    let mut total = outer;
    total.add(&inner);
    LEDGER.with(|l| l.set(total));
    (out, inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn books_by_purpose_and_nests() {
        let ((), outer) = counted(|| {
            record(4);
            let ((), inner) = counted(|| for_purpose(Purpose::Cache, || record(8)));
            assert_eq!(inner.cache, 8);
            assert_eq!(inner.total(), 8);
            for_purpose(Purpose::HookViews, || record(2));
        });
        assert_eq!(
            outer,
            CopyStats {
                engine: 4,
                cache: 8,
                hook_views: 2,
                interventions: 0
            }
        );
    }

    #[test]
    fn purpose_is_restored() {
        let ((), stats) = counted(|| {
            for_purpose(Purpose::Interventions, || record(1));
            record(1);
        });
        assert_eq!((stats.interventions, stats.engine), (1, 1));
    }
}
