//! Test harness: a real server on loopback, real keys, signed requests over reqwest.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cachet_crypto::{BoxKeyPair, SignKeyPair};
use cachet_proto::auth::{sign_request, Caller, RequestTarget, SIG_HEADER, UID_HEADER};
use cachet_proto::v1::{
    ClientType, KeyChange, RegisterFinish, RegisterFinishResponse, RegisterStart,
    RegisterStartResponse,
};
use cachet_proto::Message;
use cachet_server::{RunningServer, ServerConfig};
use reqwest::Method;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// A fresh identifier per call, so tests never collide.
pub fn phone() -> String {
    let n = u64::from_le_bytes(cachet_crypto::random_bytes::<8>()) % 10_000_000_000;
    format!("+33{n:010}")
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

impl Resp {
    pub fn decode<T: Message + Default>(&self) -> T {
        assert!(
            (200..300).contains(&self.status),
            "expected success, got {} {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        T::decode(self.body.as_ref()).expect("response decodes")
    }

    /// The `reason` of a JSON error body (and checks the shape).
    pub fn reason(&self) -> String {
        assert_eq!(
            self.content_type, "application/json",
            "error bodies are JSON (status {}, body {:?})",
            self.status, self.body
        );
        let v: serde_json::Value = serde_json::from_slice(&self.body).expect("json error");
        assert!(v["message"].is_string(), "message present: {v}");
        v["reason"].as_str().expect("reason").to_owned()
    }

    /// Asserts an error status and reason.
    #[track_caller]
    pub fn assert_error(&self, status: u16, reason: &str) {
        assert_eq!(
            (self.status, self.reason().as_str()),
            (status, reason),
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
    }
}

/// Someone who signs requests: a user or an operator.
pub trait Signer: Send + Sync {
    fn caller(&self) -> Caller;
    fn sign_key(&self) -> &SignKeyPair;
}

/// A registered user with real keys.
#[derive(Clone)]
pub struct TestUser {
    pub user_id: String,
    pub identifier: String,
    pub key_version: u32,
    pub sign: SignKeyPair,
    pub boxk: BoxKeyPair,
    pub client_type: ClientType,
}

impl Signer for TestUser {
    fn caller(&self) -> Caller {
        Caller {
            user_id: self.user_id.clone(),
            build_number: 1,
            client_type: self.client_type,
        }
    }
    fn sign_key(&self) -> &SignKeyPair {
        &self.sign
    }
}

impl TestUser {
    /// The same user, signing as a web client.
    pub fn as_web(&self) -> TestUser {
        TestUser {
            client_type: ClientType::Web,
            ..self.clone()
        }
    }
}

/// An operator with their own key.
pub struct TestOperator {
    pub name: String,
    pub sign: SignKeyPair,
}

impl Signer for TestOperator {
    fn caller(&self) -> Caller {
        Caller {
            user_id: format!("op:{}", self.name),
            build_number: 1,
            client_type: ClientType::Operator,
        }
    }
    fn sign_key(&self) -> &SignKeyPair {
        &self.sign
    }
}

/// An HTTP client bound to one server address.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Client { http, base }
    }

    /// Sends a request with exactly these headers and body.
    pub async fn try_raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> reqwest::Result<Resp> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", cachet_server::PROTOBUF)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp.bytes().await?;
        Ok(Resp {
            status,
            content_type,
            body,
        })
    }

    /// Like [`Client::try_raw`], for requests that must reach the server.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Resp {
        self.try_raw(method, path, headers, body)
            .await
            .expect("request sent")
    }

    /// Signed headers for a request, at time `now`.
    pub fn headers_at(
        who: &dyn Signer,
        method: &Method,
        path: &str,
        body: &[u8],
        now: i64,
    ) -> Vec<(&'static str, String)> {
        let h = sign_request(
            &who.caller(),
            who.sign_key(),
            &RequestTarget {
                method: method.as_str(),
                path,
                body,
            },
            now,
        );
        vec![(UID_HEADER, h.uid), (SIG_HEADER, h.sig)]
    }

    /// A signed request.
    pub async fn call(&self, who: &dyn Signer, method: Method, path: &str, body: Vec<u8>) -> Resp {
        let headers = Self::headers_at(who, &method, path, &body, now_ms());
        self.raw(method, path, &headers, body).await
    }

    pub async fn post(&self, who: &dyn Signer, path: &str, msg: &impl Message) -> Resp {
        self.call(who, Method::POST, path, msg.encode_to_vec())
            .await
    }

    pub async fn get(&self, who: &dyn Signer, path: &str) -> Resp {
        self.call(who, Method::GET, path, Vec::new()).await
    }

    pub async fn post_unsigned(&self, path: &str, msg: &impl Message) -> Resp {
        self.post_bytes_unsigned(path, msg.encode_to_vec()).await
    }

    /// An unsigned POST of any bytes, for bodies that are not a valid message.
    pub async fn post_bytes_unsigned(&self, path: &str, body: Vec<u8>) -> Resp {
        self.raw(Method::POST, path, &[], body).await
    }

    /// An operator (or anyone trying) verifies the profile of `user_id` with `note`.
    pub async fn verify_user(&self, op: &dyn Signer, user_id: &str, note: &str) -> Resp {
        let path = format!("/api/v1/operator/users/{user_id}/verify");
        let body = cachet_proto::v1::VerifyProfile { note: note.into() };
        self.post(op, &path, &body).await
    }

    /// An operator (or anyone trying) revokes the keys of `user_id` for `reason`.
    pub async fn revoke_user(&self, op: &dyn Signer, user_id: &str, reason: &str) -> Resp {
        let path = format!("/api/v1/operator/users/{user_id}/revoke");
        let body = cachet_proto::v1::RevokeKeys {
            reason: reason.into(),
        };
        self.post(op, &path, &body).await
    }
}

