//! The JSON request `hl_sweep_json` reads: `"kind"` and the command line's options as
//! snake_case keys (the schema is in `hl_sweep_json`'s documentation). Unknown keys are
//! errors naming the key.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::status::{hl_status, Failure, FfiResult};
use crate::hooks::intervention::Intervention;
use crate::sweep::{AblationTarget, PatchSite, TraceKind};

/// The input prompt: text (tokenized, BOS first unless `no_bos`) or token ids as given.
#[derive(Deserialize, Debug, Default)]
pub(crate) struct PromptArgs {
    pub prompt: Option<String>,
    pub tokens: Option<Vec<u32>>,
    #[serde(default)]
    pub no_bos: bool,
}
const PROMPT_KEYS: &[&str] = &["prompt", "tokens", "no_bos"];

/// The metric and its tokens (`target` / `against` are text that must be one token).
#[derive(Deserialize, Debug, Default)]
pub(crate) struct TargetArgs {
    pub target: Option<String>,
    pub target_id: Option<u32>,
    pub against: Option<String>,
    pub against_id: Option<u32>,
    pub metric: Option<MetricName>,
}
const TARGET_KEYS: &[&str] = &["target", "target_id", "against", "against_id", "metric"];

/// The engine's options.
#[derive(Deserialize, Debug, Default)]
pub(crate) struct EngineArgs {
    #[serde(default)]
    pub naive: bool,
    pub max_rows: Option<usize>,
}
const ENGINE_KEYS: &[&str] = &["naive", "max_rows"];

/// Metrics by name, as `--metric` takes them.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MetricName {
    Logprob,
    Prob,
    #[serde(alias = "logit-diff")]
    LogitDiff,
    Loss,
    Kl,
}

/// `"kind": "ablate"`.
#[derive(Deserialize, Debug)]
pub(crate) struct AblateRequest {
    #[serde(flatten)]
    pub input: PromptArgs,
    #[serde(flatten)]
    pub target: TargetArgs,
    #[serde(flatten)]
    pub engine: EngineArgs,
    #[serde(default)]
    pub method: Method,
    #[serde(default)]
    pub what: AblationTarget,
    pub reference: Option<PathBuf>,
    pub reference_tokens: Option<Vec<Vec<u32>>>,
    pub resample_prompt: Option<String>,
    pub resample_tokens: Option<Vec<u32>>,
}
const ABLATE_KEYS: &[&str] = &[
    "method",
    "what",
    "reference",
    "reference_tokens",
    "resample_prompt",
    "resample_tokens",
];

/// Ablation values.
#[derive(Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Method {
    #[default]
    Zero,
    Mean,
    Resample,
}

/// `"kind": "patch"`.
#[derive(Deserialize, Debug)]
pub(crate) struct PatchRequest {
    pub clean: Option<String>,
    pub clean_tokens: Option<Vec<u32>>,
    pub corrupted: Option<String>,
    pub corrupted_tokens: Option<Vec<u32>>,
    #[serde(default)]
    pub no_bos: bool,
    #[serde(flatten)]
    pub target: TargetArgs,
    #[serde(flatten)]
    pub engine: EngineArgs,
    #[serde(default)]
    pub site: PatchSite,
}
const PATCH_KEYS: &[&str] = &[
    "clean",
    "clean_tokens",
    "corrupted",
    "corrupted_tokens",
    "no_bos",
    "site",
];

/// `"kind": "trace"` (`trace_kind` is the command line's `--kind`).
#[derive(Deserialize, Debug)]
pub(crate) struct TraceRequest {
    #[serde(flatten)]
    pub input: PromptArgs,
    #[serde(flatten)]
    pub target: TargetArgs,
    #[serde(flatten)]
    pub engine: EngineArgs,
    pub subject: Option<String>,
    pub subject_positions: Option<Vec<usize>>,
    #[serde(default)]
    pub trace_kind: TraceKind,
    pub window: Option<usize>,
    pub samples: Option<usize>,
    pub noise: Option<f32>,
    pub seed: Option<u64>,
}
const TRACE_KEYS: &[&str] = &[
    "subject",
    "subject_positions",
    "trace_kind",
    "window",
    "samples",
    "noise",
    "seed",
];

/// `"kind": "intervene"`: one run with interventions, measured against the clean run.
#[derive(Deserialize, Debug)]
pub(crate) struct InterveneRequest {
    #[serde(flatten)]
    pub input: PromptArgs,
    #[serde(flatten)]
    pub target: TargetArgs,
    pub interventions: Vec<Intervention>,
    pub top: Option<usize>,
}
const INTERVENE_KEYS: &[&str] = &["interventions", "top"];

