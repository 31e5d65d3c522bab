//! The sweeps users run, as lists of variants for the engine: head (or layer) ablation,
//! activation patching, and causal tracing.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::engine::{run_naive, run_sweep, Base, SweepOptions, SweepOutcome, Variant};
use super::metric::Metric;
use super::noise::Gaussian;
use crate::error::{HookLensError, Result};
use crate::hooks::intervention::{Intervention, Op};
use crate::hooks::point::{HookKind, HookPoint};
use crate::hooks::NamesFilter;
use crate::model::input::{ReturnType, RunOptions, TokenBatch};
use crate::model::Model;
use crate::tensor::Tensor;

/// Where a variant sits in the result grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The layer.
    pub layer: usize,
    /// The head, for per-head sweeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<usize>,
    /// The position, for per-position sweeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos: Option<usize>,
}

/// How the sweep's numbers are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// Ablation: `delta = value - clean`.
    Ablation,
    /// Patching and tracing: `recovery = (value - corrupted) / (clean - corrupted)`.
    Recovery,
}

/// A sweep ready to run: bases, variants, and each variant's grid entry. Variants with the
/// same entry (tracing's noise samples) are averaged.
#[derive(Clone, Debug)]
pub struct SweepSpec {
    /// Base runs.
    pub bases: Vec<Base>,
    /// The variants.
    pub variants: Vec<Variant>,
    /// Grid entry of each variant.
    pub entries: Vec<Entry>,
    /// The clean base.
    pub clean_base: usize,
    /// The corrupted bases (averaged), for recovery.
    pub corrupted_bases: Vec<usize>,
    /// How to read the values.
    pub reading: Reading,
}

/// One cell of a sweep's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResultRow {
    /// The layer.
    pub layer: usize,
    /// The head, for per-head sweeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<usize>,
    /// The position, for per-position sweeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos: Option<usize>,
    /// The metric.
    pub value: f64,
    /// Ablation: value - clean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    /// Patching / tracing: (value - corrupted) / (clean - corrupted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<f64>,
}

/// A finished sweep.
#[derive(Clone, Debug)]
pub struct SweepReport {
    /// The metric on the clean run.
    pub clean: f64,
    /// The metric on the corrupted run(s), averaged, when there are any.
    pub corrupted: Option<f64>,
    /// One row per grid entry, in entry order of first appearance.
    pub results: Vec<ResultRow>,
    /// The engine's outcome (values per variant and statistics).
    pub outcome: SweepOutcome,
}

impl SweepSpec {
    /// Runs with the batched engine (`naive = false`) or one forward per variant.
    pub fn run(
        &self,
        model: &Model,
        metric: &Metric,
        naive: bool,
        opts: &SweepOptions<'_>,
    ) -> Result<SweepReport> {
        let opts = SweepOptions {
            clean_base: self.clean_base,
            max_rows: opts.max_rows,
            progress: opts.progress,
        };
        let outcome = if naive {
            run_naive(model, &self.bases, &self.variants, metric, &opts)?
        } else {
            run_sweep(model, &self.bases, &self.variants, metric, &opts)?
        };
        Ok(self.summarize(outcome))
    }

    /// Averages variants per entry and reads them against the clean / corrupted values.
    pub fn summarize(&self, outcome: SweepOutcome) -> SweepReport {
        let clean = outcome.base_values[self.clean_base];
        let corrupted = (!self.corrupted_bases.is_empty()).then(|| {
            self.corrupted_bases
                .iter()
                .map(|&b| outcome.base_values[b])
                .sum::<f64>()
                / self.corrupted_bases.len() as f64
        });
        let mut order: Vec<Entry> = Vec::new();
        let mut sums: Vec<(f64, usize)> = Vec::new();
        for (e, &v) in self.entries.iter().zip(&outcome.values) {
            let i = match order.iter().position(|x| x == e) {
                Some(i) => i,
                None => {
                    order.push(*e);
                    sums.push((0.0, 0));
                    order.len() - 1
                }
            };
            sums[i].0 += v;
            sums[i].1 += 1;
        }
        let results = order
            .iter()
            .zip(sums)
            .map(|(e, (sum, count))| {
                let value = sum / count as f64;
                let (delta, recovery) = match (self.reading, corrupted) {
                    (Reading::Recovery, Some(c)) => (None, Some((value - c) / (clean - c))),
                    _ => (Some(value - clean), None),
                };
                ResultRow {
                    layer: e.layer,
                    head: e.head,
                    pos: e.pos,
                    value,
                    delta,
                    recovery,
                }
            })
            .collect();
        SweepReport {
            clean,
            corrupted,
            results,
            outcome,
        }
    }
}

