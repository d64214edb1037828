//! One connection: read requests, answer them in order, and close cleanly.
//!
//! The loop reads what the socket has (without blocking), answers every
//! complete request in the buffer, writes the answers, and waits for the
//! socket only when there is nothing else to do. Every wait has a deadline:
//! the header-read timeout while a request is arriving (or a new connection
//! has sent nothing yet), the idle timeout otherwise. Before it closes, the
//! connection writes every answer it owes (an error answer comes after the
//! answers to the requests before it), then shuts down its side and reads
//! and drops what the client still sends for a moment, so that the client
//! gets the answers rather than a reset.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use may::io::WaitIo;
use may::net::TcpStream;

use crate::http_server::HttpService;
use crate::request::{self, Decoded};
use crate::response::{self, ConnectionHeader, Response, ResponseHeader, Status};
use crate::shared::{Shared, Slot};

const BUF_LEN: usize = 4096 * 8;
/// Above this many unsent response bytes, no more requests are read until
/// the client reads (a client that pipelines without reading cannot grow
/// the response buffer).
const RSP_HIGH_WATER: usize = 8 * BUF_LEN;
/// How long, and how much, a closing connection keeps reading (and
/// dropping) of what the client still sends, so that its answer is not lost
/// to a reset.
const LINGER_MS: u64 = 2_000;
const LINGER_BYTES: usize = 1024 * 1024;

/// The socket of a connection, its slot, and the body being read.
pub(crate) struct ConnIo {
    pub(crate) stream: TcpStream,
    pub(crate) shared: Arc<Shared>,
    slot: Arc<Slot>,
    slot_index: usize,
    /// Body bytes of the current request not read or skipped yet.
    pub(crate) body_left: u64,
}

impl ConnIo {
    pub(crate) fn new(stream: TcpStream, shared: Arc<Shared>) -> ConnIo {
        let (slot, slot_index) = shared.register(stream.waker());
        ConnIo {
            stream,
            shared,
            slot,
            slot_index,
            body_left: 0,
        }
    }

    /// Waits until the socket is ready, the server wakes the connection
    /// (draining), or `deadline` (ms) passes; true when it has passed.
    #[inline]
    fn wait(&mut self, deadline: u64) -> bool {
        if self.shared.now_ms() >= deadline {
            return true;
        }
        self.slot.set_deadline(deadline);
        self.stream.wait_io();
        self.shared.now_ms() >= deadline
    }

