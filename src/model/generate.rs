//! Text generation with a KV cache: the prompt's keys and values are computed once, then each
//! new token is one pass over a single row that reads every earlier position's keys and values
//! from the cache (the per-token cost is the model's weights once, plus attention over the
//! positions so far). Built-in interventions (steering vectors, ablations) and hooks are active
//! in every pass; greedy by default, or seeded sampling (see [`SamplingOptions`]).

use super::engine::{with_engine, Engine};
use super::forward::{last_block_positions, run_pass, LogitRows, PassInput, PassPlan};
use super::input::{LogitPositions, RunOptions, TokenBatch};
use super::kv_cache::KvCache;
use super::sampling::{Sampler, SamplingOptions};
use super::Model;
use crate::backend::Backend;
use crate::error::{HookLensError, Result};
use crate::hooks::intervention::{Geometry, Intervention, Op, ResolvedIntervention};
use crate::hooks::registry::{Hooks, SlotTable};
use crate::layout::RowLayout;
use crate::tensor::Tensor;
use std::sync::Arc;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    /// New tokens at most.
    pub max_new: usize,
    /// How each token is chosen (greedy by default).
    pub sampling: SamplingOptions,
    /// Stop once the generated text contains this (the text is kept, as HF's `stop_strings`).
    pub stop: Option<String>,
    /// Stop after the model's end-of-sequence token (kept in the output, as HF does).
    pub stop_at_eos: bool,
    /// Reuse keys and values (true, the default); false recomputes the whole sequence for
    /// every token (for comparison).
    pub kv_cache: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new: 32,
            sampling: SamplingOptions::default(),
            stop: None,
            stop_at_eos: true,
            kv_cache: true,
        }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `max_new` tokens were generated.
    MaxNew,
    /// The end-of-sequence token was generated.
    Eos,
    /// The stop text appeared.
    StopText,
    /// The callback asked to stop.
    Callback,
}

/// A finished generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The prompt followed by the new tokens.
    pub tokens: Vec<u32>,
    /// The new tokens.
    pub new_tokens: Vec<u32>,
    /// Why it ended.
    pub stop: StopReason,
}

impl Model {
    /// Generates up to `opts.max_new` tokens after `prompt`, with `interventions` (on batch row
    /// 0) active in every pass: one without positions at every position, one with positions
    /// (absolute, from the prompt's first token) at each of them once it is computed; a
    /// `Set` holds values for all `prompt + max_new` positions. `on_token` sees each new
    /// token as it is chosen and returns false to stop.
    pub fn generate(
        &self,
        prompt: &[u32],
        opts: &GenerateOptions,
        interventions: &[Intervention],
        on_token: &mut dyn FnMut(u32) -> Result<bool>,
    ) -> Result<Generation> {
        self.generate_with_hooks(prompt, opts, interventions, None, on_token)
    }

    /// [`Model::generate`] with `hooks` running in every pass, as TL's hooks stay active
    /// around `generate`. With the KV cache the first pass computes the prompt (hooks see
    /// `[1, prompt, ...]`) and each later pass only the new token: hooks see `[1, 1, ...]`,
    /// `hook_attn_scores` / `hook_pattern` `[1, n_heads, 1, positions so far]`, and
    /// [`HookContext::first_position`](crate::HookContext::first_position) says which
    /// position that is. One difference from TL: `hook_rot_k` holds the new position's keys,
    /// where TL rotates and hooks every cached key again. Without the KV cache each pass is a
    /// full pass over the tokens so far. An edit in a hook changes that pass's keys and
    /// values, and so every later token, as in TL.
    pub fn generate_with_hooks(
        &self,
        prompt: &[u32],
        opts: &GenerateOptions,
        interventions: &[Intervention],
        mut hooks: Option<&mut Hooks<'_>>,
        on_token: &mut dyn FnMut(u32) -> Result<bool>,
    ) -> Result<Generation> {
        let cfg = self.config();
        let capacity = prompt.len() + opts.max_new;
        if capacity > cfg.n_ctx {
            return Err(HookLensError::input(format!(
                "the prompt ({} tokens) and {} new tokens exceed the model's context of {}",
                prompt.len(),
                opts.max_new,
                cfg.n_ctx
            )));
        }
        TokenBatch::single(prompt.to_vec())?.validate(cfg)?;
        let resolved = resolve_for_generation(interventions, cfg, capacity)?;
        let mut sampler = Sampler::new(opts.sampling)?;
        let mut run = Run {
            tokens: prompt.to_vec(),
            prompt_len: prompt.len(),
            opts,
        };
        let stop = if opts.kv_cache {
            with_engine!(self.loaded(), |e| {
                let mut dec = Decoder::new(e, cfg, capacity, resolved, hooks);
                run.drive(self, &mut sampler, on_token, |t| dec.step(t))
            })?
        } else {
            let recompute = |t: &[u32]| self.last_logits(t, interventions, hooks.as_deref_mut());
            run.drive(self, &mut sampler, on_token, recompute)?
        };
        let new_tokens = run.tokens[prompt.len()..].to_vec();
        Ok(Generation {
            tokens: run.tokens,
            new_tokens,
            stop,
        })
    }

