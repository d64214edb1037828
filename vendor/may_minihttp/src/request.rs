use std::fmt;
use std::io::{self, BufRead, Read};
use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};

use crate::connection::ConnIo;
use crate::response::Status;

/// The body of a request: at most `Content-Length` bytes, read from what
/// the server has buffered and then from the socket (each wait for data is
/// bounded by the header-read timeout; it then fails with `TimedOut`).
/// Whatever the service does not read is skipped by the server, never
/// parsed as the next request.
pub struct BodyReader<'buf, 'stream> {
    // bytes read from the socket (the body first, maybe the next requests)
    req_buf: &'buf mut BytesMut,
    // the socket, and how many body bytes are still unread
    io: &'stream mut ConnIo,
}

impl BodyReader<'_, '_> {
    /// Body bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.io.body_left
    }

    fn buffered(&self) -> usize {
        // body_left may exceed usize on 32-bit targets: compare as u64
        (self.req_buf.len() as u64).min(self.io.body_left) as usize
    }
}

impl Read for BodyReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.fill_buf()?.len().min(buf.len());
        buf[..n].copy_from_slice(&self.req_buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for BodyReader<'_, '_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.io.body_left > 0 && self.req_buf.is_empty() {
            self.io.read_more(self.req_buf)?;
        }
        let n = self.buffered();
        Ok(&self.req_buf[..n])
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.buffered());
        self.req_buf.advance(amt);
        self.io.body_left -= amt as u64;
    }
}

// we should hold the mut ref of req_buf
// before into body, this req_buf is only for holding headers
// after into body, this req_buf is mutable to read extra body bytes
// and the headers buf can be reused
pub struct Request<'buf, 'header, 'stream> {
    req: httparse::Request<'header, 'buf>,
    req_buf: &'buf mut BytesMut,
    io: &'stream mut ConnIo,
}

impl<'buf, 'stream> Request<'buf, '_, 'stream> {
    pub fn method(&self) -> &str {
        self.req.method.unwrap_or_default()
    }

    pub fn path(&self) -> &str {
        self.req.path.unwrap_or_default()
    }

    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub fn version(&self) -> u8 {
        self.req.version.unwrap_or_default()
    }

    pub fn headers(&self) -> &[httparse::Header<'_>] {
        self.req.headers
    }

    /// The body's length (`Content-Length`, checked by the server; 0 when
    /// absent).
    pub fn content_length(&self) -> u64 {
        self.io.body_left
    }

    /// The body. The server has checked `Content-Length` (a valid number,
    /// at most [`HttpConfig::max_body_bytes`](crate::HttpConfig::max_body_bytes)).
    pub fn body(self) -> BodyReader<'buf, 'stream> {
        BodyReader {
            req_buf: self.req_buf,
            io: self.io,
        }
    }
}

impl fmt::Debug for Request<'_, '_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "<HTTP Request {} {}>", self.method(), self.path())
    }
}

/// What the headers say about the message's framing and the connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Framing {
    pub content_length: u64,
    pub close: bool,
    pub keep_alive: bool,
}

/// The result of reading one request from the buffer.
pub(crate) enum Decoded<'buf, 'header, 'stream> {
    /// The head is not complete yet.
    Partial,
    /// A request; its body (`io.body_left` bytes) follows in the buffer or
    /// on the socket.
    Request(Request<'buf, 'header, 'stream>, Framing),
    /// Refused: answer this status and close.
    Reject(Status, &'static str),
}

/// Reads the next request head from `req_buf`, if it is complete.
/// `scanned` is how many bytes of the buffered partial head were already
/// searched for its end (so that a head arriving one byte at a time is not
/// parsed again for every byte); the caller resets it to 0 whenever a
/// request has been taken from the buffer.
pub(crate) fn decode<'header, 'buf, 'stream>(
    headers: &'header mut [MaybeUninit<httparse::Header<'buf>>],
    req_buf: &'buf mut BytesMut,
    io: &'stream mut ConnIo,
    scanned: &mut usize,
) -> Decoded<'buf, 'header, 'stream> {
    let max_bytes = io.shared.config.max_header_bytes;
    if *scanned > 0 && !head_may_end(req_buf, *scanned) {
        *scanned = req_buf.len();
        return if req_buf.len() > max_bytes {
            Decoded::Reject(Status::HeadersTooLarge, "request head over the byte limit")
        } else {
            Decoded::Partial
        };
    }

    // A control byte in a header value (say, in another site's cookie that
    // a browser sends along) fails httparse; it becomes a space, once, so
    // one bad value does not cost the whole request (see PATCHES.md).
    let headers_again: *mut [MaybeUninit<httparse::Header<'buf>>] = headers;
    let mut parsed = parse_head(headers, req_buf);
    if matches!(parsed, Err(httparse::Error::HeaderValue)) && blank_control_bytes(req_buf) {
        // SAFETY: the first parse failed, so nothing borrows `headers` any
        // more (its error holds no reference); the borrow checker cannot
        // see that through the Result's type.
        parsed = parse_head(unsafe { &mut *headers_again }, req_buf);
    }
    let (req, len) = match parsed {
        Ok((req, httparse::Status::Complete(len))) => (req, len),
        Ok((_, httparse::Status::Partial)) => {
            *scanned = req_buf.len().max(1);
            return if req_buf.len() > max_bytes {
                Decoded::Reject(Status::HeadersTooLarge, "request head over the byte limit")
            } else {
                Decoded::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Decoded::Reject(Status::HeadersTooLarge, "too many request headers")
        }
        Err(_) => return Decoded::Reject(Status::BadRequest, "request does not parse"),
    };
    if len > max_bytes {
        return Decoded::Reject(Status::HeadersTooLarge, "request head over the byte limit");
    }
    let framing = match framing(req.headers) {
        Ok(framing) => framing,
        Err((status, why)) => return Decoded::Reject(status, why),
    };
    if framing.content_length > io.shared.config.max_body_bytes {
        return Decoded::Reject(Status::ContentTooLarge, "request body over the limit");
    }
    req_buf.advance(len);
    *scanned = 0;
    io.body_left = framing.content_length;
    Decoded::Request(Request { req, req_buf, io }, framing)
}

/// One parse of the buffered head.
fn parse_head<'header, 'buf>(
    headers: &'header mut [MaybeUninit<httparse::Header<'buf>>],
    req_buf: &BytesMut,
) -> Result<(httparse::Request<'header, 'buf>, httparse::Status<usize>), httparse::Error> {
    let mut req = httparse::Request::new(&mut []);
    // safety: don't hold the reference of req_buf
    // so we can transfer the mutable reference to Request
    let buf: &'buf [u8] = unsafe { std::mem::transmute(req_buf.chunk()) };
    let status = req.parse_with_uninit_headers(buf, headers)?;
    Ok((req, status))
}

