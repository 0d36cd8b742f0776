//! The accept loop: plain HTTP or TLS 1.3, HTTP/1.1 and HTTP/2, graceful shutdown, and
//! the limits that keep idle or slow clients from taking a server down.
//!
//! * At most [`ServeOptions::max_connections`] connections are open (never more than the
//!   open-file limit, raised to its hard limit at start, less 256). When the limit is
//!   reached, the connection that has been idle the longest (no request in flight) is
//!   closed to make room; when every connection has a request in flight, new
//!   connections wait in the listen backlog until one ends.
//! * A request head must arrive whole within [`ServeOptions::header_timeout`] (the first
//!   request of a connection, and every following one on a kept-alive HTTP/1.1
//!   connection), and be at most [`ServeOptions::max_header_bytes`] long.
//! * A request body that sends nothing for [`ServeOptions::body_timeout`] fails.
//! * A connection without a request in flight and without traffic for
//!   [`ServeOptions::idle_timeout`] is closed.
//! * The first request head of a connection is read and checked here, before hyper: a
//!   head too large is answered `431`, an unreadable one (control bytes in a header, a
//!   broken request line) `400`, each with the JSON error body, and the connection closed.
//! * A failing `accept` (out of descriptors: EMFILE) backs off, doubling up to a second,
//!   instead of spinning.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::http::{Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::error::{Error, Result};

/// Most header fields in one request head.
pub const MAX_HEADERS: usize = 100;
/// Descriptors kept free for everything but connections (database, files, logs) when
/// the connection limit is derived from the descriptor limit.
const RESERVED_DESCRIPTORS: u64 = 256;
/// Default connection limit (lowered to fit the descriptor limit).
const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// The HTTP/2 connection preface (prior knowledge, or after ALPN `h2`).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How much of a refused request is read and dropped after the answer, so that closing
/// the socket does not reset the connection before the client reads the answer.
const DRAIN_REFUSED_BYTES: usize = 1024 * 1024;
/// How long a refused request is drained.
const DRAIN_REFUSED_TIME: Duration = Duration::from_secs(1);

/// Limits and timeouts of the accept loop.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Most open connections.
    pub max_connections: usize,
    /// Time allowed for a whole request head to arrive.
    pub header_timeout: Duration,
    /// Longest pause while a request body is being received.
    pub body_timeout: Duration,
    /// A connection without a request in flight and without traffic this long is closed.
    pub idle_timeout: Duration,
    /// Largest request head (request line and header fields), bytes.
    pub max_header_bytes: usize,
    /// Time allowed for a TLS handshake.
    pub handshake_timeout: Duration,
    /// How long shutdown waits for in-flight requests before dropping connections.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_header_bytes: 32 * 1024,
            handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl ServeOptions {
    /// The most connections a soft descriptor limit leaves room for: that limit less 256
    /// descriptors kept for everything else (database, files, logs), and at least 16.
    pub fn connection_ceiling(fd_soft_limit: Option<u64>) -> usize {
        match fd_soft_limit {
            Some(limit) => usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS).max(16))
                .unwrap_or(usize::MAX),
            None => usize::MAX,
        }
    }

    /// Refuses limits that cannot work.
    pub fn check(&self) -> Result<()> {
        if self.max_connections == 0 {
            return Err(Error::Config("max_connections must be positive".into()));
        }
        if self.max_header_bytes < 1024 {
            return Err(Error::Config(
                "max_header_bytes must be at least 1024".into(),
            ));
        }
        for (name, d) in [
            ("header_timeout_seconds", self.header_timeout),
            ("body_timeout_seconds", self.body_timeout),
            ("idle_timeout_seconds", self.idle_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("{name} must be positive")));
            }
        }
        Ok(())
    }
}

/// Resolves once shutdown has begun (or its sender is gone).
pub async fn stopping(rx: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; drop it here.
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}

