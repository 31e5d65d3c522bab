//! `hooklens ablate | patch | trace`: batched intervention sweeps with tables, JSON, CSV and
//! heatmaps.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use hooklens::analysis::top_k;
use hooklens::sweep::{
    ablation_sweep, patching_sweep, trace_sweep, AblationMethod, AblationTarget, Metric, PatchSite,
    ResultRow, SweepOptions, SweepReport, SweepSpec, TraceKind, TraceSettings,
};
use hooklens::{HookLensError, LogitPositions, Model, Result, RunOptions, TokenBatch};
use serde_json::json;

use crate::input::{parse_token_list, InputArgs};

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
    /// The answer token, as text (must be a single token, e.g. " Paris"). Default: the
    /// model's top prediction on the clean prompt.
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

/// Outputs and engine options, shared by every sweep.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write results as CSV.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write a heatmap (.png or .svg).
    #[arg(long, value_name = "FILE")]
    pub heatmap: Option<PathBuf>,
    /// How many entries the terminal table lists.
    #[arg(long, default_value_t = 10)]
    pub show: usize,
    /// Run one full forward per variant instead of the batched engine (for comparison).
    #[arg(long)]
    pub naive: bool,
    /// Most packed rows per batched pass (bounds memory).
    #[arg(long, default_value_t = 4096)]
    pub max_rows: usize,
}

/// `ablate` options.
#[derive(Args, Debug)]
pub struct AblateArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// What replaces the ablated value.
    #[arg(long, value_enum, default_value_t = Method::Zero)]
    pub method: Method,
    /// What is ablated: every head, or every layer's attention or MLP output.
    #[arg(long, value_enum, default_value_t = What::Heads)]
    pub what: What,
    /// --method mean: a file of reference prompts, one per line, each tokenizing to the
    /// prompt's length (default: the mean over the prompt's own positions).
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
    /// --method resample: the prompt whose activations replace the ablated ones (same length).
    #[arg(long, value_name = "TEXT")]
    pub resample_prompt: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Ablation values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Zeros.
    Zero,
    /// Mean over reference prompts (or over positions).
    Mean,
    /// Values from another prompt.
    Resample,
}

/// Ablation targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum What {
    /// Every (layer, head).
    Heads,
    /// Every layer's attention output.
    Attn,
    /// Every layer's MLP output.
    Mlp,
}

/// `patch` options.
#[derive(Args, Debug)]
pub struct PatchArgs {
    /// The clean prompt (its activations are patched in).
    #[arg(long, required_unless_present = "clean_tokens")]
    pub clean: Option<String>,
    /// The clean prompt as token ids.
    #[arg(long, conflicts_with = "clean")]
    pub clean_tokens: Option<String>,
    /// The corrupted prompt (patched into; same token length).
    #[arg(long, required_unless_present = "corrupted_tokens")]
    pub corrupted: Option<String>,
    /// The corrupted prompt as token ids.
    #[arg(long, conflicts_with = "corrupted")]
    pub corrupted_tokens: Option<String>,
    /// Do not prepend BOS to the prompts.
    #[arg(long)]
    pub no_bos: bool,
    #[command(flatten)]
    pub target: TargetArgs,
    /// What is patched.
    #[arg(long, value_enum, default_value_t = Site::ResidPre)]
    pub site: Site,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Patching sites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Site {
    /// hook_resid_pre per (layer, position).
    ResidPre,
    /// hook_resid_mid per (layer, position).
    ResidMid,
    /// hook_attn_out per (layer, position).
    AttnOut,
    /// hook_mlp_out per (layer, position).
    MlpOut,
    /// attn.hook_z per (layer, head), all positions.
    Z,
    /// attn.hook_z per (layer, head, position).
    ZByPos,
}

/// `trace` options.
#[derive(Args, Debug)]
pub struct TraceArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The subject whose token embeddings get noise (text found in the prompt).
    #[arg(long, required_unless_present = "subject_positions")]
    pub subject: Option<String>,
    /// The subject as token positions, comma-separated.
    #[arg(long, conflicts_with = "subject")]
    pub subject_positions: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// What is restored: the hidden state, or MLP / attention outputs over a window.
    #[arg(long, value_enum, default_value_t = Kind::Resid)]
    pub kind: Kind,
    /// Layers restored around each layer for --kind mlp|attn.
    #[arg(long, default_value_t = 10)]
    pub window: usize,
    /// Noise samples (batched).
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// Noise standard deviation in units of the embedding standard deviation.
    #[arg(long, default_value_t = 3.0)]
    pub noise: f32,
    /// Noise seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Tracing kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Hidden state after each block.
    Resid,
    /// MLP outputs over a window.
    Mlp,
    /// Attention outputs over a window.
    Attn,
}

