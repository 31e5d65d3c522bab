//! `hl_sweep_json`: a sweep or an intervention run from a JSON request, answered with the
//! command line's `--json` document.

use std::ffi::CString;
use std::os::raw::{c_char, c_int};

use serde_json::{json, Value};

use super::args::{c_text, handle, out_ptr};
use super::boundary::guard;
use super::model::hl_model;
use super::status::{hl_status, Failure, FfiResult};
use super::sweep_request::{
    parse_request, AblateRequest, EngineArgs, InterveneRequest, Method, MetricName, PatchRequest,
    PromptArgs, Request, TargetArgs, TraceRequest,
};
use crate::analysis::{top_k, top_next_tokens};
use crate::error::HookLensError;
use crate::model::input::{RunOptions, TokenBatch};
use crate::model::Model;
use crate::sweep::{
    ablation_sweep, patching_sweep, report_document, trace_sweep, AblationMethod, Metric,
    SweepContext, SweepOptions, SweepSpec, TraceSettings,
};

fn input_error(message: impl Into<String>) -> Failure {
    HookLensError::input(message).into()
}

/// The prompt's tokens, checked against the model.
fn prompt_tokens(
    model: &Model,
    text: &Option<String>,
    ids: &Option<Vec<u32>>,
    bos: bool,
    what: &str,
) -> FfiResult<Vec<u32>> {
    let tokens = match (text, ids) {
        (Some(_), Some(_)) => {
            return Err(input_error(format!(
                "give {what} as text or as tokens, not both"
            )))
        }
        (Some(t), None) => model.tokenizer()?.to_tokens(t, bos)?,
        (None, Some(ids)) => ids.clone(),
        (None, None) => return Err(input_error(format!("{what} is missing (text or tokens)"))),
    };
    TokenBatch::single(tokens.clone())?.validate(model.config())?;
    Ok(tokens)
}

fn main_prompt(model: &Model, p: &PromptArgs) -> FfiResult<Vec<u32>> {
    prompt_tokens(
        model,
        &p.prompt,
        &p.tokens,
        !p.no_bos,
        "the prompt (\"prompt\" or \"tokens\")",
    )
}

/// A token given as text (one token) or as an id.
fn token_arg(
    model: &Model,
    text: &Option<String>,
    id: Option<u32>,
    what: &str,
) -> FfiResult<Option<u32>> {
    match (text, id) {
        (Some(_), Some(_)) => Err(input_error(format!(
            "give {what} as text or as an id, not both"
        ))),
        (Some(t), None) => Ok(Some(model.tokenizer()?.to_single_token(t)?)),
        (None, id) => Ok(id),
    }
}

/// The metric, as the command line builds it: logit-diff when `against` is given, else
/// `default`; the default target is the model's top prediction on `clean`.
fn build_metric(
    model: &Model,
    t: &TargetArgs,
    clean: &[u32],
    default: MetricName,
) -> FfiResult<Metric> {
    let against = token_arg(model, &t.against, t.against_id, "against")?;
    let name = t.metric.unwrap_or(if against.is_some() {
        MetricName::LogitDiff
    } else {
        default
    });
    let target = match token_arg(model, &t.target, t.target_id, "target")? {
        Some(id) => id,
        None if matches!(name, MetricName::Loss | MetricName::Kl) => 0,
        None => top_next_tokens(model, clean, 1)?[0],
    };
    let metric = match name {
        MetricName::Logprob => Metric::LogProb { target },
        MetricName::Prob => Metric::Prob { target },
        MetricName::LogitDiff => Metric::LogitDiff {
            target,
            other: against.ok_or_else(|| {
                input_error("metric logit_diff needs \"against\" or \"against_id\"")
            })?,
        },
        MetricName::Loss => Metric::Loss,
        MetricName::Kl => Metric::KlToClean,
    };
    metric.validate(model.config().d_vocab)?;
    Ok(metric)
}

/// A count option that must be at least 1 when given.
fn positive(value: Option<usize>, default: usize, key: &str) -> FfiResult<usize> {
    match value {
        Some(0) => Err(input_error(format!("\"{key}\" must be at least 1"))),
        v => Ok(v.unwrap_or(default)),
    }
}

/// Runs a sweep and builds its document.
fn run_spec(
    model: &Model,
    spec: &SweepSpec,
    metric: &Metric,
    engine: &EngineArgs,
    tokens: &[u32],
    corrupted: Option<&[u32]>,
) -> FfiResult<Value> {
    let opts = SweepOptions {
        max_rows: positive(
            engine.max_rows,
            SweepOptions::default().max_rows,
            "max_rows",
        )?,
        ..SweepOptions::default()
    };
    let report = spec.run(model, metric, engine.naive, &opts)?;
    let ctx = SweepContext {
        metric,
        tokens,
        corrupted_tokens: corrupted,
        naive: engine.naive,
    };
    Ok(report_document(model, &report, &ctx))
}