    /// The last position's logits of one full pass over `tokens`. `[d_vocab]`
    fn last_logits(
        &self,
        tokens: &[u32],
        interventions: &[Intervention],
        hooks: Option<&mut Hooks<'_>>,
    ) -> Result<Vec<f32>> {
        let batch = TokenBatch::single(tokens.to_vec())?;
        let opts = RunOptions {
            logits_at: LogitPositions::Last,
            ..RunOptions::default()
        };
        let ivs: Vec<(usize, Intervention)> = (interventions.iter())
            .filter_map(|iv| restrict(iv, tokens.len()))
            .map(|iv| (0, iv))
            .collect();
        let (out, _) = self.run_with_interventions((&batch).into(), hooks, None, &ivs, &opts)?;
        out.logits
            .map(|l| l.data)
            .ok_or_else(|| HookLensError::input("no logits"))
    }
}

/// `interventions` resolved against a generation of `capacity` positions, once: a row kind's
/// layout does not depend on the sequence length (it acts at the rows a pass computes, a
/// `Set` reads its source at absolute positions), so only the key axis of scores and pattern
/// follows each pass ([`key_axis_to`]); the ops that hold values along that axis are refused.
fn resolve_for_generation(
    interventions: &[Intervention],
    cfg: &super::config::ModelConfig,
    capacity: usize,
) -> Result<Vec<ResolvedIntervention>> {
    let mut resolved = Vec::with_capacity(interventions.len());
    for iv in interventions {
        let r = iv.resolve(cfg, capacity)?;
        if r.geometry.head_major && matches!(iv.op, Op::Add { .. } | Op::Set { .. }) {
            return Err(HookLensError::input(format!(
                "intervention at {}: during generation its key axis grows with every token, \
                 so only zero and scale apply there (use a hook to edit it)",
                r.point.name()
            )));
        }
        resolved.push(r);
    }
    Ok(resolved)
}

/// Gives the scores / pattern interventions the key axis of a pass over `seq_len` positions.
fn key_axis_to(
    resolved: &mut [ResolvedIntervention],
    cfg: &super::config::ModelConfig,
    seq_len: usize,
) {
    for r in resolved.iter_mut().filter(|r| r.geometry.head_major) {
        r.geometry = Geometry::of(r.point.kind, cfg, seq_len);
    }
}

/// An intervention for a full pass over the first `seq_len` positions (generation without the
/// KV cache): its positions restricted to those (`None` when none is left), a `Set`'s values
/// to its first `seq_len` positions.
fn restrict(iv: &Intervention, seq_len: usize) -> Option<Intervention> {
    let mut iv = iv.clone();
    if let Some(ps) = &mut iv.positions {
        ps.retain(|&p| p < seq_len);
        if ps.is_empty() {
            return None;
        }
    }
    if let Op::Set { values } = &mut iv.op {
        *values = Arc::new(first_positions(values, seq_len));
    }
    Some(iv)
}

/// The first `n` entries of a tensor's leading (position) axis. `[pos, ..]` -> `[n, ..]`
fn first_positions(t: &Tensor, n: usize) -> Tensor {
    let per_position: usize = t.shape.iter().skip(1).product();
    let n = n.min(t.shape.first().copied().unwrap_or(0));
    let mut shape = t.shape.clone();
    if let Some(first) = shape.first_mut() {
        *first = n;
    }
    Tensor {
        data: t.data[..n * per_position].to_vec(),
        shape,
    }
}

/// The tokens so far and the stopping rules.
struct Run<'o> {
    tokens: Vec<u32>,
    prompt_len: usize,
    opts: &'o GenerateOptions,
}

