//! GGUF files: parsing, dequantisation and the embedded tokenizer.
//!
//! [`GgufFile::open`] memory-maps a GGUF v2 or v3 file, parses its header, metadata and tensor
//! table, and validates every tensor's extent against the file, without copying tensor data.
//! Tensors are dequantised to `f32` on request ([`GgufFile::tensor_f32`]).
//!
//! File layout (little-endian): magic `GGUF`, u32 version, u64 tensor count, u64 metadata
//! count, metadata key/value pairs, tensor infos (name, u32 n_dims, u64 dims innermost first,
//! u32 ggml type, u64 offset), padding to `general.alignment` (default 32), then the data
//! section; tensor offsets are relative to its start.

mod cursor;
pub mod dequant;
pub mod tokenizer;
mod value;

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{HookLensError, Result};
use cursor::Cursor;
pub use dequant::{dequantize, GgmlType};
pub use tokenizer::{tokenizer_from_gguf, GgufTokenizer};
pub use value::{GgufArray, GgufValue};

/// The four magic bytes every GGUF file starts with.
const MAGIC: &[u8; 4] = b"GGUF";
/// Alignment of the data section when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: usize = 32;
/// Most dimensions a ggml tensor can have.
const MAX_DIMS: usize = 4;
/// Smallest encoding of one metadata pair: key length, value type, one byte of value.
const MIN_KV_BYTES: usize = 8 + 4 + 1;
/// Smallest encoding of one tensor info: name length, n_dims, type, offset.
const MIN_TENSOR_INFO_BYTES: usize = 8 + 4 + 4 + 8;

/// Where one tensor lives in a GGUF file and how it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in GGUF order: innermost (contiguous) first.
    pub dims: Vec<usize>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Byte offset of the data, relative to the start of the data section.
    pub offset: usize,
    /// Number of bytes the data occupies (type size x blocks).
    pub n_bytes: usize,
}

impl GgufTensorInfo {
    /// The shape in row-major (numpy / PyTorch) order: `dims` reversed, outermost first.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }

    /// Total number of elements.
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }
}

/// An open, validated GGUF file. Tensor data stays in the memory map until asked for.
pub struct GgufFile {
    path: PathBuf,
    mmap: Arc<Mmap>,
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<GgufTensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: usize,
    data_start: usize,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_start", &self.data_start)
            .finish()
    }
}