/// The last code the development notifier wrote for `identifier`.
pub fn code_for(data_dir: &Path, identifier: &str) -> String {
    let normalised = cachet_proto::normalise_identifier(identifier);
    let text = std::fs::read_to_string(data_dir.join("dev-codes.txt")).expect("dev codes");
    text.lines()
        .rev()
        .find_map(|l| {
            let (id, code) = l.split_once('\t')?;
            (id == normalised).then(|| code.to_owned())
        })
        .expect("a code for this identifier")
}

/// The proof of possession of a new Sign Key, bound to the challenge.
pub fn self_signature(challenge_id: &str, boxk: &BoxKeyPair, sign: &SignKeyPair) -> Vec<u8> {
    let change = KeyChange {
        user_id: challenge_id.to_owned(),
        key_version: 0,
        box_key: boxk.public.as_bytes().to_vec(),
        sign_key: sign.public().as_bytes().to_vec(),
        previous_sign_key: Vec::new(),
    };
    cachet_crypto::sign::sign_detached(&cachet_proto::key_change_bytes(&change), sign).to_vec()
}

/// The previous key's authorisation of a new installation.
pub fn previous_signature(old: &TestUser, boxk: &BoxKeyPair, sign: &SignKeyPair) -> Vec<u8> {
    let change = KeyChange {
        user_id: old.user_id.clone(),
        key_version: old.key_version + 1,
        box_key: boxk.public.as_bytes().to_vec(),
        sign_key: sign.public().as_bytes().to_vec(),
        previous_sign_key: old.sign.public().as_bytes().to_vec(),
    };
    cachet_crypto::sign::sign_detached(&cachet_proto::key_change_bytes(&change), &old.sign).to_vec()
}

/// A server on a temporary data directory.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub dir: tempfile::TempDir,
    pub client: Client,
}

