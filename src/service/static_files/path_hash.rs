//! The hasher of the cache's map, whose keys are request paths: a client
//! chooses them, so the hash is keyed with the OS's randomness, or a
//! client could send paths that all collide (hash flooding).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;

use foldhash::fast::{FoldHasher, SeedableRandomState};
use foldhash::SharedSeed;

/// foldhash keyed with 128 random bits (a process-wide seed and one per
/// map): a hit hashes its path in some 30 instructions where SipHash-1-3
/// took 290. Flooding the map is bounded besides: it keeps only paths of
/// files that exist and at most `MISSES_KEPT` misses.
#[derive(Clone)]
pub(super) struct PathHash(SeedableRandomState);

impl Default for PathHash {
    fn default() -> PathHash {
        static SHARED: OnceLock<SharedSeed> = OnceLock::new();
        let shared = SHARED.get_or_init(|| SharedSeed::from_u64(os_random()));
        PathHash(SeedableRandomState::with_seed(os_random(), shared))
    }
}

impl BuildHasher for PathHash {
    type Hasher = FoldHasher<'static>;

    #[inline(always)]
    fn build_hasher(&self) -> FoldHasher<'static> {
        self.0.build_hasher()
    }
}

/// 64 unpredictable bits: std's `RandomState` keys come from the OS
/// (getrandom), and SipHash of a constant under them is as random.
fn os_random() -> u64 {
    RandomState::new().hash_one(0u64)
}

#[cfg(test)]
mod tests {
    use super::PathHash;
    use std::hash::BuildHasher;

    #[test]
    fn maps_are_keyed_apart() {
        let (a, b) = (PathHash::default(), PathHash::default());
        assert_eq!(a.hash_one("/a.txt"), a.hash_one("/a.txt"));
        assert_ne!(a.hash_one("/a.txt"), b.hash_one("/a.txt"));
    }
}
