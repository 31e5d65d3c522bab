//! `hooklens ablate | patch | trace`: batched intervention sweeps with tables, JSON, CSV and
//! heatmaps.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use hooklens::sweep::{
    ablation_sweep, dataset_mean_values, patching_sweep, read_dataset, trace_sweep, AblationMethod,
    AblationTarget, DatasetKind, DatasetRow, MeanOver, Metric, PatchSite, SweepOptions, SweepSpec,
    TraceKind, TraceSettings,
};
use hooklens::{HookLensError, Model, Result, TokenBatch};

use crate::cmd_dataset;
use crate::input::{parse_token_list, InputArgs};
use crate::parse::{positive_count, positive_finite};
use crate::progress::progress_bar;
use crate::sweep_output::{write_all, SweepContext};
use crate::sweep_print::print_report;
use crate::target::{build_metric, describe_metric, MetricName, TargetArgs};
use crate::term::errln;

/// Outputs and engine options, shared by every sweep.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write results as JSON (the path is checked before the sweep; written atomically).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write results as CSV (checked before the sweep; written atomically).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write a heatmap, .png or .svg (checked before the sweep; written atomically).
    #[arg(long, value_name = "FILE")]
    pub heatmap: Option<PathBuf>,
    /// How many entries the terminal table lists.
    #[arg(long, default_value_t = 10)]
    pub show: usize,
    /// Run one full forward per variant instead of the batched engine (for comparison).
    #[arg(long)]
    pub naive: bool,
    /// Most packed rows per batched pass, at least 1 (bounds memory).
    #[arg(long, default_value_t = 4096, value_parser = positive_count)]
    pub max_rows: usize,
}

/// `ablate` options.
#[derive(Args, Debug)]
pub struct AblateArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// A JSON Lines dataset, one `{"prompt" | "tokens", "target" | "target_id", "against" |
    /// "against_id"?}` per line: every prompt's ablation in one batched sweep, reported as
    /// means over the prompts (each read at its own last position with its own target).
    /// `--method mean` without `--reference` uses the dataset's mean (see --mean).
    #[arg(long, value_name = "FILE.jsonl", conflicts_with_all = ["prompt", "tokens", "target", "target_id", "against", "against_id", "metric"])]
    pub dataset: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// What replaces the ablated value.
    #[arg(long, value_enum, default_value_t = Method::Zero)]
    pub method: Method,
    /// What is ablated: every head, or every layer's attention or MLP output.
    #[arg(long, value_enum, default_value_t = What::Heads)]
    pub what: What,
    /// --method mean: a file of reference prompts, one per line, each tokenizing to the
    /// prompt's length, averaged per position (default: the mean over the prompt's own
    /// positions; with --dataset, the mean over the dataset, see --mean).
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
    /// --method mean over a --dataset without --reference: all (default) averages every real
    /// position of every prompt (one vector per layer, used at every position); per-position
    /// averages each position over the prompts (all prompts of one token length).
    #[arg(long, value_enum, value_name = "all|per-position")]
    pub mean: Option<MeanKind>,
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

