//! A minimal zip reader for PyTorch archives: the central directory (zip64 included) and the
//! location of each *stored* entry's bytes.
//!
//! `torch.save` writes every entry uncompressed (and 64-byte aligned), so an entry's data can be
//! read in place at any offset: no decompression, no copy of the archive. The local headers carry
//! no sizes (PyTorch sets the data-descriptor flag), which is why the central directory at the end
//! of the file is the source of truth, and why a cut-off file is detected there.

use std::collections::HashMap;

use crate::error::{ConvertError, Result};
use crate::source::{ByteRange, ByteSource};

const LOCAL_HEADER_SIG: [u8; 4] = *b"PK\x03\x04";
const CENTRAL_HEADER_SIG: [u8; 4] = *b"PK\x01\x02";
const EOCD_SIG: [u8; 4] = *b"PK\x05\x06";
const ZIP64_LOCATOR_SIG: [u8; 4] = *b"PK\x06\x07";
const ZIP64_EOCD_SIG: [u8; 4] = *b"PK\x06\x06";
const EOCD_LEN: u64 = 22;
const ZIP64_LOCATOR_LEN: u64 = 20;
const CENTRAL_HEADER_LEN: usize = 46;
const LOCAL_HEADER_LEN: u64 = 30;
const MAX_COMMENT_LEN: u64 = 0xffff;

/// Whether `bytes` start like a zip archive (a local file header or an empty archive).
pub fn looks_like_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(&LOCAL_HEADER_SIG) || bytes.starts_with(&EOCD_SIG)
}

/// One entry of the central directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZipEntry {
    /// Path inside the archive.
    pub name: String,
    /// Compression method (0 = stored).
    pub method: u16,
    /// Size of the stored bytes.
    pub compressed_size: u64,
    /// Size of the entry's content.
    pub size: u64,
    /// Offset of the entry's local header.
    pub header_offset: u64,
    /// General-purpose flags (bit 0: encrypted).
    pub flags: u16,
}

/// The central directory of a zip archive.
#[derive(Debug)]
pub struct ZipArchive {
    entries: Vec<ZipEntry>,
    by_name: HashMap<String, usize>,
}

impl ZipArchive {
    /// Reads the central directory of the archive in `src`.
    pub fn read<S: ByteSource + ?Sized>(src: &S) -> Result<Self> {
        let (cd_offset, cd_size, count) = find_central_directory(src)?;
        // Each central header takes at least 46 bytes: bounds `count` before allocating.
        if count.saturating_mul(CENTRAL_HEADER_LEN as u64) > cd_size {
            return Err(malformed(format!(
                "{count} entries cannot fit in a {cd_size}-byte central directory"
            )));
        }
        let cd = src.read_vec(cd_offset, cd_size)?;
        let mut entries = Vec::with_capacity(count as usize);
        let mut pos = 0usize;
        for _ in 0..count {
            let (entry, next) = parse_central_header(&cd, pos)?;
            entries.push(entry);
            pos = next;
        }
        let by_name = entries.iter().enumerate().map(|(i, e)| (e.name.clone(), i)).collect();
        Ok(Self { entries, by_name })
    }

    /// All entries, in central-directory order.
    pub fn entries(&self) -> &[ZipEntry] {
        &self.entries
    }

    /// The entry called `name`.
    pub fn find(&self, name: &str) -> Option<&ZipEntry> {
        self.by_name.get(name).and_then(|&i| self.entries.get(i))
    }

