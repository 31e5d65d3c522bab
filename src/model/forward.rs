//! The forward pass, written once for every architecture, with a hook slot between kernels.

use super::arena::Arena;
use super::config::{ModelConfig, NormKind, PositionKind};
use super::input::{Input, LogitPositions, Output, ReturnType, RunOptions};
use super::loss::next_token_loss;
use super::weights::Weights;
use crate::backend::cpu::activation::{add_inplace, gelu_new_inplace, silu_mul_inplace};
use crate::backend::cpu::attention::{attention_scores, attention_values, softmax_rows, AttnDims};
use crate::backend::cpu::matmul::{matmul, matmul_transposed};
use crate::backend::cpu::norm::{affine, divide_by_scale, norm_scale};
use crate::backend::cpu::rotary::RotaryTables;
use crate::error::{HookLensError, Result};
use crate::hooks::point::{HookKind, HookPoint};
use crate::hooks::registry::SlotTable;
use crate::tensor::Tensor;

/// A norm with its two hook points, applied from `x` into `out`.
struct NormStep<'w> {
    scale_hook: HookPoint,
    normalized_hook: HookPoint,
    w: &'w [f32],
    b: Option<&'w [f32]>,
}

fn apply_norm(
    cfg: &ModelConfig,
    step: NormStep<'_>,
    x: &[f32],
    out: &mut [f32],
    scale: &mut [f32],
    slots: &mut SlotTable<'_, '_>,
) -> Result<()> {
    let d = cfg.d_model;
    let layer_norm = cfg.norm == NormKind::LayerNorm;
    norm_scale(x, out, scale, d, cfg.norm_eps, layer_norm);
    slots.fire(step.scale_hook, scale)?;
    divide_by_scale(out, scale, d);
    if layer_norm {
        // TL reports LayerNorm's hook_normalized after the affine.
        affine(out, step.w, step.b, d);
        slots.fire(step.normalized_hook, out)?;
    } else {
        // ...and RMSNorm's before the weight.
        slots.fire(step.normalized_hook, out)?;
        affine(out, step.w, None, d);
    }
    Ok(())
}

