//! The server never sees plaintext: after a full exchange, nothing it stored (any row of
//! any table, any blob file, the raw database files) contains a message, case field,
//! attachment or identifier in clear.

use std::path::Path;

use cachet_crypto::attachment::{self, FormatVersion};
use cachet_crypto::SymmetricKey;
use cachet_proto::v1::{payload, AttachmentPointer, Envelope, Payload};
use cachet_proto::Message;
use sqlx::Row;

use crate::attachments::upload;
use crate::cases::{case_envelope, create_case_with, open_case_text};
use crate::common::*;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every value of every column of every table, as bytes.
async fn all_values(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut db = open_db(dir).await;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut db)
            .await
            .expect("tables");
    assert!(tables.iter().any(|t| t == "mailbox"));
    let mut out = Vec::new();
    for table in tables {
        let columns: Vec<String> = sqlx::query(&format!("PRAGMA table_info(\"{table}\")"))
            .fetch_all(&mut db)
            .await
            .expect("columns")
            .iter()
            .map(|r| r.get::<String, _>("name"))
            .collect();
        for column in columns {
            let values: Vec<Option<Vec<u8>>> = sqlx::query_scalar(&format!(
                "SELECT CAST(\"{column}\" AS BLOB) FROM \"{table}\""
            ))
            .fetch_all(&mut db)
            .await
            .expect("values");
            for v in values.into_iter().flatten() {
                out.push((format!("{table}.{column}"), v));
            }
        }
    }
    // Closed before the files are read: a connection dropped instead closes later, in
    // the background, and removes the WAL files while they are being listed.
    sqlx::Connection::close(db).await.expect("close");
    out
}

/// Every file the server wrote, except the development notifier's code list (which holds
/// identifiers by design, for development only).
fn all_files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            all_files(&path, out);
        } else if path.file_name().is_some_and(|n| n != "dev-codes.txt") {
            out.push((
                path.display().to_string(),
                std::fs::read(&path).expect("read"),
            ));
        }
    }
}

#[tokio::test]
async fn nothing_stored_contains_plaintext() {
    let mut s = TestServer::start().await;
    let tag = hex::encode(cachet_crypto::random_bytes::<6>());
    let alice_id = format!("alice.{tag}@hospital.example");
    let digits = u64::from_str_radix(&tag[..8], 16).expect("hex") % 100_000_000;
    let bob_id = format!("+4930{digits:08}");
    let alice = s.register_as(&alice_id, &format!("Dr A {tag}")).await;
    let bob = s.register_as(&bob_id, "Dr B").await.as_web();

    let message = format!("Potassium 6.1 mmol/L, patient {tag}, repeat ECG");
    let case_fields = format!("{{\"patient\":\"Jeanne {tag}\",\"dob\":\"1950-02-03\"}}");
    let case_note = format!("Case note {tag}: start dialysis");
    let attachment_text = format!("X-ray report {tag}. ").repeat(20_000);

    // 1:1 text.
    send_ok(
        &s,
        &alice,
        &text_envelope(&alice, &[&bob], &mid(), &message),
    )
    .await;

    // Case with sealed fields and a case message.
    let (_, case_key) =
        create_case_with(&s, &alice, &[&bob], &format!("case-{tag}"), &case_fields).await;
    send_ok(
        &s,
        &alice,
        &case_envelope(&alice, &format!("case-{tag}"), &case_key, &case_note),
    )
    .await;

    // Encrypted attachment, announced in a boxed pointer.
    let att_key = SymmetricKey::generate();
    let sealed = attachment::seal_all(attachment_text.as_bytes(), &att_key, FormatVersion::V2);
    let att_id = upload(&s, &alice, &sealed, &[&bob]).await;
    let pointer = Payload {
        message_id: mid(),
        sender_id: alice.user_id.clone(),
        body: Some(payload::Body::Attachment(AttachmentPointer {
            attachment_id: att_id.clone(),
            key: att_key.expose_secret().to_vec(),
            format_version: 2,
            plaintext_size: attachment_text.len() as u64,
            ciphertext_sha256: cachet_crypto::sha256(&sealed).to_vec(),
            file_name: format!("xray-{tag}.txt"),
            content_type: "text/plain".into(),
        })),
        ..Default::default()
    };
    let (nonce, ciphertext) = cachet_crypto::boxes::seal(
        &pointer.encode_to_vec(),
        &bob.boxk.public,
        &alice.boxk.secret,
    )
    .expect("seal");
    let env = Envelope {
        version: 1,
        message_id: pointer.message_id.clone(),
        recipients: vec![cachet_proto::v1::RecipientCiphertext {
            recipient_id: bob.user_id.clone(),
            nonce: nonce.as_bytes().to_vec(),
            ciphertext,
            ..Default::default()
        }],
        ..Default::default()
    };
    send_ok(&s, &alice, &env).await;

    // Bob can read all of it (so the exchange really happened)...
    let inbox = receive(&s, &bob, vec![], 0).await;
    assert_eq!(inbox.envelopes.len(), 3);
    assert_eq!(open_text(&inbox.envelopes[0], &bob, &alice), message);
    let case = crate::cases::open_case_key(
        &s.get(&bob, &format!("/api/v1/cases/case-{tag}"))
            .await
            .decode::<cachet_proto::v1::CaseRecord>()
            .my_keys[0],
        &bob,
    );
    assert_eq!(open_case_text(&inbox.envelopes[1], &case), case_note);
    let mut downloaded = Vec::new();
    for i in 0..sealed.len().div_ceil(attachment::SEALED_CHUNK_SIZE) {
        let r = s
            .get(&bob, &format!("/api/v1/attachments/{att_id}/chunks/{i}"))
            .await;
        assert_eq!(r.status, 200);
        downloaded.extend_from_slice(&r.body);
    }
    assert_eq!(
        attachment::open_all(&downloaded, &att_key, FormatVersion::V2).expect("opens"),
        attachment_text.as_bytes()
    );
    // ...and, as a web client, keeps it on the server after acking.
    let ids = inbox.envelopes.iter().map(|e| e.delivery_id).collect();
    receive(&s, &bob, ids, 0).await;
    s.stop().await;

    let mut stored = all_values(&s.data_dir()).await;
    all_files(&s.data_dir(), &mut stored);
    assert!(stored.iter().any(|(w, _)| w.starts_with("case_messages.")));
    assert!(stored.iter().any(|(w, _)| w.contains("blobs")));

    let normalised_bob = cachet_proto::normalise_identifier(&bob_id);
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("message", message.as_bytes().to_vec()),
        ("case field", case_fields.as_bytes().to_vec()),
        ("case note", case_note.as_bytes().to_vec()),
        ("attachment", format!("X-ray report {tag}").into_bytes()),
        ("file name", format!("xray-{tag}").into_bytes()),
        ("attachment key", att_key.expose_secret().to_vec()),
        ("case key", case_key.expose_secret().to_vec()),
        ("e-mail identifier", alice_id.as_bytes().to_vec()),
        ("phone identifier", normalised_bob.as_bytes().to_vec()),
    ];
    for (what, secret) in &secrets {
        for (where_, bytes) in &stored {
            assert!(
                !contains(bytes, secret),
                "{what} found in clear in {where_}"
            );
        }
    }
    // Public metadata is there, as expected: the check above is not vacuous.
    assert!(stored
        .iter()
        .any(|(_, b)| contains(b, format!("Dr A {tag}").as_bytes())));
}
