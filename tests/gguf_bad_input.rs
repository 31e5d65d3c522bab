//! Malformed GGUF files must give a `HookLensError` naming the file and the culprit: never a
//! panic, never an allocation sized by a corrupted count.

mod gguf_common;

use gguf_common::builder::Gguf;
use gguf_common::{fixture_dir, temp_file};
use hooklens::model::gguf::GgufFile;
use hooklens::HookLensError;

/// Asserts `result` is a Format error whose message names the file and contains each of `needles`.
fn expect_format(result: hooklens::Result<GgufFile>, stem: &str, needles: &[&str]) {
    match result {
        Ok(_) => panic!("{stem}: opened a malformed file"),
        Err(err) => {
            let msg = err.to_string();
            assert!(
                matches!(err, HookLensError::Format { .. }),
                "{stem}: not a Format error: {msg}"
            );
            assert!(
                msg.contains(stem),
                "{stem}: message does not name the file: {msg}"
            );
            for needle in needles {
                assert!(
                    msg.contains(needle),
                    "{stem}: message lacks {needle:?}: {msg}"
                );
            }
        }
    }
}

/// Asserts `result` is an Unsupported error containing each of `needles`.
fn expect_unsupported(result: hooklens::Result<GgufFile>, stem: &str, needles: &[&str]) {
    match result {
        Ok(_) => panic!("{stem}: opened an unsupported file"),
        Err(err) => {
            let msg = err.to_string();
            assert!(
                matches!(err, HookLensError::Unsupported { .. }),
                "{stem}: {msg}"
            );
            for needle in needles {
                assert!(
                    msg.contains(needle),
                    "{stem}: message lacks {needle:?}: {msg}"
                );
            }
        }
    }
}

#[test]
fn minimal_valid_files_open() {
    let empty = Gguf::header(3, 0, 0);
    let file = empty.open("empty-ok").unwrap();
    assert_eq!(file.tensors().len(), 0);

    let mut g = Gguf::header(3, 1, 1);
    g.kv_str("general.architecture", "llama")
        .tensor("w", &[4, 2], 0, 0)
        .pad(32)
        .zeros(32);
    let file = g.open("one-tensor-ok").unwrap();
    assert_eq!(file.tensor_f32("w").unwrap(), vec![0.0; 8]);
    assert_eq!(file.tensor_info("w").unwrap().shape(), [2, 4]);
}

#[test]
fn unreadable_paths_are_io_errors() {
    let missing = fixture_dir().join("does-not-exist.gguf");
    let err = GgufFile::open(&missing).unwrap_err();
    assert!(matches!(err, HookLensError::Io { .. }), "{err}");
    assert!(err.to_string().contains("does-not-exist.gguf"), "{err}");
    assert!(GgufFile::open(&fixture_dir()).is_err(), "a directory");
}

#[test]
fn bad_header() {
    expect_format(
        GgufFile::open(&temp_file("zero-bytes", b"")),
        "zero-bytes",
        &["not a GGUF"],
    );
    expect_format(
        GgufFile::open(&temp_file("three-bytes", b"GGU")),
        "three-bytes",
        &["not a GGUF"],
    );
    expect_format(
        GgufFile::open(&temp_file("magic", b"GGML\x03\0\0\0")),
        "magic",
        &["magic"],
    );
    expect_format(
        GgufFile::open(&temp_file("no-version", b"GGUF\x03")),
        "no-version",
        &["version"],
    );
    expect_unsupported(Gguf::header(1, 0, 0).open("v1"), "v1", &["version 1"]);
    expect_unsupported(Gguf::header(4, 0, 0).open("v4"), "v4", &["version 4"]);
    expect_unsupported(Gguf::header(0, 0, 0).open("v0"), "v0", &["version 0"]);
    expect_unsupported(
        Gguf::header(3u32.swap_bytes(), 0, 0).open("be"),
        "be",
        &["big-endian"],
    );
    let mut g = Gguf::default();
    g.bytes(b"GGUF").u32(3).u64(0);
    expect_format(g.open("no-kv-count"), "no-kv-count", &["metadata count"]);
}

