//! The application lock: PIN lock-outs that survive restarts, the ten-minute window,
//! remembered unlocks, and errors that leave the profile intact.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cachet_client::clock::ManualClock;
use cachet_client::{Client, ClientError, ClientOptions, UnlockSecret};
use cachet_testkit::{file_in_temp_dir, send_text, test_options, TestServer, PIN};

fn with_clock(clock: &ManualClock) -> ClientOptions {
    ClientOptions {
        clock: Arc::new(clock.clone()),
        ..test_options()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pins_lock_out_longer_and_longer_even_across_restarts() {
    let server = TestServer::start().await;
    let dir = server.alice_profile_dir(40).await;
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
    let dir = server.alice_profile_dir(41).await;
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
    let (alice, bob) = server.register_alice_and_bob(42).await;
    send_text(&alice, &bob, "kept").await;
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

/// Argon2id with the test cost, counting the secrets it tries.
#[derive(Debug, Default)]
struct CountingProtector {
    tried: std::sync::atomic::AtomicUsize,
}

impl cachet_client::MasterKeyProtector for CountingProtector {
    fn kind(&self) -> &'static str {
        "argon2id"
    }
    fn wrap(
        &self,
        master: &cachet_crypto::SymmetricKey,
        secret: &UnlockSecret,
    ) -> cachet_client::Result<Vec<u8>> {
        test_protector().wrap(master, secret)
    }
    fn unwrap(
        &self,
        wrapped: &[u8],
        secret: &UnlockSecret,
    ) -> cachet_client::Result<Option<cachet_crypto::SymmetricKey>> {
        self.tried.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        test_protector().unwrap(wrapped, secret)
    }
}

fn test_protector() -> cachet_client::Argon2idProtector {
    cachet_client::Argon2idProtector::new(cachet_client::Argon2Params::INSECURE_FOR_TESTS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_wrong_pins_at_once_are_all_counted_and_only_the_allowed_ones_tried() {
    let server = TestServer::start().await;
    let dir = server.alice_profile_dir(43).await;
    let clock = ManualClock::starting_now();
    let protector = Arc::new(CountingProtector::default());
    let options = ClientOptions {
        protector: protector.clone(),
        ..with_clock(&clock)
    };
    // Twenty "processes", each with its own handle on the profile, released together.
    let barrier = std::sync::Barrier::new(20);
    let outcomes: Vec<ClientError> = std::thread::scope(|s| {
        let attempts: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    let client = Client::open(&dir, options.clone()).unwrap();
                    barrier.wait();
                    client.unlock(&UnlockSecret::new("00000")).unwrap_err()
                })
            })
            .collect();
        attempts.into_iter().map(|a| a.join().unwrap()).collect()
    });
    let wrong: Vec<u32> = outcomes
        .iter()
        .filter_map(|e| match e {
            ClientError::WrongSecret { failures, .. } => Some(*failures),
            _ => None,
        })
        .collect();
    let refused = outcomes
        .iter()
        .filter(|e| matches!(e, ClientError::LockedOut { .. }))
        .count();
    // The policy allows two free attempts and a third that engages the 30 s lock-out:
    // exactly three secrets were tried, the other seventeen refused untried.
    assert_eq!(
        protector.tried.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "{outcomes:?}"
    );
    let mut wrong_sorted = wrong.clone();
    wrong_sorted.sort_unstable();
    assert_eq!(wrong_sorted, [1, 2, 3], "{outcomes:?}");
    assert_eq!(refused, 17, "{outcomes:?}");
    // Every attempt was recorded.
    let client = Client::open(&dir, options.clone()).unwrap();
    assert_eq!(client.failed_unlocks(), 20);
    // The right PIN waits for the lock-out too, untried.
    assert!(matches!(
        client.unlock(&UnlockSecret::new(PIN)),
        Err(ClientError::LockedOut { .. })
    ));
    assert_eq!(protector.tried.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_lockout_file_refuses_even_the_right_pin() {
    let server = TestServer::start().await;
    let dir = server.alice_profile_dir(44).await;
    let clock = ManualClock::starting_now();
    let right = UnlockSecret::new(PIN);
    std::fs::write(dir.join("lockout.json"), b"\x00\x00garbage").unwrap();
    let client = Client::open(&dir, with_clock(&clock)).unwrap();
    match client.unlock(&right) {
        Err(ClientError::LockoutDamaged { retry_after }) => {
            assert_eq!(retry_after, cachet_client::lockout::LONGEST_LOCKOUT)
        }
        other => panic!("a damaged counter let an attempt through: {other:?}"),
    }
    assert!(!client.is_unlocked());
    let message = client.unlock(&right).unwrap_err().to_string();
    assert!(message.contains("lockout.json"), "{message}");
    // The longest lock-out runs its course, then the right PIN works and clears it.
    clock.advance(cachet_client::lockout::LONGEST_LOCKOUT);
    client.unlock(&right).unwrap();
    assert_eq!(client.failed_unlocks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trivial_pin_is_refused_at_registration() {
    let server = TestServer::start().await;
    for (i, pin) in ["12345", "11111", "54321", "13579", "12121"]
        .iter()
        .enumerate()
    {
        let phone = format!("+3360000045{i}");
        let pending = Client::start_registration(&server.url(), &phone, test_options())
            .await
            .unwrap();
        let dir = server.profile_dir("trivial");
        let result = pending
            .finish(cachet_client::NewProfile {
                dir: &dir,
                code: "000000",
                display_name: "Trivial",
                secret: &UnlockSecret::new(*pin),
                previous: None,
            })
            .await;
        assert!(
            matches!(result, Err(ClientError::WeakSecret(_))),
            "{pin}: {result:?}"
        );
        assert!(!dir.exists());
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The keyring entry a `session.json` names, if it names one.
fn keyring_entry(dir: &Path) -> Option<String> {
    let text = std::fs::read(dir.join("session.json")).ok()?;
    let json: serde_json::Value = serde_json::from_slice(&text).ok()?;
    json["keyring"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_an_unlocked_profile_opens_nothing() {
    let server = TestServer::start().await;
    let (alice, bob) = server.register_alice_and_bob(46).await;
    send_text(&alice, &bob, "the biopsy is benign").await;
    bob.receive(0).await.unwrap();
    let conv = cachet_client::Conversation::Direct(alice.user_id().to_owned());
    bob.remember_unlock().unwrap();
    let dir = bob.dir().to_path_buf();
    let elsewhere = tempfile::tempdir().unwrap();
    let backup = elsewhere.path().join("backup");
    copy_dir(&dir, &backup);
    // The remembered unlock works where it was made...
    let again = Client::open(&dir, test_options()).unwrap();
    assert!(again.resume().unwrap());
    assert_eq!(again.messages(&conv, 10).unwrap().len(), 1);
    drop(again);
    // ...but not in a copy elsewhere, even on the same machine, with the key still there.
    let copy = Client::open(&backup, test_options()).unwrap();
    assert!(!copy.resume().unwrap(), "a copied profile resumed");
    assert!(matches!(copy.messages(&conv, 10), Err(ClientError::Locked)));

    // Another machine (or user): the same files at the same place, without the keyring
    // entry.
    copy_dir(&dir, &backup);
    if let Some(entry) = keyring_entry(&backup) {
        cachet_client::session_keyring::platform_keyring()
            .forget(&entry)
            .unwrap();
    }
    drop(bob);
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&backup, &dir);
    let stolen = Client::open(&dir, test_options()).unwrap();
    assert!(!stolen.resume().unwrap(), "a copied profile resumed");
    assert!(matches!(
        stolen.messages(&conv, 10),
        Err(ClientError::Locked)
    ));
    assert!(!dir.join("session.json").exists());
    // No file of the copy holds a key that opens the database: only the PIN does.
    let session_text = std::fs::read_to_string(backup.join("session.json")).unwrap();
    assert!(!session_text.contains("\"master_key\""), "{session_text}");
    stolen.unlock(&UnlockSecret::new(PIN)).unwrap();
    assert_eq!(
        stolen.messages(&conv, 10).unwrap()[0].body,
        "the biopsy is benign"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_revokes_the_remembered_unlock_in_the_keyring() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "+33600000471", "Alice").await;
    alice.remember_unlock().unwrap();
    let dir = alice.dir().to_path_buf();
    let saved = tempfile::tempdir().unwrap();
    copy_dir(&dir, saved.path());
    let entry = keyring_entry(&dir).expect("session.json names its keyring entry");
    let keyring = cachet_client::session_keyring::platform_keyring();
    assert!(keyring.load(&entry).is_some());
    // `cachet lock` is another process: it revokes what session.json names.
    Client::open(&dir, test_options()).unwrap().lock().unwrap();
    assert!(
        keyring.load(&entry).is_none(),
        "lock left the key in the keyring"
    );
    assert!(!dir.join("session.json").exists());
    // A session.json saved before the lock opens nothing afterwards.
    std::fs::copy(saved.path().join("session.json"), dir.join("session.json")).unwrap();
    assert!(!Client::open(&dir, test_options())
        .unwrap()
        .resume()
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_of_a_profile_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start().await;
    let (alice, bob) = server.register_alice_and_bob(48).await;
    let (_work, src) = file_in_temp_dir("scan.pdf", &[7u8; 50_000]);
    let to_bob = cachet_client::Conversation::Direct(bob.user_id().to_owned());
    send_text(&alice, &bob, "results attached").await;
    alice
        .send_file(&to_bob, &src, &cachet_client::no_progress)
        .await
        .unwrap();
    let events = bob.receive(0).await.unwrap();
    let id = events
        .iter()
        .find_map(|e| match e {
            cachet_client::Event::Message(m) => m.attachment_id.clone(),
            _ => None,
        })
        .unwrap();
    bob.fetch_attachment(&id, None, false, &cachet_client::no_progress)
        .await
        .unwrap();
    for client in [&alice, &bob] {
        // An unlock from the PIN (lockout.json, lockout.lock) and a remembered one
        // (session.json).
        let again = Client::open(client.dir(), test_options()).unwrap();
        again.unlock(&UnlockSecret::new(PIN)).unwrap();
        again.remember_unlock().unwrap();
    }

    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    fn walk(dir: &Path, seen: &mut Vec<String>, wrong: &mut Vec<String>) {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        if mode != 0o700 {
            wrong.push(format!("{} {mode:o}", dir.display()));
        }
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(&path, seen, wrong);
            } else {
                let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
                seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
                if mode != 0o600 {
                    wrong.push(format!("{} {mode:o}", path.display()));
                }
            }
        }
    }
    walk(alice.dir(), &mut seen, &mut wrong);
    walk(bob.dir(), &mut seen, &mut wrong);
    assert!(wrong.is_empty(), "readable by others: {wrong:?}");
    for expected in [
        "profile.json",
        "cachet.db",
        "session.json",
        "lockout.json",
        "lockout.lock",
        &format!("{id}.sealed"),
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected} not in {seen:?}"
        );
    }
}
