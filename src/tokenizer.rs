//! Text <-> token ids, through the `tokenizers` crate, with an explicit BOS choice.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

use crate::error::{HookLensError, Result};
use crate::token_text::{byte_fallback, byte_level_bytes, show_bytes, show_text};

/// A tokenizer and the model's BOS id.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos_id: Option<u32>,
}

fn tok_err(e: impl std::fmt::Display) -> HookLensError {
    HookLensError::Tokenizer {
        message: e.to_string(),
    }
}

/// GPT-2's end-of-text token, which is also its BOS.
const GPT2_SPECIAL: &str = "<|endoftext|>";

impl Tokenizer {
    /// Wraps a ready `tokenizers::Tokenizer`; it must not add special tokens by itself, since
    /// BOS is hooklens' explicit choice.
    pub fn new(inner: tokenizers::Tokenizer, bos_id: Option<u32>) -> Self {
        Tokenizer { inner, bos_id }
    }

    /// Loads an HF `tokenizer.json`.
    pub fn from_file(path: &Path, bos_id: Option<u32>) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| HookLensError::format(path, format!("cannot load tokenizer: {e}")))?;
        Ok(Tokenizer::new(inner, bos_id))
    }

    /// Builds GPT-2's byte-level BPE from `vocab.json` + `merges.txt`.
    pub fn from_vocab_merges(vocab: &Path, merges: &Path, bos_id: Option<u32>) -> Result<Self> {
        let (vs, ms) = (vocab.to_string_lossy(), merges.to_string_lossy());
        let bpe = BPE::from_file(&vs, &ms).build().map_err(|e| {
            HookLensError::format(vocab, format!("cannot build BPE from vocab + merges: {e}"))
        })?;
        let has_special = bpe.get_vocab().contains_key(GPT2_SPECIAL);
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        if has_special {
            inner.add_special_tokens(&[AddedToken::from(GPT2_SPECIAL, true)]);
        }
        Ok(Tokenizer::new(inner, bos_id))
    }

    /// Loads the tokenizer of an HF model directory: `tokenizer.json`, else `vocab.json` +
    /// `merges.txt`. `Ok(None)` when the directory has neither.
    pub fn from_hf_dir(dir: &Path, bos_id: Option<u32>) -> Result<Option<Self>> {
        let json = dir.join("tokenizer.json");
        if json.exists() {
            return Self::from_file(&json, bos_id).map(Some);
        }
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if vocab.exists() && merges.exists() {
            return Self::from_vocab_merges(&vocab, &merges, bos_id).map(Some);
        }
        Ok(None)
    }

    /// The BOS id prepended by `to_tokens(.., true)`.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// Number of ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Encodes text without any special tokens added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(tok_err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// TL's `to_tokens` for one text: the ids, with BOS first when `prepend_bos`.
    pub fn to_tokens(&self, text: &str, prepend_bos: bool) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if prepend_bos {
            ids.push(self.bos_id.ok_or_else(|| {
                HookLensError::input(
                    "this model has no BOS token; run without prepending BOS (--no-bos)",
                )
            })?);
        }
        ids.extend(self.encode(text)?);
        Ok(ids)
    }

    /// Decodes ids to text (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(tok_err)
    }

    /// TL's `to_str_tokens`: each id decoded on its own.
    pub fn to_str_tokens(&self, ids: &[u32]) -> Result<Vec<String>> {
        ids.iter().map(|&id| self.decode(&[id])).collect()
    }

    /// One token as a person reads it: `" Paris"`, `"\n"`, and byte tokens as `<0x18>` (as HF
    /// shows them), also a lone byte of a multi-byte character (`<0xE2>`, not U+FFFD).
    pub fn show_token(&self, id: u32) -> String {
        let Ok(text) = self.decode(&[id]) else {
            return format!("<id {id}>");
        };
        if text.contains('\u{FFFD}') {
            if let Some(raw) = self.inner.id_to_token(id) {
                if let Some(b) = byte_fallback(&raw) {
                    return show_bytes(&[b]);
                }
                match byte_level_bytes(&raw) {
                    Some(bytes) if std::str::from_utf8(&bytes).is_err() => {
                        return show_bytes(&bytes)
                    }
                    _ => {}
                }
            }
        }
        show_text(&text)
    }

    /// [`Tokenizer::show_token`] of each id, comma-separated in brackets.
    pub fn show_tokens(&self, ids: &[u32]) -> String {
        let shown: Vec<String> = ids.iter().map(|&id| self.show_token(id)).collect();
        format!("[{}]", shown.join(", "))
    }

    /// TL's `to_single_token`: the one id a text encodes to, or an error showing its tokens.
    pub fn to_single_token(&self, text: &str) -> Result<u32> {
        let ids = self.encode(text)?;
        match ids.as_slice() {
            [id] => Ok(*id),
            _ => Err(HookLensError::input(format!(
                "{} is not a single token: it encodes to {} tokens {ids:?} = {}",
                show_text(text),
                ids.len(),
                self.show_tokens(&ids)
            ))),
        }
    }

    /// TL's `to_tokens` of every non-blank line of a text file (mean ablation's reference
    /// prompts, one per line).
    pub fn to_tokens_per_line(&self, path: &Path, prepend_bos: bool) -> Result<Vec<Vec<u32>>> {
        let text = std::fs::read_to_string(path).map_err(|e| HookLensError::io(path, e))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| self.to_tokens(line, prepend_bos))
            .collect()
    }

    /// The positions of `subject` in `tokens` as whole tokens, tried as `" subject"` (with
    /// one leading space), as given without leading spaces, and as given; an error showing
    /// the tokens when none appears.
    pub fn find_subject(&self, tokens: &[u32], subject: &str) -> Result<Vec<usize>> {
        let trimmed = subject.trim_start();
        for candidate in [
            format!(" {trimmed}"),
            trimmed.to_string(),
            subject.to_string(),
        ] {
            let ids = self.encode(&candidate)?;
            if ids.is_empty() || ids.len() > tokens.len() {
                continue;
            }
            if let Some(start) = tokens.windows(ids.len()).position(|w| w == ids.as_slice()) {
                return Ok((start..start + ids.len()).collect());
            }
        }
        Err(HookLensError::input(format!(
            "the subject {subject:?} does not appear as whole tokens in the prompt {}; give \
             the subject's token positions instead",
            self.show_tokens(tokens)
        )))
    }
}
