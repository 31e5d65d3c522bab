//! The GGUF tokenizer builder on small hand-made vocabularies: the pipeline, special tokens and
//! the errors for unsupported or inconsistent `tokenizer.ggml.*` metadata.

mod gguf_common;

use gguf_common::builder::Gguf;
use hooklens::model::gguf::{tokenizer_from_gguf, GgufFile, GgufTokenizer};
use hooklens::HookLensError;

const TOKENS: &[&str] = &[
    "<|endoftext|>",
    "<|im_start|>",
    "h",
    "e",
    "l",
    "o",
    "Ġ",
    "w",
    "r",
    "d",
    "he",
    "ll",
    "hell",
    "hello",
    "Ġw",
    "Ġwo",
    "1",
    "2",
];
const MERGES: &[&str] = &["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o"];

/// A file with the tiny vocabulary; `edit` may add or override keys (counted in `extra_kv`).
fn tiny(
    stem: &str,
    model: &str,
    extra_kv: u64,
    edit: impl FnOnce(&mut Gguf),
) -> hooklens::Result<GgufFile> {
    let mut types = vec![1; TOKENS.len()];
    types[0] = 3;
    types[1] = 3;
    let mut g = Gguf::header(3, 0, 6 + extra_kv);
    g.kv_str("tokenizer.ggml.model", model)
        .kv_str_array("tokenizer.ggml.tokens", TOKENS)
        .kv_str_array("tokenizer.ggml.merges", MERGES)
        .kv_i32_array("tokenizer.ggml.token_type", &types)
        .kv_u32("tokenizer.ggml.bos_token_id", 1)
        .kv_u32("tokenizer.ggml.unknown_token_id", 0);
    edit(&mut g);
    g.open(stem)
}

fn build(
    stem: &str,
    model: &str,
    extra_kv: u64,
    edit: impl FnOnce(&mut Gguf),
) -> hooklens::Result<GgufTokenizer> {
    tokenizer_from_gguf(&tiny(stem, model, extra_kv, edit)?)
}

#[test]
fn tiny_vocabulary_encodes_and_decodes() {
    let tok = build("tiny", "gpt2", 2, |g| {
        g.kv_str("tokenizer.ggml.pre", "smollm")
            .kv_bool("tokenizer.ggml.add_bos_token", true);
    })
    .unwrap();
    assert_eq!((tok.bos_id, tok.eos_id, tok.add_bos), (Some(1), None, true));
    assert_eq!(tok.pre.as_deref(), Some("smollm"));
    // "hello" merges fully; " wo" via Ġw, Ġwo; special tokens are single ids anywhere.
    let ids = tok.encode("hello wo<|im_start|>hell12").unwrap();
    assert_eq!(ids, [13, 15, 1, 12, 16, 17]);
    assert_eq!(tok.decode(&ids).unwrap(), "hello wo<|im_start|>hell12");
    // Bytes without a token fall back to the unknown token, as in HF.
    assert_eq!(tok.encode("x").unwrap(), [0]);
    // No BOS is added by the tokenizer itself.
    assert_eq!(tok.encode("he").unwrap(), [10]);
}

#[test]
fn unsupported_models_and_pre_tokenizers() {
    for model in ["llama", "bert", "t5"] {
        let err = build(&format!("model-{model}"), model, 0, |_| {}).unwrap_err();
        assert!(matches!(err, HookLensError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains(&format!("`{model}`")), "{err}");
    }
    let err = build("pre", "gpt2", 1, |g| {
        g.kv_str("tokenizer.ggml.pre", "llama-bpe");
    })
    .unwrap_err();
    assert!(matches!(err, HookLensError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("llama-bpe"), "{err}");
}

#[test]
fn inconsistent_metadata_is_a_format_error() {
    let cases: Vec<(&str, hooklens::Result<GgufTokenizer>, &str)> = vec![
        (
            "eos-range",
            build("eos-range", "gpt2", 1, |g| {
                g.kv_u32("tokenizer.ggml.eos_token_id", 999);
            }),
            "tokenizer.ggml.eos_token_id",
        ),
        (
            "pre-type",
            build("pre-type", "gpt2", 1, |g| {
                g.kv_u32("tokenizer.ggml.pre", 7);
            }),
            "tokenizer.ggml.pre",
        ),
        (
            "merge-space",
            {
                let mut g = Gguf::header(3, 0, 3);
                g.kv_str("tokenizer.ggml.model", "gpt2")
                    .kv_str_array("tokenizer.ggml.tokens", TOKENS)
                    .kv_str_array("tokenizer.ggml.merges", &["h e", "ll"]);
                tokenizer_from_gguf(&g.open("merge-space").unwrap())
            },
            "entry 1",
        ),
        (
            "merge-oov",
            {
                let mut g = Gguf::header(3, 0, 3);
                g.kv_str("tokenizer.ggml.model", "gpt2")
                    .kv_str_array("tokenizer.ggml.tokens", TOKENS)
                    .kv_str_array("tokenizer.ggml.merges", &["q z"]);
                tokenizer_from_gguf(&g.open("merge-oov").unwrap())
            },
            "merges",
        ),
        (
            "types-len",
            {
                let mut g = Gguf::header(3, 0, 4);
                g.kv_str("tokenizer.ggml.model", "gpt2")
                    .kv_str_array("tokenizer.ggml.tokens", TOKENS)
                    .kv_str_array("tokenizer.ggml.merges", MERGES)
                    .kv_i32_array("tokenizer.ggml.token_type", &[1, 1]);
                tokenizer_from_gguf(&g.open("types-len").unwrap())
            },
            "token_type",
        ),
        (
            "no-tokens",
            {
                let mut g = Gguf::header(3, 0, 1);
                g.kv_str("tokenizer.ggml.model", "gpt2");
                tokenizer_from_gguf(&g.open("no-tokens").unwrap())
            },
            "tokenizer.ggml.tokens",
        ),
    ];
    for (stem, result, needle) in cases {
        let err = result
            .err()
            .unwrap_or_else(|| panic!("{stem}: built a tokenizer"));
        let msg = err.to_string();
        assert!(matches!(err, HookLensError::Format { .. }), "{stem}: {msg}");
        assert!(msg.contains(needle) && msg.contains(stem), "{stem}: {msg}");
    }
}
