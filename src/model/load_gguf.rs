//! A whole model from a GGUF file: configuration from the `llama.*` metadata, weights
//! dequantised to f32 (q/k un-permuted back to HF's layout), tokenizer from
//! `tokenizer.ggml.*`. On the CPU, the matrices also keep the file's Q8_0 / Q4_0 / Q4_1 rows
//! for small-batch products (`load_gguf_quant`).

use std::borrow::Cow;
use std::path::Path;
use std::time::Instant;

use super::config::{Architecture, MlpKind, ModelConfig, NormKind, PositionKind};
use super::engine::{load_onto, Loaded};
use super::gguf::tokenizer::tokenizer_from_gguf;
use super::gguf::GgufFile;
use super::load_clock::{LoadClock, LoadTimes};
use super::load_gguf_quant::attach_quantized;
use super::load_llama::{load_llama, LlamaNames, LlamaTensor};
use super::process::LoadOptions;
use super::weight_cache::{CacheRequest, WeightCache};
use super::weights::TensorSource;
use super::{join_loader, Model};
use crate::device::Device;
use crate::error::{HookLensError, Result};
use crate::tokenizer::Tokenizer;

impl TensorSource for GgufFile {
    fn path(&self) -> &Path {
        GgufFile::path(self)
    }

    fn contains(&self, name: &str) -> bool {
        self.tensor_info(name).is_some()
    }

    fn read_f32(&self, name: &str) -> Result<(Cow<'_, [f32]>, Vec<usize>)> {
        let shape = self.tensor_info(name).map(|t| t.shape()).ok_or_else(|| {
            HookLensError::MissingTensor {
                path: self.path().to_path_buf(),
                name: name.to_string(),
            }
        })?;
        Ok((Cow::Owned(self.tensor_f32(name)?), shape))
    }
}

/// Tensor names written by llama.cpp's converter.
pub fn gguf_llama_names(t: LlamaTensor) -> String {
    use LlamaTensor::*;
    let layer = |l: usize, s: &str| format!("blk.{l}.{s}");
    match t {
        Embed => "token_embd.weight".into(),
        FinalNorm => "output_norm.weight".into(),
        LmHead => "output.weight".into(),
        AttnNorm(l) => layer(l, "attn_norm.weight"),
        Q(l) => layer(l, "attn_q.weight"),
        K(l) => layer(l, "attn_k.weight"),
        V(l) => layer(l, "attn_v.weight"),
        O(l) => layer(l, "attn_output.weight"),
        QBias(l) => layer(l, "attn_q.bias"),
        KBias(l) => layer(l, "attn_k.bias"),
        VBias(l) => layer(l, "attn_v.bias"),
        OBias(l) => layer(l, "attn_output.bias"),
        MlpBias(l, p) => layer(l, &format!("{}.bias", p.gguf_name())),
        FfnNorm(l) => layer(l, "ffn_norm.weight"),
        Gate(l) => layer(l, "ffn_gate.weight"),
        Up(l) => layer(l, "ffn_up.weight"),
        Down(l) => layer(l, "ffn_down.weight"),
    }
}