impl GgufFile {
    /// Opens and validates the GGUF file at `path`.
    ///
    /// Fails with [`HookLensError::Io`] when the file cannot be read, [`HookLensError::Format`]
    /// when it is not a well-formed GGUF v2/v3 file (truncated, corrupt counts or lengths,
    /// tensors outside the file or overlapping), and [`HookLensError::Unsupported`] for other
    /// GGUF versions or unknown ggml tensor types.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let file = File::open(path).map_err(|e| HookLensError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| HookLensError::io(path, e))?
            .len();
        if len < 4 {
            return Err(HookLensError::format(
                path,
                format!("not a GGUF file: only {len} bytes long"),
            ));
        }
        // SAFETY: the map is read-only and lives as long as `GgufFile`, which hands out only
        // shared borrows of it. Like every mmap-based loader we rely on the file not being
        // truncated or rewritten by another process while it is open; hooklens never writes
        // model files.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| HookLensError::io(path, e))?;
        Self::parse(path.to_path_buf(), mmap)
    }

    /// Parses the header, metadata and tensor table of a mapped file.
    fn parse(path: PathBuf, mmap: Mmap) -> Result<GgufFile> {
        let mut cur = Cursor::new(&mmap, &path);
        let magic = cur.take(4, "magic")?;
        if magic != MAGIC {
            return Err(cur.error(format!(
                "not a GGUF file: starts with {magic:02x?}, expected the magic bytes \"GGUF\""
            )));
        }
        let version = cur.u32("version")?;
        match version {
            2 | 3 => {}
            1 => {
                return Err(HookLensError::unsupported(format!(
                    "{}: GGUF version 1 (only versions 2 and 3 are read; re-convert the model \
                     with a current llama.cpp)",
                    path.display()
                )))
            }
            v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
                return Err(HookLensError::unsupported(format!(
                    "{}: big-endian GGUF files (only little-endian files are read)",
                    path.display()
                )))
            }
            v => {
                return Err(HookLensError::unsupported(format!(
                    "{}: GGUF version {v} (only versions 2 and 3 are read)",
                    path.display()
                )))
            }
        }
        let tensor_count = cur.len("tensor count")?;
        let kv_count = cur.len("metadata count")?;
        cur.check_count(kv_count, MIN_KV_BYTES, "metadata count")?;

        let mut metadata = Vec::with_capacity(kv_count);
        let mut metadata_index = HashMap::with_capacity(kv_count);
        for i in 0..kv_count {
            let key = cur.string(&format!("key of metadata entry {i}"))?;
            let what = format!("value of metadata key `{key}`");
            let ty = value::read_type(&mut cur, &format!("type of metadata key `{key}`"))?;
            let value = value::read_value(&mut cur, ty, &what)?;
            if metadata_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(cur.error(format!("metadata key `{key}` appears twice")));
            }
            metadata.push((key, value));
        }

        let alignment = match metadata_index.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(&i) => alignment_from(&metadata[i].1).ok_or_else(|| {
                cur.error(format!(
                    "metadata key `general.alignment` must be a power of two up to 2^30, found \
                     {:?}",
                    metadata[i].1
                ))
            })?,
        };

        cur.check_count(tensor_count, MIN_TENSOR_INFO_BYTES, "tensor count")?;
        let mut tensors = Vec::with_capacity(tensor_count);
        let mut tensor_index = HashMap::with_capacity(tensor_count);
        for i in 0..tensor_count {
            let info = read_tensor_info(&mut cur, i)?;
            if tensor_index
                .insert(info.name.clone(), tensors.len())
                .is_some()
            {
                return Err(cur.error(format!("tensor `{}` appears twice", info.name)));
            }
            tensors.push(info);
        }

        // The data section starts at the next multiple of the alignment.
        let header_end = cur.pos();
        let data_start = header_end.div_ceil(alignment) * alignment;
        let file_len = mmap.len();
        check_tensor_extents(&path, &tensors, data_start, file_len)?;

        Ok(GgufFile {
            path,
            mmap: Arc::new(mmap),
            version,
            metadata,
            metadata_index,
            tensors,
            tensor_index,
            alignment,
            data_start,
        })
    }

    /// The path this file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data-section alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Byte offset of the data section from the start of the file.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    /// All metadata pairs in file order.
    pub fn metadata_entries(&self) -> impl Iterator<Item = (&str, &GgufValue)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The metadata value stored under `key`, if any.
    pub fn metadata(&self, key: &str) -> Option<&GgufValue> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The value under `key`, or a format error naming the missing key.
    fn require(&self, key: &str) -> Result<&GgufValue> {
        self.metadata(key).ok_or_else(|| {
            HookLensError::format(&self.path, format!("metadata key `{key}` is missing"))
        })
    }

    /// A format error saying `key` holds `value` where `expected` was needed.
    fn wrong_type(&self, key: &str, value: &GgufValue, expected: &str) -> HookLensError {
        HookLensError::format(
            &self.path,
            format!(
                "metadata key `{key}` holds a {}, expected {expected}",
                value.type_name()
            ),
        )
    }

    /// An integer under `key` converted to `T`, accepting any GGUF integer type whose value
    /// fits.
    fn get_int<T: TryFrom<i128>>(&self, key: &str, expected: &str) -> Result<T> {
        let value = self.require(key)?;
        let int = value
            .as_integer()
            .ok_or_else(|| self.wrong_type(key, value, expected))?;
        T::try_from(int).map_err(|_| {
            HookLensError::format(
                &self.path,
                format!("metadata key `{key}` is {int}, which does not fit {expected}"),
            )
        })
    }

    /// The integer under `key` as `u32` (any integer type whose value fits is accepted).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get_int(key, "an unsigned 32-bit integer")
    }

    /// The integer under `key` as `u64` (any integer type whose value fits is accepted).
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get_int(key, "an unsigned 64-bit integer")
    }

    /// The integer under `key` as `usize` (any integer type whose value fits is accepted).
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        self.get_int(key, "a non-negative integer")
    }

    /// The integer under `key` as `i32` (any integer type whose value fits is accepted).
    pub fn get_i32(&self, key: &str) -> Result<i32> {
        self.get_int(key, "a signed 32-bit integer")
    }

    /// The float under `key` as `f32` (an `f64` value is rounded to `f32`).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let value = self.require(key)?;
        match value {
            GgufValue::F32(v) => Ok(*v),
            GgufValue::F64(v) => Ok(*v as f32),
            _ => Err(self.wrong_type(key, value, "a float")),
        }
    }

    /// The float under `key` as `f64`.
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let value = self.require(key)?;
        value
            .as_float()
            .ok_or_else(|| self.wrong_type(key, value, "a float"))
    }

    /// The bool under `key`.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let value = self.require(key)?;
        value
            .as_bool()
            .ok_or_else(|| self.wrong_type(key, value, "a bool"))
    }

    /// The string under `key`.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let value = self.require(key)?;
        value
            .as_str()
            .ok_or_else(|| self.wrong_type(key, value, "a string"))
    }

    /// The array under `key`, of any element type.
    pub fn get_array(&self, key: &str) -> Result<&GgufArray> {
        let value = self.require(key)?;
        value
            .as_array()
            .ok_or_else(|| self.wrong_type(key, value, "an array"))
    }

    /// The array of strings under `key`.
    pub fn get_str_array(&self, key: &str) -> Result<&[String]> {
        let value = self.require(key)?;
        match value {
            GgufValue::Array(GgufArray::String(v)) => Ok(v),
            _ => Err(self.wrong_type(key, value, "an array of string")),
        }
    }

    /// The array of `i32` under `key`.
    pub fn get_i32_array(&self, key: &str) -> Result<&[i32]> {
        let value = self.require(key)?;
        match value {
            GgufValue::Array(GgufArray::I32(v)) => Ok(v),
            _ => Err(self.wrong_type(key, value, "an array of i32")),
        }
    }

    /// The array of `f32` under `key`.
    pub fn get_f32_array(&self, key: &str) -> Result<&[f32]> {
        let value = self.require(key)?;
        match value {
            GgufValue::Array(GgufArray::F32(v)) => Ok(v),
            _ => Err(self.wrong_type(key, value, "an array of f32")),
        }
    }

    /// `general.architecture`, e.g. `"llama"`.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// Tensor names in file order.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|t| t.name.as_str())
    }

    /// All tensor infos in file order.
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// The info of tensor `name`, if present.
    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The info of tensor `name`, or [`HookLensError::MissingTensor`].
    fn require_tensor(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.tensor_info(name)
            .ok_or_else(|| HookLensError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            })
    }

    /// The raw stored bytes of tensor `name`, borrowed from the memory map.
    pub fn tensor_data(&self, name: &str) -> Result<&[u8]> {
        let info = self.require_tensor(name)?;
        // In bounds: `check_tensor_extents` validated every tensor at open.
        let start = self.data_start + info.offset;
        Ok(&self.mmap[start..start + info.n_bytes])
    }

    /// The file's mapping, shared: it stays alive as long as the handle (quantised matrices
    /// read their blocks from it after the file is closed).
    pub fn shared_map(&self) -> Arc<Mmap> {
        Arc::clone(&self.mmap)
    }

    /// The byte range of tensor `name` in [`GgufFile::shared_map`].
    pub fn tensor_range(&self, name: &str) -> Result<Range<usize>> {
        let info = self.require_tensor(name)?;
        // In bounds: `check_tensor_extents` validated every tensor at open.
        let start = self.data_start + info.offset;
        Ok(start..start + info.n_bytes)
    }

    /// Tensor `name` dequantised to `f32`, in row-major order (the order of [`shape`]).
    ///
    /// [`shape`]: GgufTensorInfo::shape
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let info = self.require_tensor(name)?;
        if !info.ggml_type.can_dequantize() {
            return Err(HookLensError::unsupported(format!(
                "{}: tensor `{name}` is stored as ggml type {}, which hooklens cannot dequantise \
                 (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)",
                self.path.display(),
                info.ggml_type
            )));
        }
        let data = self.tensor_data(name)?;
        let mut out: Vec<f32> = crate::backend::host::zeroed_vec(info.n_elements());
        dequantize(info.ggml_type, data, out.len(), &mut out)
            .map_err(|e| HookLensError::format(&self.path, format!("tensor `{name}`: {e}")))?;
        Ok(out)
    }
}

