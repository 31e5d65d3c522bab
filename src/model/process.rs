//! TransformerLens' weight processing as a load option: what `HookedTransformer.from_pretrained`
//! does to the weights by default (TL 2.18's `load_and_process_state_dict`), applied once to the
//! CPU weights at load.
//!
//! - `fold_ln`: each norm's weight (and, for LayerNorm, bias) is folded into the linear maps that
//!   read its output (`W_Q`, `W_K`, `W_V`; `W_in`, `W_gate`; `W_U`), and for LayerNorm those
//!   maps are centred over `d_model` (their input); the norms become weightless (TL's `LNPre`
//!   / `RMSPre`: weight one, no bias), so `hook_normalized` is the bare normalised input.
//! - `center_writing_weights` (LayerNorm models only, as TL): every map writing to the residual
//!   stream (`W_E`, `W_pos`, `W_O`, `W_out`, and `b_O`, `b_out`) loses its mean over `d_model`.
//! - `center_unembed`: `W_U` and `b_U` lose their mean over the vocabulary.
//! - `fold_value_biases`: `b_O += Σ_h b_V[h] @ W_O[h]`, and `b_V` becomes zero.
//!
//! The steps run in TL's order (fold, centre writing weights, centre unembed, fold value biases).

use super::config::{ModelConfig, NormKind};
use super::weights::{TokenEmbedding, Weights};
use crate::backend::cpu::gemm::PackedMatrix;
use crate::error::{HookLensError, Result};

/// Which of TL's weight-processing steps a load applies. The default (all off) loads the
/// weights as the checkpoint has them; [`LoadOptions::tl`] is `from_pretrained`'s processing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LoadOptions {
    /// Fold each norm's weight (and LayerNorm's bias) into the maps reading its output.
    pub fold_ln: bool,
    /// Centre the maps writing to the residual stream over `d_model` (LayerNorm models only).
    pub center_writing_weights: bool,
    /// Centre `W_U` and `b_U` over the vocabulary.
    pub center_unembed: bool,
    /// Fold the value biases into the attention output bias.
    pub fold_value_biases: bool,
}

impl LoadOptions {
    /// `HookedTransformer.from_pretrained`'s processing: every step on.
    pub fn tl() -> Self {
        LoadOptions {
            fold_ln: true,
            center_writing_weights: true,
            center_unembed: true,
            fold_value_biases: true,
        }
    }

    /// True when any step is on.
    pub fn any(&self) -> bool {
        self.fold_ln || self.center_writing_weights || self.center_unembed || self.fold_value_biases
    }

    /// `tl` or `none` (the CLI's `--process`).
    pub fn parse(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "tl" => Ok(Self::tl()),
            "none" | "" => Ok(Self::default()),
            other => Err(HookLensError::input(format!(
                "--process {other}: expected tl or none"
            ))),
        }
    }
}

/// A matrix unpacked to the host for editing. `[k, n]` row-major (`y = x @ W`).
struct Mat {
    data: Vec<f32>,
    k: usize,
    n: usize,
}

impl Mat {
    fn of(m: &PackedMatrix) -> Self {
        Mat {
            data: m.to_k_by_n(),
            k: m.k(),
            n: m.n(),
        }
    }

    fn pack(&self) -> PackedMatrix {
        PackedMatrix::from_k_by_n(&self.data, self.k, self.n)
    }

    /// Folds a norm into this map reading its output: `bias += b @ W` (with the unscaled
    /// `W`), then row `i` times `w[i]`.
    fn fold_norm(&mut self, w: &[f32], b: Option<&[f32]>, bias: Option<&mut Option<Vec<f32>>>) {
        if let (Some(b), Some(bias)) = (b, bias) {
            let out = bias.get_or_insert_with(|| vec![0.0; self.n]);
            for (row, &bi) in self.data.chunks_exact(self.n).zip(b) {
                for (o, &x) in out.iter_mut().zip(row) {
                    *o += x * bi;
                }
            }
        }
        for (row, &wi) in self.data.chunks_exact_mut(self.n).zip(w) {
            row.iter_mut().for_each(|x| *x *= wi);
        }
    }

