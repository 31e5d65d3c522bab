//! A hand-rolled GGUF writer for tests: every field can be set, including to bad values.

use super::temp_file;
use hooklens::model::gguf::GgufFile;

/// A hand-rolled GGUF writer, so that every field can be set to a bad value.
#[derive(Default)]
pub struct Gguf {
    buf: Vec<u8>,
}

impl Gguf {
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        let mut g = Gguf::default();
        g.buf.extend_from_slice(b"GGUF");
        g.u32(version).u64(n_tensors).u64(n_kv);
        g
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(4).u32(v)
    }
    pub fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.str(key).u32(8).str(v)
    }
    pub fn kv_bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.str(key).u32(7).bytes(&[v as u8])
    }
    pub fn kv_str_array(&mut self, key: &str, items: &[&str]) -> &mut Self {
        self.str(key).u32(9).u32(8).u64(items.len() as u64);
        for item in items {
            self.str(item);
        }
        self
    }
    pub fn kv_i32_array(&mut self, key: &str, items: &[i32]) -> &mut Self {
        self.str(key).u32(9).u32(5).u64(items.len() as u64);
        for &item in items {
            self.u32(item as u32);
        }
        self
    }
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    pub fn pad(&mut self, align: usize) -> &mut Self {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
        self
    }
    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.buf.resize(self.buf.len() + n, 0);
        self
    }
    pub fn open(&self, stem: &str) -> hooklens::Result<GgufFile> {
        GgufFile::open(&temp_file(stem, &self.buf))
    }
}