fn ablate(model: &Model, r: &AblateRequest) -> FfiResult<Value> {
    let prompt = main_prompt(model, &r.input)?;
    let bos = !r.input.no_bos;
    let method = match r.method {
        Method::Zero => AblationMethod::Zero,
        Method::Resample => AblationMethod::Resample {
            source: prompt_tokens(
                model,
                &r.resample_prompt,
                &r.resample_tokens,
                bos,
                "method resample's \"resample_prompt\" or \"resample_tokens\"",
            )?,
        },
        Method::Mean => {
            let mut references = r.reference_tokens.clone().unwrap_or_default();
            if let Some(path) = &r.reference {
                references.extend(model.tokenizer()?.to_tokens_per_line(path, bos)?);
            }
            AblationMethod::Mean { references }
        }
    };
    let metric = build_metric(model, &r.target, &prompt, MetricName::Logprob)?;
    let spec = ablation_sweep(model, &prompt, r.what, &method)?;
    run_spec(model, &spec, &metric, &r.engine, &prompt, None)
}

fn patch(model: &Model, r: &PatchRequest) -> FfiResult<Value> {
    let bos = !r.no_bos;
    let clean = prompt_tokens(
        model,
        &r.clean,
        &r.clean_tokens,
        bos,
        "the clean prompt (\"clean\" or \"clean_tokens\")",
    )?;
    let corrupted = prompt_tokens(
        model,
        &r.corrupted,
        &r.corrupted_tokens,
        bos,
        "the corrupted prompt (\"corrupted\" or \"corrupted_tokens\")",
    )?;
    let metric = build_metric(model, &r.target, &clean, MetricName::Logprob)?;
    let spec = patching_sweep(model, &clean, &corrupted, r.site)?;
    run_spec(model, &spec, &metric, &r.engine, &clean, Some(&corrupted))
}

fn trace(model: &Model, r: &TraceRequest) -> FfiResult<Value> {
    let prompt = main_prompt(model, &r.input)?;
    let subject = match (&r.subject, &r.subject_positions) {
        (Some(s), None) => model.tokenizer()?.find_subject(&prompt, s)?,
        (None, Some(p)) => p.clone(),
        _ => {
            return Err(input_error(
                "give one of \"subject\" (text) or \"subject_positions\"",
            ))
        }
    };
    let noise = r.noise.unwrap_or(3.0);
    if !(noise.is_finite() && noise > 0.0) {
        return Err(input_error(format!(
            "\"noise\" must be a finite number greater than 0, not {noise}"
        )));
    }
    let settings = TraceSettings {
        kind: r.trace_kind,
        window: positive(r.window, 10, "window")?,
        samples: positive(r.samples, 5, "samples")?,
        noise_scale: noise,
        seed: r.seed.unwrap_or(0),
    };
    let metric = build_metric(model, &r.target, &prompt, MetricName::Prob)?;
    let spec = trace_sweep(model, &prompt, &subject, &settings)?;
    run_spec(model, &spec, &metric, &r.engine, &prompt, None)
}

/// One run with the interventions (on the only batch row) against the clean run.
fn intervene(model: &Model, r: &InterveneRequest) -> FfiResult<Value> {
    let prompt = main_prompt(model, &r.input)?;
    let metric = build_metric(model, &r.target, &prompt, MetricName::Logprob)?;
    let tokens = TokenBatch::single(prompt.clone())?;
    let rows: Vec<_> = r.interventions.iter().map(|iv| (0, iv.clone())).collect();
    let opts = RunOptions::default();
    let run = |ivs: &[(usize, _)]| -> FfiResult<Vec<f32>> {
        let (out, _) = model.run_with_interventions((&tokens).into(), None, None, ivs, &opts)?;
        Ok(out.logits.ok_or_else(|| input_error("no logits"))?.data) // [1, seq, d_vocab]
    };
    let (clean, edited) = (run(&[])?, run(&rows)?);
    let v = model.config().d_vocab;
    let at = |l: &[f32], t: usize| -> Vec<f32> { l[t * v..(t + 1) * v].to_vec() };
    let last = prompt.len() - 1;
    let clean_last = at(&clean, last);
    let clean_value = metric.evaluate(|t| &clean[t * v..(t + 1) * v], &prompt, Some(&clean_last));
    let value = metric.evaluate(|t| &edited[t * v..(t + 1) * v], &prompt, Some(&clean_last));
    let tk = model.tokenizer().ok();
    let top: Vec<Value> = top_k(&at(&edited, last), positive(r.top, 10, "top")?)
        .iter()
        .map(|t| {
            let text = tk
                .and_then(|tk| tk.decode(&[t.token_id]).ok())
                .unwrap_or_default();
            json!({"token_id": t.token_id, "token": text, "prob": t.prob, "logit": t.logit})
        })
        .collect();
    Ok(json!({
        "model": model.source().display().to_string(),
        "tokens": prompt,
        "metric": metric,
        "interventions": r.interventions,
        "clean": clean_value,
        "value": value,
        "delta": value - clean_value,
        "top": top,
    }))
}

