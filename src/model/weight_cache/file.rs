//! The cache file: a 32-byte prefix, the arrays (each 64-byte aligned, from byte 4096), and a
//! JSON header after them naming every array with its shape, place and xxh3 hash.
//!
//! ```text
//! [0, 8)    magic "HOOKLWC1"
//! [8, 16)   header offset (u64, little-endian)
//! [16, 24)  header length
//! [24, 32)  xxh3-64 of the header bytes
//! [4096, ..) arrays, then the header
//! ```
//!
//! A file is written under a temporary name and renamed into place, so a reader sees a whole
//! file or none; the hashes catch what a crash or a disk could still leave behind.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::entries::{each_item, from_mapped, Item, Placed, Shape};
use super::key::CacheKey;
use crate::backend::cpu::mapped::MappedFile;
use crate::model::weights::Weights;

const MAGIC: &[u8; 8] = b"HOOKLWC1";
const PREFIX: usize = 32;
const DATA_START: usize = 4096;
const ALIGN: usize = 64;

/// The header: the key the file was built for and where each array is.
#[derive(Serialize, Deserialize)]
struct Header {
    key: CacheKey,
    entries: Vec<Entry>,
}

/// One array: `k` and `n` for a packed matrix, `len` values for a vector.
#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    packed: bool,
    len: usize,
    k: usize,
    n: usize,
    offset: usize,
    bytes: usize,
    hash: u64,
}

/// Why a cache file was not used.
#[derive(Debug)]
pub(super) enum Unusable {
    /// There is none.
    Absent,
    /// It was built from other sources, another configuration or another hooklens.
    Stale,
    /// It is damaged: the reason.
    Corrupt(String),
}