/// The model configuration from a Llama-architecture GGUF's metadata.
pub fn gguf_llama_config(file: &GgufFile) -> Result<ModelConfig> {
    let arch = file.architecture()?;
    if arch != "llama" {
        return Err(HookLensError::unsupported(format!(
            "{}: GGUF architecture `{arch}` (hooklens loads `llama` GGUF files)",
            file.path().display()
        )));
    }
    let key = |k: &str| format!("llama.{k}");
    let d_model = file.get_usize(&key("embedding_length"))?;
    let n_heads = file.get_usize(&key("attention.head_count"))?;
    if n_heads == 0 || d_model % n_heads != 0 {
        return Err(HookLensError::format(
            file.path(),
            format!("embedding_length {d_model} is not a multiple of head_count {n_heads}"),
        ));
    }
    let d_head = d_model / n_heads;
    if let Ok(rot) = file.get_usize(&key("rope.dimension_count")) {
        if rot != d_head {
            return Err(HookLensError::unsupported(format!(
                "partial rotary (rope.dimension_count {rot} != head dim {d_head})"
            )));
        }
    }
    let vocab_from_tokens = file
        .get_str_array("tokenizer.ggml.tokens")
        .map(<[String]>::len);
    let d_vocab = match file.get_usize(&key("vocab_size")) {
        Ok(v) => v,
        Err(_) => vocab_from_tokens?,
    };
    let config = ModelConfig {
        architecture: Architecture::Llama,
        n_layers: file.get_usize(&key("block_count"))?,
        d_model,
        n_heads,
        n_kv_heads: file
            .get_usize(&key("attention.head_count_kv"))
            .unwrap_or(n_heads),
        d_head,
        d_mlp: file.get_usize(&key("feed_forward_length"))?,
        d_vocab,
        n_ctx: file.get_usize(&key("context_length"))?,
        norm: NormKind::RmsNorm,
        norm_eps: file.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
        positions: PositionKind::Rotary {
            theta: file.get_f32(&key("rope.freq_base")).unwrap_or(10000.0),
        },
        mlp: MlpKind::GatedSilu,
        bos_token_id: file.get_u32("tokenizer.ggml.bos_token_id").ok(),
        eos_token_id: file.get_u32("tokenizer.ggml.eos_token_id").ok(),
    };
    config.validate().map_err(|e| match e {
        HookLensError::Config { message } => HookLensError::format(file.path(), message),
        other => other,
    })?;
    Ok(config)
}

/// Loads a Llama-architecture GGUF file: weights on every thread of the budget, the
/// tokenizer alongside them.
pub fn load_gguf_model(path: &Path) -> Result<Model> {
    load_gguf_model_on(path, Device::Cpu)
}

/// [`load_gguf_model`] onto a device.
pub fn load_gguf_model_on(path: &Path, device: Device) -> Result<Model> {
    load_gguf_model_with(path, device, WeightCache::from_env()?)
}

/// [`load_gguf_model_on`] with a packed-weight cache policy of the caller's choice.
pub fn load_gguf_model_with(path: &Path, device: Device, cache: WeightCache) -> Result<Model> {
    load_gguf_model_with_options(path, device, cache, LoadOptions::default())
}

/// [`load_gguf_model_with`] with TL's weight processing as `options` says (see
/// [`LoadOptions`]; processing runs on the CPU only).
pub fn load_gguf_model_with_options(
    path: &Path,
    device: Device,
    cache: WeightCache,
    options: LoadOptions,
) -> Result<Model> {
    let started = Instant::now();
    let file = GgufFile::open(path)?;
    let config = gguf_llama_config(&file)?;
    let open = started.elapsed();
    let tied = !file.contains(&gguf_llama_names(LlamaTensor::LmHead));
    let clock = LoadClock::default();
    let request = CacheRequest {
        policy: cache,
        sources: vec![path.to_path_buf()],
        processing: options,
    };
    let (loaded, (tokenizer, tokenizer_time)) = std::thread::scope(|scope| {
        let tokenizer = scope.spawn(|| {
            let t = Instant::now();
            (gguf_tokenizer(&file, &config), t.elapsed())
        });
        let names = (gguf_llama_names as LlamaNames, true);
        let loaded = load_onto!(device, &config, &request, &clock, |backend| {
            load_llama(&file, &config, tied, names, &clock, backend)
        });
        (loaded, join_loader(tokenizer))
    });
    let mut loaded = loaded?;
    if let (Loaded::Cpu(engine), false) = (&mut loaded, options.any()) {
        attach_quantized(&mut engine.weights, &file, &config, tied);
    }
    let model = Model::from_loaded(config, loaded, tokenizer?, path.to_path_buf());
    Ok(model.with_load_times(LoadTimes {
        total: started.elapsed(),
        open,
        tokenizer: tokenizer_time,
        ..clock.times()
    }))
}

/// The tokenizer in the file's metadata; `None` without one (a GGUF without tokenizer
/// metadata is still usable with token ids).
fn gguf_tokenizer(file: &GgufFile, config: &ModelConfig) -> Result<Option<Tokenizer>> {
    match file.metadata("tokenizer.ggml.model") {
        Some(_) => Ok(Some(Tokenizer::new(
            tokenizer_from_gguf(file)?.tokenizer,
            config.bos_token_id,
        ))),
        None => Ok(None),
    }
}