/// The data alignment `general.alignment` holds, if it is a power of two up to 2^30.
fn alignment_from(value: &GgufValue) -> Option<usize> {
    let a = value.as_integer()?;
    let valid = a > 0 && a <= 1 << 30 && (a as u128).is_power_of_two();
    valid.then_some(a as usize)
}

/// Reads tensor info number `index`, validating dims and type.
fn read_tensor_info(cur: &mut Cursor<'_>, index: usize) -> Result<GgufTensorInfo> {
    let name = cur.string(&format!("name of tensor {index}"))?;
    let n_dims = cur.u32(&format!("n_dims of tensor `{name}`"))? as usize;
    if n_dims > MAX_DIMS {
        return Err(cur.error(format!(
            "tensor `{name}` claims {n_dims} dimensions; ggml tensors have at most {MAX_DIMS}"
        )));
    }
    let mut dims = Vec::with_capacity(n_dims);
    for _ in 0..n_dims {
        dims.push(cur.len(&format!("dimensions of tensor `{name}`"))?);
    }
    let type_id = cur.u32(&format!("type of tensor `{name}`"))?;
    let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
        HookLensError::unsupported(format!(
            "{}: tensor `{name}` has unknown ggml type id {type_id}",
            cur.path().display()
        ))
    })?;
    let offset = cur.len(&format!("data offset of tensor `{name}`"))?;

    let n_elements = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            cur.error(format!(
                "tensor `{name}` has dims {dims:?}, too many elements"
            ))
        })?;
    let inner = dims.first().copied().unwrap_or(1);
    if !inner.is_multiple_of(ggml_type.block_size()) {
        return Err(cur.error(format!(
            "tensor `{name}` has innermost dimension {inner}, which is not a multiple of the \
             {ggml_type} block size {}",
            ggml_type.block_size()
        )));
    }
    let n_bytes = ggml_type.bytes_for(n_elements).ok_or_else(|| {
        cur.error(format!(
            "tensor `{name}` of type {ggml_type} with dims {dims:?} has an impossible byte size"
        ))
    })?;
    Ok(GgufTensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        n_bytes,
    })
}

