//! Llama-family weights, from any source whose tensor names a [`LlamaNames`] table gives
//! (HF safetensors, GGUF). Linear weights arrive `[out, in]` and are transposed to `[in, out]`.

use std::borrow::Cow;

use super::config::ModelConfig;
use super::load_clock::LoadClock;
use super::weights::{LayerWeights, TensorSource, Weights};
use crate::backend::{Backend, HostMatrix, HostOrder};
use crate::error::{HookLensError, Result};

/// One Llama tensor, independent of the file format's naming.
#[derive(Clone, Copy, Debug)]
pub enum LlamaTensor {
    /// Token embedding.
    Embed,
    /// Final RMSNorm weight.
    FinalNorm,
    /// Untied unembedding.
    LmHead,
    /// Attention RMSNorm weight of a layer.
    AttnNorm(usize),
    /// Query projection weight.
    Q(usize),
    /// Key projection weight.
    K(usize),
    /// Value projection weight.
    V(usize),
    /// Attention output weight.
    O(usize),
    /// Query bias (Qwen2-style).
    QBias(usize),
    /// Key bias.
    KBias(usize),
    /// Value bias.
    VBias(usize),
    /// Attention output bias (Llama's `attention_bias`): not implemented, refused when present.
    OBias(usize),
    /// MLP biases (Llama's `mlp_bias`): not implemented, refused when present.
    MlpBias(usize, MlpProjection),
    /// MLP RMSNorm weight.
    FfnNorm(usize),
    /// Gate projection.
    Gate(usize),
    /// Up projection (`W_in`).
    Up(usize),
    /// Down projection (`W_out`).
    Down(usize),
}

/// One of the gated MLP's three projections.
#[derive(Clone, Copy, Debug)]
pub enum MlpProjection {
    /// `gate_proj`.
    Gate,
    /// `up_proj`.
    Up,
    /// `down_proj`.
    Down,
}

impl MlpProjection {
    /// The three, in the order their biases are checked.
    const ALL: [MlpProjection; 3] = [MlpProjection::Gate, MlpProjection::Up, MlpProjection::Down];

    /// The HF module name.
    fn hf_name(self) -> &'static str {
        match self {
            MlpProjection::Gate => "gate_proj",
            MlpProjection::Up => "up_proj",
            MlpProjection::Down => "down_proj",
        }
    }

    /// The GGUF tensor-name stem.
    pub(super) fn gguf_name(self) -> &'static str {
        match self {
            MlpProjection::Gate => "ffn_gate",
            MlpProjection::Up => "ffn_up",
            MlpProjection::Down => "ffn_down",
        }
    }
}

/// Maps a [`LlamaTensor`] to a file's tensor name.
pub type LlamaNames = fn(LlamaTensor) -> String;

/// Tensor names of HF `LlamaForCausalLM` checkpoints.
pub fn hf_llama_names(t: LlamaTensor) -> String {
    use LlamaTensor::*;
    let layer = |l: usize, s: &str| format!("model.layers.{l}.{s}");
    match t {
        Embed => "model.embed_tokens.weight".into(),
        FinalNorm => "model.norm.weight".into(),
        LmHead => "lm_head.weight".into(),
        AttnNorm(l) => layer(l, "input_layernorm.weight"),
        Q(l) => layer(l, "self_attn.q_proj.weight"),
        K(l) => layer(l, "self_attn.k_proj.weight"),
        V(l) => layer(l, "self_attn.v_proj.weight"),
        O(l) => layer(l, "self_attn.o_proj.weight"),
        QBias(l) => layer(l, "self_attn.q_proj.bias"),
        KBias(l) => layer(l, "self_attn.k_proj.bias"),
        VBias(l) => layer(l, "self_attn.v_proj.bias"),
        OBias(l) => layer(l, "self_attn.o_proj.bias"),
        MlpBias(l, p) => layer(l, &format!("mlp.{}.bias", p.hf_name())),
        FfnNorm(l) => layer(l, "post_attention_layernorm.weight"),
        Gate(l) => layer(l, "mlp.gate_proj.weight"),
        Up(l) => layer(l, "mlp.up_proj.weight"),
        Down(l) => layer(l, "mlp.down_proj.weight"),
    }
}

/// Undoes llama.cpp's converter permutation of q/k rows (adjacent-pair rotary layout back to
/// HF's half-rotation layout). `data` is `[n_heads * d_head, cols]`.
pub fn unpermute_rows(data: &[f32], n_heads: usize, d_head: usize, cols: usize) -> Vec<f32> {
    let half = d_head / 2;
    let mut out = vec![0.0; data.len()];
    for h in 0..n_heads {
        for i in 0..half {
            for j in 0..2 {
                let src_row = h * d_head + 2 * i + j;
                let dst_row = h * d_head + j * half + i;
                out[dst_row * cols..(dst_row + 1) * cols]
                    .copy_from_slice(&data[src_row * cols..(src_row + 1) * cols]);
            }
        }
    }
    out
}

