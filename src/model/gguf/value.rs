//! GGUF metadata values: the thirteen value types, typed arrays, and their parsing.

use super::cursor::Cursor;
use crate::error::Result;

/// Nested arrays deeper than this are rejected (llama.cpp itself reads no nested arrays); the
/// limit keeps a crafted file from exhausting the stack.
const MAX_ARRAY_DEPTH: usize = 4;

/// One metadata value of a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// GGUF type 0.
    U8(u8),
    /// GGUF type 1.
    I8(i8),
    /// GGUF type 2.
    U16(u16),
    /// GGUF type 3.
    I16(i16),
    /// GGUF type 4.
    U32(u32),
    /// GGUF type 5.
    I32(i32),
    /// GGUF type 6.
    F32(f32),
    /// GGUF type 7 (any non-zero byte reads as `true`).
    Bool(bool),
    /// GGUF type 8: a UTF-8 string.
    String(String),
    /// GGUF type 9: a homogeneous array.
    Array(GgufArray),
    /// GGUF type 10.
    U64(u64),
    /// GGUF type 11.
    I64(i64),
    /// GGUF type 12.
    F64(f64),
}

/// A homogeneous GGUF array, stored with its element type so that large arrays (vocabularies,
/// scores) cost no more memory than the file spends on them.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufArray {
    /// Array of `u8`.
    U8(Vec<u8>),
    /// Array of `i8`.
    I8(Vec<i8>),
    /// Array of `u16`.
    U16(Vec<u16>),
    /// Array of `i16`.
    I16(Vec<i16>),
    /// Array of `u32`.
    U32(Vec<u32>),
    /// Array of `i32`.
    I32(Vec<i32>),
    /// Array of `f32`.
    F32(Vec<f32>),
    /// Array of `bool`.
    Bool(Vec<bool>),
    /// Array of strings.
    String(Vec<String>),
    /// Array of arrays.
    Array(Vec<GgufArray>),
    /// Array of `u64`.
    U64(Vec<u64>),
    /// Array of `i64`.
    I64(Vec<i64>),
    /// Array of `f64`.
    F64(Vec<f64>),
}

impl GgufValue {
    /// The GGUF name of this value's type, for messages (`"u32"`, `"string"`, `"array of f32"`).
    pub fn type_name(&self) -> String {
        match self {
            GgufValue::U8(_) => "u8".into(),
            GgufValue::I8(_) => "i8".into(),
            GgufValue::U16(_) => "u16".into(),
            GgufValue::I16(_) => "i16".into(),
            GgufValue::U32(_) => "u32".into(),
            GgufValue::I32(_) => "i32".into(),
            GgufValue::F32(_) => "f32".into(),
            GgufValue::Bool(_) => "bool".into(),
            GgufValue::String(_) => "string".into(),
            GgufValue::Array(a) => format!("array of {}", a.element_type_name()),
            GgufValue::U64(_) => "u64".into(),
            GgufValue::I64(_) => "i64".into(),
            GgufValue::F64(_) => "f64".into(),
        }
    }

    /// The value as a signed 128-bit integer if it is any integer type (not bool, not float).
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            GgufValue::U8(v) => v.into(),
            GgufValue::I8(v) => v.into(),
            GgufValue::U16(v) => v.into(),
            GgufValue::I16(v) => v.into(),
            GgufValue::U32(v) => v.into(),
            GgufValue::I32(v) => v.into(),
            GgufValue::U64(v) => v.into(),
            GgufValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as `f64` if it is a float type (`f32` or `f64`).
    pub fn as_float(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a string slice if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a bool if it is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The value as an array if it is one.
    pub fn as_array(&self) -> Option<&GgufArray> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl GgufArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            GgufArray::U8(v) => v.len(),
            GgufArray::I8(v) => v.len(),
            GgufArray::U16(v) => v.len(),
            GgufArray::I16(v) => v.len(),
            GgufArray::U32(v) => v.len(),
            GgufArray::I32(v) => v.len(),
            GgufArray::F32(v) => v.len(),
            GgufArray::Bool(v) => v.len(),
            GgufArray::String(v) => v.len(),
            GgufArray::Array(v) => v.len(),
            GgufArray::U64(v) => v.len(),
            GgufArray::I64(v) => v.len(),
            GgufArray::F64(v) => v.len(),
        }
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The GGUF name of the element type, for messages.
    pub fn element_type_name(&self) -> &'static str {
        match self {
            GgufArray::U8(_) => "u8",
            GgufArray::I8(_) => "i8",
            GgufArray::U16(_) => "u16",
            GgufArray::I16(_) => "i16",
            GgufArray::U32(_) => "u32",
            GgufArray::I32(_) => "i32",
            GgufArray::F32(_) => "f32",
            GgufArray::Bool(_) => "bool",
            GgufArray::String(_) => "string",
            GgufArray::Array(_) => "array",
            GgufArray::U64(_) => "u64",
            GgufArray::I64(_) => "i64",
            GgufArray::F64(_) => "f64",
        }
    }
}

