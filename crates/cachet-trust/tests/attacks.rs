//! A malicious log server, attack by attack: each one must be caught by the client's
//! verifier, which refuses and says why.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use cachet_crypto::SignKeyPair;
use cachet_trust::{
    audit_log, Author, BlockBody, ChangeVerdict, Event, LoggedBlock, MerkleLog, SignedTreeHead,
    TrustError,
};
use common::{operators, rand_key, Server, User, OPERATOR};

/// Attack 1: the server hands out its own key for Bob, either straight from the directory
/// (not in Bob's chain) or as a new self-signed block in Bob's chain.
#[test]
fn substituted_public_key_is_refused() {
    let op = SignKeyPair::generate();
    let (mut server, bob) = Server::with_user("u_bob");
    let mut alice = server.client(&operators(&op));
    alice.verify_chain("u_bob", &server.chain("u_bob")).unwrap();
    let verified = bob.sign.public();

    // (a) A directory answer with the server's key: not in the chain.
    let fake_sign = SignKeyPair::generate().public();
    assert_refused!(
        alice.check_key("u_bob", &fake_sign, &rand_key()),
        TrustError::KeyNotInLog { .. }
    );
    // Right Sign Key, substituted Box Key: refused too.
    assert_refused!(
        alice.check_key("u_bob", &bob.sign.public(), &rand_key()),
        TrustError::KeyNotInLog { .. }
    );

    // (b) A block the server writes itself, signed by its own new key: it replays (the
    // server can make a lost-device block), but it is not authorised by the verified key.
    let (mut mallory, _) = User::create("u_bob");
    mallory.seq = bob.seq;
    mallory.last = bob.last;
    mallory.version = bob.version;
    server.append(mallory.lost_device());
    server.sync(&mut alice);
    alice.verify_chain("u_bob", &server.chain("u_bob")).unwrap();
    alice
        .check_key("u_bob", &mallory.sign.public(), &mallory.box_key)
        .unwrap();
    match alice.judge_change("u_bob", &verified).unwrap() {
        ChangeVerdict::Unverify { note } => {
            assert!(note.contains("not signed by the key you verified"))
        }
        other => panic!("substitution kept verified: {other:?}"),
    }

    // (c) A block claiming to be signed by Bob's verified key, but forged.
    let forged = BlockBody {
        user_id: "u_bob".into(),
        seq: mallory.seq,
        prev: mallory.last,
        timestamp_ms: 1,
        event: Event::KeysAdded {
            key_version: mallory.version + 1,
            box_key: rand_key(),
            sign_key: rand_key(),
        },
        author: Author::Key(verified),
    }
    .sign(&SignKeyPair::generate());
    server.append(forged);
    server.sync(&mut alice);
    assert_refused!(
        alice.verify_chain("u_bob", &server.chain("u_bob")),
        TrustError::SignatureInvalid { seq: 2, .. }
    );
}

/// Attack 2: an operator revoked Bob's keys; the server then hides the revocation.
#[test]
fn dropped_revocation_is_refused() {
    let op = SignKeyPair::generate();
    let (mut server, mut bob) = Server::with_user("u_bob");
    let mut alice = server.client(&operators(&op));
    alice.verify_chain("u_bob", &server.chain("u_bob")).unwrap();
    let revoked_sign = bob.sign.public();
    let revoked_box = bob.box_key;

    server.append(bob.revoke_by_operator(OPERATOR, &op));
    let revoked_at = server.log.size();
    server.sync(&mut alice);
    alice.verify_chain("u_bob", &server.chain("u_bob")).unwrap();
    assert_refused!(
        alice.check_key("u_bob", &revoked_sign, &revoked_box),
        TrustError::KeyRevoked { version: 1, .. }
    );

    // (a) To a client that saw it: the chain served without the revocation.
    let mut hidden = server.chain("u_bob");
    hidden.pop();
    assert_refused!(
        alice.verify_chain("u_bob", &hidden),
        TrustError::RevocationMissing { .. }
    );
    // Nothing was recorded: the revoked keys are still refused.
    assert!(alice
        .check_key("u_bob", &revoked_sign, &revoked_box)
        .is_err());

    // (b) To the operator, who kept the head that included the revocation: a log rebuilt
    // without it does not extend that head.
    let mut operator_client = server.client(&operators(&op));
    assert_eq!(operator_client.head().unwrap().size, revoked_at);
    let mut rewritten = MerkleLog::new();
    for b in &server.blocks[..revoked_at as usize - 1] {
        rewritten.append(&b.to_bytes());
    }
    let (carol, c0) = User::create("u_carol");
    rewritten.append(&c0.to_bytes());
    let _ = carol;
    let head = SignedTreeHead::sign(rewritten.size(), rewritten.root(), 9_999, &server.log_key);
    let proof = rewritten
        .consistency_proof(revoked_at, rewritten.size())
        .unwrap();
    assert_refused!(
        operator_client.update_head(&head, &proof),
        TrustError::ForkDetected { .. }
    );

    // (c) To a fresh client auditing the whole log: the chain the server serves differs
    // from the chain the log holds.
    let head = server.head();
    let chains = audit_log(
        &server.blocks,
        &head,
        &server.log_key.public(),
        &operators(&op),
    )
    .unwrap();
    assert!(
        chains["u_bob"].current().is_none(),
        "the full log shows the revocation"
    );
    assert_ne!(chains["u_bob"].len(), hidden.len() as u64);
}

