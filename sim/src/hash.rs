//! A stable content hash (two FNV-1a 64-bit lanes) for build-cache keys. Not
//! cryptographic; it only has to change whenever an input changes.

/// Hash of all `parts`, as 32 hex digits.
pub fn content_hash(parts: &[&[u8]]) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x8422_2325_cbf2_9ce4;
    for part in parts {
        for &byte in part.iter().chain((part.len() as u64).to_le_bytes().iter()) {
            a = (a ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3);
            b = (b ^ byte as u64)
                .wrapping_mul(0x0000_0100_0000_01b3)
                .rotate_left(5);
        }
    }
    format!("{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_changes_with_content_and_boundaries() {
        let h = super::content_hash(&[b"ab", b"c"]);
        assert_eq!(h, super::content_hash(&[b"ab", b"c"]));
        assert_ne!(h, super::content_hash(&[b"a", b"bc"]));
        assert_ne!(h, super::content_hash(&[b"ab", b"d"]));
    }
}
