//! A POSIX ustar archive of the contents an apply uploads: one regular
//! file per content, named by its id, so that one `tar` process on the
//! host takes them all (one process per content added up to seconds on a
//! host that lacks a thousand). Deterministic: owner root, mode 0600,
//! mtime 0.

use crate::content_id::ContentId;

/// The size of a block; headers and contents are padded to it.
const BLOCK: usize = 512;
/// GNU tar reads a pipe in records of 20 blocks: the archive ends on one.
const RECORD: usize = 20 * BLOCK;

/// The archive of `contents` (id, bytes), in the order given.
pub fn archive<'a>(contents: impl IntoIterator<Item = (&'a ContentId, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, bytes) in contents {
        out.extend_from_slice(&header(id.as_str(), bytes.len()));
        out.extend_from_slice(bytes);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    }
    // The end: two zero blocks, then zeros to the end of the record.
    out.resize(out.len() + 2 * BLOCK, 0);
    out.resize(out.len().div_ceil(RECORD) * RECORD, 0);
    out
}

/// The header of a regular file `name` (a content id: ASCII, under 100
/// bytes) of `size` bytes.
fn header(name: &str, size: usize) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let put = |h: &mut [u8; BLOCK], at: usize, text: &[u8]| {
        h[at..at + text.len()].copy_from_slice(text);
    };
    debug_assert!(name.len() < 100 && name.is_ascii());
    put(&mut h, 0, name.as_bytes());
    put(&mut h, 100, b"0000600\0");
    put(&mut h, 108, b"0000000\0");
    put(&mut h, 116, b"0000000\0");
    put(&mut h, 124, format!("{size:011o}\0").as_bytes());
    put(&mut h, 136, b"00000000000\0");
    h[156] = b'0';
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    put(&mut h, 265, b"root");
    put(&mut h, 297, b"root");
    // The checksum counts its own field as eight spaces.
    put(&mut h, 148, b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_contents_are_padded_to_blocks_and_the_archive_to_a_record() {
        let a = ContentId::of(b"one\n");
        let b = ContentId::of(b"");
        let bytes = archive([(&a, &b"one\n"[..]), (&b, &b""[..])]);
        assert_eq!(bytes.len(), RECORD);
        assert_eq!(&bytes[..64], a.as_str().as_bytes());
        assert_eq!(&bytes[124..136], b"00000000004\0");
        assert_eq!(&bytes[BLOCK..BLOCK + 4], b"one\n");
        assert_eq!(&bytes[2 * BLOCK..2 * BLOCK + 64], b.as_str().as_bytes());
        // The checksum: the sum of the header's bytes, its field as spaces.
        let h = &bytes[..BLOCK];
        let sum: u32 = h[..148]
            .iter()
            .chain(&[b' '; 8])
            .chain(&h[156..])
            .map(|&b| u32::from(b))
            .sum();
        assert_eq!(&h[148..156], format!("{sum:06o}\0 ").as_bytes());
        // Nothing after the two files' blocks but zeros.
        assert!(bytes[3 * BLOCK..].iter().all(|&b| b == 0));
    }

    #[test]
    fn no_contents_is_an_empty_archive() {
        assert_eq!(archive([]), vec![0; RECORD]);
    }
}
