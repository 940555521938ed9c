//! dlib's portable binary serialisation, the subset its shape predictors and object detectors use.
//!
//! * Integers: one control byte (low nibble: number of value bytes, 1 to 8; bit 7: negative,
//!   signed types only) and then the magnitude, least significant byte first. Zero is one value
//!   byte of 0.
//! * Floating point numbers: an integer mantissa and an integer exponent (value =
//!   mantissa · 2^exponent), both as integers above, the mantissa with its trailing zero bytes
//!   shifted out; exponents 32000, 32001 and 32002 mean +∞, −∞ and NaN.
//! * `std::vector`: the length (unsigned) and then the elements.
//! * `matrix`: rows and columns (negated in the current format), then the elements row by row.
//! * `vector<T,2>` (a 2-d point): x then y.
//! * strings: the length and then the bytes.

/// A failure to read: what was being read and what went wrong, without the file name (the
/// caller adds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

/// Result of reading.
pub type ReadResult<T> = std::result::Result<T, FormatError>;

const IS_INF: i64 = 32000;
const IS_NINF: i64 = 32001;
const IS_NAN: i64 = 32002;

/// Reads dlib-serialised values from a byte slice.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn err<T>(&self, what: &str) -> ReadResult<T> {
        Err(FormatError(format!("{what} at byte {}", self.pos)))
    }

    /// One raw byte.
    pub fn byte(&mut self) -> ReadResult<u8> {
        match self.bytes.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.err("unexpected end of file"),
        }
    }

    fn magnitude(&mut self, size: u8) -> ReadResult<u64> {
        if size == 0 || size > 8 {
            return self.err("bad integer control byte");
        }
        let size = usize::from(size);
        if self.remaining() < size {
            return self.err("unexpected end of file in an integer");
        }
        let mut value = 0u64;
        for i in (0..size).rev() {
            value = (value << 8) | u64::from(self.bytes[self.pos + i]);
        }
        self.pos += size;
        Ok(value)
    }

    /// A signed integer (`int`, `long`, `short`).
    pub fn signed(&mut self) -> ReadResult<i64> {
        let control = self.byte()?;
        let magnitude = self.magnitude(control & 0x0F)?;
        if magnitude > i64::MAX as u64 {
            return self.err("integer out of range");
        }
        let value = magnitude as i64;
        Ok(if control & 0x80 != 0 { -value } else { value })
    }

    /// An unsigned integer (`unsigned long`, `size_t`).
    pub fn unsigned(&mut self) -> ReadResult<u64> {
        let control = self.byte()?;
        // The three reserved bits are ignored, the sign bit is not.
        self.magnitude(control & 0x8F)
    }

    /// A length or count, bounded so that a corrupt file cannot ask for absurd allocations:
    /// each element takes at least `min_bytes` bytes of the file.
    pub fn length(&mut self, min_bytes: usize) -> ReadResult<usize> {
        let n = self.unsigned()?;
        if n > (self.remaining() / min_bytes.max(1)) as u64 {
            return self.err(&format!("length {n} larger than the rest of the file allows"));
        }
        Ok(n as usize)
    }

    /// A `float` (any floating point value, rounded to `f32` as dlib does).
    pub fn float(&mut self) -> ReadResult<f32> {
        match self.bytes.get(self.pos) {
            Some(b) if b & 0x70 == 0 => {}
            Some(_) => return self.err("floating point number in dlib's old text format (unsupported)"),
            None => return self.err("unexpected end of file"),
        }
        let mantissa = self.signed()?;
        let exponent = self.signed()?;
        if !(-32768..=32767).contains(&exponent) {
            return self.err("floating point exponent out of range");
        }
        Ok(match exponent {
            IS_INF => f32::INFINITY,
            IS_NINF => f32::NEG_INFINITY,
            IS_NAN => f32::NAN,
            e if e > IS_NAN => f32::NAN,
            e => ldexp_f32(mantissa as f32, e as i32),
        })
    }

    /// A `double`.
    pub fn double(&mut self) -> ReadResult<f64> {
        match self.bytes.get(self.pos) {
            Some(b) if b & 0x70 == 0 => {}
            Some(_) => return self.err("floating point number in dlib's old text format (unsupported)"),
            None => return self.err("unexpected end of file"),
        }
        let mantissa = self.signed()?;
        let exponent = self.signed()?;
        Ok(match exponent {
            IS_INF => f64::INFINITY,
            IS_NINF => f64::NEG_INFINITY,
            e if e >= IS_NAN => f64::NAN,
            e => ldexp_f64(mantissa as f64, e as i32),
        })
    }

    /// A column vector `matrix<float,0,1>` (any matrix shape is accepted and flattened row by
    /// row; the caller checks the number of elements).
    pub fn float_matrix(&mut self) -> ReadResult<(usize, usize, Vec<f32>)> {
        let (rows, cols) = self.matrix_shape()?;
        let mut values = Vec::with_capacity(rows * cols);
        for _ in 0..rows * cols {
            values.push(self.float()?);
        }
        Ok((rows, cols, values))
    }

    /// A `matrix<double,...>`, flattened row by row.
    pub fn double_matrix(&mut self) -> ReadResult<(usize, usize, Vec<f64>)> {
        let (rows, cols) = self.matrix_shape()?;
        let mut values = Vec::with_capacity(rows * cols);
        for _ in 0..rows * cols {
            values.push(self.double()?);
        }
        Ok((rows, cols, values))
    }

    fn matrix_shape(&mut self) -> ReadResult<(usize, usize)> {
        let mut rows = self.signed()?;
        let mut cols = self.signed()?;
        if rows < 0 || cols < 0 {
            rows = -rows;
            cols = -cols;
        }
        if rows < 0 || cols < 0 {
            return self.err("negative matrix size");
        }
        // Each element takes at least two bytes.
        let n = (rows as u128) * (cols as u128);
        if n > (self.remaining() / 2) as u128 {
            return self.err(&format!(
                "matrix of {rows}×{cols} larger than the rest of the file allows"
            ));
        }
        Ok((rows as usize, cols as usize))
    }

    /// A `std::string`.
    pub fn string(&mut self) -> ReadResult<String> {
        let n = self.length(1)?;
        let s = String::from_utf8_lossy(&self.bytes[self.pos..self.pos + n]).into_owned();
        self.pos += n;
        Ok(s)
    }

    /// A `bool` (one byte).
    pub fn boolean(&mut self) -> ReadResult<bool> {
        Ok(self.byte()? != 0)
    }
}

