//! GGUF files: parsing, dequantisation and the embedded tokenizer.
