//! Replays the committed corpus (seeds and the inputs of crashes once found) through every
//! target without the fuzzer: nothing may panic, `valid-*` seeds must be accepted and
//! `bad-*` ones rejected. This is the fast check CI runs besides the short fuzzing run.

use std::path::Path;

use hooklens_fuzz::TARGETS;

#[test]
fn every_corpus_file_runs_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, target) in TARGETS {
        let mut seen = 0;
        for sub in ["corpus", "regressions"] {
            let dir = root.join(sub).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("a directory entry of the corpus").path();
                let data = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                let accepted = std::panic::catch_unwind(|| target(&data))
                    .unwrap_or_else(|_| panic!("{name}: {} panicked", path.display()));
                let file = path.file_name().unwrap_or_default().to_string_lossy();
                if file.starts_with("valid-") {
                    assert!(accepted, "{name}: {} should be accepted", path.display());
                }
                if file.starts_with("bad-") {
                    assert!(!accepted, "{name}: {} should be rejected", path.display());
                }
                seen += 1;
            }
        }
        assert!(seen > 0, "{name} has no corpus");
    }
}
