//! The server key hierarchy end to end: sealed start, unseal by 5 of 7 shares, metadata
//! encrypted at rest, rotation, re-sharing, export to a second server and the audit log.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use cachet_client::{ClientError, OperatorClient, Split};
use cachet_server::store::{SqliteStore, Store};
use cachet_testkit::{add_contact, send_text, TestOperator, TestServer};

const NAME: &str = "Dr Zelda Quixotic-Marchand";
const PHONE: &str = "+33600000901";
const NOTE: &str = "checked RPPS card 10003456789 in person";

fn reason(e: &ClientError) -> String {
    match e {
        ClientError::Server { reason, .. } => reason.clone(),
        other => format!("not a server refusal: {other}"),
    }
}

/// Five operators, each holding one share, enter them one by one.
async fn unseal_with(
    server: &TestServer,
    ops: &[TestOperator],
    tokens: &[&String],
) -> OperatorClient {
    for (op, token) in ops.iter().zip(tokens) {
        op.on(server).unseal(token).await.unwrap();
    }
    ops[0].on(server)
}

async fn operators(server: &TestServer, n: usize) -> Vec<TestOperator> {
    let mut ops = Vec::new();
    for i in 0..n {
        ops.push(server.add_operator(&format!("holder{i}")).await);
    }
    ops
}

