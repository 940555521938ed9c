//! Random-access input: a checkpoint in memory or a file read piece by piece.
//!
//! The converter never loads a whole checkpoint into memory. It reads the (small) pickle, the zip
//! directory, and then each tensor's bytes on demand, so a 1.4 GB checkpoint needs little more
//! memory than its largest tensor. Positional reads (rather than a memory map) keep the resident
//! size small and avoid the undefined behaviour of a file shrinking under a map.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{ConvertError, Result};

/// Bytes that can be read at arbitrary offsets.
pub trait ByteSource {
    /// Total length in bytes.
    fn len(&self) -> u64;

    /// Whether the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes starting at `offset`. Reading past the end is reported as
    /// [`ConvertError::Truncated`].
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// Reads `len` bytes starting at `offset` into a new vector. The bounds are checked before
    /// allocating, so a hostile length can never allocate more than the source holds.
    fn read_vec(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        check_range(self.len(), offset, len)?;
        let len =
            usize::try_from(len).map_err(|_| ConvertError::TooLarge(format!("{len} bytes do not fit in memory")))?;
        let mut buf = vec![0; len];
        self.read_at(offset, &mut buf)?;
        Ok(buf)
    }
}

/// A range of bytes of a [`ByteSource`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

/// Fails with [`ConvertError::Truncated`] unless `offset..offset + len` lies within `total`.
pub(crate) fn check_range(total: u64, offset: u64, len: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= total => Ok(()),
        _ => Err(ConvertError::Truncated(format!(
            "needed bytes {offset}..{} but the file has only {total}",
            offset.saturating_add(len)
        ))),
    }
}

impl ByteSource for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(ByteSource::len(self), offset, buf.len() as u64)?;
        // The range was checked above, so these conversions and the slice cannot fail; `get`
        // keeps the code panic-free regardless.
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or_else(|| ConvertError::Truncated(format!("offset {offset} is outside the input")))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl ByteSource for Vec<u8> {
    fn len(&self) -> u64 {
        ByteSource::len(self.as_slice())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.as_slice().read_at(offset, buf)
    }
}

/// A file opened for positional reads.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    path: PathBuf,
    len: u64,
}

impl FileSource {
    /// Opens `path` and records its length (the file is assumed not to change while converting).
    pub fn open(path: &Path) -> Result<Self> {
        let context = || format!("opening {}", path.display());
        let file = File::open(path).map_err(|e| ConvertError::io(context(), e))?;
        let len = file.metadata().map_err(|e| ConvertError::io(context(), e))?.len();
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len,
        })
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(self.len, offset, buf.len() as u64)?;
        read_exact_at(&self.file, offset, buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ConvertError::Truncated(format!("{} shrank while being read", self.path.display()))
            } else {
                ConvertError::io(format!("reading {}", self.path.display()), e)
            }
        })
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut offset: u64, mut buf: &mut [u8]) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(not(any(unix, windows)))]
fn read_exact_at(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    // `&File` implements `Read + Seek`; the converter is single-threaded, so seeking the shared
    // cursor is safe here.
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_reads_are_bounds_checked() {
        let data = [1u8, 2, 3, 4];
        let src: &[u8] = &data;
        let mut buf = [0u8; 2];
        src.read_at(2, &mut buf).unwrap();
        assert_eq!(buf, [3, 4]);
        assert!(matches!(src.read_at(3, &mut buf), Err(ConvertError::Truncated(_))));
        assert!(matches!(src.read_vec(u64::MAX, 2), Err(ConvertError::Truncated(_))));
    }
}
