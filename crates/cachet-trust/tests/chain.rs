//! The chain rules on honest histories, and the block encoding.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use cachet_crypto::SignKeyPair;
use cachet_trust::{
    Author, Authorisation, Block, BlockBody, ChangeVerdict, Event, RevokedBy, Scope, TrustError,
};
use common::{operators, Server, User, OPERATOR};
use proptest::prelude::*;

#[test]
fn installations_signed_by_the_old_key_keep_verification() {
    let op = SignKeyPair::generate();
    let (mut server, mut bob) = Server::with_user("u_bob");
    let verified = bob.sign.public();
    server.append(bob.new_installation());
    server.append(bob.joined_case("case-1", "u_carol"));
    server.append(bob.verified_by_operator(OPERATOR, &op));
    server.append(bob.new_installation());
    let mut alice = server.client(&operators(&op));
    let chain = alice.verify_chain("u_bob", &server.chain("u_bob")).unwrap();
    assert_eq!(chain.current().unwrap().version, 3);
    assert_eq!(chain.verified_by, vec![OPERATOR.to_owned()]);
    alice
        .check_key("u_bob", &bob.sign.public(), &bob.box_key)
        .unwrap();
    assert!(matches!(
        alice.judge_change("u_bob", &verified).unwrap(),
        ChangeVerdict::KeepVerified { .. }
    ));
    assert_eq!(
        alice.judge_change("u_bob", &bob.sign.public()).unwrap(),
        ChangeVerdict::Unchanged
    );
}

#[test]
fn recovery_key_set_by_the_verified_key_keeps_verification() {
    let op = SignKeyPair::generate();
    let (mut server, mut bob) = Server::with_user("u_bob");
    let verified = bob.sign.public();
    server.append(bob.set_recovery());
    server.append(bob.revoke_self());
    server.append(bob.recover());
    let mut alice = server.client(&operators(&op));
    let chain = alice.verify_chain("u_bob", &server.chain("u_bob")).unwrap();
    assert_eq!(chain.generations[0].revoked, Some(RevokedBy::User));
    assert_eq!(
        chain.current().unwrap().authorised_by,
        Authorisation::RecoveryKey
    );
    assert!(matches!(
        alice.judge_change("u_bob", &verified).unwrap(),
        ChangeVerdict::KeepVerified { .. }
    ));
}

