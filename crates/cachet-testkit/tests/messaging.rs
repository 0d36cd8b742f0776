//! End-to-end: 1:1 text, read receipts, typing, groups, ordering and de-duplication,
//! through a real server on loopback.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use cachet_client::{Conversation, Event};
use cachet_testkit::{create_group, received_texts, send_text, texts, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_message_and_its_read_receipt() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "+33600000001", "Dr Alice").await;
    let bob = server.register("bob", "+33600000002", "Bob").await;

    let contact = alice
        .add_contact_by_identifier("+33 6 00 00 00 02", Some("bob"))
        .await
        .unwrap();
    assert_eq!(contact.user_id, bob.user_id());
    assert_eq!(alice.find_contact("bob").unwrap().user_id, bob.user_id());

    let sent = alice
        .send_text(bob.user_id(), "Results are normal")
        .await
        .unwrap();
    let events = bob.receive(0).await.unwrap();
    assert_eq!(texts(&events), ["Results are normal"]);
    let conv = Conversation::Direct(alice.user_id().to_owned());
    assert_eq!(bob.mark_read(&conv).await.unwrap(), 1);

    let events = alice.receive(0).await.unwrap();
    assert!(events.iter().any(|e| matches!(e,
        Event::ReadReceipt { from, message_ids, .. } if from == bob.user_id() && message_ids == std::slice::from_ref(&sent.message_id))));
    let mine = alice
        .messages(&Conversation::Direct(bob.user_id().to_owned()), 10)
        .unwrap();
    assert!(mine[0].read_at.is_some());
    assert_eq!(alice.read_by(&sent.message_id).unwrap()[0].0, bob.user_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_events_arrive_and_are_not_stored() {
    let server = TestServer::start().await;
    let (alice, bob) = server.register_alice_and_bob(1).await;
    alice.add_contact(bob.user_id(), None).await.unwrap();
    alice
        .send_typing(&Conversation::Direct(bob.user_id().to_owned()), true)
        .await
        .unwrap();
    let events = bob.receive(0).await.unwrap();
    assert!(
        matches!(&events[..], [Event::Typing { from, typing: true, group_id: None }] if from == alice.user_id())
    );
    assert!(bob.conversations().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_in_order_once_even_if_delivered_twice() {
    let server = TestServer::start().await;
    let (alice, bob) = server.register_alice_and_bob(2).await;
    for i in 0..5 {
        alice
            .send_text(bob.user_id(), &format!("message {i}"))
            .await
            .unwrap();
    }
    let events = bob.receive(0).await.unwrap();
    assert_eq!(
        texts(&events),
        (0..5).map(|i| format!("message {i}")).collect::<Vec<_>>()
    );
    // Nothing left, and receiving again yields nothing.
    assert!(bob.receive(0).await.unwrap().is_empty());

    // The same envelope again (as after a crash before the ack): ignored.
    send_text(&alice, &bob, "once").await;
    let store = server_store(&server);
    let pending = store.pending(bob.user_id(), 10).await.unwrap();
    assert_eq!(pending.envelopes.len(), 1);
    let copy = pending.envelopes[0].envelope.clone();
    let sent_as = (alice.user_id(), "redelivery");
    server
        .inject_envelope(sent_as, vec![0; 32], bob.user_id(), copy)
        .await;
    let events = bob.receive(0).await.unwrap();
    assert_eq!(texts(&events), ["once"]);
    let stored = bob
        .messages(&Conversation::Direct(alice.user_id().to_owned()), 100)
        .unwrap();
    assert_eq!(stored.len(), 6);
    assert!(server_store(&server)
        .pending(bob.user_id(), 10)
        .await
        .unwrap()
        .envelopes
        .is_empty());
}

fn server_store(server: &TestServer) -> std::sync::Arc<dyn cachet_server::store::Store> {
    server.store()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_is_sealed_for_each_member() {
    let server = TestServer::start().await;
    let (alice, bob) = server.register_alice_and_bob(3).await;
    let carol = server.register("carol", "+33600000033", "Carol").await;
    let group = create_group(&alice, "Cardiology", &[&bob, &carol]).await;
    alice
        .send_group_text(&group.group_id, "Meeting at noon")
        .await
        .unwrap();
    // Each member's mailbox holds its own ciphertext only.
    let pending = server.store().pending(carol.user_id(), 10).await.unwrap();
    for stored in &pending.envelopes {
        let env: cachet_client::proto::Envelope =
            prost::Message::decode(stored.envelope.as_slice()).unwrap();
        assert_eq!(env.recipients.len(), 1);
        assert_eq!(env.recipients[0].recipient_id, carol.user_id());
    }
    for member in [&bob, &carol] {
        let events = member.receive(0).await.unwrap();
        assert!(events.iter().any(|e| matches!(e, Event::Group { name, members, .. } if name == "Cardiology" && members.len() == 3)));
        assert_eq!(texts(&events), ["Meeting at noon"]);
        let g = member.find_group("Cardiology").unwrap();
        assert_eq!(g.group_id, group.group_id);
    }
    bob.send_group_text(&group.group_id, "I will be there")
        .await
        .unwrap();
    assert_eq!(received_texts(&carol).await, ["I will be there"]);
    assert_eq!(received_texts(&alice).await, ["I will be there"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_on_a_new_message() {
    let server = TestServer::start().await;
    let (alice, bob) = server.register_alice_and_bob(4).await;
    let bob = std::sync::Arc::new(bob);
    let waiting = {
        let bob = bob.clone();
        tokio::spawn(async move { bob.receive(20).await.unwrap() })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    send_text(&alice, &bob, "wake up").await;
    assert_eq!(texts(&waiting.await.unwrap()), ["wake up"]);
}
