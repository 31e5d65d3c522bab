//! AFL++ harness for [`hooklens_fuzz::gguf`].

fn main() {
    afl::fuzz!(|data: &[u8]| {
        hooklens_fuzz::gguf(data);
    });
}
