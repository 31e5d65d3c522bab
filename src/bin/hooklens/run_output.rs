//! `hooklens run`'s outputs: the cache filter (checked to match something), the activation
//! cache (hooklens' cache format), checked before the run and written atomically.

use std::path::Path;

use hooklens::hooks::CacheSource;
use hooklens::output::{check_writable, write_atomic_with};
use hooklens::{ActivationCache, HookLensError, Model, NamesFilter, Result, TokenBatch};

use crate::cmd_run::RunArgs;

/// Checks `--cache` and `--json` before any work.
pub fn check_outputs(args: &RunArgs) -> Result<()> {
    for path in [&args.cache, &args.json].into_iter().flatten() {
        check_writable(path)?;
    }
    Ok(())
}

/// The `--names` filter (default: every default hook point); a regex that matches no hook
/// point of this model is an error listing the nearest names.
pub fn cache_filter(model: &Model, names: Option<&str>) -> Result<NamesFilter> {
    let Some(pattern) = names else {
        return Ok(NamesFilter::All);
    };
    NamesFilter::regex_matching(pattern, model.config()).map_err(|e| match e {
        HookLensError::UnknownHook { suggestions, .. } => HookLensError::input(format!(
            "--names `{pattern}` matches no hook point of this model (nearest names: {}; \
             `hooklens hooks` lists them all)",
            suggestions.join(", ")
        )),
        other => other,
    })
}

/// Writes the cache atomically in hooklens' cache format (the activations under TL names,
/// `tokens`, `attention_mask`, and the model and the prompt in the metadata).
pub fn write_cache(
    cache: &ActivationCache,
    path: &Path,
    tokens: &TokenBatch,
    model: &Model,
    prompt: Option<&str>,
) -> Result<()> {
    let source = CacheSource {
        model: model.source().display().to_string(),
        prompts: prompt.map(str::to_string).into_iter().collect(),
        extra: Default::default(),
    };
    write_atomic_with(path, |tmp| cache.save_with_source(tmp, tokens, &source))
}
