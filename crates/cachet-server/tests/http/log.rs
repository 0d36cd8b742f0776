#![allow(clippy::unwrap_used)]

//! The trust log over HTTP: users and operators append their own signed blocks, the
//! server refuses blocks that break a chain's rules, and a client's verifier checks what
//! the server serves (heads, proofs, chains).

use std::collections::BTreeMap;

use cachet_crypto::SignKeyPair;
use cachet_proto::v1::{AppendBlock, LogBlocks, LogHead, LogProof};
use cachet_trust::{
    Author, Block, BlockBody, ChangeVerdict, Event, LoggedBlock, SignedTreeHead, TrustError,
    Verifier,
};

use crate::common::*;

fn body(user: &TestUser, seq: u64, prev: [u8; 32], event: Event, author: Author) -> BlockBody {
    BlockBody {
        user_id: user.user_id.clone(),
        seq,
        prev,
        timestamp_ms: now_ms(),
        event,
        author,
    }
}

fn creation(user: &TestUser) -> Block {
    body(
        user,
        0,
        [0; 32],
        Event::UserCreated {
            box_key: *user.boxk.public.as_bytes(),
            sign_key: *user.sign.public().as_bytes(),
        },
        Author::Key(user.sign.public()),
    )
    .sign(&user.sign)
}

async fn append(s: &TestServer, who: &dyn Signer, block: &Block) -> Resp {
    s.post(
        who,
        "/api/v1/log/blocks",
        &AppendBlock {
            block: block.to_bytes(),
        },
    )
    .await
}

async fn head(s: &TestServer, who: &dyn Signer) -> (SignedTreeHead, Vec<u8>) {
    let h: LogHead = s.get(who, "/api/v1/log/head").await.decode();
    (SignedTreeHead::from_bytes(&h.sth).unwrap(), h.log_key)
}

fn hashes(raw: Vec<Vec<u8>>) -> Vec<[u8; 32]> {
    raw.into_iter()
        .map(|h| <[u8; 32]>::try_from(h.as_slice()).unwrap())
        .collect()
}

async fn chain(s: &TestServer, who: &dyn Signer, user_id: &str, size: u64) -> Vec<LoggedBlock> {
    let blocks: LogBlocks = s
        .get(
            who,
            &format!("/api/v1/log/blocks?user_id={user_id}&size={size}"),
        )
        .await
        .decode();
    assert_eq!(blocks.size, size);
    blocks
        .blocks
        .into_iter()
        .map(|b| LoggedBlock {
            index: b.index,
            block: Block::from_bytes(&b.block).unwrap(),
            proof: hashes(b.proof),
        })
        .collect()
}

/// Moves `v` to the server's current head through a consistency proof.
async fn sync(s: &TestServer, who: &dyn Signer, v: &mut Verifier) -> SignedTreeHead {
    let (new, _) = head(s, who).await;
    let old = v.head().map_or(0, |h| h.size);
    let proof: LogProof = s
        .get(
            who,
            &format!("/api/v1/log/proof/consistency?from={old}&to={}", new.size),
        )
        .await
        .decode();
    v.update_head(&new, &hashes(proof.hashes)).unwrap();
    new
}

/// Moves `v` to the server's current head and verifies the chain of `user_id` it serves.
async fn sync_and_verify(
    s: &TestServer,
    who: &dyn Signer,
    v: &mut Verifier,
    user_id: &str,
) -> SignedTreeHead {
    let h = sync(s, who, v).await;
    v.verify_chain(user_id, &chain(s, who, user_id, h.size).await)
        .unwrap();
    h
}

/// What `v` says of the keys `installation` holds, as the current keys of `user_id`.
fn check_keys(v: &Verifier, user_id: &str, installation: &TestUser) -> Result<(), TrustError> {
    v.check_key(
        user_id,
        &installation.sign.public(),
        installation.boxk.public.as_bytes(),
    )
    .map(|_| ())
}

/// The block after `prev` adding the keys of `new` (a new installation) to the chain of
/// `old`, signed by `old`'s key.
fn keys_added(old: &TestUser, prev: &Block, new: &TestUser) -> Block {
    body(
        old,
        1,
        prev.hash(),
        Event::KeysAdded {
            key_version: 2,
            box_key: *new.boxk.public.as_bytes(),
            sign_key: *new.sign.public().as_bytes(),
        },
        Author::Key(old.sign.public()),
    )
    .sign(&old.sign)
}