/// What head / layer ablation removes (in JSON: `heads`, `attn`, `mlp`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum AblationTarget {
    /// Every (layer, head): the head's `hook_z` slice at all positions.
    #[default]
    #[serde(rename = "heads")]
    Heads,
    /// Every layer's attention output (`hook_attn_out`).
    #[serde(rename = "attn")]
    AttnLayers,
    /// Every layer's MLP output (`hook_mlp_out`).
    #[serde(rename = "mlp")]
    MlpLayers,
}

/// What an ablated value is replaced with.
#[derive(Clone, Debug, PartialEq)]
pub enum AblationMethod {
    /// Zeros.
    Zero,
    /// The mean over reference sequences of the prompt's length, per position; with no
    /// references, the mean over the prompt's own positions.
    Mean {
        /// Reference token sequences (each as long as the prompt), possibly empty.
        references: Vec<Vec<u32>>,
    },
    /// The value from another sequence of the same length.
    Resample {
        /// The other sequence.
        source: Vec<u32>,
    },
    /// Replacement values computed elsewhere (a dataset's mean), one tensor per layer shaped
    /// like the hook's activation for one sequence: `[1, ...]` (one position's values, used
    /// at every position) or `[seq, ...]` (per position, for prompts of that length).
    Values {
        /// The values of each layer. `[layer]` -> `[1 | seq, ...]`
        per_layer: Vec<Arc<Tensor>>,
    },
}

impl AblationTarget {
    /// The hook kind ablated: `hook_z` (heads), `hook_attn_out` or `hook_mlp_out`.
    pub fn hook_kind(self) -> HookKind {
        match self {
            AblationTarget::Heads => HookKind::Z,
            AblationTarget::AttnLayers => HookKind::AttnOut,
            AblationTarget::MlpLayers => HookKind::MlpOut,
        }
    }
}

/// Given per-layer values (`[1, ...]` or `[p, ...]`) as `[p, ...]` tensors.
fn given_values(per_layer: &[Arc<Tensor>], n_layers: usize, p: usize) -> Result<Vec<Arc<Tensor>>> {
    if per_layer.len() != n_layers {
        return Err(HookLensError::input(format!(
            "ablation values for {} layers but the model has {n_layers}",
            per_layer.len()
        )));
    }
    per_layer
        .iter()
        .map(|t| match t.shape.first() {
            Some(&n) if n == p => Ok(Arc::clone(t)),
            Some(1) => {
                let mut shape = t.shape.clone();
                shape[0] = p;
                Ok(Arc::new(Tensor::new(t.data.repeat(p), shape)?))
            }
            _ => Err(HookLensError::input(format!(
                "ablation values of shape {:?} fit neither one position nor the {p}-token prompt",
                t.shape
            ))),
        })
        .collect()
}

fn same_length(what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(HookLensError::input(format!(
            "{what} has {got} tokens but the prompt has {want}; sequences must be the same length"
        )))
    }
}

/// Caches one hook kind at every layer for a batch of sequences.
fn cache_kind(model: &Model, rows: &[Vec<u32>], kind: HookKind) -> Result<Vec<Tensor>> {
    let batch = TokenBatch::from_rows(rows)?;
    let names = (0..model.config().n_layers)
        .map(|l| HookPoint::layer(kind, l).into())
        .collect();
    let (_, cache) = model.run_with_cache(
        &batch,
        &NamesFilter::Names(names),
        &RunOptions::returning(ReturnType::None),
    )?;
    (0..model.config().n_layers)
        .map(|l| cache.get(HookPoint::layer(kind, l)).cloned())
        .collect()
}

