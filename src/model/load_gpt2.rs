//! GPT-2 weights from an HF checkpoint (`GPT2LMHeadModel` / `GPT2Model` names; Conv1D
//! weights are stored `[in, out]`, which is already hooklens' layout).

use super::config::ModelConfig;
use super::weights::{LayerWeights, TensorSource, Weights};
use crate::backend::cpu::gemm::PackedMatrix;
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

/// Loads GPT-2 weights; `tied` says whether `lm_head` shares `wte`.
pub fn load_gpt2(src: &dyn TensorSource, cfg: &ModelConfig, tied: bool) -> Result<Weights> {
    let prefix = if src.contains("transformer.wte.weight") {
        "transformer."
    } else {
        ""
    };
    let d = cfg.d_model;
    let name = |s: &str| format!("{prefix}{s}");
    // Conv1D weights are [in, out] already.
    let packed = |name: &str, k: usize, n: usize| -> Result<PackedMatrix> {
        Ok(PackedMatrix::from_k_by_n(
            &src.read_shaped(name, &[k, n])?,
            k,
            n,
        ))
    };
    let mut layers = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let t = |s: &str| name(&format!("h.{l}.{s}"));
        let c_attn = src.read_shaped(&t("attn.c_attn.weight"), &[d, 3 * d])?;
        let mut qkv = split_columns(&c_attn, d, 3, d).into_iter();
        let c_attn_b = src.read_shaped(&t("attn.c_attn.bias"), &[3 * d])?;
        let mut qkv_b = split_columns(&c_attn_b, 1, 3, d).into_iter();
        let mut next = || PackedMatrix::from_k_by_n(&qkv.next().unwrap_or_default(), d, d);
        let (w_q, w_k, w_v) = (next(), next(), next());
        let mut next_b = || qkv_b.next();
        let (b_q, b_k, b_v) = (next_b(), next_b(), next_b());
        layers.push(LayerWeights {
            ln1_w: src.read_shaped(&t("ln_1.weight"), &[d])?,
            ln1_b: Some(src.read_shaped(&t("ln_1.bias"), &[d])?),
            w_q,
            b_q,
            w_k,
            b_k,
            w_v,
            b_v,
            w_o: packed(&t("attn.c_proj.weight"), d, d)?,
            b_o: Some(src.read_shaped(&t("attn.c_proj.bias"), &[d])?),
            ln2_w: src.read_shaped(&t("ln_2.weight"), &[d])?,
            ln2_b: Some(src.read_shaped(&t("ln_2.bias"), &[d])?),
            w_in: packed(&t("mlp.c_fc.weight"), d, cfg.d_mlp)?,
            b_in: Some(src.read_shaped(&t("mlp.c_fc.bias"), &[cfg.d_mlp])?),
            w_gate: None,
            w_out: packed(&t("mlp.c_proj.weight"), cfg.d_mlp, d)?,
            b_out: Some(src.read_shaped(&t("mlp.c_proj.bias"), &[d])?),
        });
    }
    let w_e = src.read_shaped(&name("wte.weight"), &[cfg.d_vocab, d])?;
    let unembed = if tied {
        PackedMatrix::from_n_by_k(&w_e, cfg.d_vocab, d)
    } else {
        PackedMatrix::from_n_by_k(
            &src.read_shaped("lm_head.weight", &[cfg.d_vocab, d])?,
            cfg.d_vocab,
            d,
        )
    };
    Ok(Weights {
        w_e,
        w_pos: Some(src.read_shaped(&name("wpe.weight"), &[cfg.n_ctx, d])?),
        layers,
        ln_final_w: src.read_shaped(&name("ln_f.weight"), &[d])?,
        ln_final_b: Some(src.read_shaped(&name("ln_f.bias"), &[d])?),
        unembed,
        b_u: None,
    })
}
