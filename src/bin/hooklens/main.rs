//! The `hooklens` command line.

mod cmd_bench;
mod cmd_dataset;
mod cmd_diff;
mod cmd_dla;
mod cmd_generate;
mod cmd_hooks;
mod cmd_intervene;
mod cmd_lens;
mod cmd_run;
mod cmd_run_prompts;
mod cmd_sweep;
mod heatmap;
mod input;
mod parse;
mod progress;
mod run_output;
mod steer;
mod sweep_output;
mod sweep_print;
mod target;
mod term;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hooklens::model::known::{hooklens_home, resolve_model_arg, DEFAULT_MODEL};
use hooklens::model::process::process_weights;
use hooklens::model::random::random_weights;
use hooklens::model::weight_cache::WeightCache;
use hooklens::{Device, HookLensError, LoadOptions, Model, ModelConfig, Result};

/// TransformerLens hook points at native speed.
#[derive(Parser, Debug)]
#[command(name = "hooklens", version, about, long_about = None)]
struct Cli {
    /// Model: an HF checkpoint directory, a .gguf file, a known name (smollm2-135m), or
    /// random weights of a known shape (random:gpt2-small, random:smollm2-135m; for `bench`).
    /// Default: smollm2-135m from $HOOKLENS_HOME (fetch it with scripts/fetch-model).
    /// On the CPU, the packed weights of a model of 32 MiB or more are cached in
    /// $HOOKLENS_HOME/weight-cache and mapped by later loads (HOOKLENS_WEIGHT_CACHE=auto|on|off).
    #[arg(long, global = true)]
    model: Option<String>,
    /// CPU threads, at least 1 (default: $HOOKLENS_THREADS, else all cores; 0 is rejected).
    #[arg(long, global = true, value_parser = parse::positive_count)]
    threads: Option<usize>,
    /// Print where the load's time went (open, read + dequantize, pack or the weight cache,
    /// tokenizer) and which kernel path runs (set one with HOOKLENS_KERNEL=avx512|avx2|portable).
    #[arg(long, short, global = true)]
    verbose: bool,
    /// Device: cpu, auto (the CPU until the CUDA backend is verified on a GPU), or cuda /
    /// cuda:N (experimental; a missing driver, library or device is an error naming it).
    #[arg(long, global = true, default_value = "auto")]
    device: String,
    /// Weight processing at load: none (the checkpoint's weights, the default) or tl
    /// (TransformerLens' from_pretrained processing: fold_ln, center_writing_weights,
    /// center_unembed, fold_value_biases; CPU only). With tl, every hook value equals TL's
    /// processed model (the norms' hook_normalized is then the weightless normalised input).
    #[arg(long, global = true, default_value = "none", value_parser = parse_process)]
    process: LoadOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every hook point with its shape, in firing order.
    Hooks,
    /// Run a prompt: print the top next tokens; optionally cache activations.
    Run(cmd_run::RunArgs),
    /// Ablate every head (or layer) and measure the effect on a target token.
    Ablate(cmd_sweep::AblateArgs),
    /// Patch clean activations into a corrupted run at every (layer, position) or head.
    Patch(cmd_sweep::PatchArgs),
    /// Causal tracing (ROME): noise the subject, restore each (layer, position).
    Trace(cmd_sweep::TraceArgs),
    /// Run a dataset's prompts clean and with a set of interventions applied together
    /// (batched); each prompt's metric and the means ("are these heads necessary?").
    Intervene(cmd_intervene::InterveneArgs),
    /// For every (layer, head), the mean over a dataset's pairs of the norm of the difference
    /// of the two prompts' hook_z, ranked ("which heads differ between honest and
    /// sycophantic prompts?").
    Diff(cmd_diff::DiffArgs),
    /// Direct logit attribution: every head, attention bias, MLP and embedding's share of a
    /// logit (difference) at the last position.
    Dla(cmd_dla::DlaArgs),
    /// The logit lens: the top token read from the residual stream before every layer.
    LogitLens(cmd_lens::LensArgs),
    /// Generate text after a prompt with a KV cache, streamed to stdout (greedy by default).
    Generate(cmd_generate::GenerateArgs),
    /// What every kind of intervention costs: plain pass, hooks at every slot, the cache,
    /// one head zeroed (built-in, Rust closure, C callback, Python hook), the head sweep.
    Bench(cmd_bench::BenchArgs),
}

/// `--process`: `tl` or `none`.
fn parse_process(value: &str) -> std::result::Result<LoadOptions, String> {
    LoadOptions::parse(value).map_err(|e| e.to_string())
}