/// Drops the batch axis of single-sequence cached tensors and shares them.
fn per_sequence(cached: Vec<Tensor>) -> Vec<Arc<Tensor>> {
    cached
        .into_iter()
        .map(|t| {
            Arc::new(Tensor {
                shape: t.shape[1..].to_vec(),
                data: t.data,
            })
        })
        .collect()
}

/// Per-layer replacement values for an ablation method. // [layer] -> [seq, ...]
fn ablation_values(
    model: &Model,
    tokens: &[u32],
    kind: HookKind,
    method: &AblationMethod,
) -> Result<Option<Vec<Arc<Tensor>>>> {
    let p = tokens.len();
    let per_seq =
        |t: &Tensor| -> (usize, Vec<usize>) { (t.data.len() / t.shape[0], t.shape[1..].to_vec()) };
    match method {
        AblationMethod::Zero => Ok(None),
        AblationMethod::Values { per_layer } => {
            Ok(Some(given_values(per_layer, model.config().n_layers, p)?))
        }
        AblationMethod::Resample { source } => {
            same_length("the resample source", source.len(), p)?;
            let cached = cache_kind(model, std::slice::from_ref(source), kind)?;
            Ok(Some(
                cached
                    .into_iter()
                    .map(|t| {
                        let (_, shape) = per_seq(&t);
                        Arc::new(Tensor {
                            data: t.data,
                            shape,
                        })
                    })
                    .collect(),
            ))
        }
        AblationMethod::Mean { references } if references.is_empty() => {
            // Mean over the prompt's own positions, broadcast to every position.
            let cached = cache_kind(model, &[tokens.to_vec()], kind)?;
            Ok(Some(
                cached
                    .into_iter()
                    .map(|t| {
                        let (_, shape) = per_seq(&t);
                        let width = t.data.len() / p;
                        let mut mean = vec![0.0f64; width];
                        for row in t.data.chunks_exact(width) {
                            mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
                        }
                        let row: Vec<f32> = mean.iter().map(|m| (m / p as f64) as f32).collect();
                        Arc::new(Tensor {
                            data: row.repeat(p),
                            shape,
                        })
                    })
                    .collect(),
            ))
        }
        AblationMethod::Mean { references } => {
            for r in references {
                same_length("a mean-ablation reference", r.len(), p)?;
            }
            let cached = cache_kind(model, references, kind)?;
            let n = references.len();
            Ok(Some(
                cached
                    .into_iter()
                    .map(|t| {
                        let (len, shape) = per_seq(&t);
                        let mut mean = vec![0.0f64; len];
                        for seq in t.data.chunks_exact(len) {
                            mean.iter_mut().zip(seq).for_each(|(m, &v)| *m += v as f64);
                        }
                        Arc::new(Tensor {
                            data: mean.iter().map(|m| (m / n as f64) as f32).collect(),
                            shape,
                        })
                    })
                    .collect(),
            ))
        }
    }
}

/// Ablates every head (or every layer's attention / MLP) of one prompt, one variant each.
pub fn ablation_sweep(
    model: &Model,
    tokens: &[u32],
    target: AblationTarget,
    method: &AblationMethod,
) -> Result<SweepSpec> {
    let cfg = model.config();
    let kind = target.hook_kind();
    let values = ablation_values(model, tokens, kind, method)?;
    let op = |l: usize| match &values {
        None => Op::Zero,
        Some(v) => Op::Set {
            values: Arc::clone(&v[l]),
        },
    };
    let mut variants = Vec::new();
    let mut entries = Vec::new();
    for l in 0..cfg.n_layers {
        let hook = HookPoint::layer(kind, l);
        let heads: Vec<Option<usize>> = match target {
            AblationTarget::Heads => (0..cfg.n_heads).map(Some).collect(),
            _ => vec![None],
        };
        for h in heads {
            let mut iv = Intervention::new(hook, op(l));
            if let Some(h) = h {
                iv = iv.at_heads(vec![h]);
            }
            variants.push(Variant {
                base: 0,
                interventions: vec![iv],
            });
            entries.push(Entry {
                layer: l,
                head: h,
                pos: None,
            });
        }
    }
    Ok(SweepSpec {
        bases: vec![Base {
            tokens: tokens.to_vec(),
            interventions: Vec::new(),
        }],
        variants,
        entries,
        clean_base: 0,
        corrupted_bases: Vec::new(),
        reading: Reading::Ablation,
    })
}

