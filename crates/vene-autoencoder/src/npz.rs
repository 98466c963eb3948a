//! Checking `.npz` archives before they are read: every `.npy` header's shape and dtype must
//! describe no more bytes than its entry holds, so that a damaged or hostile header cannot
//! make the reader allocate more than the file's size.

use std::io::Read;
use std::path::Path;

use crate::{AutoencoderError, Result};

/// The longest `.npy` header accepted (numpy writes well under 1 KiB).
const MAX_HEADER: usize = 1 << 16;

/// The value of `'key':` in a `.npy` header dict, up to the next top-level `,` or `}` (a tuple
/// is taken whole).
fn header_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[start + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    if let Some(tuple) = rest.strip_prefix('(') {
        return tuple.find(')').map(|end| &tuple[..end]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

/// Bytes per element of a numpy `descr` such as `'<f4'` or `'|u1'`.
fn item_size(descr: &str) -> Option<u64> {
    let d = descr.trim_matches(|c| c == '\'' || c == '"');
    let digits: String = d.chars().skip_while(|c| !c.is_ascii_digit()).collect();
    digits.parse().ok().filter(|&n: &u64| n > 0 && n <= 16)
}

/// Bytes of data the `.npy` header `header` promises: the product of its shape times the
/// item size, or a message saying what is wrong.
pub(crate) fn promised_bytes(header: &str) -> std::result::Result<u64, String> {
    let descr = header_field(header, "descr").ok_or("header has no 'descr'")?;
    let item = item_size(descr).ok_or_else(|| format!("unknown dtype {descr}"))?;
    let shape = header_field(header, "shape").ok_or("header has no 'shape'")?;
    let mut n: u64 = item;
    for dim in shape.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let d: u64 = dim
            .trim_end_matches('L')
            .parse()
            .map_err(|_| format!("shape entry {dim:?} is not a size"))?;
        n = n
            .checked_mul(d)
            .ok_or_else(|| format!("shape ({shape}) overflows"))?;
    }
    Ok(n)
}

/// Reads the magic, version and header of one `.npy` stream; returns the header text and
/// the number of bytes they took.
fn read_npy_header(r: &mut impl Read) -> std::result::Result<(String, u64), String> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|e| format!("cannot read the npy magic: {e}"))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err("not an npy array (bad magic)".into());
    }
    let (len, prefix) = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|e| e.to_string())?;
            (u16::from_le_bytes(b) as usize, 10u64)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|e| e.to_string())?;
            (u32::from_le_bytes(b) as usize, 12u64)
        }
        v => return Err(format!("unsupported npy version {v}")),
    };
    if len > MAX_HEADER {
        return Err(format!("npy header of {len} bytes (at most {MAX_HEADER})"));
    }
    let mut header = vec![0u8; len];
    r.read_exact(&mut header)
        .map_err(|e| format!("truncated npy header: {e}"))?;
    let text = String::from_utf8(header).map_err(|_| "npy header is not text".to_string())?;
    Ok((text, prefix + len as u64))
}

/// Checks every array of the `.npz` at `path`: a readable header whose shape and dtype fit
/// in the entry's size. Called before the arrays are read.
pub(crate) fn check_npz(path: &Path) -> Result<()> {
    let bad = |m: String| AutoencoderError::invalid_file(path, m);
    let file = std::fs::File::open(path).map_err(|e| AutoencoderError::io(path, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a zip archive: {e}")))?;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| bad(format!("cannot read archive entry {i}: {e}")))?;
        let name = entry
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| format!("entry {i}"));
        let size = entry.size();
        let (header, used) =
            read_npy_header(&mut entry).map_err(|m| bad(format!("{name}: {m}")))?;
        let promised = promised_bytes(&header).map_err(|m| bad(format!("{name}: {m}")))?;
        let available = size.saturating_sub(used);
        if promised > available {
            return Err(bad(format!(
                "{name}: the header promises {promised} bytes of data but the entry holds {available}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promised_bytes_reads_shape_and_dtype() {
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (16, 32), }";
        assert_eq!(promised_bytes(h), Ok(16 * 32 * 4));
        let scalar = "{'descr': '<f8', 'fortran_order': False, 'shape': (), }";
        assert_eq!(promised_bytes(scalar), Ok(8));
        let vec1 = "{'descr': '|u1', 'fortran_order': False, 'shape': (7,), }";
        assert_eq!(promised_bytes(vec1), Ok(7));
        let huge = "{'descr': '<f4', 'shape': (4294967296, 4294967296), }";
        assert!(promised_bytes(huge).unwrap_err().contains("overflows"));
        assert!(promised_bytes("{'descr': '<f4'}").is_err());
        assert!(promised_bytes("{'shape': (1,)}").is_err());
    }
}
