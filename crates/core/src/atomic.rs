//! Atomic file creation: write to a temporary file next to the target, then rename.
//!
//! A reader never sees a half-written file, and a failed write leaves neither the output nor the
//! temporary file behind (the temporary is removed on error and on panic). Every tool of the
//! project that writes a file goes through here.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The step of an atomic write that failed, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// Creating the temporary file beside the target.
    CreateTemporary,
    /// Writing or flushing the contents.
    Write,
    /// Renaming the temporary file onto the target.
    Rename,
}

impl WriteStep {
    /// What the step does, as the start of a sentence ending in the target's path.
    pub fn describe(self) -> &'static str {
        match self {
            WriteStep::CreateTemporary => "creating a temporary file for",
            WriteStep::Write => "writing",
            WriteStep::Rename => "renaming the temporary file to",
        }
    }
}

/// Removes the temporary file when dropped, unless it was renamed into place.
struct TempGuard {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if !self.keep {
            // Nothing useful can be done if this fails; the original error is what matters.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates `path` with the contents written by `write`, atomically. I/O failures of the
/// temporary file and the rename are reported through `io_error(step, error)`, so that each
/// caller keeps its own error type.
pub fn write_atomically_with<T, E>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T, E>,
    io_error: impl Fn(WriteStep, std::io::Error) -> E,
) -> Result<T, E> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io_error(WriteStep::CreateTemporary, std::io::ErrorKind::InvalidInput.into()))?;
    // Same directory as the target so that the final rename stays within one file system.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (file, mut guard) =
        create_temp(&dir, &file_name.to_string_lossy()).map_err(|e| io_error(WriteStep::CreateTemporary, e))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let value = write(&mut writer)?;
    let file = writer
        .into_inner()
        .map_err(|e| io_error(WriteStep::Write, e.into_error()))?;
    file.sync_all().map_err(|e| io_error(WriteStep::Write, e))?;
    drop(file);
    fs::rename(&guard.path, path).map_err(|e| io_error(WriteStep::Rename, e))?;
    guard.keep = true;
    Ok(value)
}

/// Writes `bytes` to `path` atomically; failures are [`Error::Io`] naming `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(
        path,
        |w| w.write_all(bytes).map_err(|e| Error::io(path, e)),
        |_, e| Error::io(path, e),
    )
}

/// Whether `a` and `b` name the same existing file, through symbolic and hard links: a tool must
/// never write its output over its input.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        ma.dev() == mb.dev() && ma.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
    }
}

fn create_temp(dir: &Path, file_name: &str) -> std::io::Result<(File, TempGuard)> {
    let pid = std::process::id();
    let mut last_error = None;
    for attempt in 0..100u32 {
        let path = dir.join(format!(".{file_name}.{pid}.{attempt}.tmp"));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, TempGuard { path, keep: false })),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::ErrorKind::AlreadyExists.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let result: Result<()> = write_atomically_with(
            &target,
            |w| {
                w.write_all(b"partial").unwrap();
                Err(Error::InvalidInput("test".into()))
            },
            |_, e| Error::io("test", e),
        );
        assert!(matches!(result, Err(Error::InvalidInput(_))));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        write_atomically(&target, b"ok").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"ok");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn same_file_sees_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        fs::write(&a, b"a").unwrap();
        let b = dir.path().join("b.bin");
        fs::write(&b, b"b").unwrap();
        assert!(same_file(&a, &a));
        assert!(same_file(&a, &dir.path().join(".").join("a.bin")));
        assert!(!same_file(&a, &b));
        assert!(!same_file(&a, &dir.path().join("absent.bin")));
        let hard = dir.path().join("hard.bin");
        fs::hard_link(&a, &hard).unwrap();
        assert!(same_file(&a, &hard));
        #[cfg(unix)]
        {
            let soft = dir.path().join("soft.bin");
            std::os::unix::fs::symlink(&a, &soft).unwrap();
            assert!(same_file(&soft, &a));
        }
    }

    #[test]
    fn unwritable_target_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("missing-folder").join("out.bin");
        match write_atomically(&target, b"x") {
            Err(Error::Io { path, .. }) => assert_eq!(path, target),
            other => panic!("expected an I/O error naming the file, got {other:?}"),
        }
    }
}
