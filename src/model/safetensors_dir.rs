//! Memory-mapped safetensors checkpoints (one file, or shards listed by
//! `model.safetensors.index.json`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::weights::TensorSource;
use crate::error::{HookLensError, Result};

/// One mapped safetensors file.
struct MappedFile {
    path: PathBuf,
    mmap: Mmap,
}

/// The safetensors weights of an HF checkpoint directory.
pub struct SafetensorsDir {
    files: Vec<MappedFile>,
    /// Tensor name -> index into `files`.
    index: HashMap<String, usize>,
    /// The file named in messages (the single file, or the shard index).
    display_path: PathBuf,
}

fn map_file(path: &Path) -> Result<MappedFile> {
    let file = File::open(path).map_err(|e| HookLensError::io(path, e))?;
    // SAFETY: the file is opened read-only and the map is only read; hooklens does not modify
    // checkpoint files while a model is loaded (a concurrent external writer is out of contract).
    let mmap = unsafe { Mmap::map(&file) }.map_err(|e| HookLensError::io(path, e))?;
    SafeTensors::deserialize(&mmap).map_err(|e| {
        HookLensError::format(
            path,
            format!("not a valid safetensors file (truncated or corrupt?): {e}"),
        )
    })?;
    Ok(MappedFile {
        path: path.to_path_buf(),
        mmap,
    })
}

impl SafetensorsDir {
    /// Opens `model.safetensors` or the shards of `model.safetensors.index.json` in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        if single.exists() {
            return Self::open_file(&single);
        }
        if !index_path.exists() {
            return Err(HookLensError::format(
                dir,
                "no model.safetensors or model.safetensors.index.json in this directory",
            ));
        }
        let text =
            std::fs::read_to_string(&index_path).map_err(|e| HookLensError::io(&index_path, e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| HookLensError::format(&index_path, format!("not valid JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| HookLensError::format(&index_path, "no `weight_map` object"))?;
        let mut files: Vec<MappedFile> = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut index = HashMap::new();
        for (tensor, file) in map {
            let file = file.as_str().ok_or_else(|| {
                HookLensError::format(&index_path, "weight_map values must be file names")
            })?;
            let i = match by_name.get(file) {
                Some(&i) => i,
                None => {
                    files.push(map_file(&dir.join(file))?);
                    by_name.insert(file.to_string(), files.len() - 1);
                    files.len() - 1
                }
            };
            index.insert(tensor.clone(), i);
        }
        Ok(SafetensorsDir {
            files,
            index,
            display_path: index_path,
        })
    }

    /// Opens a single safetensors file.
    pub fn open_file(path: &Path) -> Result<Self> {
        let file = map_file(path)?;
        let names: Vec<String> = SafeTensors::deserialize(&file.mmap)
            .map_err(|e| HookLensError::format(path, e.to_string()))?
            .names()
            .into_iter()
            .map(str::to_string)
            .collect();
        Ok(SafetensorsDir {
            files: vec![file],
            index: names.into_iter().map(|n| (n, 0)).collect(),
            display_path: path.to_path_buf(),
        })
    }

    /// The files the tensors are read from.
    pub fn file_paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    /// The names of every tensor.
    pub fn names(&self) -> Vec<&str> {
        self.index.keys().map(String::as_str).collect()
    }
}

impl TensorSource for SafetensorsDir {
    fn path(&self) -> &Path {
        &self.display_path
    }

    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    fn read_f32(&self, name: &str) -> Result<(Cow<'_, [f32]>, Vec<usize>)> {
        let file = self
            .index
            .get(name)
            .map(|&i| &self.files[i])
            .ok_or_else(|| HookLensError::MissingTensor {
                path: self.display_path.clone(),
                name: name.to_string(),
            })?;
        let st = SafeTensors::deserialize(&file.mmap)
            .map_err(|e| HookLensError::format(&file.path, e.to_string()))?;
        let view = st
            .tensor(name)
            .map_err(|e| HookLensError::format(&file.path, format!("tensor `{name}`: {e}")))?;
        let bytes: &[u8] = view.data();
        if view.dtype() == Dtype::F32 && cfg!(target_endian = "little") {
            // The mapped bytes are the values: no copy, when they are 4-byte aligned.
            if let Ok(values) = bytemuck::try_cast_slice::<u8, f32>(bytes) {
                return Ok((Cow::Borrowed(values), view.shape().to_vec()));
            }
        }
        let data = convert_to_f32(view.dtype(), bytes).ok_or_else(|| {
            HookLensError::unsupported(format!(
                "{}: tensor `{name}` has dtype {:?} (hooklens reads F32, F16, BF16, F64)",
                file.path.display(),
                view.dtype()
            ))
        })?;
        Ok((Cow::Owned(data), view.shape().to_vec()))
    }
}

/// Little-endian tensor bytes of `dtype` as f32 (on huge pages when large); `None` for a
/// dtype hooklens does not read.
fn convert_to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    let size = match dtype {
        Dtype::F32 => 4,
        Dtype::F16 | Dtype::BF16 => 2,
        Dtype::F64 => 8,
        _ => return None,
    };
    let mut data: Vec<f32> = crate::backend::host::zeroed_vec(bytes.len() / size);
    match dtype {
        Dtype::F32 if cfg!(target_endian = "little") => {
            // The file's bytes are the values: one copy (the map need not be 4-byte aligned,
            // the Vec is).
            let n = data.len() * 4;
            bytemuck::cast_slice_mut::<f32, u8>(&mut data).copy_from_slice(&bytes[..n]);
        }
        Dtype::F32 => {
            for (x, c) in data.iter_mut().zip(bytes.chunks_exact(4)) {
                *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Dtype::F16 => {
            for (x, c) in data.iter_mut().zip(bytes.chunks_exact(2)) {
                *x = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        Dtype::BF16 => {
            for (x, c) in data.iter_mut().zip(bytes.chunks_exact(2)) {
                *x = half::bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        _ => {
            for (x, c) in data.iter_mut().zip(bytes.chunks_exact(8)) {
                *x = f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32;
            }
        }
    }
    Some(data)
}
