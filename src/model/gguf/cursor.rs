//! A bounds-checked little-endian reader over the bytes of a GGUF file.
//!
//! Every read checks the remaining length first and turns a shortfall into a
//! [`HookLensError::Format`] naming the file, the offset and what was being read, so a truncated
//! or corrupted file can never cause a panic or an allocation larger than the file itself.

use std::path::Path;

use crate::error::{HookLensError, Result};

/// Reads primitive values from a byte slice, tracking the position for error messages.
pub(super) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`, which was read from `path`.
    pub(super) fn new(data: &'a [u8], path: &'a Path) -> Self {
        Cursor { data, pos: 0, path }
    }

    /// The current byte offset from the start of the file.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current position.
    pub(super) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The file this cursor reads, for error messages.
    pub(super) fn path(&self) -> &'a Path {
        self.path
    }

    /// A format error at the current position.
    pub(super) fn error(&self, message: impl Into<String>) -> HookLensError {
        HookLensError::format(self.path, message.into())
    }

    /// Takes the next `n` bytes, or fails with a truncation error that names `what`.
    pub(super) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "file is truncated or corrupt: {what} needs {n} bytes at offset {}, but only {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let bytes = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    /// Takes exactly `N` bytes as an array.
    fn take_array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads a `u8`.
    pub(super) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take_array::<1>(what)?[0])
    }

    /// Reads a little-endian `u16`.
    pub(super) fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take_array(what)?))
    }

    /// Reads a little-endian `u32`.
    pub(super) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take_array(what)?))
    }

    /// Reads a little-endian `u64`.
    pub(super) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take_array(what)?))
    }

    /// Reads a little-endian `u64` that counts or sizes something in the file, as a `usize`.
    pub(super) fn len(&mut self, what: &str) -> Result<usize> {
        let value = self.u64(what)?;
        usize::try_from(value)
            .map_err(|_| self.error(format!("{what} is {value}, too large for this machine")))
    }

    /// Reads a GGUF string (u64 byte length, then UTF-8 bytes without a terminator).
    pub(super) fn string(&mut self, what: &str) -> Result<String> {
        let len = self.len(&format!("length of {what}"))?;
        if len > self.remaining() {
            return Err(self.error(format!(
                "{what} claims a length of {len} bytes at offset {}, but only {} bytes remain in the file",
                self.pos,
                self.remaining()
            )));
        }
        let start = self.pos;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| self.error(format!("{what} at offset {start} is not valid UTF-8 ({e})")))
    }

    /// Checks that `count` items of at least `min_item_bytes` each can still fit in the file,
    /// so that a corrupted count is rejected before anything is allocated for it.
    pub(super) fn check_count(
        &self,
        count: usize,
        min_item_bytes: usize,
        what: &str,
    ) -> Result<()> {
        let fits = count
            .checked_mul(min_item_bytes)
            .is_some_and(|bytes| bytes <= self.remaining());
        if fits {
            Ok(())
        } else {
            Err(self.error(format!(
                "{what} is {count}, but the {} bytes left after offset {} cannot hold that many \
                 (at least {min_item_bytes} bytes each): the file is truncated or corrupt",
                self.remaining(),
                self.pos
            )))
        }
    }
}