#[test]
fn absurd_counts_are_rejected_before_allocating() {
    expect_format(
        Gguf::header(3, 0, u64::MAX).open("kv-count"),
        "kv-count",
        &["metadata count"],
    );
    expect_format(
        Gguf::header(3, u64::MAX, 0).open("t-count"),
        "t-count",
        &["tensor count"],
    );
    expect_format(
        Gguf::header(3, 1 << 40, 0).open("t-count2"),
        "t-count2",
        &["tensor count"],
    );

    let mut g = Gguf::header(3, 0, 1);
    g.u64(1 << 60).bytes(b"key and some more bytes");
    expect_format(
        g.open("key-len"),
        "key-len",
        &["key of metadata entry 0", "1152921504606846976"],
    );

    let mut g = Gguf::header(3, 0, 1);
    g.str("my.string").u32(8).u64(1 << 60).bytes(b"abc");
    expect_format(g.open("str-len"), "str-len", &["my.string"]);

    let mut g = Gguf::header(3, 0, 1);
    g.str("my.array").u32(9).u32(4).u64(1_000_000).u32(1);
    expect_format(
        g.open("arr-count"),
        "arr-count",
        &["my.array", "element count"],
    );

    let mut g = Gguf::header(3, 0, 1);
    g.str("my.array").u32(9).u32(10).u64(1 << 62).u64(1);
    expect_format(g.open("arr-overflow"), "arr-overflow", &["my.array"]);

    let mut g = Gguf::header(3, 0, 1);
    g.str("my.strings")
        .u32(9)
        .u32(8)
        .u64(3)
        .str("a")
        .u64(u64::MAX);
    expect_format(g.open("arr-str-len"), "arr-str-len", &["my.strings"]);
}

#[test]
fn bad_metadata_values() {
    let mut g = Gguf::header(3, 0, 1);
    g.str("my.key").u32(13).u32(0);
    expect_format(g.open("value-type"), "value-type", &["my.key", "13"]);

    let mut g = Gguf::header(3, 0, 1);
    g.str("my.arr").u32(9).u32(99).u64(0);
    expect_format(g.open("elem-type"), "elem-type", &["my.arr", "99"]);

    // Arrays nested 10 deep.
    let mut g = Gguf::header(3, 0, 1);
    g.str("deep");
    g.u32(9);
    for _ in 0..10 {
        g.u32(9).u64(1);
    }
    g.u32(4).u64(0);
    expect_format(g.open("deep"), "deep", &["deep", "nests"]);

    let mut g = Gguf::header(3, 0, 1);
    g.str("bad.utf8").u32(8).u64(2).bytes(&[0xff, 0xfe]);
    expect_format(g.open("utf8"), "utf8", &["bad.utf8", "UTF-8"]);

    let mut g = Gguf::header(3, 0, 2);
    g.kv_u32("twice", 1).kv_u32("twice", 2);
    expect_format(g.open("dup-key"), "dup-key", &["twice", "twice"]);

    for (stem, align) in [("align0", 0u32), ("align3", 3), ("align-huge", 1 << 31)] {
        let mut g = Gguf::header(3, 0, 1);
        g.kv_u32("general.alignment", align);
        expect_format(g.open(stem), stem, &["general.alignment"]);
    }
    let mut g = Gguf::header(3, 0, 1);
    g.kv_str("general.alignment", "32");
    expect_format(g.open("align-str"), "align-str", &["general.alignment"]);

    // A value cut short at the end of the file.
    let mut g = Gguf::header(3, 0, 1);
    g.str("short").u32(10).u32(7);
    expect_format(
        g.open("short-value"),
        "short-value",
        &["short", "truncated"],
    );
}

#[test]
fn bad_tensor_infos() {
    let one = |stem: &str, dims: &[u64], ty: u32, offset: u64, data: usize| {
        let mut g = Gguf::header(3, 1, 0);
        g.tensor("bad.tensor", dims, ty, offset).pad(32).zeros(data);
        g.open(stem)
    };
    expect_format(
        one("ndims5", &[1, 1, 1, 1, 1], 0, 0, 4),
        "ndims5",
        &["bad.tensor", "5 dimensions"],
    );
    expect_unsupported(
        one("type99", &[4], 99, 0, 16),
        "type99",
        &["bad.tensor", "99", "type99"],
    );
    expect_unsupported(one("type4", &[32], 4, 0, 32), "type4", &["bad.tensor"]);
    expect_format(
        one("past-eof", &[8], 0, 0, 31),
        "past-eof",
        &["bad.tensor", "past the end"],
    );
    expect_format(
        one("offset-eof", &[8], 0, 64, 32),
        "offset-eof",
        &["bad.tensor", "past the end"],
    );
    expect_format(
        one("offset-max", &[8], 0, u64::MAX, 32),
        "offset-max",
        &["bad.tensor"],
    );
    expect_format(
        one("dims-overflow", &[1 << 32, 1 << 32, 1 << 32], 0, 0, 0),
        "dims-overflow",
        &["bad.tensor"],
    );
    expect_format(
        one("huge-dims", &[1 << 40, 1 << 20], 0, 0, 0),
        "huge-dims",
        &["bad.tensor"],
    );
    expect_format(
        one("block", &[33], 2, 0, 64),
        "block",
        &["bad.tensor", "block size"],
    );
    expect_format(
        one("q4-past-eof", &[64, 3], 2, 0, 100),
        "q4-past-eof",
        &["bad.tensor"],
    );

    // Two tensors where the first's type x shape is larger than the space before the second.
    let mut g = Gguf::header(3, 2, 0);
    g.tensor("first", &[16], 0, 0)
        .tensor("second", &[8], 0, 32)
        .pad(32)
        .zeros(64);
    expect_format(
        g.open("overlap"),
        "overlap",
        &["first", "second", "overlap"],
    );

    let mut g = Gguf::header(3, 2, 0);
    g.tensor("same", &[8], 0, 0)
        .tensor("same", &[8], 0, 32)
        .pad(32)
        .zeros(64);
    expect_format(g.open("dup-tensor"), "dup-tensor", &["same"]);

    // A tensor info cut short.
    let mut g = Gguf::header(3, 1, 0);
    g.str("cut").u32(2).u64(4).u64(4);
    expect_format(g.open("cut-info"), "cut-info", &["type of tensor `cut`"]);
}

