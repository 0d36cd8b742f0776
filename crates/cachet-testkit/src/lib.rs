//! Test support for cachet, never published: a real data server on loopback with its
//! SQLite database in a temporary directory, and clients registered against it through
//! the real registration flow (one-time codes read from the development notifier's file).
//!
//! The end-to-end suite in `tests/` uses it; so can any crate's tests.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cachet_client::{
    Argon2Params, Argon2idProtector, Case, Client, ClientError, ClientOptions, Contact, Event,
    Group, KeyChangeReport, KeyHistory, MessageKind, NewProfile, UnlockSecret,
};
use cachet_server::{RunningServer, ServerConfig};
use tempfile::TempDir;

/// The PIN every test profile is created with.
pub const PIN: &str = "58203";

/// Client options for tests: cheap Argon2id (a real profile uses the recommended cost).
pub fn test_options() -> ClientOptions {
    ClientOptions {
        protector: Arc::new(Argon2idProtector::new(Argon2Params::INSECURE_FOR_TESTS)),
        ..ClientOptions::default()
    }
}

/// The bodies of the text messages among received events, in order.
pub fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) if m.kind == MessageKind::Text => Some(m.body.clone()),
            _ => None,
        })
        .collect()
}

/// The first key change among received events; panics when there is none.
pub fn key_change(events: &[Event]) -> KeyChangeReport {
    events
        .iter()
        .find_map(|e| match e {
            Event::KeyChanged(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a key change among the events")
}

/// Sends the text `body` from `from` to `to`; panics if the send fails.
pub async fn send_text(from: &Client, to: &Client, body: &str) {
    from.send_text(to.user_id(), body).await.expect("text sent");
}

/// Has `client` create a case titled `title`, without fields, with `member` as its one
/// participant: the case the trust tests try to share.
pub async fn case_with(client: &Client, title: &str, member: &Client) -> Result<Case, ClientError> {
    let participants = [member.user_id().to_owned()];
    client
        .create_case(title, &BTreeMap::new(), &participants)
        .await
}

/// Receives what is waiting for `client` and returns the bodies of the texts among it.
pub async fn received_texts(client: &Client) -> Vec<String> {
    texts(&client.receive(0).await.expect("receive"))
}

/// Has `client` add `contact` under `alias`; panics if it fails.
pub async fn add_contact(client: &Client, contact: &Client, alias: &str) -> Contact {
    client
        .add_contact(contact.user_id(), Some(alias))
        .await
        .expect("add contact")
}

/// Has `owner` create the group `name` with `members`; panics if it fails.
pub async fn create_group(owner: &Client, name: &str, members: &[&Client]) -> Group {
    let ids: Vec<String> = members.iter().map(|m| m.user_id().to_owned()).collect();
    owner.create_group(name, &ids).await.expect("group created")
}

/// Makes `a` and `b` contacts of each other: `b` knows `a` as `a_alias`, `a` knows `b` as
/// `b_alias`.
pub async fn add_each_other(a: &Client, a_alias: &str, b: &Client, b_alias: &str) {
    a.add_contact(b.user_id(), Some(b_alias))
        .await
        .expect("add contact");
    b.add_contact(a.user_id(), Some(a_alias))
        .await
        .expect("add contact");
}

/// Writes `data` as `name` in a fresh temporary directory (removed when the returned
/// guard drops): the file a test sends or encrypts.
pub fn file_in_temp_dir(name: &str, data: &[u8]) -> (TempDir, PathBuf) {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, data).expect("file written");
    (dir, path)
}

/// Reads the newest one-time code the development notifier wrote for `identifier` into
/// `<data_dir>/dev-codes.txt` (lines `identifier<TAB>code`).
pub fn dev_code(data_dir: &Path, identifier: &str) -> Option<String> {
    let wanted = cachet_proto::normalise_identifier(identifier);
    let text = std::fs::read_to_string(data_dir.join("dev-codes.txt")).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| l.split_once('\t'))
        .find(|(id, _)| *id == wanted)
        .map(|(_, code)| code.trim().to_owned())
}

/// An operator's name and key, to talk to a [`TestServer`] wherever it listens.
#[derive(Clone)]
pub struct TestOperator {
    /// Operator name (`op:NAME`).
    pub name: String,
    seed: [u8; 32],
}

impl std::fmt::Debug for TestOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestOperator(op:{})", self.name)
    }
}

impl TestOperator {
    /// The operator's key pair.
    pub fn key(&self) -> cachet_crypto::SignKeyPair {
        cachet_crypto::SignKeyPair::from_seed(self.seed)
    }

    /// The operator's public key, as clients pin it.
    pub fn public_key(&self) -> cachet_crypto::SignPublicKey {
        self.key().public()
    }

    /// A client signing as this operator, for the server's current address.
    pub fn on(&self, server: &TestServer) -> cachet_client::OperatorClient {
        cachet_client::OperatorClient::new(
            &server.url(),
            &self.name,
            cachet_crypto::SignKeyPair::from_seed(self.seed),
            None,
        )
        .expect("operator client")
    }
}

/// A data server on 127.0.0.1 (random port) with its data in a temporary directory, and
/// a directory for client profiles.
pub struct TestServer {
    server: Option<RunningServer>,
    /// Where the server listened before it was stopped (a restart binds it again).
    last_addr: Option<std::net::SocketAddr>,
    data: TempDir,
    profiles: TempDir,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a server.
    pub async fn start() -> Self {
        let data = tempfile::tempdir().expect("temporary directory");
        let profiles = tempfile::tempdir().expect("temporary directory");
        let config = ServerConfig {
            listen: Some(([127, 0, 0, 1], 0).into()),
            ..ServerConfig::for_data_dir(data.path())
        };
        let server = cachet_server::spawn(config).await.expect("server starts");
        Self {
            server: Some(server),
            last_addr: None,
            data,
            profiles,
        }
    }