#[test]
fn lost_device_and_operator_revocation_unverify() {
    let op = SignKeyPair::generate();
    let (mut server, mut bob) = Server::with_user("u_bob");
    let verified = bob.sign.public();
    server.append(bob.lost_device());
    let mut alice = server.client(&operators(&op));
    alice.verify_chain("u_bob", &server.chain("u_bob")).unwrap();
    assert!(matches!(
        alice.judge_change("u_bob", &verified).unwrap(),
        ChangeVerdict::Unverify { .. }
    ));

    let verified = bob.sign.public();
    server.append(bob.revoke_by_operator(OPERATOR, &op));
    server.append(bob.lost_device());
    server.sync(&mut alice);
    alice.verify_chain("u_bob", &server.chain("u_bob")).unwrap();
    match alice.judge_change("u_bob", &verified).unwrap() {
        ChangeVerdict::Unverify { note } => assert!(note.contains("revoked by operator op:alice")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rule_breaking_blocks_are_refused() {
    let op = SignKeyPair::generate();
    let stranger = SignKeyPair::generate();
    let (bob, b0) = User::create("u_bob");
    let body = |seq, event, author| BlockBody {
        user_id: "u_bob".into(),
        seq,
        prev: if seq == 0 { [0; 32] } else { bob.last },
        timestamp_ms: 1,
        event,
        author,
    };
    let cases: Vec<(Block, &str)> = vec![
        (
            body(1, Event::ProfileVerified, Author::Key(bob.sign.public())).sign(&bob.sign),
            "profile verification by a non-operator",
        ),
        (
            body(
                1,
                Event::KeysAdded {
                    key_version: 2,
                    box_key: [1; 32],
                    sign_key: [2; 32],
                },
                Author::Key(stranger.public()),
            )
            .sign(&stranger),
            "new keys signed by neither",
        ),
        (
            body(
                1,
                Event::RecoveryKeySet {
                    recovery_key: [3; 32],
                },
                Author::Key(stranger.public()),
            )
            .sign(&stranger),
            "recovery key not set by the current sign key",
        ),
        (
            body(
                1,
                Event::KeysRevoked { key_version: 7 },
                Author::Key(bob.sign.public()),
            )
            .sign(&bob.sign),
            "revocation names another key version",
        ),
        (
            body(
                1,
                Event::MembershipChanged {
                    scope: Scope::Group,
                    id: "g".into(),
                    member_id: "u_x".into(),
                    added: false,
                },
                Author::Key(stranger.public()),
            )
            .sign(&stranger),
            "membership change not signed",
        ),
        (
            body(
                1,
                Event::UserCreated {
                    box_key: [1; 32],
                    sign_key: *bob.sign.public().as_bytes(),
                },
                Author::Key(bob.sign.public()),
            )
            .sign(&bob.sign),
            "user creation after the chain started",
        ),
    ];
    for (block, why) in cases {
        let mut server = Server::new();
        server.append(b0.clone());
        server.append(block);
        let mut alice = server.client(&operators(&op));
        assert_refused!(alice.verify_chain("u_bob", &server.chain("u_bob")), TrustError::UnauthorisedAuthor { why: w, .. } if w.contains(why), why);
    }
    // A chain that does not start with a self-signed creation.
    let mut server = Server::new();
    let other = SignKeyPair::generate();
    server.append(
        body(
            0,
            Event::UserCreated {
                box_key: [1; 32],
                sign_key: *bob.sign.public().as_bytes(),
            },
            Author::Key(other.public()),
        )
        .sign(&other),
    );
    let mut alice = server.client(&operators(&op));
    assert_refused!(
        alice.verify_chain("u_bob", &server.chain("u_bob")),
        TrustError::UnauthorisedAuthor { .. }
    );
    // Nothing served at all.
    assert!(matches!(
        alice.verify_chain("u_nobody", &[]).unwrap_err(),
        TrustError::UnknownChain { .. }
    ));
}

#[test]
fn blocks_round_trip_and_tree_heads_too() {
    let op = SignKeyPair::generate();
    let (mut bob, b0) = User::create("u_bob");
    let blocks = [
        b0,
        bob.set_recovery(),
        bob.joined_case("case-1", "u_carol"),
        bob.verified_by_operator(OPERATOR, &op),
        bob.new_installation(),
        bob.revoke_by_operator(OPERATOR, &op),
    ];
    for block in &blocks {
        let bytes = block.to_bytes();
        assert_eq!(&Block::from_bytes(&bytes).unwrap(), block);
        block.verify_signature().unwrap();
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Block::from_bytes(&longer).is_err());
        assert!(Block::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    }
    let mut server = Server::new();
    let head = server.head();
    let bytes = head.to_bytes();
    assert_eq!(
        cachet_trust::SignedTreeHead::from_bytes(&bytes).unwrap(),
        head
    );
    assert!(cachet_trust::SignedTreeHead::from_bytes(&bytes[1..]).is_err());
}

proptest! {
    #[test]
    fn block_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Block::from_bytes(&bytes);
    }

    #[test]
    fn any_bit_flip_breaks_the_signature_or_the_parse(flip in any::<usize>()) {
        let (_bob, b0) = User::create("u_bob");
        let mut bytes = b0.to_bytes();
        let i = flip % (bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        if let Ok(block) = Block::from_bytes(&bytes) {
            prop_assert!(block.verify_signature().is_err());
        }
    }
}

#[test]
fn a_profile_verification_by_an_unpinned_operator_is_kept_but_not_believed() {
    let pinned = SignKeyPair::generate();
    let stranger = SignKeyPair::generate();
    let (mut server, mut bob) = Server::with_user("u_bob");
    server.append(bob.verified_by_operator("op:stranger", &stranger));
    server.append(bob.new_installation());
    let mut alice = server.client(&operators(&pinned));
    let chain = alice.verify_chain("u_bob", &server.chain("u_bob")).unwrap();
    assert!(chain.verified_by.is_empty());
    assert_eq!(chain.current().unwrap().version, 2);
}