/// Where activation patching copies clean values into the corrupted run (in JSON:
/// `resid_pre`, `resid_mid`, `attn_out`, `mlp_out`, `z`, `z_by_pos`, or with hyphens as the
/// command line spells them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchSite {
    /// `hook_resid_pre` per (layer, position).
    #[default]
    #[serde(alias = "resid-pre")]
    ResidPre,
    /// `hook_resid_mid` per (layer, position).
    #[serde(alias = "resid-mid")]
    ResidMid,
    /// `hook_attn_out` per (layer, position).
    #[serde(alias = "attn-out")]
    AttnOut,
    /// `hook_mlp_out` per (layer, position).
    #[serde(alias = "mlp-out")]
    MlpOut,
    /// `attn.hook_z` per (layer, head), all positions.
    Z,
    /// `attn.hook_z` per (layer, head, position).
    #[serde(alias = "z-by-pos")]
    ZByPos,
}

impl PatchSite {
    fn kind(self) -> HookKind {
        match self {
            PatchSite::ResidPre => HookKind::ResidPre,
            PatchSite::ResidMid => HookKind::ResidMid,
            PatchSite::AttnOut => HookKind::AttnOut,
            PatchSite::MlpOut => HookKind::MlpOut,
            PatchSite::Z | PatchSite::ZByPos => HookKind::Z,
        }
    }
}

/// Patches clean activations into the corrupted run at every (layer, position) or
/// (layer, head[, position]) of a site. Base 0 is the corrupted run, base 1 the clean one.
pub fn patching_sweep(
    model: &Model,
    clean: &[u32],
    corrupted: &[u32],
    site: PatchSite,
) -> Result<SweepSpec> {
    same_length("the corrupted prompt", corrupted.len(), clean.len())?;
    let cfg = model.config();
    let p = clean.len();
    let kind = site.kind();
    let clean_values = per_sequence(cache_kind(model, &[clean.to_vec()], kind)?);
    // Before the first token where the prompts differ, clean and corrupted activations are the
    // same (causality), so patching there changes nothing: such a variant carries no
    // intervention and takes the corrupted run's value without a pass.
    let first_diff = clean
        .iter()
        .zip(corrupted)
        .position(|(a, b)| a != b)
        .unwrap_or(p);
    let mut variants = Vec::new();
    let mut entries = Vec::new();
    for (l, values) in clean_values.iter().enumerate() {
        let hook = HookPoint::layer(kind, l);
        let mut push = |head: Option<usize>, pos: Option<usize>| {
            entries.push(Entry {
                layer: l,
                head,
                pos,
            });
            if pos.is_some_and(|t| t < first_diff) {
                variants.push(Variant {
                    base: 0,
                    interventions: Vec::new(),
                });
                return;
            }
            let mut iv = Intervention::new(
                hook,
                Op::Set {
                    values: Arc::clone(values),
                },
            );
            if let Some(h) = head {
                iv = iv.at_heads(vec![h]);
            }
            if let Some(t) = pos {
                iv = iv.at_positions(vec![t]);
            }
            variants.push(Variant {
                base: 0,
                interventions: vec![iv],
            });
        };
        match site {
            PatchSite::Z => (0..cfg.n_heads).for_each(|h| push(Some(h), None)),
            PatchSite::ZByPos => {
                for h in 0..cfg.n_heads {
                    (0..p).for_each(|t| push(Some(h), Some(t)));
                }
            }
            _ => (0..p).for_each(|t| push(None, Some(t))),
        }
    }
    Ok(SweepSpec {
        bases: vec![
            Base {
                tokens: corrupted.to_vec(),
                interventions: Vec::new(),
            },
            Base {
                tokens: clean.to_vec(),
                interventions: Vec::new(),
            },
        ],
        variants,
        entries,
        clean_base: 1,
        corrupted_bases: vec![0],
        reading: Reading::Recovery,
    })
}

