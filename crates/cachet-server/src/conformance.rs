//! The contract of [`Store`], as executable checks that any implementation must pass.
//!
//! Each check makes its own users, cases and attachments under fresh random ids, so the
//! checks can run one after the other on one database. Run them on a database of their own:
//! the purge checks use a fixed clock in 2030 and delete whatever expired before it.
//! Failures panic (these are test helpers); call [`run_all`] from an implementation's tests.

use cachet_proto::v1::{CaseRecord, ContactUpdateReason, KeyRecord, SealedCaseKey};

use crate::error::Error;
use crate::store::{
    AckRequest, AttachmentRow, AuditDraft, Challenge, Delivery, DiscoveryCharge, NewInstallation,
    NewMessage, NewParticipants, NewTrustBlock, NewUser, Revocation, SeenSignature, SendOutcome,
    Store,
};

/// A fixed point in time far from the real clock, so expiry checks are deterministic.
const T0: i64 = 1_900_000_000_000;

fn rand_hex(n: usize) -> String {
    hex::encode(&cachet_crypto::random_bytes::<16>()[..n.min(16)])
}

fn keys(version: u32, seed: u8, valid_from: i64) -> KeyRecord {
    KeyRecord {
        key_version: version,
        box_key: vec![seed; 32],
        sign_key: vec![seed.wrapping_add(1); 32],
        valid_from,
        valid_until: 0,
        reason: if version == 1 {
            ContactUpdateReason::Unspecified as i32
        } else {
            ContactUpdateReason::NewInstallation as i32
        },
        previous_key_signature: Vec::new(),
        revoked_by_operator: String::new(),
    }
}

fn challenge(identifier_hash: &[u8], expires_at: i64) -> Challenge {
    Challenge {
        challenge_id: format!("c_{}", rand_hex(16)),
        identifier_hash: identifier_hash.to_vec(),
        code_hash: vec![7; 32],
        attempts: 0,
        created_at: T0,
        expires_at,
    }
}

/// A challenge for `identifier_hash`, stored: what registration and installation consume.
async fn stored_challenge(store: &dyn Store, identifier_hash: &[u8], expires_at: i64) -> Challenge {
    let c = challenge(identifier_hash, expires_at);
    store.insert_challenge(&c).await.expect("insert challenge");
    c
}

/// The delivery ids waiting in `user_id`'s mailbox (the first ten).
async fn pending_ids(store: &dyn Store, user_id: &str) -> Vec<u64> {
    let page = store.pending(user_id, 10).await.expect("pending");
    page.envelopes.iter().map(|e| e.delivery_id).collect()
}

/// How many envelopes wait in `user_id`'s mailbox (up to 1,000).
pub async fn pending_count(store: &dyn Store, user_id: &str) -> usize {
    store
        .pending(user_id, 1000)
        .await
        .expect("pending")
        .envelopes
        .len()
}

/// Acks that delete `delivery_ids` from `user_id`'s mailbox (no web client keeping them).
fn acks<'a>(user_id: &'a str, delivery_ids: &'a [u64]) -> AckRequest<'a> {
    AckRequest {
        user_id,
        delivery_ids,
        keep_acked_at: None,
    }
}

/// The attachment `attachment_id`, which must exist.
async fn existing_attachment(store: &dyn Store, attachment_id: &str) -> AttachmentRow {
    let found = store.get_attachment(attachment_id).await.expect("get");
    found.expect("attachment exists")
}

/// A new case record by `created_by`, with `sealed_fields` and a fresh id.
fn case_by(created_by: &str, sealed_fields: Vec<u8>) -> CaseRecord {
    CaseRecord {
        case_id: format!("case-{}", rand_hex(8)),
        created_by: created_by.to_owned(),
        sealed_fields,
        participants: Vec::new(),
        my_keys: Vec::new(),
        created_at: T0,
    }
}

/// Registers a fresh user through a challenge; returns (user id, identifier hash).
async fn new_user(store: &dyn Store) -> (String, Vec<u8>) {
    let identifier_hash = cachet_crypto::random_bytes::<32>().to_vec();
    let c = stored_challenge(store, &identifier_hash, T0 + 600_000).await;
    let user_id = format!("u_{}", rand_hex(16));
    store
        .create_user(
            &c.challenge_id,
            &NewUser {
                user_id: user_id.clone(),
                identifier_hash: identifier_hash.clone(),
                display_name: "Dr Conformance".into(),
                created_at: T0,
                keys: keys(1, 1, T0),
            },
        )
        .await
        .expect("create user");
    (user_id, identifier_hash)
}