/// Writes `weights` for `key` to `path` (through a temporary file in the same directory);
/// returns the bytes written.
pub(super) fn write(path: &Path, key: &CacheKey, weights: &Weights) -> std::io::Result<u64> {
    let tmp = temporary_name(path);
    let result = write_to(&tmp, key, weights).and_then(|bytes| {
        std::fs::rename(&tmp, path)?;
        Ok(bytes)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn temporary_name(path: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp.{}.{nanos}", std::process::id()));
    PathBuf::from(name)
}

fn write_to(tmp: &Path, key: &CacheKey, weights: &Weights) -> std::io::Result<u64> {
    let mut out = ChunkWriter::new(File::create(tmp)?);
    out.write_all(&[0u8; DATA_START])?;
    let mut at = DATA_START;
    let mut entries = Vec::new();
    let mut failed = None;
    each_item(weights, &mut |name, item| {
        if failed.is_some() {
            return;
        }
        let (bytes, packed, len, k, n): (&[u8], _, _, _, _) = match item {
            Item::Vector(v) => (bytemuck::cast_slice(v), false, v.len(), 0, 0),
            Item::Packed(m) => (m.as_bytes(), true, 0, m.k(), m.n()),
        };
        let pad = at.next_multiple_of(ALIGN) - at;
        let result = out
            .write_all(&[0u8; ALIGN][..pad])
            .and_then(|()| out.write_all(bytes));
        if let Err(e) = result {
            failed = Some(e);
            return;
        }
        at += pad;
        let hash = xxh3_64(bytes);
        let bytes = bytes.len();
        entries.push(Entry {
            name,
            packed,
            len,
            k,
            n,
            offset: at,
            bytes,
            hash,
        });
        at += bytes;
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let header = serde_json::to_vec(&Header {
        key: key.clone(),
        entries,
    })?;
    out.write_all(&header)?;
    let mut prefix = Vec::with_capacity(PREFIX);
    prefix.extend_from_slice(MAGIC);
    prefix.extend_from_slice(&(at as u64).to_le_bytes());
    prefix.extend_from_slice(&(header.len() as u64).to_le_bytes());
    prefix.extend_from_slice(&xxh3_64(&header).to_le_bytes());
    let mut file = out.finish()?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&prefix)?;
    Ok((at + header.len()) as u64)
}

/// Bytes per write: whole multiples of the 2 MiB huge page at aligned offsets, so the page
/// cache holds the file in huge folios, which a later load maps with one entry per 2 MiB (with
/// smaller writes it holds small folios and every load pays for 4 KiB mappings).
const CHUNK: usize = 4 << 20;

/// Writes in [`CHUNK`]-sized pieces at multiples of [`CHUNK`] (the last one shorter).
struct ChunkWriter {
    file: File,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn new(file: File) -> Self {
        Self {
            file,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn write_all(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let take = data.len().min(CHUNK - self.buf.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK {
                self.file.write_all(&self.buf)?;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Writes what is left and gives the file back.
    fn finish(mut self) -> std::io::Result<File> {
        self.file.write_all(&self.buf)?;
        Ok(self.file)
    }
}

/// The weights in the cache file at `path`, if it was built for `key` and is intact (every
/// array's hash is checked, on `threads` threads).
pub(super) fn read(
    path: &Path,
    key: &CacheKey,
    n_layers: usize,
    threads: usize,
) -> Result<Weights, Unusable> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unusable::Absent),
        Err(e) => return Err(Unusable::Corrupt(format!("cannot open: {e}"))),
    };
    // SAFETY: hooklens never writes a cache file in place (it writes a new file and renames
    // it over the old one, and an existing mapping keeps the old file), so the mapped bytes do
    // not change while mapped unless something outside hooklens edits the file in place.
    let map = unsafe { MappedFile::map(&file) }
        .map_err(|e| Unusable::Corrupt(format!("cannot map: {e}")))?;
    let map = Arc::new(map);
    let header = header(&map)?;
    if header.key != *key {
        return Err(Unusable::Stale);
    }
    let placed = check_entries(&map, &header.entries, threads)?;
    from_mapped(&map, &placed, n_layers)
        .ok_or_else(|| Unusable::Corrupt("the arrays do not form the model's weights".into()))
}

fn corrupt(what: &str) -> Unusable {
    Unusable::Corrupt(what.to_string())
}

/// The header, checked against its hash.
fn header(map: &[u8]) -> Result<Header, Unusable> {
    let prefix = map
        .get(..PREFIX)
        .ok_or_else(|| corrupt("shorter than its prefix"))?;
    if &prefix[..8] != MAGIC {
        return Err(corrupt("not a hooklens weight cache (bad magic)"));
    }
    let word = |i: usize| {
        let bytes: [u8; 8] = prefix[i..i + 8].try_into().unwrap_or([0; 8]);
        u64::from_le_bytes(bytes)
    };
    let (start, len, hash) = (word(8) as usize, word(16) as usize, word(24));
    let bytes = start
        .checked_add(len)
        .and_then(|end| map.get(start..end))
        .ok_or_else(|| corrupt("truncated: the header lies past the end"))?;
    if xxh3_64(bytes) != hash {
        return Err(corrupt("the header does not match its hash"));
    }
    serde_json::from_slice(bytes).map_err(|e| Unusable::Corrupt(format!("bad header: {e}")))
}

/// Checks every entry's place, size and hash; returns where each one is.
fn check_entries(
    map: &[u8],
    entries: &[Entry],
    threads: usize,
) -> Result<HashMap<String, Placed>, Unusable> {
    let mut placed = HashMap::new();
    for e in entries {
        let shape = match e.packed {
            true => Shape::Packed { k: e.k, n: e.n },
            false => Shape::Vector { len: e.len },
        };
        let expected = match shape {
            Shape::Vector { len } => len.checked_mul(4),
            Shape::Packed { k, n } => n
                .div_ceil(crate::backend::cpu::gemm::NR)
                .checked_mul(k.max(1) * 64),
        };
        let inside = e
            .offset
            .checked_add(e.bytes)
            .is_some_and(|end| end <= map.len());
        if expected != Some(e.bytes) || !inside || !e.offset.is_multiple_of(ALIGN) {
            return Err(Unusable::Corrupt(format!(
                "entry {} is out of place",
                e.name
            )));
        }
        let value = Placed {
            offset: e.offset,
            shape,
        };
        if placed.insert(e.name.clone(), value).is_some() {
            return Err(Unusable::Corrupt(format!("entry {} appears twice", e.name)));
        }
    }
    match first_bad_hash(map, entries, threads) {
        Some(name) => Err(Unusable::Corrupt(format!(
            "entry {name} does not match its hash"
        ))),
        None => Ok(placed),
    }
}

/// The first entry (in some order) whose bytes do not hash to its recorded hash, checked on
/// up to `threads` threads; entries are in bounds (checked by the caller).
fn first_bad_hash<'a>(map: &[u8], entries: &'a [Entry], threads: usize) -> Option<&'a str> {
    let threads = threads.clamp(1, entries.len().max(1));
    let bad = |share: &[&'a Entry]| {
        share
            .iter()
            .find(|e| xxh3_64(&map[e.offset..e.offset + e.bytes]) != e.hash)
            .map(|e| e.name.as_str())
    };
    // Deal the entries round-robin, largest first, so the threads' shares weigh about the same.
    let mut order: Vec<&Entry> = entries.iter().collect();
    order.sort_by_key(|e| std::cmp::Reverse(e.bytes));
    let shares: Vec<Vec<&Entry>> = (0..threads)
        .map(|t| order.iter().skip(t).step_by(threads).copied().collect())
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = shares[1..]
            .iter()
            .map(|share| s.spawn(|| bad(share)))
            .collect();
        let mine = bad(&shares[0]);
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Some("(a checking thread failed)")))
            .fold(mine, |found, other| found.or(other))
    })
}