/// Writes dlib-serialised values.
#[derive(Default)]
pub struct Writer {
    /// The bytes written so far.
    pub bytes: Vec<u8>,
}

impl Writer {
    fn magnitude(&mut self, mut value: u64, flags: u8) {
        let mut buf = [0u8; 8];
        let mut size = 0;
        loop {
            buf[size] = (value & 0xFF) as u8;
            size += 1;
            value >>= 8;
            if value == 0 {
                break;
            }
        }
        self.bytes.push(size as u8 | flags);
        self.bytes.extend_from_slice(&buf[..size]);
    }

    /// A signed integer.
    pub fn signed(&mut self, value: i64) {
        if value < 0 {
            self.magnitude(value.unsigned_abs(), 0x80);
        } else {
            self.magnitude(value as u64, 0);
        }
    }

    /// An unsigned integer.
    pub fn unsigned(&mut self, value: u64) {
        self.magnitude(value, 0);
    }

    /// A `float`, as dlib converts it (24-bit mantissa).
    pub fn float(&mut self, value: f32) {
        self.floating(f64::from(value), 24, value.is_nan());
    }

    /// A `double` (53-bit mantissa).
    pub fn double(&mut self, value: f64) {
        self.floating(value, 53, value.is_nan());
    }

    fn floating(&mut self, value: f64, digits: i32, nan: bool) {
        let (mantissa, exponent) = if nan {
            (0, IS_NAN)
        } else if value == f64::INFINITY {
            (0, IS_INF)
        } else if value == f64::NEG_INFINITY {
            (0, IS_NINF)
        } else {
            let (m, e) = frexp(value);
            let mut mantissa = (m * (1u64 << digits) as f64) as i64;
            let mut exponent = i64::from(e - digits);
            for _ in 0..8 {
                if mantissa & 0xFF != 0 {
                    break;
                }
                mantissa >>= 8;
                exponent += 8;
            }
            (mantissa, exponent)
        };
        self.signed(mantissa);
        self.signed(exponent);
    }