/// Two new users, for suites outside this module.
pub async fn two_users(store: &dyn Store) -> (String, String) {
    (new_user(store).await.0, new_user(store).await.0)
}

fn message(sender: &str, id: &str, digest: u8, to: &[&str], body: &[u8]) -> NewMessage {
    NewMessage {
        sender_id: sender.into(),
        message_id: id.into(),
        digest: vec![digest; 32],
        created_at: T0,
        deliveries: to
            .iter()
            .map(|r| Delivery {
                recipient_id: (*r).into(),
                envelope: body.to_vec(),
            })
            .collect(),
        case_entry: None,
        contacts: to.iter().map(|r| (*r).to_string()).collect(),
    }
}

fn audit(action: &str, subject: &str) -> AuditDraft {
    AuditDraft {
        timestamp: T0,
        operator_id: "op:conformance".into(),
        action: action.into(),
        subject: subject.into(),
        detail: String::new(),
    }
}

/// Runs every check.
pub async fn run_all(store: &dyn Store) {
    registration_and_key_history(store).await;
    challenges(store).await;
    replay_cache(store).await;
    replay_entries_commit_with_their_request(store).await;
    message_ids_are_idempotent_and_never_reused(store).await;
    mailboxes_are_ordered_and_private(store).await;
    web_acks_are_kept_until_purged(store).await;
    key_changes_reach_contacts(store).await;
    attachments_and_quota(store).await;
    cases_and_history(store).await;
    audit_log_is_chained(store).await;
    discovery(store).await;
    discovery_budget(store).await;
    trust_log(store).await;
    hot_and_rare_writes_interleave(store).await;
}

/// Sends, acks and replay entries (the hot path, group-committed) running at the same
/// time as rarer writes (attachments, operators, new users) all succeed, and none is lost.
pub async fn hot_and_rare_writes_interleave(store: &dyn Store) {
    use futures_util::future::join_all;
    let (alice, _) = new_user(store).await;
    let (bob, _) = new_user(store).await;
    let sends = join_all((0..200).map(|i| {
        let msg = message(&alice, &format!("m-{i}"), 1, &[&bob], b"hot");
        let seen = SeenSignature {
            hash: cachet_crypto::random_bytes::<32>().to_vec(),
            expires_at: T0,
        };
        async move { store.store_message_and_remember(&msg, &seen).await }
    }));
    let rare = join_all((0..40).map(|i| {
        let alice = alice.clone();
        async move {
            match i % 3 {
                0 => {
                    let row = AttachmentRow {
                        attachment_id: format!("a_{}", rand_hex(16)),
                        owner_id: alice,
                        sealed_size: 10,
                        chunk_size: 10,
                        complete: false,
                        sha256: Vec::new(),
                        created_at: T0,
                        received_chunks: Vec::new(),
                        readers: Vec::new(),
                    };
                    store.create_attachment(&row, u64::MAX / 2).await
                }
                1 => {
                    store
                        .put_operator(&format!("op-{i}"), &[i; 32], &audit("put_operator", "x"))
                        .await
                }
                _ => {
                    new_user(store).await;
                    Ok(())
                }
            }
        }
    }));
    let (sends, rare) = futures_util::future::join(sends, rare).await;
    for outcome in sends {
        assert_eq!(outcome.expect("a hot write"), SendOutcome::Stored);
    }
    for outcome in rare {
        outcome.expect("a rare write beside the hot ones");
    }
    let page = store.pending(&bob, 500).await.expect("pending");
    assert_eq!(page.envelopes.len(), 200, "every send reached the mailbox");
    let ids: Vec<u64> = page.envelopes.iter().map(|e| e.delivery_id).collect();
    let acks = join_all(ids.chunks(20).map(|chunk| {
        let seen = SeenSignature {
            hash: cachet_crypto::random_bytes::<32>().to_vec(),
            expires_at: T0,
        };
        let bob = bob.clone();
        async move { store.ack_and_remember(acks(&bob, chunk), &seen).await }
    }))
    .await;
    let acked: u64 = acks.into_iter().map(|a| a.expect("ack")).sum();
    assert_eq!(acked, 200);
    assert_eq!(pending_count(store, &bob).await, 0);
}

