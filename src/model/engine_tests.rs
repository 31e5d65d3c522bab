//! The forward pass and the sweep engine on a second backend ([`CheckingBackend`]: the CPU
//! kernels with every buffer's shape checked) give exactly the CPU's results, with no change
//! to the pass: the pass is written once over the trait, and it sizes every buffer as the
//! trait documents.

use super::config::ModelConfig;
use super::engine::Engine;
use super::forward::{LogitRows, PassInput};
use super::input::TokenBatch;
use super::random::{random_weights, random_weights_on};
use super::Model;
use crate::backend::checking::CheckingBackend;
use crate::hooks::cache::{ActivationCache, NamesFilter};
use crate::hooks::intervention::{Intervention, Op};
use crate::hooks::point::{HookKind, HookPoint};
use crate::hooks::registry::SlotTable;
use crate::sweep::{run_sweep, Base, Metric, SweepOptions, Variant};

/// Two-layer models of both architectures, at sizes no kernel tile divides.
pub(crate) fn small_configs() -> Vec<ModelConfig> {
    let mut gpt2 = ModelConfig::gpt2_small();
    (gpt2.n_layers, gpt2.d_model, gpt2.n_heads, gpt2.n_kv_heads) = (2, 40, 4, 4);
    (gpt2.d_head, gpt2.d_mlp, gpt2.d_vocab, gpt2.n_ctx) = (10, 72, 97, 32);
    let mut llama = ModelConfig::smollm2_135m();
    (
        llama.n_layers,
        llama.d_model,
        llama.n_heads,
        llama.n_kv_heads,
    ) = (2, 36, 6, 2);
    (llama.d_head, llama.d_mlp, llama.d_vocab, llama.n_ctx) = (6, 50, 89, 32);
    for cfg in [&mut gpt2, &mut llama] {
        (cfg.bos_token_id, cfg.eos_token_id) = (Some(1), Some(2));
    }
    vec![gpt2, llama]
}

fn tokens(cfg: &ModelConfig, batch: usize, seq: usize) -> TokenBatch {
    let rows: Vec<Vec<u32>> = (0..batch)
        .map(|b| {
            (0..seq)
                .map(|t| ((b * 31 + t * 17 + 3) % cfg.d_vocab) as u32)
                .collect()
        })
        .collect();
    TokenBatch::from_rows(&rows).unwrap()
}

#[test]
fn a_watched_pass_on_the_checking_backend_equals_the_cpu() {
    for cfg in small_configs() {
        let model =
            Model::from_parts(cfg.clone(), random_weights(&cfg, 5), None, "cpu".into()).unwrap();
        let checking = CheckingBackend::default();
        let weights = random_weights_on(&checking, &cfg, 5);
        let engine = Engine::new(checking, weights, &cfg).unwrap();
        let t = tokens(&cfg, 2, 7);
        // Every point, opt-in ones too (per-head results, split inputs, hook_unembed).
        let points = NamesFilter::All.resolve(&cfg).unwrap();
        let opt_in: Vec<HookPoint> = model.hook_points(true);
        let (cpu_out, cpu_cache) = model
            .run_with_cache(
                &t,
                &NamesFilter::Names(opt_in.iter().map(|&p| p.into()).collect()),
                &Default::default(),
            )
            .unwrap();
        let mut slots = SlotTable::build(&cfg, None, &opt_in, &[], &[]).unwrap();
        let shape = (2, 7, (0, cfg.n_layers));
        let out = engine
            .plain_pass(
                &cfg,
                PassInput::Tokens(&t),
                shape,
                None,
                LogitRows::All,
                &mut slots,
                None,
            )
            .unwrap();
        assert!(points.len() < opt_in.len());
        let checked = ActivationCache::new(slots.cached, cfg.clone());
        assert_eq!(checked.len(), cpu_cache.len());
        for (point, tensor) in cpu_cache.iter() {
            assert_eq!(checked.get(*point).unwrap(), tensor, "{}", point.name());
        }
        assert_eq!(out.logits.unwrap().0, cpu_out.logits.unwrap().data);
        assert!(engine.backend.kernel_calls() > 20 * cfg.n_layers);
    }
}

