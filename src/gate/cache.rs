//! The verified-token cache: a repeat of a token already verified costs a
//! hash and a copy, not an RSA verify.
//!
//! Keys are a 128-bit SipHash-2-4 of the *whole* token under a random key
//! made at start. Keyed, because an attacker who cannot compute the hash
//! cannot aim a forged token at a cached entry; whole token, because a
//! cache keyed by the signature alone would let a forged payload ride a
//! cached entry. 16 bytes a key instead of the ~800-byte token; an entry is
//! about 360 bytes (see `ENTRY_BYTES`).
//!
//! An entry holds the [`Grant`] (identity, rule facts and rendered response
//! headers) and until when it may be reused. It is used only while
//! `now < exp` (checked at every hit) and only with the
//! key-set generation it was verified under: any key change (refresh,
//! rotation, SIGHUP) makes every entry a miss. The cache is split into
//! shards, each behind its own short mutex, so workers rarely meet.

use std::hash::Hasher;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

use crate::gate::decision::Grant;
use crate::sync::lock;
use siphasher::sip128::{Hasher128, SipHasher24};

/// Approximate memory of one entry: the 16-byte key, the LRU node, the
/// hash-table slot, and the grant (see [`crate::gate::grant`]: its struct
/// in the `Arc`, one text of identity values and rule-fact strings, and the
/// fact table when the token has org permissions, features or plans).
/// Measured with bench row 3's tokens (v2, an org with two permissions):
/// 100,000 take about 34 MiB above the daemon's base.
pub const ENTRY_BYTES: usize = 360;
const SHARDS: usize = 16;

/// What a hit gives back.
pub struct Entry {
    /// Used until `grant.reuse_until_ms`.
    pub grant: Arc<Grant>,
    /// The key-store generation the token was verified under.
    pub generation: u64,
}

/// A bounded, sharded LRU from keyed token hash to [`Entry`].
pub struct TokenCache {
    shards: Vec<Mutex<LruCache<u128, Entry>>>,
    keys: (u64, u64),
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (rounded up to the shards);
    /// `None` for 0 (caching off).
    pub fn new(capacity: usize) -> Option<TokenCache> {
        let per_shard = NonZeroUsize::new(capacity.div_ceil(SHARDS))?;
        let mut key = [0u8; 16];
        openssl::rand::rand_bytes(&mut key).ok()?;
        let (k0, k1) = key.split_at(8);
        Some(TokenCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            keys: (
                u64::from_le_bytes(k0.try_into().ok()?),
                u64::from_le_bytes(k1.try_into().ok()?),
            ),
        })
    }

    /// The keyed 128-bit hash of a token.
    pub fn key(&self, token: &str) -> u128 {
        let mut hasher = SipHasher24::new_with_keys(self.keys.0, self.keys.1);
        hasher.write(token.as_bytes());
        hasher.finish128().as_u128()
    }

    /// Runs `use_entry` on a live entry for `key`; stale entries (expired,
    /// or from an older key set) are dropped and count as a miss.
    pub fn get<T>(
        &self,
        key: u128,
        now_ms: i64,
        generation: u64,
        use_entry: impl FnOnce(&Entry) -> T,
    ) -> Option<T> {
        let mut shard = self.shard(key);
        let entry = shard.get(&key)?;
        if now_ms >= entry.grant.reuse_until_ms || entry.generation != generation {
            shard.pop(&key);
            return None;
        }
        Some(use_entry(entry))
    }

    pub fn insert(&self, key: u128, entry: Entry) {
        self.shard(key).put(key, entry);
    }

    /// Entries held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    fn shard(&self, key: u128) -> MutexGuard<'_, LruCache<u128, Entry>> {
        lock(&self.shards[(key as usize) % SHARDS])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(expires_ms: i64, generation: u64) -> Entry {
        Entry {
            grant: Arc::new(Grant::of_user("user_1", expires_ms)),
            generation,
        }
    }

    #[test]
    fn hits_until_exp_and_only_for_the_same_key_set() {
        let cache = TokenCache::new(100).unwrap();
        let k = cache.key("a.b.c");
        cache.insert(k, entry(1_000, 7));
        let hit = cache.get(k, 999, 7, |e| e.grant.user_id().to_string());
        assert_eq!(hit.as_deref(), Some("user_1"));
        assert!(cache.get(k, 999, 8, |_| ()).is_none(), "new key set: miss");
        assert!(
            cache.get(k, 999, 7, |_| ()).is_none(),
            "and the entry is gone"
        );
        cache.insert(k, entry(1_000, 7));
        assert!(cache.get(k, 1_000, 7, |_| ()).is_none(), "dies at exp");
    }

    #[test]
    fn keys_depend_on_every_byte_and_on_the_secret() {
        let cache = TokenCache::new(10).unwrap();
        let other = TokenCache::new(10).unwrap();
        assert_ne!(
            cache.key("h.p.sig"),
            cache.key("h.P.sig"),
            "payload matters, not just the signature"
        );
        assert_eq!(cache.key("h.p.sig"), cache.key("h.p.sig"));
        assert_ne!(
            cache.key("h.p.sig"),
            other.key("h.p.sig"),
            "keyed per process"
        );
    }

    #[test]
    fn capacity_is_bounded() {
        let cache = TokenCache::new(32).unwrap();
        for i in 0..1000 {
            cache.insert(cache.key(&format!("t{i}")), entry(i64::MAX, 0));
        }
        assert!(cache.len() <= 32, "{}", cache.len());
        assert!(TokenCache::new(0).is_none());
    }
}
