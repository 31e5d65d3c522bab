//! Times plain forward passes, for profiling (`perf record`) one shape of one model:
//!
//! ```text
//! cargo run --release --example fwd -- MODEL BATCH SEQ REPS
//! ```
//!
//! Tokens are arbitrary ids; all logits are returned, as `hooklens bench` does.

use hooklens::{Model, RunOptions, TokenBatch};

fn main() -> hooklens::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: fwd MODEL BATCH SEQ REPS";
    let [path, batch, seq, reps] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let number = |s: &str| -> usize {
        s.parse().unwrap_or_else(|_| {
            eprintln!("{usage}: {s:?} is not a number");
            std::process::exit(2)
        })
    };
    let (batch, seq, reps) = (number(batch), number(seq), number(reps));
    let model = Model::load(std::path::Path::new(path))?;
    let vocab = model.config().d_vocab;
    let rows: Vec<Vec<u32>> = (0..batch)
        .map(|i| {
            (0..seq)
                .map(|j| ((i * 7919 + j * 104_729) % vocab) as u32)
                .collect()
        })
        .collect();
    let tokens = TokenBatch::from_rows(&rows)?;
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
