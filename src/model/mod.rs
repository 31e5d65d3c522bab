//! Model description, weight loading and the forward pass.

pub(crate) mod arena;
pub mod config;
pub(crate) mod engine;
#[cfg(test)]
mod engine_tests;
pub(crate) mod forward;
pub mod generate;
pub mod gguf;
pub mod hf_config;
pub mod input;
pub mod known;
pub mod kv_cache;
pub mod layout;
pub mod load_clock;
pub mod load_gguf;
mod load_gguf_quant;
pub mod load_gpt2;
pub mod load_llama;
pub mod loss;
pub mod process;
pub mod random;
pub mod safetensors_dir;
pub mod sampling;
mod split_input;
pub mod tl_weights;
#[cfg(any(feature = "cuda", test))]
pub(crate) mod transfer;
pub mod weight_cache;
pub mod weights;

use std::path::{Path, PathBuf};
use std::time::Instant;

use self::config::{Architecture, ModelConfig};
use self::engine::{load_onto, with_engine, Engine, Loaded};
use self::forward::{LogitRows, PassInput};
use self::input::{Input, LogitPositions, Output, ReturnType, RunOptions, TokenBatch};
use self::load_clock::{LoadClock, LoadTimes};
use self::loss::{loss_pairs, next_token_loss};
pub use self::process::LoadOptions;
use self::weight_cache::{CacheRequest, WeightCache};
use self::weights::TokenEmbedding;
use self::weights::Weights;
use crate::backend::CpuBackend;
use crate::device::Device;
use crate::error::{HookLensError, Result};
use crate::hooks::cache::{ActivationCache, NamesFilter};
use crate::hooks::intervention::Intervention;
use crate::hooks::point::{hook_points, HookPoint};
use crate::hooks::registry::{Hooks, SlotTable};
use crate::tensor::Tensor;
use crate::tokenizer::Tokenizer;

/// A loaded model: configuration, f32 weights and (usually) a tokenizer.
pub struct Model {
    config: ModelConfig,
    loaded: Loaded,
    tokenizer: Option<Tokenizer>,
    source: PathBuf,
    /// Where the load's time went (`None` for a model assembled from parts).
    load_times: Option<LoadTimes>,
}

impl Model {
    /// Assembles a model from parts, checking that the weights fit the configuration.
    pub fn from_parts(
        config: ModelConfig,
        weights: Weights,
        tokenizer: Option<Tokenizer>,
        source: PathBuf,
    ) -> Result<Self> {
        config.validate()?;
        let engine = Engine::new(CpuBackend, weights, &config)?;
        Ok(Model::from_loaded(
            config,
            Loaded::Cpu(engine),
            tokenizer,
            source,
        ))
    }

    /// A model around an engine already loaded (and checked) on its backend.
    pub(crate) fn from_loaded(
        config: ModelConfig,
        loaded: Loaded,
        tokenizer: Option<Tokenizer>,
        source: PathBuf,
    ) -> Self {
        Model {
            config,
            loaded,
            tokenizer,
            source,
            load_times: None,
        }
    }

    /// Where the time of loading this model went (`None` when it was assembled from parts).
    pub fn load_times(&self) -> Option<&LoadTimes> {
        self.load_times.as_ref()
    }

    /// Records where the load's time went (loaders call it).
    pub(crate) fn with_load_times(mut self, times: LoadTimes) -> Self {
        self.load_times = Some(times);
        self
    }

