//! The shared accept loop on loopback: request heads it cannot read are answered with
//! the JSON error body, idle and stalled connections do not keep requests out, and a
//! stalled body does not hold a connection forever.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::{get, post};
use axum::Router;
use cachet_http::ServeOptions;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Upper bound on any wait in these tests; only there so that a broken server fails the
/// test instead of hanging it.
const GUARD: Duration = Duration::from_secs(30);

struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(options: ServeOptions) -> Self {
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/echo", post(|body: Bytes| async move { body }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(cachet_http::run(listener, None, router, rx, options));
        Server { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

/// Sends `request` on a new connection and reads the answer to the end.
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(GUARD, s.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The JSON body of a raw answer.
fn json_body(answer: &str) -> Value {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    serde_json::from_str(body).expect("a JSON body")
}

/// Waits until the server closes `s` (reads to EOF, or the connection is reset).
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(GUARD, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_head_too_large_is_431_with_a_json_body() {
    let server = Server::start(ServeOptions {
        max_header_bytes: 4096,
        ..ServeOptions::default()
    })
    .await;
    let big = "a".repeat(8000);
    let (status, answer) = raw(
        server.addr,
        format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 431, "{answer}");
    assert_eq!(json_body(&answer)["reason"], "headers_too_large");

    // A request line alone over the limit.
    let (status, answer) = raw(server.addr, format!("GET /{big} HTTP/1.1\r\n").as_bytes()).await;
    assert_eq!(status, 414, "{answer}");
    assert_eq!(json_body(&answer)["reason"], "uri_too_long");

    // Too many header fields.
    let many: String = (0..150).map(|i| format!("x-{i}: v\r\n")).collect();
    let (status, answer) = raw(
        server.addr,
        format!("GET /healthz HTTP/1.1\r\nhost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 431, "{answer}");
    assert_eq!(json_body(&answer)["reason"], "headers_too_large");

    // A head within the limit is served.
    let (status, answer) = raw(
        server.addr,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn control_bytes_in_a_header_are_400_with_a_json_body() {
    let server = Server::start(ServeOptions::default()).await;
    let (status, answer) = raw(
        server.addr,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-note: a\x01b\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(json_body(&answer)["reason"], "invalid_header");

    let (status, answer) = raw(server.addr, b"GET\x7f /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(json_body(&answer)["reason"], "invalid_request_line");
    server.stop().await;
}

#[tokio::test]
async fn idle_and_stalled_connections_neither_keep_requests_out_nor_stay_open() {
    let limit = 4;
    let server = Server::start(ServeOptions {
        max_connections: limit,
        header_timeout: Duration::from_secs(1),
        ..ServeOptions::default()
    })
    .await;
    // Three times the limit in connections that send nothing, and as many that send half
    // a request head and stall.
    let mut idle = Vec::new();
    for _ in 0..3 * limit {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let mut stalled = Vec::new();
    for _ in 0..3 * limit {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .await
            .unwrap();
        stalled.push(s);
    }
    // Requests still get through.
    for _ in 0..3 {
        let (status, answer) = raw(
            server.addr,
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{}/echo", server.addr))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello");
    // Every idle and stalled connection is closed by the server (made room for others,
    // or timed out waiting for its head).
    for s in idle.iter_mut().chain(stalled.iter_mut()) {
        assert!(
            closed_by_server(s).await,
            "a stalled connection stayed open"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_body_does_not_hold_the_connection() {
    let server = Server::start(ServeOptions {
        body_timeout: Duration::from_secs(1),
        ..ServeOptions::default()
    })
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut s).await,
        "a stalled body held the connection"
    );
    server.stop().await;
}

#[tokio::test]
async fn when_every_connection_is_busy_new_ones_wait_for_a_free_slot() {
    let server = Server::start(ServeOptions {
        max_connections: 2,
        body_timeout: Duration::from_secs(2),
        ..ServeOptions::default()
    })
    .await;
    // Two connections with a request in flight are not closed to make room: a third
    // connection is served once they are done. (`expect: 100-continue` makes the server
    // say when the handler has started reading the body.)
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(
            b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n",
        )
        .await
        .unwrap();
        let mut cont = [0u8; 25];
        s.read_exact(&mut cont).await.unwrap();
        assert_eq!(&cont[..], b"HTTP/1.1 100 Continue\r\n\r\n");
        busy.push(s);
    }
    let third = tokio::spawn(raw(
        server.addr,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ));
    for s in &mut busy {
        s.write_all(b"abcd").await.unwrap();
        let mut answer = [0u8; 12];
        s.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
    }
    drop(busy);
    let (status, answer) = tokio::time::timeout(GUARD, third).await.unwrap().unwrap();
    assert_eq!(status, 200, "{answer}");
    server.stop().await;
}
