//! Writing NumPy `.npy` files, so that upstream's Python tools (and `np.load`) read what the
//! examples write, and reading plain float arrays ([`read_f32`], e.g. StyleCLIP's `fs3.npy`).
//!
//! The format is NPY version 1.0: the magic string `\x93NUMPY`, the version bytes `1, 0`, a
//! little-endian `u16` header length, then an ASCII Python dict literal describing the array
//! (`{'descr': '<f4', 'fortran_order': False, 'shape': (18, 512), }`), padded with spaces and
//! ended by a newline so that the data starts at a multiple of 64 bytes, then the elements in C
//! (row-major) order, little-endian. The header is byte-for-byte what `np.save` writes for the
//! same array, so `np.load(path)` returns a plain array (no `allow_pickle`).
//!
//! Object arrays, what `np.save` makes of a dict or of a list of arrays of different shapes, are
//! written too ([`write_object`], [`write_pickled`]): the header says `'descr': '|O'` and the
//! elements follow as a pickle (protocol 3, [`crate::pickle`]), byte for byte what NumPy 1.x's
//! `np.save` writes; `np.load(path, allow_pickle=True)` reads them with NumPy 1.x and 2.x. They
//! are never read here: [`read_f32`] reads plain float arrays only.
//!
//! ```no_run
//! # fn main() -> hyperstyle::Result<()> {
//! let latents = vec![0.5f32; 18 * 512];
//! hyperstyle::npy::write("latents.npy", &[18, 512], &latents)?;
//! # Ok(()) }
//! ```

use std::io::Write;
use std::path::Path;

use hyperstyle_core::atomic::write_atomically_with;

use crate::error::{invalid_input, Error, Result};
use crate::pickle::{NdArray, Object, PickleError, Pickler, Protocol};

/// The magic string that opens every `.npy` file.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The header (magic, version, length, dict) is padded to a multiple of this, as `np.save` does.
pub const ALIGN: usize = 64;

/// An element type that can be stored in a `.npy` file.
pub trait Element: Copy {
    /// NumPy's type string: byte order (`<` little-endian, `|` not applicable), kind and size
    /// in bytes (`<f4` is float32).
    const DESCR: &'static str;
    /// Appends the element's little-endian bytes to `out`.
    fn extend_le(self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($($t:ty => $descr:literal),* $(,)?) => {$(
        impl Element for $t {
            const DESCR: &'static str = $descr;
            fn extend_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}

element!(
    f32 => "<f4",
    f64 => "<f8",
    u8 => "|u1",
    i8 => "|i1",
    u16 => "<u2",
    i16 => "<i2",
    u32 => "<u4",
    i32 => "<i4",
    u64 => "<u8",
    i64 => "<i8",
);

/// The number of elements of an array of `shape` (1 for the empty shape, a scalar), or an error
/// if it overflows.
fn element_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| invalid_input(format!("npy: the shape {shape:?} has too many elements")))
}

/// The complete header of a version 1.0 file for an array of type `descr` and `shape`: magic,
/// version, header length and the padded dict, `ALIGN`-aligned. An error if the dict does not
/// fit version 1.0's 16-bit length (a shape with thousands of dimensions).
pub fn header(descr: &str, shape: &[usize]) -> Result<Vec<u8>> {
    // Python's repr of a tuple: `()`, `(5,)`, `(2, 3)`.
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_repr = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_repr}, }}");
    let prefix = MAGIC.len() + 2 + 2;
    // Spaces, then the newline, up to the next multiple of ALIGN.
    let unpadded = prefix + dict.len() + 1;
    let total = unpadded.div_ceil(ALIGN) * ALIGN;
    let header_len = u16::try_from(total - prefix).map_err(|_| {
        invalid_input(format!(
            "npy: the header for shape {shape:?} is too long for format 1.0"
        ))
    })?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    Ok(out)
}

/// The whole file for `data` of `shape` (row-major), in memory. An error if `data` does not
/// hold exactly the shape's number of elements.
pub fn to_bytes<T: Element>(shape: &[usize], data: &[T]) -> Result<Vec<u8>> {
    check_len(shape, data.len())?;
    let mut out = header(T::DESCR, shape)?;
    out.reserve(std::mem::size_of_val(data));
    for &v in data {
        v.extend_le(&mut out);
    }
    Ok(out)
}

fn check_len(shape: &[usize], len: usize) -> Result<()> {
    let expected = element_count(shape)?;
    if expected != len {
        return Err(invalid_input(format!(
            "npy: shape {shape:?} needs {expected} elements, got {len}"
        )));
    }
    Ok(())
}