/// Loads Llama weights, the layers and the embedding in parallel (see [`LoadClock::par_layers`]).
/// `unpermute_qk` is true for GGUF files written by llama.cpp's converter.
pub fn load_llama<B: Backend>(
    src: &(dyn TensorSource + Sync),
    cfg: &ModelConfig,
    tied: bool,
    (names, unpermute_qk): (LlamaNames, bool),
    clock: &LoadClock,
    backend: &B,
) -> Result<Weights<B>> {
    let d = cfg.d_model;
    let read =
        |t: LlamaTensor, shape: &[usize]| clock.dequantize(|| src.read_shaped(&names(t), shape));
    let embedding = || {
        let w_e = read(LlamaTensor::Embed, &[cfg.d_vocab, d])?.into_owned();
        let lm_head = match tied {
            true => None,
            false => Some(read(LlamaTensor::LmHead, &[cfg.d_vocab, d])?),
        };
        Ok(clock.embedding_pair(backend, w_e, lm_head.as_deref(), (cfg.d_vocab, d)))
    };
    let layer = |l| load_layer(src, cfg, (names, unpermute_qk), l, (clock, backend));
    let ((w_e, unembed), layers) = clock.par_layers(cfg.n_layers, embedding, layer)?;
    Ok(Weights {
        w_e,
        w_pos: None,
        layers,
        ln_final_w: backend.vector(read(LlamaTensor::FinalNorm, &[d])?.into_owned()),
        ln_final_b: None,
        unembed,
        b_u: None,
    })
}

/// Refuses a layer with biases the Llama path does not add (the attention output's and the
/// MLP's): loading it would silently drop them.
fn refuse_unsupported_biases(
    src: &(dyn TensorSource + Sync),
    names: LlamaNames,
    l: usize,
) -> Result<()> {
    let mlp = MlpProjection::ALL.map(|p| LlamaTensor::MlpBias(l, p));
    for tensor in std::iter::once(LlamaTensor::OBias(l)).chain(mlp) {
        let name = names(tensor);
        if src.contains(&name) {
            return Err(HookLensError::unsupported(format!(
                "tensor `{name}` in {}: Llama attention-output and MLP biases \
                 (`attention_bias` / `mlp_bias`) are not implemented",
                src.path().display()
            )));
        }
    }
    Ok(())
}

/// Reads, dequantises and packs the weights of layer `l`.
fn load_layer<B: Backend>(
    src: &(dyn TensorSource + Sync),
    cfg: &ModelConfig,
    (names, unpermute_qk): (LlamaNames, bool),
    l: usize,
    (clock, backend): (&LoadClock, &B),
) -> Result<LayerWeights<B>> {
    use LlamaTensor::*;
    let d = cfg.d_model;
    let q_out = cfg.n_heads * cfg.d_head;
    let kv_out = cfg.n_kv_heads * cfg.d_head;
    refuse_unsupported_biases(src, names, l)?;
    let read =
        |t: LlamaTensor, shape: &[usize]| clock.dequantize(|| src.read_shaped(&names(t), shape));
    let optional = |t: LlamaTensor, shape: &[usize]| {
        let v = clock.dequantize(|| src.read_optional(&names(t), shape))?;
        Ok::<_, crate::error::HookLensError>(v.map(|v| backend.vector(v)))
    };
    let vector = |t: LlamaTensor| read(t, &[d]).map(|v| backend.vector(v.into_owned()));
    // Prepares an [out, in] linear weight as the [in, out] map.
    let prepare = |data: &[f32], n: usize, k: usize| {
        let order = HostOrder::NByK;
        clock.pack(|| backend.matrix(HostMatrix { data, k, n, order }))
    };
    let linear = |t: LlamaTensor, out: usize, inp: usize| -> Result<B::Matrix> {
        Ok(prepare(&read(t, &[out, inp])?, out, inp))
    };
    let qk = |t: LlamaTensor, heads: usize| -> Result<B::Matrix> {
        let mut w = read(t, &[heads * cfg.d_head, d])?;
        if unpermute_qk {
            w = Cow::Owned(unpermute_rows(&w, heads, cfg.d_head, d));
        }
        Ok(prepare(&w, heads * cfg.d_head, d))
    };
    let qk_bias = |t: LlamaTensor, heads: usize| -> Result<Option<B::Buf>> {
        let b = clock.dequantize(|| src.read_optional(&names(t), &[heads * cfg.d_head]))?;
        Ok(match (b, unpermute_qk) {
            (Some(b), true) => Some(unpermute_rows(&b, heads, cfg.d_head, 1)),
            (b, _) => b,
        }
        .map(|b| backend.vector(b)))
    };
    Ok(LayerWeights {
        ln1_w: vector(AttnNorm(l))?,
        ln1_b: None,
        w_q: qk(Q(l), cfg.n_heads)?,
        b_q: qk_bias(QBias(l), cfg.n_heads)?,
        w_k: qk(K(l), cfg.n_kv_heads)?,
        b_k: qk_bias(KBias(l), cfg.n_kv_heads)?,
        w_v: linear(V(l), kv_out, d)?,
        b_v: optional(VBias(l), &[kv_out])?,
        w_o: linear(O(l), d, q_out)?,
        b_o: None,
        ln2_w: vector(FfnNorm(l))?,
        ln2_b: None,
        w_in: linear(Up(l), cfg.d_mlp, d)?,
        b_in: None,
        w_gate: Some(linear(Gate(l), cfg.d_mlp, d)?),
        w_out: linear(Down(l), d, cfg.d_mlp)?,
        b_out: None,
    })
}
