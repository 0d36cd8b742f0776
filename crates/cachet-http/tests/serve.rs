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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

// The one copy of the test support, shared with the servers' tests (feature `testing`).
#[allow(dead_code)]
#[path = "../src/testing.rs"]
mod testing;

use testing::{
    assert_all_closed_by_server, assert_refusals, closed_by_server, idle_and_stalled,
    raw_exchange as raw, GUARD,
};

/// A request for `/healthz` that the server serves, on a connection it then closes.
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

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

#[tokio::test]
async fn a_head_too_large_is_431_with_a_json_body() {
    let server = Server::start(ServeOptions {
        max_header_bytes: 4096,
        ..ServeOptions::default()
    })
    .await;
    let big = "a".repeat(8000);
    let big_head = format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    // A request line alone over the limit.
    let long_line = format!("GET /{big} HTTP/1.1\r\n");
    // Too many header fields.
    let many: String = (0..150).map(|i| format!("x-{i}: v\r\n")).collect();
    let many_fields = format!("GET /healthz HTTP/1.1\r\nhost: x\r\n{many}\r\n");
    assert_refusals(
        server.addr,
        &[
            (big_head.as_bytes(), 431, "headers_too_large"),
            (long_line.as_bytes(), 414, "uri_too_long"),
            (many_fields.as_bytes(), 431, "headers_too_large"),
        ],
    )
    .await;

    // A head within the limit is served.
    let (status, answer) = raw(server.addr, HEALTHZ).await;
    assert_eq!(status, 200, "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn control_bytes_in_a_header_are_400_with_a_json_body() {
    let server = Server::start(ServeOptions::default()).await;
    assert_refusals(
        server.addr,
        &[
            (
                b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-note: a\x01b\r\n\r\n",
                400,
                "invalid_header",
            ),
            (
                b"GET\x7f /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
                400,
                "invalid_request_line",
            ),
        ],
    )
    .await;
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
    let mut held = idle_and_stalled(
        server.addr,
        3 * limit,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ",
    )
    .await;
    // Requests still get through.
    for _ in 0..3 {
        let (status, answer) = raw(server.addr, HEALTHZ).await;
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
    assert_all_closed_by_server(&mut held).await;
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
    let third = tokio::spawn(raw(server.addr, HEALTHZ));
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