    /// The server's base URL.
    pub fn url(&self) -> String {
        self.server
            .as_ref()
            .map(|s| s.base_url())
            .unwrap_or_default()
    }

    /// The server's store, to inspect (or tamper with) what it holds.
    pub fn store(&self) -> Arc<dyn cachet_server::store::Store> {
        self.server.as_ref().expect("server running").store()
    }

    /// The server's data directory (database, blobs, dev codes).
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// A fresh profile directory named `name`.
    pub fn profile_dir(&self, name: &str) -> PathBuf {
        self.profiles.path().join(name)
    }

    /// Stops the server (what a client sees as "server down").
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            self.last_addr = Some(s.local_addr());
            s.shutdown().await.expect("server shuts down");
        }
    }

    /// Stops the server and starts it again on the same data directory and address.
    pub async fn restart(&mut self) {
        let addr = self
            .server
            .as_ref()
            .map(|s| s.local_addr())
            .or(self.last_addr)
            .unwrap_or(([127, 0, 0, 1], 0).into());
        self.stop().await;
        let config = ServerConfig {
            listen: Some(addr),
            ..ServerConfig::for_data_dir(self.data.path())
        };
        self.server = Some(cachet_server::spawn(config).await.expect("server restarts"));
    }

    /// Puts `envelope` for `recipient_id` straight into the server's store, as sent by
    /// `sender_id` under `message_id`: how a test plays a server that replays or forges.
    pub async fn inject_envelope(
        &self,
        (sender_id, message_id): (&str, &str),
        digest: Vec<u8>,
        recipient_id: &str,
        envelope: Vec<u8>,
    ) {
        self.store()
            .store_message(&cachet_server::store::NewMessage {
                sender_id: sender_id.to_owned(),
                message_id: message_id.to_owned(),
                digest,
                created_at: 0,
                deliveries: vec![cachet_server::store::Delivery {
                    recipient_id: recipient_id.to_owned(),
                    envelope,
                }],
                case_entry: None,
                contacts: vec![],
            })
            .await
            .expect("envelope stored");
    }

    /// Registers an operator on this server (as the server host's console would).
    pub async fn add_operator(&self, name: &str) -> TestOperator {
        let key = cachet_crypto::SignKeyPair::generate();
        cachet_server::add_operator(self.data_dir(), None, name, key.public().as_bytes())
            .await
            .expect("operator added");
        TestOperator {
            name: name.to_owned(),
            seed: key.expose_seed(),
        }
    }

    /// Registers `identifier` in the profile directory `profile`, with the test PIN.
    pub async fn register(&self, profile: &str, identifier: &str, name: &str) -> Client {
        self.register_with(profile, identifier, name, None, test_options())
            .await
            .expect("registration succeeds")
    }

    /// Registers Alice and Bob (profiles `alice` and `bob`, display names `Alice` and `Bob`)
    /// as `+33 6 00 00 0<series>1` and `…2`: the two users of most end-to-end tests, with a
    /// series of identifiers of their own per test.
    pub async fn register_alice_and_bob(&self, series: u32) -> (Client, Client) {
        self.register_two(series, ("alice", "Alice"), ("bob", "Bob"))
            .await
    }

    /// Registers Dr Grey (profile `doctor`) and a patient (profile `patient`) as
    /// `+33 6 00 00 0<series>1` and `…2`: the cast of the key-change tests.
    pub async fn register_doctor_and_patient(&self, series: u32) -> (Client, Client) {
        self.register_two(series, ("doctor", "Dr Grey"), ("patient", "Patient"))
            .await
    }

    /// Registers two users, each given as (profile, display name), as
    /// `+33 6 00 00 0<series>1` and `…2`.
    pub async fn register_two(
        &self,
        series: u32,
        (first, first_name): (&str, &str),
        (second, second_name): (&str, &str),
    ) -> (Client, Client) {
        let (id_a, id_b) = (
            format!("+33600000{series:02}1"),
            format!("+33600000{series:02}2"),
        );
        let a = self.register(first, &id_a, first_name).await;
        (a, self.register(second, &id_b, second_name).await)
    }

    /// Registers Alice (profile `alice`) as `+33 6 00 00 0<series>1` and closes her client,
    /// returning her profile directory: for tests that reopen it as a later process would.
    pub async fn alice_profile_dir(&self, series: u32) -> PathBuf {
        let identifier = format!("+33600000{series:02}1");
        let alice = self.register("alice", &identifier, "Alice").await;
        alice.dir().to_path_buf()
    }

    /// Registers a new installation, optionally carrying the keys of earlier ones.
    pub async fn register_with(
        &self,
        profile: &str,
        identifier: &str,
        name: &str,
        previous: Option<KeyHistory>,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let pending = Client::start_registration(&self.url(), identifier, options).await?;
        let mut code = None;
        for _ in 0..50 {
            code = dev_code(self.data_dir(), identifier);
            if code.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let code = code.expect("the development notifier wrote a code");
        pending
            .finish(NewProfile {
                dir: &self.profile_dir(profile),
                code: &code,
                display_name: name,
                secret: &UnlockSecret::new(PIN),
                previous,
            })
            .await
    }
}
