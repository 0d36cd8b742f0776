//! End-to-end password recovery with a data server and a key server on loopback: a lost
//! device recovered (old messages still readable, the new keys an authorised change),
//! password change, share refresh, and the attacker's view of one server.
#![allow(clippy::unwrap_used)]

use cachet_client::recovery::{Checks, RecoveryServers};
use cachet_client::{Client, ClientError, Conversation, Event, UnlockSecret};
use cachet_crypto::SignKeyPair;
use cachet_keyserver::{KeyServerConfig, RunningKeyServer};
use cachet_recovery::oprf::{self, ServerShare};
use cachet_recovery::{HardeningParams, KeyRing, RecoveryError, RecoveryKeys};
use cachet_testkit::{
    add_each_other, dev_code, received_texts, send_text, test_options, TestServer, PIN,
};

const PARAMS: HardeningParams = HardeningParams::INSECURE_FAST;
const PATIENT: &str = "+33600000901";
const PASSWORD: &str = "sunflower1987";

struct Servers {
    data: TestServer,
    key: RunningKeyServer,
    key_dir: tempfile::TempDir,
}

impl Servers {
    /// The data server's recovery row of `user_id`.
    async fn data_row(&self, user_id: &str) -> cachet_keyserver::RecoveryRow {
        self.data
            .store()
            .recovery_account(user_id)
            .await
            .unwrap()
            .unwrap()
    }

    /// The key server's stored row of `user_id`, read straight from its database.
    async fn key_server_row(&self, user_id: &str) -> cachet_keyserver::RecoveryRow {
        let store = cachet_keyserver::KeyStore::open_in(self.key_dir.path())
            .await
            .unwrap();
        let row = cachet_keyserver::RecoveryBackend::account(&store, user_id)
            .await
            .unwrap()
            .unwrap();
        store.close().await;
        row
    }

    async fn start() -> Self {
        let key_dir = tempfile::tempdir().unwrap();
        let key = cachet_keyserver::spawn(KeyServerConfig::for_data_dir(key_dir.path()))
            .await
            .unwrap();
        Self {
            data: TestServer::start().await,
            key,
            key_dir,
        }
    }

    fn recovery(&self) -> RecoveryServers {
        RecoveryServers::new(&self.data.url(), &self.key.url(), PARAMS).unwrap()
    }

    /// Passes both servers' identity checks (codes read from both development files).
    async fn checks(&self, identifier: &str) -> Checks {
        let started = self.recovery().start(identifier).await.unwrap();
        started.with_codes(
            &dev_code(self.data.data_dir(), identifier).unwrap(),
            &dev_code(self.key_dir.path(), identifier).unwrap(),
        )
    }

    async fn recover(&self, profile: &str, password: &str) -> Result<Client, ClientError> {
        let checks = self.checks(PATIENT).await;
        Client::recover(
            &self.data.profile_dir(profile),
            &self.recovery(),
            PATIENT,
            &checks,
            password,
            "Patient",
            &UnlockSecret::new(PIN),
            test_options(),
        )
        .await
        .map(|r| r.client)
    }

    /// Registers a new operator `name` at both servers and runs a share refresh as them.
    /// Returns how many accounts were refreshed.
    async fn refresh_as(&self, name: &str) -> usize {
        let key = SignKeyPair::generate();
        let public = key.public();
        cachet_server::add_operator(self.data.data_dir(), None, name, public.as_bytes())
            .await
            .unwrap();
        assert!(cachet_keyserver::add_operator(
            &cachet_keyserver::KeyServerConfig::for_data_dir(self.key_dir.path()),
            name,
            public.as_bytes()
        )
        .await
        .unwrap());
        cachet_keyserver::refresh_shares(&self.key.url(), &self.data.url(), name, &key)
            .await
            .unwrap()
    }

    /// The patient registered and enrolled in recovery with `PASSWORD`: where most
    /// recovery tests start.
    async fn enrolled_patient(&self) -> Client {
        let patient = self.data.register("patient", PATIENT, "Patient").await;
        self.enable(&patient, PASSWORD).await;
        patient
    }

