//! The sweep engine's progress callback: it advances inside a pass (after every block), never
//! goes backwards, and ends at its total.

mod common;

use std::cell::RefCell;

use common::fixtures;
use hooklens::sweep::{
    ablation_sweep, patching_sweep, AblationMethod, AblationTarget, Metric, PatchSite, SweepOptions,
};
use hooklens::Model;

fn calls_of(
    model: &Model,
    spec: &hooklens::sweep::SweepSpec,
    naive: bool,
    max_rows: usize,
) -> (Vec<(usize, usize)>, usize) {
    let calls = RefCell::new(Vec::new());
    let record = |done: usize, total: usize| calls.borrow_mut().push((done, total));
    let opts = SweepOptions {
        max_rows,
        progress: Some(&record),
        ..SweepOptions::default()
    };
    let report = spec
        .run(model, &Metric::LogProb { target: 7 }, naive, &opts)
        .unwrap();
    (calls.into_inner(), report.outcome.stats.passes)
}

fn check_monotone_to_the_end(calls: &[(usize, usize)]) {
    let total = calls[0].1;
    assert!(total > 0);
    assert!(calls.iter().all(|&(_, t)| t == total), "{calls:?}");
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0), "{calls:?}");
    assert_eq!(calls.last().unwrap().0, total, "{calls:?}");
}

#[test]
fn one_pass_reports_after_every_block() {
    let model = Model::load(&fixtures().join("gpt2_small4")).unwrap();
    let n_layers = model.config().n_layers;
    let prompt = [449, 1, 2, 3, 4, 5];
    let spec = ablation_sweep(
        &model,
        &prompt,
        AblationTarget::Heads,
        &AblationMethod::Zero,
    )
    .unwrap();
    let (calls, passes) = calls_of(&model, &spec, false, 4096);
    assert_eq!(passes, 2, "the base pass and one variant pass");
    check_monotone_to_the_end(&calls);
    // The start, one call per block, and the end of the pass.
    assert_eq!(calls.len(), 1 + n_layers + 1, "{calls:?}");
    let inside: Vec<usize> = calls[1..=n_layers].iter().map(|c| c.0).collect();
    assert!(
        inside.windows(2).all(|w| w[0] < w[1]),
        "strictly advancing in the pass: {calls:?}"
    );
    assert!(
        inside[0] > 0 && inside[n_layers - 1] < calls[0].1,
        "{calls:?}"
    );
}

#[test]
fn several_passes_and_the_naive_loop_end_at_their_total() {
    let model = Model::load(&fixtures().join("llama_gqa")).unwrap();
    let spec = patching_sweep(
        &model,
        &[1, 2, 3, 4, 5, 6],
        &[1, 2, 9, 4, 5, 6],
        PatchSite::ResidPre,
    )
    .unwrap();
    let (calls, passes) = calls_of(&model, &spec, false, 7);
    assert!(passes > 2, "{passes}");
    check_monotone_to_the_end(&calls);
    let (naive, _) = calls_of(&model, &spec, true, 7);
    check_monotone_to_the_end(&naive);
    assert_eq!(naive.len(), spec.variants.len(), "one call per variant");
}
