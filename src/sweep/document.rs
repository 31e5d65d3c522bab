//! A finished sweep as the JSON document the command line's `--json` writes and the C ABI's
//! `hl_sweep_json` returns (one builder, so the two cannot drift apart).

use serde_json::{json, Value};

use super::metric::Metric;
use super::sweeps::SweepReport;
use crate::model::Model;

/// What the document says about a sweep besides its report.
pub struct SweepContext<'a> {
    /// The metric measured.
    pub metric: &'a Metric,
    /// The clean tokens.
    pub tokens: &'a [u32],
    /// The corrupted tokens of a patching sweep.
    pub corrupted_tokens: Option<&'a [u32]>,
    /// True when the sweep ran one full forward per variant.
    pub naive: bool,
}

/// `{"model", "tokens", "metric", "clean", "corrupted"?, "corrupted_tokens"?, "str_tokens"?,
/// "results": [{"layer", "head"?, "pos"?, "value", "delta"|"recovery"}], "stats"}`.
pub fn report_document(model: &Model, report: &SweepReport, ctx: &SweepContext<'_>) -> Value {
    let stats = &report.outcome.stats;
    let mut doc = json!({
        "model": model.source().display().to_string(),
        "tokens": ctx.tokens,
        "metric": ctx.metric,
        "clean": report.clean,
        "results": report.results,
        "stats": {
            "engine": if ctx.naive { "naive" } else { "batched" },
            "variants": stats.variants,
            "passes": stats.passes,
            "seconds": stats.seconds,
            "gflop": stats.flops / 1e9,
            "peak_arena_bytes": stats.peak_arena_bytes,
            "peak_base_bytes": stats.peak_base_bytes,
        },
    });
    if let Some(c) = report.corrupted {
        doc["corrupted"] = json!(c);
    }
    if let Some(t) = ctx.corrupted_tokens {
        doc["corrupted_tokens"] = json!(t);
    }
    if let Ok(s) = model.to_str_tokens(ctx.tokens) {
        doc["str_tokens"] = json!(s);
    }
    doc
}