impl std::ops::Deref for TestServer {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server with one new user per name registered, in order: how most tests begin.
    pub async fn with_users<const N: usize>(names: [&str; N]) -> (Self, [TestUser; N]) {
        let s = Self::start().await;
        let users = s.register_all(names).await;
        (s, users)
    }

    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = ServerConfig::for_data_dir(dir.path());
        config.listen = Some("127.0.0.1:0".parse().expect("addr"));
        // These tests speak the raw protocol and write trust blocks by hand, if at all.
        config.allow_keys_without_block = Some(true);
        adjust(&mut config);
        let server = cachet_server::spawn(config).await.expect("server starts");
        let client = Client::new(server.base_url());
        TestServer {
            server: Some(server),
            dir,
            client,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("running")
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
    }

    /// Starts a registration and returns (challenge id, code).
    pub async fn start_registration(&self, identifier: &str) -> (String, String) {
        let r = self
            .post_unsigned(
                "/api/v1/register/start",
                &RegisterStart {
                    identifier: identifier.to_owned(),
                },
            )
            .await;
        let started: RegisterStartResponse = r.decode();
        (started.challenge_id, code_for(&self.data_dir(), identifier))
    }

    /// Registers a new user with fresh keys.
    pub async fn register(&self, name: &str) -> TestUser {
        self.register_as(&phone(), name).await
    }

    /// Registers one new user per name, in order: the cast most tests begin with.
    pub async fn register_all<const N: usize>(&self, names: [&str; N]) -> [TestUser; N] {
        let mut users = Vec::with_capacity(N);
        for name in names {
            users.push(self.register(name).await);
        }
        match users.try_into() {
            Ok(users) => users,
            Err(_) => unreachable!("one user per name"),
        }
    }

    pub async fn register_as(&self, identifier: &str, name: &str) -> TestUser {
        let boxk = BoxKeyPair::generate();
        let sign = SignKeyPair::generate();
        let (challenge_id, code) = self.start_registration(identifier).await;
        let finish = RegisterFinish {
            challenge_id: challenge_id.clone(),
            code,
            box_key: boxk.public.as_bytes().to_vec(),
            sign_key: sign.public().as_bytes().to_vec(),
            display_name: name.to_owned(),
            self_signature: self_signature(&challenge_id, &boxk, &sign),
            previous_key_signature: Vec::new(),
        };
        let done: RegisterFinishResponse = self
            .post_unsigned("/api/v1/register/finish", &finish)
            .await
            .decode();
        TestUser {
            user_id: done.user_id,
            identifier: identifier.to_owned(),
            key_version: done.key_version,
            sign,
            boxk,
            client_type: ClientType::Cli,
        }
    }

    /// Registers a new installation of `old` (new keys), authorised by the old Sign Key
    /// when `authorised`.
    pub async fn reinstall(&self, old: &TestUser, authorised: bool) -> TestUser {
        let boxk = BoxKeyPair::generate();
        let sign = SignKeyPair::generate();
        let (challenge_id, code) = self.start_registration(&old.identifier).await;
        let finish = RegisterFinish {
            challenge_id: challenge_id.clone(),
            code,
            box_key: boxk.public.as_bytes().to_vec(),
            sign_key: sign.public().as_bytes().to_vec(),
            display_name: String::new(),
            self_signature: self_signature(&challenge_id, &boxk, &sign),
            previous_key_signature: if authorised {
                previous_signature(old, &boxk, &sign)
            } else {
                Vec::new()
            },
        };
        let done: RegisterFinishResponse = self
            .post_unsigned("/api/v1/register/finish", &finish)
            .await
            .decode();
        assert_eq!(done.user_id, old.user_id);
        TestUser {
            user_id: done.user_id,
            identifier: old.identifier.clone(),
            key_version: done.key_version,
            sign,
            boxk,
            client_type: old.client_type,
        }
    }

    /// Registers an operator (through the library call the command line uses).
    pub async fn operator(&self, name: &str) -> TestOperator {
        let sign = SignKeyPair::generate();
        cachet_server::add_operator(&self.data_dir(), None, name, sign.public().as_bytes())
            .await
            .expect("operator added");
        TestOperator {
            name: name.to_owned(),
            sign,
        }
    }
}

