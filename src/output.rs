//! Output files: checked before the work that fills them, written atomically.
//!
//! A file is written to a temporary file in its own directory and renamed over the target
//! once complete, so an interrupted run leaves either the old file or the new one, never a
//! truncated one. [`check_writable`] runs the same checks up front, so a typo in an output
//! path fails in a second instead of after a long sweep.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{HookLensError, Result};

/// Temporary files made by this process so far (keeps their names distinct).
static TEMP_COUNT: AtomicUsize = AtomicUsize::new(0);

/// The directory `path` is written in (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A fresh temporary path next to `path`: `.NAME.PID.N.tmp` in the same directory, so the
/// final rename never crosses file systems.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let n = TEMP_COUNT.fetch_add(1, Ordering::Relaxed);
    parent_dir(path).join(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// An error as of writing `path`, with an OS error kind and a message.
fn write_error(path: &Path, kind: std::io::ErrorKind, message: &str) -> HookLensError {
    HookLensError::write(path, std::io::Error::new(kind, message.to_string()))
}

/// Checks that `path` can be written: it names a file (not a directory), its directory
/// exists, and a file can be created there. Fails with [`HookLensError::Write`] naming the
/// path and the cause. Leaves nothing behind.
pub fn check_writable(path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        return Err(write_error(
            path,
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ));
    }
    if path.is_dir() {
        return Err(write_error(
            path,
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    }
    let dir = parent_dir(path);
    if !dir.is_dir() {
        let why = if dir.exists() {
            format!("{} is not a directory", dir.display())
        } else {
            format!("directory {} does not exist", dir.display())
        };
        return Err(write_error(path, std::io::ErrorKind::NotFound, &why));
    }
    let probe = temp_path(path);
    create_new(&probe).map_err(|e| HookLensError::write(path, e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn create_new(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Writes `bytes` to `path` atomically (temporary file, flush to disk, rename). Fails with
/// [`HookLensError::Write`] naming `path` and the OS cause; the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut file = create_new(tmp).map_err(|e| HookLensError::write(tmp, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| HookLensError::write(tmp, e))
    })
}

/// Writes `doc` as pretty-printed JSON with a final newline, atomically.
pub fn write_json(path: &Path, doc: &serde_json::Value) -> Result<()> {
    let text =
        serde_json::to_string_pretty(doc).map_err(|e| HookLensError::input(e.to_string()))?;
    write_atomic(path, (text + "\n").as_bytes())
}

/// Runs `fill` on a temporary path next to `path`, then renames the result over `path`. If
/// `fill` fails, the temporary file is removed, and an I/O error it reports about the
/// temporary file becomes a [`HookLensError::Write`] about `path`.
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    let filled = fill(&tmp)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| HookLensError::write(path, e)));
    filled.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        match e {
            HookLensError::Io { path: p, source } | HookLensError::Write { path: p, source }
                if p == tmp =>
            {
                HookLensError::write(path, source)
            }
            other => other,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hooklens-output-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// How many entries `dir` has.
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = scratch("replace");
        let path = dir.join("out.json");
        std::fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new contents").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new contents");
        assert_eq!(count(&dir), 1, "only out.json");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file_and_names_the_target() {
        let dir = scratch("fail");
        let path = dir.join("out.csv");
        std::fs::write(&path, "old").unwrap();
        let err = write_atomic_with(&path, |tmp| {
            std::fs::write(tmp, "half").unwrap();
            Err(HookLensError::io(
                tmp,
                std::io::Error::other("disk full (simulated)"),
            ))
        })
        .unwrap_err();
        assert!(
            matches!(&err, HookLensError::Write { path: p, .. } if p == &path),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("cannot write") && text.contains("out.csv"),
            "{text}"
        );
        assert!(text.contains("disk full (simulated)"), "{text}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(count(&dir), 1, "only out.csv");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_paths_are_rejected_with_the_cause() {
        let dir = scratch("check");
        check_writable(&dir.join("fine.json")).unwrap();
        assert_eq!(count(&dir), 0, "the probe must be removed");
        let missing = dir.join("no/such/dir/out.json");
        let err = check_writable(&missing).unwrap_err().to_string();
        assert!(
            err.contains("cannot write") && err.contains("does not exist"),
            "{err}"
        );
        let err = check_writable(&dir).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        std::fs::write(dir.join("file"), "x").unwrap();
        let err = check_writable(&dir.join("file/out.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a directory"), "{err}");
        let err = write_atomic(&missing, b"x").unwrap_err().to_string();
        assert!(
            err.starts_with("cannot write") && err.contains("out.json"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
