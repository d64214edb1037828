//! The keys in memory, how old they are, and the bound on refetches for
//! unknown `kid`s.
//!
//! Readers take a short `std::sync::Mutex` to look a key up (the LRU moves
//! the key to the front, so even a lookup writes). The lock is never held
//! across I/O: the refresher builds a whole new key set off to the side and
//! swaps it in with one assignment, so a reload is atomic and a failed
//! fetch never touches the keys in use. A new set that holds the same keys
//! (same kids, same key material) as the one in use is not swapped in: the
//! generation, and with it the verified-token cache, stays.
//!
//! Keys fetched from a JWKS age: once they are older than `max_stale`
//! (nothing newer could be fetched for that long) they are no longer used,
//! and lookups answer [`Lookup::Unavailable`] until a fetch succeeds.
//!
//! An unknown `kid` (say, right after Clerk rotated its keys) asks for a
//! refetch through the [`RefetchTrigger`] the refresher connected and waits
//! for it, at most `fetch_timeout`. At most one refetch is in flight, and a
//! new one starts at most once per `min_refetch` (and not while the key
//! server asked us to hold off), however many unknown kids arrive: a flood
//! of random kids costs the key server one request per interval.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// The keys in use and how fresh they are.
struct Held {
    keys: Keys,
    /// Unix seconds of the fetch that produced them (0: none).
    fetched_at: u64,
    /// JWKS keys are refused from this instant on (`max_stale` after
    /// `fetched_at`); `None` for PEM keys and when no bound is set.
    usable_until: Option<Instant>,
    /// The generation was bumped for the staleness already.
    expired: bool,
}

/// The result of a key lookup.
#[derive(Debug)]
pub enum Lookup {
    Found(Arc<VerifyingKey>),
    UnknownKid,
    /// No key was ever loaded, or the keys are older than `max_stale`.
    Unavailable,
}

#[derive(Default)]
struct RefetchState {
    /// Fired when the refetch in flight finishes (either way).
    in_flight: Option<Arc<SyncFlag>>,
    last_fetch_started: Option<Instant>,
    /// The key server asked for no request before this (429, Retry-After).
    hold_off_until: Option<Instant>,
}

/// What an install did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Installed {
    /// Keys held now (at most the capacity).
    pub held: usize,
    /// `false`: the same keys as before; only their age was renewed.
    pub changed: bool,
}

/// The verification keys, their age and the refetch bound.
pub struct KeyStore {
    held: Mutex<Held>,
    capacity: NonZeroUsize,
    /// Bumped whenever the key set changes, or the keys go stale.
    generation: AtomicU64,
    refetch: Mutex<RefetchState>,
    min_refetch: Duration,
    fetch_timeout: Duration,
    /// JWKS keys older than this are not used (`None`: no bound).
    max_stale: Option<Duration>,
    refetch_trigger: Mutex<Option<RefetchTrigger>>,
}

