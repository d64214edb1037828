use std::borrow::Cow;
use std::sync::Arc;

use bytes::BytesMut;

/// Most header lines one response may carry. Beyond it [`Response::header`]
/// drops the line and the server answers `500` instead of a response with
/// headers missing.
pub const MAX_RESPONSE_HEADERS: usize = 256;

/// One response header line, `"Name: value"` (without the line end), as
/// given to [`Response::header`].
///
/// A line may also hold several lines joined by `"\r\n"`; the server writes
/// it verbatim, so a caller that builds lines from untrusted data must keep
/// CR and LF out of the values.
#[derive(Debug, Clone)]
pub enum ResponseHeader {
    /// A `'static` line (e.g. a literal): no allocation, nothing to free.
    Static(&'static str),
    /// A line owned by the response, freed with it.
    Owned(String),
    /// A shared line: sending it costs a reference count, not a copy or an
    /// allocation (e.g. a header block kept in a cache).
    Shared(Arc<str>),
}

impl ResponseHeader {
    /// The line as text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match self {
            ResponseHeader::Static(s) => s,
            ResponseHeader::Owned(s) => s,
            ResponseHeader::Shared(s) => s,
        }
    }

    /// The line as the bytes written.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }
}

impl Default for ResponseHeader {
    #[inline]
    fn default() -> Self {
        ResponseHeader::Static("")
    }
}

/// What [`Response::header`] accepts: `&'static str`, `String`, `Box<str>`,
/// `Cow<'static, str>`, `Arc<str>` (and `&Arc<str>`, which clones the
/// reference), or a [`ResponseHeader`].
pub trait IntoResponseHeader {
    /// Converts into a header line.
    fn into_response_header(self) -> ResponseHeader;
}

impl IntoResponseHeader for &'static str {
    #[inline]
    fn into_response_header(self) -> ResponseHeader {
        ResponseHeader::Static(self)
    }
}

impl IntoResponseHeader for String {
    #[inline]
    fn into_response_header(self) -> ResponseHeader {
        ResponseHeader::Owned(self)
    }
}

impl IntoResponseHeader for Box<str> {
    #[inline]
    fn into_response_header(self) -> ResponseHeader {
        ResponseHeader::Owned(self.into_string())
    }
}

impl IntoResponseHeader for Cow<'static, str> {
    #[inline]
    fn into_response_header(self) -> ResponseHeader {
        match self {
            Cow::Borrowed(s) => ResponseHeader::Static(s),
            Cow::Owned(s) => ResponseHeader::Owned(s),
        }
    }
}

impl IntoResponseHeader for Arc<str> {
    #[inline]
    fn into_response_header(self) -> ResponseHeader {
        ResponseHeader::Shared(self)
    }
}

impl IntoResponseHeader for &Arc<str> {
    #[inline]
    fn into_response_header(self) -> ResponseHeader {
        ResponseHeader::Shared(self.clone())
    }
}

impl IntoResponseHeader for ResponseHeader {
    #[inline]
    fn into_response_header(self) -> ResponseHeader {
        self
    }
}

pub struct Response<'a> {
    headers: &'a mut Vec<ResponseHeader>,
    /// More than [`MAX_RESPONSE_HEADERS`] were given.
    headers_overflow: bool,
    /// The service asked to close the connection after this response.
    close: bool,
    status_message: StatusMessage,
    body: Body,
    rsp_buf: &'a mut BytesMut,
}

enum Body {
    Str(&'static str),
    Vec(Vec<u8>),
    Dummy,
}

struct StatusMessage {
    code: usize,
    msg: &'static str,
}

/// The `Connection` header the server adds to a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionHeader {
    /// None: HTTP/1.1 keep-alive.
    Default,
    /// `Connection: keep-alive` (an HTTP/1.0 client asked for it).
    KeepAlive,
    /// `Connection: close`: the server closes after this response.
    Close,
}

impl<'a> Response<'a> {
    /// A response that writes its body into `rsp_buf` and keeps its header
    /// lines in `headers` (both reused from one response to the next).
    pub(crate) fn new(rsp_buf: &'a mut BytesMut, headers: &'a mut Vec<ResponseHeader>) -> Self {
        headers.clear();
        Response {
            headers,
            headers_overflow: false,
            close: false,
            body: Body::Dummy,
            status_message: StatusMessage {
                code: 200,
                msg: "Ok",
            },
            rsp_buf,
        }
    }

    #[inline]
    pub fn status_code(&mut self, code: usize, msg: &'static str) -> &mut Self {
        self.status_message = StatusMessage { code, msg };
        self
    }

