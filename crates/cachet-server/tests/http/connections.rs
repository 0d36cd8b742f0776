//! Connections that idle, stall or send unreadable heads: the server stays available,
//! closes what stalls, and answers what it cannot read with the JSON error body.

use cachet_http::testing::{assert_all_closed_by_server, assert_refusals, idle_and_stalled};

use crate::common::*;

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
    let mut held = idle_and_stalled(
        addr,
        4 * limit,
        b"POST /api/v1/cases HTTP/1.1\r\nhost: x\r\nx-siilo-uid: ",
    )
    .await;

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
    assert_all_closed_by_server(&mut held).await;
    let r = fresh.get(&alice, "/api/v1/cases").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn unreadable_heads_are_answered_with_the_json_error_body() {
    let s = TestServer::start_with(|c| c.max_header_bytes = Some(4096)).await;
    let addr = s.running().local_addr();
    let big = "h".repeat(10_000);
    let big_head = format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    assert_refusals(
        addr,
        &[
            (big_head.as_bytes(), 431, "headers_too_large"),
            (
                b"GET /api/v1/cases HTTP/1.1\r\nhost: x\r\nx-siilo-uid: u_\x00alice\r\n\r\n",
                400,
                "invalid_header",
            ),
            // The route exists, the method does not.
            (
                b"DELETE /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
                405,
                "method_not_allowed",
            ),
        ],
    )
    .await;
}