    /// Where `entry`'s bytes are in `src`. Only stored (uncompressed) entries are supported.
    pub fn data_range<S: ByteSource + ?Sized>(&self, src: &S, entry: &ZipEntry) -> Result<ByteRange> {
        if entry.flags & 1 != 0 {
            return Err(ConvertError::Unsupported(format!(
                "zip entry `{}` is encrypted",
                entry.name
            )));
        }
        if entry.method != 0 {
            return Err(ConvertError::Unsupported(format!(
                "zip entry `{}` is compressed (method {}); torch.save writes stored entries only",
                entry.name, entry.method
            )));
        }
        if entry.compressed_size != entry.size {
            return Err(malformed(format!(
                "stored entry `{}` has two different sizes",
                entry.name
            )));
        }
        let mut header = [0u8; LOCAL_HEADER_LEN as usize];
        src.read_at(entry.header_offset, &mut header)?;
        if header[..4] != LOCAL_HEADER_SIG {
            return Err(malformed(format!(
                "entry `{}` has no local header at {}",
                entry.name, entry.header_offset
            )));
        }
        let name_len = u64::from(u16_at(&header, 26));
        let extra_len = u64::from(u16_at(&header, 28));
        let offset = entry.header_offset + LOCAL_HEADER_LEN + name_len + extra_len;
        crate::source::check_range(src.len(), offset, entry.size)?;
        Ok(ByteRange {
            offset,
            len: entry.size,
        })
    }
}