/// Attack 3: the server replays an old key: the old KeysAdded block again, or an old
/// prefix of the chain, or the old key from the directory.
#[test]
fn replayed_old_key_is_refused() {
    let op = SignKeyPair::generate();
    let (mut server, mut bob) = Server::with_user("u_bob");
    server.append(bob.new_installation());
    let old_sign = bob.sign.public();
    let old_box = bob.box_key;
    let replayed = server.blocks[1].clone();
    server.append(bob.new_installation());
    let mut alice = server.client(&operators(&op));
    alice.verify_chain("u_bob", &server.chain("u_bob")).unwrap();

    // (a) The directory serves version 2's keys: stale.
    assert_refused!(
        alice.check_key("u_bob", &old_sign, &old_box),
        TrustError::StaleKey { version: 2, .. }
    );

    // (b) The old block appended again to the log.
    server.append(replayed);
    server.sync(&mut alice);
    assert_refused!(
        alice.verify_chain("u_bob", &server.chain("u_bob")),
        TrustError::Replay { seq: 1, .. }
    );

    // (c) The chain cut back to version 2 (a valid prefix, under a valid head).
    let prefix = server.chain("u_bob")[..2].to_vec();
    assert_refused!(
        alice.verify_chain("u_bob", &prefix),
        TrustError::ChainRollback {
            seen: 3,
            offered: 2,
            ..
        }
    );

    // (d) An older signed head, to roll the client back.
    let old_head = server.head_at(2);
    assert_refused!(
        alice.update_head(&old_head, &[]),
        TrustError::HeadRollback { .. }
    );
}

/// Attack 4: the server reorders blocks, in the log or in the answer.
#[test]
fn reordered_blocks_are_refused() {
    let op = SignKeyPair::generate();
    let mut server = Server::new();
    let (mut bob, b0) = User::create("u_bob");
    let b1 = bob.new_installation();
    let b2 = bob.new_installation();
    // (a) In the log: the installation of version 3 before version 2.
    server.append(b0.clone());
    server.append(b2.clone());
    server.append(b1.clone());
    let mut alice = server.client(&operators(&op));
    assert_refused!(
        alice.verify_chain("u_bob", &server.chain("u_bob")),
        TrustError::OutOfOrder {
            expected: 1,
            found: 2,
            ..
        }
    );

    // (b) In the answer: blocks in chain order but claimed at swapped log positions, or
    // listed out of log order.
    let mut honest = Server::new();
    for b in [b0, b1, b2] {
        honest.append(b);
    }
    let mut alice = honest.client(&operators(&op));
    let mut chain = honest.chain("u_bob");
    chain.swap(1, 2);
    assert_refused!(
        alice.verify_chain("u_bob", &chain),
        TrustError::LogOrder { index: 1, .. }
    );
    let mut chain = honest.chain("u_bob");
    chain[1].index = chain[2].index;
    chain.truncate(2);
    assert_refused!(
        alice.verify_chain("u_bob", &chain),
        TrustError::InclusionProofInvalid { .. }
    );

    // (c) A block whose link was rewritten to skip the one before it.
    let mut skipping = honest.chain("u_bob");
    skipping.remove(1);
    assert_refused!(
        alice.verify_chain("u_bob", &skipping),
        TrustError::OutOfOrder { .. } | TrustError::BrokenLink { .. }
    );
}