/// Writes `data` of `shape` (row-major) to `path` as a `.npy` file, atomically (a temporary file
/// beside it, then a rename): `np.load(path)` gives an array of that shape and `T`'s dtype. An
/// error if `data` does not hold exactly the shape's number of elements, or on I/O failure.
pub fn write<T: Element>(path: impl AsRef<Path>, shape: &[usize], data: &[T]) -> Result<()> {
    let path = path.as_ref();
    check_len(shape, data.len())?;
    let head = header(T::DESCR, shape)?;
    let io = |e| Error::Core(hyperstyle_core::Error::io(path, e));
    write_atomically_with(
        path,
        |w| {
            w.write_all(&head).map_err(io)?;
            // Converted in chunks: large arrays (a face's weight offsets are ~94 MB) are never
            // copied whole.
            let mut buf = Vec::with_capacity(1 << 16);
            for chunk in data.chunks((1 << 16) / std::mem::size_of::<T>().max(1)) {
                buf.clear();
                for &v in chunk {
                    v.extend_le(&mut buf);
                }
                w.write_all(&buf).map_err(io)?;
            }
            Ok(())
        },
        |_, e| io(e),
    )
}

/// The `.npy` file of a 1-d or n-d object array of `shape` holding `items` (row-major), in
/// memory: what `np.save` writes for such an array (e.g. upstream's list of per-layer weight
/// offsets, arrays and `None`s). An error if `items` does not hold the shape's number of
/// elements.
pub fn object_to_bytes(shape: &[usize], items: Vec<Object>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_object_to(&mut out, NdArray::objects(shape, items)).map_err(pickle_error)?;
    Ok(out)
}

/// Writes `items` as an object array of `shape` to `path` ([`object_to_bytes`]), atomically.
pub fn write_object(path: impl AsRef<Path>, shape: &[usize], items: Vec<Object>) -> Result<()> {
    let path = path.as_ref();
    let array = NdArray::objects(shape, items);
    array.check().map_err(pickle_error)?;
    write_atomically_with(
        path,
        |w| write_object_to(w, array).map_err(|e| file_error(path, e)),
        |_, e| Error::Core(hyperstyle_core::Error::io(path, e)),
    )
}

/// Writes `value` to `path` as `np.save(path, value)` does for a value that is not an array (a
/// dict): a 0-d object array holding it. `np.load(path, allow_pickle=True).item()` gives the
/// value back. Written atomically.
pub fn write_pickled(path: impl AsRef<Path>, value: Object) -> Result<()> {
    write_object(path, &[], vec![value])
}

/// [`write_pickled`] in memory.
pub fn pickled_to_bytes(value: Object) -> Result<Vec<u8>> {
    object_to_bytes(&[], vec![value])
}

fn write_object_to<W: Write>(out: &mut W, array: NdArray) -> std::result::Result<(), PickleError> {
    array.check()?;
    let head = header(array.descr(), &array.shape).map_err(|e| PickleError::BadArray(e.to_string()))?;
    out.write_all(&head)?;
    Pickler::new(out, Protocol::V3).dump(&Object::Array(array))?;
    Ok(())
}

fn pickle_error(e: PickleError) -> Error {
    match e {
        PickleError::Io(e) => Error::Core(hyperstyle_core::Error::io("<memory>", e)),
        other => invalid_input(format!("npy: {other}")),
    }
}

fn file_error(path: &Path, e: PickleError) -> Error {
    match e {
        PickleError::Io(e) => Error::Core(hyperstyle_core::Error::io(path, e)),
        other => invalid_input(format!("npy: {}: {other}", path.display())),
    }
}

/// Reads a `.npy` file of floats (`<f4` or `<f8`, C order, NPY versions 1–3) as float32 values
/// with their shape: what `np.save` writes for a plain float array (e.g. StyleCLIP's `fs3.npy`).
///
/// Object arrays (pickles), other element types, big-endian or Fortran-ordered data, and files
/// whose length does not match the header are typed errors; nothing is ever unpickled.
pub fn read_f32(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<f32>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::Core(hyperstyle_core::Error::io(path, e)))?;
    parse_f32(&bytes).map_err(|reason| {
        Error::Core(hyperstyle_core::Error::InvalidFile {
            path: path.to_path_buf(),
            reason,
        })
    })
}

