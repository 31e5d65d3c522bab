//! The sweeps as one call each: `ablate_heads`, `patch`, `trace`. Each returns the grid as a
//! numpy array and the report as a dict (the command line's `--json` document).

use hooklens::sweep::{
    ablation_sweep, patching_sweep, report_document, trace_sweep, AblationMethod, AblationTarget,
    Metric, PatchSite, SweepContext, SweepOptions, SweepReport, SweepSpec, TraceKind,
    TraceSettings,
};
use hooklens::{Model, TokenBatch};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::PyArray;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::convert::token_batch;
use crate::errors::{input_error, IntoPyResult};
use crate::model::ModelPy;
use crate::sweep_args::{metric_of, one_row, subject_positions};

/// A finished sweep for Python: the grid and the report dict.
type SweepResult = (PyObject, PyObject);

#[pymethods]
impl ModelPy {
    /// Ablates every head (`what="heads"`, grid `[n_layers, n_heads]`) or every layer's
    /// attention / MLP output (`"attn"`, `"mlp"`, grid `[n_layers]`) and returns the change
    /// of the metric (`value - clean`) per cell, with the report dict. `method` is "zero",
    /// "mean" (over `reference` prompts of the same length, else over positions) or
    /// "resample" (from `reference`, one prompt of the same length).
    #[pyo3(signature = (input, target=None, metric="logprob", against=None, *, method="zero", what="heads", reference=None, prepend_bos=true, naive=false))]
    #[allow(clippy::too_many_arguments)]
    fn ablate_heads(
        &self,
        py: Python<'_>,
        input: &Bound<'_, PyAny>,
        target: Option<&Bound<'_, PyAny>>,
        metric: &str,
        against: Option<&Bound<'_, PyAny>>,
        method: &str,
        what: &str,
        reference: Option<&Bound<'_, PyAny>>,
        prepend_bos: bool,
        naive: bool,
    ) -> PyResult<SweepResult> {
        self.require_no_added_hooks("ablate_heads")?;
        let m = &self.model;
        let prompt = one_row(&token_batch(m, input, prepend_bos)?)?;
        let refs = reference
            .map(|r| token_batch(m, r, prepend_bos))
            .transpose()?;
        let method = ablation_method(method, refs)?;
        let target_kind = match what {
            "heads" => AblationTarget::Heads,
            "attn" => AblationTarget::AttnLayers,
            "mlp" => AblationTarget::MlpLayers,
            other => {
                return Err(input_error(format!(
                    "what must be heads, attn or mlp, got {other:?}"
                )))
            }
        };
        let metric = metric_of(py, m, &prompt, metric, target, against)?;
        let spec = || ablation_sweep(m, &prompt, target_kind, &method);
        let report = run(py, m, spec, &metric, naive)?;
        let cfg = m.config();
        let shape = match target_kind {
            AblationTarget::Heads => vec![cfg.n_layers, cfg.n_heads],
            _ => vec![cfg.n_layers],
        };
        finish(py, m, &report, (&metric, naive), &prompt, None, shape)
    }

    /// Activation patching: clean activations into the corrupted run at every (layer,
    /// position) of `site` ("resid_pre", "resid_mid", "attn_out", "mlp_out"; grid
    /// `[n_layers, pos]`), or per head ("z": `[n_layers, n_heads]`; "z_by_pos":
    /// `[n_layers, n_heads, pos]`). Cells are the recovery `(patched - corrupted) / (clean -
    /// corrupted)`. The metric defaults to "logit-diff" with `against`, else "logprob".
    #[pyo3(signature = (clean, corrupted, target=None, against=None, metric=None, *, site="resid_pre", prepend_bos=true, naive=false))]
    #[allow(clippy::too_many_arguments)]
    fn patch(
        &self,
        py: Python<'_>,
        clean: &Bound<'_, PyAny>,
        corrupted: &Bound<'_, PyAny>,
        target: Option<&Bound<'_, PyAny>>,
        against: Option<&Bound<'_, PyAny>>,
        metric: Option<&str>,
        site: &str,
        prepend_bos: bool,
        naive: bool,
    ) -> PyResult<SweepResult> {
        self.require_no_added_hooks("patch")?;
        let m = &self.model;
        let clean = one_row(&token_batch(m, clean, prepend_bos)?)?;
        let corrupted = one_row(&token_batch(m, corrupted, prepend_bos)?)?;
        let site = patch_site(site)?;
        let name = metric.unwrap_or(if against.is_some() {
            "logit-diff"
        } else {
            "logprob"
        });
        let metric = metric_of(py, m, &clean, name, target, against)?;
        let spec = || patching_sweep(m, &clean, &corrupted, site);
        let report = run(py, m, spec, &metric, naive)?;
        let cfg = m.config();
        let shape = match site {
            PatchSite::Z => vec![cfg.n_layers, cfg.n_heads],
            PatchSite::ZByPos => vec![cfg.n_layers, cfg.n_heads, clean.len()],
            _ => vec![cfg.n_layers, clean.len()],
        };
        finish(
            py,
            m,
            &report,
            (&metric, naive),
            &clean,
            Some(&corrupted),
            shape,
        )
    }