#[test]
fn known_but_unsupported_types_open_and_refuse_to_dequantise() {
    let mut g = Gguf::header(3, 2, 0);
    g.tensor("q5k", &[256], 13, 0)
        .tensor("ok", &[2], 0, 192)
        .pad(32)
        .zeros(224);
    let file = g.open("q5k").unwrap();
    let err = file.tensor_f32("q5k").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, HookLensError::Unsupported { .. }), "{msg}");
    assert!(msg.contains("q5k") && msg.contains("Q5_K"), "{msg}");
    assert_eq!(file.tensor_data("q5k").unwrap().len(), 176);
    assert_eq!(file.tensor_f32("ok").unwrap(), [0.0, 0.0]);
}

#[test]
fn every_truncation_of_a_real_file_is_an_error() {
    let original = fixture_dir().join("synthetic.gguf");
    let bytes = std::fs::read(&original).unwrap();
    // The writer pads after the last tensor: cuts inside that padding leave a valid file.
    let file = GgufFile::open(&original).unwrap();
    let data_end = file
        .tensors()
        .iter()
        .map(|t| file.data_start() + t.offset + t.n_bytes)
        .max()
        .unwrap();
    // Every cut through the header and the first metadata entries, then a stride through the
    // rest of the metadata, the tensor infos and the data.
    let mut cuts: Vec<usize> = (0..600.min(data_end)).collect();
    cuts.extend((600..data_end).step_by(7));
    cuts.push(data_end - 1);
    let path = temp_file("truncated", b"");
    for cut in cuts {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        match GgufFile::open(&path) {
            Ok(_) => panic!("a copy truncated at {cut} of {} bytes opened", bytes.len()),
            Err(HookLensError::Format { message, .. }) => {
                assert!(!message.is_empty());
            }
            Err(other) => panic!("truncated at {cut}: unexpected error kind: {other}"),
        }
    }
}

/// xorshift64*: a tiny deterministic generator for the mutation test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_corruptions_never_panic() {
    let original = std::fs::read(fixture_dir().join("synthetic.gguf")).unwrap();
    // Corrupt the header region mostly: that is where counts and lengths live.
    let header_len = GgufFile::open(&fixture_dir().join("synthetic.gguf"))
        .unwrap()
        .data_start();
    let path = temp_file("mutated", b"");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut opened, mut rejected) = (0, 0);
    for _ in 0..1500 {
        let mut bytes = original.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(header_len);
            bytes[at] = match rng.below(4) {
                0 => rng.next() as u8,
                1 => 0xff,
                2 => 0,
                _ => bytes[at] ^ (1 << rng.below(8)),
            };
        }
        std::fs::write(&path, &bytes).unwrap();
        match GgufFile::open(&path) {
            Ok(file) => {
                opened += 1;
                let names: Vec<String> = file.tensor_names().map(str::to_string).collect();
                for name in names {
                    let _ = file.tensor_f32(&name);
                }
                for (key, _) in file.metadata_entries() {
                    let _ = file.get_u32(key);
                    let _ = file.get_str(key);
                }
            }
            Err(_) => rejected += 1,
        }
    }
    println!("random corruptions: {opened} still valid, {rejected} rejected");
    assert!(rejected > 0);
}
