//! Contact discovery is limited per user and per window, with 429 and Retry-After past it.

use cachet_proto::v1::{DiscoverRequest, DiscoverResponse};
use cachet_server::ServerConfig;
use reqwest::Method;

use crate::common::*;

const DISCOVER: &str = "/api/v1/directory/discover";

fn random_hashes(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| cachet_crypto::random_bytes::<32>().to_vec())
        .collect()
}

fn request(hashes: Vec<Vec<u8>>) -> DiscoverRequest {
    DiscoverRequest {
        identifier_hashes: hashes,
    }
}

/// An enumerating client (fresh hashes, request after request) is stopped at the limit
/// with 429 `discovery_rate_limited` and a Retry-After; every hash counts, found or not;
/// a refused request counts nothing; each user has a budget of their own.
#[tokio::test]
async fn discovery_is_limited_per_user_and_window() {
    let s = TestServer::start_with(|c: &mut ServerConfig| {
        c.discover_max_hashes = Some(10);
    })
    .await;
    let [alice, bob] = s.register_all(["Alice", "Bob"]).await;

    let mut first = random_hashes(5);
    first.push(cachet_proto::discovery_hash(&bob.identifier).to_vec());
    let found: DiscoverResponse = s.post(&alice, DISCOVER, &request(first)).await.decode();
    assert_eq!(found.contacts.len(), 1);
    assert_eq!(found.contacts[0].user_id, bob.user_id);

    // 6 + 5 would pass 10: refused, and nothing of it is counted.
    s.post(&alice, DISCOVER, &request(random_hashes(5)))
        .await
        .assert_error(429, "discovery_rate_limited");
    // 6 + 4 reaches the limit exactly.
    let r = s.post(&alice, DISCOVER, &request(random_hashes(4))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // One more hash is refused, with the time until the window ends.
    let body = cachet_proto::Message::encode_to_vec(&request(random_hashes(1)));
    let headers = Client::headers_at(&alice, &Method::POST, DISCOVER, &body, now_ms());
    let mut req = s
        .http
        .post(format!("{}{DISCOVER}", s.base))
        .header("content-type", cachet_server::PROTOBUF)
        .body(body);
    for (k, v) in &headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.expect("sent");
    assert_eq!(resp.status().as_u16(), 429);
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let body = resp.bytes().await.expect("body");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json body");
    assert_eq!(v["reason"], "discovery_rate_limited");

    // Bob's budget is his own.
    let r = s.post(&bob, DISCOVER, &request(random_hashes(10))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // A request larger than the whole budget is refused outright.
    let carol = s.register("Carol").await;
    s.post(&carol, DISCOVER, &request(random_hashes(11)))
        .await
        .assert_error(429, "discovery_rate_limited");
}