/// Attack 5: the server shows Alice and Carol two different histories.
#[test]
fn fork_between_two_clients_is_detected() {
    let op = SignKeyPair::generate();
    let mut server = Server::new();
    let (mut bob, b0) = User::create("u_bob");
    server.append(b0.clone());
    let genuine = bob.new_installation();

    // The fork: Alice's log holds Bob's genuine installation, Carol's a key the server
    // made up. Both heads are signed by the same log key.
    let mut alices = server.blocks.clone();
    alices.push(genuine.clone());
    let (mut fake, _) = User::create("u_bob");
    fake.seq = 1;
    fake.last = b0.hash();
    let substituted = fake.lost_device();
    let mut carols = server.blocks.clone();
    carols.push(substituted);
    let (alog, clog) = (
        MerkleLog::from_leaf_hashes(alices.iter().map(|b| b.hash())),
        MerkleLog::from_leaf_hashes(carols.iter().map(|b| b.hash())),
    );
    let ahead = SignedTreeHead::sign(alog.size(), alog.root(), 5, &server.log_key);
    let chead = SignedTreeHead::sign(clog.size(), clog.root(), 5, &server.log_key);

    let mut alice = cachet_trust::Verifier::new(server.log_key.public(), operators(&op));
    alice.update_head(&ahead, &[]).unwrap();
    let mut carol = cachet_trust::Verifier::new(server.log_key.public(), operators(&op));
    carol.update_head(&chead, &[]).unwrap();

    // Comparing heads (gossip, a saved head file): same size, different roots.
    assert_refused!(
        alice.compare_head(&chead, &[]),
        TrustError::ForkDetected { .. }
    );

    // Later, Carol is moved onto Alice's branch: no consistency proof can bridge them.
    let mut alices_next = alog.clone();
    alices_next.append(b"later");
    let next = SignedTreeHead::sign(alices_next.size(), alices_next.root(), 6, &server.log_key);
    let proof = alices_next
        .consistency_proof(chead.size, next.size)
        .unwrap();
    assert_refused!(
        carol.update_head(&next, &proof),
        TrustError::ConsistencyProofInvalid { .. }
    );
    assert_refused!(
        carol.compare_head(&next, &proof),
        TrustError::ForkDetected { .. }
    );
    // And it cannot serve Carol a block from Alice's branch either.
    let entry = LoggedBlock {
        index: 1,
        block: genuine,
        proof: alog.inclusion_proof(1, 2).unwrap(),
    };
    let first = LoggedBlock {
        index: 0,
        block: b0,
        proof: clog.inclusion_proof(0, 2).unwrap(),
    };
    assert_refused!(
        carol.verify_chain("u_bob", &[first, entry]),
        TrustError::InclusionProofInvalid { index: 1, .. }
    );
}

/// Attack 6: the server forges an operator revocation (with its own key, an unknown
/// operator name, or a known name with a key that is not the operator's).
#[test]
fn forged_operator_revocation_is_refused() {
    let op = SignKeyPair::generate();
    let server_key = SignKeyPair::generate();
    for (id, signer) in [
        (OPERATOR, &server_key),    // known operator, wrong key
        ("op:server", &server_key), // operator nobody pinned
        ("op:server", &op),         // real key under another name
    ] {
        let mut server = Server::new();
        let (mut bob, b0) = User::create("u_bob");
        server.append(b0);
        server.append(bob.revoke_by_operator(id, signer));
        let mut alice = server.client(&operators(&op));
        assert_refused!(
            alice.verify_chain("u_bob", &server.chain("u_bob")),
            TrustError::UnknownOperator { .. },
            id
        );
    }
    // A block naming the pinned operator and key, but signed by someone else.
    let (mut server, bob) = Server::with_user("u_bob");
    let forged = BlockBody {
        user_id: "u_bob".into(),
        seq: 1,
        prev: bob.last,
        timestamp_ms: 1,
        event: Event::KeysRevoked { key_version: 1 },
        author: Author::Operator {
            id: OPERATOR.into(),
            key: op.public(),
        },
    }
    .sign(&server_key);
    server.append(forged);
    let mut alice = server.client(&operators(&op));
    assert_refused!(
        alice.verify_chain("u_bob", &server.chain("u_bob")),
        TrustError::SignatureInvalid { seq: 1, .. }
    );
    // A revocation the real operator signed is accepted, and attributed.
    let (mut server, mut bob) = Server::with_user("u_bob");
    server.append(bob.revoke_by_operator(OPERATOR, &op));
    let mut alice = server.client(&operators(&op));
    let chain = alice.verify_chain("u_bob", &server.chain("u_bob")).unwrap();
    assert_eq!(
        chain.generations[0].revoked,
        Some(cachet_trust::RevokedBy::Operator(OPERATOR.into()))
    );
}

/// A head signed by another key than the server's log key is refused.
#[test]
fn head_not_signed_by_the_log_key_is_refused() {
    let op = SignKeyPair::generate();
    let (mut server, _bob) = Server::with_user("u_bob");
    let mut alice = server.client(&operators(&op));
    server.append(User::create("u_carol").1);
    let forged = SignedTreeHead::sign(
        server.log.size(),
        server.log.root(),
        7,
        &SignKeyPair::generate(),
    );
    assert_refused!(
        alice.update_head(&forged, &server.consistency(1, 2)),
        TrustError::TreeHeadSignatureInvalid { .. }
    );
}
