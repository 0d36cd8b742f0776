#![allow(clippy::unwrap_used)]

//! The trust log over HTTP: users and operators append their own signed blocks, the
//! server refuses blocks that break a chain's rules, and a client's verifier checks what
//! the server serves (heads, proofs, chains).

use std::collections::BTreeMap;

use cachet_crypto::SignKeyPair;
use cachet_proto::v1::{AppendBlock, LogBlocks, LogHead, LogProof, RevokeKeys};
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

#[tokio::test]
async fn chains_are_appended_served_and_verified() {
    let s = TestServer::start().await;
    let op = s.operator("olga").await;
    let alice = s.register("Alice").await;
    let bob = s.register("Bob").await;

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
    let h = sync(&s, &bob, &mut v).await;
    assert_eq!(h.size, 2);
    v.verify_chain(
        &alice.user_id,
        &chain(&s, &bob, &alice.user_id, h.size).await,
    )
    .unwrap();
    v.check_key(
        &alice.user_id,
        &alice.sign.public(),
        alice.boxk.public.as_bytes(),
    )
    .unwrap();
    let verified = alice.sign.public();

    // A new installation, authorised by the old key, in the directory and the log.
    let alice2 = s.reinstall(&alice, true).await;
    let a1 = body(
        &alice,
        1,
        a0.hash(),
        Event::KeysAdded {
            key_version: 2,
            box_key: *alice2.boxk.public.as_bytes(),
            sign_key: *alice2.sign.public().as_bytes(),
        },
        Author::Key(alice.sign.public()),
    )
    .sign(&alice.sign);
    append(&s, &alice2, &a1).await.decode::<LogBlocks>();
    let h = sync(&s, &bob, &mut v).await;
    v.verify_chain(
        &alice.user_id,
        &chain(&s, &bob, &alice.user_id, h.size).await,
    )
    .unwrap();
    // The old keys, still handed out by a stale directory answer, are refused.
    let err = v
        .check_key(
            &alice.user_id,
            &alice.sign.public(),
            alice.boxk.public.as_bytes(),
        )
        .unwrap_err();
    assert!(
        matches!(err, TrustError::StaleKey { version: 1, .. }),
        "{err}"
    );
    assert!(matches!(
        v.judge_change(&alice.user_id, &verified).unwrap(),
        ChangeVerdict::KeepVerified { .. }
    ));

    // The operator revokes through the API and signs the block as itself.
    s.post(
        &op,
        &format!("/api/v1/operator/users/{}/revoke", alice.user_id),
        &RevokeKeys {
            reason: "lost phone".into(),
        },
    )
    .await
    .decode::<cachet_proto::v1::UserProfile>();
    let a2 = body(
        &alice,
        2,
        a1.hash(),
        Event::KeysRevoked { key_version: 2 },
        Author::Operator {
            id: "op:olga".into(),
            key: op.sign.public(),
        },
    )
    .sign(&op.sign);
    append(&s, &op, &a2).await.decode::<LogBlocks>();
    let h = sync(&s, &bob, &mut v).await;
    v.verify_chain(
        &alice.user_id,
        &chain(&s, &bob, &alice.user_id, h.size).await,
    )
    .unwrap();
    let err = v
        .check_key(
            &alice.user_id,
            &alice2.sign.public(),
            alice2.boxk.public.as_bytes(),
        )
        .unwrap_err();
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
    let s = TestServer::start().await;
    let op = s.operator("olga").await;
    let alice = s.register("Alice").await;
    let bob = s.register("Bob").await;
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
    let forged = body(
        &alice,
        1,
        a0.hash(),
        Event::KeysRevoked { key_version: 1 },
        Author::Operator {
            id: "op:olga".into(),
            key: other.public(),
        },
    )
    .sign(&other);
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
    s.get(&alice, "/api/v1/log/proof/inclusion?index=0&size=9")
        .await
        .assert_error(400, "log_too_small");
    s.get(&alice, "/api/v1/log/proof/consistency?from=2&to=1")
        .await
        .assert_error(400, "invalid_path");
    s.get(&alice, "/api/v1/log/blocks?nope=1")
        .await
        .assert_error(400, "invalid_path");
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
    let alice = s.register("Alice").await;
    let bob = s.register("Bob").await;
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
    let a1 = body(
        &alice2,
        1,
        a0.hash(),
        Event::KeysAdded {
            key_version: 2,
            box_key: *alice2.boxk.public.as_bytes(),
            sign_key: *alice2.sign.public().as_bytes(),
        },
        Author::Key(alice.sign.public()),
    )
    .sign(&alice.sign);
    assert_eq!(append(&s, &alice2, &a1).await.status, 200);
    assert_eq!(s.get(&bob, &keys).await.status, 200);
}