/// Checks every tensor lies inside the file and no two tensors overlap (which would mean a
/// byte size that disagrees with type and shape).
fn check_tensor_extents(
    path: &Path,
    tensors: &[GgufTensorInfo],
    data_start: usize,
    file_len: usize,
) -> Result<()> {
    let mut extents = Vec::with_capacity(tensors.len());
    for t in tensors {
        let end = data_start
            .checked_add(t.offset)
            .and_then(|start| start.checked_add(t.n_bytes));
        match end {
            Some(end) if end <= file_len => extents.push((t.offset, t.offset + t.n_bytes, t)),
            _ => {
                return Err(HookLensError::format(
                    path,
                    format!(
                        "tensor `{}` ({} {:?}, {} bytes at data offset {}) extends past the end \
                         of the file ({file_len} bytes, data section at {data_start}): the file \
                         is truncated or corrupt",
                        t.name, t.ggml_type, t.dims, t.n_bytes, t.offset
                    ),
                ))
            }
        }
    }
    extents.sort_by_key(|&(start, end, _)| (start, end));
    // The tensor reaching furthest so far; any non-empty tensor starting before its end overlaps.
    let mut furthest: Option<(usize, &GgufTensorInfo)> = None;
    for &(start, end, t) in &extents {
        if t.n_bytes == 0 {
            continue;
        }
        if let Some((reach, owner)) = furthest {
            if start < reach {
                return Err(HookLensError::format(
                    path,
                    format!(
                        "tensors `{}` and `{}` overlap (`{}` is {} {:?} = {} bytes at data \
                         offset {}, `{}` starts at {start}): a tensor's size disagrees with its \
                         type and shape",
                        owner.name,
                        t.name,
                        owner.name,
                        owner.ggml_type,
                        owner.dims,
                        owner.n_bytes,
                        owner.offset,
                        t.name
                    ),
                ));
            }
        }
        if furthest.is_none_or(|(reach, _)| end > reach) {
            furthest = Some((end, t));
        }
    }
    Ok(())
}