    /// Reads at least one byte into `buf`, waiting (up to the header-read
    /// timeout without data) if needed. 0 means the peer closed.
    pub(crate) fn read_more(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            reserve_buf(buf);
            let spare: &mut [u8] = unsafe { std::mem::transmute(buf.chunk_mut()) };
            match self.stream.inner_mut().read(spare) {
                Ok(n) => {
                    unsafe { buf.advance_mut(n) };
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let deadline = Shared::deadline(self.shared.now_ms(), self.shared.header_ms);
                    if self.wait(deadline) {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "request body read timed out",
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops the rest of the current body as far as the buffer and the
    /// socket have it, without waiting. True when the whole body is gone.
    #[inline]
    fn skip_body(&mut self, req_buf: &mut BytesMut, peer_eof: &mut bool) -> io::Result<bool> {
        if self.body_left == 0 {
            return Ok(true);
        }
        let buffered = (req_buf.len() as u64).min(self.body_left);
        req_buf.advance(buffered as usize);
        self.body_left -= buffered;
        while self.body_left > 0 {
            // read straight from the socket, no further than the body ends,
            // into the (empty) buffer's spare room, and forget it
            reserve_buf(req_buf);
            let spare: &mut [u8] = unsafe { std::mem::transmute(req_buf.chunk_mut()) };
            let want = (spare.len() as u64).min(self.body_left) as usize;
            match self.stream.inner_mut().read(&mut spare[..want]) {
                Ok(0) => {
                    *peer_eof = true;
                    break;
                }
                Ok(n) => self.body_left -= n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.body_left == 0)
    }

    /// Writes all of `rsp_buf`, waiting for the client up to the idle
    /// timeout at a time. False when it timed out.
    fn flush(&mut self, rsp_buf: &mut BytesMut) -> io::Result<bool> {
        loop {
            nonblock_write(self.stream.inner_mut(), rsp_buf)?;
            if rsp_buf.is_empty() {
                return Ok(true);
            }
            let deadline = Shared::deadline(self.shared.now_ms(), self.shared.idle_ms);
            if self.wait(deadline) {
                return Ok(false);
            }
        }
    }

    /// After the last answer: shut down our side, then read and drop what
    /// the client still sends until it closes, for at most [`LINGER_MS`]
    /// and [`LINGER_BYTES`].
    fn linger(&mut self, buf: &mut BytesMut) {
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let deadline = self.shared.now_ms().saturating_add(LINGER_MS);
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            buf.clear();
            let state = nonblock_read(self.stream.inner_mut(), buf);
            dropped += buf.len();
            match state {
                Ok(ReadState::Blocked) => {
                    if self.wait(deadline) {
                        return;
                    }
                }
                Ok(ReadState::Full) if self.shared.now_ms() < deadline => {}
                _ => return,
            }
        }
    }
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        self.shared.unregister(self.slot_index);
    }
}

enum ReadState {
    /// The socket has no more data now.
    Blocked,
    /// The buffer's free room is full; there may be more.
    Full,
    /// The peer closed its side.
    Eof,
}

/// Reads what the socket has, up to the buffer's free room (at least 1 KiB).
fn nonblock_read(stream: &mut impl Read, req_buf: &mut BytesMut) -> io::Result<ReadState> {
    reserve_buf(req_buf);
    let read_buf: &mut [u8] = unsafe { std::mem::transmute(req_buf.chunk_mut()) };
    let len = read_buf.len();

    let mut read_cnt = 0;
    let mut state = ReadState::Full;
    while read_cnt < len {
        match stream.read(unsafe { read_buf.get_unchecked_mut(read_cnt..) }) {
            Ok(0) => {
                state = ReadState::Eof;
                break;
            }
            Ok(n) => read_cnt += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                state = ReadState::Blocked;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }

    unsafe { req_buf.advance_mut(read_cnt) };
    Ok(state)
}

fn nonblock_write(stream: &mut impl Write, rsp_buf: &mut BytesMut) -> io::Result<usize> {
    let write_buf = rsp_buf.chunk();
    let len = write_buf.len();
    let mut write_cnt = 0;
    while write_cnt < len {
        match stream.write(unsafe { write_buf.get_unchecked(write_cnt..) }) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::BrokenPipe, "write closed")),
            Ok(n) => write_cnt += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    rsp_buf.advance(write_cnt);
    Ok(write_cnt)
}

#[inline]
fn reserve_buf(buf: &mut BytesMut) {
    let rem = buf.capacity() - buf.len();
    if rem < 1024 {
        buf.reserve(BUF_LEN - rem);
    }
}

/// The connection's header slots, typed for headers that borrow the
/// request buffer for `'b`.
#[allow(clippy::unnecessary_cast)] // the cast changes the lifetime only
fn header_slots_for<'a, 'b>(
    slots: &'a mut [MaybeUninit<httparse::Header<'static>>],
) -> &'a mut [MaybeUninit<httparse::Header<'b>>] {
    // SAFETY: the slots are uninitialised storage that httparse fills; the
    // headers parsed into them borrow the request buffer and are not used
    // after their request is answered, before the buffer changes.
    unsafe { &mut *(slots as *mut [MaybeUninit<httparse::Header<'static>>] as *mut [_]) }
}

/// Serves one connection until it closes; returns why it closed.
pub(crate) fn serve<T: HttpService>(io: &mut ConnIo, mut service: T) -> io::Result<&'static str> {
    let mut req_buf = BytesMut::with_capacity(BUF_LEN);
    let mut rsp_buf = BytesMut::with_capacity(BUF_LEN);
    let mut body_buf = BytesMut::with_capacity(4096);
    let mut rsp_headers: Vec<ResponseHeader> = Vec::with_capacity(16);
    let mut header_slots: Box<[MaybeUninit<httparse::Header<'static>>]> =
        (0..io.shared.config.max_headers)
            .map(|_| MaybeUninit::uninit())
            .collect();
    let (idle_ms, header_ms) = (io.shared.idle_ms, io.shared.header_ms);

    // bytes of the buffered partial head already searched for its end
    let mut scanned = 0;
    // no request has arrived yet on this connection
    let mut fresh = true;
    // since when the request now arriving (or the first one) is awaited
    let mut request_since = Some(io.shared.now_ms());
    let mut peer_eof = false;
    // the connection closes once its answers are written, and why
    let mut close: Option<&'static str> = None;
    // the answers given while draining say `Connection: close`
    let mut drain_close = false;

    loop {
        let mut read_blocked = false;
        if close.is_none() && !drain_close && !peer_eof && rsp_buf.len() < RSP_HIGH_WATER {
            match nonblock_read(io.stream.inner_mut(), &mut req_buf)? {
                ReadState::Blocked => read_blocked = true,
                ReadState::Full => {}
                ReadState::Eof => peer_eof = true,
            }
        }

        // answer every complete request in the buffer, in order
        let mut answered = false;
        while close.is_none() && !req_buf.is_empty() && rsp_buf.len() < RSP_HIGH_WATER {
            let headers = header_slots_for(&mut header_slots);
            match request::decode(headers, &mut req_buf, io, &mut scanned) {
                Decoded::Partial => break,
                Decoded::Reject(status, why) => {
                    debug!("answered {} and closing: {why}", status.code());
                    response::encode_status(status, &mut rsp_buf);
                    close = Some(why);
                }
                Decoded::Request(req, framing) => {
                    fresh = false;
                    answered = true;
                    let version = req.version();
                    let mut rsp = Response::new(&mut body_buf, &mut rsp_headers);
                    let outcome =
                        panic::catch_unwind(AssertUnwindSafe(|| service.call(req, &mut rsp)));
                    let body_done = io.skip_body(&mut req_buf, &mut peer_eof)?;
                    let failure = match outcome {
                        Ok(Ok(())) if rsp.headers_overflowed() => Some("too many response headers"),
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => {
                            error!("service error (answered 500): {e}");
                            Some("service error")
                        }
                        Err(_) => {
                            error!("service panicked (answered 500)");
                            Some("service panicked")
                        }
                    };
                    if let Some(why) = failure {
                        drop(rsp);
                        response::encode_status(Status::InternalError, &mut rsp_buf);
                        close = Some(why);
                        continue;
                    }
                    drain_close |= io.shared.draining.load(Ordering::Relaxed);
                    let reason = if !body_done {
                        Some("request body not received whole")
                    } else if rsp.wants_close() {
                        Some("the service closes")
                    } else if framing.close {
                        Some("Connection: close")
                    } else if version == 0 && !framing.keep_alive {
                        Some("HTTP/1.0")
                    } else {
                        None
                    };
                    let connection = if reason.is_some() || drain_close {
                        ConnectionHeader::Close
                    } else if version == 0 {
                        ConnectionHeader::KeepAlive
                    } else {
                        ConnectionHeader::Default
                    };
                    reserve_buf(&mut rsp_buf);
                    response::encode(rsp, connection, &mut rsp_buf);
                    close = reason;
                }
            }
        }
        // the loop stopped at the response high-water mark: more to answer
        let stalled = close.is_none() && !req_buf.is_empty() && rsp_buf.len() >= RSP_HIGH_WATER;
        if drain_close && close.is_none() && !stalled {
            // every complete request received is answered; no more are read
            close = Some("draining");
        }

        if !fresh && req_buf.is_empty() {
            request_since = None;
        } else if answered || request_since.is_none() {
            // a new request is arriving (the head-read clock starts now)
            request_since = Some(io.shared.now_ms());
        }

        if !rsp_buf.is_empty() {
            nonblock_write(io.stream.inner_mut(), &mut rsp_buf)?;
        }

        if peer_eof && close.is_none() {
            // answers to the complete requests are owed; a partial one is
            // never finished
            if !io.flush(&mut rsp_buf)? {
                return Ok("write timed out");
            }
            if stalled {
                continue;
            }
            return Ok("closed by the peer");
        }
        if let Some(why) = close {
            if !io.flush(&mut rsp_buf)? {
                return Ok("write timed out");
            }
            if !peer_eof {
                io.linger(&mut req_buf);
            }
            return Ok(why);
        }
        if io.shared.draining.load(Ordering::Relaxed)
            && !fresh
            && req_buf.is_empty()
            && rsp_buf.is_empty()
        {
            return Ok("idle while draining");
        }

        if read_blocked || !rsp_buf.is_empty() {
            let deadline = match request_since {
                Some(since) => Shared::deadline(since, header_ms),
                None => Shared::deadline(io.shared.now_ms(), idle_ms),
            };
            if io.wait(deadline) {
                if req_buf.is_empty() {
                    return Ok(if fresh {
                        "no request within the header-read timeout"
                    } else if rsp_buf.is_empty() {
                        "idle timeout"
                    } else {
                        "write timed out"
                    });
                }
                debug!("answered 408 and closing: request head not received in time");
                response::encode_status(Status::RequestTimeout, &mut rsp_buf);
                close = Some("request timeout");
            }
        }
    }
}
