//! Reading a Hugging Face `config.json` into a [`ModelConfig`].

use std::path::Path;

use serde_json::Value;

use super::config::{Architecture, MlpKind, ModelConfig, NormKind, PositionKind};
use crate::error::{HookLensError, Result};

/// A parsed HF configuration: the model shape plus whether the unembedding is tied.
#[derive(Clone, Debug)]
pub struct HfConfig {
    /// The model shape.
    pub config: ModelConfig,
    /// True when `lm_head` shares the token embedding.
    pub tie_word_embeddings: bool,
}

/// Reads and interprets `config.json`.
pub fn read_hf_config(path: &Path) -> Result<HfConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| HookLensError::io(path, e))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| HookLensError::format(path, format!("not valid JSON: {e}")))?;
    parse_hf_config(&json).map_err(|e| match e {
        HookLensError::Config { message } => HookLensError::format(path, message),
        other => other,
    })
}

/// Interprets an HF config already parsed as JSON.
pub fn parse_hf_config(json: &Value) -> Result<HfConfig> {
    let model_type = json
        .get("model_type")
        .and_then(Value::as_str)
        .ok_or_else(|| HookLensError::config("`model_type` is missing"))?;
    let parsed = match model_type {
        "gpt2" => gpt2(json)?,
        "llama" | "qwen2" => llama(json)?,
        other => {
            return Err(HookLensError::unsupported(format!(
                "model_type `{other}` (supported: gpt2, llama, qwen2)"
            )))
        }
    };
    parsed.config.validate()?;
    Ok(parsed)
}

fn usize_field(json: &Value, keys: &[&str]) -> Result<usize> {
    for key in keys {
        if let Some(v) = json.get(*key).and_then(Value::as_u64) {
            return usize::try_from(v)
                .map_err(|_| HookLensError::config(format!("`{key}` = {v} is too large")));
        }
    }
    Err(HookLensError::config(format!(
        "`{}` is missing or not a non-negative integer",
        keys.join("` / `")
    )))
}

fn opt_usize(json: &Value, key: &str) -> Option<usize> {
    json.get(key)
        .and_then(Value::as_u64)
        .and_then(|v| usize::try_from(v).ok())
}

fn f32_field(json: &Value, key: &str, default: f32) -> Result<f32> {
    Ok(opt_f32(json, key)?.unwrap_or(default))
}

/// A number field, `None` when absent or null.
fn opt_f32(json: &Value, key: &str) -> Result<Option<f32>> {
    match json.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(|x| Some(x as f32))
            .ok_or_else(|| HookLensError::config(format!("`{key}` is not a number"))),
    }
}

/// The rotary base HF uses when a config gives none.
const DEFAULT_ROPE_THETA: f32 = 10000.0;

fn token_id(json: &Value, key: &str) -> Option<u32> {
    // Some configs give a list of ids; the first one is the canonical token.
    let v = json.get(key)?;
    let id = v
        .as_u64()
        .or_else(|| v.as_array().and_then(|a| a.first()).and_then(Value::as_u64))?;
    u32::try_from(id).ok()
}

fn gpt2(json: &Value) -> Result<HfConfig> {
    let act = json
        .get("activation_function")
        .and_then(Value::as_str)
        .unwrap_or("gelu_new");
    if act != "gelu_new" {
        return Err(HookLensError::unsupported(format!(
            "GPT-2 activation_function `{act}` (only gelu_new)"
        )));
    }
    refuse_gpt2_attention_scaling(json)?;
    let d_model = usize_field(json, &["n_embd"])?;
    let n_heads = usize_field(json, &["n_head"])?;
    if n_heads == 0 || d_model % n_heads != 0 {
        return Err(HookLensError::config(format!(
            "n_embd ({d_model}) must be a positive multiple of n_head ({n_heads})"
        )));
    }
    let config = ModelConfig {
        architecture: Architecture::Gpt2,
        n_layers: usize_field(json, &["n_layer"])?,
        d_model,
        n_heads,
        n_kv_heads: n_heads,
        d_head: d_model / n_heads,
        d_mlp: opt_usize(json, "n_inner").unwrap_or(4 * d_model),
        d_vocab: usize_field(json, &["vocab_size"])?,
        n_ctx: usize_field(json, &["n_positions", "n_ctx"])?,
        norm: NormKind::LayerNorm,
        norm_eps: f32_field(json, "layer_norm_epsilon", 1e-5)?,
        positions: PositionKind::Learned,
        mlp: MlpKind::GeluNew,
        bos_token_id: token_id(json, "bos_token_id"),
        eos_token_id: token_id(json, "eos_token_id"),
    };
    Ok(HfConfig {
        config,
        tie_word_embeddings: json
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    })
}

