//! Test support for the servers built on this crate (and this crate's own tests): raw
//! HTTP/1.1 over TCP for what a well-behaved client never sends, connections that idle or
//! stall, and sinks on loopback standing in for an SMS gateway and an SMTP server. Behind
//! the `testing` feature; not part of the API.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound on any wait in these helpers; only there so that a broken server fails the
/// test instead of hanging it.
pub const GUARD: Duration = Duration::from_secs(30);

/// Sends `request` on a new connection and reads the answer to the end: the status (0 when
/// there is none) and the whole answer as text.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
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

/// Sends each raw request on its own connection and checks that it is refused with that
/// status and the JSON error body (`reason` as given, a `message`), as both servers must
/// answer what they cannot or will not serve.
pub async fn assert_refusals(addr: SocketAddr, refusals: &[(&[u8], u16, &str)]) {
    for &(request, status, reason) in refusals {
        let (got, answer) = raw_exchange(addr, request).await;
        assert_eq!(got, status, "{answer}");
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        let body: Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(body["reason"], reason, "{body}");
        assert!(body["message"].is_string(), "{body}");
    }
}

/// Opens `n` connections that send nothing and `n` that send `partial_head` (the start of
/// a request head) and stall: what a slow-loris client holds open.
pub async fn idle_and_stalled(addr: SocketAddr, n: usize, partial_head: &[u8]) -> Vec<TcpStream> {
    let mut connections = Vec::new();
    for _ in 0..n {
        connections.push(TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(partial_head).await.unwrap();
        connections.push(s);
    }
    connections
}

/// Waits until the server closes `s` (reads to EOF, or the connection is reset); false
/// when it is still open after [`GUARD`].
pub async fn closed_by_server(s: &mut TcpStream) -> bool {
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

/// Checks that the server closes every one of `connections` (to make room for others, or
/// at a timeout).
pub async fn assert_all_closed_by_server(connections: &mut [TcpStream]) {
    for s in connections {
        assert!(
            closed_by_server(s).await,
            "a stalled connection stayed open"
        );
    }
}

/// POSTs `body` as JSON and returns the status and the JSON answer (`Null` when the answer
/// is not JSON).
pub async fn post_json(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// What a webhook sink received: (authorization header, JSON body) per request.
pub type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// An HTTP sink standing in for an SMS gateway: POSTs to `path` are recorded and answered
/// with `status`. Returns the sink's URL and what it receives.
pub async fn webhook_sink(path: &str, status: StatusCode) -> (String, Received) {
    let received: Received = Arc::default();
    let app =
        Router::new()
            .route(
                path,
                post(
                    move |State(r): State<Received>,
                          headers: HeaderMap,
                          Json(body): Json<Value>| async move {
                        let auth = headers
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_owned());
                        r.lock().unwrap().push((auth, body));
                        status
                    },
                ),
            )
            .with_state(received.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Accepts one SMTP session on `listener` and returns the message data it received.
pub async fn smtp_sink(listener: TcpListener) -> String {
    let (stream, _) = listener.accept().await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
    let mut data = String::new();
    let mut in_data = false;
    while let Some(line) = lines.next_line().await.unwrap() {
        if in_data {
            if line == "." {
                in_data = false;
                write.write_all(b"250 accepted\r\n").await.unwrap();
            } else {
                data.push_str(&line);
                data.push('\n');
            }
            continue;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink\r\n",
            "DATA" => {
                in_data = true;
                b"354 end with .\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await.unwrap();
                break;
            }
            _ => b"250 ok\r\n",
        };
        write.write_all(reply).await.unwrap();
    }
    data
}

/// Binds a loopback port for [`smtp_sink`] and serves one session on it in the background:
/// returns the port and the task that yields the message data.
pub async fn spawn_smtp_sink() -> (u16, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (port, tokio::spawn(smtp_sink(listener)))
}