/// `holders` operators, the first of whom initialises the vault as seven shares with five
/// needed: the starting point of most vault tests. Returns the operators and the shares.
async fn initialised_vault(
    server: &TestServer,
    holders: usize,
) -> (Vec<TestOperator>, Vec<String>) {
    let ops = operators(server, holders).await;
    let tokens = ops[0].on(server).init(7, 5).await.unwrap().tokens;
    (ops, tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_of_seven_unseal_a_restarted_server_four_do_not_and_a_bad_share_is_named() {
    let mut server = TestServer::start().await;
    let ops = operators(&server, 7).await;
    let admin = ops[0].on(&server);
    let status = admin.vault_status().await.unwrap();
    assert!(
        !status.initialised,
        "a new server runs unprotected until init"
    );

    let shares = admin.init(7, 5).await.unwrap();
    assert_eq!(shares.tokens.len(), 7);
    assert!(
        !shares.status.unwrap().sealed,
        "init leaves the server open"
    );

    let doctor = server.register("doctor", PHONE, NAME).await;
    let patient = server.register("patient", "+33600000902", "Patient").await;
    patient
        .add_contact_by_identifier(PHONE, Some("doctor"))
        .await
        .unwrap();
    send_text(&patient, &doctor, "before the restart").await;

    server.restart().await;
    let admin = ops[0].on(&server);
    let status = admin.vault_status().await.unwrap();
    assert!(
        status.initialised && status.sealed,
        "a restart comes up sealed"
    );
    // Sealed: user traffic and registration are refused with a reason.
    let refused = doctor.receive(0).await.unwrap_err();
    assert_eq!(reason(&refused), "sealed", "{refused}");

    // Four shares open nothing.
    let tokens: Vec<&String> = shares.tokens.iter().collect();
    for (op, token) in ops[1..5].iter().zip(&tokens[1..5]) {
        let s = op.on(&server).unseal(token).await.unwrap();
        assert!(s.sealed);
    }
    let s = admin.vault_status().await.unwrap();
    assert_eq!((s.shares_entered, s.threshold), (4, 5));
    assert_eq!(reason(&doctor.receive(0).await.unwrap_err()), "sealed");

    // A corrupted share is refused and named; it does not count.
    let mut bad = tokens[5].clone();
    let last = bad.len() - 3;
    let flipped = if &bad[last..=last] == "A" { "B" } else { "A" };
    bad.replace_range(last..=last, flipped);
    let err = ops[5].on(&server).unseal(&bad).await.unwrap_err();
    assert_eq!(reason(&err), "corrupt_share");
    assert!(err.to_string().contains("share 6"), "{err}");
    // So is a share entered twice.
    let err = ops[5].on(&server).unseal(tokens[1]).await.unwrap_err();
    assert_eq!(reason(&err), "duplicate_share");

    // The fifth good share opens the server; everything reads as before.
    let s = ops[6].on(&server).unseal(tokens[6]).await.unwrap();
    assert!(!s.sealed);
    let events = doctor.receive(0).await.unwrap();
    assert_eq!(events.len(), 1);
    let me = patient.contact(doctor.user_id()).unwrap().unwrap();
    assert_eq!(me.display_name, NAME);
    let found = doctor
        .add_contact_by_identifier("+33600000902", Some("patient"))
        .await
        .unwrap();
    assert_eq!(
        found.user_id,
        patient.user_id(),
        "discovery works on blinded hashes"
    );

    // The audit log names who did what, and its chain checks.
    admin.verify_profile(doctor.user_id(), NOTE).await.unwrap();
    let report = admin.audit().await.unwrap();
    let actions: Vec<&str> = report.entries.iter().map(|e| e.action.as_str()).collect();
    for expected in ["vault_init", "vault_unseal", "verify_profile"] {
        assert!(actions.contains(&expected), "{actions:?}");
    }
    let unseal = report
        .entries
        .iter()
        .find(|e| e.action == "vault_unseal")
        .unwrap();
    for op in ["op:holder1", "op:holder4", "op:holder6"] {
        assert!(unseal.detail.contains(op), "{}", unseal.detail);
    }
    let verify = report
        .entries
        .iter()
        .find(|e| e.action == "verify_profile")
        .unwrap();
    assert_eq!(verify.opened_detail, NOTE);
    assert_ne!(verify.detail, NOTE, "stored sealed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_the_database_shows_none_of_the_protected_metadata() {
    let mut server = TestServer::start().await;
    let (ops, tokens) = initialised_vault(&server, 1).await;
    let admin = ops[0].on(&server);
    let doctor = server.register("doctor", PHONE, NAME).await;
    admin.verify_profile(doctor.user_id(), NOTE).await.unwrap();
    let user_id = doctor.user_id().to_owned();
    // The trust log's signing seed, as the running server reads it (made on first use).
    let log_seed = server.store().trust_log_seed(&[9; 32]).await.unwrap();
    assert_eq!(log_seed.len(), 32);
    server.stop().await;

    // Every byte of every file the server wrote.
    let discovery = cachet_proto::discovery_hash(PHONE);
    let mut files = 0;
    for entry in std::fs::read_dir(server.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() || path.file_name().unwrap() == "dev-codes.txt" {
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        for (what, needle) in [
            ("display name", NAME.as_bytes()),
            ("operator note", NOTE.as_bytes()),
            ("identifier hash", discovery.as_slice()),
            ("phone number", PHONE.as_bytes()),
            ("trust log seed", log_seed.as_slice()),
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{what} found in the clear in {}",
                path.display()
            );
        }
    }
    assert!(files >= 1);

    // Row by row, through a store that has no key.
    let raw = SqliteStore::open_in(server.data_dir()).await.unwrap();
    let row = raw.get_user(&user_id).await.unwrap().unwrap();
    assert!(
        row.display_name.starts_with("sealed:v1:"),
        "{}",
        row.display_name
    );
    assert_eq!(raw.user_by_identifier_hash(&discovery).await.unwrap(), None);
    let entries = raw.audit_entries(0, 100).await.unwrap();
    let verify = entries
        .iter()
        .find(|e| e.action == "verify_profile")
        .unwrap();
    assert!(verify.subject.starts_with("sealed:v1:") && verify.detail.starts_with("sealed:v1:"));
    let stored_seed = raw.trust_log_seed(&[7; 32]).await.unwrap();
    assert!(
        stored_seed.starts_with(b"sealed:v1:"),
        "the log seed is sealed"
    );
    raw.close().await;

    // Sealed after a restart, the seed cannot be read; unsealed, the same key is back.
    server.restart().await;
    assert!(matches!(
        server.store().trust_log_seed(&[9; 32]).await,
        Err(cachet_server::Error::Sealed)
    ));
    for token in &tokens[..5] {
        ops[0].on(&server).unseal(token).await.unwrap();
    }
    assert_eq!(
        server.store().trust_log_seed(&[9; 32]).await.unwrap(),
        log_seed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_resharing_keep_every_record_readable_and_retire_old_shares() {
    let mut server = TestServer::start().await;
    let (ops, first) = initialised_vault(&server, 5).await;
    let doctor = server.register("doctor", PHONE, NAME).await;
    let patient = server.register("patient", "+33600000902", "Patient").await;
    add_contact(&patient, &doctor, "doctor").await;

    // Rotate the master key: new shares; the old ones no longer open the server.
    let rotated = ops[0].on(&server).rotate(7, 5).await.unwrap().tokens;
    server.restart().await;
    let err = ops[0].on(&server).unseal(&first[0]).await.unwrap_err();
    assert_eq!(reason(&err), "corrupt_share", "an old share after rotation");
    let refs: Vec<&String> = rotated.iter().skip(2).collect();
    let admin = unseal_with(&server, &ops, &refs).await;
    assert!(!admin.vault_status().await.unwrap().sealed);
    assert!(patient
        .refresh_contact(doctor.user_id())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        patient
            .contact(doctor.user_id())
            .unwrap()
            .unwrap()
            .display_name,
        NAME
    );

    // Re-share to three holders with two needed; the rotated shares retire.
    let reshared = admin.reshare(3, 2).await.unwrap().tokens;
    assert_eq!(reshared.len(), 3);
    server.restart().await;
    let err = ops[0].on(&server).unseal(&rotated[0]).await.unwrap_err();
    assert_eq!(reason(&err), "corrupt_share");
    let refs: Vec<&String> = reshared.iter().skip(1).collect();
    let admin = unseal_with(&server, &ops, &refs).await;
    assert!(!admin.vault_status().await.unwrap().sealed);
    send_text(&doctor, &patient, "after rotation").await;
    assert_eq!(patient.receive(0).await.unwrap().len(), 1);
    let actions: Vec<String> = admin
        .audit()
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.contains(&"vault_rotate".into()) && actions.contains(&"vault_reshare".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sealed_material_opens_a_second_server_with_another_five_of_the_seven() {
    let mut first = TestServer::start().await;

    let (ops, tokens) = initialised_vault(&first, 7).await;
    let doctor = first.register("doctor", PHONE, NAME).await;
    let exported = ops[0].on(&first).export().await.unwrap();
    assert!(
        !String::from_utf8_lossy(&exported).contains("cachet-share"),
        "the export holds no share"
    );
    // The same database opens with shares 3 to 7, where it was set up with all seven.
    first.restart().await;
    assert!(ops[0].on(&first).vault_status().await.unwrap().sealed);
    let refs: Vec<&String> = tokens.iter().skip(2).collect();
    let admin = unseal_with(&first, &ops[2..], &refs).await;
    assert!(!admin.vault_status().await.unwrap().sealed);
    let reader = first.register("nurse", "+33600000903", "Nurse").await;
    let found = reader.add_contact(doctor.user_id(), None).await.unwrap();
    assert_eq!(found.display_name, NAME);

    // A fresh server takes the exported material by import and opens the same way.
    let third = TestServer::start().await;
    let op = third.add_operator("holder2").await;
    op.on(&third).import(exported.clone()).await.unwrap();
    let s = op.on(&third).vault_status().await.unwrap();
    assert!(s.initialised && s.sealed);
    let mut ops3 = vec![op];
    for i in 3..7 {
        ops3.push(third.add_operator(&format!("holder{i}")).await);
    }
    let admin = unseal_with(&third, &ops3, &refs).await;
    assert!(!admin.vault_status().await.unwrap().sealed);
    // Import is refused once a vault exists.
    let again = admin.import(exported).await.unwrap_err();
    assert_eq!(reason(&again), "vault_already_initialised", "{again}");
    let junk = admin.import(b"{}".to_vec()).await.unwrap_err();
    assert_eq!(reason(&junk), "invalid_field", "{junk}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_is_refused_on_a_database_with_users_and_bad_requests_get_reasons() {
    let server = TestServer::start().await;
    let ops = operators(&server, 1).await;
    let admin = ops[0].on(&server);
    let err = admin.unseal("cachet-share-v1:1:AAAA").await.unwrap_err();
    assert_eq!(reason(&err), "vault_not_initialised");
    let err = admin.init(3, 5).await.unwrap_err();
    assert_eq!(reason(&err), "invalid_sharing");
    let _doctor = server.register("doctor", PHONE, NAME).await;
    let err = admin.init(7, 5).await.unwrap_err();
    assert_eq!(reason(&err), "vault_needs_empty_database");
    // Users cannot call operator routes.
    let status = admin.vault_status().await.unwrap();
    assert!(!status.initialised);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_sealed_to_their_holders_open_only_with_each_holders_key() {
    let mut server = TestServer::start().await;
    let ops = operators(&server, 7).await;
    let names: Vec<String> = ops.iter().map(|o| o.name.clone()).collect();

    // A holder who is not a registered operator is refused before anything is split.
    let mut wrong = names.clone();
    wrong[6] = "nobody".into();
    let err = ops[0]
        .on(&server)
        .split(Split::Init, 7, 5, &wrong)
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "invalid_field", "{err}");
    assert!(!ops[0].on(&server).vault_status().await.unwrap().initialised);
    let err = ops[0]
        .on(&server)
        .split(Split::Init, 7, 5, &names[..6])
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "invalid_sharing", "{err}");

    // The operator who runs init sees sealed shares only.
    let shares = ops[0]
        .on(&server)
        .split(Split::Init, 7, 5, &names)
        .await
        .unwrap();
    assert!(shares.tokens.is_empty());
    assert_eq!(shares.holders, names);
    assert_eq!(shares.sealed_tokens.len(), 7);
    assert!(shares
        .sealed_tokens
        .iter()
        .all(|t| t.starts_with("cachet-sealed-share-v1:") && !t.contains("cachet-share-v1:")));

    server.restart().await;
    // A holder cannot enter another holder's share: it does not open with their key.
    let err = ops[1]
        .on(&server)
        .unseal(&shares.sealed_tokens[2])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another holder"), "{err}");
    let status = ops[0].on(&server).vault_status().await.unwrap();
    assert_eq!(status.shares_entered, 0);

    // Each of five holders opens their own, and the server opens.
    for (op, sealed) in ops.iter().zip(&shares.sealed_tokens).skip(2) {
        op.on(&server).unseal(sealed).await.unwrap();
    }
    assert!(!ops[0].on(&server).vault_status().await.unwrap().sealed);
    server.register("doctor", PHONE, NAME).await;
}
