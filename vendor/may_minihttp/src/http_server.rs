//! http server implementation on top of `MAY`

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use may::coroutine;
use may::io::WaitIo;
use may::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::HttpConfig;
use crate::connection::{self, ConnIo};
use crate::request::Request;
use crate::response::Response;
use crate::shared::{LiveGuard, Shared};

/// the http service trait
/// user code should supply a type that impl the `call` method for the http server
///
/// Returning `Err` answers `500 Internal Server Error` (the error is logged,
/// not sent) and closes the connection; so does a panic.
pub trait HttpService {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()>;
}

pub trait HttpServiceFactory: Send + Sized + 'static {
    type Service: HttpService + Send + 'static;
    // create a new http service for each connection
    fn new_service(&self, id: usize) -> Self::Service;

    /// Spawns the http service, binding to the given address with
    /// [`HttpConfig::default()`]
    /// return a coroutine that you can cancel it when need to stop the service
    fn start<L: ToSocketAddrs>(self, addr: L) -> io::Result<coroutine::JoinHandle<()>> {
        self.start_with_config(addr, HttpConfig::default())
            .map(ServerHandle::into_join_handle)
    }

    /// Binds `addr` (with `SO_REUSEPORT` only if `config.reuse_port`) and
    /// serves it with `config`; the handle stops and drains the server.
    fn start_with_config<L: ToSocketAddrs>(
        self,
        addr: L,
        config: HttpConfig,
    ) -> io::Result<ServerHandle> {
        let listener = bind(addr, &config)?;
        self.start_with_listener(listener, config)
    }

    /// Serves a socket that is already listening (e.g. one passed by
    /// systemd's socket activation); `config.reuse_port` and
    /// `config.backlog` do not apply to it.
    fn start_with_listener(
        self,
        listener: std::net::TcpListener,
        config: HttpConfig,
    ) -> io::Result<ServerHandle> {
        start_server(listener, config, move |id| self.new_service(id))
    }
}

/// this is the generic type http server
/// with a type parameter that impl `HttpService` trait
///
pub struct HttpServer<T>(pub T);

impl<T: HttpService + Clone + Send + Sync + 'static> HttpServer<T> {
    /// Spawns the http service, binding to the given address with
    /// [`HttpConfig::default()`]
    /// return a coroutine that you can cancel it when need to stop the service
    pub fn start<L: ToSocketAddrs>(self, addr: L) -> io::Result<coroutine::JoinHandle<()>> {
        self.start_with_config(addr, HttpConfig::default())
            .map(ServerHandle::into_join_handle)
    }

    /// As [`HttpServiceFactory::start_with_config`].
    pub fn start_with_config<L: ToSocketAddrs>(
        self,
        addr: L,
        config: HttpConfig,
    ) -> io::Result<ServerHandle> {
        let listener = bind(addr, &config)?;
        self.start_with_listener(listener, config)
    }

    /// As [`HttpServiceFactory::start_with_listener`].
    pub fn start_with_listener(
        self,
        listener: std::net::TcpListener,
        config: HttpConfig,
    ) -> io::Result<ServerHandle> {
        let service = self.0;
        start_server(listener, config, move |_| service.clone())
    }
}

/// A running server: its address, and the means to stop it gracefully.
///
/// Dropping the handle leaves the server running. A graceful stop:
///
/// ```no_run
/// # use std::time::Duration;
/// # fn stop(server: may_minihttp::ServerHandle) {
/// // 1. close the listening socket (connections still queued in it are
/// //    reset, unless another process shares it)
/// server.stop_accepting();
/// // 2. + 3. every further answer says `Connection: close`; idle
/// //    keep-alive connections close now; requests already arriving are
/// //    read and answered
/// server.drain();
/// // 4. wait for the connections to end, at most 10 s
/// let all_closed = server.wait_closed(std::time::Instant::now() + Duration::from_secs(10));
/// # }
/// ```
///
/// [`shutdown`](Self::shutdown) does the three steps. Every method may be
/// called from a thread or a coroutine; the waiting ones poll with
/// `may::coroutine::sleep`, which does not block a worker.
pub struct ServerHandle {
    shared: Arc<Shared>,
    handle: coroutine::JoinHandle<()>,
    local_addr: SocketAddr,
}

