//! AFL++ harness for [`hooklens_fuzz::selector`].

fn main() {
    afl::fuzz!(|data: &[u8]| {
        hooklens_fuzz::selector(data);
    });
}
