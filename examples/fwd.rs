//! Times plain forward passes, for profiling (`perf record`) one shape of one model:
//!
//! ```text
//! cargo run --release --example fwd -- MODEL BATCH SEQ REPS
//! ```
//!
//! Tokens are arbitrary ids; all logits are returned, as `hooklens bench` does.

#[path = "common/pass_input.rs"]
mod pass_input;

use hooklens::{Model, RunOptions};
use pass_input::{arbitrary_tokens, number_arg};

fn main() -> hooklens::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: fwd MODEL BATCH SEQ REPS";
    let [path, batch, seq, reps] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let number = |s: &str| number_arg(usage, s);
    let (batch, seq, reps) = (number(batch), number(seq), number(reps));
    let model = Model::load(std::path::Path::new(path))?;
    let tokens = arbitrary_tokens(batch, seq, model.config().d_vocab)?;
    let opts = RunOptions::default();
    model.forward(&tokens, &opts)?; // warm-up
    for _ in 0..reps {
        let start = std::time::Instant::now();
        let out = model.forward(&tokens, &opts)?;
        std::hint::black_box(&out);
        println!("{:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(())
}