/// The Unix time in seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl KeyStore {
    pub fn new(capacity: usize, min_refetch: Duration, fetch_timeout: Duration) -> KeyStore {
        KeyStore {
            held: Mutex::new(Held {
                keys: Keys::Empty,
                fetched_at: 0,
                usable_until: None,
                expired: false,
            }),
            capacity: NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN),
            generation: AtomicU64::new(0),
            refetch: Mutex::new(RefetchState::default()),
            min_refetch,
            fetch_timeout,
            max_stale: None,
            refetch_trigger: Mutex::new(None),
        }
    }

    /// Bounds how old JWKS keys may get before they are refused.
    pub fn with_max_stale(mut self, max_stale: Duration) -> KeyStore {
        self.max_stale = Some(max_stale);
        self
    }

    /// Connects the store to the refresher that serves its refetches.
    pub fn connect_refresher(&self, trigger: RefetchTrigger) {
        *lock(&self.refetch_trigger) = Some(trigger);
    }

    /// Looks a key up; never blocks on anything slow.
    pub fn lookup(&self, kid: Option<&str>) -> Lookup {
        let held = &mut *lock(&self.held);
        match &mut held.keys {
            Keys::Empty => Lookup::Unavailable,
            Keys::Pem(key) => Lookup::Found(key.clone()),
            Keys::Jwks(_) if held.usable_until.is_some_and(|u| Instant::now() >= u) => {
                Lookup::Unavailable
            }
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
    /// `None`: no refetch now (too soon after the last one, or the key
    /// server asked us to wait).
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
        if state.hold_off_until.is_some_and(|t| Instant::now() < t) {
            return None;
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

    /// The key server asked for no request before `until` (HTTP 429 or
    /// `Retry-After`): unknown kids do not refetch until then.
    pub fn hold_off_until(&self, until: Instant) {
        lock(&self.refetch).hold_off_until = Some(until);
    }

    /// Replaces all keys with a PEM key (unless it is the same key).
    pub fn install_pem(&self, key: VerifyingKey) -> Installed {
        let mut held = lock(&self.held);
        held.fetched_at = unix_now();
        held.usable_until = None;
        held.expired = false;
        if let Keys::Pem(current) = &held.keys {
            if current.same_key(&key) {
                return Installed {
                    held: 1,
                    changed: false,
                };
            }
        }
        let old = std::mem::replace(&mut held.keys, Keys::Pem(Arc::new(key)));
        self.generation.fetch_add(1, Ordering::Release);
        drop(held);
        drop(old); // freed outside the lock
        Installed {
            held: 1,
            changed: true,
        }
    }

    /// Replaces all keys with a JWKS key set fetched just now (keys without
    /// kid are skipped by the parser). Returns how many were kept: at most
    /// the capacity.
    pub fn install_jwks(&self, keys: Vec<VerifyingKey>) -> usize {
        self.install_jwks_fetched_at(keys, unix_now()).held
    }

    /// Replaces all keys with a JWKS key set fetched at `fetched_at` (Unix
    /// seconds; earlier than now for keys restored from the state
    /// directory). The same keys as those in use only renew their age.
    pub fn install_jwks_fetched_at(&self, keys: Vec<VerifyingKey>, fetched_at: u64) -> Installed {
        let mut cache = LruCache::new(self.capacity);
        for key in keys {
            if let Some(kid) = key.kid() {
                cache.put(kid.to_string(), Arc::new(key));
            }
        }
        let kept = cache.len();
        let age = Duration::from_secs(unix_now().saturating_sub(fetched_at));
        let usable_until = self
            .max_stale
            .map(|max| Instant::now() + max.saturating_sub(age));
        let mut held = lock(&self.held);
        held.fetched_at = fetched_at;
        held.usable_until = usable_until;
        held.expired = false;
        if let Keys::Jwks(current) = &held.keys {
            let same = current.len() == cache.len()
                && cache
                    .iter()
                    .all(|(kid, key)| current.peek(kid).is_some_and(|old| old.same_key(key)));
            if same {
                return Installed {
                    held: kept,
                    changed: false,
                };
            }
        }
        let old = std::mem::replace(&mut held.keys, Keys::Jwks(cache));
        self.generation.fetch_add(1, Ordering::Release);
        drop(held);
        drop(old); // freed outside the lock
        Installed {
            held: kept,
            changed: true,
        }
    }

    /// When the JWKS keys in use go stale (`None`: never, or already).
    pub fn stale_at(&self) -> Option<Instant> {
        let held = lock(&self.held);
        match held.keys {
            Keys::Jwks(_) if !held.expired => held.usable_until,
            _ => None,
        }
    }

    /// Once the keys in use are past `max_stale`, marks them so (bumping the
    /// generation, which empties the verified-token cache) and returns
    /// their age in seconds; `None` otherwise, and after the first time.
    pub fn expire_if_stale(&self) -> Option<u64> {
        let mut held = lock(&self.held);
        let due = matches!(held.keys, Keys::Jwks(_))
            && !held.expired
            && held.usable_until.is_some_and(|u| Instant::now() >= u);
        if !due {
            return None;
        }
        held.expired = true;
        self.generation.fetch_add(1, Ordering::Release);
        Some(unix_now().saturating_sub(held.fetched_at))
    }

    /// Keys are held and not too old to use.
    pub fn is_usable(&self) -> bool {
        let held = lock(&self.held);
        match held.keys {
            Keys::Empty => false,
            Keys::Pem(_) => true,
            Keys::Jwks(_) => held.usable_until.is_none_or(|u| Instant::now() < u),
        }
    }

    /// Unix seconds of the fetch that produced the keys in use (restored
    /// keys: of the fetch that saved them); `None` before any load.
    pub fn fetched_at(&self) -> Option<u64> {
        let held = lock(&self.held);
        match held.keys {
            Keys::Empty => None,
            _ => Some(held.fetched_at),
        }
    }

    /// The configured staleness bound.
    pub fn max_stale(&self) -> Option<Duration> {
        self.max_stale
    }

    /// Number of keys held (0 before the first load).
    pub fn len(&self) -> usize {
        match &lock(&self.held).keys {
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
        match &lock(&self.held).keys {
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

    #[test]
    fn the_same_keys_again_keep_the_generation() {
        let store = KeyStore::new(4, Duration::from_secs(10), Duration::from_millis(10));
        let (a, b) = (key("a"), key("b"));
        assert!(
            store
                .install_jwks_fetched_at(vec![a.clone(), b.clone()], 1)
                .changed
        );
        let g = store.generation();
        let again = store.install_jwks_fetched_at(vec![b.clone(), a.clone()], 2);
        assert_eq!(
            again,
            Installed {
                held: 2,
                changed: false
            },
            "order does not matter"
        );
        assert_eq!(store.generation(), g);
        assert_eq!(store.fetched_at(), Some(2), "the age is renewed");
        // Another key under a known kid, a kid more or less: a change.
        for set in [
            vec![a.clone(), key("b")],
            vec![a.clone()],
            vec![a.clone(), b.clone(), key("c")],
        ] {
            let g = store.generation();
            assert!(store.install_jwks_fetched_at(set, 3).changed);
            assert!(store.generation() > g);
        }
        let pem = |text: &str| VerifyingKey::from_pem(text).unwrap();
        let rsa = Rsa::generate(2048).unwrap();
        let text = String::from_utf8(rsa.public_key_to_pem().unwrap()).unwrap();
        assert!(store.install_pem(pem(&text)).changed);
        let g = store.generation();
        assert!(!store.install_pem(pem(&text)).changed);
        assert_eq!(store.generation(), g);
    }

    #[test]
    fn stale_keys_are_refused_and_retired_once() {
        let store = KeyStore::new(4, Duration::from_secs(10), Duration::from_millis(10))
            .with_max_stale(Duration::from_secs(100));
        let a = key("a"); // made before reading the clock: RSA takes a while
        let now = unix_now();
        store.install_jwks_fetched_at(vec![a.clone()], now - 98);
        assert!(store.is_usable());
        assert!(matches!(store.lookup(Some("a")), Lookup::Found(_)));
        assert!(store.stale_at().is_some());
        assert_eq!(store.expire_if_stale(), None, "not yet");
        store.install_jwks_fetched_at(vec![a], now - 100);
        assert!(!store.is_usable());
        assert!(matches!(store.lookup(Some("a")), Lookup::Unavailable));
        let g = store.generation();
        assert!(store.expire_if_stale().is_some_and(|age| age >= 100));
        assert_eq!(store.generation(), g + 1, "cached decisions go too");
        assert_eq!(store.expire_if_stale(), None, "once");
        assert_eq!(store.stale_at(), None);
        // A good fetch makes them usable again.
        store.install_jwks(vec![key("a")]);
        assert!(store.is_usable());
        // A PEM key does not age; nor do keys without a bound.
        let unbounded = KeyStore::new(4, Duration::from_secs(10), Duration::from_millis(10));
        unbounded.install_jwks_fetched_at(vec![key("a")], 1);
        assert!(unbounded.is_usable());
    }

    #[test]
    fn a_hold_off_stops_unknown_kid_refetches() {
        let store = KeyStore::new(4, Duration::from_millis(1), Duration::from_millis(1));
        let (tx, rx) = std::sync::mpsc::channel();
        store.connect_refresher(Box::new(move || tx.send(()).is_ok()));
        store.install_jwks(vec![key("a")]);
        store.hold_off_until(Instant::now() + Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(
            store.lookup_or_refetch(Some("x")),
            Lookup::UnknownKid
        ));
        assert_eq!(rx.try_iter().count(), 0);
        store.hold_off_until(Instant::now());
        assert!(matches!(
            store.lookup_or_refetch(Some("x")),
            Lookup::UnknownKid
        ));
        assert_eq!(rx.try_iter().count(), 1);
    }
}
