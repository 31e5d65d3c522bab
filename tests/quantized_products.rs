//! The default model's small-batch products read its Q4_1 / Q8_0 rows (`backend::cpu::qgemv`):
//! every linear weight and the unembedding carry them, and a model with them detached (every
//! product on the packed f32 GEMM) gives the same logits within f32 rounding and the same
//! greedy tokens.

mod gguf_common;

use hooklens::backend::cpu::qgemv::QuantKind;
use hooklens::model::generate::GenerateOptions;
use hooklens::{LogitPositions, Model, RunOptions, TokenBatch};

fn default_model() -> Model {
    Model::load(&gguf_common::smollm2_path()).unwrap()
}

/// The same weights with every quantised row detached.
fn packed_only(model: &Model) -> Model {
    let mut weights = model.weights().unwrap().clone();
    for layer in &mut weights.layers {
        let gate = layer.w_gate.as_mut().unwrap();
        let all = [
            &mut layer.w_q,
            &mut layer.w_k,
            &mut layer.w_v,
            &mut layer.w_o,
            &mut layer.w_in,
            gate,
            &mut layer.w_out,
        ];
        for m in all {
            m.detach_quantized();
        }
    }
    weights.unembed.detach_quantized();
    Model::from_parts(model.config().clone(), weights, None, "packed".into()).unwrap()
}

#[test]
fn every_linear_weight_and_the_unembedding_carry_the_files_rows() {
    let model = default_model();
    let w = model.weights().unwrap();
    let kind = |m: &hooklens::backend::cpu::gemm::PackedMatrix| m.quantized().map(|q| q.kind());
    for layer in &w.layers {
        let gate = layer.w_gate.as_ref().unwrap();
        for m in [
            &layer.w_q,
            &layer.w_k,
            &layer.w_v,
            &layer.w_o,
            &layer.w_in,
            gate,
            &layer.w_out,
        ] {
            assert_eq!(kind(m), Some(QuantKind::Q4_1));
        }
    }
    assert_eq!(kind(&w.unembed), Some(QuantKind::Q8_0));
}

#[test]
fn last_position_logits_equal_the_packed_products() {
    let model = default_model();
    let packed = packed_only(&model);
    let opts = RunOptions {
        logits_at: LogitPositions::Last,
        ..RunOptions::default()
    };
    for prompt in [vec![1u32], vec![1, 504, 3437, 314, 260, 1345, 282, 29, 77]] {
        let batch = TokenBatch::single(prompt.clone()).unwrap();
        let logits = |m: &Model| m.forward(&batch, &opts).unwrap().logits.unwrap().data;
        let (a, b) = (logits(&model), logits(&packed));
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(a != b, "the two paths sum in different orders");
        assert!(
            worst <= 1e-5 * scale.max(1.0),
            "{prompt:?}: {worst} of {scale}"
        );
    }
}

#[test]
fn greedy_generation_is_the_same_with_and_without_quantised_rows() {
    let model = default_model();
    let packed = packed_only(&model);
    let opts = GenerateOptions {
        max_new: 40,
        stop_at_eos: false,
        ..GenerateOptions::default()
    };
    let prompt = [1u32, 504, 3437, 314, 260, 1345, 282, 29];
    let run = |m: &Model| m.generate(&prompt, &opts, &[], &mut |_| Ok(true)).unwrap();
    assert_eq!(run(&model).new_tokens, run(&packed).new_tokens);
}
