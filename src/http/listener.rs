//! The TCP listener the server accepts on, wrapping each connection so that hyper's own answers
//! to requests it cannot parse carry the error envelope and the security headers.
//!
//! hyper answers a request it cannot parse (bad request line, bad header bytes, a malformed
//! `Content-Length`, a header section or URI over its limits) by itself, before axum sees a
//! request: a bare `400` / `414` / `431` head with no body, and it closes the connection.
//! hyper 1.x has no hook for that response (`Http1Server::on_error` builds it from the status
//! alone). So the connection's write side recognises it: a response head that starts a write
//! with one of those statuses and lacks `x-content-type-options` (every response of ours has
//! it, set by `middleware::security_headers`) is replaced by the same status with the
//! envelope, the security headers and `connection: close`. hyper closes the connection right
//! after, so the longer body does not desynchronise anything.
//!
//! Limit: a response head starts a write (or its first slice, with vectored writes), except when
//! a pipelining client's earlier response and the automatic one are flushed together; that
//! automatic response is then left as hyper wrote it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::middleware::{API_CSP, SECURITY_HEADERS, STRICT_TRANSPORT_SECURITY};

/// Accepts TCP connections and wraps each in [`EnvelopedIo`].
pub struct EnvelopingListener {
    inner: TcpListener,
    hsts: bool,
}

impl EnvelopingListener {
    /// `hsts`: whether responses carry `Strict-Transport-Security` (as the middleware decides).
    pub fn new(inner: TcpListener, hsts: bool) -> Self {
        Self { inner, hsts }
    }
}

impl Listener for EnvelopingListener {
    type Io = EnvelopedIo<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, peer) = Listener::accept(&mut self.inner).await;
        // Streamed responses (MCP's streamable HTTP, SSE) are written in several small writes;
        // with Nagle's algorithm on, each one after the first waits for the client's delayed ACK
        // (~40 ms per MCP round trip, measured). A failure only costs latency, so it is ignored.
        let _ = stream.set_nodelay(true);
        (EnvelopedIo::new(stream, self.hsts), peer)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The peer address of a connection, for `ConnectInfo` (axum implements `Connected` for
/// `SocketAddr` only with its own listeners).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, EnvelopingListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, EnvelopingListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// A connection whose writes pass through unchanged, except hyper's automatic parse-error
/// response (see the module documentation).
pub struct EnvelopedIo<T> {
    inner: T,
    hsts: bool,
    /// The replacement response still to be written, and how much of it has been.
    pending: Vec<u8>,
    written: usize,
}

impl<T> EnvelopedIo<T> {
    pub fn new(inner: T, hsts: bool) -> Self {
        Self { inner, hsts, pending: Vec::new(), written: 0 }
    }
}

impl<T: AsyncWrite + Unpin> EnvelopedIo<T> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for EnvelopedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for EnvelopedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.drain(cx))?;
        if let Some(replacement) = replacement_for(buf, this.hsts) {
            this.pending = replacement;
            // Whatever part did not go out now goes out on the flush hyper does next.
            if let Poll::Ready(Err(e)) = this.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    /// hyper writes a response head as the first slice (its "queue" strategy); the automatic
    /// response is a head alone, so the check looks at the first non-empty slice.
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.drain(cx))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && let Some(replacement) = replacement_for(first, this.hsts)
        {
            this.pending = replacement;
            if let Poll::Ready(Err(e)) = this.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The statuses hyper answers by itself, with the envelope's code and message for each.
fn automatic_status(status: &str) -> Option<(&'static str, &'static str, &'static str)> {
    match status {
        "400" => Some(("Bad Request", "BAD_REQUEST", "The request could not be parsed (request line, header bytes or Content-Length).")),
        "414" => Some(("URI Too Long", "URI_TOO_LONG", "The request URI is too long.")),
        "431" => Some(("Request Header Fields Too Large", "HEADERS_TOO_LARGE", "The request headers are too large.")),
        _ => None,
    }
}

/// The enveloped response replacing `buf` when `buf` is hyper's automatic parse-error response.
fn replacement_for(buf: &[u8], hsts: bool) -> Option<Vec<u8>> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ").or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let (reason, code, message) = automatic_status(std::str::from_utf8(rest.get(..3)?).ok()?)?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            line.split_once(':').filter(|(n, _)| n.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
        })
    };
    if header("x-content-type-options").is_some() {
        return None; // One of our responses.
    }
    let status = String::from_utf8_lossy(&rest[..3]);
    let body = serde_json::json!({"error": {"code": code, "message": message, "details": {}}}).to_string();
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in SECURITY_HEADERS {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("content-security-policy: {API_CSP}\r\ncache-control: no-store\r\n"));
    if hsts {
        out.push_str(&format!("strict-transport-security: {STRICT_TRANSPORT_SECURITY}\r\n"));
    }
    if let Some(date) = header("date") {
        out.push_str(&format!("date: {date}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_automatic_responses_are_replaced() {
        let automatic = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Sat, 05 Dec 2026 12:00:00 GMT\r\n\r\n";
        let replaced = String::from_utf8(replacement_for(automatic, false).unwrap()).unwrap();
        assert!(replaced.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{replaced}");
        assert!(replaced.contains("\r\nx-content-type-options: nosniff\r\n"), "{replaced}");
        assert!(replaced.contains("\r\ndate: Sat, 05 Dec 2026 12:00:00 GMT\r\n"), "{replaced}");
        assert!(!replaced.contains("strict-transport-security"));
        let (head, body) = replaced.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "BAD_REQUEST");
        let long = replacement_for(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n", true).unwrap();
        let long = String::from_utf8(long).unwrap();
        assert!(long.contains("HEADERS_TOO_LARGE") && long.contains("strict-transport-security"), "{long}");

        // Our own responses (they carry the security headers) and other statuses pass through.
        let ours = b"HTTP/1.1 400 Bad Request\r\nx-content-type-options: nosniff\r\ncontent-length: 2\r\n\r\n{}";
        assert!(replacement_for(ours, false).is_none());
        assert!(replacement_for(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", false).is_none());
        assert!(replacement_for(b"{\"not\":\"a head\"}", false).is_none());
        assert!(replacement_for(b"HTTP/1.1 400 Bad Request\r\ncontent-le", false).is_none(), "an incomplete head is left alone");
    }
}