/// A read-write connection to a server's database, for tests that inspect or tamper.
pub async fn open_db(data_dir: &Path) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let url = format!(
        "sqlite://{}",
        data_dir.join("cachet.sqlite3").to_string_lossy()
    );
    sqlx::SqliteConnection::connect(&url).await.expect("db")
}

/// A text `Payload` boxed from `from` to `to` (whitepaper 2.1.4).
pub fn seal_text(
    from: &TestUser,
    to: &TestUser,
    message_id: &str,
    timestamp: i64,
    text: &str,
) -> cachet_proto::v1::RecipientCiphertext {
    use cachet_proto::v1::{payload, Payload, RecipientCiphertext, Text};
    let payload = Payload {
        message_id: message_id.to_owned(),
        sender_id: from.user_id.clone(),
        timestamp,
        body: Some(payload::Body::Text(Text {
            body: text.to_owned(),
        })),
        ..Default::default()
    };
    let (nonce, ciphertext) =
        cachet_crypto::boxes::seal(&payload.encode_to_vec(), &to.boxk.public, &from.boxk.secret)
            .expect("seal");
    RecipientCiphertext {
        recipient_id: to.user_id.clone(),
        nonce: nonce.as_bytes().to_vec(),
        ciphertext,
        sender_box_key: from.boxk.public.as_bytes().to_vec(),
        recipient_box_key: to.boxk.public.as_bytes().to_vec(),
    }
}

/// An envelope of text from `from` to each of `to`.
pub fn text_envelope(
    from: &TestUser,
    to: &[&TestUser],
    message_id: &str,
    text: &str,
) -> cachet_proto::v1::Envelope {
    let timestamp = now_ms();
    cachet_proto::v1::Envelope {
        version: 1,
        message_id: message_id.to_owned(),
        timestamp,
        recipients: to
            .iter()
            .map(|r| seal_text(from, r, message_id, timestamp, text))
            .collect(),
        ..Default::default()
    }
}

/// Opens the caller's ciphertext in a delivered envelope and returns the text.
pub fn open_text(env: &cachet_proto::v1::Envelope, me: &TestUser, sender: &TestUser) -> String {
    use cachet_proto::v1::{payload, Payload};
    let rc = env
        .recipients
        .iter()
        .find(|r| r.recipient_id == me.user_id)
        .expect("a ciphertext for me");
    let nonce = cachet_crypto::Nonce::from_slice(&rc.nonce).expect("nonce");
    let plain =
        cachet_crypto::boxes::open(&rc.ciphertext, &nonce, &sender.boxk.public, &me.boxk.secret)
            .expect("opens");
    let payload = Payload::decode(plain.as_slice()).expect("payload");
    assert_eq!(
        payload.message_id, env.message_id,
        "payload bound to the envelope"
    );
    assert_eq!(payload.sender_id, env.sender_id);
    match payload.body {
        Some(payload::Body::Text(t)) => t.body,
        other => panic!("not text: {other:?}"),
    }
}

/// A random message id.
pub fn mid() -> String {
    hex::encode(cachet_crypto::random_bytes::<16>())
}

/// Receives (acking `ack`) with the given wait.
pub async fn receive(
    client: &Client,
    who: &TestUser,
    ack: Vec<u64>,
    wait_seconds: u32,
) -> cachet_proto::v1::EnvelopeList {
    let r = client
        .post(
            who,
            "/api/v1/messages/receive",
            &cachet_proto::v1::Ack {
                delivery_ids: ack,
                wait_seconds,
                limit: 0,
            },
        )
        .await;
    r.decode()
}

/// Sends an envelope and expects 204.
pub async fn send_ok(client: &Client, from: &TestUser, env: &cachet_proto::v1::Envelope) {
    let r = client.post(from, "/api/v1/messages/send", env).await;
    assert_eq!(
        r.status,
        204,
        "send failed: {}",
        String::from_utf8_lossy(&r.body)
    );
}
