//! Operator revocation and verification, and the hash-chained audit log.

use cachet_proto::v1::{AuditLog, ContactUpdateReason, UserProfile};

use crate::common::*;

#[tokio::test]
async fn verify_revoke_and_audit() {
    let s = TestServer::start().await;
    let op = s.operator("olga").await;
    let [alice, bob] = s.register_all(["Alice", "Bob"]).await;
    send_ok(&s, &bob, &text_envelope(&bob, &[&alice], &mid(), "hi")).await;

    let p: UserProfile = s
        .verify_user(&op, &alice.user_id, "checked the medical licence")
        .await
        .decode();
    assert!(p.verified);
    let seen: UserProfile = s
        .get(&bob, &format!("/api/v1/users/{}", alice.user_id))
        .await
        .decode();
    assert!(seen.verified);
    s.verify_user(&op, "u_0123456789abcdef0123456789abcdef", "")
        .await
        .assert_error(404, "user_not_found");

    let p: UserProfile = s
        .revoke_user(&op, &alice.user_id, "lost phone reported")
        .await
        .decode();
    let keys = p.current_keys.expect("keys");
    assert_eq!(keys.revoked_by_operator, "op:olga");
    assert_ne!(keys.valid_until, 0);
    s.revoke_user(&op, &alice.user_id, "")
        .await
        .assert_error(409, "already_revoked");

    // Bob, a contact, learns about it.
    let inbox = receive(&s, &bob, vec![], 0).await;
    let update = inbox
        .envelopes
        .iter()
        .find_map(|e| e.contact_update.clone())
        .expect("contact update");
    assert_eq!(update.reason, ContactUpdateReason::Revoked as i32);
    assert_eq!(update.operator_id, "op:olga");
    assert_eq!(update.sign_key, alice.sign.public().as_bytes());

    // Alice's revoked keys no longer authenticate, until she registers again.
    s.get(&alice, &format!("/api/v1/users/{}", bob.user_id))
        .await
        .assert_error(401, "unknown_user");
    let alice2 = s.reinstall(&alice, false).await;
    assert_eq!(alice2.key_version, 2);
    assert_eq!(
        s.get(&alice2, &format!("/api/v1/users/{}", bob.user_id))
            .await
            .status,
        200
    );

    let log: AuditLog = s.get(&op, "/api/v1/operator/audit").await.decode();
    let actions: Vec<(&str, &str, &str)> = log
        .entries
        .iter()
        .map(|e| {
            (
                e.operator_id.as_str(),
                e.action.as_str(),
                e.subject.as_str(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("console", "put_operator", "op:olga"),
            ("op:olga", "verify_profile", alice.user_id.as_str()),
            ("op:olga", "revoke_keys", alice.user_id.as_str()),
        ]
    );
    assert!(log.entries[2].detail.contains("lost phone reported"));
    cachet_server::audit::verify_entries(None, &log.entries).expect("chain verifies");
    let page: AuditLog = s.get(&op, "/api/v1/operator/audit?after=2").await.decode();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].seq, 3);
}

#[tokio::test]
async fn tampering_with_the_audit_log_is_detected() {
    let mut s = TestServer::start().await;
    let op = s.operator("olga").await;
    let alice = s.register("Alice").await;
    for note in ["one", "two"] {
        let r = s.verify_user(&op, &alice.user_id, note).await;
        assert_eq!(r.status, 200);
    }
    s.stop().await;
    let dir = s.data_dir();
    let (count, head) = cachet_server::verify_audit_log(&dir).await.expect("intact");
    assert_eq!(count, 3);
    assert_eq!(head.len(), 32);

    let mut db = open_db(&dir).await;
    // The database refuses edits...
    assert!(
        sqlx::query("UPDATE audit_log SET detail = 'nothing to see' WHERE seq = 2")
            .execute(&mut db)
            .await
            .is_err()
    );
    // ...so an attacker with file access drops the guard first; the chain still tells.
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&mut db)
        .await
        .expect("drop trigger");
    sqlx::query("UPDATE audit_log SET detail = 'nothing to see' WHERE seq = 2")
        .execute(&mut db)
        .await
        .expect("tamper");
    drop(db);
    let err = cachet_server::verify_audit_log(&dir)
        .await
        .expect_err("detected");
    assert!(
        matches!(err, cachet_server::Error::AuditChainBroken { seq: 2, .. }),
        "{err}"
    );
}
