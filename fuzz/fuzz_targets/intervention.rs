//! AFL++ harness for [`hooklens_fuzz::intervention`].

fn main() {
    afl::fuzz!(|data: &[u8]| {
        hooklens_fuzz::intervention(data);
    });
}
