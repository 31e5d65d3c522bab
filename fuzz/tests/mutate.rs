//! A fuzzing smoke run without a fuzzer, cheap enough for every CI run: deterministic
//! mutants of each seed (bit flips, byte runs, huge little-endian counts, truncations,
//! splices) through every target. Nothing may panic, and no single allocation may exceed
//! [`LIMIT`] bytes: this test binary's allocator aborts the process on one, so an absurd
//! count in a header that would allocate gigabytes fails the run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;

use hooklens_fuzz::TARGETS;

/// The largest single allocation allowed, in bytes.
const LIMIT: usize = 256 << 20;

/// Mutants per seed.
const MUTANTS: usize = 3000;

struct Capped;

// SAFETY: every call is forwarded unchanged to the system allocator; only requests above
// LIMIT are refused (null), which Rust's allocation paths turn into an abort.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout contract is passed through to System.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > LIMIT {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from `System` with `layout`, as `GlobalAlloc::realloc` requires.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

/// xorshift64*: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutant of `seed`.
fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len());
        match rng.below(6) {
            0 if !data.is_empty() => data[at] ^= 1 << rng.below(8),
            1 if !data.is_empty() => data[at] = [0, 0xFF, 0x7F, 0x80][rng.below(4)],
            2 => {
                let huge: [u64; 4] = [u64::MAX, 1 << 40, u32::MAX as u64, 1 << 31];
                let bytes = huge[rng.below(4)].to_le_bytes();
                let end = (at + 8).min(data.len());
                data[at..end].copy_from_slice(&bytes[..end - at]);
            }
            3 => data.truncate(at),
            4 => {
                let from = rng.below(other.len());
                let len = rng.below(64).min(other.len() - from.min(other.len()));
                data.splice(at..at, other[from..from + len].iter().copied());
            }
            _ => {
                let len = rng.below(16);
                data.splice(at..at, std::iter::repeat_n(0xFF, len));
            }
        }
    }
    data
}

#[test]
fn mutants_of_every_seed_are_handled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (name, target) in TARGETS {
        let dir = root.join("corpus").join(name);
        let seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|entry| {
                let path = entry.expect("a directory entry of the corpus").path();
                std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
            })
            .collect();
        assert!(!seeds.is_empty(), "{name} has no seeds");
        let mut accepted = 0;
        for (i, seed) in seeds.iter().enumerate() {
            let other = &seeds[(i + 1) % seeds.len()];
            for _ in 0..MUTANTS {
                let data = mutate(seed, other, &mut rng);
                match std::panic::catch_unwind(|| target(&data)) {
                    Ok(ok) => accepted += usize::from(ok),
                    Err(_) => panic!("{name}: a mutant panicked: {data:?}"),
                }
            }
        }
        // Some mutants still parse: the mutations reach past the first check.
        assert!(accepted > 0, "{name}: every mutant was rejected");
    }
}