/// The block revoking `key_version` of `user` after `prev`, signed as operator olga with
/// `key` (hers, or a forger's). In these chains, block n is the one about version n.
fn revoked_by_olga(user: &TestUser, key_version: u32, prev: &Block, key: &SignKeyPair) -> Block {
    body(
        user,
        u64::from(key_version),
        prev.hash(),
        Event::KeysRevoked { key_version },
        Author::Operator {
            id: "op:olga".into(),
            key: key.public(),
        },
    )
    .sign(key)
}

/// A server with operator olga and users Alice and Bob: the cast of the log tests.
async fn olga_alice_and_bob() -> (TestServer, TestOperator, TestUser, TestUser) {
    let s = TestServer::start().await;
    let op = s.operator("olga").await;
    let [alice, bob] = s.register_all(["Alice", "Bob"]).await;
    (s, op, alice, bob)
}

#[tokio::test]
async fn chains_are_appended_served_and_verified() {
    let (s, op, alice, bob) = olga_alice_and_bob().await;

    let a0 = creation(&alice);
    let done: LogBlocks = append(&s, &alice, &a0).await.decode();
    assert_eq!(done.blocks[0].index, 0);
    append(&s, &bob, &creation(&bob))
        .await
        .decode::<LogBlocks>();

    // Bob's client pins the log key and the operator on first use, and checks Alice.
    let (_, log_key) = head(&s, &bob).await;
    let operators = BTreeMap::from([("op:olga".to_owned(), op.sign.public())]);
    let mut v = Verifier::new(
        cachet_crypto::SignPublicKey::from_slice(&log_key).unwrap(),
        operators,
    );
    let h = sync_and_verify(&s, &bob, &mut v, &alice.user_id).await;
    assert_eq!(h.size, 2);
    check_keys(&v, &alice.user_id, &alice).unwrap();
    let verified = alice.sign.public();

    // A new installation, authorised by the old key, in the directory and the log.
    let alice2 = s.reinstall(&alice, true).await;
    let a1 = keys_added(&alice, &a0, &alice2);
    append(&s, &alice2, &a1).await.decode::<LogBlocks>();
    sync_and_verify(&s, &bob, &mut v, &alice.user_id).await;
    // The old keys, still handed out by a stale directory answer, are refused.
    let err = check_keys(&v, &alice.user_id, &alice).unwrap_err();
    assert!(
        matches!(err, TrustError::StaleKey { version: 1, .. }),
        "{err}"
    );
    assert!(matches!(
        v.judge_change(&alice.user_id, &verified).unwrap(),
        ChangeVerdict::KeepVerified { .. }
    ));

    // The operator revokes through the API and signs the block as itself.
    s.revoke_user(&op, &alice.user_id, "lost phone")
        .await
        .decode::<cachet_proto::v1::UserProfile>();
    let a2 = revoked_by_olga(&alice, 2, &a1, &op.sign);
    append(&s, &op, &a2).await.decode::<LogBlocks>();
    let h = sync_and_verify(&s, &bob, &mut v, &alice.user_id).await;
    let err = check_keys(&v, &alice.user_id, &alice2).unwrap_err();
    assert!(
        matches!(err, TrustError::KeyRevoked { version: 2, .. }),
        "{err}"
    );

    // The whole log, paged, audits against the head.
    let all: LogBlocks = s
        .get(&bob, "/api/v1/log/blocks?after=0&limit=2")
        .await
        .decode();
    assert_eq!(all.blocks.len(), 2);
    let all: LogBlocks = s.get(&bob, "/api/v1/log/blocks").await.decode();
    let blocks: Vec<Block> = all
        .blocks
        .iter()
        .map(|b| Block::from_bytes(&b.block).unwrap())
        .collect();
    let chains = cachet_trust::audit_log(
        &blocks,
        &h,
        v.log_key(),
        &BTreeMap::from([("op:olga".to_owned(), op.sign.public())]),
    )
    .unwrap();
    assert!(chains[&alice.user_id].current().is_none());

    // Inclusion proofs on their own.
    let p: LogProof = s
        .get(
            &bob,
            &format!("/api/v1/log/proof/inclusion?index=1&size={}", h.size),
        )
        .await
        .decode();
    cachet_trust::merkle::verify_inclusion(
        &blocks[1].hash(),
        1,
        h.size,
        &hashes(p.hashes),
        &h.root,
    )
    .unwrap();
}

