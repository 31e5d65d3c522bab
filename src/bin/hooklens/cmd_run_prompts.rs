//! `hooklens run --prompts FILE`: every line a prompt, all in one padded batch; the top next
//! tokens of each, and optionally a cache of the padded activations with the mask.

use std::collections::HashMap;
use std::path::Path;

use clap::ValueEnum;
use hooklens::hooks::CacheSource;
use hooklens::output::{write_atomic_with, write_json};
use hooklens::{ActivationCache, HookLensError, Model, PaddingSide, Result, TokenBatch};
use serde_json::json;

use crate::cmd_run::{last_logits, print_top, RunArgs};
use crate::term::outln;

/// `--padding-side`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SideArg {
    /// Pads after the real tokens (TL's default).
    Right,
    /// Pads before the real tokens.
    Left,
}

impl From<SideArg> for PaddingSide {
    fn from(s: SideArg) -> Self {
        match s {
            SideArg::Right => PaddingSide::Right,
            SideArg::Left => PaddingSide::Left,
        }
    }
}

/// The non-blank lines of the prompts file; an empty file is an error.
fn read_prompts(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| HookLensError::io(path, e))?;
    let prompts: Vec<String> = (text.lines())
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    if prompts.is_empty() {
        return Err(HookLensError::input(format!(
            "--prompts {}: the file has no prompts (one per line)",
            path.display()
        )));
    }
    Ok(prompts)
}

/// Runs the prompts of `path` as one padded batch.
pub fn run(model: &Model, args: &RunArgs, path: &Path) -> Result<()> {
    let prompts = read_prompts(path)?;
    let side = PaddingSide::from(args.padding_side);
    let tokens = model.to_tokens_padded(&prompts, !args.input.no_bos, side)?;
    tokens.validate(model.config())?;
    let (logits, cache) = last_logits(model, &tokens, args)?; // [batch, 1, vocab]
    let vocab = model.config().d_vocab;
    let mut docs = Vec::new();
    for (b, prompt) in prompts.iter().enumerate() {
        let ids = tokens.real_row(b).to_vec();
        outln!("prompt {b} ({} tokens): {prompt}", ids.len());
        let top = print_top(model, &logits.data[b * vocab..][..vocab], args.top);
        docs.push(json!({"prompt": prompt, "tokens": ids, "top": top}));
    }
    if let (Some(path), Some(cache)) = (&args.cache, &cache) {
        write_padded_cache(cache, path, &tokens, &prompts, model)?;
        outln!(
            "wrote {} activations ({} prompts padded to {}) to {}",
            cache.len(),
            tokens.batch(),
            tokens.seq(),
            path.display()
        );
    }
    if let Some(path) = &args.json {
        let side = format!("{side:?}").to_lowercase();
        write_json(path, &json!({"padding_side": side, "prompts": docs}))?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}

/// The cache in hooklens' cache format (`ActivationCache::load_safetensors` reads it back):
/// int32 `tokens` and `attention_mask` `[batch, pos]`; metadata `prompts` (a JSON list of the
/// texts), `model` (its path), `pad_id`, `format` and `hook_order`.
fn write_padded_cache(
    cache: &ActivationCache,
    path: &Path,
    tokens: &TokenBatch,
    prompts: &[String],
    model: &Model,
) -> Result<()> {
    let source = CacheSource {
        model: model.source().display().to_string(),
        prompts: prompts.to_vec(),
        extra: HashMap::from([("pad_id".to_string(), model.pad_id().to_string())]),
    };
    write_atomic_with(path, |tmp| cache.save_with_source(tmp, tokens, &source))
}