fn load_model(
    arg: Option<&str>,
    device: Device,
    process: LoadOptions,
    verbose: bool,
) -> Result<Model> {
    if let Some(shape) = arg.and_then(|a| a.strip_prefix("random:")) {
        let cfg = match shape {
            "gpt2-small" => ModelConfig::gpt2_small(),
            "smollm2-135m" => ModelConfig::smollm2_135m(),
            other => {
                return Err(HookLensError::input(format!(
                "--model random:{other}: known shapes are random:gpt2-small, random:smollm2-135m"
            )))
            }
        };
        if device != Device::Cpu {
            return Err(HookLensError::input(format!(
                "--model random:{shape} runs on the CPU only (use --device cpu)"
            )));
        }
        let weights = process_weights(random_weights(&cfg, 0), &cfg, &process);
        return Model::from_parts(cfg, weights, None, format!("random:{shape}").into());
    }
    let path = resolve_model_arg(arg)?;
    let started = std::time::Instant::now();
    let model = Model::load_with_options(&path, device, WeightCache::from_env()?, process)?;
    let cfg = model.config();
    term::errln!(
        "loaded {} ({:?}, {} layers, d_model {}, {} heads) in {:.2}s",
        path.display(),
        cfg.architecture,
        cfg.n_layers,
        cfg.d_model,
        cfg.n_heads,
        started.elapsed().as_secs_f64()
    );
    if let (true, Some(times)) = (verbose, model.load_times()) {
        term::errln!("{times}");
    }
    Ok(model)
}

/// Rejects an invalid `HOOKLENS_KERNEL` before any work; with `verbose`, names the path.
fn check_kernel_choice(verbose: bool) -> Result<()> {
    use hooklens::backend::cpu::gemm::Kernel;
    Kernel::from_env().map_err(HookLensError::input)?;
    if verbose {
        let caches = hooklens::backend::cpu::caches::CacheSizes::get();
        term::errln!(
            "kernel path: {} (caches: L1d {} KiB, L2 {} KiB, L3 {} KiB)",
            Kernel::best().name(),
            caches.l1d >> 10,
            caches.l2 >> 10,
            caches.l3 >> 10
        );
    }
    Ok(())
}

/// Prints an error; the default-model note only where the model could not be loaded.
fn report_error(e: &HookLensError, default_model_failed: bool) {
    term::errln!("error: {e}");
    if default_model_failed {
        term::errln!(
            "(no --model given: the default is {} in {})",
            DEFAULT_MODEL.name,
            hooklens_home().display()
        );
    }
}

fn run_command(model: &Model, command: &Command) -> Result<()> {
    match command {
        Command::Hooks => {
            cmd_hooks::run(model);
            Ok(())
        }
        Command::Run(args) => cmd_run::run(model, args),
        Command::Ablate(args) => cmd_sweep::ablate(model, args),
        Command::Patch(args) => cmd_sweep::patch(model, args),
        Command::Trace(args) => cmd_sweep::trace(model, args),
        Command::Intervene(args) => cmd_intervene::run(model, args),
        Command::Diff(args) => cmd_diff::run(model, args),
        Command::Dla(args) => cmd_dla::run(model, args),
        Command::LogitLens(args) => cmd_lens::run(model, args),
        Command::Generate(args) => cmd_generate::run(model, args),
        Command::Bench(args) => cmd_bench::run(model, args),
    }
}

/// Output paths of the command, checked before the model is loaded.
fn check_outputs(command: &Command) -> Result<()> {
    match command {
        Command::Hooks => Ok(()),
        Command::Run(args) => cmd_run::check_outputs(args),
        Command::Ablate(args) => sweep_output::check(&args.output),
        Command::Patch(args) => sweep_output::check(&args.output),
        Command::Trace(args) => sweep_output::check(&args.output),
        Command::Intervene(args) => cmd_intervene::check_outputs(args),
        Command::Diff(args) => cmd_diff::check_outputs(args),
        Command::Dla(args) => cmd_dla::check_outputs(args),
        Command::LogitLens(args) => cmd_lens::check_outputs(args),
        Command::Generate(args) => cmd_generate::check_outputs(args),
        Command::Bench(args) => args
            .json
            .as_deref()
            .map_or(Ok(()), hooklens::output::check_writable),
    }
}

/// The system allocator, counting heap bytes for `bench`'s peak memory (two relaxed atomic
/// adds per allocation; the engine allocates per pass, not per value).
#[global_allocator]
static HEAP: hooklens::bench::heap::CountingAllocator = hooklens::bench::heap::CountingAllocator;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = match parse::threads_from_env() {
        Ok(env) => cli.threads.or(env),
        Err(e) => {
            report_error(&HookLensError::input(e), false);
            return ExitCode::FAILURE;
        }
    };
    if let Some(n) = threads {
        hooklens::set_num_threads(n);
    }
    let checks = check_kernel_choice(cli.verbose).and_then(|()| check_outputs(&cli.command));
    let device = match checks.and_then(|()| Device::parse(&cli.device)) {
        Ok(device) => device,
        Err(e) => {
            report_error(&e, false);
            return ExitCode::FAILURE;
        }
    };
    let model = match load_model(cli.model.as_deref(), device, cli.process, cli.verbose) {
        Ok(model) => model,
        Err(e) => {
            report_error(&e, cli.model.is_none());
            return ExitCode::FAILURE;
        }
    };
    match run_command(&model, &cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_error(&e, false);
            ExitCode::FAILURE
        }
    }
}