/// Runs the pass. `slots` holds the hooks and cache requests, already resolved.
pub(crate) fn forward(
    cfg: &ModelConfig,
    weights: &Weights,
    input: &Input<'_>,
    opts: &RunOptions,
    slots: &mut SlotTable<'_, '_>,
) -> Result<Output> {
    let (batch, seq) = input.batch_seq();
    let (start, stop) = opts.layer_range(cfg.n_layers)?;
    let d = cfg.d_model;
    let rows = batch * seq;
    let mut a = Arena::new(cfg, batch, seq);

    // Embedding, or the residual given by the caller.
    match input {
        Input::Tokens(tokens) => {
            // [b, p, d_model]
            for (row, &t) in a.resid.chunks_exact_mut(d).zip(tokens.ids()) {
                row.copy_from_slice(&weights.w_e[t as usize * d..(t as usize + 1) * d]);
            }
            slots.fire(HookPoint::global(HookKind::Embed), &mut a.resid)?;
            if let (PositionKind::Learned, Some(w_pos)) = (cfg.positions, &weights.w_pos) {
                // The attention-output buffer holds the position embedding for now. // [b, p, d_model]
                for (i, row) in a.attn_out.chunks_exact_mut(d).enumerate() {
                    let p = i % seq;
                    row.copy_from_slice(&w_pos[p * d..(p + 1) * d]);
                }
                slots.fire(HookPoint::global(HookKind::PosEmbed), &mut a.attn_out)?;
                add_inplace(&mut a.resid, &a.attn_out);
            }
        }
        Input::Residual { resid, .. } => a.resid.copy_from_slice(&resid.data),
    }

    let rotary = match cfg.positions {
        PositionKind::Rotary { theta } => Some(RotaryTables::new(seq, cfg.d_head, theta)),
        PositionKind::Learned => None,
    };
    let dims = AttnDims {
        batch,
        seq,
        n_heads: cfg.n_heads,
        n_kv_heads: cfg.n_kv_heads,
        d_head: cfg.d_head,
    };
    let q_width = cfg.n_heads * cfg.d_head;
    let kv_width = cfg.n_kv_heads * cfg.d_head;

    for layer in start..stop {
        let w = &weights.layers[layer];
        let at = |kind| HookPoint::layer(kind, layer);
        slots.fire(at(HookKind::ResidPre), &mut a.resid)?;
        let ln1 = NormStep {
            scale_hook: at(HookKind::Ln1Scale),
            normalized_hook: at(HookKind::Ln1Normalized),
            w: &w.ln1_w,
            b: w.ln1_b.as_deref(),
        };
        apply_norm(cfg, ln1, &a.resid, &mut a.normed, &mut a.scale, slots)?;

        matmul(
            &a.normed,
            &w.w_q,
            w.b_q.as_deref(),
            (rows, d, q_width),
            &mut a.q,
        );
        matmul(
            &a.normed,
            &w.w_k,
            w.b_k.as_deref(),
            (rows, d, kv_width),
            &mut a.k,
        );
        matmul(
            &a.normed,
            &w.w_v,
            w.b_v.as_deref(),
            (rows, d, kv_width),
            &mut a.v,
        );
        slots.fire(at(HookKind::Q), &mut a.q)?;
        slots.fire(at(HookKind::K), &mut a.k)?;
        slots.fire(at(HookKind::V), &mut a.v)?;
        if let Some(rot) = &rotary {
            rot.apply(&mut a.q, batch, seq, cfg.n_heads);
            slots.fire(at(HookKind::RotQ), &mut a.q)?;
            rot.apply(&mut a.k, batch, seq, cfg.n_kv_heads);
            slots.fire(at(HookKind::RotK), &mut a.k)?;
        }

        attention_scores(&a.q, &a.k, &mut a.scores, dims);
        slots.fire(at(HookKind::AttnScores), &mut a.scores)?;
        softmax_rows(&mut a.scores, seq);
        slots.fire(at(HookKind::Pattern), &mut a.scores)?;
        attention_values(&a.scores, &a.v, &mut a.z, dims);
        slots.fire(at(HookKind::Z), &mut a.z)?;

        if slots.wants_result(layer) {
            a.ensure_result(cfg);
            per_head_result(cfg, &a.z, &w.w_o, rows, &mut a.result);
            slots.fire(at(HookKind::Result), &mut a.result)?;
            sum_heads(cfg, &a.result, w.b_o.as_deref(), rows, &mut a.attn_out);
        } else {
            matmul(
                &a.z,
                &w.w_o,
                w.b_o.as_deref(),
                (rows, q_width, d),
                &mut a.attn_out,
            );
        }
        slots.fire(at(HookKind::AttnOut), &mut a.attn_out)?;
        add_inplace(&mut a.resid, &a.attn_out);
        slots.fire(at(HookKind::ResidMid), &mut a.resid)?;

        let ln2 = NormStep {
            scale_hook: at(HookKind::Ln2Scale),
            normalized_hook: at(HookKind::Ln2Normalized),
            w: &w.ln2_w,
            b: w.ln2_b.as_deref(),
        };
        apply_norm(cfg, ln2, &a.resid, &mut a.normed, &mut a.scale, slots)?;

        let m = cfg.d_mlp;
        let post: &mut Vec<f32> = match &w.w_gate {
            None => {
                matmul(
                    &a.normed,
                    &w.w_in,
                    w.b_in.as_deref(),
                    (rows, d, m),
                    &mut a.mlp_pre,
                );
                slots.fire(at(HookKind::MlpPre), &mut a.mlp_pre)?;
                gelu_new_inplace(&mut a.mlp_pre);
                &mut a.mlp_pre
            }
            Some(w_gate) => {
                matmul(&a.normed, w_gate, None, (rows, d, m), &mut a.mlp_pre);
                slots.fire(at(HookKind::MlpPre), &mut a.mlp_pre)?;
                matmul(
                    &a.normed,
                    &w.w_in,
                    w.b_in.as_deref(),
                    (rows, d, m),
                    &mut a.mlp_linear,
                );
                slots.fire(at(HookKind::MlpPreLinear), &mut a.mlp_linear)?;
                silu_mul_inplace(&a.mlp_pre, &mut a.mlp_linear);
                &mut a.mlp_linear
            }
        };
        slots.fire(at(HookKind::MlpPost), post)?;
        matmul(
            post,
            &w.w_out,
            w.b_out.as_deref(),
            (rows, m, d),
            &mut a.mlp_out,
        );
        slots.fire(at(HookKind::MlpOut), &mut a.mlp_out)?;
        add_inplace(&mut a.resid, &a.mlp_out);
        slots.fire(at(HookKind::ResidPost), &mut a.resid)?;
    }

    if stop < cfg.n_layers {
        return Ok(Output {
            residual: Some(Tensor {
                data: a.resid,
                shape: vec![batch, seq, d],
            }),
            ..Output::default()
        });
    }

    let ln_final = NormStep {
        scale_hook: HookPoint::global(HookKind::LnFinalScale),
        normalized_hook: HookPoint::global(HookKind::LnFinalNormalized),
        w: &weights.ln_final_w,
        b: weights.ln_final_b.as_deref(),
    };
    apply_norm(cfg, ln_final, &a.resid, &mut a.normed, &mut a.scale, slots)?;

    if opts.return_type == ReturnType::None {
        return Ok(Output::default());
    }
    let needs_all = opts.return_type != ReturnType::Logits || opts.logits_at == LogitPositions::All;
    let vocab = cfg.d_vocab;
    let (logit_rows, logits_shape) = if needs_all {
        (a.normed, vec![batch, seq, vocab])
    } else {
        let last: Vec<f32> = (0..batch)
            .flat_map(|b| {
                a.normed[((b + 1) * seq - 1) * d..(b + 1) * seq * d]
                    .iter()
                    .copied()
            })
            .collect();
        (last, vec![batch, 1, vocab])
    };
    let n = logit_rows.len() / d;
    let mut logits = vec![0.0f32; n * vocab]; // [b, p or 1, d_vocab]
    matmul_transposed(
        &logit_rows,
        weights.unembed_rows(),
        weights.b_u.as_deref(),
        (n, d, vocab),
        &mut logits,
    );
    let logits = Tensor {
        data: logits,
        shape: logits_shape,
    };
    let mut out = Output::default();
    if matches!(opts.return_type, ReturnType::Loss | ReturnType::Both) {
        let tokens = input.tokens().ok_or_else(|| {
            HookLensError::input("a loss needs the tokens: pass them with the residual input")
        })?;
        let per_token = next_token_loss(&logits, tokens)?;
        out.loss = Some(
            per_token.data.iter().map(|&v| v as f64).sum::<f64>() as f32
                / per_token.numel().max(1) as f32,
        );
        if opts.loss_per_token {
            out.loss_per_token = Some(per_token);
        }
    }
    if matches!(opts.return_type, ReturnType::Logits | ReturnType::Both) {
        out.logits = Some(logits);
    }
    Ok(out)
}