/// Users, keys, installations and revocation.
pub async fn registration_and_key_history(store: &dyn Store) {
    let (user, hash) = new_user(store).await;
    assert_eq!(
        store.user_by_identifier_hash(&hash).await.expect("lookup"),
        Some(user.clone())
    );
    let row = store.get_user(&user).await.expect("get").expect("exists");
    assert!(!row.verified);
    assert_eq!(row.display_name, "Dr Conformance");
    assert_eq!(
        store.current_keys(&user).await.expect("keys"),
        Some(keys(1, 1, T0))
    );

    // A second registration under the same identifier hash is refused.
    let c = stored_challenge(store, &hash, T0 + 1000).await;
    let dup = NewUser {
        user_id: format!("u_{}", rand_hex(16)),
        identifier_hash: hash.clone(),
        display_name: String::new(),
        created_at: T0,
        keys: keys(1, 9, T0),
    };
    assert!(store.create_user(&c.challenge_id, &dup).await.is_err());

    // New installation: version 2, the old generation closed and kept.
    let c = stored_challenge(store, &hash, T0 + 1000).await;
    let inst = NewInstallation {
        user_id: user.clone(),
        expected_version: 1,
        keys: keys(2, 3, T0 + 10),
        display_name: Some("Dr Renamed".into()),
        contact_update: b"update".to_vec(),
    };
    store
        .add_installation(&c.challenge_id, &inst)
        .await
        .expect("installation");
    // The challenge was consumed with it.
    assert!(matches!(
        store.add_installation(&c.challenge_id, &inst).await,
        Err(Error::UnknownChallenge)
    ));
    // A stale expected version is refused.
    let c = stored_challenge(store, &hash, T0 + 1000).await;
    assert!(matches!(
        store.add_installation(&c.challenge_id, &inst).await,
        Err(Error::ConcurrentKeyChange)
    ));
    let history = store.key_history(&user).await.expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].key_version, 1);
    assert_eq!(history[0].valid_until, T0 + 10);
    assert_eq!(history[1], keys(2, 3, T0 + 10));
    assert_eq!(
        store
            .get_user(&user)
            .await
            .expect("get")
            .expect("row")
            .display_name,
        "Dr Renamed"
    );

    // Revocation marks the newest generation and refuses a second time.
    let mut a = audit("revoke_keys", &user);
    a.timestamp = T0 + 20;
    let revoke = |expected_version| Revocation {
        user_id: &user,
        expected_version,
        contact_update: b"revoked",
        audit: &a,
    };
    store.revoke_keys(revoke(2)).await.expect("revoke");
    let current = store
        .current_keys(&user)
        .await
        .expect("keys")
        .expect("some");
    assert_eq!(current.revoked_by_operator, "op:conformance");
    assert_eq!(current.valid_until, T0 + 20);
    assert!(matches!(
        store.revoke_keys(revoke(2)).await,
        Err(Error::AlreadyRevoked)
    ));
    assert!(matches!(
        store.revoke_keys(revoke(1)).await,
        Err(Error::ConcurrentKeyChange)
    ));
    assert!(matches!(
        store
            .revoke_keys(Revocation {
                user_id: &format!("u_{}", rand_hex(16)),
                expected_version: 1,
                contact_update: b"x",
                audit: &a,
            })
            .await,
        Err(Error::UserNotFound)
    ));

    // Verification.
    assert!(store
        .set_verified(&user, &audit("verify_profile", &user))
        .await
        .expect("verify"));
    assert!(
        store
            .get_user(&user)
            .await
            .expect("get")
            .expect("row")
            .verified
    );
    assert!(!store
        .set_verified(
            "u_nobody_at_all",
            &audit("verify_profile", "u_nobody_at_all")
        )
        .await
        .expect("verify"));
}

