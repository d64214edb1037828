//! The keys in memory, and the bound on refetches for unknown `kid`s.
//!
//! Readers take a short `std::sync::Mutex` to look a key up (the LRU moves
//! the key to the front, so even a lookup writes). The lock is never held
//! across I/O: the refresher builds a whole new key set off to the side and
//! swaps it in with one assignment, so a reload is atomic and a failed
//! fetch never touches the keys in use.
//!
//! An unknown `kid` (say, right after Clerk rotated its keys) asks for a
//! refetch through the [`RefetchTrigger`] the refresher connected and waits for it, at most `fetch_timeout`. At most
//! one refetch is in flight, and a new one starts at most once per
//! `min_refetch`, however many unknown kids arrive: a flood of random kids
//! costs the key server one request per interval.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;
use may::sync::SyncFlag;

use crate::keys::jwk::VerifyingKey;
use crate::sync::lock;

/// Asks whoever loads keys for a refetch; `false` when nobody listens.
/// The store knows nothing else of its refresher, so a new key source never
/// changes the store.
pub type RefetchTrigger = Box<dyn Fn() -> bool + Send + Sync>;

enum Keys {
    /// Nothing loaded yet (first fetch pending or failed).
    Empty,
    /// A networkless PEM key: used whatever the token's kid.
    Pem(Arc<VerifyingKey>),
    /// JWKS keys by kid.
    Jwks(LruCache<String, Arc<VerifyingKey>>),
}

/// The result of a key lookup.
#[derive(Debug)]
pub enum Lookup {
    Found(Arc<VerifyingKey>),
    UnknownKid,
    /// No key was ever loaded.
    Unavailable,
}

#[derive(Default)]
struct RefetchState {
    /// Fired when the refetch in flight finishes (either way).
    in_flight: Option<Arc<SyncFlag>>,
    last_fetch_started: Option<Instant>,
}

/// The verification keys and the refetch bound.
pub struct KeyStore {
    keys: Mutex<Keys>,
    capacity: NonZeroUsize,
    /// Bumped whenever the key set changes.
    generation: AtomicU64,
    refetch: Mutex<RefetchState>,
    min_refetch: Duration,
    fetch_timeout: Duration,
    refetch_trigger: Mutex<Option<RefetchTrigger>>,
}