#[test]
fn a_sweep_on_the_checking_backend_equals_the_cpu() {
    for cfg in small_configs() {
        let model =
            Model::from_parts(cfg.clone(), random_weights(&cfg, 9), None, "cpu".into()).unwrap();
        let engine = Engine::new(
            CheckingBackend::default(),
            random_weights_on(&CheckingBackend::default(), &cfg, 9),
            &cfg,
        )
        .unwrap();
        let toks = tokens(&cfg, 1, 9).row(0).to_vec();
        let bases = [Base {
            tokens: toks,
            interventions: Vec::new(),
        }];
        // Heads of both layers at every position and from a later position (prefix reuse),
        // and a residual stream at the last block (a variant that joins the pass there).
        let mut variants = Vec::new();
        for l in 0..cfg.n_layers {
            for h in 0..cfg.n_heads {
                let iv =
                    Intervention::new(HookPoint::layer(HookKind::Z, l), Op::Zero).at_heads(vec![h]);
                variants.push(Variant {
                    base: 0,
                    interventions: vec![iv.clone()],
                });
                variants.push(Variant {
                    base: 0,
                    interventions: vec![iv.at_positions(vec![5])],
                });
            }
        }
        let resid = Intervention::new(
            HookPoint::layer(HookKind::ResidPre, 1),
            Op::Scale { factor: 0.5 },
        );
        variants.push(Variant {
            base: 0,
            interventions: vec![resid.at_positions(vec![3, 8])],
        });
        let metric = Metric::LogProb { target: 4 };
        let opts = SweepOptions {
            max_rows: 40,
            ..SweepOptions::default()
        };
        let cpu = run_sweep(&model, &bases, &variants, &metric, &opts).unwrap();
        let checked = crate::sweep::execute::sweep_on(
            &engine,
            &cfg,
            (&bases, &variants),
            (&vec![metric.clone(); bases.len()], &opts),
            9,
        )
        .unwrap();
        assert_eq!(checked.values, cpu.values);
        assert_eq!(checked.base_values, cpu.base_values);
        assert!(checked.stats.passes > 2, "the row budget splits the sweep");
    }
}

#[test]
fn processed_weights_moved_onto_another_backend_give_the_processed_cpu_results() {
    use super::process::{process_weights, LoadOptions};
    use super::transfer::weights_onto;
    for cfg in small_configs() {
        let processed = || process_weights(random_weights(&cfg, 8), &cfg, &LoadOptions::tl());
        let model = Model::from_parts(cfg.clone(), processed(), None, "cpu".into()).unwrap();
        let checking = CheckingBackend::default();
        let moved = weights_onto(processed(), &checking);
        let engine = Engine::new(checking, moved, &cfg).unwrap();
        let t = tokens(&cfg, 2, 9);
        let points: Vec<HookPoint> = model.hook_points(false);
        let names = NamesFilter::Names(points.iter().map(|&p| p.into()).collect());
        let (cpu_out, cpu_cache) = model
            .run_with_cache(&t, &names, &Default::default())
            .unwrap();
        let mut slots = SlotTable::build(&cfg, None, &points, &[], &[]).unwrap();
        let shape = (2, 9, (0, cfg.n_layers));
        let input = PassInput::Tokens(&t);
        let out = (engine.plain_pass(&cfg, input, shape, None, LogitRows::All, &mut slots, None))
            .unwrap();
        let moved_cache = ActivationCache::new(slots.cached, cfg.clone());
        for (point, tensor) in cpu_cache.iter() {
            assert_eq!(moved_cache.get(*point).unwrap(), tensor, "{}", point.name());
        }
        assert_eq!(out.logits.unwrap().0, cpu_out.logits.unwrap().data);
    }
}

/// A plain pass asked for each sequence's last logits with nothing watching the last block
/// computes that block past its keys and values at the last position only (the pass's
/// output layout says which rows it ended with), and gives the full pass's last logits; a
/// cache request in the last block or at the final norm keeps every position.
#[test]
fn only_the_last_logits_restrict_the_last_block_unless_it_is_watched() {
    for cfg in small_configs() {
        let checking = CheckingBackend::default();
        let weights = random_weights_on(&checking, &cfg, 9);
        let engine = Engine::new(checking, weights, &cfg).unwrap();
        let (batch, seq) = (3, 7);
        let t = tokens(&cfg, batch, seq);
        let last = cfg.n_layers - 1;
        let pass = |logits: LogitRows, cached: &[HookPoint]| {
            let mut slots = SlotTable::build(&cfg, None, cached, &[], &[]).unwrap();
            let shape = (batch, seq, (0, cfg.n_layers));
            let input = PassInput::Tokens(&t);
            let out = engine.plain_pass(&cfg, input, shape, None, logits, &mut slots, None);
            let out = out.unwrap();
            (out.layout.rows(), out.logits.unwrap())
        };
        let (all_rows, (all, _)) = pass(LogitRows::All, &[]);
        assert_eq!(all_rows, batch * seq);
        let (rows, (logits, logit_rows)) = pass(LogitRows::LastOfEachSeq, &[]);
        assert_eq!(
            (rows, logit_rows),
            (batch, vec![0, 1, 2]),
            "{:?}",
            cfg.architecture
        );
        let vocab = cfg.d_vocab;
        for b in 0..batch {
            let want = &all[(b * seq + seq - 1) * vocab..][..vocab];
            let got = &logits[b * vocab..][..vocab];
            let d = (got.iter().zip(want))
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(
                d <= 1e-5,
                "{:?}: sequence {b} differs by {d}",
                cfg.architecture
            );
        }
        let earlier = HookPoint::layer(HookKind::MlpOut, 0);
        assert_eq!(pass(LogitRows::LastOfEachSeq, &[earlier]).0, batch);
        for watched in [
            HookPoint::layer(HookKind::ResidPre, last),
            HookPoint::layer(HookKind::ResidPost, last),
            HookPoint::global(HookKind::LnFinalScale),
        ] {
            let (rows, _) = pass(LogitRows::LastOfEachSeq, &[watched]);
            assert_eq!(rows, batch * seq, "{}", watched.name());
        }
    }
}
