//! Helpers shared by the GGUF integration tests.
#![allow(dead_code)]

pub mod builder;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use hooklens::model::gguf::{GgufArray, GgufValue};

/// `tests/fixtures/gguf`.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

/// A fixture parsed as JSON.
pub fn fixture_json(name: &str) -> serde_json::Value {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

/// The SmolLM2 GGUF in `$HOOKLENS_HOME` (default `$HOME/.cache/hooklens`); panics with the fetch
/// instructions when it is absent, so that a missing model fails the test instead of skipping it.
pub fn smollm2_path() -> PathBuf {
    let path = hooklens::model::known::DEFAULT_MODEL.path();
    assert!(
        path.is_file(),
        "{} is missing: fetch the default model first with scripts/fetch-model \
         (CI does; it honours $HOOKLENS_HOME)",
        path.display()
    );
    path
}

/// Writes `bytes` to a fresh file under the test scratch directory and returns its path.
pub fn temp_file(stem: &str, bytes: &[u8]) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gguf-tests");
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    let path = dir.join(format!("{stem}-{}-{n}.gguf", std::process::id()));
    std::fs::write(&path, bytes).expect("write scratch file");
    path
}

/// A metadata value as JSON, for comparison with the Python-side expectations.
pub fn value_json(value: &GgufValue) -> serde_json::Value {
    use serde_json::json;
    match value {
        GgufValue::U8(v) => json!(v),
        GgufValue::I8(v) => json!(v),
        GgufValue::U16(v) => json!(v),
        GgufValue::I16(v) => json!(v),
        GgufValue::U32(v) => json!(v),
        GgufValue::I32(v) => json!(v),
        GgufValue::F32(v) => json!(f64::from(*v)),
        GgufValue::Bool(v) => json!(v),
        GgufValue::String(v) => json!(v),
        GgufValue::Array(a) => array_json(a),
        GgufValue::U64(v) => json!(v),
        GgufValue::I64(v) => json!(v),
        GgufValue::F64(v) => json!(v),
    }
}

fn array_json(array: &GgufArray) -> serde_json::Value {
    use serde_json::json;
    match array {
        GgufArray::U8(v) => json!(v),
        GgufArray::I8(v) => json!(v),
        GgufArray::U16(v) => json!(v),
        GgufArray::I16(v) => json!(v),
        GgufArray::U32(v) => json!(v),
        GgufArray::I32(v) => json!(v),
        GgufArray::F32(v) => json!(v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()),
        GgufArray::Bool(v) => json!(v),
        GgufArray::String(v) => json!(v),
        GgufArray::Array(v) => serde_json::Value::Array(v.iter().map(array_json).collect()),
        GgufArray::U64(v) => json!(v),
        GgufArray::I64(v) => json!(v),
        GgufArray::F64(v) => json!(v),
    }
}

/// A JSON list of numbers as `f32`.
pub fn f32_values(value: &serde_json::Value) -> Vec<f32> {
    value
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

/// Largest |a - b| and largest |a - b| / max(1, |b|) over two equal-length slices.
pub fn max_diffs(got: &[f32], expected: &[f32]) -> (f32, f32) {
    assert_eq!(got.len(), expected.len(), "length mismatch");
    got.iter()
        .zip(expected)
        .fold((0.0f32, 0.0f32), |(abs, rel), (&g, &e)| {
            let d = (g - e).abs();
            (abs.max(d), rel.max(d / e.abs().max(1.0)))
        })
}