    /// A `matrix<float,0,1>` column vector.
    pub fn float_column(&mut self, values: &[f32]) {
        self.signed(-(values.len() as i64));
        self.signed(-1);
        for &v in values {
            self.float(v);
        }
    }

    /// A `matrix<double,R,C>`, row by row.
    pub fn double_matrix(&mut self, rows: usize, cols: usize, values: &[f64]) {
        self.signed(-(rows as i64));
        self.signed(-(cols as i64));
        for &v in values {
            self.double(v);
        }
    }

    /// A `std::string`.
    pub fn string(&mut self, s: &str) {
        self.unsigned(s.len() as u64);
        self.bytes.extend_from_slice(s.as_bytes());
    }

    /// A `bool`.
    pub fn boolean(&mut self, value: bool) {
        self.bytes.push(u8::from(value));
    }
}

/// `x = m · 2^e` with `0.5 <= |m| < 1` (C's `frexp`); zero gives `(0, 0)`.
fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7FF) as i32;
    if exp == 0 {
        // Subnormal: scale into the normal range first.
        let (m, e) = frexp(x * f64::from_bits(0x4350_0000_0000_0000)); // 2^54
        return (m, e - 54);
    }
    let m = f64::from_bits((bits & !(0x7FF << 52)) | (1022 << 52));
    (m, exp - 1022)
}

fn ldexp_f64(x: f64, e: i32) -> f64 {
    // Split the scaling so that neither factor overflows before the product is formed.
    let mut x = x;
    let mut e = e;
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e)
}

/// `x · 2^e` rounded once to `f32`, as `std::ldexp(float, int)`.
fn ldexp_f32(x: f32, e: i32) -> f32 {
    // x has at most 24 significant bits, so the f64 product is exact until the final rounding.
    ldexp_f64(f64::from(x), e) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_in_dlibs_layout() {
        let mut w = Writer::default();
        w.signed(0);
        w.signed(-1);
        w.unsigned(300);
        w.signed(-70000);
        assert_eq!(
            w.bytes,
            [0x01, 0x00, 0x81, 0x01, 0x02, 0x2C, 0x01, 0x83, 0x70, 0x11, 0x01]
        );
        let mut r = Reader::new(&w.bytes);
        assert_eq!(r.signed().unwrap(), 0);
        assert_eq!(r.signed().unwrap(), -1);
        assert_eq!(r.unsigned().unwrap(), 300);
        assert_eq!(r.signed().unwrap(), -70000);
        assert!(r.byte().is_err());
    }

    #[test]
    fn floats_round_trip() {
        for v in [
            0.0f32,
            1.0,
            -1.5,
            0.1,
            3.0e-41,
            123456.79,
            f32::MAX,
            f32::INFINITY,
            -f32::INFINITY,
        ] {
            let mut w = Writer::default();
            w.float(v);
            let got = Reader::new(&w.bytes).float().unwrap();
            assert_eq!(got.to_bits(), v.to_bits(), "{v}");
        }
        let mut w = Writer::default();
        w.float(f32::NAN);
        assert!(Reader::new(&w.bytes).float().unwrap().is_nan());
        // 1.0f: frexp gives 0.5·2^1, mantissa 2^23 = 0x800000 → shifted to 0x80, exponent -23+16.
        let mut w = Writer::default();
        w.float(1.0);
        assert_eq!(w.bytes, [0x01, 0x80, 0x81, 0x07]);
    }

    #[test]
    fn corrupt_input_is_an_error() {
        assert!(Reader::new(&[0x09, 0, 0]).signed().is_err());
        assert!(Reader::new(&[0x81, 1]).unsigned().is_err());
        assert!(Reader::new(&[0x04, 1, 2]).signed().is_err());
        assert!(Reader::new(&[0x05, 1, 2, 3, 4, 5]).length(1).is_err());
        assert!(Reader::new(b"1.5 ").float().is_err());
    }
}
