//! The target token and metric every sweep shares: `--target`, `--against`, `--metric`, with
//! a hint when a target without its leading space is probably not what was meant.

use clap::{Args, ValueEnum};
use hooklens::analysis::top_next_tokens;
use hooklens::sweep::Metric;
use hooklens::{HookLensError, Model, Result};

use crate::term::errln;

/// The metric, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MetricName {
    /// log p(target) at the last position.
    Logprob,
    /// p(target) at the last position.
    Prob,
    /// logit(target) - logit(against) at the last position.
    LogitDiff,
    /// Mean next-token loss.
    Loss,
    /// KL(clean || variant) at the last position.
    Kl,
}

/// Target token and metric, shared by every sweep.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// The answer token, as text (must be a single token, e.g. " Paris"; a hint is printed
    /// when " Paris" would be one token and the model's top predictions start with a space).
    /// Default: the model's top prediction on the clean prompt.
    #[arg(long, conflicts_with = "target_id")]
    pub target: Option<String>,
    /// The answer token, as an id.
    #[arg(long)]
    pub target_id: Option<u32>,
    /// A second token for --metric logit-diff (as text, a single token).
    #[arg(long, conflicts_with = "against_id")]
    pub against: Option<String>,
    /// The second token, as an id.
    #[arg(long)]
    pub against_id: Option<u32>,
    /// What to measure (default: logit-diff with --against, else logprob; prob for trace).
    #[arg(long, value_enum)]
    pub metric: Option<MetricName>,
}

/// A token argument: text that must be one token, or an id.
pub fn token_arg(model: &Model, text: &Option<String>, id: Option<u32>) -> Result<Option<u32>> {
    match (text, id) {
        (Some(t), _) => model.tokenizer()?.to_single_token(t).map(Some),
        (None, Some(id)) => {
            if id as usize >= model.config().d_vocab {
                return Err(HookLensError::input(format!(
                    "token id {id} is outside the vocabulary ({})",
                    model.config().d_vocab
                )));
            }
            Ok(Some(id))
        }
        (None, None) => Ok(None),
    }
}

/// The hint for `--target TEXT` when TEXT has no leading space, `" TEXT"` is a single token
/// and most of the model's top 5 predictions start with a space; `None` otherwise.
pub fn target_space_hint(model: &Model, text: &str, clean: &[u32]) -> Result<Option<String>> {
    if text.is_empty() || text.starts_with(char::is_whitespace) {
        return Ok(None);
    }
    let tk = model.tokenizer()?;
    let spaced_text = format!(" {text}");
    let (Ok(plain), Ok(spaced)) = (tk.to_single_token(text), tk.to_single_token(&spaced_text))
    else {
        return Ok(None);
    };
    let top = top_next_tokens(model, clean, 5)?;
    if top.contains(&plain) {
        return Ok(None);
    }
    let with_space = top
        .iter()
        .filter(|&&id| tk.decode(&[id]).is_ok_and(|t| t.starts_with(' ')))
        .count();
    if with_space * 2 <= top.len() {
        return Ok(None);
    }
    Ok(Some(format!(
        "hint: --target {} is token {plain} without a leading space, but {with_space} of the \
         model's top {} predictions start with one; did you mean --target {} (token {spaced})?",
        tk.show_token(plain),
        top.len(),
        tk.show_token(spaced)
    )))
}

/// The metric; the default target is the model's top prediction on `clean`.
pub fn build_metric(
    model: &Model,
    args: &TargetArgs,
    clean: &[u32],
    default: MetricName,
) -> Result<Metric> {
    let against = token_arg(model, &args.against, args.against_id)?;
    let name = args.metric.unwrap_or(if against.is_some() {
        MetricName::LogitDiff
    } else {
        default
    });
    let target = match token_arg(model, &args.target, args.target_id)? {
        Some(t) => {
            if let Some(hint) =
                target_space_hint(model, args.target.as_deref().unwrap_or(""), clean)?
            {
                errln!("{hint}");
            }
            t
        }
        None if matches!(name, MetricName::Loss | MetricName::Kl) => 0,
        None => {
            let top = top_next_tokens(model, clean, 1)?[0];
            errln!(
                "target: {} (the model's top prediction; set --target to choose)",
                show_token(model, top)
            );
            top
        }
    };
    Ok(match name {
        MetricName::Logprob => Metric::LogProb { target },
        MetricName::Prob => Metric::Prob { target },
        MetricName::LogitDiff => Metric::LogitDiff {
            target,
            other: against.ok_or_else(|| {
                HookLensError::input("--metric logit-diff needs --against TOKEN (or --against-id)")
            })?,
        },
        MetricName::Loss => Metric::Loss,
        MetricName::Kl => Metric::KlToClean,
    })
}

/// A token as `" Paris" (id 7)`, or `id 7` without a tokenizer.
pub fn show_token(model: &Model, id: u32) -> String {
    match model.tokenizer() {
        Ok(tk) => format!("{} (id {id})", tk.show_token(id)),
        Err(_) => format!("id {id}"),
    }
}

/// The metric in words, e.g. `log p(" Paris" (id 7))`.
pub fn describe_metric(model: &Model, metric: &Metric) -> String {
    match metric {
        Metric::LogProb { target } => format!("log p({})", show_token(model, *target)),
        Metric::Prob { target } => format!("p({})", show_token(model, *target)),
        Metric::LogitDiff { target, other } => {
            format!(
                "logit({}) - logit({})",
                show_token(model, *target),
                show_token(model, *other)
            )
        }
        Metric::Loss => "mean next-token loss".into(),
        Metric::KlToClean => "KL(clean || variant) at the last position".into(),
    }
}
