//! The CUDA backend against the CPU, on a GPU: every hook point, the logits, a hook edit and
//! a sweep. Without a usable GPU each test says so and passes, unless HOOKLENS_REQUIRE_GPU=1
//! (`scripts/gpu-check.sh` sets it), which makes the absence a failure.
#![cfg(feature = "cuda")]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::fixtures;
use hooklens::backend::cuda::open_device;
use hooklens::model::input::PaddingSide;
use hooklens::sweep::{ablation_sweep, AblationMethod, AblationTarget, Metric, SweepOptions};
use hooklens::{Device, Hooks, Model, NamesFilter, RunOptions, TokenBatch};

fn gpu_available() -> bool {
    match open_device(0) {
        Ok(_) => true,
        Err(e) => {
            let required = std::env::var("HOOKLENS_REQUIRE_GPU").is_ok_and(|v| v == "1");
            assert!(!required, "HOOKLENS_REQUIRE_GPU=1 but: {e}");
            eprintln!("no usable GPU ({e}): CUDA parity not checked");
            false
        }
    }
}

fn models() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["gpt2_small4", "gpt2_tiny", "llama_gqa", "llama_odd"]
        .iter()
        .map(|d| fixtures().join(d))
        .collect();
    let smollm2 = hooklens::model::known::hooklens_home().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if smollm2.exists() {
        dirs.push(smollm2);
    }
    dirs
}

fn tokens(vocab: usize, batch: usize, seq: usize) -> TokenBatch {
    let rows: Vec<Vec<u32>> = (0..batch)
        .map(|b| {
            (0..seq)
                .map(|t| ((b * 131 + t * 7919 + 1) % vocab) as u32)
                .collect()
        })
        .collect();
    TokenBatch::from_rows(&rows).unwrap()
}

/// max |a - b| / max(max |a|, 1e-6).
fn relative_to_scale(a: &[f32], b: &[f32]) -> f64 {
    let scale = a
        .iter()
        .fold(0.0f64, |m, &v| m.max(v.abs() as f64))
        .max(1e-6);
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (&x, &y)| m.max((x - y).abs() as f64));
    diff / scale
}

#[test]
fn every_hook_point_and_the_logits_match_the_cpu() {
    if !gpu_available() {
        return;
    }
    for path in models() {
        let cpu = Model::load_on(&path, Device::Cpu).unwrap();
        let gpu = Model::load_on(&path, Device::Cuda(0)).unwrap();
        let t = tokens(cpu.config().d_vocab, 2, 11);
        let names = NamesFilter::Names(cpu.hook_points(true).into_iter().map(Into::into).collect());
        let (c_out, c_cache) = cpu
            .run_with_cache(&t, &names, &RunOptions::default())
            .unwrap();
        let (g_out, g_cache) = gpu
            .run_with_cache(&t, &names, &RunOptions::default())
            .unwrap();
        let mut worst: BTreeMap<String, f64> = BTreeMap::new();
        for (point, tensor) in c_cache.iter() {
            let g = g_cache.get(*point).unwrap();
            assert_eq!(g.shape, tensor.shape, "{}", point.name());
            let family = point.name().rsplit('.').next().unwrap().to_string();
            let e = worst.entry(family).or_insert(0.0);
            *e = e.max(relative_to_scale(&tensor.data, &g.data));
        }
        let logits = relative_to_scale(&c_out.logits.unwrap().data, &g_out.logits.unwrap().data);
        eprintln!(
            "{}: logits {logits:.2e}; per hook family {worst:?}",
            path.display()
        );
        for (family, err) in &worst {
            assert!(
                *err <= 1e-4,
                "{}: {family} differs by {err:.2e} of its scale",
                path.display()
            );
        }
        assert!(
            logits <= 1e-4,
            "{}: logits differ by {logits:.2e}",
            path.display()
        );
    }
}

/// Rows of 11, 6 and 3 tokens padded on `side` (pad id 0).
fn ragged(vocab: usize, side: PaddingSide) -> TokenBatch {
    let full = tokens(vocab, 3, 11);
    let rows: Vec<Vec<u32>> = [11, 6, 3]
        .iter()
        .enumerate()
        .map(|(b, &n)| full.row(b)[..n].to_vec())
        .collect();
    TokenBatch::padded(&rows, side, 0).unwrap()
}

/// A ragged batch: the masked scores / pattern kernels (every hook watched) and the masked
/// fused kernel (logits only) give the CPU's values, pads included.
#[test]
fn a_ragged_batch_matches_the_cpu_on_both_attention_paths() {
    if !gpu_available() {
        return;
    }
    for path in models() {
        let cpu = Model::load_on(&path, Device::Cpu).unwrap();
        let gpu = Model::load_on(&path, Device::Cuda(0)).unwrap();
        for side in [PaddingSide::Left, PaddingSide::Right] {
            let t = ragged(cpu.config().d_vocab, side);
            let names =
                NamesFilter::Names(cpu.hook_points(false).into_iter().map(Into::into).collect());
            let opts = RunOptions::default();
            let (c_out, c_cache) = cpu.run_with_cache(&t, &names, &opts).unwrap();
            let (g_out, g_cache) = gpu.run_with_cache(&t, &names, &opts).unwrap();
            for (point, tensor) in c_cache.iter() {
                let err = relative_to_scale(&tensor.data, &g_cache.get(*point).unwrap().data);
                assert!(
                    err <= 1e-4,
                    "{}: {side:?} {} differs by {err:.2e}",
                    path.display(),
                    point.name()
                );
            }
            let watched =
                relative_to_scale(&c_out.logits.unwrap().data, &g_out.logits.unwrap().data);
            let c_fused = cpu.forward(&t, &opts).unwrap().logits.unwrap();
            let g_fused = gpu.forward(&t, &opts).unwrap().logits.unwrap();
            let fused = relative_to_scale(&c_fused.data, &g_fused.data);
            eprintln!(
                "{}: {side:?} logits {watched:.2e} (watched), {fused:.2e} (fused)",
                path.display()
            );
            assert!(
                watched <= 1e-4 && fused <= 1e-4,
                "{}: {side:?} logits",
                path.display()
            );
        }
    }
}