/// The rotary base of a Llama-family config, from `rope_theta` (transformers 4.x) or
/// `rope_parameters.rope_theta` (transformers 5.x writes the rotary settings there and no
/// `rope_theta`). Scaled rotary embeddings of either spelling are refused, as are two
/// different bases.
fn rope_theta(json: &Value) -> Result<f32> {
    if !matches!(json.get("rope_scaling"), None | Some(Value::Null)) {
        return Err(HookLensError::unsupported(
            "rope_scaling (only plain rotary embeddings are implemented)",
        ));
    }
    let top = opt_f32(json, "rope_theta")?;
    let params = match json.get("rope_parameters") {
        None | Some(Value::Null) => return Ok(top.unwrap_or(DEFAULT_ROPE_THETA)),
        Some(params @ Value::Object(_)) => params,
        Some(_) => return Err(HookLensError::config("`rope_parameters` is not an object")),
    };
    let kind = params
        .get("rope_type")
        .or_else(|| params.get("type"))
        .map(|v| v.as_str().unwrap_or("?"))
        .unwrap_or("default");
    if kind != "default" {
        return Err(HookLensError::unsupported(format!(
            "rope_parameters.rope_type `{kind}` (only plain rotary embeddings, `default`, are \
             implemented)"
        )));
    }
    let partial = params.get("partial_rotary_factor").and_then(Value::as_f64);
    if partial.is_some_and(|f| f != 1.0) {
        return Err(HookLensError::unsupported(
            "rope_parameters.partial_rotary_factor other than 1 (rotary on part of a head)",
        ));
    }
    match (top, opt_f32(params, "rope_theta")?) {
        (Some(top), Some(inner)) if top != inner => Err(HookLensError::config(format!(
            "`rope_theta` ({top}) and `rope_parameters.rope_theta` ({inner}) disagree"
        ))),
        (_, Some(theta)) | (Some(theta), None) => Ok(theta),
        (None, None) => Ok(DEFAULT_ROPE_THETA),
    }
}

/// Refuses GPT-2's attention-scaling variants (the engine scales scores by `1/sqrt(d_head)`
/// only, as GPT-2 does by default).
fn refuse_gpt2_attention_scaling(json: &Value) -> Result<()> {
    let flag = |key: &str| json.get(key).and_then(Value::as_bool);
    if flag("scale_attn_weights") == Some(false) {
        return Err(HookLensError::unsupported(
            "`scale_attn_weights: false` (unscaled attention scores)",
        ));
    }
    if flag("scale_attn_by_inverse_layer_idx") == Some(true) {
        return Err(HookLensError::unsupported(
            "`scale_attn_by_inverse_layer_idx: true` (scores scaled per layer)",
        ));
    }
    Ok(())
}

/// Refuses the Llama options whose biases the Llama path does not add (the loader also
/// refuses such tensors, for configs that do not say).
fn refuse_llama_biases(json: &Value) -> Result<()> {
    for key in ["attention_bias", "mlp_bias"] {
        if json.get(key).and_then(Value::as_bool) == Some(true) {
            return Err(HookLensError::unsupported(format!(
                "`{key}: true` (Llama attention-output and MLP biases are not implemented)"
            )));
        }
    }
    Ok(())
}

fn llama(json: &Value) -> Result<HfConfig> {
    let act = json
        .get("hidden_act")
        .and_then(Value::as_str)
        .unwrap_or("silu");
    if act != "silu" {
        return Err(HookLensError::unsupported(format!(
            "Llama hidden_act `{act}` (only silu)"
        )));
    }
    refuse_llama_biases(json)?;
    let d_model = usize_field(json, &["hidden_size"])?;
    let n_heads = usize_field(json, &["num_attention_heads"])?;
    if n_heads == 0 {
        return Err(HookLensError::config(
            "num_attention_heads must be positive",
        ));
    }
    let d_head = opt_usize(json, "head_dim").unwrap_or(d_model / n_heads);
    let config = ModelConfig {
        architecture: Architecture::Llama,
        n_layers: usize_field(json, &["num_hidden_layers"])?,
        d_model,
        n_heads,
        n_kv_heads: opt_usize(json, "num_key_value_heads").unwrap_or(n_heads),
        d_head,
        d_mlp: usize_field(json, &["intermediate_size"])?,
        d_vocab: usize_field(json, &["vocab_size"])?,
        n_ctx: usize_field(json, &["max_position_embeddings"])?,
        norm: NormKind::RmsNorm,
        norm_eps: f32_field(json, "rms_norm_eps", 1e-6)?,
        positions: PositionKind::Rotary {
            theta: rope_theta(json)?,
        },
        mlp: MlpKind::GatedSilu,
        bos_token_id: token_id(json, "bos_token_id"),
        eos_token_id: token_id(json, "eos_token_id"),
    };
    Ok(HfConfig {
        config,
        tie_word_embeddings: json
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}
