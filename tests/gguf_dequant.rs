//! GGUF parsing and dequantisation against the `gguf` Python package, on small synthetic files
//! written by `scripts/golden/make_gguf_refs.py` (tests/fixtures/gguf/synthetic*.gguf).

mod gguf_common;

use gguf_common::{f32_values, fixture_dir, fixture_json, max_diffs, temp_file, value_json};
use hooklens::model::gguf::{dequantize, GgmlType, GgufFile, GgufValue};
use hooklens::HookLensError;

/// Tolerance on |got - expected| / max(1, |expected|).
const TOL: f32 = 1e-6;

fn open_fixture(name: &str) -> GgufFile {
    GgufFile::open(&fixture_dir().join(name)).unwrap_or_else(|e| panic!("open {name}: {e}"))
}

/// Checks every tensor of an open synthetic file against the expected values.
fn check_tensors(file: &GgufFile, label: &str) {
    let refs = fixture_json("synthetic.json");
    let tensors = refs["tensors"].as_array().unwrap();
    let names: Vec<&str> = file.tensor_names().collect();
    let expected_names: Vec<&str> = tensors
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, expected_names, "{label}: tensor names in file order");
    for t in tensors {
        let name = t["name"].as_str().unwrap();
        let info = file.tensor_info(name).unwrap();
        assert_eq!(
            info.ggml_type.to_string(),
            t["type"].as_str().unwrap(),
            "{label} {name}"
        );
        let dims: Vec<usize> = serde_json::from_value(t["dims"].clone()).unwrap();
        let shape: Vec<usize> = serde_json::from_value(t["shape"].clone()).unwrap();
        assert_eq!(info.dims, dims, "{label} {name} dims");
        assert_eq!(info.shape(), shape, "{label} {name} shape");
        let expected = f32_values(&t["expected"]);
        assert_eq!(info.n_elements(), expected.len());
        let got = file.tensor_f32(name).unwrap();
        let (abs, rel) = max_diffs(&got, &expected);
        println!(
            "{label} {name:<14} {:<5} max abs diff {abs:e}, max rel diff {rel:e}",
            info.ggml_type
        );
        assert!(rel <= TOL, "{label} {name}: max rel diff {rel} (abs {abs})");
        assert!(got.iter().any(|&x| x != 0.0), "{name} is all zeros");
    }
}

#[test]
fn every_type_matches_the_gguf_package() {
    for name in ["synthetic.gguf", "synthetic_align64.gguf"] {
        let file = open_fixture(name);
        let refs = fixture_json("synthetic.json");
        let meta = &refs["files"][name];
        assert_eq!(file.version() as u64, meta["version"].as_u64().unwrap());
        assert_eq!(
            file.alignment() as u64,
            meta["alignment"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            file.data_start() as u64,
            meta["data_start"].as_u64().unwrap(),
            "{name}"
        );
        check_tensors(&file, name);
    }
}

#[test]
fn gguf_v2_reads_the_same() {
    // v2 and v3 share the layout (v3 only allowed big-endian files); patch the version field.
    let mut bytes = std::fs::read(fixture_dir().join("synthetic.gguf")).unwrap();
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    let path = temp_file("v2", &bytes);
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.version(), 2);
    check_tensors(&file, "v2");
}

/// JSON equality with integers exact and floats compared as f32 (f32 metadata widens inexactly).
fn json_close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                x == y || (x as f32) == (y as f32)
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_close(p, q))
        }
        _ => a == b,
    }
}

#[test]
fn metadata_of_every_value_type() {
    let file = open_fixture("synthetic.gguf");
    let refs = fixture_json("synthetic.json");
    for entry in refs["metadata"].as_array().unwrap() {
        let key = entry["key"].as_str().unwrap();
        let value = file
            .metadata(key)
            .unwrap_or_else(|| panic!("missing {key}"));
        assert_eq!(
            value.type_name(),
            entry["type"].as_str().unwrap(),
            "type of {key}"
        );
        let got = value_json(value);
        assert!(
            json_close(&got, &entry["value"]),
            "{key}: got {got}, expected {}",
            entry["value"]
        );
    }
    assert_eq!(file.get_u32("general.alignment").ok(), None);
    assert!(file.metadata("no.such.key").is_none());
    assert_eq!(file.architecture().unwrap(), "testarch");
}