/// Builds a TLS 1.3-only acceptor (ring provider) from PEM files, offering HTTP/2 and
/// HTTP/1.1 by ALPN.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| Error::Tls(format!("{}: {e}", cert.display())))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{}: no certificate", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// One open connection as the limit sees it.
struct ConnState {
    /// Requests whose response has not been sent completely.
    in_flight: AtomicUsize,
    /// Last traffic or request activity, ms since the tracker started.
    last_active: AtomicU64,
    /// Told to close (to make room for a new connection).
    evict: Notify,
    /// Whether it was told already.
    evicted: AtomicBool,
    /// The tracker's signal that a connection ended or became idle.
    changed: Arc<Notify>,
    epoch: Instant,
}

impl ConnState {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_active.store(self.now_ms(), Ordering::Relaxed);
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Resolves when the connection has had no request in flight and no traffic for
    /// `idle`.
    async fn idle_for(&self, idle: Duration) {
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        loop {
            let quiet = self
                .now_ms()
                .saturating_sub(self.last_active.load(Ordering::Relaxed));
            if self.is_idle() && quiet >= idle_ms {
                return;
            }
            let wait = if self.is_idle() {
                idle_ms.saturating_sub(quiet).max(1)
            } else {
                idle_ms
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// The open connections.
struct Tracker {
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    /// Signalled whenever a connection ends or a request finishes.
    freed: Arc<Notify>,
    epoch: Instant,
}

impl Tracker {
    fn new() -> Self {
        Tracker {
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            freed: Arc::new(Notify::new()),
            epoch: Instant::now(),
        }
    }

    fn len(&self) -> usize {
        self.conns.lock().map_or(0, |c| c.len())
    }

    fn register(self: &Arc<Self>) -> ConnGuard {
        let state = Arc::new(ConnState {
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(0),
            evict: Notify::new(),
            evicted: AtomicBool::new(false),
            changed: self.freed.clone(),
            epoch: self.epoch,
        });
        state.touch();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(id, state.clone());
        }
        ConnGuard {
            tracker: self.clone(),
            id,
            state,
        }
    }

    /// Whether a connection is idle, or closing: a new one can have its place.
    fn has_room(&self) -> bool {
        self.conns.lock().is_ok_and(|conns| {
            conns
                .values()
                .any(|c| c.is_idle() || c.evicted.load(Ordering::Relaxed))
        })
    }

    /// Tells the connection idle the longest (other than `spare`) to close; false if
    /// every connection has a request in flight (and none is closing).
    fn evict_longest_idle(&self, spare: Option<u64>) -> bool {
        let Ok(conns) = self.conns.lock() else {
            return false;
        };
        let victim = conns
            .iter()
            .filter(|(id, c)| {
                Some(**id) != spare && c.is_idle() && !c.evicted.load(Ordering::Relaxed)
            })
            .map(|(_, c)| c)
            .min_by_key(|c| c.last_active.load(Ordering::Relaxed));
        match victim {
            Some(c) => {
                c.evicted.store(true, Ordering::Relaxed);
                c.evict.notify_one();
                true
            }
            // A connection told before may still be closing.
            None => conns.values().any(|c| c.evicted.load(Ordering::Relaxed)),
        }
    }
}

/// Removes a connection from the tracker when its task ends.
struct ConnGuard {
    tracker: Arc<Tracker>,
    id: u64,
    state: Arc<ConnState>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Ok(mut conns) = self.tracker.conns.lock() {
            conns.remove(&self.id);
        }
        self.tracker.freed.notify_waiters();
    }
}

/// Counts a request as in flight until its response body has been sent (or dropped).
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn new(state: Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        state.touch();
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Idle now: it may make room for a waiting connection.
            self.0.changed.notify_waiters();
        }
    }
}