/// A token argument: text that must be one token, or an id.
fn token_arg(model: &Model, text: &Option<String>, id: Option<u32>) -> Result<Option<u32>> {
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

/// The metric; the default target is the model's top prediction on `clean`.
fn build_metric(
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
        Some(t) => t,
        None if matches!(name, MetricName::Loss | MetricName::Kl) => 0,
        None => {
            let opts = RunOptions {
                logits_at: LogitPositions::Last,
                ..RunOptions::default()
            };
            let out = model.forward(&TokenBatch::single(clean.to_vec())?, &opts)?;
            let logits = out
                .logits
                .ok_or_else(|| HookLensError::input("no logits"))?;
            let top = top_k(&logits.data, 1)[0].token_id;
            eprintln!(
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

fn show_token(model: &Model, id: u32) -> String {
    match model.tokenizer().and_then(|t| t.decode(&[id])) {
        Ok(text) => format!("{text:?} (id {id})"),
        Err(_) => format!("id {id}"),
    }
}

fn read_prompt(
    model: &Model,
    text: &Option<String>,
    ids: &Option<String>,
    bos: bool,
) -> Result<Vec<u32>> {
    match (text, ids) {
        (Some(t), _) => model.tokenizer()?.to_tokens(t, bos),
        (None, Some(list)) => parse_token_list(list),
        (None, None) => Err(HookLensError::input("a prompt is missing")),
    }
}

/// Runs `ablate`.
pub fn ablate(model: &Model, args: &AblateArgs) -> Result<()> {
    let tokens = args.input.token_batch(model)?;
    tokens.validate(model.config())?;
    let prompt = tokens.row(0).to_vec();
    let bos = !args.input.no_bos;
    let method = match args.method {
        Method::Zero => AblationMethod::Zero,
        Method::Resample => {
            let text = args.resample_prompt.as_ref().ok_or_else(|| {
                HookLensError::input("--method resample needs --resample-prompt TEXT")
            })?;
            AblationMethod::Resample {
                source: model.tokenizer()?.to_tokens(text, bos)?,
            }
        }
        Method::Mean => {
            let mut references = Vec::new();
            if let Some(path) = &args.reference {
                let text = std::fs::read_to_string(path).map_err(|e| HookLensError::io(path, e))?;
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    references.push(model.tokenizer()?.to_tokens(line, bos)?);
                }
            }
            AblationMethod::Mean { references }
        }
    };
    let target = match args.what {
        What::Heads => AblationTarget::Heads,
        What::Attn => AblationTarget::AttnLayers,
        What::Mlp => AblationTarget::MlpLayers,
    };
    let metric = build_metric(model, &args.target, &prompt, MetricName::Logprob)?;
    let spec = ablation_sweep(model, &prompt, target, &method)?;
    let label = format!("{:?} ablation of {:?}", args.method, args.what).to_lowercase();
    run_and_report(model, &spec, &metric, &prompt, &label, &args.output, None)
}

/// Runs `patch`.
pub fn patch(model: &Model, args: &PatchArgs) -> Result<()> {
    let bos = !args.no_bos;
    let clean = read_prompt(model, &args.clean, &args.clean_tokens, bos)?;
    let corrupted = read_prompt(model, &args.corrupted, &args.corrupted_tokens, bos)?;
    for t in [&clean, &corrupted] {
        TokenBatch::single(t.clone())?.validate(model.config())?;
    }
    if clean.len() != corrupted.len() {
        let show = |t: &[u32]| {
            model
                .to_str_tokens(t)
                .map(|s| format!("{s:?}"))
                .unwrap_or_default()
        };
        return Err(HookLensError::input(format!(
            "patching needs prompts of equal token length: clean has {} {}, corrupted has {} {}",
            clean.len(),
            show(&clean),
            corrupted.len(),
            show(&corrupted)
        )));
    }
    let site = match args.site {
        Site::ResidPre => PatchSite::ResidPre,
        Site::ResidMid => PatchSite::ResidMid,
        Site::AttnOut => PatchSite::AttnOut,
        Site::MlpOut => PatchSite::MlpOut,
        Site::Z => PatchSite::Z,
        Site::ZByPos => PatchSite::ZByPos,
    };
    let metric = build_metric(model, &args.target, &clean, MetricName::Logprob)?;
    let spec = patching_sweep(model, &clean, &corrupted, site)?;
    let site_name = match args.site {
        Site::ResidPre => "resid_pre",
        Site::ResidMid => "resid_mid",
        Site::AttnOut => "attn_out",
        Site::MlpOut => "mlp_out",
        Site::Z => "z (per head)",
        Site::ZByPos => "z (per head and position)",
    };
    let label = format!("{site_name} patching clean -> corrupted");
    run_and_report(
        model,
        &spec,
        &metric,
        &clean,
        &label,
        &args.output,
        Some(&corrupted),
    )
}

/// Finds the token positions of `subject` in `tokens` (tried with and without a leading space).
fn find_subject(model: &Model, tokens: &[u32], subject: &str) -> Result<Vec<usize>> {
    let tk = model.tokenizer()?;
    let trimmed = subject.trim_start();
    for candidate in [
        format!(" {trimmed}"),
        trimmed.to_string(),
        subject.to_string(),
    ] {
        let ids = tk.encode(&candidate)?;
        if ids.is_empty() || ids.len() > tokens.len() {
            continue;
        }
        if let Some(start) = tokens.windows(ids.len()).position(|w| w == ids.as_slice()) {
            return Ok((start..start + ids.len()).collect());
        }
    }
    Err(HookLensError::input(format!(
        "the subject {subject:?} does not appear as whole tokens in the prompt {:?}; pass --subject-positions",
        tk.to_str_tokens(tokens)?
    )))
}

/// Runs `trace`.
pub fn trace(model: &Model, args: &TraceArgs) -> Result<()> {
    let tokens = args.input.token_batch(model)?;
    tokens.validate(model.config())?;
    let prompt = tokens.row(0).to_vec();
    let subject = match (&args.subject, &args.subject_positions) {
        (Some(s), _) => find_subject(model, &prompt, s)?,
        (None, Some(list)) => parse_token_list(list)?
            .into_iter()
            .map(|p| p as usize)
            .collect(),
        (None, None) => {
            return Err(HookLensError::input(
                "give --subject TEXT or --subject-positions",
            ))
        }
    };
    eprintln!("subject positions: {subject:?}");
    let metric = build_metric(model, &args.target, &prompt, MetricName::Prob)?;
    let settings = TraceSettings {
        kind: match args.kind {
            Kind::Resid => TraceKind::Resid,
            Kind::Mlp => TraceKind::Mlp,
            Kind::Attn => TraceKind::Attn,
        },
        window: args.window.max(1),
        samples: args.samples,
        noise_scale: args.noise,
        seed: args.seed,
    };
    let spec = trace_sweep(model, &prompt, &subject, &settings)?;
    let label = format!(
        "causal trace ({:?}, {} noise samples)",
        args.kind, args.samples
    )
    .to_lowercase();
    run_and_report(model, &spec, &metric, &prompt, &label, &args.output, None)
}

/// A progress bar on stderr when it is a terminal.
fn progress_bar(label: &str) -> impl Fn(usize, usize) + '_ {
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if !tty || total == 0 {
            return;
        }
        let width = 30;
        let filled = done * width / total;
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r{label} [{}{}] {done}/{total}",
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
        if done == total {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

fn score(row: &ResultRow) -> f64 {
    row.recovery.or(row.delta).unwrap_or(row.value)
}

fn run_and_report(
    model: &Model,
    spec: &SweepSpec,
    metric: &Metric,
    tokens: &[u32],
    label: &str,
    out: &OutputArgs,
    corrupted_tokens: Option<&[u32]>,
) -> Result<()> {
    let bar = progress_bar(label);
    let opts = SweepOptions {
        max_rows: out.max_rows.max(1),
        progress: Some(&bar),
        ..SweepOptions::default()
    };
    let report = spec.run(model, metric, out.naive, &opts)?;
    print_report(model, &report, metric, tokens, label, out);
    let str_tokens = model.to_str_tokens(tokens).ok();
    if let Some(path) = &out.json {
        let mut doc = json!({
            "model": model.source().display().to_string(),
            "tokens": tokens,
            "metric": metric,
            "clean": report.clean,
            "results": report.results,
            "stats": {
                "engine": if out.naive { "naive" } else { "batched" },
                "variants": report.outcome.stats.variants,
                "passes": report.outcome.stats.passes,
                "seconds": report.outcome.stats.seconds,
                "gflop": report.outcome.stats.flops / 1e9,
                "peak_arena_bytes": report.outcome.stats.peak_arena_bytes,
            },
        });
        if let Some(c) = report.corrupted {
            doc["corrupted"] = json!(c);
        }
        if let Some(t) = corrupted_tokens {
            doc["corrupted_tokens"] = json!(t);
        }
        if let Some(s) = &str_tokens {
            doc["str_tokens"] = json!(s);
        }
        let text =
            serde_json::to_string_pretty(&doc).map_err(|e| HookLensError::input(e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| HookLensError::io(path, e))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &out.csv {
        let mut text = String::from("layer,head,pos,value,delta,recovery\n");
        let opt = |v: Option<usize>| v.map_or(String::new(), |x| x.to_string());
        let optf = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
        for r in &report.results {
            text.push_str(&format!(
                "{},{},{},{},{},{}\n",
                r.layer,
                opt(r.head),
                opt(r.pos),
                r.value,
                optf(r.delta),
                optf(r.recovery)
            ));
        }
        std::fs::write(path, text).map_err(|e| HookLensError::io(path, e))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &out.heatmap {
        crate::heatmap::write_heatmap(model, &report, metric, tokens, label, path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn print_report(
    model: &Model,
    report: &SweepReport,
    metric: &Metric,
    tokens: &[u32],
    label: &str,
    out: &OutputArgs,
) {
    let stats = &report.outcome.stats;
    println!("{label}: metric {} ", describe_metric(model, metric));
    print!("clean {:.4}", report.clean);
    if let Some(c) = report.corrupted {
        print!("  corrupted {c:.4}");
    }
    println!();
    println!(
        "{} variants in {:.3} s ({} engine, {} passes, {:.2} GFLOP, {:.1} GFLOP/s, peak arena {:.1} MiB)",
        stats.variants,
        stats.seconds,
        if out.naive { "naive" } else { "batched" },
        stats.passes,
        stats.flops / 1e9,
        stats.flops / 1e9 / stats.seconds.max(1e-9),
        stats.peak_arena_bytes as f64 / (1 << 20) as f64
    );
    let column = if report.corrupted.is_some() {
        "recovery"
    } else {
        "delta"
    };
    let mut rows: Vec<&ResultRow> = report.results.iter().collect();
    rows.sort_by(|a, b| score(b).abs().total_cmp(&score(a).abs()));
    println!("top {} by |{column}|:", out.show.min(rows.len()));
    let str_tokens = model.to_str_tokens(tokens).ok();
    for r in rows.iter().take(out.show) {
        let mut place = format!("L{:<3}", r.layer);
        if let Some(h) = r.head {
            place.push_str(&format!(" H{h:<3}"));
        }
        if let Some(p) = r.pos {
            let tok = str_tokens
                .as_ref()
                .and_then(|s| s.get(p))
                .map(|t| format!(" {t:?}"))
                .unwrap_or_default();
            place.push_str(&format!(" pos {p:<3}{tok}"));
        }
        println!(
            "  {place:<32} value {:>10.4}  {column} {:>9.4}",
            r.value,
            score(r)
        );
    }
    println!("per layer (max |{column}|, mean {column}):");
    let n = model.config().n_layers;
    for l in 0..n {
        let cells: Vec<f64> = report
            .results
            .iter()
            .filter(|r| r.layer == l)
            .map(score)
            .collect();
        if cells.is_empty() {
            continue;
        }
        let max = cells
            .iter()
            .fold(0.0f64, |m, v| if v.abs() > m.abs() { *v } else { m });
        let mean = cells.iter().sum::<f64>() / cells.len() as f64;
        println!("  layer {l:>2}: {max:>9.4} {mean:>9.4}");
    }
}

fn describe_metric(model: &Model, metric: &Metric) -> String {
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
