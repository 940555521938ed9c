//! Streaming one tensor's elements, row-major and little-endian, to the output.
//!
//! Contiguous views (nearly all tensors) are copied in bounded chunks straight from the input.
//! Strided views (slices, transposes) read the span of storage they touch, which is bounded by
//! the storage's size, and gather their elements. Byte swapping (big-endian archives) and the
//! optional float cast happen on the way.

use std::io::Write;

use crate::dtype::{convert_element, DType};
use crate::error::{ConvertError, Result};
use crate::plan::PlannedTensor;
use crate::source::ByteSource;

/// Bytes read from the input per chunk of a contiguous tensor.
const CHUNK_BYTES: u64 = 8 << 20;
/// Bytes gathered before being written out.
const FLUSH_BYTES: usize = 1 << 20;

/// Converts elements into an output buffer and writes it out in pieces.
struct Sink<'w, W> {
    out: &'w mut W,
    buf: Vec<u8>,
    from: DType,
    to: DType,
    swap: bool,
    written: u64,
}

impl<W: Write> Sink<'_, W> {
    fn push(&mut self, element: &[u8]) -> Result<()> {
        let mut tmp = [0u8; 8];
        match tmp.get_mut(..element.len()) {
            Some(swapped) if self.swap => {
                swapped.copy_from_slice(element);
                swapped.reverse();
                convert_element(self.from, swapped, self.to, &mut self.buf);
            }
            _ => convert_element(self.from, element, self.to, &mut self.buf),
        }
        if self.buf.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes raw bytes that need no conversion.
    fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.flush()?;
        self.out.write_all(bytes).map_err(write_error)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.write_all(&self.buf).map_err(write_error)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

fn write_error(e: std::io::Error) -> ConvertError {
    ConvertError::io("writing the safetensors output", e)
}

/// Writes `planned`'s elements to `out`; returns the number of bytes written.
pub(crate) fn write_tensor<S: ByteSource + ?Sized, W: Write>(
    src: &S,
    planned: &PlannedTensor,
    big_endian: bool,
    out: &mut W,
) -> Result<u64> {
    let tensor = &planned.tensor;
    let from = tensor.dtype();
    let size = from.size() as u64;
    let mut sink = Sink {
        out,
        buf: Vec::new(),
        from,
        to: planned.out_dtype,
        swap: big_endian && size > 1,
        written: 0,
    };
    if planned.numel == 0 {
        return Ok(0);
    }
    let internal = |what: &str| ConvertError::InvalidTensor {
        key: planned.key.clone(),
        reason: what.to_string(),
    };
    // Plan validation guarantees that base + offset + extent fits the record, so this arithmetic
    // cannot overflow; checked operations keep it panic-free regardless.
    let first = tensor
        .storage
        .base
        .checked_add(tensor.offset)
        .ok_or_else(|| internal("offset overflows"))?;
    let start = first
        .checked_mul(size)
        .and_then(|b| b.checked_add(planned.data.range.offset))
        .ok_or_else(|| internal("offset overflows"))?;

    if tensor.is_contiguous() {
        let converts = sink.swap || sink.from != sink.to;
        let chunk_elements = CHUNK_BYTES / size;
        let mut remaining = planned.numel;
        let mut pos = start;
        let mut chunk = Vec::new();
        while remaining > 0 {
            let n = remaining.min(chunk_elements);
            chunk.resize((n * size) as usize, 0);
            src.read_at(pos, &mut chunk)?;
            if converts {
                for element in chunk.chunks_exact(size as usize) {
                    sink.push(element)?;
                }
            } else {
                sink.write_raw(&chunk)?;
            }
            remaining -= n;
            pos += n * size;
        }
    } else {
        let extent = tensor.extent().ok_or_else(|| internal("view overflows"))?;
        let span_len = extent.checked_mul(size).ok_or_else(|| internal("view overflows"))?;
        let span = src.read_vec(start, span_len)?;
        gather(&span, &tensor.shape, &tensor.stride, size as usize, &mut sink)
            .ok_or_else(|| internal("view outside its span"))??;
    }
    sink.flush()?;
    Ok(sink.written)
}

/// Pushes the elements of the strided view of `span` in row-major order. Returns `None` if an
/// element falls outside `span` (excluded by plan validation).
fn gather<W: Write>(
    span: &[u8],
    shape: &[u64],
    stride: &[u64],
    size: usize,
    sink: &mut Sink<'_, W>,
) -> Option<Result<()>> {
    let (&inner_len, outer_shape) = shape.split_last()?;
    let (&inner_stride, outer_stride) = stride.split_last()?;
    let mut index = vec![0u64; outer_shape.len()];
    loop {
        let row: u64 = index.iter().zip(outer_stride).map(|(i, s)| i * s).sum();
        for j in 0..inner_len {
            let at = usize::try_from(row + j * inner_stride).ok()?.checked_mul(size)?;
            if let Err(e) = sink.push(span.get(at..at + size)?) {
                return Some(Err(e));
            }
        }
        // Advance the multi-index over the outer dimensions (odometer); done when it wraps.
        let mut dim = outer_shape.len();
        loop {
            if dim == 0 {
                return Some(Ok(()));
            }
            dim -= 1;
            let slot = index.get_mut(dim)?;
            *slot += 1;
            if *slot < *outer_shape.get(dim)? {
                break;
            }
            *slot = 0;
        }
    }
}