/// How `--method mean` averages a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MeanKind {
    /// Every real position of every prompt.
    All,
    /// Each position over the prompts (one token length).
    PerPosition,
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
    #[arg(long, required_unless_present_any = ["clean_tokens", "dataset"])]
    pub clean: Option<String>,
    /// The clean prompt as token ids.
    #[arg(long, conflicts_with = "clean")]
    pub clean_tokens: Option<String>,
    /// The corrupted prompt (patched into; same token length).
    #[arg(long, required_unless_present_any = ["corrupted_tokens", "dataset"])]
    pub corrupted: Option<String>,
    /// The corrupted prompt as token ids.
    #[arg(long, conflicts_with = "corrupted")]
    pub corrupted_tokens: Option<String>,
    /// Do not prepend BOS to the prompts.
    #[arg(long)]
    pub no_bos: bool,
    /// A JSON Lines dataset of pairs, one `{"clean" | "clean_tokens", "corrupted" |
    /// "corrupted_tokens", "target" | "target_id", "against" | "against_id"?}` per line: every
    /// pair's patching in one batched sweep; `recovery` from the dataset means. Per-position
    /// sites need all pairs of one token length; z (per head) accepts any.
    #[arg(long, value_name = "FILE.jsonl", conflicts_with_all = ["clean", "clean_tokens", "corrupted", "corrupted_tokens", "target", "target_id", "against", "against_id", "metric"])]
    pub dataset: Option<PathBuf>,
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
    /// A JSON Lines dataset, one `{"prompt" | "tokens", "subject", "target" | "target_id",
    /// "against" | "against_id"?}` per line (all prompts of one token length): every prompt's
    /// trace in one batched sweep, `recovery` from the dataset means.
    #[arg(long, value_name = "FILE.jsonl", conflicts_with_all = ["prompt", "tokens", "subject", "subject_positions", "target", "target_id", "against", "against_id", "metric"])]
    pub dataset: Option<PathBuf>,
    /// The subject whose token embeddings get noise (text found in the prompt).
    #[arg(long, required_unless_present_any = ["subject_positions", "dataset"])]
    pub subject: Option<String>,
    /// The subject as token positions, comma-separated.
    #[arg(long, conflicts_with = "subject")]
    pub subject_positions: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// What is restored: the hidden state, or MLP / attention outputs over a window.
    #[arg(long, value_enum, default_value_t = Kind::Resid)]
    pub kind: Kind,
    /// Layers restored around each layer for --kind mlp|attn (at least 1).
    #[arg(long, default_value_t = 10, value_parser = positive_count)]
    pub window: usize,
    /// Noise samples (batched; at least 1).
    #[arg(long, default_value_t = 5, value_parser = positive_count)]
    pub samples: usize,
    /// Noise standard deviation in units of the embedding standard deviation (finite, > 0).
    #[arg(long, default_value_t = 3.0, value_parser = positive_finite)]
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
    let bos = !args.input.no_bos;
    let method = ablation_method(model, args, bos)?;
    let target = match args.what {
        What::Heads => AblationTarget::Heads,
        What::Attn => AblationTarget::AttnLayers,
        What::Mlp => AblationTarget::MlpLayers,
    };
    let label = format!("{:?} ablation of {:?}", args.method, args.what).to_lowercase();
    if let Some(path) = &args.dataset {
        return ablate_dataset(model, args, path, method, target, &label);
    }
    if args.mean.is_some() {
        return Err(HookLensError::input(
            "--mean applies to --method mean over a --dataset (without --reference)",
        ));
    }
    let tokens = args.input.token_batch(model)?;
    tokens.validate(model.config())?;
    let prompt = tokens.row(0).to_vec();
    let metric = build_metric(model, &args.target, &prompt, MetricName::Logprob)?;
    let spec = ablation_sweep(model, &prompt, target, &method)?;
    run_and_report(model, &spec, &metric, &prompt, &label, &args.output, None)
}

/// `ablate --dataset`; `--method mean` without `--reference` averages over the dataset.
fn ablate_dataset(
    model: &Model,
    args: &AblateArgs,
    path: &std::path::Path,
    method: AblationMethod,
    target: AblationTarget,
    label: &str,
) -> Result<()> {
    let rows = read_dataset(path, DatasetKind::Prompts, model, !args.input.no_bos)?;
    let dataset_mean =
        matches!(&method, AblationMethod::Mean { references } if references.is_empty());
    let method = match (dataset_mean, args.mean) {
        (true, mean) => {
            let over = match mean.unwrap_or(MeanKind::All) {
                MeanKind::All => MeanOver::AllPositions,
                MeanKind::PerPosition => MeanOver::PerPosition,
            };
            errln!("computing the dataset mean of {} ...", target.hook_kind().suffix());
            let per_layer = dataset_mean_values(model, &rows, target.hook_kind(), over, args.output.max_rows)
                .map_err(|e| HookLensError::input(format!("{}: {e}", path.display())))?;
            AblationMethod::Values { per_layer }
        }
        (false, Some(_)) => {
            return Err(HookLensError::input(
                "--mean applies to --method mean without --reference (the reference prompts give per-position means)",
            ))
        }
        (false, None) => method,
    };
    let spec_of = |r: &DatasetRow| ablation_sweep(model, &r.clean, target, &method);
    cmd_dataset::run_rows(model, path, &rows, false, spec_of, label, &args.output)
}

/// The `--method` with its inputs.
fn ablation_method(model: &Model, args: &AblateArgs, bos: bool) -> Result<AblationMethod> {
    Ok(match args.method {
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
            let references = match &args.reference {
                Some(path) => model.tokenizer()?.to_tokens_per_line(path, bos)?,
                None => Vec::new(),
            };
            AblationMethod::Mean { references }
        }
    })
}