    /// Subtracts from every column its mean over the rows (the map's input).
    fn center_columns(&mut self) {
        let mut mean = vec![0.0f64; self.n];
        for row in self.data.chunks_exact(self.n) {
            mean.iter_mut().zip(row).for_each(|(m, &x)| *m += x as f64);
        }
        let k = self.k as f64;
        let mean: Vec<f32> = mean.iter().map(|m| (m / k) as f32).collect();
        for row in self.data.chunks_exact_mut(self.n) {
            row.iter_mut().zip(&mean).for_each(|(x, m)| *x -= m);
        }
    }
}

/// Subtracts from every row of a row-major `[rows, width]` buffer its mean.
fn center_rows(data: &mut [f32], width: usize) {
    data.chunks_exact_mut(width).for_each(center);
}

/// Subtracts the mean.
fn center(v: &mut [f32]) {
    let mean = (v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64) as f32;
    v.iter_mut().for_each(|x| *x -= mean);
}

/// The matrices of one layer on the host.
struct LayerMats {
    w_q: Mat,
    w_k: Mat,
    w_v: Mat,
    w_o: Mat,
    w_in: Mat,
    w_gate: Option<Mat>,
    w_out: Mat,
}

/// CPU weights with every matrix unpacked for editing (vectors edited in place).
struct HostWeights {
    w: Weights,
    layers: Vec<LayerMats>,
    unembed: Mat,
}

/// Applies the steps `opts` turns on to CPU weights, in TL's order; `cfg` says which apply
/// (TL centres writing weights of LayerNorm models only, and folds only RMSNorm's weight).
pub fn process_weights(w: Weights, cfg: &ModelConfig, opts: &LoadOptions) -> Weights {
    if !opts.any() {
        return w;
    }
    let mut h = HostWeights::unpack(w, cfg);
    let layer_norm = cfg.norm == NormKind::LayerNorm;
    if opts.fold_ln {
        h.fold_ln(layer_norm);
    }
    if opts.center_writing_weights && layer_norm {
        h.center_writing_weights(cfg);
    }
    if opts.center_unembed {
        h.center_unembed();
    }
    if opts.fold_value_biases {
        h.fold_value_biases(cfg);
    }
    h.pack()
}

impl HostWeights {
    /// Unpacks the matrices; a tied `W_E` becomes its own table (processing unties it).
    fn unpack(mut w: Weights, cfg: &ModelConfig) -> Self {
        let unembed = Mat::of(&w.unembed);
        if let TokenEmbedding::TiedToUnembed = w.w_e {
            // W_E = W_Uᵀ. [d_vocab, d_model]
            let w_e = super::weights::transpose(&unembed.data, cfg.d_model, cfg.d_vocab);
            w.w_e = TokenEmbedding::Table(w_e);
        }
        let layers = (w.layers.iter())
            .map(|l| LayerMats {
                w_q: Mat::of(&l.w_q),
                w_k: Mat::of(&l.w_k),
                w_v: Mat::of(&l.w_v),
                w_o: Mat::of(&l.w_o),
                w_in: Mat::of(&l.w_in),
                w_gate: l.w_gate.as_ref().map(Mat::of),
                w_out: Mat::of(&l.w_out),
            })
            .collect();
        HostWeights { w, layers, unembed }
    }

    /// Packs the edited matrices back.
    fn pack(self) -> Weights {
        let HostWeights {
            mut w,
            layers,
            unembed,
        } = self;
        for (l, m) in w.layers.iter_mut().zip(&layers) {
            l.w_q = m.w_q.pack();
            l.w_k = m.w_k.pack();
            l.w_v = m.w_v.pack();
            l.w_o = m.w_o.pack();
            l.w_in = m.w_in.pack();
            l.w_gate = m.w_gate.as_ref().map(Mat::pack);
            l.w_out = m.w_out.pack();
        }
        w.unembed = unembed.pack();
        w
    }

