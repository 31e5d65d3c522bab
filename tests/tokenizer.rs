//! Tokenization against HF's GPT2TokenizerFast on the fixture tokenizer, from both file forms.

mod common;

use common::fixtures;
use hooklens::Tokenizer;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    str_tokens: Vec<String>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("tokenizer_cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn check(tok: &Tokenizer, form: &str) {
    let cases = cases();
    assert!(cases.len() >= 10);
    for case in cases {
        let ids = tok.encode(&case.text).unwrap();
        assert_eq!(ids, case.ids, "{form}: ids of {:?}", case.text);
        let str_tokens = tok.to_str_tokens(&ids).unwrap();
        assert_eq!(
            str_tokens, case.str_tokens,
            "{form}: str tokens of {:?}",
            case.text
        );
        let with_bos = tok.to_tokens(&case.text, true).unwrap();
        assert_eq!(with_bos[0], 449);
        assert_eq!(&with_bos[1..], &case.ids[..]);
    }
}

#[test]
fn tokenizer_json_matches_hf() {
    let tok = Tokenizer::from_file(&fixtures().join("tokenizer.json"), Some(449)).unwrap();
    check(&tok, "tokenizer.json");
}

#[test]
fn vocab_and_merges_match_hf() {
    let dir = fixtures();
    let tok =
        Tokenizer::from_vocab_merges(&dir.join("vocab.json"), &dir.join("merges.txt"), Some(449))
            .unwrap();
    check(&tok, "vocab.json + merges.txt");
}

#[test]
fn single_token_errors_show_the_split() {
    let tok = Tokenizer::from_file(&fixtures().join("tokenizer.json"), Some(449)).unwrap();
    let err = tok.to_single_token("Hello world").unwrap_err().to_string();
    assert!(
        err.contains("not a single token") && err.contains("\" w\""),
        "{err}"
    );
    assert_eq!(tok.to_single_token("<|endoftext|>").unwrap(), 449);
    let no_bos = Tokenizer::from_file(&fixtures().join("tokenizer.json"), None).unwrap();
    assert!(no_bos.to_tokens("x", true).is_err());
}
