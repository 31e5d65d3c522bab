//! Shared helpers for the integration tests: reading the reference fixtures written by
//! `scripts/golden/make_fixtures.py` (TransformerLens / HF transformers outputs).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hooklens::{Tensor, TokenBatch};
use safetensors::{Dtype, SafeTensors};

/// The fixtures directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A reference file: f32 tensors by name, the tokens, and the string metadata.
pub struct Reference {
    pub tensors: HashMap<String, Tensor>,
    pub tokens: TokenBatch,
    pub metadata: HashMap<String, String>,
}

impl Reference {
    pub fn tensor(&self, name: &str) -> &Tensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("reference has no tensor {name}"))
    }

    pub fn meta(&self, key: &str) -> &str {
        self.metadata
            .get(key)
            .unwrap_or_else(|| panic!("reference has no metadata {key}"))
    }
}

/// Reads `<dir>/reference.safetensors`.
pub fn load_reference(dir: &Path) -> Reference {
    load_reference_file(&dir.join("reference.safetensors"))
}

/// Reads a reference file written by the generator scripts.
pub fn load_reference_file(path: &Path) -> Reference {
    let bytes = std::fs::read(path).expect("read reference");
    let (_, meta) = SafeTensors::read_metadata(&bytes).expect("reference header");
    let metadata = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes).expect("reference file");
    let mut tensors = HashMap::new();
    let mut tokens = None;
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        match view.dtype() {
            Dtype::F32 => {
                let data = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                tensors.insert(name, Tensor::new(data, shape).unwrap());
            }
            Dtype::I64 => {
                assert_eq!(name, "tokens");
                let ids: Vec<u32> = view
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
                    .collect();
                let rows: Vec<Vec<u32>> = ids.chunks(shape[1]).map(<[u32]>::to_vec).collect();
                tokens = Some(TokenBatch::from_rows(&rows).unwrap());
            }
            other => panic!("unexpected dtype {other:?} for {name}"),
        }
    }
    Reference {
        tensors,
        tokens: tokens.expect("reference has tokens"),
        metadata,
    }
}

/// Max |a - b| over two tensors of the same shape; equal infinities count as 0.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape, b.shape, "shape mismatch");
    a.data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| {
            if x == y {
                0.0
            } else if x.is_nan() || y.is_nan() {
                f32::INFINITY
            } else {
                (x - y).abs()
            }
        })
        .fold(0.0, f32::max)
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hooklens-test-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies every file of `src` into a fresh temp dir.
pub fn copy_fixture(name: &str, tag: &str) -> PathBuf {
    let dst = temp_dir(tag);
    for entry in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    dst
}

/// The string metadata of a safetensors file.
pub fn read_metadata(path: &Path) -> HashMap<String, String> {
    let bytes = std::fs::read(path).expect("read safetensors");
    let (_, meta) = SafeTensors::read_metadata(&bytes).expect("safetensors header");
    meta.metadata().clone().unwrap_or_default()
}

/// Runs the `hooklens` binary (one thread, for repeatable timing) and returns
/// (success, stdout, stderr).
pub fn hooklens(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hooklens"))
        .args(args)
        .env("HOOKLENS_THREADS", "1")
        .output()
        .expect("run hooklens");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The f32 (and int32, as f32) tensors of a safetensors file (an activation cache written by
/// hooklens), by name.
pub fn read_tensors(path: &Path) -> HashMap<String, Tensor> {
    let bytes = std::fs::read(path).expect("read safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors file");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let int = match view.dtype() {
                Dtype::F32 => false,
                Dtype::I32 => true,
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| {
                    let c = [c[0], c[1], c[2], c[3]];
                    if int {
                        i32::from_le_bytes(c) as f32
                    } else {
                        f32::from_le_bytes(c)
                    }
                })
                .collect();
            (name, Tensor::new(data, view.shape().to_vec()).unwrap())
        })
        .collect()
}

/// The logits of a run with the same built-in interventions in every batch row.
pub fn logits_with_interventions(
    model: &hooklens::Model,
    tokens: &TokenBatch,
    ivs: &[hooklens::hooks::Intervention],
) -> hooklens::Result<Tensor> {
    let rows: Vec<(usize, hooklens::hooks::Intervention)> = (0..tokens.batch())
        .flat_map(|b| ivs.iter().map(move |iv| (b, iv.clone())))
        .collect();
    let (out, _) = model.run_with_interventions(
        hooklens::Input::Tokens(tokens),
        None,
        None,
        &rows,
        &hooklens::RunOptions::default(),
    )?;
    Ok(out.logits.expect("logits"))
}

/// Greedy generation of `max_new` tokens that does not stop at EOS, with or without the KV
/// cache.
pub fn greedy(max_new: usize, kv_cache: bool) -> hooklens::model::generate::GenerateOptions {
    hooklens::model::generate::GenerateOptions {
        max_new,
        stop_at_eos: false,
        kv_cache,
        ..Default::default()
    }
}
