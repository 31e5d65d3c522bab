//! AFL++ harness for [`hooklens_fuzz::safetensors_dir`].

fn main() {
    afl::fuzz!(|data: &[u8]| {
        hooklens_fuzz::safetensors_dir(data);
    });
}
