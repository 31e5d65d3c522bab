//! AFL++ harness for [`hooklens_fuzz::tokens`].

fn main() {
    afl::fuzz!(|data: &[u8]| {
        hooklens_fuzz::tokens(data);
    });
}
