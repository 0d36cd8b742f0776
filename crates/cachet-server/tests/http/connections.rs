//! Connections that idle, stall or send unreadable heads: the server stays available,
//! closes what stalls, and answers what it cannot read with the JSON error body.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// Upper bound on any wait here; only there so that a broken server fails the test
/// instead of hanging it.
const GUARD: Duration = Duration::from_secs(30);

/// Sends `request` on a new connection and reads the answer to the end.
async fn raw_tcp(addr: SocketAddr, request: &[u8]) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(GUARD, s.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .expect("read");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// Waits until the server closes `s`.
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
async fn idle_and_stalled_connections_keep_neither_healthz_nor_signed_requests_out() {
    let limit = 6;
    let s = TestServer::start_with(|c| {
        c.max_connections = Some(limit);
        c.header_timeout_seconds = Some(1);
    })
    .await;
    let alice = s.register("alice").await;
    let addr = s.running().local_addr();

    // Far more connections than the limit that send nothing, and as many that send half
    // a request head and stall.
    let mut idle = Vec::new();
    for _ in 0..4 * limit {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut stalled = Vec::new();
    for _ in 0..4 * limit {
        let mut c = TcpStream::connect(addr).await.expect("connect");
        c.write_all(b"POST /api/v1/cases HTTP/1.1\r\nhost: x\r\nx-siilo-uid: ")
            .await
            .expect("write");
        stalled.push(c);
    }

    // A client that does not keep connections for reuse (the server may close idle ones).
    let fresh = Client {
        http: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client"),
        base: s.base.clone(),
    };
    let r = fresh
        .raw(reqwest::Method::GET, "/healthz", &[], Vec::new())
        .await;
    assert_eq!(r.status, 200);
    let r = fresh.get(&alice, "/api/v1/cases").await;
    assert_eq!(r.status, 200);

    // The stalled connections are closed (to make room, or at the header timeout).
    for c in idle.iter_mut().chain(stalled.iter_mut()) {
        assert!(
            closed_by_server(c).await,
            "a stalled connection stayed open"
        );
    }
    let r = fresh.get(&alice, "/api/v1/cases").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn unreadable_heads_are_answered_with_the_json_error_body() {
    let s = TestServer::start_with(|c| c.max_header_bytes = Some(4096)).await;
    let addr = s.running().local_addr();
    let big = "h".repeat(10_000);
    let (status, body) = raw_tcp(
        addr,
        format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 431);
    assert_eq!(body["reason"], "headers_too_large", "{body}");
    assert!(body["message"].is_string(), "{body}");

    let (status, body) = raw_tcp(
        addr,
        b"GET /api/v1/cases HTTP/1.1\r\nhost: x\r\nx-siilo-uid: u_\x00alice\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["reason"], "invalid_header", "{body}");

    // The route exists, the method does not.
    let (status, body) = raw_tcp(
        addr,
        b"DELETE /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(body["reason"], "method_not_allowed", "{body}");
}
