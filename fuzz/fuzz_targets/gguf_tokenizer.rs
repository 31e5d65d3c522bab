//! AFL++ harness for [`hooklens_fuzz::gguf_tokenizer`].

fn main() {
    afl::fuzz!(|data: &[u8]| {
        hooklens_fuzz::gguf_tokenizer(data);
    });
}