impl Run<'_> {
    /// Chooses tokens until a stopping rule fires; `logits_after` gives the next-token logits
    /// after the tokens so far.
    fn drive(
        &mut self,
        model: &Model,
        sampler: &mut Sampler,
        on_token: &mut dyn FnMut(u32) -> Result<bool>,
        mut logits_after: impl FnMut(&[u32]) -> Result<Vec<f32>>,
    ) -> Result<StopReason> {
        let eos = model
            .config()
            .eos_token_id
            .filter(|_| self.opts.stop_at_eos);
        for _ in 0..self.opts.max_new {
            let logits = logits_after(&self.tokens)?;
            let next = sampler.next(&logits);
            self.tokens.push(next);
            if !on_token(next)? {
                return Ok(StopReason::Callback);
            }
            if Some(next) == eos {
                return Ok(StopReason::Eos);
            }
            if self.stop_text_reached(model)? {
                return Ok(StopReason::StopText);
            }
        }
        Ok(StopReason::MaxNew)
    }

    /// True when the generated text contains the stop text.
    fn stop_text_reached(&self, model: &Model) -> Result<bool> {
        let Some(stop) = self.opts.stop.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(false);
        };
        let text = model.tokenizer()?.decode(&self.tokens[self.prompt_len..])?;
        Ok(text.contains(stop))
    }
}

/// Passes over the new rows only, reading earlier keys and values from a cache with room for
/// `capacity` positions that grows by the positions each pass computes.
struct Decoder<'e, 'h, 'a, B: Backend> {
    engine: &'e Engine<B>,
    cfg: &'e super::config::ModelConfig,
    /// Keys and values of the positions done, written in place by each pass.
    /// // per layer [1, done, n_kv_heads, d_head], allocated for [1, capacity, ..]
    cache: KvCache<B>,
    /// Positions whose keys and values are in `cache`.
    done: usize,
    /// Resolved once for the whole generation (see [`resolve_for_generation`]).
    interventions: Vec<ResolvedIntervention>,
    /// The sequence of each intervention: all 0. `[interventions]`
    intervention_seqs: Vec<usize>,
    hooks: Option<&'h mut Hooks<'a>>,
}

impl<'e, 'h, 'a, B: Backend> Decoder<'e, 'h, 'a, B> {
    fn new(
        engine: &'e Engine<B>,
        cfg: &'e super::config::ModelConfig,
        capacity: usize,
        interventions: Vec<ResolvedIntervention>,
        hooks: Option<&'h mut Hooks<'a>>,
    ) -> Self {
        let width = cfg.n_kv_heads * cfg.d_head;
        let mut cache = KvCache::new(cfg, 1, capacity);
        for l in 0..cfg.n_layers {
            let empty = || {
                let mut buf = engine.backend.zeros(capacity * width);
                engine.backend.set_len_keeping(&mut buf, 0);
                buf
            };
            cache.set_layer(l, empty(), empty());
        }
        Decoder {
            engine,
            cfg,
            cache,
            done: 0,
            intervention_seqs: vec![0; interventions.len()],
            interventions,
            hooks,
        }
    }

    /// Runs the positions of `tokens` not done yet; the last one's logits. `[d_vocab]`
    fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let seq_len = tokens.len();
        self.grow_cache(seq_len);
        let batch = TokenBatch::single(tokens.to_vec())?;
        let rows: Vec<usize> = (self.done..seq_len).collect();
        key_axis_to(&mut self.interventions, self.cfg, seq_len);
        let (ivs, seqs) = (&self.interventions, &self.intervention_seqs);
        let mut slots = SlotTable::build(self.cfg, self.hooks.as_deref_mut(), &[], ivs, seqs)?;
        let layout = RowLayout::from_positions(seq_len, vec![rows]);
        // The prompt's pass needs the last block only at the last position, unless something
        // watches it (a pass over one new token computes that position only anyway).
        let last = LogitRows::LastOfEachSeq;
        let last_block =
            last_block_positions(self.cfg, (&layout, self.cfg.n_layers), None, last, &slots);
        let plan = PassPlan {
            input: PassInput::Tokens(&batch),
            layout,
            layers: (0, self.cfg.n_layers),
            kv_prefix: None,
            kv_in_place: true,
            final_positions: last_block.as_deref(),
            logits: last,
            joiners: &[],
            after_block: None,
            spans: None,
        };
        let out = run_pass(
            self.engine,
            self.cfg,
            &plan,
            &mut slots,
            Some(&mut self.cache),
        )?;
        self.done = seq_len;
        let (logits, _) = out
            .logits
            .ok_or_else(|| HookLensError::input("the pass returned no logits"))?;
        Ok(logits)
    }

    /// Makes every layer's keys and values hold `seq_len` positions (the new ones zero until
    /// the pass writes them), within their allocation.
    fn grow_cache(&mut self, seq_len: usize) {
        let len = seq_len * self.cfg.n_kv_heads * self.cfg.d_head;
        for l in 0..self.cfg.n_layers {
            if let Some((k, v)) = self.cache.layer_mut(l) {
                self.engine.backend.set_len_keeping(k, len);
                self.engine.backend.set_len_keeping(v, len);
            }
        }
    }
}
