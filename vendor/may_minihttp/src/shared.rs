//! What a server's accept loop, its connections and its [`ServerHandle`]
//! share: the config, the stop and drain flags, the count of live
//! connections, and one slot per connection through which a connection
//! waiting for its socket can be woken (when its deadline passes, or when
//! the server drains).
//!
//! Timeouts are kept here rather than with may's per-read timers: a
//! connection waits with `WaitIo::wait_io` (no timer), after storing its
//! deadline in its slot; one timer coroutine per server wakes the slots
//! whose deadline has passed, a few times a second. A wake-up that comes
//! when the connection is not waiting only makes its next wait return at
//! once, so none is lost and a spurious one is harmless. (may's own read
//! timeouts would arm a timer per blocking read, and waking such a read
//! from another thread is not safe.)
//!
//! [`ServerHandle`]: crate::ServerHandle

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use may::io::WaitIoWaker;

use crate::config::HttpConfig;

/// A deadline that never comes.
pub(crate) const NEVER: u64 = u64::MAX;

pub(crate) struct Shared {
    pub(crate) config: HttpConfig,
    /// `config.idle_timeout` in ms ([`NEVER`] if none).
    pub(crate) idle_ms: u64,
    /// `config.header_read_timeout` in ms ([`NEVER`] if none).
    pub(crate) header_ms: u64,
    /// The accept loop should stop.
    pub(crate) stopping: AtomicBool,
    /// Every response says `Connection: close`; idle connections close.
    pub(crate) draining: AtomicBool,
    /// The accept loop runs (its listener is open).
    pub(crate) accepting: AtomicBool,
    /// Connections accepted and not yet closed.
    pub(crate) live: AtomicUsize,
    /// Wakes the accept loop while it waits for a connection.
    pub(crate) listener_waker: Mutex<Option<WaitIoWaker>>,
    conns: Mutex<Registry>,
    epoch: Instant,
    /// Milliseconds since `epoch`, updated at every tick of the timer.
    now_ms: AtomicU64,
    tick: Duration,
}

/// A live connection, as the timer and the server handle see it.
pub(crate) struct Slot {
    /// When the connection's current wait ends (ms since the epoch).
    deadline_ms: AtomicU64,
    waker: WaitIoWaker,
}

#[derive(Default)]
struct Registry {
    slots: Vec<Option<Arc<Slot>>>,
    free: Vec<usize>,
}

impl Shared {
    pub(crate) fn new(config: HttpConfig) -> Arc<Shared> {
        let shortest = [config.idle_timeout, config.header_read_timeout]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Duration::from_secs(2));
        let ms = |t: Option<Duration>| {
            t.map_or(NEVER, |t| u64::try_from(t.as_millis()).unwrap_or(NEVER))
        };
        Arc::new(Shared {
            idle_ms: ms(config.idle_timeout),
            header_ms: ms(config.header_read_timeout),
            config,
            stopping: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            accepting: AtomicBool::new(true),
            live: AtomicUsize::new(0),
            listener_waker: Mutex::new(None),
            conns: Mutex::new(Registry::default()),
            epoch: Instant::now(),
            now_ms: AtomicU64::new(0),
            tick: (shortest / 8).clamp(Duration::from_millis(10), Duration::from_millis(250)),
        })
    }

    /// The coarse clock: milliseconds since the server started, at most one
    /// tick old.
    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Acquire)
    }

    /// `from` plus `timeout_ms` (saturating: [`NEVER`] stays never).
    #[inline]
    pub(crate) fn deadline(from: u64, timeout_ms: u64) -> u64 {
        from.saturating_add(timeout_ms)
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // nothing in a critical section panics; recover from a poison anyway
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connection; returns its slot and the slot's index.
    pub(crate) fn register(&self, waker: WaitIoWaker) -> (Arc<Slot>, usize) {
        let slot = Arc::new(Slot {
            deadline_ms: AtomicU64::new(NEVER),
            waker,
        });
        let mut registry = self.registry();
        let index = match registry.free.pop() {
            Some(i) => {
                registry.slots[i] = Some(slot.clone());
                i
            }
            None => {
                registry.slots.push(Some(slot.clone()));
                registry.slots.len() - 1
            }
        };
        (slot, index)
    }

    pub(crate) fn unregister(&self, index: usize) {
        let mut registry = self.registry();
        if let Some(entry) = registry.slots.get_mut(index) {
            if entry.take().is_some() {
                registry.free.push(index);
            }
        }
    }

    /// Wakes every connection (they check the drain flag).
    pub(crate) fn wake_all(&self) {
        for slot in self.registry().slots.iter().flatten() {
            slot.waker.wakeup();
        }
    }

    /// Starts the timer coroutine: it advances the coarse clock and wakes
    /// the connections whose deadline has passed. It ends when the server
    /// has stopped accepting and has no connection left.
    pub(crate) fn start_timer(self: &Arc<Self>) -> std::io::Result<()> {
        let shared = self.clone();
        let builder = may::coroutine::Builder::new().name("http-timer".to_owned());
        let timer = move || loop {
            may::coroutine::sleep(shared.tick);
            let now = u64::try_from(shared.epoch.elapsed().as_millis()).unwrap_or(NEVER - 1);
            shared.now_ms.store(now, Ordering::Release);
            if !shared.accepting.load(Ordering::Acquire) && shared.live.load(Ordering::Acquire) == 0
            {
                break;
            }
            for slot in shared.registry().slots.iter().flatten() {
                if slot.deadline_ms.load(Ordering::Relaxed) <= now {
                    slot.waker.wakeup();
                }
            }
        };
        // SAFETY: as `go!`; the closure owns everything it uses.
        unsafe { builder.spawn(timer) }.map(drop)
    }
}

impl Slot {
    /// Sets when the connection's next wait should end.
    #[inline]
    pub(crate) fn set_deadline(&self, deadline_ms: u64) {
        self.deadline_ms.store(deadline_ms, Ordering::Relaxed);
    }
}

/// Counts a connection as live while it exists (also when its coroutine
/// unwinds).
pub(crate) struct LiveGuard(pub(crate) Arc<Shared>);

impl LiveGuard {
    pub(crate) fn new(shared: &Arc<Shared>) -> LiveGuard {
        shared.live.fetch_add(1, Ordering::AcqRel);
        LiveGuard(shared.clone())
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}
