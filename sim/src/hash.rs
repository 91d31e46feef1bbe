//! A stable content hash for build-cache keys: the project's one hash
//! (`contract::hash::Fnv1a`) in two lanes with different bases, 128 bits in all. Not
//! cryptographic; it only has to change whenever an input changes.

use contract::hash::Fnv1a;

/// Hash of all `parts` (each followed by its length, so boundaries count), as 32 hex
/// digits.
pub fn content_hash(parts: &[&[u8]]) -> String {
    let (mut a, mut b) = (Fnv1a::new(), Fnv1a::with_basis(0x8422_2325_cbf2_9ce4));
    for part in parts {
        for h in [&mut a, &mut b] {
            h.write(part);
            h.write(&(part.len() as u64).to_le_bytes());
        }
    }
    format!("{:016x}{:016x}", a.finish(), b.finish())
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
