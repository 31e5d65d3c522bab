//! `hooklens generate`: text after a prompt, streamed to stdout as it is generated, with a KV
//! cache; greedy by default, seeded sampling on request, optional steering vectors.

use std::path::PathBuf;

use clap::Args;
use hooklens::model::generate::{GenerateOptions, Generation};
use hooklens::model::sampling::SamplingOptions;
use hooklens::output::{check_writable, write_json};
use hooklens::{HookLensError, Model, Result, Tokenizer};
use serde_json::json;

use crate::input::InputArgs;
use crate::steer;
use crate::term::{errln, flush, out, outln};

/// Options of `generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// New tokens at most (at least 1).
    #[arg(long, value_parser = crate::parse::positive_count)]
    pub max_new: usize,
    /// Softmax temperature; 0 (the default) is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample only from the K most likely tokens (at least 1).
    #[arg(long, value_parser = crate::parse::positive_count)]
    pub top_k: Option<usize>,
    /// Sample only from the most likely tokens whose probability reaches P, in (0, 1].
    #[arg(long)]
    pub top_p: Option<f32>,
    /// The sampler's seed (the same seed gives the same text).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop once the generated text contains this.
    #[arg(long)]
    pub stop: Option<String>,
    /// Do not stop at the model's end-of-sequence token.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Recompute the whole sequence for every token instead of using the KV cache.
    #[arg(long)]
    pub no_kv_cache: bool,
    /// Add SCALE times the vector in FILE (one f32 tensor of d_model values) to
    /// blocks.LAYER.hook_resid_pre at every position; repeatable.
    #[arg(long, value_name = "LAYER:FILE.safetensors:SCALE")]
    pub steer: Vec<String>,
    /// ActAdd steering: the difference of the two prompts' resid_pre at their last
    /// positions (BOS prepended), at --layer, times --scale.
    #[arg(long, num_args = 2, value_names = ["A", "B"], requires = "layer")]
    pub steer_prompts: Option<Vec<String>>,
    /// The layer of --steer-prompts.
    #[arg(long, requires = "steer_prompts")]
    pub layer: Option<usize>,
    /// The scale of --steer-prompts.
    #[arg(long, default_value_t = 1.0, requires = "steer_prompts")]
    pub scale: f32,
    /// Write `{"tokens", "new_tokens", "text"}` to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Checks the output path before the model is loaded.
pub fn check_outputs(args: &GenerateArgs) -> Result<()> {
    args.json.as_deref().map_or(Ok(()), check_writable)
}

/// Runs the command.
pub fn run(model: &Model, args: &GenerateArgs) -> Result<()> {
    let tokens = args.input.token_batch(model)?;
    tokens.validate(model.config())?;
    let prompt = tokens.row(0).to_vec();
    let opts = options(args);
    opts.sampling.validate()?;
    let interventions = steering(model, args)?;
    let tokenizer = model.tokenizer().ok();
    if args.stop.is_some() && tokenizer.is_none() {
        return Err(HookLensError::input(
            "--stop needs a model with a tokenizer",
        ));
    }
    let mut stream = Stream::new(tokenizer);
    let started = std::time::Instant::now();
    let g = model.generate(&prompt, &opts, &interventions, &mut |t| {
        stream.push(t);
        Ok(true)
    })?;
    stream.finish();
    let secs = started.elapsed().as_secs_f64();
    errln!(
        "{} new tokens in {secs:.2}s ({:.1} tokens/s), stopped: {:?}",
        g.new_tokens.len(),
        g.new_tokens.len() as f64 / secs.max(1e-9),
        g.stop
    );
    if let Some(path) = &args.json {
        write_json(path, &json_doc(tokenizer, &g)?)?;
        errln!("wrote {}", path.display());
    }
    Ok(())
}

/// The library's options from the arguments.
fn options(args: &GenerateArgs) -> GenerateOptions {
    GenerateOptions {
        max_new: args.max_new,
        sampling: SamplingOptions {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
        },
        stop: args.stop.clone(),
        stop_at_eos: !args.ignore_eos,
        kv_cache: !args.no_kv_cache,
    }
}

/// The steering interventions asked for.
fn steering(
    model: &Model,
    args: &GenerateArgs,
) -> Result<Vec<hooklens::hooks::intervention::Intervention>> {
    let mut ivs = (args.steer.iter())
        .map(|spec| steer::from_spec(model, spec))
        .collect::<Result<Vec<_>>>()?;
    if let (Some(p), Some(layer)) = (&args.steer_prompts, args.layer) {
        if !args.scale.is_finite() {
            return Err(HookLensError::input("--scale must be finite"));
        }
        ivs.push(steer::from_prompts(model, &p[0], &p[1], layer, args.scale)?);
    }
    Ok(ivs)
}

/// `{"tokens", "new_tokens", "text"}` (text empty without a tokenizer).
fn json_doc(tokenizer: Option<&Tokenizer>, g: &Generation) -> Result<serde_json::Value> {
    let text = match tokenizer {
        Some(tk) => tk.decode(&g.new_tokens)?,
        None => String::new(),
    };
    Ok(json!({"tokens": g.tokens, "new_tokens": g.new_tokens, "text": text}))
}

/// Prints the generated text as it grows (ids without a tokenizer). A token that ends inside
/// a multi-byte character is held back until the character is complete.
struct Stream<'t> {
    tokenizer: Option<&'t Tokenizer>,
    ids: Vec<u32>,
    printed: usize,
}

impl<'t> Stream<'t> {
    fn new(tokenizer: Option<&'t Tokenizer>) -> Self {
        Stream {
            tokenizer,
            ids: Vec::new(),
            printed: 0,
        }
    }

    fn push(&mut self, id: u32) {
        self.ids.push(id);
        let Some(tk) = self.tokenizer else {
            out!("{id} ");
            flush();
            return;
        };
        let Ok(text) = tk.decode(&self.ids) else {
            return;
        };
        if text.ends_with('\u{FFFD}') || !text.is_char_boundary(self.printed) {
            return;
        }
        out!("{}", &text[self.printed..]);
        flush();
        self.printed = text.len();
    }

    fn finish(&mut self) {
        if let Some(tk) = self.tokenizer {
            if let Ok(text) = tk.decode(&self.ids) {
                if text.is_char_boundary(self.printed) {
                    out!("{}", &text[self.printed..]);
                }
            }
        }
        outln!();
    }
}
