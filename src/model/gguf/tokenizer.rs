//! The tokenizer embedded in a GGUF file's `tokenizer.ggml.*` metadata.
//!
//! Only byte-level BPE (`tokenizer.ggml.model = "gpt2"`) is read. The pipeline reproduces what
//! HF transformers 4.57 builds when it loads such a GGUF for the `llama` architecture
//! (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`): no normalizer; a `ByteLevel`
//! pre-tokenizer with the GPT-2 split regex and no prefix space; a BPE model over
//! `tokenizer.ggml.tokens` / `tokenizer.ggml.merges` with `byte_fallback` and `fuse_unk`; every
//! token of type 3 (control) registered as a special token, so it encodes as one id wherever
//! it appears in the text.
//!
//! Unlike HF, no BOS is added: HF's `LlamaTokenizerFast` prepends the BOS id although the GGUF
//! says `add_bos_token = false`; hooklens reports `add_bos` and the ids and leaves the choice
//! to the caller.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use super::GgufFile;
use crate::error::{HookLensError, Result};

/// Token type id of control (special) tokens in `tokenizer.ggml.token_type`.
const TOKEN_TYPE_CONTROL: i32 = 3;

/// `tokenizer.ggml.pre` values whose pre-tokenization is the GPT-2 byte-level split, which is
/// what HF uses for them. (For `smollm`, llama.cpp additionally splits digits one by one; the
/// SmolLM2 vocabulary has no multi-character token containing a digit, so the BPE merges split
/// them one per token anyway and the ids agree.)
const GPT2_STYLE_PRE: &[&str] = &["default", "gpt-2", "gpt2", "smollm"];

/// A tokenizer built from GGUF metadata, with its special ids.
pub struct GgufTokenizer {
    /// The HF `tokenizers` pipeline. It adds no special tokens of its own.
    pub tokenizer: Tokenizer,
    /// `tokenizer.ggml.bos_token_id`, if present.
    pub bos_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`, if present.
    pub eos_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (false when absent): whether the model was converted
    /// expecting a BOS. The tokenizer never adds it itself.
    pub add_bos: bool,
    /// `tokenizer.ggml.pre`, the pre-tokenizer name llama.cpp records, if present.
    pub pre: Option<String>,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .field("add_bos", &self.add_bos)
            .field("pre", &self.pre)
            .finish()
    }
}

impl GgufTokenizer {
    /// Token ids of `text`, without BOS; special tokens in the text become their single id.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| tokenizer_error(format!("cannot encode text: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| tokenizer_error(format!("cannot decode ids: {e}")))
    }
}

/// A [`HookLensError::Tokenizer`] with `message`.
fn tokenizer_error(message: String) -> HookLensError {
    HookLensError::Tokenizer { message }
}

/// Builds the tokenizer stored in `file`'s metadata.
///
/// Fails with [`HookLensError::Unsupported`] for tokenizer models other than `gpt2` or
/// pre-tokenizers other than GPT-2 style ones, and [`HookLensError::Format`] when the
/// `tokenizer.ggml.*` keys are missing or inconsistent.
pub fn tokenizer_from_gguf(file: &GgufFile) -> Result<GgufTokenizer> {
    let path = file.path();
    let model = file.get_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(HookLensError::unsupported(format!(
            "{}: GGUF tokenizer model `{model}` (hooklens reads only byte-level BPE, \
             `tokenizer.ggml.model = gpt2`)",
            path.display()
        )));
    }
    let pre = optional(file, "tokenizer.ggml.pre", |k| file.get_str(k))?;
    if let Some(pre) = pre {
        if !GPT2_STYLE_PRE.contains(&pre) {
            return Err(HookLensError::unsupported(format!(
                "{}: GGUF pre-tokenizer `tokenizer.ggml.pre = {pre}` (hooklens knows the GPT-2 \
                 style ones: {})",
                path.display(),
                GPT2_STYLE_PRE.join(", ")
            )));
        }
    }

    let tokens = file.get_str_array("tokenizer.ggml.tokens")?;
    let n_vocab = u32::try_from(tokens.len()).map_err(|_| {
        HookLensError::format(
            path,
            format!("vocabulary of {} tokens is too large", tokens.len()),
        )
    })?;
    let id_key = |key: &str| -> Result<Option<u32>> {
        let Some(id) = optional(file, key, |k| file.get_u32(k))? else {
            return Ok(None);
        };
        if id >= n_vocab {
            return Err(HookLensError::format(
                path,
                format!("metadata key `{key}` is {id}, outside the vocabulary of {n_vocab} tokens"),
            ));
        }
        Ok(Some(id))
    };
    let bos_id = id_key("tokenizer.ggml.bos_token_id")?;
    let eos_id = id_key("tokenizer.ggml.eos_token_id")?;
    let unk_id = id_key("tokenizer.ggml.unknown_token_id")?;
    let add_bos =
        optional(file, "tokenizer.ggml.add_bos_token", |k| file.get_bool(k))?.unwrap_or(false);

    let token_types = optional(file, "tokenizer.ggml.token_type", |k| file.get_i32_array(k))?;
    if let Some(types) = token_types {
        if types.len() != tokens.len() {
            return Err(HookLensError::format(
                path,
                format!(
                    "`tokenizer.ggml.token_type` has {} entries but `tokenizer.ggml.tokens` has {}",
                    types.len(),
                    tokens.len()
                ),
            ));
        }
    }

    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), id as u32))
        .collect();
    let merges = parse_merges(file)?;

    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk_id {
        builder = builder.unk_token(tokens[unk as usize].clone());
    }
    let bpe = builder.build().map_err(|e| {
        HookLensError::format(
            path,
            format!("tokenizer.ggml.tokens / merges do not form a BPE: {e}"),
        )
    })?;

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, false, true)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

    // Special tokens: the control tokens when types are recorded, else unk/bos/eos (as HF).
    let special_ids: Vec<u32> = match token_types {
        Some(types) => (0..n_vocab)
            .filter(|&id| types[id as usize] == TOKEN_TYPE_CONTROL)
            .collect(),
        None => [unk_id, bos_id, eos_id].into_iter().flatten().collect(),
    };
    let special: Vec<AddedToken> = special_ids
        .iter()
        .map(|&id| AddedToken::from(tokens[id as usize].clone(), true))
        .collect();
    tokenizer.add_special_tokens(&special);

    Ok(GgufTokenizer {
        tokenizer,
        bos_id,
        eos_id,
        add_bos,
        pre: pre.map(str::to_string),
    })
}

/// `get(key)` when `key` is present, `None` when absent (a present key of the wrong type is
/// still an error).
fn optional<'a, T>(
    file: &GgufFile,
    key: &'a str,
    get: impl FnOnce(&'a str) -> Result<T>,
) -> Result<Option<T>> {
    match file.metadata(key) {
        None => Ok(None),
        Some(_) => get(key).map(Some),
    }
}

/// `tokenizer.ggml.merges` as (left, right) pairs: each entry is "left right", split at the
/// first space after the first byte (as llama.cpp does).
fn parse_merges(file: &GgufFile) -> Result<Merges> {
    let entries = file.get_str_array("tokenizer.ggml.merges")?;
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let split = entry
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(at, _)| at);
            match split {
                Some(at) => Ok((entry[..at].to_string(), entry[at + 1..].to_string())),
                None => Err(HookLensError::format(
                    file.path(),
                    format!("`tokenizer.ggml.merges` entry {i} ({entry:?}) has no space between its two tokens"),
                )),
            }
        })
        .collect()
}