impl KeyStore {
    pub fn new(capacity: usize, min_refetch: Duration, fetch_timeout: Duration) -> KeyStore {
        KeyStore {
            keys: Mutex::new(Keys::Empty),
            capacity: NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN),
            generation: AtomicU64::new(0),
            refetch: Mutex::new(RefetchState::default()),
            min_refetch,
            fetch_timeout,
            refetch_trigger: Mutex::new(None),
        }
    }

    /// Connects the store to the refresher that serves its refetches.
    pub fn connect_refresher(&self, trigger: RefetchTrigger) {
        *lock(&self.refetch_trigger) = Some(trigger);
    }

    /// Looks a key up; never blocks on anything slow.
    pub fn lookup(&self, kid: Option<&str>) -> Lookup {
        match &mut *lock(&self.keys) {
            Keys::Empty => Lookup::Unavailable,
            Keys::Pem(key) => Lookup::Found(key.clone()),
            Keys::Jwks(cache) => match kid.and_then(|kid| cache.get(kid)) {
                Some(key) => Lookup::Found(key.clone()),
                None => Lookup::UnknownKid,
            },
        }
    }

    /// Looks a key up; on an unknown kid, waits (bounded) for a refetch if
    /// the refetch bound allows one, then looks again.
    pub fn lookup_or_refetch(&self, kid: Option<&str>) -> Lookup {
        match self.lookup(kid) {
            Lookup::UnknownKid if kid.is_some() => {}
            other => return other,
        }
        let Some(done) = self.request_refetch() else {
            return Lookup::UnknownKid;
        };
        done.wait_timeout(self.fetch_timeout);
        self.lookup(kid)
    }

    /// Joins the refetch in flight, or starts one if the bound allows.
    /// `None`: no refetch now (too soon after the last one).
    fn request_refetch(&self) -> Option<Arc<SyncFlag>> {
        let mut state = lock(&self.refetch);
        if let Some(flag) = &state.in_flight {
            return Some(flag.clone());
        }
        if let Some(last) = state.last_fetch_started {
            if last.elapsed() < self.min_refetch {
                return None;
            }
        }
        let trigger = lock(&self.refetch_trigger);
        if !trigger.as_ref().is_some_and(|ask| ask()) {
            return None;
        }
        let flag = Arc::new(SyncFlag::new());
        state.in_flight = Some(flag.clone());
        state.last_fetch_started = Some(Instant::now());
        Some(flag)
    }

    /// Called by the refresher when any fetch starts: it counts toward the bound.
    pub fn fetch_started(&self) {
        lock(&self.refetch).last_fetch_started = Some(Instant::now());
    }

    /// Called by the refresher when any fetch ends: wakes waiting requests.
    pub fn fetch_finished(&self) {
        if let Some(flag) = lock(&self.refetch).in_flight.take() {
            flag.fire();
        }
    }

    /// Replaces all keys with a PEM key.
    pub fn install_pem(&self, key: VerifyingKey) {
        self.swap(Keys::Pem(Arc::new(key)));
    }

    /// Replaces all keys with a JWKS key set (keys without kid are skipped
    /// by the parser). Returns how many were kept: at most the capacity.
    pub fn install_jwks(&self, keys: Vec<VerifyingKey>) -> usize {
        let mut cache = LruCache::new(self.capacity);
        for key in keys {
            if let Some(kid) = key.kid() {
                cache.put(kid.to_string(), Arc::new(key));
            }
        }
        let kept = cache.len();
        self.swap(Keys::Jwks(cache));
        kept
    }

    fn swap(&self, new_keys: Keys) {
        let old = std::mem::replace(&mut *lock(&self.keys), new_keys);
        self.generation.fetch_add(1, Ordering::Release);
        drop(old); // freed outside the lock
    }

    /// Number of keys held (0 before the first load).
    pub fn len(&self) -> usize {
        match &*lock(&self.keys) {
            Keys::Empty => 0,
            Keys::Pem(_) => 1,
            Keys::Jwks(cache) => cache.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kids held, for logs and `jwtgate check`.
    pub fn kids(&self) -> Vec<String> {
        match &*lock(&self.keys) {
            Keys::Empty => vec![],
            Keys::Pem(_) => vec!["<pem>".to_string()],
            Keys::Jwks(cache) => cache.iter().map(|(kid, _)| kid.clone()).collect(),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use openssl::rsa::Rsa;

    fn key(kid: &str) -> VerifyingKey {
        let rsa = Rsa::generate(2048).unwrap();
        VerifyingKey::from_jwk(&serde_json::json!({
            "kty": "RSA", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        }))
        .unwrap()
    }

    #[test]
    fn lookups_follow_the_installed_set() {
        let store = KeyStore::new(2, Duration::from_secs(10), Duration::from_millis(10));
        assert!(matches!(store.lookup(Some("a")), Lookup::Unavailable));
        let g0 = store.generation();
        assert_eq!(
            store.install_jwks(vec![key("a"), key("b"), key("c")]),
            2,
            "capacity bounds the set"
        );
        assert!(store.generation() > g0);
        assert!(matches!(store.lookup(Some("c")), Lookup::Found(_)));
        assert!(matches!(store.lookup(Some("zzz")), Lookup::UnknownKid));
        assert!(matches!(store.lookup(None), Lookup::UnknownKid));
    }

    #[test]
    fn refetches_are_bounded_and_shared() {
        let store = KeyStore::new(4, Duration::from_secs(3600), Duration::from_millis(1));
        let (tx, rx) = std::sync::mpsc::channel();
        store.connect_refresher(Box::new(move || tx.send(()).is_ok()));
        store.install_jwks(vec![key("a")]);
        for i in 0..100 {
            assert!(matches!(
                store.lookup_or_refetch(Some(&format!("kid{i}"))),
                Lookup::UnknownKid
            ));
        }
        assert_eq!(
            rx.try_iter().count(),
            1,
            "one refetch for a hundred unknown kids"
        );
        store.fetch_finished();
        assert!(matches!(
            store.lookup_or_refetch(Some("a")),
            Lookup::Found(_)
        ));
    }
}