/// Challenge attempts, deletion and purge.
pub async fn challenges(store: &dyn Store) {
    let c = challenge(&[5; 32], T0 + 1000);
    store.insert_challenge(&c).await.expect("insert");
    assert_eq!(
        store.get_challenge(&c.challenge_id).await.expect("get"),
        Some(c.clone())
    );
    assert_eq!(
        store
            .record_failed_attempt(&c.challenge_id)
            .await
            .expect("a"),
        1
    );
    assert_eq!(
        store
            .record_failed_attempt(&c.challenge_id)
            .await
            .expect("a"),
        2
    );
    store
        .delete_challenge(&c.challenge_id)
        .await
        .expect("delete");
    assert_eq!(
        store.get_challenge(&c.challenge_id).await.expect("get"),
        None
    );
    assert_eq!(
        store
            .record_failed_attempt(&c.challenge_id)
            .await
            .expect("a"),
        0
    );

    // Expired challenges are purged; live ones stay.
    let hash = cachet_crypto::random_bytes::<32>();
    let old = challenge(&hash, 1000);
    let live = challenge(&hash, T0 + 1000);
    store.insert_challenge(&old).await.expect("insert");
    store.insert_challenge(&live).await.expect("insert");
    assert_eq!(store.live_challenges(&hash, T0).await.expect("count"), 1);
    assert_eq!(store.live_challenges(&hash, 0).await.expect("count"), 2);
    let purged = store.purge_expired(T0, 0).await.expect("purge");
    assert!(purged.challenges >= 1);
    assert_eq!(
        store.get_challenge(&old.challenge_id).await.expect("get"),
        None
    );
    assert!(store
        .get_challenge(&live.challenge_id)
        .await
        .expect("get")
        .is_some());
}

/// Seen signatures are refused until purged.
pub async fn replay_cache(store: &dyn Store) {
    let sig = cachet_crypto::random_bytes::<32>();
    assert!(store.remember_signature(&sig, T0 + 1).await.expect("first"));
    assert!(!store.remember_signature(&sig, T0 + 1).await.expect("again"));
    let old = cachet_crypto::random_bytes::<32>();
    assert!(store.remember_signature(&old, 5).await.expect("old"));
    let purged = store.purge_expired(10, 0).await.expect("purge");
    assert!(purged.signatures >= 1);
    assert!(store
        .remember_signature(&old, 5)
        .await
        .expect("after purge"));
    assert!(!store
        .remember_signature(&sig, T0 + 1)
        .await
        .expect("still seen"));
}

/// A send or an ack and its request's replay-cache entry commit together: a replayed
/// request writes nothing, and its entry is in the cache like any other.
pub async fn replay_entries_commit_with_their_request(store: &dyn Store) {
    let (alice, _) = new_user(store).await;
    let (bob, _) = new_user(store).await;
    let fresh = || SeenSignature {
        hash: cachet_crypto::random_bytes::<32>().to_vec(),
        expires_at: T0 + 1,
    };
    let first = fresh();
    let m = message(&alice, "r-1", 1, &[&bob], b"ct-r1");
    assert_eq!(
        store
            .store_message_and_remember(&m, &first)
            .await
            .expect("send"),
        SendOutcome::Stored
    );
    // The same signature on another message: refused, nothing stored.
    let other = message(&alice, "r-2", 2, &[&bob], b"ct-r2");
    assert!(matches!(
        store.store_message_and_remember(&other, &first).await,
        Err(Error::ReplayedSignature)
    ));
    let page = store.pending(&bob, 10).await.expect("pending");
    assert_eq!(page.envelopes.len(), 1, "the replayed send stored nothing");
    assert!(!store
        .remember_signature(&first.hash, first.expires_at)
        .await
        .expect("cached"));

    // An ack with a used signature acks nothing; with a fresh one it does.
    let ids = [page.envelopes[0].delivery_id];
    assert!(matches!(
        store.ack_and_remember(acks(&bob, &ids), &first).await,
        Err(Error::ReplayedSignature)
    ));
    assert_eq!(pending_count(store, &bob).await, 1);
    let ack = fresh();
    assert_eq!(
        store
            .ack_and_remember(acks(&bob, &ids), &ack)
            .await
            .expect("ack"),
        1
    );
    assert_eq!(pending_count(store, &bob).await, 0);
    assert!(!store
        .remember_signature(&ack.hash, ack.expires_at)
        .await
        .expect("cached"));
    // An ack of nothing still records its signature.
    let empty = fresh();
    assert_eq!(
        store
            .ack_and_remember(acks(&bob, &[]), &empty)
            .await
            .expect("ack"),
        0
    );
    assert!(!store
        .remember_signature(&empty.hash, empty.expires_at)
        .await
        .expect("cached"));
}

