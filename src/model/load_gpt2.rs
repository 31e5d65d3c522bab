//! GPT-2 weights from an HF checkpoint (`GPT2LMHeadModel` / `GPT2Model` names; Conv1D
//! weights are stored `[in, out]`, which is already hooklens' layout).

use std::borrow::Cow;

use super::config::ModelConfig;
use super::load_clock::LoadClock;
use super::weights::{LayerWeights, TensorSource, Weights};
use crate::backend::{Backend, HostMatrix, HostOrder};
use crate::error::Result;

/// Splits the columns of a row-major `[rows, parts * width]` matrix into `parts` matrices of
/// `[rows, width]`.
fn split_columns(data: &[f32], rows: usize, parts: usize, width: usize) -> Vec<Vec<f32>> {
    (0..parts)
        .map(|p| {
            let mut out = Vec::with_capacity(rows * width);
            for r in 0..rows {
                let start = r * parts * width + p * width;
                out.extend_from_slice(&data[start..start + width]);
            }
            out
        })
        .collect()
}

/// Loads GPT-2 weights, the layers and the embedding in parallel (see
/// [`LoadClock::par_layers`]); `tied` says whether `lm_head` shares `wte`.
pub fn load_gpt2<B: Backend>(
    src: &(dyn TensorSource + Sync),
    cfg: &ModelConfig,
    tied: bool,
    clock: &LoadClock,
    backend: &B,
) -> Result<Weights<B>> {
    let prefix = if src.contains("transformer.wte.weight") {
        "transformer."
    } else {
        ""
    };
    let d = cfg.d_model;
    let name = |s: &str| format!("{prefix}{s}");
    let read = |name: &str, shape: &[usize]| clock.dequantize(|| src.read_shaped(name, shape));
    let embedding = || {
        let w_e = read(&name("wte.weight"), &[cfg.d_vocab, d])?.into_owned();
        let lm_head = match tied {
            true => None,
            false => Some(read("lm_head.weight", &[cfg.d_vocab, d])?),
        };
        Ok(clock.embedding_pair(backend, w_e, lm_head.as_deref(), (cfg.d_vocab, d)))
    };
    let layer = |l| {
        let t = |s: &str| name(&format!("h.{l}.{s}"));
        load_layer(&read, &t, cfg, clock, backend)
    };
    let ((w_e, unembed), layers) = clock.par_layers(cfg.n_layers, embedding, layer)?;
    let vector =
        |name: &str, shape: &[usize]| read(name, shape).map(|v| backend.vector(v.into_owned()));
    Ok(Weights {
        w_e,
        w_pos: Some(vector(&name("wpe.weight"), &[cfg.n_ctx, d])?),
        layers,
        ln_final_w: vector(&name("ln_f.weight"), &[d])?,
        ln_final_b: Some(vector(&name("ln_f.bias"), &[d])?),
        unembed,
        b_u: None,
    })
}

/// Reads a tensor by name, checking its shape (borrowed from the file where it can be).
type ReadTensor<'a> = &'a dyn Fn(&str, &[usize]) -> Result<Cow<'a, [f32]>>;

/// Reads and packs one layer; `read` reads a tensor by name with its shape, `t` gives the
/// full name of one of the layer's tensors.
fn load_layer<'a, B: Backend>(
    read: ReadTensor<'a>,
    t: &dyn Fn(&str) -> String,
    cfg: &ModelConfig,
    clock: &LoadClock,
    backend: &B,
) -> Result<LayerWeights<B>> {
    let d = cfg.d_model;
    // Conv1D weights are [in, out] already.
    let prepare = |data: &[f32], k: usize, n: usize| {
        let order = HostOrder::KByN;
        backend.matrix(HostMatrix { data, k, n, order })
    };
    let packed = |name: &str, k: usize, n: usize| -> Result<B::Matrix> {
        let w = read(name, &[k, n])?;
        Ok(clock.pack(|| prepare(&w, k, n)))
    };
    let c_attn = read(&t("attn.c_attn.weight"), &[d, 3 * d])?;
    let (w_q, w_k, w_v) = clock.pack(|| {
        let mut qkv = split_columns(&c_attn, d, 3, d).into_iter();
        let mut next = || prepare(&qkv.next().unwrap_or_default(), d, d);
        (next(), next(), next())
    });
    let c_attn_b = read(&t("attn.c_attn.bias"), &[3 * d])?;
    let mut qkv_b = split_columns(&c_attn_b, 1, 3, d).into_iter();
    let vector =
        |name: &str, len: usize| read(name, &[len]).map(|v| backend.vector(v.into_owned()));
    let mut next_b = || qkv_b.next().map(|b| backend.vector(b));
    let (b_q, b_k, b_v) = (next_b(), next_b(), next_b());
    Ok(LayerWeights {
        ln1_w: vector(&t("ln_1.weight"), d)?,
        ln1_b: Some(vector(&t("ln_1.bias"), d)?),
        w_q,
        b_q,
        w_k,
        b_k,
        w_v,
        b_v,
        w_o: packed(&t("attn.c_proj.weight"), d, d)?,
        b_o: Some(vector(&t("attn.c_proj.bias"), d)?),
        ln2_w: vector(&t("ln_2.weight"), d)?,
        ln2_b: Some(vector(&t("ln_2.bias"), d)?),
        w_in: packed(&t("mlp.c_fc.weight"), d, cfg.d_mlp)?,
        b_in: Some(vector(&t("mlp.c_fc.bias"), cfg.d_mlp)?),
        w_gate: None,
        w_out: packed(&t("mlp.c_proj.weight"), cfg.d_mlp, d)?,
        b_out: Some(vector(&t("mlp.c_proj.bias"), d)?),
    })
}