    /// Appends a header line, `"Name: value"`: a `&'static str` (no
    /// allocation), or an owned or shared string (see
    /// [`IntoResponseHeader`]). The server adds `Server`, `Date`,
    /// `Content-Length` and, when it closes the connection or an HTTP/1.0
    /// client asked for keep-alive, `Connection`.
    ///
    /// At most [`MAX_RESPONSE_HEADERS`] lines: beyond them the line is
    /// dropped and the client gets `500 Internal Server Error` instead.
    #[inline]
    pub fn header<H: IntoResponseHeader>(&mut self, header: H) -> &mut Self {
        if self.headers.len() < MAX_RESPONSE_HEADERS {
            self.headers.push(header.into_response_header());
        } else {
            self.headers_overflow = true;
        }
        self
    }

    /// Closes the connection after this response (the server adds
    /// `Connection: close`).
    #[inline]
    pub fn close_connection(&mut self) -> &mut Self {
        self.close = true;
        self
    }

    #[inline]
    pub fn body(&mut self, s: &'static str) {
        self.body = Body::Str(s);
    }

    #[inline]
    pub fn body_vec(&mut self, v: Vec<u8>) {
        self.body = Body::Vec(v);
    }

    #[inline]
    pub fn body_mut(&mut self) -> &mut BytesMut {
        match self.body {
            Body::Dummy => {}
            Body::Str(s) => {
                self.rsp_buf.extend_from_slice(s.as_bytes());
                self.body = Body::Dummy;
            }
            Body::Vec(ref v) => {
                self.rsp_buf.extend_from_slice(v);
                self.body = Body::Dummy;
            }
        }
        self.rsp_buf
    }

    #[inline]
    fn body_len(&self) -> usize {
        match self.body {
            Body::Dummy => self.rsp_buf.len(),
            Body::Str(s) => s.len(),
            Body::Vec(ref v) => v.len(),
        }
    }

    #[inline]
    fn get_body(&mut self) -> &[u8] {
        match self.body {
            Body::Dummy => self.rsp_buf.as_ref(),
            Body::Str(s) => s.as_bytes(),
            Body::Vec(ref v) => v,
        }
    }

    /// Whether the service asked to close the connection.
    #[inline]
    pub(crate) fn wants_close(&self) -> bool {
        self.close
    }

    /// Whether the service gave more header lines than allowed.
    #[inline]
    pub(crate) fn headers_overflowed(&self) -> bool {
        self.headers_overflow
    }
}

impl Drop for Response<'_> {
    fn drop(&mut self) {
        self.rsp_buf.clear();
        self.headers.clear();
    }
}

#[inline]
fn put_connection(buf: &mut BytesMut, connection: ConnectionHeader) {
    match connection {
        ConnectionHeader::Default => {}
        ConnectionHeader::KeepAlive => buf.extend_from_slice(b"\r\nConnection: keep-alive"),
        ConnectionHeader::Close => buf.extend_from_slice(b"\r\nConnection: close"),
    }
}

pub(crate) fn encode(mut rsp: Response, connection: ConnectionHeader, buf: &mut BytesMut) {
    if rsp.status_message.code == 200 {
        buf.extend_from_slice(b"HTTP/1.1 200 Ok\r\nServer: M\r\nDate: ");
    } else {
        buf.extend_from_slice(b"HTTP/1.1 ");
        let mut code = itoa::Buffer::new();
        buf.extend_from_slice(code.format(rsp.status_message.code).as_bytes());
        buf.extend_from_slice(b" ");
        buf.extend_from_slice(rsp.status_message.msg.as_bytes());
        buf.extend_from_slice(b"\r\nServer: M\r\nDate: ");
    }
    crate::date::append_date(buf);
    buf.extend_from_slice(b"\r\nContent-Length: ");
    let mut length = itoa::Buffer::new();
    buf.extend_from_slice(length.format(rsp.body_len()).as_bytes());
    put_connection(buf, connection);

    for h in rsp.headers.iter() {
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(h.as_bytes());
    }

    buf.extend_from_slice(b"\r\n\r\n");
    buf.extend_from_slice(rsp.get_body());
}

