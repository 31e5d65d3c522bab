//! `hooklens run --prompts FILE` / `--tokens-file FILE`: every line a prompt (or a list of
//! token ids), all in one padded batch; the top next tokens of each, and optionally a cache
//! of the padded activations with the mask.

use std::collections::HashMap;
use std::path::Path;

use clap::ValueEnum;
use hooklens::hooks::CacheSource;
use hooklens::model::input::parse_token_ids;
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

/// The non-blank lines of `path`, with their 1-based line numbers; `what` names a line in
/// the error for a file without any.
fn read_lines(path: &Path, flag: &str, what: &str) -> Result<Vec<(usize, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| HookLensError::io(path, e))?;
    let lines: Vec<(usize, String)> = (text.lines().enumerate())
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect();
    if lines.is_empty() {
        return Err(HookLensError::input(format!(
            "{flag} {}: the file has no {what}s (one per line)",
            path.display()
        )));
    }
    Ok(lines)
}

/// Runs the prompts of `path` as one padded batch.
pub fn run(model: &Model, args: &RunArgs, path: &Path) -> Result<()> {
    let prompts: Vec<String> = (read_lines(path, "--prompts", "prompt")?.into_iter())
        .map(|(_, line)| line)
        .collect();
    let side = PaddingSide::from(args.padding_side);
    let tokens = model.to_tokens_padded(&prompts, !args.input.no_bos, side)?;
    report_batch(model, args, &tokens, &prompts)
}

/// Runs the token-id lines of `path` as one padded batch.
pub fn run_token_file(model: &Model, args: &RunArgs, path: &Path) -> Result<()> {
    let rows = (read_lines(path, "--tokens-file", "token list")?.into_iter())
        .map(|(n, line)| {
            let source = format!("--tokens-file {} line {n}", path.display());
            let ids = parse_token_ids(&line, &source)?;
            if ids.is_empty() {
                return Err(HookLensError::input(format!("{source}: no token ids")));
            }
            Ok(ids)
        })
        .collect::<Result<Vec<_>>>()?;
    let side = PaddingSide::from(args.padding_side);
    let tokens = TokenBatch::padded(&rows, side, model.pad_id())?;
    report_batch(model, args, &tokens, &[])
}

/// Runs `tokens` and prints each row's top next tokens; writes the cache and JSON when
/// asked. `prompts` holds each row's text (empty when the ids were given directly).
fn report_batch(
    model: &Model,
    args: &RunArgs,
    tokens: &TokenBatch,
    prompts: &[String],
) -> Result<()> {
    tokens.validate(model.config())?;
    let (logits, cache) = last_logits(model, tokens, args)?; // [batch, 1, vocab]
    let vocab = model.config().d_vocab;
    let mut docs = Vec::new();
    for b in 0..tokens.batch() {
        let ids = tokens.real_row(b).to_vec();
        let mut doc = match prompts.get(b) {
            Some(prompt) => {
                outln!("prompt {b} ({} tokens): {prompt}", ids.len());
                json!({"prompt": prompt})
            }
            None => {
                outln!("row {b} ({} tokens)", ids.len());
                json!({})
            }
        };
        let top = print_top(model, &logits.data[b * vocab..][..vocab], args.top);
        doc["tokens"] = json!(ids);
        doc["top"] = json!(top);
        docs.push(doc);
    }
    if let (Some(path), Some(cache)) = (&args.cache, &cache) {
        write_padded_cache(cache, path, tokens, prompts, model)?;
        outln!(
            "wrote {} activations ({} rows padded to {}) to {}",
            cache.len(),
            tokens.batch(),
            tokens.seq(),
            path.display()
        );
    }
    if let Some(path) = &args.json {
        let side = format!("{:?}", args.padding_side).to_lowercase();
        let key = if prompts.is_empty() {
            "rows"
        } else {
            "prompts"
        };
        write_json(path, &json!({"padding_side": side, key: docs}))?;
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
