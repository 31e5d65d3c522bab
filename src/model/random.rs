//! Random weights and named shapes, for benchmarks and tests that need a model of a real size
//! without its files (speed does not depend on the values).

use super::config::{Architecture, MlpKind, ModelConfig, NormKind, PositionKind};
use super::weights::{LayerWeights, TokenEmbedding, Weights};
use crate::backend::{Backend, CpuBackend, HostMatrix, HostOrder};
use crate::sweep::noise::Gaussian;

impl ModelConfig {
    /// GPT-2 small's shape: 12 layers, d_model 768, 12 heads, d_mlp 3072, vocab 50257.
    pub fn gpt2_small() -> Self {
        ModelConfig {
            architecture: Architecture::Gpt2,
            n_layers: 12,
            d_model: 768,
            n_heads: 12,
            n_kv_heads: 12,
            d_head: 64,
            d_mlp: 3072,
            d_vocab: 50257,
            n_ctx: 1024,
            norm: NormKind::LayerNorm,
            norm_eps: 1e-5,
            positions: PositionKind::Learned,
            mlp: MlpKind::GeluNew,
            bos_token_id: Some(50256),
            eos_token_id: Some(50256),
        }
    }

    /// SmolLM2-135M's shape: 30 layers, d_model 576, 9 heads (3 KV), d_mlp 1536, vocab 49152.
    pub fn smollm2_135m() -> Self {
        ModelConfig {
            architecture: Architecture::Llama,
            n_layers: 30,
            d_model: 576,
            n_heads: 9,
            n_kv_heads: 3,
            d_head: 64,
            d_mlp: 1536,
            d_vocab: 49152,
            n_ctx: 8192,
            norm: NormKind::RmsNorm,
            norm_eps: 1e-5,
            positions: PositionKind::Rotary { theta: 100000.0 },
            mlp: MlpKind::GatedSilu,
            bos_token_id: Some(1),
            eos_token_id: Some(2),
        }
    }
}

/// Gaussian weights (std 0.02, norms 1, biases 0.01 std where the architecture has them),
/// tied unembedding.
pub fn random_weights(cfg: &ModelConfig, seed: u64) -> Weights {
    random_weights_on(&CpuBackend, cfg, seed)
}

/// [`random_weights`] prepared for any backend (the same values for the same seed).
pub fn random_weights_on<B: Backend>(backend: &B, cfg: &ModelConfig, seed: u64) -> Weights<B> {
    let mut g = Gaussian::new(seed);
    let mut mat = |n: usize, std: f32| -> Vec<f32> { (0..n).map(|_| std * g.sample()).collect() };
    let order = HostOrder::KByN;
    let pack = |data: Vec<f32>, k: usize, n: usize| {
        backend.matrix(HostMatrix {
            data: &data,
            k,
            n,
            order,
        })
    };
    let vec = |v: Vec<f32>| backend.vector(v);
    let (d, q, kv) = (
        cfg.d_model,
        cfg.n_heads * cfg.d_head,
        cfg.n_kv_heads * cfg.d_head,
    );
    let biased = cfg.architecture == Architecture::Gpt2;
    let layers = (0..cfg.n_layers)
        .map(|_| {
            let mut bias = |n: usize| biased.then(|| vec(mat(n, 0.01)));
            let (b_q, b_k, b_v, b_o, b_in, b_out) = (
                bias(q),
                bias(kv),
                bias(kv),
                bias(d),
                bias(cfg.d_mlp),
                bias(d),
            );
            LayerWeights {
                ln1_w: vec(vec![1.0; d]),
                ln1_b: biased.then(|| vec(vec![0.0; d])),
                w_q: pack(mat(d * q, 0.02), d, q),
                b_q,
                w_k: pack(mat(d * kv, 0.02), d, kv),
                b_k,
                w_v: pack(mat(d * kv, 0.02), d, kv),
                b_v,
                w_o: pack(mat(q * d, 0.02), q, d),
                b_o,
                ln2_w: vec(vec![1.0; d]),
                ln2_b: biased.then(|| vec(vec![0.0; d])),
                w_in: pack(mat(d * cfg.d_mlp, 0.02), d, cfg.d_mlp),
                b_in,
                w_gate: cfg
                    .gated_mlp()
                    .then(|| pack(mat(d * cfg.d_mlp, 0.02), d, cfg.d_mlp)),
                w_out: pack(mat(cfg.d_mlp * d, 0.02), cfg.d_mlp, d),
                b_out,
            }
        })
        .collect();
    let w_e = mat(cfg.d_vocab * d, 0.02);
    let (k, n, order) = (d, cfg.d_vocab, HostOrder::NByK);
    let unembed = backend.matrix(HostMatrix {
        data: &w_e,
        k,
        n,
        order,
    });
    Weights {
        w_e: TokenEmbedding::Table(vec(w_e)),
        w_pos: (cfg.positions == PositionKind::Learned).then(|| vec(mat(cfg.n_ctx * d, 0.01))),
        layers,
        ln_final_w: vec(vec![1.0; d]),
        ln_final_b: biased.then(|| vec(vec![0.0; d])),
        unembed,
        b_u: None,
    }
}