/// The keys each kind takes, by group.
const ABLATE_GROUPS: &[&[&str]] = &[PROMPT_KEYS, TARGET_KEYS, ENGINE_KEYS, ABLATE_KEYS];
const PATCH_GROUPS: &[&[&str]] = &[TARGET_KEYS, ENGINE_KEYS, PATCH_KEYS];
const TRACE_GROUPS: &[&[&str]] = &[PROMPT_KEYS, TARGET_KEYS, ENGINE_KEYS, TRACE_KEYS];
const INTERVENE_GROUPS: &[&[&str]] = &[PROMPT_KEYS, TARGET_KEYS, INTERVENE_KEYS];

/// A parsed request.
#[derive(Debug)]
pub(crate) enum Request {
    Ablate(AblateRequest),
    Patch(PatchRequest),
    Trace(TraceRequest),
    Intervene(InterveneRequest),
}

fn json_error(message: impl Into<String>) -> Failure {
    Failure::new(hl_status::HL_ERR_JSON, message)
}

/// Checks the keys against the kind's, then reads the fields.
fn fields<T: DeserializeOwned>(
    kind: &str,
    mut object: Map<String, Value>,
    groups: &[&[&str]],
) -> FfiResult<T> {
    object.remove("kind");
    let known: Vec<&str> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    if let Some(key) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(json_error(format!(
            "unknown key `{key}` for kind `{kind}` (known keys: kind, {})",
            known.join(", ")
        )));
    }
    serde_json::from_value(Value::Object(object))
        .map_err(|e| json_error(format!("kind `{kind}`: {e}")))
}

/// Parses a request document.
pub(crate) fn parse_request(text: &str) -> FfiResult<Request> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| json_error(format!("request is not JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(json_error(
            "the request must be a JSON object with a \"kind\"",
        ));
    };
    let kind = match object.get("kind") {
        Some(Value::String(k)) => k.clone(),
        Some(other) => {
            return Err(json_error(format!(
                "\"kind\" must be a string, not {other}"
            )))
        }
        None => {
            return Err(json_error(
                "the request has no \"kind\" (ablate, patch, trace or intervene)",
            ))
        }
    };
    Ok(match kind.as_str() {
        "ablate" => Request::Ablate(fields(&kind, object, ABLATE_GROUPS)?),
        "patch" => Request::Patch(fields(&kind, object, PATCH_GROUPS)?),
        "trace" => Request::Trace(fields(&kind, object, TRACE_GROUPS)?),
        "intervene" => Request::Intervene(fields(&kind, object, INTERVENE_GROUPS)?),
        other => {
            return Err(json_error(format!(
                "unknown kind `{other}` (expected ablate, patch, trace or intervene)"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let e = parse_request(r#"{"kind": "ablate", "tokens": [1], "metrc": "prob"}"#).unwrap_err();
        assert_eq!(e.status, hl_status::HL_ERR_JSON as i32);
        assert!(e.message.contains("unknown key `metrc`"), "{}", e.message);
        // A key of another kind is unknown here too.
        let e = parse_request(r#"{"kind": "ablate", "site": "z"}"#).unwrap_err();
        assert!(e.message.contains("unknown key `site`"), "{}", e.message);
    }

    #[test]
    fn values_and_kinds_are_checked() {
        let e = parse_request(r#"{"kind": "patch", "site": "nowhere"}"#).unwrap_err();
        assert!(e.message.contains("nowhere"), "{}", e.message);
        let e = parse_request(r#"{"kind": "sing"}"#).unwrap_err();
        assert!(e.message.contains("unknown kind `sing`"), "{}", e.message);
        assert!(parse_request("[1, 2]").is_err());
        assert!(parse_request("{").unwrap_err().message.contains("not JSON"));
    }

    #[test]
    fn the_issue_examples_parse() {
        let ablate = r#"{"kind": "ablate", "tokens": [464, 3290, 318], "target_id": 262,
                         "method": "zero", "metric": "logprob"}"#;
        let Request::Ablate(a) = parse_request(ablate).unwrap() else {
            panic!("not ablate")
        };
        assert_eq!(a.input.tokens, Some(vec![464, 3290, 318]));
        assert_eq!(
            (a.target.target_id, a.target.metric),
            (Some(262), Some(MetricName::Logprob))
        );
        let patch = r#"{"kind": "patch", "clean_tokens": [1, 2], "corrupted_tokens": [1, 3],
                        "target_id": 1, "against_id": 2, "site": "resid-pre", "metric": "logit-diff"}"#;
        let Request::Patch(p) = parse_request(patch).unwrap() else {
            panic!("not patch")
        };
        assert_eq!(
            (p.site, p.target.metric),
            (PatchSite::ResidPre, Some(MetricName::LogitDiff))
        );
    }
}