    async fn enable(&self, client: &Client, password: &str) {
        let checks = self.checks(PATIENT).await;
        client
            .enable_recovery(&self.key.url(), &checks, password, PARAMS)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_device_is_recovered_with_both_servers() {
    let s = Servers::start().await;
    let doctor = s.data.register("doctor", "+33600000900", "Dr Grey").await;
    let patient = s.data.register("patient", PATIENT, "Patient").await;
    add_each_other(&doctor, "doctor", &patient, "patient").await;
    s.enable(&patient, PASSWORD).await;
    assert!(patient.recovery_enabled().unwrap());
    // History kept on the old phone, backed up encrypted at the data server.
    send_text(&doctor, &patient, "your history").await;
    send_text(&patient, &doctor, "my question").await;
    assert_eq!(received_texts(&patient).await, ["your history"]);
    assert_eq!(patient.backup_messages().await.unwrap(), 2);
    let sealed = s
        .data
        .store()
        .get_backup(patient.user_id())
        .await
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("your history"));
    doctor.receive(0).await.unwrap();
    send_text(&doctor, &patient, "sent to your old keys").await;
    let user_id = patient.user_id().to_owned();
    drop(patient); // the phone is lost, and its profile with it

    let recovered = s.recover("patient-2", PASSWORD).await.unwrap();
    assert_eq!(recovered.user_id(), user_id);
    assert_eq!(recovered.key_version(), 2);
    assert_eq!(received_texts(&recovered).await, ["sent to your old keys"]);
    // The history comes back from the backup, opened with the recovered backup key.
    assert_eq!(recovered.restore_messages().await.unwrap(), 2);
    let conversation = Conversation::Direct(doctor.user_id().to_owned());
    let bodies: Vec<String> = recovered
        .messages(&conversation, 10)
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert!(bodies.contains(&"your history".to_owned()), "{bodies:?}");
    assert!(bodies.contains(&"my question".to_owned()), "{bodies:?}");
    assert!(
        bodies.contains(&"sent to your old keys".to_owned()),
        "{bodies:?}"
    );
    // The doctor sees a key change signed by the previous Sign Key.
    let events = doctor.receive(0).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::KeyChanged(r) if r.new_version == 2)),
        "{events:?}"
    );

    // The new generation was sealed into the ring at both servers: a second loss
    // recovers both generations.
    let again = s.recover("patient-3", PASSWORD).await.unwrap();
    assert_eq!(again.key_version(), 3);
    assert_eq!(again.export_key_history().unwrap().installations.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_and_a_password_change_replaces_the_old_one() {
    let s = Servers::start().await;
    let patient = s.enrolled_patient().await;
    let err = s.recover("p-wrong", "sunflower1988").await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Recovery(RecoveryError::WrongPasswordOrDamaged)
        ),
        "{err:?}"
    );
    // The failure counts at the data server (and at the key server).
    let row = s.data_row(patient.user_id()).await;
    assert_eq!(row.failures, 1);

    s.enable(&patient, "new password 2027").await;
    let err = s.recover("p-old", PASSWORD).await.unwrap_err();
    assert!(matches!(err, ClientError::Recovery(_)), "{err:?}");
    s.recover("p-new", "new password 2027").await.unwrap();
    // The proven success reset the count.
    let row = s.data_row(patient.user_id()).await;
    assert_eq!(row.failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_survives_a_share_refresh_and_old_shares_become_useless() {
    let mut s = Servers::start().await;
    let patient = s.enrolled_patient().await;
    let before = s.data_row(patient.user_id()).await;

    assert_eq!(s.refresh_as("olga").await, 1);
    let after = s.data_row(patient.user_id()).await;
    assert_ne!(before.share, after.share);
    assert_ne!(before.data_server_share, after.data_server_share);

    // The user does nothing; recovery still works.
    s.recover("patient-2", PASSWORD).await.unwrap();

    // A data-server share stolen before the refresh does not combine with the key
    // server's current share.
    let key_row = s.key_server_row(patient.user_id()).await;
    let stolen = ServerShare::from_bytes(&before.share).unwrap();
    let current_k2 = ServerShare::from_bytes(&key_row.share).unwrap();
    let out = oprf::evaluate_with_both_shares(
        patient.user_id(),
        PASSWORD.as_bytes(),
        &stolen,
        &current_k2,
    );
    let keys = RecoveryKeys::derive(&out, patient.user_id(), PARAMS).unwrap();
    assert!(KeyRing::open(&key_row.envelope, &keys.wrap_key, patient.user_id()).is_err());
    s.data.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_data_server_can_neither_open_the_ring_nor_guess_offline() {
    let s = Servers::start().await;
    let patient = s.enrolled_patient().await;
    let uid = patient.user_id().to_owned();
    // Everything the data server holds: its share and the sealed key ring.
    let row = s.data_row(&uid).await;
    let k1 = ServerShare::from_bytes(&row.share).unwrap();
    // Offline, it must stand in for the key server's share: no guess opens the ring,
    // not even the right password.
    for guess in ["123456", "password", PASSWORD] {
        let out =
            oprf::evaluate_with_both_shares(&uid, guess.as_bytes(), &k1, &ServerShare::generate());
        let keys = RecoveryKeys::derive(&out, &uid, PARAMS).unwrap();
        assert!(KeyRing::open(&row.envelope, &keys.wrap_key, &uid).is_err());
    }
    // Online, each guess costs a key server evaluation, and the key server stops it
    // (3 free guesses, then delays), even with its code check passed every time.
    let mut refused = None;
    for (i, guess) in ["123456", "password", "azerty", "doctolib", "sunflower"]
        .iter()
        .enumerate()
    {
        // The corrupt data server does not count its own evaluations.
        let store = s.data.store();
        let row = store.recovery_account(&uid).await.unwrap().unwrap();
        let mut reset = row.clone();
        reset.failures = 0;
        reset.version += 1;
        assert!(store.recovery_replace(&reset, row.version).await.unwrap());
        let checks = s.checks(PATIENT).await;
        let recovery = s.recovery();
        match Client::recover(
            &s.data.profile_dir(&format!("attacker-{i}")),
            &recovery,
            PATIENT,
            &checks,
            guess,
            "x",
            &UnlockSecret::new(PIN),
            test_options(),
        )
        .await
        {
            Err(ClientError::Server { reason, .. }) => {
                refused = Some((i, reason));
                break;
            }
            Err(_) => {}
            Ok(_) => panic!("a wrong guess recovered the ring"),
        }
    }
    let (i, reason) = refused.expect("online guessing was stopped");
    assert_eq!(i, 3, "three free guesses");
    assert_eq!(reason, "retry_later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_swaps_its_share_is_detected() {
    let s = Servers::start().await;
    let patient = s.enrolled_patient().await;
    // The data server quietly replaces its share (to steer the output to a key it knows).
    let store = s.data.store();
    let row = s.data_row(patient.user_id()).await;
    let mut evil = row.clone();
    evil.share = ServerShare::generate().expose_secret().to_vec();
    evil.version += 1;
    assert!(store.recovery_replace(&evil, row.version).await.unwrap());
    let err = s.recover("patient-2", PASSWORD).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Recovery(RecoveryError::InconsistentPublicShares)
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_master_key_the_data_server_keeps_its_share_and_ring_copy_sealed() {
    use cachet_server::store::Store as _;
    let s = Servers::start().await;
    let op = s.data.add_operator("holder").await;
    op.on(&s.data).init(7, 5).await.unwrap();
    let patient = s.enrolled_patient().await;
    let user_id = patient.user_id().to_owned();

    // The rows as a thief of the database reads them: sealed, bound to the account.
    let raw = cachet_server::store::SqliteStore::open_in(s.data.data_dir())
        .await
        .unwrap();
    let row = raw.recovery_account(&user_id).await.unwrap().unwrap();
    assert!(row.share.starts_with(b"sealed:v1:"));
    assert!(row.envelope.starts_with(b"sealed:v1:"));
    raw.close().await;

    // Through the server they open: a lost device is still recovered.
    let recovered = s.recover("patient-new", PASSWORD).await.unwrap();
    assert_eq!(recovered.user_id(), user_id);
}

/// Reads the key server's database files (the database, its WAL) as one byte string.
fn dump(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(cachet_keyserver::store::DATABASE_FILE) {
            all.extend(std::fs::read(path).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_server_keeps_its_secrets_under_its_own_master_key() {
    use cachet_client::{OperatorClient, Split};

    let mut s = Servers::start().await;
    // The key server's own holders, registered in its own database.
    let kim_seed = [42u8; 32];
    let kim = SignKeyPair::from_seed(kim_seed);
    assert!(cachet_keyserver::add_operator(
        &cachet_keyserver::KeyServerConfig::for_data_dir(s.key_dir.path()),
        "kim",
        kim.public().as_bytes()
    )
    .await
    .unwrap());
    let op = |url: &str| {
        OperatorClient::new(url, "kim", SignKeyPair::from_seed(kim_seed), None).unwrap()
    };
    // Every share sealed to kim's key (one holder here, for brevity).
    let sealed = op(&s.key.url())
        .split(Split::Init, 7, 5, &vec!["kim".to_owned(); 7])
        .await
        .unwrap();
    assert!(sealed.tokens.is_empty());
    let shares: Vec<String> = sealed
        .sealed_tokens
        .iter()
        .map(|t| {
            cachet_vault::holder::open_share(t, &kim)
                .unwrap()
                .expose_secret()
                .to_owned()
        })
        .collect();
    assert_eq!(shares.len(), 7);

    let patient = s.enrolled_patient().await;
    let data_row = s.data_row(patient.user_id()).await;

    // At rest: the key server's share, the key ring and the identifier hash are not in
    // the clear; the raw row's share is a sealed box, not a scalar.
    let row = s.key_server_row(patient.user_id()).await;
    assert_ne!(row.share.len(), 32, "the share is stored sealed");
    assert!(!contains(&row.envelope, &data_row.envelope));
    let files = dump(s.key_dir.path());
    assert!(
        !contains(&files, &data_row.envelope),
        "key ring in the clear"
    );
    assert!(
        !contains(&files, &cachet_proto::discovery_hash(PATIENT)),
        "identifier hash in the clear"
    );

    // A restart comes up sealed: recovery is refused, with the reason.
    let key_dir = s.key_dir.path().to_path_buf();
    let old = std::mem::replace(
        &mut s.key,
        cachet_keyserver::spawn(KeyServerConfig::for_data_dir(&key_dir))
            .await
            .unwrap(),
    );
    // (The old one still holds the port it had; stop it.)
    old.shutdown().await.unwrap();
    let status = op(&s.key.url()).vault_status().await.unwrap();
    assert!(status.initialised && status.sealed);
    match s.recovery().start(PATIENT).await {
        Err(e) => assert!(e.to_string().contains("sealed"), "{e}"),
        Ok(_) => panic!("a sealed key server answered a recovery"),
    }

    // Four holders are not enough; a corrupted share is named; the fifth opens it.
    for token in &shares[..4] {
        let status = op(&s.key.url()).unseal(token).await.unwrap();
        assert!(status.sealed);
    }
    let mut corrupt = shares[5].clone();
    let at = corrupt.len() - 3;
    let flipped = if &corrupt[at..=at] == "A" { "B" } else { "A" };
    corrupt.replace_range(at..=at, flipped);
    let err = op(&s.key.url()).unseal(&corrupt).await.unwrap_err();
    assert!(err.to_string().contains("share 6"), "{err}");
    // (A sealed share is opened by the client with the holder's key.)
    let status = op(&s.key.url())
        .unseal(&sealed.sealed_tokens[4])
        .await
        .unwrap();
    assert!(!status.sealed);

    // Recovery works again, and so does a share refresh driven through the running key
    // server (the only place its share is ever opened).
    s.recover("patient-2", PASSWORD).await.unwrap();
    assert_eq!(s.refresh_as("olga").await, 1);
    s.recover("patient-3", PASSWORD).await.unwrap();

    // Every vault action is in the key server's own hash-chained audit log.
    let report = op(&s.key.url()).audit().await.unwrap();
    let actions: Vec<&str> = report.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["vault_init", "vault_unseal"]);
    assert!(report.entries.iter().all(|e| e.operator_id == "op:kim"));
    s.data.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_during_a_key_server_outage_spend_no_data_server_codes() {
    let s = Servers::start().await;
    let patient = s.enrolled_patient().await;
    let Servers { data, key, key_dir } = s;
    let addr = key.addr;
    key.shutdown().await.unwrap();

    // The user tries again and again while the key server is down: each attempt names
    // the key server, and none costs a data-server code.
    let codes_before = std::fs::read_to_string(data.data_dir().join("dev-codes.txt")).unwrap();
    let servers = RecoveryServers::new(&data.url(), &format!("http://{addr}"), PARAMS).unwrap();
    for _ in 0..8 {
        match servers.start(PATIENT).await {
            Err(ClientError::KeyServerUnreachable { url, .. }) => {
                assert!(url.contains(&addr.port().to_string()), "{url}")
            }
            other => panic!("expected the key server to be unreachable: {other:?}"),
        }
    }
    let codes_after = std::fs::read_to_string(data.data_dir().join("dev-codes.txt")).unwrap();
    assert_eq!(codes_before, codes_after, "data-server codes were sent");

    // The key server comes back (same address): the restore goes through.
    let key = cachet_keyserver::spawn(KeyServerConfig {
        listen: Some(addr),
        ..KeyServerConfig::for_data_dir(key_dir.path())
    })
    .await
    .unwrap();
    let s = Servers { data, key, key_dir };
    let restored = s.recover("patient-restored", PASSWORD).await.unwrap();
    assert_eq!(restored.user_id(), patient.user_id());
}