#[test]
fn a_host_hook_edit_and_a_sweep_match_the_cpu() {
    if !gpu_available() {
        return;
    }
    let path = fixtures().join("gpt2_small4");
    let cpu = Model::load_on(&path, Device::Cpu).unwrap();
    let gpu = Model::load_on(&path, Device::Cuda(0)).unwrap();
    let t = tokens(cpu.config().d_vocab, 1, 9);
    let zero_head = |model: &Model| {
        let mut hooks = Hooks::new();
        hooks.add(("z", 1), |act, _| {
            for p in 0..act.shape()[1] {
                act.slice_mut(&[0, p, 2])?.fill(0.0);
            }
            Ok(())
        });
        model
            .run_with_hooks(&t, &mut hooks, &RunOptions::default())
            .unwrap()
            .logits
            .unwrap()
    };
    let (c, g) = (zero_head(&cpu), zero_head(&gpu));
    assert!(relative_to_scale(&c.data, &g.data) <= 1e-4);
    let metric = Metric::LogProb { target: 7 };
    let spec = |m: &Model| {
        ablation_sweep(m, t.row(0), AblationTarget::Heads, &AblationMethod::Zero).unwrap()
    };
    let opts = SweepOptions::default();
    let c = spec(&cpu).run(&cpu, &metric, false, &opts).unwrap();
    let g = spec(&gpu).run(&gpu, &metric, false, &opts).unwrap();
    let naive = spec(&gpu).run(&gpu, &metric, true, &opts).unwrap();
    for ((a, b), n) in c.results.iter().zip(&g.results).zip(&naive.results) {
        assert!(
            (a.value - b.value).abs() <= 1e-3,
            "cpu {} vs cuda {}",
            a.value,
            b.value
        );
        assert!(
            (b.value - n.value).abs() <= 1e-4,
            "engine {} vs naive {}",
            b.value,
            n.value
        );
    }
}

#[test]
fn tl_processed_weights_match_the_cpu_on_the_gpu() {
    use hooklens::model::process::LoadOptions;
    use hooklens::model::weight_cache::WeightCache;
    if !gpu_available() {
        return;
    }
    for name in ["gpt2_tiny", "llama_gqa"] {
        let path = fixtures().join(name);
        let load = |device| {
            Model::load_with_options(&path, device, WeightCache::Off, LoadOptions::tl()).unwrap()
        };
        let (cpu, gpu) = (load(Device::Cpu), load(Device::Cuda(0)));
        let t = tokens(cpu.config().d_vocab, 2, 9);
        let (c_out, c_cache) = cpu
            .run_with_cache(&t, &NamesFilter::All, &RunOptions::default())
            .unwrap();
        let (g_out, g_cache) = gpu
            .run_with_cache(&t, &NamesFilter::All, &RunOptions::default())
            .unwrap();
        for (point, tensor) in c_cache.iter() {
            let err = relative_to_scale(&tensor.data, &g_cache.get(*point).unwrap().data);
            assert!(
                err <= 1e-4,
                "{name} {}: {err:.2e} of its scale",
                point.name()
            );
        }
        let logits = relative_to_scale(&c_out.logits.unwrap().data, &g_out.logits.unwrap().data);
        assert!(logits <= 1e-4, "{name}: logits differ by {logits:.2e}");
    }
}

#[test]
fn generation_with_the_kv_cache_and_a_hook_matches_the_cpu_on_the_gpu() {
    use hooklens::model::generate::GenerateOptions;
    if !gpu_available() {
        return;
    }
    let opts = GenerateOptions {
        max_new: 12,
        stop_at_eos: false,
        ..GenerateOptions::default()
    };
    for path in models() {
        let cpu = Model::load_on(&path, Device::Cpu).unwrap();
        let gpu = Model::load_on(&path, Device::Cuda(0)).unwrap();
        let prompt = tokens(cpu.config().d_vocab, 1, 6).row(0).to_vec();
        let run = |model: &Model| {
            // A closure halving the residual entering block 0, in every cached pass.
            let mut hooks = Hooks::new();
            hooks.add("blocks.0.hook_resid_pre", |act, _| {
                act.data_mut().iter_mut().for_each(|x| *x *= 0.5);
                Ok(())
            });
            let g =
                model.generate_with_hooks(&prompt, &opts, &[], Some(&mut hooks), &mut |_| Ok(true));
            g.unwrap().new_tokens
        };
        assert_eq!(run(&cpu), run(&gpu), "{}", path.display());
    }
}
