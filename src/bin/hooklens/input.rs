//! The input options every command shares: `--prompt` / `--tokens`, `--no-bos`.

use clap::Args;
pub use hooklens::model::input::parse_token_list;
use hooklens::{HookLensError, Model, Result, TokenBatch};

/// Where the tokens of a command come from.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Text to tokenize (BOS is prepended unless --no-bos).
    #[arg(long, conflicts_with = "tokens")]
    pub prompt: Option<String>,
    /// Token ids, comma-separated (e.g. 1,504,3); used exactly as given, no BOS added.
    #[arg(long)]
    pub tokens: Option<String>,
    /// Do not prepend the BOS token to --prompt (TransformerLens prepends it by default).
    #[arg(long)]
    pub no_bos: bool,
}

impl InputArgs {
    /// The token batch (one sequence) for this model.
    pub fn token_batch(&self, model: &Model) -> Result<TokenBatch> {
        match (&self.prompt, &self.tokens) {
            (Some(text), _) => model.to_tokens(text, !self.no_bos),
            (None, Some(list)) => TokenBatch::single(parse_token_list(list)?),
            (None, None) => Err(HookLensError::input("give --prompt TEXT or --tokens IDS")),
        }
    }
}
