//! `hooklens run`: top next tokens, and optionally a cache of activations.

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use hooklens::analysis::top_k;
use hooklens::{
    ActivationCache, HookLensError, LogitPositions, Model, Result, ReturnType, RunOptions, Tensor,
    TokenBatch,
};
use serde_json::json;

use crate::input::InputArgs;
pub use crate::run_output::check_outputs;
use crate::run_output::{cache_filter, write_cache};
use crate::term::outln;
use hooklens::output::write_json;

/// Options of `run`.
#[derive(Args, Debug)]
#[command(group = ArgGroup::new("batch_file").args(["prompts", "tokens_file"]))]
pub struct RunArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// How many next-token candidates to print (at least 1).
    #[arg(long, default_value_t = 10, value_parser = crate::parse::positive_count)]
    pub top: usize,
    /// Write the cached activations to this safetensors file (tensor names are TL hook names,
    /// shapes start with the batch axis), with int32 `tokens` and `attention_mask` and the
    /// model, prompt and hook order in its metadata (`ActivationCache::load_safetensors`).
    #[arg(long, value_name = "FILE.safetensors")]
    pub cache: Option<PathBuf>,
    /// Cache only hook points whose full name (TL 2.x or a TL 4.x alias) matches this regex
    /// (opt-in points such as attn.hook_result included when matched; a point matched only
    /// by an alias is saved under that alias; a regex matching none is an error that lists
    /// the nearest names). Default: every default hook point.
    #[arg(long, value_name = "REGEX", requires = "cache")]
    pub names: Option<String>,
    /// Write the tokens and the top candidates as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Run every non-blank line of this file as one prompt, all in one padded batch, and
    /// print each prompt's top next tokens (at its last real token). With --cache, the file
    /// holds the padded `[batch, pos, ...]` activations plus int32 `tokens` and
    /// `attention_mask` `[batch, pos]` (1 real, 0 pad), and the model, the prompts and the
    /// hook order in its metadata (hooklens' cache format: the library's
    /// `ActivationCache::load_safetensors` reads it back).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt", "tokens"])]
    pub prompts: Option<PathBuf>,
    /// Run every non-blank line of this file as one sequence of token ids (comma-separated,
    /// as --tokens; used exactly as given, no BOS added), all in one padded batch, as
    /// --prompts does with text: each row's top next tokens at its last real token, and
    /// with --cache the padded activations with `tokens` and `attention_mask`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt", "tokens", "prompts", "no_bos"])]
    pub tokens_file: Option<PathBuf>,
    /// Where shorter rows get their pads with --prompts or --tokens-file (TL's padding_side;
    /// pads are masked, so each row's values are those it has alone).
    #[arg(long, value_enum, default_value = "right", requires = "batch_file")]
    pub padding_side: crate::cmd_run_prompts::SideArg,
}

/// Runs the command.
pub fn run(model: &Model, args: &RunArgs) -> Result<()> {
    if let Some(path) = &args.prompts {
        return crate::cmd_run_prompts::run(model, args, path);
    }
    if let Some(path) = &args.tokens_file {
        return crate::cmd_run_prompts::run_token_file(model, args, path);
    }
    let tokens = args.input.token_batch(model)?;
    tokens.validate(model.config())?;
    let ids = tokens.row(0).to_vec();
    let tokenizer = model.tokenizer().ok();
    outln!("tokens ({}): {ids:?}", ids.len());
    if let Some(tk) = tokenizer {
        outln!("as text: {}", tk.show_tokens(&ids));
    }
    let (logits, cache) = last_logits(model, &tokens, args)?;
    let rows = print_top(model, &logits.data, args.top);
    if let (Some(path), Some(cache)) = (&args.cache, &cache) {
        write_cache(cache, path, &tokens, model, args.input.prompt.as_deref())?;
        outln!("wrote {} activations to {}", cache.len(), path.display());
    }
    if let Some(path) = &args.json {
        let doc = json!({"tokens": ids, "top": rows});
        write_json(path, &doc)?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}

/// The logits at each row's last real position `[batch, 1, vocab]`, and the cache when
/// `--cache` asks for one.
pub fn last_logits(
    model: &Model,
    tokens: &TokenBatch,
    args: &RunArgs,
) -> Result<(Tensor, Option<ActivationCache>)> {
    let opts = RunOptions {
        return_type: ReturnType::Logits,
        logits_at: LogitPositions::Last,
        ..RunOptions::default()
    };
    let (out, cache) = match &args.cache {
        Some(_) => {
            let filter = cache_filter(model, args.names.as_deref())?;
            let (out, cache) = model.run_with_cache(tokens, &filter, &opts)?;
            (out, Some(cache))
        }
        None => (model.forward(tokens, &opts)?, None),
    };
    let logits = out
        .logits
        .ok_or_else(|| HookLensError::input("the pass returned no logits"))?;
    Ok((logits, cache))
}

/// Prints the `k` most likely next tokens of one row of logits; returns them as JSON rows.
pub fn print_top(model: &Model, logits: &[f32], k: usize) -> Vec<serde_json::Value> {
    let tokenizer = model.tokenizer().ok();
    let top = top_k(logits, k);
    outln!("top {} next tokens:", top.len());
    let mut rows = Vec::new();
    for (rank, t) in top.iter().enumerate() {
        let text = tokenizer
            .and_then(|tk| tk.decode(&[t.token_id]).ok())
            .unwrap_or_default();
        let shown = tokenizer.map_or_else(String::new, |tk| tk.show_token(t.token_id));
        outln!(
            "  {:>2}. {:<20} id {:>6}  prob {:.4}  logit {:.3}",
            rank + 1,
            shown,
            t.token_id,
            t.prob,
            t.logit
        );
        rows.push(json!({"token_id": t.token_id, "token": text, "prob": t.prob, "logit": t.logit}));
    }
    rows
}