    /// Loads an HF checkpoint directory (`config.json`, safetensors weights, tokenizer files).
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        Model::from_hf_dir_on(dir, Device::Cpu)
    }

    /// [`Model::from_hf_dir`] onto a device.
    pub fn from_hf_dir_on(dir: &Path, device: Device) -> Result<Self> {
        Model::from_hf_dir_with(dir, device, WeightCache::from_env()?)
    }

    /// [`Model::from_hf_dir_on`] with a packed-weight cache policy of the caller's choice
    /// (instead of the one `HOOKLENS_WEIGHT_CACHE` makes).
    pub fn from_hf_dir_with(dir: &Path, device: Device, cache: WeightCache) -> Result<Self> {
        Model::from_hf_dir_with_options(dir, device, cache, LoadOptions::default())
    }

    /// [`Model::from_hf_dir_with`] with TL's weight processing as `options` says (see
    /// [`LoadOptions`]; processing runs on the CPU only).
    pub fn from_hf_dir_with_options(
        dir: &Path,
        device: Device,
        cache: WeightCache,
        options: LoadOptions,
    ) -> Result<Self> {
        if !dir.is_dir() {
            return Err(HookLensError::input(format!(
                "{} is not a directory with an HF checkpoint",
                dir.display()
            )));
        }
        let started = Instant::now();
        let hf = hf_config::read_hf_config(&dir.join("config.json"))?;
        let cfg = hf.config;
        let src = safetensors_dir::SafetensorsDir::open(dir)?;
        let open = started.elapsed();
        let clock = LoadClock::default();
        cfg.validate()?;
        let tied = hf.tie_word_embeddings;
        let mut sources = vec![dir.join("config.json")];
        sources.extend(src.file_paths());
        let request = CacheRequest {
            policy: cache,
            sources,
            processing: options,
        };
        let (loaded, (tokenizer, tokenizer_time)) =
            std::thread::scope(|scope| {
                let tokenizer = scope.spawn(|| {
                    let t = Instant::now();
                    (Tokenizer::from_hf_dir(dir, cfg.bos_token_id), t.elapsed())
                });
                let loaded = load_onto!(device, &cfg, &request, &clock, |backend| match cfg
                    .architecture
                {
                    Architecture::Gpt2 => load_gpt2::load_gpt2(&src, &cfg, tied, &clock, backend),
                    Architecture::Llama => {
                        let names = (load_llama::hf_llama_names as load_llama::LlamaNames, false);
                        load_llama::load_llama(&src, &cfg, tied, names, &clock, backend)
                    }
                });
                (loaded, join_loader(tokenizer))
            });
        let model = Model::from_loaded(cfg, loaded?, tokenizer?, dir.to_path_buf());
        Ok(model.with_load_times(LoadTimes {
            total: started.elapsed(),
            open,
            tokenizer: tokenizer_time,
            ..clock.times()
        }))
    }

    /// Loads a model from a path onto a device (see [`Device::parse`] for the names), with
    /// the packed-weight cache `HOOKLENS_WEIGHT_CACHE` chooses (see [`WeightCache`]).
    pub fn load_on(path: &Path, device: Device) -> Result<Self> {
        Model::load_with(path, device, WeightCache::from_env()?)
    }

    /// [`Model::load_on`] with a packed-weight cache policy of the caller's choice.
    pub fn load_with(path: &Path, device: Device, cache: WeightCache) -> Result<Self> {
        Model::load_with_options(path, device, cache, LoadOptions::default())
    }

    /// [`Model::load_with`] with TL's weight processing as `options` says:
    /// `LoadOptions::tl()` gives the weights `HookedTransformer.from_pretrained` uses (see
    /// [`LoadOptions`]; processing runs on the CPU only).
    pub fn load_with_options(
        path: &Path,
        device: Device,
        cache: WeightCache,
        options: LoadOptions,
    ) -> Result<Self> {
        if path.is_dir() {
            return Model::from_hf_dir_with_options(path, device, cache, options);
        }
        if !path.exists() {
            return Err(HookLensError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            ));
        }
        if path.extension().is_some_and(|e| e == "gguf") {
            return load_gguf::load_gguf_model_with_options(path, device, cache, options);
        }
        Err(HookLensError::input(format!(
            "{}: expected an HF checkpoint directory or a .gguf file",
            path.display()
        )))
    }

    /// The device the model runs on.
    pub fn device(&self) -> Device {
        match &self.loaded {
            Loaded::Cpu(_) => Device::Cpu,
            #[cfg(feature = "cuda")]
            Loaded::Cuda(e) => Device::Cuda(e.backend.ordinal()),
        }
    }

    /// Loads a model from a path onto the CPU: an HF directory, or a `.gguf` file.
    pub fn load(path: &Path) -> Result<Self> {
        Model::load_on(path, Device::Cpu)
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The weights as the CPU backend holds them; `None` for a model on another device.
    pub fn weights(&self) -> Option<&Weights> {
        match &self.loaded {
            Loaded::Cpu(engine) => Some(&engine.weights),
            #[cfg(feature = "cuda")]
            Loaded::Cuda(_) => None,
        }
    }

    /// The token embedding `W_E` on the host. `[d_vocab, d_model]`
    pub fn embedding_host(&self) -> std::borrow::Cow<'_, [f32]> {
        use crate::backend::Backend;
        with_engine!(&self.loaded, |e| match &e.weights.w_e {
            TokenEmbedding::Table(w_e) => e.backend.download_cow(w_e),
            TokenEmbedding::TiedToUnembed => {
                let ids: Vec<u32> = (0..self.config.d_vocab as u32).collect();
                let mut w_e = e.backend.zeros(ids.len() * self.config.d_model); // [d_vocab, d_model]
                e.backend
                    .embed_from_unembed(&e.weights.unembed, &ids, &mut w_e);
                std::borrow::Cow::Owned(e.backend.take_host(w_e))
            }
        })
    }

    /// The engine, for the sweep engine's execution (generic over the backend).
    pub(crate) fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    /// Where the model was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The tokenizer, or an error saying the model has none.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| {
            HookLensError::input(format!(
                "{} has no tokenizer files; pass token ids instead of text",
                self.source.display()
            ))
        })
    }

    /// Every hook point in firing order; opt-in points (`attn.hook_result`, `hook_q_input`,
    /// `hook_mlp_in`, `hook_unembed`, ...) when asked.
    pub fn hook_points(&self, with_opt_in: bool) -> Vec<HookPoint> {
        hook_points(&self.config, with_opt_in)
    }

    /// Every hook name in firing order, opt-in points included.
    pub fn hook_names(&self) -> Vec<String> {
        self.hook_points(true).iter().map(HookPoint::name).collect()
    }

    /// TL's `to_tokens` for one text, as a batch of one.
    pub fn to_tokens(&self, text: &str, prepend_bos: bool) -> Result<TokenBatch> {
        TokenBatch::single(self.tokenizer()?.to_tokens(text, prepend_bos)?)
    }

    /// The id written at pad positions: as TL, the EOS token (TL sets `pad_token = eos_token`
    /// when the tokenizer has none), else BOS, else 0. (Pads are masked, so the id only shows
    /// in the `tokens` of a cache and in the values at pad positions.)
    pub fn pad_id(&self) -> u32 {
        (self.config.eos_token_id)
            .or(self.config.bos_token_id)
            .unwrap_or(0)
    }

    /// TL's `to_tokens` on a list of texts: each tokenized (BOS first when `prepend_bos`),
    /// padded to the longest with [`Model::pad_id`] on `side`.
    pub fn to_tokens_padded<S: AsRef<str>>(
        &self,
        texts: &[S],
        prepend_bos: bool,
        side: input::PaddingSide,
    ) -> Result<TokenBatch> {
        let tk = self.tokenizer()?;
        let rows = (texts.iter())
            .map(|t| tk.to_tokens(t.as_ref(), prepend_bos))
            .collect::<Result<Vec<_>>>()?;
        TokenBatch::padded(&rows, side, self.pad_id())
    }

    /// TL's `to_str_tokens`.
    pub fn to_str_tokens(&self, ids: &[u32]) -> Result<Vec<String>> {
        self.tokenizer()?.to_str_tokens(ids)
    }

    /// Frees the buffers kept between passes (the next pass allocates them again). A
    /// benchmark calls it to measure a case's memory from nothing; a long-lived program can
    /// call it after a large batch to give the memory back.
    pub fn release_buffers(&self) {
        with_engine!(&self.loaded, |e| e.arenas.clear())
    }

    /// A plain pass.
    pub fn forward<'i>(&self, input: impl Into<Input<'i>>, opts: &RunOptions) -> Result<Output> {
        self.run(input.into(), None, None, opts).map(|(out, _)| out)
    }

    /// A pass with hooks that read and may edit activations in place.
    pub fn run_with_hooks<'i>(
        &self,
        input: impl Into<Input<'i>>,
        hooks: &mut Hooks<'_>,
        opts: &RunOptions,
    ) -> Result<Output> {
        self.run(input.into(), Some(hooks), None, opts)
            .map(|(out, _)| out)
    }

    /// A pass that caches the activations the filter selects.
    pub fn run_with_cache<'i>(
        &self,
        input: impl Into<Input<'i>>,
        filter: &NamesFilter,
        opts: &RunOptions,
    ) -> Result<(Output, ActivationCache)> {
        let (out, cache) = self.run(input.into(), None, Some(filter), opts)?;
        Ok((
            out,
            cache.unwrap_or_else(|| ActivationCache::new(Vec::new(), self.config.clone())),
        ))
    }

    /// The general pass: hooks and a cache together (the cache records values after the
    /// hooks at the same point ran), plus built-in interventions for batch rows.
    pub fn run(
        &self,
        input: Input<'_>,
        hooks: Option<&mut Hooks<'_>>,
        cache: Option<&NamesFilter>,
        opts: &RunOptions,
    ) -> Result<(Output, Option<ActivationCache>)> {
        self.run_with_interventions(input, hooks, cache, &[], opts)
    }

    /// [`Model::run`] with built-in interventions: `(batch row, intervention)` pairs.
    pub fn run_with_interventions(
        &self,
        input: Input<'_>,
        hooks: Option<&mut Hooks<'_>>,
        cache: Option<&NamesFilter>,
        interventions: &[(usize, Intervention)],
        opts: &RunOptions,
    ) -> Result<(Output, Option<ActivationCache>)> {
        let cfg = &self.config;
        input.validate(cfg)?;
        let (start, stop) = opts.layer_range(cfg.n_layers)?;
        if start > 0 && matches!(input, Input::Tokens(_)) {
            return Err(HookLensError::input(
                "start_at_layer needs a residual-stream input, not tokens",
            ));
        }
        let (batch, seq) = input.batch_seq();
        let cache_named = match cache {
            Some(filter) => filter.resolve_named(cfg)?,
            None => Vec::new(),
        };
        let cache_points: Vec<HookPoint> = cache_named.iter().map(|(p, _)| *p).collect();
        let mut resolved = Vec::with_capacity(interventions.len());
        let mut rows_of = Vec::with_capacity(interventions.len());
        for (row, iv) in interventions {
            if *row >= batch {
                return Err(HookLensError::input(format!(
                    "intervention for batch row {row}, but the batch has {batch} rows"
                )));
            }
            resolved.push(iv.resolve(cfg, seq)?);
            rows_of.push(*row);
        }
        let mut slots = SlotTable::build(cfg, hooks, &cache_points, &resolved, &rows_of)?;
        let logits = match (opts.return_type, opts.logits_at) {
            (ReturnType::None, _) => LogitRows::None,
            (ReturnType::Logits, LogitPositions::Last) => LogitRows::LastOfEachSeq,
            _ => LogitRows::All,
        };
        let pass_input = match input {
            Input::Tokens(t) => PassInput::Tokens(t),
            Input::Residual { resid, .. } => PassInput::Residual(&resid.data),
        };
        let shape = (batch, seq, (start, stop));
        let spans = input.tokens().and_then(TokenBatch::spans);
        slots.attention_mask = input
            .tokens()
            .filter(|t| t.spans().is_some())
            .map(TokenBatch::attention_mask);
        let pass = with_engine!(&self.loaded, |e| e
            .plain_pass(cfg, pass_input, shape, spans, logits, &mut slots, None))?;
        let mut out = Output {
            residual: pass.resid.map(|data| Tensor {
                data,
                shape: vec![batch, seq, cfg.d_model],
            }),
            ..Output::default()
        };
        if let Some((data, rows)) = pass.logits {
            let per_seq = rows.len() / batch;
            let logits = Tensor {
                data,
                shape: vec![batch, per_seq, cfg.d_vocab],
            };
            if matches!(opts.return_type, ReturnType::Loss | ReturnType::Both) {
                let tokens = input.tokens().ok_or_else(|| {
                    HookLensError::input(
                        "a loss needs the tokens: pass them with the residual input",
                    )
                })?;
                let per_token = next_token_loss(&logits, tokens)?;
                let sum: f64 = per_token.data.iter().map(|&v| v as f64).sum();
                out.loss = Some((sum / loss_pairs(tokens).max(1) as f64) as f32);
                if opts.loss_per_token {
                    out.loss_per_token = Some(per_token);
                }
            }
            if matches!(opts.return_type, ReturnType::Logits | ReturnType::Both) {
                out.logits = Some(logits);
            }
        }
        let cache = cache
            .map(|_| ActivationCache::new(slots.cached, cfg.clone()).with_file_names(cache_named));
        Ok((out, cache))
    }
}

/// The result of a loader thread; a panic there (a bug) is raised again on the caller.
pub(crate) fn join_loader<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