/// Runs `patch`.
pub fn patch(model: &Model, args: &PatchArgs) -> Result<()> {
    let bos = !args.no_bos;
    if let Some(path) = &args.dataset {
        let site = patch_site(args.site);
        let label = format!("{} patching clean -> corrupted", site_name(args.site));
        let spec_of = |r: &DatasetRow| {
            let corrupted = r.corrupted.as_deref().unwrap_or_default();
            if corrupted.len() != r.clean.len() {
                return Err(HookLensError::input(format!(
                    "patching needs prompts of equal token length: clean has {}, corrupted has {}",
                    r.clean.len(),
                    corrupted.len()
                )));
            }
            patching_sweep(model, &r.clean, corrupted, site)
        };
        let reading = cmd_dataset::Reading {
            kind: DatasetKind::Pairs,
            bos,
            prob: false,
        };
        return cmd_dataset::run(model, path, reading, spec_of, &label, &args.output);
    }
    let clean = read_prompt(model, &args.clean, &args.clean_tokens, bos)?;
    let corrupted = read_prompt(model, &args.corrupted, &args.corrupted_tokens, bos)?;
    for t in [&clean, &corrupted] {
        TokenBatch::single(t.clone())?.validate(model.config())?;
    }
    if clean.len() != corrupted.len() {
        let show = |t: &[u32]| {
            model
                .tokenizer()
                .map(|tk| tk.show_tokens(t))
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
    let metric = build_metric(model, &args.target, &clean, MetricName::Logprob)?;
    let spec = patching_sweep(model, &clean, &corrupted, patch_site(args.site))?;
    let label = format!("{} patching clean -> corrupted", site_name(args.site));
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

/// The library's site for `--site`.
fn patch_site(site: Site) -> PatchSite {
    match site {
        Site::ResidPre => PatchSite::ResidPre,
        Site::ResidMid => PatchSite::ResidMid,
        Site::AttnOut => PatchSite::AttnOut,
        Site::MlpOut => PatchSite::MlpOut,
        Site::Z => PatchSite::Z,
        Site::ZByPos => PatchSite::ZByPos,
    }
}

/// `--site` in a label.
fn site_name(site: Site) -> &'static str {
    match site {
        Site::ResidPre => "resid_pre",
        Site::ResidMid => "resid_mid",
        Site::AttnOut => "attn_out",
        Site::MlpOut => "mlp_out",
        Site::Z => "z (per head)",
        Site::ZByPos => "z (per head and position)",
    }
}

/// Runs `trace`.
pub fn trace(model: &Model, args: &TraceArgs) -> Result<()> {
    let settings = trace_settings(args);
    let label = format!(
        "causal trace ({:?}, {} noise samples)",
        args.kind, args.samples
    )
    .to_lowercase();
    if let Some(path) = &args.dataset {
        let spec_of = |r: &DatasetRow| {
            let subject = r.subject.as_deref().ok_or_else(|| {
                HookLensError::input("missing field `subject` (trace noises its tokens)")
            })?;
            let positions = model.tokenizer()?.find_subject(&r.clean, subject)?;
            trace_sweep(model, &r.clean, &positions, &settings)
        };
        let reading = cmd_dataset::Reading {
            kind: DatasetKind::Prompts,
            bos: !args.input.no_bos,
            prob: true,
        };
        return cmd_dataset::run(model, path, reading, spec_of, &label, &args.output);
    }
    let tokens = args.input.token_batch(model)?;
    tokens.validate(model.config())?;
    let prompt = tokens.row(0).to_vec();
    let subject = match (&args.subject, &args.subject_positions) {
        (Some(s), _) => model
            .tokenizer()?
            .find_subject(&prompt, s)
            .map_err(|e| HookLensError::input(format!("{e} (--subject-positions)")))?,
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
    errln!("subject positions: {subject:?}");
    let metric = build_metric(model, &args.target, &prompt, MetricName::Prob)?;
    let spec = trace_sweep(model, &prompt, &subject, &settings)?;
    run_and_report(model, &spec, &metric, &prompt, &label, &args.output, None)
}

/// The tracing settings of the options.
fn trace_settings(args: &TraceArgs) -> TraceSettings {
    TraceSettings {
        kind: match args.kind {
            Kind::Resid => TraceKind::Resid,
            Kind::Mlp => TraceKind::Mlp,
            Kind::Attn => TraceKind::Attn,
        },
        window: args.window,
        samples: args.samples,
        noise_scale: args.noise,
        seed: args.seed,
    }
}

/// Runs the sweep (output paths were checked before the model was loaded), prints the
/// report, then writes every requested file.
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
        max_rows: out.max_rows,
        progress: Some(&bar),
        ..SweepOptions::default()
    };
    let report = spec.run(model, metric, out.naive, &opts)?;
    print_report(model, &report, metric, tokens, label, out);
    let title = format!("{label}: {}", describe_metric(model, metric));
    let ctx = SweepContext {
        metric,
        tokens,
        corrupted_tokens,
        title: &title,
    };
    write_all(model, &report, &ctx, out)
}
