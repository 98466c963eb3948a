//! Atomic writes: a file or a whole folder is written beside its target under a temporary
//! name, flushed to disk (files and folder), then renamed into place. On any error the target
//! is exactly what it was before, and the temporary is removed.
//!
//! ```
//! use vene_autoencoder::atomic::{write_file, StagedDir};
//!
//! let root = tempfile::tempdir().unwrap();
//! let file = root.path().join("a.txt");
//! write_file(&file, b"one")?;
//! write_file(&file, b"two")?;
//! assert_eq!(std::fs::read(&file)?, b"two");
//!
//! let target = root.path().join("save");
//! let staged = StagedDir::new(&target)?;
//! std::fs::write(staged.path().join("config.json"), b"{}")?;
//! staged.commit(false)?;
//! assert!(target.join("config.json").is_file());
//! // a second save into a folder that is not empty needs `overwrite`
//! let again = StagedDir::new(&target)?;
//! std::fs::write(again.path().join("other.json"), b"{}")?;
//! assert!(again.commit(false).is_err());
//! assert!(target.join("config.json").is_file());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name beside `target` that no other writer uses: `.{name}.{tag}-{pid}-{n}`.
fn sibling(target: &Path, tag: &str) -> std::io::Result<PathBuf> {
    let name = target.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a file or folder name", target.display()),
        )
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(
        ".{}.{tag}-{}-{n}",
        name.to_string_lossy(),
        std::process::id()
    );
    Ok(parent_of(target).join(tmp))
}

/// The folder holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Flushes a folder's entries (the renames into it) to disk. Not every platform can open a
/// folder for syncing; there it is a no-op.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: into a temporary file beside it, synced, then renamed
/// over `path`. The parent folder must exist. On error `path` is untouched.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = sibling(path, "tmp")?;
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(&parent_of(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A folder being written beside its target, swapped in by [`StagedDir::commit`]; dropped
/// without a commit, it is removed and the target is left as it was.
#[derive(Debug)]
pub struct StagedDir {
    target: PathBuf,
    staged: PathBuf,
    done: bool,
}

impl StagedDir {
    /// A fresh empty folder beside `target` (whose parent folders are created).
    pub fn new(target: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(parent_of(target))?;
        let staged = sibling(target, "tmp")?;
        std::fs::create_dir(&staged)?;
        Ok(Self {
            target: target.to_path_buf(),
            staged,
            done: false,
        })
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        &self.staged
    }

    /// The folder it will replace.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs every file and the folder, then moves it to the target.
    ///
    /// A target that does not exist or is an empty folder is replaced. A target folder with
    /// files is replaced only when `overwrite` is set (none of its old files remain), else
    /// the commit fails with [`std::io::ErrorKind::AlreadyExists`]; a target that is a file is
    /// never replaced. On error the target is as it was.
    pub fn commit(mut self, overwrite: bool) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.staged)? {
            let p = entry?.path();
            if p.is_file() {
                std::fs::File::open(&p)?.sync_all()?;
            }
        }
        sync_dir(&self.staged)?;
        let parent = parent_of(&self.target);
        match std::fs::symlink_metadata(&self.target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::rename(&self.staged, &self.target)?;
            }
            Err(e) => return Err(e),
            Ok(meta) if !meta.is_dir() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a folder", self.target.display()),
                ))
            }
            Ok(_) => {
                let empty = std::fs::read_dir(&self.target)?.next().is_none();
                if !empty && !overwrite {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!(
                            "{} already holds files; choose to overwrite it (SaveOptions::overwrite, --overwrite) or save elsewhere",
                            self.target.display()
                        ),
                    ));
                }
                let old = sibling(&self.target, "old")?;
                std::fs::rename(&self.target, &old)?;
                if let Err(e) = std::fs::rename(&self.staged, &self.target) {
                    // put the old folder back
                    let _ = std::fs::rename(&old, &self.target);
                    return Err(e);
                }
                self.done = true;
                sync_dir(&parent)?;
                std::fs::remove_dir_all(&old)?;
            }
        }
        self.done = true;
        sync_dir(&parent)
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.staged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_staging_leaves_the_target_and_no_temporaries() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("save");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("config.json"), b"old").unwrap();
        {
            let staged = StagedDir::new(&target).unwrap();
            std::fs::write(staged.path().join("config.json"), b"new").unwrap();
            // dropped without commit
        }
        assert_eq!(std::fs::read(target.join("config.json")).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn overwrite_leaves_no_stale_files() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("save");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("stale.bin"), b"old").unwrap();
        let staged = StagedDir::new(&target).unwrap();
        std::fs::write(staged.path().join("config.json"), b"new").unwrap();
        staged.commit(true).unwrap();
        assert!(!target.join("stale.bin").exists());
        assert_eq!(std::fs::read(target.join("config.json")).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_file_replaces_whole() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("f");
        write_file(&p, b"abcdef").unwrap();
        write_file(&p, b"x").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
        // a missing parent is an error and writes nothing
        assert!(write_file(&root.path().join("no/such/f"), b"x").is_err());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