/// Runs a sweep or an intervention described by `request_json` and sets `*response_json` to
/// the result document, a string the caller frees with `hl_string_free` (NULL on failure).
///
/// The request is one JSON object: `"kind"` and the command line's options as snake_case
/// keys. Keys shared by the kinds: the prompt, `"prompt"` (text; BOS first unless
/// `"no_bos": true`) or `"tokens"` (ids, used as given); the metric, `"metric"` (`"logprob"`,
/// `"prob"`, `"logit_diff"`, `"loss"`, `"kl"`; default logit_diff when `against` is given,
/// else logprob, prob for trace), `"target"` (text that is one token) or `"target_id"`
/// (default: the model's top prediction), `"against"` / `"against_id"`; the engine,
/// `"naive"` (one forward per variant) and `"max_rows"` (default 4096).
/// - `"ablate"`: `"method"` (`"zero"`, `"mean"`, `"resample"`), `"what"` (`"heads"`,
///   `"attn"`, `"mlp"`), `"reference"` (a file of prompts, one a line) and/or
///   `"reference_tokens"` (lists of ids) for mean, `"resample_prompt"` or
///   `"resample_tokens"` for resample.
/// - `"patch"`: `"clean"` / `"clean_tokens"`, `"corrupted"` / `"corrupted_tokens"`,
///   `"no_bos"`, `"site"` (`"resid_pre"`, `"resid_mid"`, `"attn_out"`, `"mlp_out"`, `"z"`,
///   `"z_by_pos"`); no `"prompt"` / `"tokens"`.
/// - `"trace"`: `"subject"` (text in the prompt) or `"subject_positions"`, `"trace_kind"`
///   (`"resid"`, `"mlp"`, `"attn"`: the command line's `--kind`), `"window"`, `"samples"`,
///   `"noise"`, `"seed"`.
/// - `"intervene"`: `"interventions"`, a list of `{"hook", "positions"?, "heads"?, "op":
///   {"kind": "zero" | "scale" (+ "factor") | "add" (+ "vector") | "set" (+ "values":
///   {"data", "shape"})}}` applied to the one prompt, and `"top"` (default 10).
///
/// A sweep answers with the `--json` document: `{"model", "tokens", "metric", "clean",
/// "corrupted"?, "corrupted_tokens"?, "str_tokens"?, "results": [{"layer", "head"?, "pos"?,
/// "value", "delta" | "recovery"}], "stats"}`. An intervention answers `{"model", "tokens",
/// "metric", "interventions", "clean", "value", "delta", "top": [{"token_id", "token",
/// "prob", "logit"}]}`. An unknown key, kind or value fails with `HL_ERR_JSON` naming it.
/// Safe to call from several threads at once on one model.
///
/// # Safety
/// `model` is NULL or a live model; `request_json` is NULL or a NUL-terminated string;
/// `response_json` is writable.
#[no_mangle]
pub unsafe extern "C" fn hl_sweep_json(
    model: *const hl_model,
    request_json: *const c_char,
    response_json: *mut *mut c_char,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's guarantees on each pointer.
        let response = unsafe { out_ptr(response_json, "response_json") }?;
        *response = std::ptr::null_mut();
        // SAFETY: as above.
        let (model, request) = unsafe {
            (
                &handle(model, "model")?.model,
                c_text(request_json, "request_json")?,
            )
        };
        let doc = match parse_request(request)? {
            Request::Ablate(r) => ablate(model, &r)?,
            Request::Patch(r) => patch(model, &r)?,
            Request::Trace(r) => trace(model, &r)?,
            Request::Intervene(r) => intervene(model, &r)?,
        };
        let text = serde_json::to_string(&doc)
            .map_err(|e| Failure::new(hl_status::HL_ERR_JSON, e.to_string()))?;
        *response = CString::new(text)
            .map_err(|e| Failure::new(hl_status::HL_ERR_JSON, e.to_string()))?
            .into_raw();
        Ok(())
    })
}
