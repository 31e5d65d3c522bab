//! Text generation with a KV cache: the prompt's keys and values are computed once, then each
//! new token is one pass over a single row that reads every earlier position's keys and values
//! from the cache (the per-token cost is the model's weights once, plus attention over the
//! positions so far). Built-in interventions (steering vectors, ablations) are active in every
//! pass; greedy by default, or seeded sampling (see [`SamplingOptions`]).

use super::engine::{with_engine, Engine};
use super::forward::{run_pass, LogitRows, PassInput, PassPlan};
use super::input::{LogitPositions, RunOptions, TokenBatch};
use super::kv_cache::KvCache;
use super::sampling::{Sampler, SamplingOptions};
use super::Model;
use crate::backend::Backend;
use crate::error::{HookLensError, Result};
use crate::hooks::intervention::Intervention;
use crate::hooks::registry::SlotTable;
use crate::layout::RowLayout;

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
    /// 0) active at every position of every pass. `on_token` sees each new token as it is
    /// chosen and returns false to stop.
    pub fn generate(
        &self,
        prompt: &[u32],
        opts: &GenerateOptions,
        interventions: &[Intervention],
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
        let mut sampler = Sampler::new(opts.sampling)?;
        let mut run = Run {
            tokens: prompt.to_vec(),
            prompt_len: prompt.len(),
            opts,
        };
        let stop = if opts.kv_cache {
            with_engine!(self.loaded(), |e| {
                let mut dec = Decoder::new(e, cfg, capacity, interventions);
                run.drive(self, &mut sampler, on_token, |t| dec.step(t))
            })?
        } else {
            let recompute = |t: &[u32]| self.last_logits(t, interventions);
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
    fn last_logits(&self, tokens: &[u32], interventions: &[Intervention]) -> Result<Vec<f32>> {
        let batch = TokenBatch::single(tokens.to_vec())?;
        let opts = RunOptions {
            logits_at: LogitPositions::Last,
            ..RunOptions::default()
        };
        let ivs: Vec<(usize, Intervention)> =
            interventions.iter().map(|iv| (0, iv.clone())).collect();
        let (out, _) = self.run_with_interventions((&batch).into(), None, None, &ivs, &opts)?;
        out.logits
            .map(|l| l.data)
            .ok_or_else(|| HookLensError::input("no logits"))
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

/// Passes over the new rows only, reading earlier keys and values from a cache of
/// `capacity` positions (positions not yet generated are never attended to: attention is
/// causal by absolute position).
struct Decoder<'e, 'i, B: Backend> {
    engine: &'e Engine<B>,
    cfg: &'e super::config::ModelConfig,
    capacity: usize,
    /// Keys and values of the positions done, written in place by each pass.
    /// // per layer [1, capacity, n_kv_heads, d_head]
    cache: KvCache<B>,
    /// Positions whose keys and values are in `cache`.
    done: usize,
    interventions: &'i [Intervention],
}

impl<'e, 'i, B: Backend> Decoder<'e, 'i, B> {
    fn new(
        engine: &'e Engine<B>,
        cfg: &'e super::config::ModelConfig,
        capacity: usize,
        interventions: &'i [Intervention],
    ) -> Self {
        let width = cfg.n_kv_heads * cfg.d_head;
        let mut cache = KvCache::new(cfg, 1, capacity);
        for l in 0..cfg.n_layers {
            let zeros = || engine.backend.zeros(capacity * width);
            cache.set_layer(l, zeros(), zeros());
        }
        Decoder {
            engine,
            cfg,
            capacity,
            cache,
            done: 0,
            interventions,
        }
    }

    /// Runs the positions of `tokens` not done yet; the last one's logits. `[d_vocab]`
    fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut padded = tokens.to_vec(); // [capacity]: later positions are never read
        padded.resize(self.capacity, 0);
        let batch = TokenBatch::single(padded)?;
        let rows: Vec<usize> = (self.done..tokens.len()).collect();
        let resolved = (self.interventions.iter())
            .map(|iv| iv.resolve(self.cfg, self.capacity))
            .collect::<Result<Vec<_>>>()?;
        let rows_of = vec![0; resolved.len()];
        let mut slots = SlotTable::build(self.cfg, None, &[], &resolved, &rows_of)?;
        let plan = PassPlan {
            input: PassInput::Tokens(&batch),
            layout: RowLayout::from_positions(self.capacity, vec![rows]),
            layers: (0, self.cfg.n_layers),
            kv_prefix: None,
            kv_in_place: true,
            final_positions: None,
            logits: LogitRows::LastOfEachSeq,
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
        self.done = tokens.len();
        let (logits, _) = out
            .logits
            .ok_or_else(|| HookLensError::input("the pass returned no logits"))?;
        Ok(logits)
    }
}