/// Resends are idempotent; an id reused for other content is refused; unknown
/// recipients abort the whole send.
pub async fn message_ids_are_idempotent_and_never_reused(store: &dyn Store) {
    let (alice, _) = new_user(store).await;
    let (bob, _) = new_user(store).await;
    let m = message(&alice, "m-1", 1, &[&bob], b"ct-1");
    assert_eq!(
        store.store_message(&m).await.expect("send"),
        SendOutcome::Stored
    );
    assert_eq!(
        store.store_message(&m).await.expect("resend"),
        SendOutcome::Duplicate
    );
    let other = message(&alice, "m-1", 2, &[&bob], b"ct-other");
    assert!(matches!(
        store.store_message(&other).await,
        Err(Error::MessageIdReused)
    ));
    // Another sender may use the same id.
    let from_bob = message(&bob, "m-1", 3, &[&alice], b"ct-bob");
    assert_eq!(
        store.store_message(&from_bob).await.expect("send"),
        SendOutcome::Stored
    );
    let page = store.pending(&bob, 10).await.expect("pending");
    assert_eq!(page.envelopes.len(), 1);
    assert_eq!(page.envelopes[0].envelope, b"ct-1");

    let ghost = format!("u_{}", rand_hex(16));
    let bad = message(&alice, "m-2", 4, &[&bob, &ghost], b"ct-2");
    assert!(matches!(
        store.store_message(&bad).await,
        Err(Error::UnknownRecipient(id)) if id == ghost
    ));
    // Nothing of the failed send was kept, not even its id.
    assert_eq!(pending_count(store, &bob).await, 1);
    let retry = message(&alice, "m-2", 5, &[&bob], b"ct-2");
    assert_eq!(
        store.store_message(&retry).await.expect("retry"),
        SendOutcome::Stored
    );
}

