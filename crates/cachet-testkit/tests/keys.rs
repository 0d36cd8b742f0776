//! End-to-end: reinstallation (old messages read through previous keys, both ways),
//! contact updates, fingerprint verification and Cardinal's rule.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use cachet_client::{
    no_progress, Client, ClientError, Contact, Conversation, Event, MessageKind, TrustState,
};
use cachet_testkit::{
    add_contact, add_each_other, case_with, create_group, file_in_temp_dir, key_change,
    received_texts, send_text, test_options, texts, TestServer,
};

/// Cardinal's rule met: once `doctor` marks the `contact` of `patient` verified, a case
/// with the patient goes through.
async fn case_shared_once_verified(doctor: &Client, contact: &Contact, patient: &Client) {
    doctor.mark_verified(contact).unwrap();
    case_with(doctor, "Case", patient).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinstallation_still_reads_messages_sent_to_its_old_keys() {
    let server = TestServer::start().await;
    let (doctor, patient) = server.register_doctor_and_patient(30).await;
    add_each_other(&doctor, "doctor", &patient, "patient").await;

    // Both send before the reinstallation; neither has received yet.
    send_text(&doctor, &patient, "sent to your old keys").await;
    send_text(&patient, &doctor, "sent from my old keys").await;

    // New installation, carrying the old key ring, signed by the old Sign Key.
    let history = patient.export_key_history().unwrap();
    let reinstalled = server
        .register_with(
            "patient-2",
            "+33600000302",
            "Patient",
            Some(history),
            test_options(),
        )
        .await
        .unwrap();
    assert_eq!(reinstalled.user_id(), patient.user_id());
    assert_eq!(reinstalled.key_version(), 2);

    // The new installation reads what was sent to the old keys.
    add_contact(&reinstalled, &doctor, "doctor").await;
    assert_eq!(
        received_texts(&reinstalled).await,
        ["sent to your old keys"]
    );

    // The doctor learns the new keys first, then reads what the old keys sent.
    let change = doctor
        .refresh_contact(patient.user_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((change.old_version, change.new_version), (1, 2));
    let events = doctor.receive(0).await.unwrap();
    assert_eq!(texts(&events), ["sent from my old keys"]);

    // New messages use the new keys.
    send_text(&doctor, &patient, "hello again").await;
    assert_eq!(received_texts(&reinstalled).await, ["hello again"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_numbers_match_and_a_signed_key_change_stays_verified() {
    let server = TestServer::start().await;
    let (doctor, patient) = server.register_doctor_and_patient(31).await;
    let p = doctor.add_contact(patient.user_id(), None).await.unwrap();
    let d = patient.add_contact(doctor.user_id(), None).await.unwrap();
    let ours = doctor.safety_number(&p).unwrap();
    let theirs = patient.safety_number(&d).unwrap();
    assert_eq!(ours.digits, theirs.digits);
    assert_eq!(ours.digits.replace(' ', "").len(), 60);
    // Scanning the other side's QR code verifies.
    let p = doctor.verify_scanned(&p, &theirs.qr_payload).unwrap();
    assert!(matches!(p.trust, TrustState::Verified { .. }));
    send_text(&doctor, &patient, "hi").await;
    patient.receive(0).await.unwrap();

    // A reinstallation signed by the verified key keeps the verification.
    let history = patient.export_key_history().unwrap();
    server
        .register_with(
            "patient-2",
            "+33600000312",
            "Patient",
            Some(history),
            test_options(),
        )
        .await
        .unwrap();
    let events = doctor.receive(0).await.unwrap();
    let report = key_change(&events);
    assert!(report.was_verified && report.still_verified, "{report:?}");
    assert!(!report.is_alarm());
    let p = doctor.find_contact(patient.user_id()).unwrap();
    assert!(matches!(p.trust, TrustState::Verified { .. }));
    case_with(&doctor, "Follow-up", &patient).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_substituted_key_is_caught_and_no_new_keys_are_shared() {
    let server = TestServer::start().await;
    let (doctor, patient) = server.register_doctor_and_patient(32).await;
    let p = doctor.add_contact(patient.user_id(), None).await.unwrap();
    let before = doctor.safety_number(&p).unwrap();
    doctor.mark_verified(&p).unwrap();
    send_text(&doctor, &patient, "before").await;
    send_text(&patient, &doctor, "from the real patient").await;

    // Someone who can read the one-time codes registers the patient's number anew,
    // without the old keys: an unsigned key change.
    let _mallory = server.register("mallory", "+33600000322", "Patient").await;
    let events = doctor.receive(0).await.unwrap();
    let report = key_change(&events);
    assert!(report.is_alarm(), "{report:?}");
    // Existing data still decrypts (the real patient's message, through the old keys).
    assert_eq!(texts(&events), ["from the real patient"]);

    let p = doctor.find_contact(patient.user_id()).unwrap();
    assert!(matches!(p.trust, TrustState::KeyChanged { .. }));
    assert_ne!(doctor.safety_number(&p).unwrap().digits, before.digits);

    // Cardinal's rule: no case key, no attachment key for them.
    assert!(matches!(
        case_with(&doctor, "Case", &patient).await,
        Err(ClientError::KeyChanged { .. })
    ));
    let (_work, file) = file_in_temp_dir("x.txt", b"secret");
    assert!(matches!(
        doctor
            .send_file(
                &Conversation::Direct(p.user_id.clone()),
                &file,
                &no_progress
            )
            .await,
        Err(ClientError::KeyChanged { .. })
    ));
    // After comparing safety numbers again, sharing works.
    case_shared_once_verified(&doctor, &p, &patient).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_refuses_contacts_never_verified() {
    let server = TestServer::start().await;
    let options = cachet_client::ClientOptions {
        require_verified: true,
        ..test_options()
    };
    let doctor = server
        .register_with("doctor", "+33600000331", "Dr Grey", None, options)
        .await
        .unwrap();
    let patient = server.register("patient", "+33600000332", "Patient").await;
    let p = doctor.add_contact(patient.user_id(), None).await.unwrap();
    assert!(matches!(
        case_with(&doctor, "Case", &patient).await,
        Err(ClientError::NotVerified { .. })
    ));
    case_shared_once_verified(&doctor, &p, &patient).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_to_a_key_changed_contact_until_the_new_keys_are_accepted() {
    let server = TestServer::start().await;
    let (doctor, patient) = server.register_doctor_and_patient(34).await;
    let nurse = server.register("nurse", "+33600000343", "Nurse").await;
    let p = add_contact(&doctor, &patient, "patient").await;
    add_contact(&doctor, &nurse, "nurse").await;
    doctor.mark_verified(&p).unwrap();
    let group = create_group(&doctor, "Ward 3", &[&patient, &nurse]).await;
    send_text(&doctor, &patient, "before").await;
    assert_eq!(received_texts(&patient).await, ["before"]);
    nurse.receive(0).await.unwrap();

    // An insider registers the patient's number anew with keys of their own.
    let mallory = server.register("mallory", "+33600000342", "Patient").await;
    let events = doctor.receive(0).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::KeyChanged(r) if r.is_alarm())),
        "{events:?}"
    );

    // A text, a typing event and a group message are all refused, naming the contact.
    let err = doctor
        .send_text(patient.user_id(), "for the patient only")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::KeyChanged { contact } if contact == "patient"),
        "{err:?}"
    );
    assert!(err.to_string().contains("nothing was sent"), "{err}");
    let err = doctor
        .send_typing(&Conversation::Direct(patient.user_id().to_owned()), true)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::KeyChanged { .. }), "{err:?}");
    let err = doctor
        .send_group_text(&group.group_id, "to the ward")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::KeyChanged { contact } if contact == "patient"),
        "{err:?}"
    );
    // Nothing reached the new keys' holder, nor the rest of the group.
    assert!(received_texts(&mallory).await.is_empty());
    assert!(received_texts(&nurse).await.is_empty());
    // The sender's history holds no refused message, and shows the change.
    let history = doctor
        .messages(&Conversation::Direct(patient.user_id().to_owned()), 10)
        .unwrap();
    let bodies: Vec<&str> = history.iter().map(|m| m.body.as_str()).collect();
    assert!(!bodies.contains(&"for the patient only"), "{bodies:?}");
    let notice = history.last().unwrap();
    assert_eq!(notice.kind, MessageKind::Notice, "{history:?}");
    assert!(notice.body.starts_with("KEY CHANGED"), "{}", notice.body);

    // Accepting the new keys without comparing: unverified, and messages flow again.
    let p = doctor.accept_key_change(&p).unwrap();
    assert_eq!(p.trust, TrustState::Unverified);
    send_text(&doctor, &patient, "after accepting").await;
    assert_eq!(received_texts(&mallory).await, ["after accepting"]);
    doctor
        .send_group_text(&group.group_id, "to the ward")
        .await
        .unwrap();
    assert_eq!(received_texts(&nurse).await, ["to the ward"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_change_of_a_contact_never_verified_goes_through_with_a_notice() {
    let server = TestServer::start().await;
    let (doctor, patient) = server.register_doctor_and_patient(35).await;
    add_contact(&doctor, &patient, "patient").await;
    send_text(&doctor, &patient, "first").await;
    let reinstalled = server
        .register("patient-2", "+33600000352", "Patient")
        .await;
    let events = doctor.receive(0).await.unwrap();
    let report = key_change(&events);
    assert!(!report.is_alarm(), "{report:?}");
    send_text(&doctor, &patient, "second").await;
    assert_eq!(received_texts(&reinstalled).await, ["second"]);
    let history = doctor
        .messages(&Conversation::Direct(patient.user_id().to_owned()), 10)
        .unwrap();
    let kinds: Vec<MessageKind> = history.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [MessageKind::Text, MessageKind::Notice, MessageKind::Text],
        "{history:?}"
    );
    assert!(
        history[1].body.contains("safety number with them changed"),
        "{}",
        history[1].body
    );
    // A notice is never unread and sends no read receipt.
    let unread: usize = doctor
        .conversations()
        .unwrap()
        .iter()
        .map(|(_, unread, _)| *unread)
        .sum();
    assert_eq!(unread, 0);
}
