//! End-to-end: patient cases under a case key, a participant added later reading the
//! whole history, and signed case messages.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;

use cachet_client::{Client, Conversation, Event};
use cachet_testkit::{case_with, received_texts, texts, TestServer};

/// Dr House and a patient, as `+33 6 00 00 0<series>1` and `…2`: the cast of a case.
async fn house_and_patient(server: &TestServer, series: u32) -> (Client, Client) {
    server
        .register_two(series, ("house", "Dr House"), ("patient", "Patient"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_added_later_reads_the_whole_case() {
    let server = TestServer::start().await;
    let (house, patient) = house_and_patient(&server, 20).await;
    let wilson = server.register("wilson", "+33600000203", "Dr Wilson").await;

    let mut fields = BTreeMap::new();
    fields.insert("reason".to_owned(), "persistent cough".to_owned());
    let case = house
        .create_case("Case 42", &fields, &[patient.user_id().to_owned()])
        .await
        .unwrap();
    house
        .send_case_message(&case.case_id, "Chest X-ray ordered")
        .await
        .unwrap();
    let events = patient.receive(0).await.unwrap();
    assert_eq!(texts(&events), ["Chest X-ray ordered"]);
    patient
        .send_case_message(&case.case_id, "Thank you")
        .await
        .unwrap();

    // Wilson joins later and reads from the start.
    house
        .add_case_participants(&case.case_id, &[wilson.user_id().to_owned()])
        .await
        .unwrap();
    let cases = wilson.cases().await.unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].title, "Case 42");
    assert_eq!(cases[0].fields["reason"], "persistent cough");
    let history = wilson.fetch_case_history(&case.case_id).await.unwrap();
    assert_eq!(texts(&history), ["Chest X-ray ordered", "Thank you"]);
    // Fetching again adds nothing; receiving later brings new messages only.
    assert!(wilson
        .fetch_case_history(&case.case_id)
        .await
        .unwrap()
        .is_empty());
    house
        .send_case_message(&case.case_id, "Results tomorrow")
        .await
        .unwrap();
    assert_eq!(received_texts(&wilson).await, ["Results tomorrow"]);
    let stored = wilson
        .messages(&Conversation::Case(case.case_id.clone()), 10)
        .unwrap();
    assert_eq!(stored.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_message_forged_in_another_name_is_rejected() {
    use prost::Message;
    let server = TestServer::start().await;
    let (house, patient) = house_and_patient(&server, 21).await;
    let case = case_with(&house, "Case 7", &patient).await.unwrap();
    house
        .send_case_message(&case.case_id, "genuine")
        .await
        .unwrap();
    // Tamper on the server: it cannot open the message without the case key, but it can
    // replay it under another sender id, which the author's signature check catches.
    let page = server.store().pending(patient.user_id(), 10).await.unwrap();
    let env: cachet_client::proto::Envelope =
        Message::decode(page.envelopes[0].envelope.as_slice()).unwrap();
    let mut forged = env.clone();
    forged.sender_id = patient.user_id().to_owned();
    forged.message_id = "forged".into();
    let sent_as = (patient.user_id(), "forged");
    let (digest, envelope) = (vec![1; 32], forged.encode_to_vec());
    server
        .inject_envelope(sent_as, digest, house.user_id(), envelope)
        .await;
    let events = house.receive(0).await.unwrap();
    assert!(texts(&events).is_empty());
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Undecryptable { .. })));
}