/// Replaces the control bytes (other than NUL, HTAB, CR and LF) of a complete
/// head's header lines with spaces. `false` when the head is not complete
/// or has none: there is nothing to retry.
fn blank_control_bytes(req_buf: &mut BytesMut) -> bool {
    let Some(first_line) = req_buf.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let Some(end) = req_buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let mut changed = false;
    for b in req_buf[first_line..end].iter_mut() {
        // NUL stays fatal, as in nginx: no client sends it by mistake.
        if (*b < 0x20 && !matches!(*b, 0 | b'\t' | b'\r' | b'\n')) || *b == 0x7f {
            *b = b' ';
            changed = true;
        }
    }
    changed
}

/// Whether the bytes after `scanned` may complete a head: they hold an
/// empty line (`\n\n`, or `\n\r\n`), looking back 2 bytes so that a line
/// end split across reads is found.
fn head_may_end(buf: &[u8], scanned: usize) -> bool {
    let from = scanned.saturating_sub(2).min(buf.len());
    let new = &buf[from..];
    new.iter().enumerate().any(|(i, &b)| {
        b == b'\n'
            && (new.get(i + 1) == Some(&b'\n')
                || (new.get(i + 1) == Some(&b'\r') && new.get(i + 2) == Some(&b'\n')))
    })
}

/// A refusal: the status to answer, and why (for the debug log).
type Refusal = (Status, &'static str);

/// Content-Length, Transfer-Encoding and Connection, checked: a body is
/// framed by one valid Content-Length or not at all.
pub(crate) fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, Refusal> {
    let mut framing = Framing::default();
    let mut length: Option<u64> = None;
    for h in headers {
        match h.name.len() {
            14 if h.name.eq_ignore_ascii_case("content-length") => {
                let Some(n) = parse_length(h.value) else {
                    return Err((Status::BadRequest, "invalid Content-Length"));
                };
                if length.is_some_and(|m| m != n) {
                    return Err((Status::BadRequest, "conflicting Content-Length headers"));
                }
                length = Some(n);
            }
            17 if h.name.eq_ignore_ascii_case("transfer-encoding") => {
                return Err((Status::LengthRequired, "Transfer-Encoding request body"));
            }
            10 if h.name.eq_ignore_ascii_case("connection") => {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    framing.close |= token.eq_ignore_ascii_case(b"close");
                    framing.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            _ => {}
        }
    }
    framing.content_length = length.unwrap_or(0);
    Ok(framing)
}

/// A Content-Length value: 1 to 19 ASCII digits (so it fits a u64).
fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
        httparse::Header {
            name,
            value: value.as_bytes(),
        }
    }

    fn reject_status(result: Result<Framing, Refusal>) -> Option<Status> {
        result.err().map(|(status, _)| status)
    }

    #[test]
    fn content_length_is_checked() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b" 42 "), Some(42));
        assert_eq!(
            parse_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [
            &b""[..],
            b"abc",
            b"-1",
            b"+1",
            b"1 2",
            b"0x10",
            b"1,1",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
        let ok = framing(&[h("Content-Length", "5"), h("content-length", "5")]).ok();
        assert_eq!(ok.map(|f| f.content_length), Some(5));
        assert_eq!(
            reject_status(framing(&[
                h("Content-Length", "5"),
                h("Content-Length", "6")
            ])),
            Some(Status::BadRequest)
        );
        assert_eq!(
            reject_status(framing(&[h("Content-Length", "abc")])),
            Some(Status::BadRequest)
        );
    }

    #[test]
    fn transfer_encoding_is_refused_and_connection_tokens_read() {
        assert_eq!(
            reject_status(framing(&[h("Transfer-Encoding", "chunked")])),
            Some(Status::LengthRequired)
        );
        let f = framing(&[h("Connection", "Keep-Alive, Upgrade"), h("X", "y")]).ok();
        assert_eq!(f.map(|f| (f.close, f.keep_alive)), Some((false, true)));
        let f = framing(&[h("connection", "close")]).ok();
        assert_eq!(f.map(|f| (f.close, f.keep_alive)), Some((true, false)));
    }

    #[test]
    fn head_end_is_found_across_reads() {
        assert!(head_may_end(b"GET / HTTP/1.1\r\n\r\n", 0));
        assert!(head_may_end(b"GET / HTTP/1.1\r\n\r\n", 15));
        assert!(head_may_end(b"GET / HTTP/1.1\n\n", 14));
        assert!(!head_may_end(b"GET / HTTP/1.1\r\nA: b\r\n", 3));
        assert!(!head_may_end(b"GET / HTTP/1.1\r\n\r\n", 18));
    }
}