    /// ROME-style causal tracing: noise on the `subject` tokens (text found in the prompt, or
    /// a list of positions), then every (layer, position) restored from the clean run
    /// (`kind` "resid", or windows of "mlp" / "attn" outputs). Grid `[n_layers, pos]` of
    /// recoveries.
    #[pyo3(signature = (input, subject, target=None, metric="prob", *, kind="resid", window=10, samples=5, noise=3.0, seed=0, prepend_bos=true, naive=false))]
    #[allow(clippy::too_many_arguments)]
    fn trace(
        &self,
        py: Python<'_>,
        input: &Bound<'_, PyAny>,
        subject: &Bound<'_, PyAny>,
        target: Option<&Bound<'_, PyAny>>,
        metric: &str,
        kind: &str,
        window: usize,
        samples: usize,
        noise: f32,
        seed: u64,
        prepend_bos: bool,
        naive: bool,
    ) -> PyResult<SweepResult> {
        self.require_no_added_hooks("trace")?;
        let m = &self.model;
        let prompt = one_row(&token_batch(m, input, prepend_bos)?)?;
        let subject = subject_positions(m, &prompt, subject)?;
        let kind = match kind {
            "resid" => TraceKind::Resid,
            "mlp" => TraceKind::Mlp,
            "attn" => TraceKind::Attn,
            other => {
                return Err(input_error(format!(
                    "kind must be resid, mlp or attn, got {other:?}"
                )))
            }
        };
        if !(noise.is_finite() && noise > 0.0) || window == 0 {
            return Err(input_error(
                "noise must be finite and > 0, window at least 1",
            ));
        }
        let settings = TraceSettings {
            kind,
            window,
            samples,
            noise_scale: noise,
            seed,
        };
        let metric = metric_of(py, m, &prompt, metric, target, None)?;
        let spec = || trace_sweep(m, &prompt, &subject, &settings);
        let report = run(py, m, spec, &metric, naive)?;
        let shape = vec![m.config().n_layers, prompt.len()];
        finish(py, m, &report, (&metric, naive), &prompt, None, shape)
    }
}

fn ablation_method(method: &str, reference: Option<TokenBatch>) -> PyResult<AblationMethod> {
    let rows = |t: &TokenBatch| {
        (0..t.batch())
            .map(|b| t.row(b).to_vec())
            .collect::<Vec<_>>()
    };
    match (method, reference) {
        ("zero", _) => Ok(AblationMethod::Zero),
        ("mean", r) => Ok(AblationMethod::Mean {
            references: r.as_ref().map(rows).unwrap_or_default(),
        }),
        ("resample", Some(r)) => Ok(AblationMethod::Resample {
            source: one_row(&r)?,
        }),
        ("resample", None) => Err(input_error(
            "method=\"resample\" needs reference= (a prompt of the same length)",
        )),
        (other, _) => Err(input_error(format!(
            "method must be zero, mean or resample, got {other:?}"
        ))),
    }
}

fn patch_site(site: &str) -> PyResult<PatchSite> {
    Ok(match site.replace('-', "_").as_str() {
        "resid_pre" => PatchSite::ResidPre,
        "resid_mid" => PatchSite::ResidMid,
        "attn_out" => PatchSite::AttnOut,
        "mlp_out" => PatchSite::MlpOut,
        "z" => PatchSite::Z,
        "z_by_pos" => PatchSite::ZByPos,
        other => {
            return Err(input_error(format!(
                "site must be resid_pre, resid_mid, attn_out, mlp_out, z or z_by_pos, got {other:?}"
            )))
        }
    })
}

/// Builds a sweep (which runs the base passes it needs) and runs it, with the GIL released.
fn run(
    py: Python<'_>,
    model: &Model,
    spec: impl FnOnce() -> hooklens::Result<SweepSpec> + Send,
    metric: &Metric,
    naive: bool,
) -> PyResult<SweepReport> {
    py.allow_threads(|| spec()?.run(model, metric, naive, &SweepOptions::default()))
        .py_err()
}

/// The grid (delta for ablations, recovery otherwise) and the report dict.
fn finish(
    py: Python<'_>,
    model: &Model,
    report: &SweepReport,
    (metric, naive): (&Metric, bool),
    tokens: &[u32],
    corrupted: Option<&[u32]>,
    shape: Vec<usize>,
) -> PyResult<SweepResult> {
    let mut grid = ArrayD::<f64>::from_elem(IxDyn(&shape), f64::NAN);
    for r in &report.results {
        let mut at = vec![r.layer];
        at.extend(r.head);
        if shape.len() > at.len() {
            at.extend(r.pos);
        }
        if let Some(cell) = grid.get_mut(IxDyn(&at)) {
            *cell = r.delta.or(r.recovery).unwrap_or(r.value);
        }
    }
    let ctx = SweepContext {
        metric,
        tokens,
        corrupted_tokens: corrupted,
        naive,
    };
    let doc = report_document(model, report, &ctx);
    let text = PyString::new(py, &doc.to_string());
    let dict = py.import("json")?.call_method1("loads", (text,))?;
    Ok((
        PyArray::from_owned_array(py, grid).into_any().unbind(),
        dict.unbind(),
    ))
}