/// A response the server writes itself (an error, or a refusal):
/// `status`, a short text body, and `Connection: close`.
#[cold]
pub(crate) fn encode_status(status: Status, buf: &mut BytesMut) {
    let (code, reason, body) = status.parts();
    buf.extend_from_slice(b"HTTP/1.1 ");
    buf.extend_from_slice(code.as_bytes());
    buf.extend_from_slice(b" ");
    buf.extend_from_slice(reason.as_bytes());
    buf.extend_from_slice(b"\r\nServer: M\r\nDate: ");
    crate::date::append_date(buf);
    buf.extend_from_slice(b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    let mut length = itoa::Buffer::new();
    buf.extend_from_slice(length.format(body.len()).as_bytes());
    put_connection(buf, ConnectionHeader::Close);
    buf.extend_from_slice(b"\r\n\r\n");
    buf.extend_from_slice(body.as_bytes());
}

/// The answers the server gives without the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// The request does not parse, or its framing headers are invalid.
    BadRequest,
    /// The head did not arrive within the header-read timeout.
    RequestTimeout,
    /// A `Transfer-Encoding` request body (only `Content-Length` is read).
    LengthRequired,
    /// `Content-Length` over the limit.
    ContentTooLarge,
    /// Too many header lines, or a head over the byte limit.
    HeadersTooLarge,
    /// The service failed (returned an error, panicked, or gave too many
    /// headers). The error text is logged, never sent.
    InternalError,
}

impl Status {
    fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Status::BadRequest => ("400", "Bad Request", "bad request\n"),
            Status::RequestTimeout => ("408", "Request Timeout", "request timeout\n"),
            Status::LengthRequired => (
                "411",
                "Length Required",
                "request bodies need a Content-Length\n",
            ),
            Status::ContentTooLarge => ("413", "Content Too Large", "request body too large\n"),
            Status::HeadersTooLarge => (
                "431",
                "Request Header Fields Too Large",
                "request header fields too large\n",
            ),
            Status::InternalError => ("500", "Internal Server Error", "internal server error\n"),
        }
    }

    /// The status code, for logs.
    pub(crate) fn code(self) -> &'static str {
        self.parts().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(fill: impl FnOnce(&mut Response), connection: ConnectionHeader) -> String {
        let (mut body, mut headers, mut out) = (BytesMut::new(), Vec::new(), BytesMut::new());
        let mut rsp = Response::new(&mut body, &mut headers);
        fill(&mut rsp);
        encode(rsp, connection, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn static_owned_and_shared_lines_are_written_in_order() {
        let shared: Arc<str> = Arc::from("X-Shared: s");
        let text = encoded(
            |rsp| {
                rsp.header("X-Static: a")
                    .header(String::from("X-Owned: b"))
                    .header(Box::<str>::from("X-Boxed: c"))
                    .header(Cow::Borrowed("X-Cow: d"))
                    .header(&shared)
                    .header(shared.clone());
                rsp.body("ok");
            },
            ConnectionHeader::Default,
        );
        assert!(text.starts_with("HTTP/1.1 200 Ok\r\nServer: M\r\nDate: "));
        assert!(text.contains("\r\nContent-Length: 2\r\nX-Static: a\r\nX-Owned: b\r\nX-Boxed: c\r\nX-Cow: d\r\nX-Shared: s\r\nX-Shared: s\r\n\r\nok"));
        assert!(!text.contains("Connection"));
        assert_eq!(Arc::strong_count(&shared), 1, "shared lines are released");
    }

    #[test]
    fn conversions_pick_the_cheapest_variant() {
        assert!(matches!(
            "a: b".into_response_header(),
            ResponseHeader::Static(_)
        ));
        assert!(matches!(
            Cow::<'static, str>::Owned("a: b".into()).into_response_header(),
            ResponseHeader::Owned(_)
        ));
        let arc: Arc<str> = Arc::from("a: b");
        let ResponseHeader::Shared(line) = (&arc).into_response_header() else {
            panic!("Arc<str> is shared");
        };
        assert!(Arc::ptr_eq(&line, &arc), "no copy");
    }

    #[test]
    fn more_than_the_limit_is_an_overflow_not_a_panic() {
        let (mut body, mut headers) = (BytesMut::new(), Vec::new());
        let mut rsp = Response::new(&mut body, &mut headers);
        for _ in 0..MAX_RESPONSE_HEADERS {
            rsp.header("X-A: 1");
        }
        assert!(!rsp.headers_overflowed());
        rsp.header(String::from("X-B: 2"));
        assert!(rsp.headers_overflowed());
        drop(rsp);
        assert!(headers.is_empty(), "cleared for the next response");
    }

    #[test]
    fn connection_header_and_status_answers() {
        let close = encoded(
            |rsp| {
                rsp.status_code(404, "Not Found");
            },
            ConnectionHeader::Close,
        );
        assert!(close.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(close.contains("\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
        let keep = encoded(|_| {}, ConnectionHeader::KeepAlive);
        assert!(keep.contains("\r\nConnection: keep-alive\r\n\r\n"));

        let mut out = BytesMut::new();
        encode_status(Status::HeadersTooLarge, &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n\r\nrequest header fields too large\n"));
        assert!(text.contains("\r\nContent-Length: 32\r\n"));
    }
}