/// A response body that keeps its request counted while it streams.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` until `shutdown` turns true, then stops accepting and
/// lets every connection finish its in-flight requests (for at most
/// [`ServeOptions::drain_timeout`]).
pub async fn run(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    mut options: ServeOptions,
) {
    let ceiling = ServeOptions::connection_ceiling(crate::raise_fd_limit());
    if options.max_connections > ceiling {
        tracing::info!(
            configured = options.max_connections,
            limit = ceiling,
            "connection limit lowered to fit the open-file limit"
        );
        options.max_connections = ceiling;
    }
    let options = Arc::new(options);
    let tracker = Arc::new(Tracker::new());
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
        // At the limit with every connection busy: wait (new connections stay in the
        // listen backlog) until one ends or goes idle.
        if tracker.len() >= options.max_connections && !tracker.has_room() {
            let freed = tracker.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if tracker.len() >= options.max_connections && !tracker.has_room() {
                tracing::warn!(
                    limit = options.max_connections,
                    "connection limit reached with every connection busy"
                );
                tokio::select! {
                    () = freed => {}
                    () = stopping(&mut shutdown) => break,
                }
                continue;
            }
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => {
                    backoff = Duration::from_millis(10);
                    pair
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning,
                    // and make room if an idle connection holds one.
                    tracing::warn!(error = %e, "accept failed");
                    tracker.evict_longest_idle(None);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stopping(&mut shutdown) => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            () = stopping(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        let guard = tracker.register();
        if tracker.len() > options.max_connections {
            // Over the limit: the connection idle the longest makes room.
            tracing::debug!("connection limit reached: closing the longest-idle connection");
            tracker.evict_longest_idle(Some(guard.id));
        }
        let router = router.clone();
        let tls = tls.clone();
        let conn_shutdown = shutdown.clone();
        let options = options.clone();
        connections.spawn(async move {
            let state = guard.state.clone();
            let work = async {
                match tls {
                    None => {
                        serve_connection(stream, state.clone(), router, conn_shutdown, &options)
                            .await
                    }
                    Some(acceptor) => {
                        match tokio::time::timeout(
                            options.handshake_timeout,
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(tls_stream)) => {
                                serve_connection(
                                    tls_stream,
                                    state.clone(),
                                    router,
                                    conn_shutdown,
                                    &options,
                                )
                                .await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "tls handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                () = work => {}
                () = state.evict.notified() => {
                    tracing::debug!(%peer, "idle connection closed to make room");
                }
                () = state.idle_for(options.idle_timeout) => {
                    tracing::debug!(%peer, "idle connection timed out");
                }
            }
            drop(guard);
        });
    }
    drop(listener);
    tracing::info!(connections = connections.len(), "draining connections");
    let drained = tokio::time::timeout(options.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("drain timed out; closing remaining connections");
        connections.abort_all();
    }
}

/// What the first bytes of a connection turned out to be.
enum Head {
    /// A readable request head (or an HTTP/2 preface), with every byte read so far.
    Ready(Vec<u8>),
    /// Refused with this status, reason and message.
    Refuse(StatusCode, &'static str, &'static str),
    /// The peer went away or timed out before a whole head arrived.
    Gone,
}

/// End of the head (after its blank line) in `buf`, if it is there.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Checks a whole request head the way hyper will parse it.
fn check_head(head: &[u8]) -> Option<(StatusCode, &'static str, &'static str)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(_) => None,
        Err(httparse::Error::TooManyHeaders) => Some((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            "too many header fields",
        )),
        Err(httparse::Error::HeaderName | httparse::Error::HeaderValue) => Some((
            StatusCode::BAD_REQUEST,
            "invalid_header",
            "a header field has a forbidden character (control bytes are not allowed)",
        )),
        Err(_) => Some((
            StatusCode::BAD_REQUEST,
            "invalid_request_line",
            "the request line is not HTTP/1.x",
        )),
    }
}

/// Reads the first request head of a connection (within the caller's timeout).
async fn read_head<I: AsyncRead + Unpin>(io: &mut I, max_header_bytes: usize) -> Head {
    let mut buf = Vec::with_capacity(2048);
    loop {
        let preface = buf.len().min(H2_PREFACE.len());
        if !buf.is_empty() && buf[..preface] == H2_PREFACE[..preface] {
            // HTTP/2: its own framing and limits apply; hand over once whole.
            if buf.len() >= H2_PREFACE.len() {
                return Head::Ready(buf);
            }
        } else if let Some(end) = head_end(&buf) {
            if end > max_header_bytes {
                return Head::Refuse(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "headers_too_large",
                    "the request head is larger than this server accepts",
                );
            }
            return match check_head(&buf[..end]) {
                None => Head::Ready(buf),
                Some((status, reason, message)) => Head::Refuse(status, reason, message),
            };
        } else if buf.len() > max_header_bytes {
            let line_end = buf.iter().position(|&b| b == b'\n');
            let (status, reason, message) = if line_end.is_some_and(|p| p <= max_header_bytes) {
                (
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "headers_too_large",
                    "the request head is larger than this server accepts",
                )
            } else {
                (
                    StatusCode::URI_TOO_LONG,
                    "uri_too_long",
                    "the request line is longer than this server accepts",
                )
            };
            return Head::Refuse(status, reason, message);
        }
        let mut chunk = [0u8; 4096];
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return Head::Gone,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Answers a refused head with the JSON error body and closes.
async fn refuse<I: AsyncRead + AsyncWrite + Unpin>(
    io: &mut I,
    status: StatusCode,
    reason: &str,
    message: &str,
) {
    let body = serde_json::json!({ "reason": reason, "message": message }).to_string();
    let answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if io.write_all(answer.as_bytes()).await.is_err() || io.flush().await.is_err() {
        return;
    }
    let _ = io.shutdown().await;
    // Read what the client still sends, so the close does not reset the connection
    // before it has read the answer.
    let _ = tokio::time::timeout(DRAIN_REFUSED_TIME, async {
        let mut drained = 0;
        let mut chunk = [0u8; 8192];
        while drained < DRAIN_REFUSED_BYTES {
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

async fn serve_connection<I>(
    io: I,
    state: Arc<ConnState>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    options: &ServeOptions,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut io = Tracked {
        prefix: Bytes::new(),
        inner: io,
        state: state.clone(),
    };
    let head = tokio::select! {
        head = tokio::time::timeout(options.header_timeout, read_head(&mut io, options.max_header_bytes)) => {
            head.unwrap_or(Head::Gone)
        }
        () = stopping(&mut shutdown) => return,
    };
    let prefix = match head {
        Head::Ready(prefix) => prefix,
        Head::Refuse(status, reason, message) => {
            tracing::debug!(%status, reason, "request head refused");
            refuse(&mut io, status, reason, message).await;
            return;
        }
        Head::Gone => return,
    };
    // hyper reads the head again, from the bytes already taken off the stream.
    io.prefix = Bytes::from(prefix);

    let body_timeout = options.body_timeout;
    let service = tower::service_fn(move |request: Request<Incoming>| {
        let in_flight = InFlight::new(state.clone());
        let request = request
            .map(|body| Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, body)));
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await?;
            Ok::<_, std::convert::Infallible>(response.map(|inner| {
                Body::new(TrackedBody {
                    inner,
                    _in_flight: in_flight,
                })
            }))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(options.max_header_bytes.max(8192))
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    let conn =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopping(&mut shutdown) => {
            // Finish the requests in flight, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A stream that marks its connection active on every byte read or written, and that
/// first gives back `prefix`, the bytes already read from it (the request head).
struct Tracked<I> {
    prefix: Bytes,
    inner: I,
    state: Arc<ConnState>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_checked_like_hyper_would() {
        assert!(check_head(b"GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n").is_none());
        let (status, reason, _) =
            check_head(b"GET / HTTP/1.1\r\nx-a: b\x01c\r\n\r\n").expect("refused");
        assert_eq!(
            (status, reason),
            (StatusCode::BAD_REQUEST, "invalid_header")
        );
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("x-{i}: v\r\n"))
            .collect();
        let head = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let (status, _, _) = check_head(head.as_bytes()).expect("refused");
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nx: y\r\n"), None);
    }

    #[test]
    fn the_connection_limit_stays_below_the_descriptor_limit() {
        assert_eq!(ServeOptions::connection_ceiling(Some(1024)), 768);
        assert_eq!(ServeOptions::connection_ceiling(Some(100)), 16);
        assert_eq!(ServeOptions::connection_ceiling(None), usize::MAX);
    }
}