/// What causal tracing restores (in JSON: `resid`, `mlp`, `attn`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceKind {
    /// The hidden state after block L (`hook_resid_post`).
    #[default]
    Resid,
    /// MLP outputs over a window of layers around L.
    Mlp,
    /// Attention outputs over a window of layers around L.
    Attn,
}

/// Settings of causal tracing.
#[derive(Clone, Debug)]
pub struct TraceSettings {
    /// What is restored.
    pub kind: TraceKind,
    /// Window of layers for MLP / attention restoring (ROME uses 10).
    pub window: usize,
    /// Noise samples (corrupted runs), batched.
    pub samples: usize,
    /// Noise standard deviation as a multiple of the token embeddings' standard deviation.
    pub noise_scale: f32,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings {
            kind: TraceKind::Resid,
            window: 10,
            samples: 5,
            noise_scale: 3.0,
            seed: 0,
        }
    }
}

/// ROME-style causal tracing: the subject tokens' embeddings get Gaussian noise (one base
/// per sample, base 0 is clean), and each (layer, position) is restored from the clean run.
pub fn trace_sweep(
    model: &Model,
    tokens: &[u32],
    subject: &[usize],
    settings: &TraceSettings,
) -> Result<SweepSpec> {
    let cfg = model.config();
    let (p, d, n) = (tokens.len(), cfg.d_model, cfg.n_layers);
    if subject.is_empty() || subject.iter().any(|&t| t >= p) {
        return Err(HookLensError::input(format!(
            "subject positions {subject:?} must be non-empty and inside the {p}-token prompt"
        )));
    }
    if settings.samples == 0 {
        return Err(HookLensError::input(
            "causal tracing needs at least one noise sample",
        ));
    }
    let w_e = model.embedding_host();
    let mean = w_e.iter().map(|&v| v as f64).sum::<f64>() / w_e.len() as f64;
    let var = w_e.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / w_e.len() as f64;
    let sigma = settings.noise_scale * var.sqrt() as f32;

    let mut bases = vec![Base {
        tokens: tokens.to_vec(),
        interventions: Vec::new(),
    }];
    let mut rng = Gaussian::new(settings.seed);
    for _ in 0..settings.samples {
        let mut values = vec![0.0f32; p * d]; // [p, d_model]
        for &t in subject {
            let id = tokens[t] as usize;
            for (j, v) in values[t * d..(t + 1) * d].iter_mut().enumerate() {
                *v = w_e[id * d + j] + sigma * rng.sample();
            }
        }
        bases.push(Base {
            tokens: tokens.to_vec(),
            interventions: vec![Intervention::new(
                HookPoint::global(HookKind::Embed),
                Op::Set {
                    values: Arc::new(Tensor::new(values, vec![p, d])?),
                },
            )
            .at_positions(subject.to_vec())],
        });
    }
    let kind = match settings.kind {
        TraceKind::Resid => HookKind::ResidPost,
        TraceKind::Mlp => HookKind::MlpOut,
        TraceKind::Attn => HookKind::AttnOut,
    };
    let clean = per_sequence(cache_kind(model, &[tokens.to_vec()], kind)?);
    let mut variants = Vec::new();
    let mut entries = Vec::new();
    for sample in 1..=settings.samples {
        for l in 0..n {
            let layers: Vec<usize> = match settings.kind {
                TraceKind::Resid => vec![l],
                _ => {
                    let half = settings.window / 2;
                    let lo = l.saturating_sub(half);
                    let hi = (l + settings.window - half).min(n);
                    (lo..hi.max(lo + 1)).collect()
                }
            };
            for t in 0..p {
                let interventions = layers
                    .iter()
                    .map(|&ll| {
                        Intervention::new(
                            HookPoint::layer(kind, ll),
                            Op::Set {
                                values: Arc::clone(&clean[ll]),
                            },
                        )
                        .at_positions(vec![t])
                    })
                    .collect();
                variants.push(Variant {
                    base: sample,
                    interventions,
                });
                entries.push(Entry {
                    layer: l,
                    head: None,
                    pos: Some(t),
                });
            }
        }
    }
    Ok(SweepSpec {
        bases,
        variants,
        entries,
        clean_base: 0,
        corrupted_bases: (1..=settings.samples).collect(),
        reading: Reading::Recovery,
    })
}