/// The smallest number of bytes one value of GGUF type `ty` occupies, or `None` for an
/// unknown type id.
fn min_encoded_size(ty: u32) -> Option<usize> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        8 => 8,     // u64 length, possibly empty
        9 => 4 + 8, // element type + count, possibly empty
        _ => return None,
    })
}

/// Reads a GGUF value type id and checks it is one of the thirteen known types.
pub(super) fn read_type(cur: &mut Cursor<'_>, what: &str) -> Result<u32> {
    let ty = cur.u32(what)?;
    if min_encoded_size(ty).is_none() {
        return Err(cur.error(format!(
            "{what} is {ty}, which is not a GGUF value type (0..=12)"
        )));
    }
    Ok(ty)
}

/// Reads one value of type `ty` (already validated by [`read_type`]); `what` names it for errors.
pub(super) fn read_value(cur: &mut Cursor<'_>, ty: u32, what: &str) -> Result<GgufValue> {
    Ok(match ty {
        0 => GgufValue::U8(cur.u8(what)?),
        1 => GgufValue::I8(cur.u8(what)? as i8),
        2 => GgufValue::U16(cur.u16(what)?),
        3 => GgufValue::I16(cur.u16(what)? as i16),
        4 => GgufValue::U32(cur.u32(what)?),
        5 => GgufValue::I32(cur.u32(what)? as i32),
        6 => GgufValue::F32(f32::from_bits(cur.u32(what)?)),
        7 => GgufValue::Bool(cur.u8(what)? != 0),
        8 => GgufValue::String(cur.string(what)?),
        9 => GgufValue::Array(read_array(cur, what, 1)?),
        10 => GgufValue::U64(cur.u64(what)?),
        11 => GgufValue::I64(cur.u64(what)? as i64),
        12 => GgufValue::F64(f64::from_bits(cur.u64(what)?)),
        _ => return Err(cur.error(format!("{what} has unknown value type {ty}"))),
    })
}

/// Reads an array header (element type, count) and its elements; `depth` counts nesting.
fn read_array(cur: &mut Cursor<'_>, what: &str, depth: usize) -> Result<GgufArray> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(cur.error(format!(
            "{what} nests arrays more than {MAX_ARRAY_DEPTH} deep"
        )));
    }
    let elem_ty = read_type(cur, &format!("element type of {what}"))?;
    let count = cur.len(&format!("element count of {what}"))?;
    // Checked above: `min_encoded_size` knows every type `read_type` accepts.
    let min_size = min_encoded_size(elem_ty).unwrap_or(1);
    cur.check_count(count, min_size, &format!("element count of {what}"))?;

    fn collect<T>(
        cur: &mut Cursor<'_>,
        count: usize,
        mut read: impl FnMut(&mut Cursor<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(read(cur)?);
        }
        Ok(out)
    }

    Ok(match elem_ty {
        0 => GgufArray::U8(cur.take(count, what)?.to_vec()),
        1 => GgufArray::I8(cur.take(count, what)?.iter().map(|&b| b as i8).collect()),
        2 => GgufArray::U16(collect(cur, count, |c| c.u16(what))?),
        3 => GgufArray::I16(collect(cur, count, |c| Ok(c.u16(what)? as i16))?),
        4 => GgufArray::U32(collect(cur, count, |c| c.u32(what))?),
        5 => GgufArray::I32(collect(cur, count, |c| Ok(c.u32(what)? as i32))?),
        6 => GgufArray::F32(collect(cur, count, |c| Ok(f32::from_bits(c.u32(what)?)))?),
        7 => GgufArray::Bool(cur.take(count, what)?.iter().map(|&b| b != 0).collect()),
        8 => GgufArray::String(collect(cur, count, |c| c.string(what))?),
        9 => GgufArray::Array(collect(cur, count, |c| read_array(c, what, depth + 1))?),
        10 => GgufArray::U64(collect(cur, count, |c| c.u64(what))?),
        11 => GgufArray::I64(collect(cur, count, |c| Ok(c.u64(what)? as i64))?),
        12 => GgufArray::F64(collect(cur, count, |c| Ok(f64::from_bits(c.u64(what)?)))?),
        _ => return Err(cur.error(format!("{what} has unknown element type {elem_ty}"))),
    })
}