/// Delivery ids increase, pages are ordered, acks only touch the caller's mailbox.
pub async fn mailboxes_are_ordered_and_private(store: &dyn Store) {
    let (alice, _) = new_user(store).await;
    let (bob, _) = new_user(store).await;
    let (carol, _) = new_user(store).await;
    for i in 0..5u8 {
        let m = message(&alice, &format!("o-{i}"), i, &[&bob, &carol], &[i; 20]);
        store.store_message(&m).await.expect("send");
    }
    let page = store.pending(&bob, 3).await.expect("pending");
    assert!(page.more);
    assert_eq!(page.envelopes.len(), 3);
    let ids: Vec<u64> = page.envelopes.iter().map(|e| e.delivery_id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(page.envelopes[0].envelope, vec![0; 20]);

    // Carol's ack of Bob's delivery ids changes nothing for Bob.
    let carol_ids = pending_ids(store, &carol).await;
    store.ack(&alice, &carol_ids, None).await.expect("ack");
    assert_eq!(pending_count(store, &carol).await, 5);
    store.ack(&bob, &ids, None).await.expect("ack");
    let rest = store.pending(&bob, 10).await.expect("pending");
    assert!(!rest.more);
    assert_eq!(rest.envelopes.len(), 2);
    assert!(rest.envelopes[0].delivery_id > ids[2]);
    assert_eq!(pending_count(store, &carol).await, 5);
    // Acking again or unknown ids is harmless.
    assert_eq!(store.ack(&bob, &ids, None).await.expect("ack"), 0);
    assert_eq!(store.ack(&bob, &[u64::MAX], None).await.expect("ack"), 0);

    // Delivery ids keep growing after acks.
    let m = message(&alice, "o-late", 9, &[&bob], b"late");
    store.store_message(&m).await.expect("send");
    let last = store.pending(&bob, 10).await.expect("p").envelopes;
    assert!(last.last().expect("some").delivery_id > rest.envelopes[1].delivery_id);
}

/// Web-client acks keep envelopes (readable in the history) until purged.
pub async fn web_acks_are_kept_until_purged(store: &dyn Store) {
    let (alice, _) = new_user(store).await;
    let (bob, _) = new_user(store).await;
    for i in 0..3u8 {
        let m = message(&alice, &format!("w-{i}"), i, &[&bob], &[i; 20]);
        store.store_message(&m).await.expect("send");
    }
    let ids = pending_ids(store, &bob).await;
    assert_eq!(store.ack(&bob, &ids[..2], Some(T0)).await.expect("ack"), 2);
    assert_eq!(pending_count(store, &bob).await, 1);
    let history = store.mailbox_history(&bob, 0, 10).await.expect("history");
    assert_eq!(history.envelopes.len(), 3);
    assert!(history.envelopes[0].acked && history.envelopes[1].acked);
    assert!(!history.envelopes[2].acked);
    let after = store
        .mailbox_history(&bob, ids[0], 1)
        .await
        .expect("history");
    assert_eq!(after.envelopes.len(), 1);
    assert!(after.more);
    assert_eq!(after.envelopes[0].delivery_id, ids[1]);

    let purged = store.purge_expired(T0, T0 + 1).await.expect("purge");
    assert!(purged.acked_envelopes >= 2);
    let history = store.mailbox_history(&bob, 0, 10).await.expect("history");
    assert_eq!(history.envelopes.len(), 1);
    assert_eq!(history.envelopes[0].delivery_id, ids[2]);
}

/// New installations and revocations queue the update to every contact: correspondents
/// and co-participants of cases.
pub async fn key_changes_reach_contacts(store: &dyn Store) {
    let (alice, alice_hash) = new_user(store).await;
    let (bob, _) = new_user(store).await;
    let (carol, _) = new_user(store).await;
    let (dave, _) = new_user(store).await;
    let (stranger, _) = new_user(store).await;
    store
        .store_message(&message(&bob, "k-1", 1, &[&alice], b"hi"))
        .await
        .expect("send");
    let case = case_by(&carol, vec![1; 40]);
    store
        .create_case(&case, &[sealed_key(&carol, 0), sealed_key(&alice, 0)])
        .await
        .expect("case");
    let mut expected = vec![bob.clone(), carol.clone()];
    expected.sort();
    assert_eq!(store.contacts_of(&alice).await.expect("contacts"), expected);
    assert_eq!(
        store.contacts_of(&dave).await.expect("contacts"),
        Vec::<String>::new()
    );

    let c = stored_challenge(store, &alice_hash, T0 + 1000).await;
    let inst = NewInstallation {
        user_id: alice.clone(),
        expected_version: 1,
        keys: keys(2, 4, T0 + 5),
        display_name: None,
        contact_update: b"alice-v2".to_vec(),
    };
    assert_eq!(
        store
            .add_installation(&c.challenge_id, &inst)
            .await
            .expect("inst"),
        2
    );
    for who in [&bob, &carol] {
        let got = store.pending(who, 10).await.expect("pending");
        assert!(got.envelopes.iter().any(|e| e.envelope == b"alice-v2"));
    }
    assert_eq!(pending_count(store, &stranger).await, 0);

    let notified = store
        .revoke_keys(Revocation {
            user_id: &alice,
            expected_version: 2,
            contact_update: b"alice-revoked",
            audit: &audit("revoke_keys", &alice),
        })
        .await
        .expect("revoke");
    assert_eq!(notified, 2);
    let got = store.pending(&bob, 10).await.expect("pending");
    assert!(got.envelopes.iter().any(|e| e.envelope == b"alice-revoked"));
}

fn sealed_key(participant: &str, epoch: u32) -> SealedCaseKey {
    SealedCaseKey {
        participant_id: participant.into(),
        key_epoch: epoch,
        sealed_by: "u_sealer".into(),
        sealer_box_key: vec![1; 32],
        recipient_box_key: vec![2; 32],
        nonce: vec![3; 24],
        ciphertext: vec![4; 48],
    }
}

/// Attachment metadata, chunks, readers and quota.
pub async fn attachments_and_quota(store: &dyn Store) {
    let (alice, _) = new_user(store).await;
    let (bob, _) = new_user(store).await;
    let row = AttachmentRow {
        attachment_id: format!("a_{}", rand_hex(16)),
        owner_id: alice.clone(),
        sealed_size: 600,
        chunk_size: 256,
        complete: false,
        sha256: Vec::new(),
        created_at: T0,
        received_chunks: Vec::new(),
        readers: Vec::new(),
    };
    store.create_attachment(&row, 1000).await.expect("create");
    let mut second = row.clone();
    second.attachment_id = format!("a_{}", rand_hex(16));
    second.sealed_size = 401;
    assert!(matches!(
        store.create_attachment(&second, 1000).await,
        Err(Error::QuotaExceeded(1000))
    ));
    second.sealed_size = 400;
    store
        .create_attachment(&second, 1000)
        .await
        .expect("fits exactly");

    // Chunks in any order; recording one twice is harmless.
    for (index, size) in [(2, 88), (0, 256), (0, 256)] {
        store
            .record_chunk(&row.attachment_id, index, size)
            .await
            .expect("chunk");
    }
    let got = existing_attachment(store, &row.attachment_id).await;
    assert_eq!(got.received_chunks, vec![0, 2]);
    assert!(!got.complete);
    store
        .complete_attachment(&row.attachment_id, &[9; 32], std::slice::from_ref(&bob))
        .await
        .expect("complete");
    let got = existing_attachment(store, &row.attachment_id).await;
    assert!(got.complete);
    assert_eq!(got.sha256, vec![9; 32]);
    assert_eq!(got.readers, vec![bob.clone()]);
    assert!(store
        .complete_attachment(&row.attachment_id, &[9; 32], &["u_ghost_reader".into()])
        .await
        .is_err());
    assert_eq!(store.get_attachment("a_missing").await.expect("get"), None);
}

/// Cases: participants, keys per participant, history kept and readable from the start.
pub async fn cases_and_history(store: &dyn Store) {
    let (alice, _) = new_user(store).await;
    let (bob, _) = new_user(store).await;
    let (carol, _) = new_user(store).await;
    let case = case_by(&alice, vec![5; 64]);
    store
        .create_case(&case, &[sealed_key(&alice, 0), sealed_key(&bob, 0)])
        .await
        .expect("create");
    assert!(matches!(
        store.create_case(&case, &[sealed_key(&alice, 0)]).await,
        Err(Error::CaseExists)
    ));
    let got = store
        .get_case(&case.case_id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(got.sealed_fields, vec![5; 64]);
    let mut participants = got.participants.clone();
    participants.sort();
    let mut expected = vec![alice.clone(), bob.clone()];
    expected.sort();
    assert_eq!(participants, expected);
    assert_eq!(
        store.case_keys(&case.case_id, &bob).await.expect("keys"),
        vec![sealed_key(&bob, 0)]
    );

    for i in 0..3u8 {
        let mut m = message(
            &alice,
            &format!("cm-{}-{i}", case.case_id),
            i,
            &[&bob],
            &[i; 8],
        );
        m.case_entry = Some((case.case_id.clone(), vec![i; 8]));
        m.contacts.clear();
        store.store_message(&m).await.expect("case message");
    }
    // A participant added later reads the whole history.
    let mut changed = sealed_key(&bob, 0);
    changed.ciphertext = vec![0xee; 48];
    store
        .add_case_participants(NewParticipants {
            case_id: &case.case_id,
            added_by: &bob,
            added_at: T0 + 1,
            keys: &[sealed_key(&carol, 0), changed],
        })
        .await
        .expect("add");
    // Existing keys are never replaced.
    assert_eq!(
        store.case_keys(&case.case_id, &bob).await.expect("keys"),
        vec![sealed_key(&bob, 0)]
    );
    let history = store
        .case_history(&case.case_id, 0, 10)
        .await
        .expect("history");
    assert_eq!(history.envelopes.len(), 3);
    assert_eq!(history.envelopes[2].envelope, vec![2; 8]);
    let tail = store
        .case_history(&case.case_id, history.envelopes[0].delivery_id, 1)
        .await
        .expect("history");
    assert!(tail.more);
    assert_eq!(tail.envelopes[0].envelope, vec![1; 8]);
    let carol_cases = store.cases_of(&carol).await.expect("cases");
    assert_eq!(carol_cases.len(), 1);
    assert_eq!(carol_cases[0].case_id, case.case_id);
    assert!(matches!(
        store
            .add_case_participants(NewParticipants {
                case_id: "case-missing",
                added_by: &bob,
                added_at: T0,
                keys: &[sealed_key(&carol, 0)],
            })
            .await,
        Err(Error::CaseNotFound)
    ));
    let mut orphan = message(&alice, &format!("cm-orphan-{}", rand_hex(4)), 1, &[], b"x");
    orphan.case_entry = Some(("case-missing".into(), b"x".to_vec()));
    assert!(matches!(
        store.store_message(&orphan).await,
        Err(Error::CaseNotFound)
    ));
}

/// Audit entries chain and the whole log verifies.
pub async fn audit_log_is_chained(store: &dyn Store) {
    let subject = format!("u_{}", rand_hex(8));
    let a = store
        .append_audit(&audit("note", &subject))
        .await
        .expect("append");
    let b = store
        .append_audit(&audit("note", &subject))
        .await
        .expect("append");
    assert_eq!(b.seq, a.seq + 1);
    assert_eq!(b.prev_hash, a.hash);
    let read = store.audit_entries(a.seq - 1, 2).await.expect("read");
    assert_eq!(read, vec![a, b]);
    store
        .put_operator(
            "conformance-op",
            &[8; 32],
            &audit("put_operator", "op:conformance-op"),
        )
        .await
        .expect("operator");
    assert_eq!(
        store.operator_key("conformance-op").await.expect("key"),
        Some(vec![8; 32])
    );
    assert_eq!(store.operator_key("nobody").await.expect("key"), None);
    crate::audit::verify_audit_log(store)
        .await
        .expect("chain verifies");
}

/// Discovery answers only for registered hashes.
pub async fn discovery(store: &dyn Store) {
    let (alice, alice_hash) = new_user(store).await;
    let unknown = cachet_crypto::random_bytes::<32>().to_vec();
    let found = store
        .discover(&[unknown, alice_hash.clone()])
        .await
        .expect("discover");
    assert_eq!(found, vec![(alice_hash, alice.clone())]);
    let ghost = format!("u_{}", rand_hex(16));
    assert_eq!(
        store
            .existing_users(&[ghost, alice.clone()])
            .await
            .expect("existing"),
        vec![alice]
    );
}

/// Discovery budgets: counted per user and window up to the limit, a request that would
/// pass it counts nothing, concurrent requests never overshoot, and ended windows are
/// purged.
pub async fn discovery_budget(store: &dyn Store) {
    use futures_util::future::join_all;
    let alice = format!("u_{}", rand_hex(16));
    let bob = format!("u_{}", rand_hex(16));
    let (start, end) = (T0, T0 + 3_600_000);
    // `hashes` lookups in the hour-long window from `window_start`, out of 10.
    let charge = |window_start: i64, hashes: u64| DiscoveryCharge {
        window_start,
        window_end: window_start + 3_600_000,
        hashes,
        limit: 10,
    };
    let take = |user: &str, n: u64| {
        let user = user.to_owned();
        async move {
            store
                .take_discovery_budget(&user, charge(start, n))
                .await
                .expect("discovery budget")
        }
    };
    assert!(take(&alice, 6).await);
    assert!(!take(&alice, 5).await, "6 + 5 passes the limit");
    assert!(take(&alice, 4).await, "6 + 4 reaches it exactly");
    assert!(!take(&alice, 1).await);
    assert!(take(&alice, 0).await, "an empty request costs nothing");
    assert!(!take(&bob, 11).await, "more than the whole budget at once");
    assert!(take(&bob, 10).await, "each user has their own budget");
    // The next window starts afresh.
    assert!(store
        .take_discovery_budget(&alice, charge(end, 10))
        .await
        .expect("next window"));
    // Concurrent requests of one user: exactly as many pass as the limit allows.
    let carol = format!("u_{}", rand_hex(16));
    let results = join_all((0..20).map(|_| take(&carol, 1))).await;
    assert_eq!(results.iter().filter(|ok| **ok).count(), 10);
    // Windows that ended are purged; the current one is kept.
    let purged = store.purge_expired(end + 1, 0).await.expect("purge");
    assert!(purged.discovery_windows >= 3, "{purged:?}");
    assert!(take(&carol, 10).await, "the purged window's count is gone");
}

/// Block `block` at `seq` of `user_id`'s chain, made at `at`.
fn trust_block<'a>(user_id: &'a str, seq: u64, block: &'a [u8], at: i64) -> NewTrustBlock<'a> {
    NewTrustBlock {
        user_id,
        seq,
        block,
        created_at: at,
    }
}

/// Trust log: dense increasing indexes, one block per place of a chain, a stable key seed.
pub async fn trust_log(store: &dyn Store) {
    let user = format!("u_{}", rand_hex(16));
    let other = format!("u_{}", rand_hex(16));
    let a = store
        .append_trust_block(trust_block(&user, 0, b"block-a", 1))
        .await
        .expect("append");
    let b = store
        .append_trust_block(trust_block(&other, 0, b"block-b", 2))
        .await
        .expect("append");
    let c = store
        .append_trust_block(trust_block(&user, 1, b"block-c", 3))
        .await
        .expect("append");
    assert_eq!((b, c), (a + 1, a + 2), "indexes are dense and increasing");
    assert!(matches!(
        store
            .append_trust_block(trust_block(&user, 1, b"block-d", 4))
            .await,
        Err(crate::error::Error::TrustBlockConflict)
    ));
    assert_eq!(
        store.trust_blocks_of(&user).await.expect("chain"),
        vec![(a, b"block-a".to_vec()), (c, b"block-c".to_vec())]
    );
    let page = store.trust_blocks(a, 2).await.expect("page");
    assert_eq!(
        page,
        vec![(a, b"block-a".to_vec()), (b, b"block-b".to_vec())]
    );
    let first = store.trust_log_seed(&[1; 32]).await.expect("seed");
    assert_eq!(store.trust_log_seed(&[2; 32]).await.expect("seed"), first);
    assert_eq!(first.len(), 32);
}