#[tokio::test]
async fn blocks_that_break_the_rules_are_refused() {
    let (s, op, alice, bob) = olga_alice_and_bob().await;
    let a0 = creation(&alice);

    // Bob cannot write Alice's chain, and an operator cannot write a user's block.
    append(&s, &bob, &a0)
        .await
        .assert_error(400, "block_rejected");
    append(&s, &op, &a0)
        .await
        .assert_error(400, "block_rejected");
    // Keys other than the directory's.
    let other = SignKeyPair::generate();
    let fake = body(
        &alice,
        0,
        [0; 32],
        Event::UserCreated {
            box_key: *alice.boxk.public.as_bytes(),
            sign_key: *other.public().as_bytes(),
        },
        Author::Key(other.public()),
    )
    .sign(&other);
    append(&s, &alice, &fake)
        .await
        .assert_error(400, "block_rejected");
    append(&s, &alice, &a0).await.decode::<LogBlocks>();
    // The same place twice.
    append(&s, &alice, &a0)
        .await
        .assert_error(400, "block_rejected");
    // A revocation signed as operator olga with another key (a forged operator action),
    // sent by olga's account.
    let forged = revoked_by_olga(&alice, 1, &a0, &other);
    append(&s, &op, &forged)
        .await
        .assert_error(400, "block_rejected");
    // Garbage and bad queries.
    s.post(
        &alice,
        "/api/v1/log/blocks",
        &AppendBlock {
            block: vec![1, 2, 3],
        },
    )
    .await
    .assert_error(400, "invalid_field");
    for (query, reason) in [
        (
            "/api/v1/log/proof/inclusion?index=0&size=9",
            "log_too_small",
        ),
        ("/api/v1/log/proof/consistency?from=2&to=1", "invalid_path"),
        ("/api/v1/log/blocks?nope=1", "invalid_path"),
    ] {
        s.get(&alice, query).await.assert_error(400, reason);
    }
}

#[tokio::test]
async fn the_log_key_and_tree_survive_a_restart() {
    let mut s = TestServer::start().await;
    let alice = s.register("Alice").await;
    append(&s, &alice, &creation(&alice))
        .await
        .decode::<LogBlocks>();
    let (before, key_before) = head(&s, &alice).await;
    s.stop().await;
    let mut config = cachet_server::ServerConfig::for_data_dir(s.dir.path());
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = cachet_server::spawn(config).await.unwrap();
    s.client = Client::new(server.base_url());
    s.server = Some(server);
    let (after, key_after) = head(&s, &alice).await;
    assert_eq!(key_before, key_after);
    assert_eq!((before.size, before.root), (after.size, after.root));
}

#[tokio::test]
async fn the_directory_serves_no_keys_before_their_block() {
    let s = TestServer::start_with(|c| c.allow_keys_without_block = Some(false)).await;
    let [alice, bob] = s.register_all(["Alice", "Bob"]).await;
    let profile = format!("/api/v1/users/{}", alice.user_id);
    let keys = format!("/api/v1/users/{}/keys", alice.user_id);
    s.get(&bob, &profile)
        .await
        .assert_error(409, "keys_not_in_log");
    s.get(&bob, &keys)
        .await
        .assert_error(409, "keys_not_in_log");

    let a0 = creation(&alice);
    assert_eq!(append(&s, &alice, &a0).await.status, 200);
    assert_eq!(s.get(&bob, &profile).await.status, 200);
    assert_eq!(s.get(&bob, &keys).await.status, 200);

    // A new installation is hidden again until its own block is in.
    let alice2 = s.reinstall(&alice, true).await;
    s.get(&bob, &keys)
        .await
        .assert_error(409, "keys_not_in_log");
    let a1 = keys_added(&alice, &a0, &alice2);
    assert_eq!(append(&s, &alice2, &a1).await.status, 200);
    assert_eq!(s.get(&bob, &keys).await.status, 200);
}
