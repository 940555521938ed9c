//! Atomic file creation: write to a temporary file next to the target, then rename.
//!
//! A reader never sees a half-written safetensors file, and a failed conversion leaves neither
//! the output nor the temporary file behind (the temporary is removed on error and on panic).

use std::fs::{self, File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::error::{ConvertError, Result};

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

/// Creates `path` with the contents written by `write`, atomically.
pub fn write_atomically<T>(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> Result<T>) -> Result<T> {
    let context = |what: &str| format!("{what} {}", path.display());
    let file_name = path
        .file_name()
        .ok_or_else(|| ConvertError::io(context("writing"), std::io::ErrorKind::InvalidInput.into()))?;
    // Same directory as the target so that the final rename stays within one file system.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };

    let (file, guard) = create_temp(&dir, &file_name.to_string_lossy())
        .map_err(|e| ConvertError::io(context("creating a temporary file for"), e))?;
    let mut guard = guard;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let value = write(&mut writer)?;
    let file = writer
        .into_inner()
        .map_err(|e| ConvertError::io(context("writing"), e.into_error()))?;
    file.sync_all().map_err(|e| ConvertError::io(context("writing"), e))?;
    drop(file);
    fs::rename(&guard.path, path).map_err(|e| ConvertError::io(context("renaming the temporary file to"), e))?;
    guard.keep = true;
    Ok(value)
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
    use std::io::Write;

    #[test]
    fn failure_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let result: Result<()> = write_atomically(&target, |w| {
            w.write_all(b"partial").unwrap();
            Err(ConvertError::Unsupported("test".into()))
        });
        assert!(result.is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        write_atomically(&target, |w| w.write_all(b"ok").map_err(|e| ConvertError::io("test", e))).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"ok");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
