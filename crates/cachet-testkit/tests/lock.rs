//! The application lock: PIN lock-outs that survive restarts, the ten-minute window,
//! remembered unlocks, and errors that leave the profile intact.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use cachet_client::clock::ManualClock;
use cachet_client::{Client, ClientError, ClientOptions, UnlockSecret};
use cachet_testkit::{test_options, TestServer, PIN};

fn with_clock(clock: &ManualClock) -> ClientOptions {
    ClientOptions {
        clock: Arc::new(clock.clone()),
        ..test_options()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pins_lock_out_longer_and_longer_even_across_restarts() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "+33600000401", "Alice").await;
    let dir = alice.dir().to_path_buf();
    drop(alice);
    let clock = ManualClock::starting_now();
    let wrong = UnlockSecret::new("00000");
    let open = || Client::open(&dir, with_clock(&clock)).unwrap();

    for _ in 0..2 {
        assert!(matches!(
            open().unlock(&wrong),
            Err(ClientError::WrongSecret {
                locked_for: None,
                ..
            })
        ));
    }
    assert!(matches!(
        open().unlock(&wrong),
        Err(ClientError::WrongSecret { failures: 3, locked_for: Some(d) }) if d == Duration::from_secs(30)
    ));
    // Even the right PIN is refused during the lock-out, by a fresh process.
    assert!(matches!(
        open().unlock(&UnlockSecret::new(PIN)),
        Err(ClientError::LockedOut { .. })
    ));
    clock.advance(Duration::from_secs(31));
    assert!(matches!(
        open().unlock(&wrong),
        Err(ClientError::WrongSecret { failures: 4, locked_for: Some(d) }) if d == Duration::from_secs(60)
    ));
    clock.advance(Duration::from_secs(61));
    let client = open();
    client.unlock(&UnlockSecret::new(PIN)).unwrap();
    assert_eq!(client.failed_unlocks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlock_lasts_ten_minutes_after_the_last_use() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "+33600000411", "Alice").await;
    let dir = alice.dir().to_path_buf();
    drop(alice);
    let clock = ManualClock::starting_now();
    let client = Client::open(&dir, with_clock(&clock)).unwrap();
    assert!(matches!(client.contacts(), Err(ClientError::Locked)));
    client.unlock(&UnlockSecret::new(PIN)).unwrap();
    client.remember_unlock().unwrap();
    clock.advance(Duration::from_secs(9 * 60));
    assert!(client.contacts().is_ok());
    // Another process resumes without the PIN within the window.
    let other = Client::open(&dir, with_clock(&clock)).unwrap();
    assert!(other.resume().unwrap());
    clock.advance(Duration::from_secs(10 * 60 + 1));
    assert!(matches!(client.contacts(), Err(ClientError::Locked)));
    let third = Client::open(&dir, with_clock(&clock)).unwrap();
    assert!(!third.resume().unwrap());
    // Locking explicitly forgets the remembered unlock.
    third.unlock(&UnlockSecret::new(PIN)).unwrap();
    third.remember_unlock().unwrap();
    third.lock().unwrap();
    assert!(!Client::open(&dir, with_clock(&clock))
        .unwrap()
        .resume()
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_outage_loses_nothing_locally() {
    let mut server = TestServer::start().await;
    let alice = server.register("alice", "+33600000421", "Alice").await;
    let bob = server.register("bob", "+33600000422", "Bob").await;
    alice.send_text(bob.user_id(), "kept").await.unwrap();
    bob.receive(0).await.unwrap();
    server.stop().await;
    assert!(matches!(
        bob.send_text(alice.user_id(), "lost?").await,
        Err(ClientError::Unreachable { .. })
    ));
    assert!(matches!(
        bob.receive(0).await,
        Err(ClientError::Unreachable { .. })
    ));
    let conv = cachet_client::Conversation::Direct(alice.user_id().to_owned());
    let kept = bob.messages(&conv, 10).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].body, "kept");
}