/// `result[r, h, :] = z[r, h, :] @ W_O[h]`, TL's per-head output without `b_O`.
/// z: // [rows, n_heads, d_head]   w_o: // [n_heads * d_head, d_model]
/// result: // [rows, n_heads, d_model]
fn per_head_result(cfg: &ModelConfig, z: &[f32], w_o: &[f32], rows: usize, result: &mut [f32]) {
    let (h_n, dh, d) = (cfg.n_heads, cfg.d_head, cfg.d_model);
    for r in 0..rows {
        for h in 0..h_n {
            let z_h = &z[(r * h_n + h) * dh..][..dh];
            let out = &mut result[(r * h_n + h) * d..][..d];
            matmul(
                z_h,
                &w_o[h * dh * d..(h + 1) * dh * d],
                None,
                (1, dh, d),
                out,
            );
        }
    }
}

/// `attn_out[r] = Σ_h result[r, h] + b_O`. result: // [rows, n_heads, d_model]
fn sum_heads(cfg: &ModelConfig, result: &[f32], b_o: Option<&[f32]>, rows: usize, out: &mut [f32]) {
    let d = cfg.d_model;
    for (r, row) in out.chunks_exact_mut(d).enumerate().take(rows) {
        match b_o {
            Some(b) => row.copy_from_slice(b),
            None => row.fill(0.0),
        }
        for h in 0..cfg.n_heads {
            add_inplace(row, &result[(r * cfg.n_heads + h) * d..][..d]);
        }
    }
}
