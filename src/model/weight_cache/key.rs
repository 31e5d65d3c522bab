//! What a cache file must match to be used: the identity of every source file it was built
//! from, the packed layout, the hooklens version and the model's configuration.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::backend::cpu::gemm::NR;
use crate::model::config::ModelConfig;
use crate::model::process::LoadOptions;

/// Bumped whenever the file layout or the meaning of an entry changes.
pub(super) const FORMAT: u32 = 1;

/// One source file as it was when the cache was built: a changed size, modification time or
/// inode (a file replaced by another) makes the cache stale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SourceStamp {
    /// The canonical path.
    pub path: PathBuf,
    /// Bytes.
    pub len: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub modified_ns: u128,
    /// The inode (0 where the platform has none).
    pub inode: u64,
}

impl SourceStamp {
    /// The stamp of `path` now; `None` when it cannot be read (then nothing is cached).
    pub fn of(path: &Path) -> Option<Self> {
        let path = path.canonicalize().ok()?;
        let meta = std::fs::metadata(&path).ok()?;
        let modified_ns = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        Some(Self {
            len: meta.len(),
            modified_ns,
            inode: inode(&meta),
            path,
        })
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

/// Everything a cache file is checked against before it is used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    pub(super) format: u32,
    pub(super) hooklens: String,
    pub(super) layout: String,
    pub(super) config: String,
    /// The weight processing applied (empty for none, so files written before processing
    /// existed stay valid).
    #[serde(default)]
    pub(super) processing: String,
    pub(super) sources: Vec<SourceStamp>,
}

impl CacheKey {
    /// The key for weights built from `sources` with configuration `config` and processed as
    /// `processing` says; `None` when a source cannot be stamped.
    pub fn new(
        sources: &[PathBuf],
        config: &ModelConfig,
        processing: &LoadOptions,
    ) -> Option<Self> {
        let sources = sources
            .iter()
            .map(|p| SourceStamp::of(p))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            format: FORMAT,
            hooklens: env!("CARGO_PKG_VERSION").to_string(),
            layout: layout(),
            config: format!("{config:?}"),
            processing: match processing.any() {
                true => format!("{processing:?}"),
                false => String::new(),
            },
            sources,
        })
    }

    /// The cache file's name: a hash of the source paths, the layout and the processing, so
    /// that a changed source replaces its own stale cache file instead of adding one, and
    /// processed and unprocessed weights of one model live in separate files.
    pub fn file_name(&self) -> String {
        let mut id = self.layout.clone();
        if !self.processing.is_empty() {
            id.push('\n');
            id.push_str(&self.processing);
        }
        for s in &self.sources {
            id.push('\n');
            id.push_str(&s.path.to_string_lossy());
        }
        format!("{:016x}.hlw", xxh3_64(id.as_bytes()))
    }
}

/// The packed layout this build writes and reads: panel width, value type and byte order.
fn layout() -> String {
    let order = if cfg!(target_endian = "little") {
        "le"
    } else {
        "be"
    };
    format!("panels of {NR} f32 {order}, 64-byte rows")
}
