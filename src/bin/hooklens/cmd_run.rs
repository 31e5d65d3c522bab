//! `hooklens run`: top next tokens, and optionally a cache of activations.

use std::path::PathBuf;

use clap::Args;
use hooklens::analysis::top_k;
use hooklens::{LogitPositions, Model, NamesFilter, Result, ReturnType, RunOptions};
use serde_json::json;

use crate::input::InputArgs;

/// Options of `run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// How many next-token candidates to print.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Write the cached activations to this safetensors file (tensor names are TL hook names,
    /// shapes start with the batch axis).
    #[arg(long, value_name = "FILE.safetensors")]
    pub cache: Option<PathBuf>,
    /// Cache only hook points whose full name (TL 2.x or a TL 4.x alias) matches this regex
    /// (opt-in points such as attn.hook_result included when matched; a point matched only
    /// by an alias is saved under that alias). Default: every default hook point.
    #[arg(long, value_name = "REGEX", requires = "cache")]
    pub names: Option<String>,
    /// Write the tokens and the top candidates as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Runs the command.
pub fn run(model: &Model, args: &RunArgs) -> Result<()> {
    let tokens = args.input.token_batch(model)?;
    tokens.validate(model.config())?;
    let ids = tokens.row(0).to_vec();
    let str_tokens = model.to_str_tokens(&ids).ok();
    println!("tokens ({}): {ids:?}", ids.len());
    if let Some(s) = &str_tokens {
        println!("as text: {s:?}");
    }
    let opts = RunOptions {
        return_type: ReturnType::Logits,
        logits_at: LogitPositions::Last,
        ..RunOptions::default()
    };
    let (out, cache) = match &args.cache {
        Some(_) => {
            let filter = match &args.names {
                Some(re) => NamesFilter::regex(re)?,
                None => NamesFilter::All,
            };
            let (out, cache) = model.run_with_cache(&tokens, &filter, &opts)?;
            (out, Some(cache))
        }
        None => (model.forward(&tokens, &opts)?, None),
    };
    let logits = out.logits.expect("logits were requested");
    let top = top_k(&logits.data, args.top);
    println!("top {} next tokens:", top.len());
    let tokenizer = model.tokenizer().ok();
    let mut rows = Vec::new();
    for (rank, t) in top.iter().enumerate() {
        let text = tokenizer
            .and_then(|tk| tk.decode(&[t.token_id]).ok())
            .unwrap_or_default();
        println!(
            "  {:>2}. {:<20} id {:>6}  prob {:.4}  logit {:.3}",
            rank + 1,
            format!("{text:?}"),
            t.token_id,
            t.prob,
            t.logit
        );
        rows.push(json!({"token_id": t.token_id, "token": text, "prob": t.prob, "logit": t.logit}));
    }
    if let (Some(path), Some(cache)) = (&args.cache, &cache) {
        cache.save_safetensors(path)?;
        println!("wrote {} activations to {}", cache.len(), path.display());
    }
    if let Some(path) = &args.json {
        let doc = json!({"tokens": ids, "top": rows});
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| hooklens::HookLensError::input(e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| hooklens::HookLensError::io(path, e))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