impl ServerHandle {
    /// The address the server listens on (with the real port if 0 was
    /// asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes the listening socket; returns once it is
    /// closed (or after 1 s at most). Connections already accepted go on.
    pub fn stop_accepting(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(waker) = lock(&self.shared.listener_waker).as_ref() {
            waker.wakeup();
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.shared.accepting.load(Ordering::Acquire) && Instant::now() < deadline {
            coroutine::sleep(Duration::from_millis(1));
        }
    }

    /// Starts draining: every further answer says `Connection: close` and
    /// its connection closes after it (pipelined requests already received
    /// are all answered first); idle keep-alive connections close at once;
    /// a request being read is read to its end and answered. A connection
    /// accepted but silent so far gets the header-read timeout to send its
    /// request.
    pub fn drain(&self) {
        self.shared.draining.store(true, Ordering::Release);
        self.shared.wake_all();
    }

    /// Whether [`drain`](Self::drain) was called.
    pub fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Acquire)
    }

    /// Connections accepted and not closed yet.
    pub fn live_connections(&self) -> usize {
        self.shared.live.load(Ordering::Acquire)
    }

    /// Waits until no connection is left or `deadline` passes; true when
    /// none is left.
    pub fn wait_closed(&self, deadline: Instant) -> bool {
        loop {
            if self.live_connections() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            coroutine::sleep(Duration::from_millis(5));
        }
    }

    /// [`stop_accepting`](Self::stop_accepting), [`drain`](Self::drain),
    /// then [`wait_closed`](Self::wait_closed) for at most `grace`; true
    /// when every connection closed in time.
    pub fn shutdown(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        self.stop_accepting();
        self.drain();
        self.wait_closed(deadline)
    }

    /// The accept loop's coroutine.
    pub fn coroutine(&self) -> &coroutine::Coroutine {
        self.handle.coroutine()
    }

    /// Waits until the server stops accepting.
    pub fn join(self) -> std::thread::Result<()> {
        self.handle.join()
    }

    /// The accept loop's join handle (what `start` returns).
    pub fn into_join_handle(self) -> coroutine::JoinHandle<()> {
        self.handle
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Binds the first address that works, like `std::net::TcpListener::bind`,
/// with `SO_REUSEADDR` (a restart may bind while old connections linger in
/// TIME_WAIT; on Linux it never lets two sockets listen on one port),
/// `SO_REUSEPORT` only when `config.reuse_port`, and `config.backlog`; the
/// socket listens, so connections queue in its backlog until a server
/// started with [`HttpServiceFactory::start_with_listener`] accepts them.
/// (`start_with_config` is `bind` and then `start_with_listener`.)
pub fn bind<L: ToSocketAddrs>(addr: L, config: &HttpConfig) -> io::Result<std::net::TcpListener> {
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        match bind_one(addr, config) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on")))
}

fn bind_one(addr: SocketAddr, config: &HttpConfig) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if config.reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(config.backlog)?;
    Ok(socket.into())
}

fn start_server<S, F>(
    listener: std::net::TcpListener,
    config: HttpConfig,
    new_service: F,
) -> io::Result<ServerHandle>
where
    S: HttpService + Send + 'static,
    F: FnMut(usize) -> S + Send + 'static,
{
    let local_addr = listener.local_addr()?;
    // may's `from_raw_fd` panics when the event loop refuses the socket
    let listener = panic::catch_unwind(AssertUnwindSafe(|| unsafe {
        TcpListener::from_raw_fd(listener.into_raw_fd())
    }))
    .map_err(|_| io::Error::other("cannot register the listening socket with may"))?;
    let shared = Shared::new(config.sanitized());
    shared.start_timer()?;
    let accept_shared = shared.clone();
    let builder = coroutine::Builder::new().name("TcpServer".to_owned());
    // SAFETY: as `go!`; the closure owns everything it uses.
    let spawned =
        unsafe { builder.spawn(move || accept_loop(listener, accept_shared, new_service)) };
    match spawned {
        Ok(handle) => Ok(ServerHandle {
            shared,
            handle,
            local_addr,
        }),
        Err(e) => {
            shared.accepting.store(false, Ordering::Release);
            Err(e)
        }
    }
}

fn accept_loop<S, F>(listener: TcpListener, shared: Arc<Shared>, mut new_service: F)
where
    S: HttpService + Send + 'static,
    F: FnMut(usize) -> S,
{
    *lock(&shared.listener_waker) = Some(listener.waker());
    let mut warned: Option<Instant> = None;
    let mut unreported = 0u64;
    while !shared.stopping.load(Ordering::Acquire) {
        match listener.inner().accept() {
            Ok((stream, _)) => spawn_connection(stream, &shared, &mut new_service),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                listener.wait_io();
            }
            Err(e) if is_resource_error(&e) => {
                // out of descriptors or memory: say so (once a second), and
                // pause rather than spin
                unreported += 1;
                if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    warn!("accept failed: {e} ({unreported} times since the last warning); pausing 50 ms");
                    warned = Some(Instant::now());
                    unreported = 0;
                }
                coroutine::sleep(Duration::from_millis(50));
            }
            // the connection is gone already (ECONNABORTED, EPROTO, ...)
            Err(e) => debug!("accept: {e}"),
        }
    }
    *lock(&shared.listener_waker) = None;
    drop(listener);
    shared.accepting.store(false, Ordering::Release);
    debug!("stopped accepting");
}

fn is_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn spawn_connection<S, F>(stream: std::net::TcpStream, shared: &Arc<Shared>, new_service: &mut F)
where
    S: HttpService + Send + 'static,
    F: FnMut(usize) -> S,
{
    let id = stream.as_raw_fd() as usize;
    // may's `from_raw_fd` panics when the event loop refuses the socket
    let stream = match panic::catch_unwind(AssertUnwindSafe(|| unsafe {
        TcpStream::from_raw_fd(stream.into_raw_fd())
    })) {
        Ok(stream) => stream,
        Err(_) => {
            warn!("cannot register an accepted connection with may; closed it");
            return;
        }
    };
    let live = LiveGuard::new(shared);
    let service = new_service(id);
    let shared = shared.clone();
    let builder = coroutine::Builder::new().id(id);
    // SAFETY: as `go!`; the closure owns everything it uses.
    let spawned = unsafe {
        builder.spawn(move || {
            let _live = live;
            let mut io = ConnIo::new(stream, shared);
            match connection::serve(&mut io, service) {
                Ok(why) => debug!("connection closed: {why}"),
                Err(e) => debug!("connection closed: {e}"),
            }
        })
    };
    if let Err(e) = spawned {
        warn!("cannot start a coroutine for a connection: {e}; closed it");
    }
}