    /// TL's `fold_layer_norm`: biases and centring for LayerNorm, weights only for RMSNorm.
    fn fold_ln(&mut self, layer_norm: bool) {
        for (l, m) in self.w.layers.iter_mut().zip(&mut self.layers) {
            let (w1, b1) = (std::mem::take(&mut l.ln1_w), l.ln1_b.take());
            let b1 = b1.as_deref().filter(|_| layer_norm);
            m.w_q.fold_norm(&w1, b1, Some(&mut l.b_q));
            m.w_k.fold_norm(&w1, b1, Some(&mut l.b_k));
            m.w_v.fold_norm(&w1, b1, Some(&mut l.b_v));
            let (w2, b2) = (std::mem::take(&mut l.ln2_w), l.ln2_b.take());
            let b2 = b2.as_deref().filter(|_| layer_norm);
            m.w_in.fold_norm(&w2, b2, Some(&mut l.b_in));
            if let Some(g) = &mut m.w_gate {
                g.fold_norm(&w2, None, None);
            }
            if layer_norm {
                // TL centres the maps reading a LayerNorm's output, but not W_gate.
                [&mut m.w_q, &mut m.w_k, &mut m.w_v, &mut m.w_in]
                    .into_iter()
                    .for_each(Mat::center_columns);
            }
            l.ln1_w = vec![1.0; w1.len()];
            l.ln2_w = vec![1.0; w2.len()];
        }
        let w = &mut self.w;
        let (wf, bf) = (std::mem::take(&mut w.ln_final_w), w.ln_final_b.take());
        let bf = bf.as_deref().filter(|_| layer_norm);
        self.unembed.fold_norm(&wf, bf, Some(&mut w.b_u));
        if layer_norm {
            self.unembed.center_columns();
        }
        w.ln_final_w = vec![1.0; wf.len()];
    }

    /// TL's `center_writing_weights`: `W_E`, `W_pos`, `W_O`, `b_O`, `W_out`, `b_out`.
    fn center_writing_weights(&mut self, cfg: &ModelConfig) {
        let d = cfg.d_model;
        if let TokenEmbedding::Table(w_e) = &mut self.w.w_e {
            center_rows(w_e, d); // [d_vocab, d_model]
        }
        if let Some(w_pos) = &mut self.w.w_pos {
            center_rows(w_pos, d); // [n_ctx, d_model]
        }
        for (l, m) in self.w.layers.iter_mut().zip(&mut self.layers) {
            center_rows(&mut m.w_o.data, d); // [n_heads * d_head, d_model]
            center_rows(&mut m.w_out.data, d); // [d_mlp, d_model]
            for b in [&mut l.b_o, &mut l.b_out].into_iter().flatten() {
                center(b);
            }
        }
    }

    /// TL's `center_unembed`: `W_U` and `b_U` over the vocabulary.
    fn center_unembed(&mut self) {
        let v = self.unembed.n;
        center_rows(&mut self.unembed.data, v); // [d_model, d_vocab]
        if let Some(b_u) = &mut self.w.b_u {
            center(b_u);
        }
    }

    /// TL's `fold_value_biases`: `b_O += Σ_h b_V[kv(h)] @ W_O[h]` (each key/value head's bias
    /// for every query head sharing it), then `b_V = 0`.
    fn fold_value_biases(&mut self, cfg: &ModelConfig) {
        let (dh, per_kv) = (cfg.d_head, cfg.heads_per_kv());
        for (l, m) in self.w.layers.iter_mut().zip(&self.layers) {
            let Some(b_v) = l.b_v.take() else { continue }; // [n_kv_heads * d_head]
            let b_o = l.b_o.get_or_insert_with(|| vec![0.0; cfg.d_model]);
            // W_O rows are (head, d_head) pairs. [n_heads * d_head, d_model]
            for (r, row) in m.w_o.data.chunks_exact(m.w_o.n).enumerate() {
                let (h, e) = (r / dh, r % dh);
                let bv = b_v[(h / per_kv) * dh + e];
                b_o.iter_mut().zip(row).for_each(|(o, &x)| *o += bv * x);
            }
        }
    }
}