#[test]
fn typed_getters_convert_or_name_the_key() {
    let file = open_fixture("synthetic.gguf");
    assert_eq!(file.get_u32("test.u8").unwrap(), 200);
    assert_eq!(file.get_u32("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(
        file.get_u64("test.u64").unwrap(),
        18_000_000_000_000_000_000
    );
    assert_eq!(file.get_i32("test.i16").unwrap(), -30000);
    assert_eq!(file.get_usize("test.u16").unwrap(), 60000);
    assert_eq!(file.get_f32("test.f32").unwrap(), 1.5);
    assert_eq!(file.get_f64("test.f64").unwrap(), std::f64::consts::PI);
    assert_eq!(file.get_f32("test.f64").unwrap(), std::f32::consts::PI);
    assert!(file.get_bool("test.bool_true").unwrap());
    assert!(!file.get_bool("test.bool_false").unwrap());
    assert_eq!(file.get_str("test.string").unwrap(), "héllo wörld ✓ 日本");
    assert_eq!(
        file.get_str_array("test.arr_str").unwrap(),
        ["a", "", "ünï ✓", "with space"]
    );
    assert_eq!(file.get_i32_array("test.arr_i32").unwrap(), [1, -2, 3, -4]);
    assert_eq!(
        file.get_f32_array("test.arr_f32").unwrap(),
        [0.5, -2.25, 1e-5]
    );
    assert_eq!(file.get_array("test.arr_nested").unwrap().len(), 3);

    let failures: Vec<(&str, HookLensError)> = vec![
        ("test.i32", file.get_u32("test.i32").unwrap_err()),
        ("test.u64", file.get_u32("test.u64").unwrap_err()),
        ("test.string", file.get_u32("test.string").unwrap_err()),
        ("test.u32", file.get_str("test.u32").unwrap_err()),
        ("test.f32", file.get_bool("test.f32").unwrap_err()),
        (
            "test.bool_true",
            file.get_f32("test.bool_true").unwrap_err(),
        ),
        (
            "test.arr_i32",
            file.get_str_array("test.arr_i32").unwrap_err(),
        ),
        (
            "test.arr_str",
            file.get_i32_array("test.arr_str").unwrap_err(),
        ),
        ("missing.key", file.get_u32("missing.key").unwrap_err()),
        (
            "missing.key",
            file.get_str_array("missing.key").unwrap_err(),
        ),
    ];
    for (key, err) in failures {
        let msg = err.to_string();
        assert!(matches!(err, HookLensError::Format { .. }), "{key}: {msg}");
        assert!(
            msg.contains(key) && msg.contains("synthetic.gguf"),
            "{key}: {msg}"
        );
    }
}

#[test]
fn tensor_errors_name_the_tensor() {
    let file = open_fixture("synthetic.gguf");
    let err = file.tensor_f32("no.such.tensor").unwrap_err();
    assert!(matches!(err, HookLensError::MissingTensor { .. }), "{err}");
    assert!(err.to_string().contains("no.such.tensor"));
    assert!(file.tensor_info("no.such.tensor").is_none());
    let raw = file.tensor_data("t.q4_1").unwrap();
    assert_eq!(raw.len(), 3 * 160 / 32 * 20);
}

#[test]
fn dequantize_checks_lengths_and_types() {
    let data = [0u8; 34];
    let mut out = [0f32; 32];
    dequantize(GgmlType::Q8_0, &data, 32, &mut out).unwrap();
    assert!(dequantize(GgmlType::Q8_0, &data[..33], 32, &mut out).is_err());
    assert!(dequantize(GgmlType::Q8_0, &data, 31, &mut out[..31]).is_err());
    assert!(dequantize(GgmlType::Q8_0, &data, 32, &mut out[..31]).is_err());
    let err = dequantize(GgmlType::Q5_K, &[0u8; 176], 256, &mut [0f32; 256]).unwrap_err();
    assert!(matches!(err, HookLensError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("Q5_K"));
    assert!(dequantize(GgmlType::F32, &[], 0, &mut []).is_ok());
}

#[test]
fn ggml_type_table() {
    let expected = [
        (0, GgmlType::F32, 1, 4),
        (1, GgmlType::F16, 1, 2),
        (2, GgmlType::Q4_0, 32, 18),
        (3, GgmlType::Q4_1, 32, 20),
        (8, GgmlType::Q8_0, 32, 34),
        (12, GgmlType::Q4_K, 256, 144),
        (14, GgmlType::Q6_K, 256, 210),
        (30, GgmlType::BF16, 1, 2),
    ];
    for (id, ty, block, size) in expected {
        assert_eq!(GgmlType::from_id(id), Some(ty));
        assert_eq!((ty.block_size(), ty.type_size()), (block, size), "{ty}");
        assert!(ty.can_dequantize());
    }
    for id in [4, 5, 31, 32, 33, 36, 1000, u32::MAX] {
        assert_eq!(GgmlType::from_id(id), None, "id {id}");
    }
    assert!(!GgmlType::Q5_0.can_dequantize());
    assert_eq!(GgmlType::Q4_K.bytes_for(512), Some(288));
    assert_eq!(GgmlType::Q4_K.bytes_for(100), None);
}

#[test]
fn metadata_entries_keep_file_order() {
    let file = open_fixture("synthetic.gguf");
    let keys: Vec<&str> = file.metadata_entries().map(|(k, _)| k).collect();
    assert_eq!(keys[0], "general.architecture");
    assert_eq!(keys[1], "test.u8");
    assert!(matches!(file.metadata("test.u8"), Some(GgufValue::U8(200))));
}
