//! The IDX format (MNIST, Fashion-MNIST): a 4-byte magic number, big-endian `u32` dimensions,
//! then the values in row-major order.
//!
//! Only unsigned-byte payloads (type code `0x08`) are read, which is what every MNIST-family
//! file uses. Files may be gzip-compressed (`.gz`); the reader decompresses them in memory.

use std::io::Read;
use std::path::Path;

use crate::DataError;

/// The type code of unsigned bytes in the third byte of the magic number.
const TYPE_U8: u8 = 0x08;

/// An IDX array of bytes: its dimensions and its values in row-major order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The values, `dims.iter().product()` of them.
    pub data: Vec<u8>,
}

/// Reads a file (gzip-compressed when its name ends in `.gz`) and parses it as IDX with
/// `ndims` dimensions.
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read and [`DataError::Format`], naming the file
/// and the offset, when its header or length is wrong.
pub fn read(path: &Path, ndims: usize) -> Result<IdxArray, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_maybe_gz(path, bytes, ndims)
}

/// Parses the `bytes` read from `path` as IDX with `ndims` dimensions, decompressing them
/// first when the name ends in `.gz`; offsets in errors count in the decompressed bytes.
///
/// # Errors
/// [`DataError::Io`] for a corrupt gzip stream, [`DataError::Format`] naming the file and
/// the offset when the header or length is wrong.
pub fn parse_maybe_gz(path: &Path, bytes: Vec<u8>, ndims: usize) -> Result<IdxArray, DataError> {
    let bytes = gunzip_if_named(path, bytes)?;
    parse(&bytes, ndims).map_err(|(offset, what)| DataError::Format {
        path: path.to_owned(),
        offset,
        what,
    })
}

/// Reads a whole file, decompressing it when its name ends in `.gz`.
///
/// # Errors
/// [`DataError::Io`] naming the file, also for a corrupt gzip stream.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    gunzip_if_named(path, raw)
}

/// Decompresses `raw` when `path` ends in `.gz`, else returns it unchanged.
fn gunzip_if_named(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>, DataError> {
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::io(path, e))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses IDX bytes with `ndims` dimensions; on failure returns the offset of the first
/// problem and what it is.
pub fn parse(bytes: &[u8], ndims: usize) -> Result<IdxArray, (u64, String)> {
    if bytes.len() < 4 {
        return Err((
            0,
            format!("file of {} bytes is too short for a header", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err((
            0,
            format!("bad magic number {:02x?}: not an IDX file", &bytes[..4]),
        ));
    }
    if bytes[2] != TYPE_U8 {
        return Err((
            2,
            format!(
                "type code 0x{:02x}, expected 0x08 (unsigned byte)",
                bytes[2]
            ),
        ));
    }
    if usize::from(bytes[3]) != ndims {
        return Err((3, format!("{} dimensions, expected {ndims}", bytes[3])));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err((
            bytes.len() as u64,
            "file ends inside the dimension list".into(),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| (4, format!("dimensions {dims:?} overflow")))?;
    let body = &bytes[header..];
    match body.len().cmp(&len) {
        std::cmp::Ordering::Less => Err((
            bytes.len() as u64,
            format!(
                "truncated: dimensions {dims:?} need {len} bytes of data, found {}",
                body.len()
            ),
        )),
        std::cmp::Ordering::Greater => Err((
            (header + len) as u64,
            format!(
                "{} unexpected trailing bytes after {len} bytes of data",
                body.len() - len
            ),
        )),
        std::cmp::Ordering::Equal => Ok(IdxArray {
            dims,
            data: body.to_vec(),
        }),
    }
}

/// Encodes an array of bytes as IDX; the inverse of [`parse`]. Tests and tools use it to write
/// files in the real format.
///
/// # Panics
/// If `data.len()` is not the product of `dims` or a dimension does not fit in a `u32`.
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    assert_eq!(
        dims.iter().product::<usize>(),
        data.len(),
        "IDX data length"
    );
    let mut out = vec![
        0,
        0,
        TYPE_U8,
        u8::try_from(dims.len()).expect("at most 255 dims"),
    ];
    for &d in dims {
        out.extend_from_slice(&u32::try_from(d).expect("dimension fits u32").to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data: Vec<u8> = (0..24).collect();
        let bytes = encode(&[2, 3, 4], &data);
        // 4 magic bytes + 3 big-endian u32 dimensions + 24 values.
        assert_eq!(bytes.len(), 4 + 12 + 24);
        assert_eq!(&bytes[..8], &[0, 0, 8, 3, 0, 0, 0, 2]);
        let arr = parse(&bytes, 3).unwrap();
        assert_eq!(arr.dims, vec![2, 3, 4]);
        assert_eq!(arr.data, data);
    }

    #[test]
    fn rejects_bad_headers_with_offsets() {
        let good = encode(&[2, 2], &[1, 2, 3, 4]);
        let mut bad_magic = good.clone();
        bad_magic[0] = 1;
        assert_eq!(parse(&bad_magic, 2).unwrap_err().0, 0);
        let mut bad_type = good.clone();
        bad_type[2] = 0x0d;
        let (offset, what) = parse(&bad_type, 2).unwrap_err();
        assert_eq!(offset, 2);
        assert!(what.contains("0x0d"), "{what}");
        assert!(
            parse(&good, 3)
                .unwrap_err()
                .1
                .contains("2 dimensions, expected 3")
        );
        assert_eq!(parse(&good[..6], 2).unwrap_err().0, 6);
    }

    #[test]
    fn rejects_truncated_and_trailing_data() {
        let good = encode(&[2, 2], &[1, 2, 3, 4]);
        let (offset, what) = parse(&good[..good.len() - 1], 2).unwrap_err();
        assert_eq!(offset, good.len() as u64 - 1);
        assert!(what.contains("truncated"), "{what}");
        let mut long = good.clone();
        long.push(9);
        let (offset, what) = parse(&long, 2).unwrap_err();
        assert_eq!(offset, good.len() as u64);
        assert!(what.contains("1 unexpected trailing"), "{what}");
    }

    #[test]
    fn read_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken-idx3-ubyte");
        std::fs::write(&path, [0, 0, 8, 3, 0, 0]).unwrap();
        let msg = read(&path, 3).unwrap_err().to_string();
        assert!(msg.contains("broken-idx3-ubyte"), "{msg}");
        assert!(msg.contains("offset 6"), "{msg}");
    }

    #[test]
    fn reads_gzip_and_reports_corrupt_streams() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let bytes = encode(&[3], &[7, 8, 9]);
        let path = dir.path().join("labels.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        let mut compressed = gz.finish().unwrap();
        std::fs::write(&path, &compressed).unwrap();
        assert_eq!(read(&path, 1).unwrap().data, vec![7, 8, 9]);
        compressed.truncate(compressed.len() / 2);
        std::fs::write(&path, &compressed).unwrap();
        let msg = read(&path, 1).unwrap_err().to_string();
        assert!(msg.contains("labels.gz"), "{msg}");
    }
}