fn malformed(reason: String) -> ConvertError {
    ConvertError::MalformedZip(reason)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
        .unwrap_or(0)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// Locates the central directory: `(offset, size, entry count)`.
fn find_central_directory<S: ByteSource + ?Sized>(src: &S) -> Result<(u64, u64, u64)> {
    let len = src.len();
    let tail_len = len.min(EOCD_LEN + MAX_COMMENT_LEN);
    let tail_start = len - tail_len;
    let tail = src.read_vec(tail_start, tail_len)?;
    // The end-of-central-directory record is the last 22+ bytes; search backwards because the
    // archive comment (empty in torch files) may follow it.
    let eocd_pos = (0..tail.len().saturating_sub(EOCD_LEN as usize - 1))
        .rev()
        .find(|&i| tail.get(i..i + 4) == Some(&EOCD_SIG[..]))
        .ok_or_else(|| {
            ConvertError::Truncated(
                "the zip archive has no end-of-central-directory record (the file was cut short?)".into(),
            )
        })?;
    let eocd = &tail[eocd_pos..];
    let mut count = u64::from(u16_at(eocd, 10));
    let mut cd_size = u64::from(u32_at(eocd, 12));
    let mut cd_offset = u64::from(u32_at(eocd, 16));
    let eocd_abs = tail_start + eocd_pos as u64;

    // A zip64 locator right before the record points to the 64-bit version of these fields.
    if eocd_abs >= ZIP64_LOCATOR_LEN {
        let mut locator = [0u8; ZIP64_LOCATOR_LEN as usize];
        src.read_at(eocd_abs - ZIP64_LOCATOR_LEN, &mut locator)?;
        if locator[..4] == ZIP64_LOCATOR_SIG {
            let z64_offset = u64_at(&locator, 8);
            let mut record = [0u8; 56];
            src.read_at(z64_offset, &mut record)?;
            if record[..4] != ZIP64_EOCD_SIG {
                return Err(malformed("zip64 locator points to no zip64 end record".into()));
            }
            count = u64_at(&record, 32);
            cd_size = u64_at(&record, 40);
            cd_offset = u64_at(&record, 48);
        }
    }
    match cd_offset.checked_add(cd_size) {
        Some(end) if end <= eocd_abs => Ok((cd_offset, cd_size, count)),
        _ => Err(malformed(format!(
            "central directory ({cd_size} bytes at {cd_offset}) overlaps its end record at {eocd_abs}"
        ))),
    }
}

/// Parses the central header at `pos` of `cd`; returns the entry and the next header's position.
fn parse_central_header(cd: &[u8], pos: usize) -> Result<(ZipEntry, usize)> {
    let header = cd
        .get(pos..pos + CENTRAL_HEADER_LEN)
        .ok_or_else(|| malformed("central directory ends inside an entry".into()))?;
    if header[..4] != CENTRAL_HEADER_SIG {
        return Err(malformed(format!(
            "bad central header signature at directory byte {pos}"
        )));
    }
    let flags = u16_at(header, 8);
    let method = u16_at(header, 10);
    let mut compressed_size = u64::from(u32_at(header, 20));
    let mut size = u64::from(u32_at(header, 24));
    let name_len = usize::from(u16_at(header, 28));
    let extra_len = usize::from(u16_at(header, 30));
    let comment_len = usize::from(u16_at(header, 32));
    let mut header_offset = u64::from(u32_at(header, 42));

    let name_start = pos + CENTRAL_HEADER_LEN;
    let extra_start = name_start + name_len;
    let next = extra_start + extra_len + comment_len;
    let name = cd
        .get(name_start..extra_start)
        .ok_or_else(|| malformed("central directory ends inside an entry name".into()))?;
    let extra = cd
        .get(extra_start..extra_start + extra_len)
        .ok_or_else(|| malformed("central directory ends inside an extra field".into()))?;
    if next > cd.len() {
        return Err(malformed("central directory ends inside an entry comment".into()));
    }

    // Zip64 extended information: 64-bit values for the fields saturated at 0xffffffff, in this
    // fixed order, present only for the saturated ones.
    let mut at = 0usize;
    while let (Some(id), Some(data_len)) = (extra.get(at..at + 2), extra.get(at + 2..at + 4)) {
        let id = u16::from_le_bytes([id[0], id[1]]);
        let data_len = usize::from(u16::from_le_bytes([data_len[0], data_len[1]]));
        let data = extra
            .get(at + 4..at + 4 + data_len)
            .ok_or_else(|| malformed("extra field runs past its entry".into()))?;
        if id == 0x0001 {
            let mut field = 0usize;
            let mut next_u64 = || -> Result<u64> {
                let v = data
                    .get(field..field + 8)
                    .and_then(|s| s.try_into().ok())
                    .map(u64::from_le_bytes)
                    .ok_or_else(|| malformed("zip64 extra field too short".into()))?;
                field += 8;
                Ok(v)
            };
            if size == 0xffff_ffff {
                size = next_u64()?;
            }
            if compressed_size == 0xffff_ffff {
                compressed_size = next_u64()?;
            }
            if header_offset == 0xffff_ffff {
                header_offset = next_u64()?;
            }
        }
        at += 4 + data_len;
    }

    let entry = ZipEntry {
        name: String::from_utf8_lossy(name).into_owned(),
        method,
        compressed_size,
        size,
        header_offset,
        flags,
    };
    Ok((entry, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored zip with the given entries, written the way miniz/PyTorch does (sizes in the
    /// central directory only).
    pub(crate) fn build_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in files {
            let offset = out.len() as u32;
            out.extend(LOCAL_HEADER_SIG);
            out.extend([0u8; 22]);
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes());
            out.extend(name.as_bytes());
            out.extend(*data);
            central.extend(CENTRAL_HEADER_SIG);
            central.extend([0u8; 16]);
            central.extend((data.len() as u32).to_le_bytes());
            central.extend((data.len() as u32).to_le_bytes());
            central.extend((name.len() as u16).to_le_bytes());
            central.extend([0u8; 12]);
            central.extend(offset.to_le_bytes());
            central.extend(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend(&central);
        out.extend(EOCD_SIG);
        out.extend([0u8; 4]);
        out.extend((files.len() as u16).to_le_bytes());
        out.extend((files.len() as u16).to_le_bytes());
        out.extend((central.len() as u32).to_le_bytes());
        out.extend(cd_offset.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out
    }

    #[test]
    fn reads_stored_entries() {
        let zip = build_zip(&[("a/data.pkl", b"hello"), ("a/data/0", b"0123")]);
        let archive = ZipArchive::read(zip.as_slice()).unwrap();
        assert_eq!(archive.entries().len(), 2);
        let entry = archive.find("a/data/0").unwrap();
        let range = archive.data_range(zip.as_slice(), entry).unwrap();
        assert_eq!(zip.as_slice().read_vec(range.offset, range.len).unwrap(), b"0123");
    }

    #[test]
    fn cut_archives_are_truncated() {
        let zip = build_zip(&[("a/data.pkl", b"hello")]);
        for cut in [10, zip.len() - 5] {
            assert!(
                matches!(ZipArchive::read(&zip[..cut]), Err(ConvertError::Truncated(_))),
                "cut at {cut}"
            );
        }
    }
}