/// [`read_f32`] on the bytes of a file; the error is the reason.
pub fn parse_f32(bytes: &[u8]) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start.saturating_add(len))
        .ok_or("the header runs past the end of the file")?;
    let header = std::str::from_utf8(header).map_err(|_| "the header is not text")?;
    let field = |name: &str| -> std::result::Result<&str, String> {
        let key = format!("'{name}':");
        let at = header.find(&key).ok_or(format!("the header has no '{name}'"))? + key.len();
        Ok(header[at..].trim_start())
    };
    let descr = field("descr")?;
    let size = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        let shown: String = descr.chars().take(12).collect();
        return Err(format!(
            "element type {shown}… is not little-endian float32 or float64 (object arrays are pickles and are not read)"
        ));
    };
    if !field("fortran_order")?.starts_with("False") {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let shape_text = field("shape")?;
    let close = shape_text.find(')').ok_or("malformed shape")?;
    let shape = shape_text.strip_prefix('(').ok_or("malformed shape")?[..close - 1]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().map_err(|_| format!("bad dimension {d:?}")))
        .collect::<std::result::Result<Vec<usize>, String>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or("the shape's element count overflows")?;
    let data = &bytes[start + len..];
    if Some(data.len()) != count.checked_mul(size) {
        return Err(format!(
            "the header says {count} elements of {size} bytes, the file holds {} data bytes",
            data.len()
        ));
    }
    let values = if size == 4 {
        data.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect()
    };
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_what_numpy_writes() {
        let h = header("<f4", &[18, 512]).unwrap();
        assert_eq!(h.len(), 128);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([h[8], h[9]]), 118);
        let dict = std::str::from_utf8(&h[10..]).unwrap();
        assert!(dict.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (18, 512), }"));
        assert!(dict.ends_with(" \n"));
        let one = header("<f4", &[5]).unwrap();
        assert!(std::str::from_utf8(&one[10..]).unwrap().contains("'shape': (5,), }"));
        let scalar = header("<f8", &[]).unwrap();
        assert!(std::str::from_utf8(&scalar[10..]).unwrap().contains("'shape': (), }"));
        for shape in [&[][..], &[1], &[3, 4, 5, 6, 7, 8, 9, 10, 11]] {
            assert_eq!(header("|u1", shape).unwrap().len() % ALIGN, 0);
        }
    }

    #[test]
    fn data_follow_the_header_little_endian() {
        let bytes = to_bytes(&[2], &[1.0f32, -2.5]).unwrap();
        assert_eq!(bytes.len(), 128 + 8);
        assert_eq!(&bytes[128..], &[0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0]);
        assert!(to_bytes(&[3], &[1.0f32, 2.0]).unwrap_err().is_invalid_input());
        assert!(to_bytes::<u8>(&[usize::MAX, 2], &[]).unwrap_err().is_invalid_input());
        // Each dimension takes three characters of the dict: 30000 exceed the 16-bit length.
        assert!(header("<f4", &vec![1; 30000]).is_err_and(|e| e.is_invalid_input()));
    }

    #[test]
    fn reads_back_what_it_writes_and_rejects_bad_files() {
        let values: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let bytes = to_bytes(&[2, 3, 4], &values).unwrap();
        assert_eq!(parse_f32(&bytes).unwrap(), (vec![2, 3, 4], values.clone()));
        let doubles: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        assert_eq!(
            parse_f32(&to_bytes(&[24], &doubles).unwrap()).unwrap(),
            (vec![24], values.clone())
        );
        // A scalar: shape ().
        assert_eq!(
            parse_f32(&to_bytes::<f32>(&[], &[7.0]).unwrap()).unwrap(),
            (vec![], vec![7.0])
        );
        // Truncated data, a wrong magic, an integer array, an object array, Fortran order.
        assert!(parse_f32(&bytes[..bytes.len() - 1]).is_err());
        assert!(parse_f32(&bytes[..20]).is_err());
        assert!(parse_f32(b"NUMPY\x93 not a file").is_err());
        assert!(parse_f32(&to_bytes::<i32>(&[2], &[1, 2]).unwrap()).is_err());
        let mut object = header("|O", &[2]).unwrap();
        object.extend([0u8; 16]);
        assert!(parse_f32(&object).unwrap_err().contains("pickle"));
        let at = bytes.windows(5).position(|w| w == b"False").unwrap();
        let mut fortran = bytes.clone();
        fortran[at..at + 5].copy_from_slice(b"True ");
        assert!(parse_f32(&fortran).unwrap_err().contains("Fortran"));
        // A shape whose element count overflows.
        let mut huge = header("<f4", &[usize::MAX, 3]).unwrap();
        huge.extend([0u8; 8]);
        assert!(parse_f32(&huge).unwrap_err().contains("overflows"));
    }
}
