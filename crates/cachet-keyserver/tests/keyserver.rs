//! The key server over HTTP: its own one-time codes, enrolment, recovery, the rate limit
//! and its lock-out, replacement rules. The test plays the data server's share locally.
#![allow(clippy::unwrap_used)]

use cachet_crypto::{sign, SignKeyPair};
use cachet_http::testing::post_json;
use cachet_keyserver::{spawn, KeyServerConfig, RunningKeyServer};
use cachet_recovery::oprf::{self, Evaluation, PublicShare, PublicShares, ServerShare};
use cachet_recovery::testing::fresh_key_ring;
use cachet_recovery::wire;
use cachet_recovery::{HardeningParams, KeyRing, RecoveryKeys};
use cachet_server_common::testing::{assert_files_present, DatabaseRelay};
use serde_json::{json, Value};

const PHONE: &str = "+33612345678";
const USER: &str = "u_alice";

struct Ks {
    server: RunningKeyServer,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Ks {
    async fn start(config: impl FnOnce(&mut KeyServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut c = KeyServerConfig::for_data_dir(dir.path());
        config(&mut c);
        Ks {
            server: spawn(c).await.unwrap(),
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn post(&self, route: &str, body: Value) -> (u16, Value) {
        let url = format!("{}/api/v1/recovery/{route}", self.server.url());
        post_json(&self.http, url, body).await
    }

    /// Passes the key server's own identity check: returns (challenge_id, code).
    async fn identity(&self) -> (String, String) {
        let (status, body) = self.post("start", json!({ "identifier": PHONE })).await;
        assert_eq!(status, 200, "{body}");
        let codes = std::fs::read_to_string(self.server.dev_codes_path()).unwrap();
        let code = codes.lines().last().unwrap().split('\t').nth(1).unwrap();
        (
            body["challenge_id"].as_str().unwrap().to_owned(),
            code.to_owned(),
        )
    }

    /// Reads the account behind a passed identity check.
    async fn account(&self, challenge_id: &str, code: &str) -> (u16, Value) {
        self.post(
            "account",
            json!({ "challenge_id": challenge_id, "code": code }),
        )
        .await
    }

    async fn evaluate(&self, id: &(String, String), blinded: &[u8]) -> (u16, Value) {
        self.post(
            "evaluate",
            json!({ "challenge_id": id.0, "code": id.1, "user_id": USER,
                    "blinded": hex::encode(blinded) }),
        )
        .await
    }
}

/// Checks that an answer of the key server is a refusal with this status and reason.
#[track_caller]
fn assert_refused((status, body): (u16, Value), expected: u16, reason: &str) {
    assert_eq!(
        (status, body["reason"].as_str()),
        (expected, Some(reason)),
        "{body}"
    );
}

fn evaluation(body: &Value) -> (PublicShare, Evaluation) {
    let bytes = |k: &str| hex::decode(body[k].as_str().unwrap()).unwrap();
    (
        PublicShare(bytes("public_share").try_into().unwrap()),
        Evaluation {
            element: bytes("element").try_into().unwrap(),
            proof: bytes("proof").try_into().unwrap(),
        },
    )
}

/// Runs the OPRF with the key server and a local data-server share.
async fn run_oprf(
    ks: &Ks,
    id: &(String, String),
    data: &ServerShare,
    password: &str,
) -> (PublicShares, RecoveryKeys) {
    let (state, blinded) = oprf::blind(USER, password.as_bytes());
    let (status, body) = ks.evaluate(id, &blinded).await;
    assert_eq!(status, 200, "{body}");
    let (key_server, eval) = evaluation(&body);
    let shares = PublicShares {
        data_server: data.public(),
        key_server,
    };
    let out = oprf::finalize(state, &shares, &data.evaluate(&blinded).unwrap(), &eval).unwrap();
    (
        shares,
        RecoveryKeys::derive(&out, USER, HardeningParams::INSECURE_FAST).unwrap(),
    )
}

fn enrol_body(
    id: &(String, String),
    shares: &PublicShares,
    keys: &RecoveryKeys,
    envelope: &[u8],
    previous: Option<&SignKeyPair>,
) -> Value {
    let message = wire::enrol_message(
        &id.0,
        USER,
        &shares.data_server.0,
        &shares.key_server.0,
        keys.auth_key.public().as_bytes(),
        envelope,
    );
    json!({
        "challenge_id": id.0, "code": id.1, "user_id": USER,
        "data_server_share": hex::encode(shares.data_server.0),
        "key_server_share": hex::encode(shares.key_server.0),
        "auth_public": hex::encode(keys.auth_key.public().as_bytes()),
        "envelope": hex::encode(envelope),
        "signature": hex::encode(sign::sign_detached(&message, &keys.auth_key)),
        "previous_signature": previous
            .map(|k| hex::encode(sign::sign_detached(&message, k)))
            .unwrap_or_default(),
    })
}

async fn enrol(ks: &Ks, data: &ServerShare, password: &str) -> (KeyRing, RecoveryKeys) {
    let id = ks.identity().await;
    let (shares, keys) = run_oprf(ks, &id, data, password).await;
    let ring = fresh_key_ring(USER);
    let (status, body) = ks
        .post(
            "enrol",
            enrol_body(&id, &shares, &keys, &ring.seal(&keys.wrap_key), None),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    (ring, keys)
}

#[tokio::test]
async fn enrol_then_recover_with_its_own_code() {
    enrol_then_recover(Ks::start(|_| {}).await).await;
}

/// The same over PostgreSQL storage (`--database-url`).
#[tokio::test]
async fn enrol_then_recover_on_postgres() {
    cachet_server_common::testing::with_database(env!("CARGO_CRATE_NAME"), |db| async move {
        let url = db.url();
        enrol_then_recover(Ks::start(|c| c.database_url = Some(url)).await).await;
    })
    .await;
}

async fn enrol_then_recover(ks: Ks) {
    let data = ServerShare::generate();
    let (ring, _) = enrol(&ks, &data, "sunflower1987").await;

    // A new installation: pass the key server's check, fetch the envelope, run the OPRF.
    let id = ks.identity().await;
    let (status, account) = ks.account(&id.0, &id.1).await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["user_id"], USER);
    let (shares, keys) = run_oprf(&ks, &id, &data, "sunflower1987").await;
    assert_eq!(
        hex::encode(shares.key_server.0),
        account["key_server_share"]
    );
    let envelope = hex::decode(account["envelope"].as_str().unwrap()).unwrap();
    assert_eq!(
        KeyRing::open(&envelope, &keys.wrap_key, USER).unwrap(),
        ring
    );

    // The evaluation counted; the proven success takes it back.
    let (_, a) = ks.account(&id.0, &id.1).await;
    assert_eq!(a["failures"], 1);
    let sig = sign::sign_detached(&wire::success_message(&id.0, USER), &keys.auth_key);
    let (status, _) = ks
        .post(
            "success",
            json!({ "challenge_id": id.0, "code": id.1, "signature": hex::encode(sig) }),
        )
        .await;
    assert_eq!(status, 204);
    let (_, a) = ks.account(&id.0, &id.1).await;
    assert_eq!(a["failures"], 0);

    // A success signed by anyone else is refused.
    let forged = sign::sign_detached(
        &wire::success_message(&id.0, USER),
        &SignKeyPair::generate(),
    );
    assert_refused(
        ks.post(
            "success",
            json!({ "challenge_id": id.0, "code": id.1, "signature": hex::encode(forged) }),
        )
        .await,
        403,
        "bad_signature",
    );
    ks.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_identity_check_is_the_key_servers_own() {
    let ks = Ks::start(|_| {}).await;
    let (challenge, code) = ks.identity().await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    assert_refused(ks.account(&challenge, wrong).await, 403, "wrong_code");
    // A code of another server (any challenge id it never issued) is unknown here.
    assert_refused(ks.account("c_0000", &code).await, 404, "unknown_challenge");
    for _ in 0..4 {
        ks.account(&challenge, wrong).await;
    }
    assert_refused(
        ks.account(&challenge, &code).await,
        429,
        "too_many_attempts",
    );
    // Junk is a 400 with a reason, not a 500.
    for (route, junk, reason) in [
        ("evaluate", json!({ "nonsense": true }), "invalid_field"),
        (
            "start",
            json!({ "identifier": "nobody" }),
            "invalid_identifier",
        ),
    ] {
        assert_refused(ks.post(route, junk).await, 400, reason);
    }
    ks.server.shutdown().await.unwrap();
}

/// A key server configured by `config` where the user has enrolled (with `data` as the
/// data server's share) and then passed a new identity check: where a guesser starts.
async fn enrolled_and_checked(
    data: &ServerShare,
    config: impl FnOnce(&mut KeyServerConfig),
) -> (Ks, (String, String)) {
    let ks = Ks::start(config).await;
    enrol(&ks, data, "sunflower1987").await;
    let id = ks.identity().await;
    (ks, id)
}

#[tokio::test]
async fn online_guessing_meets_growing_delays_then_a_lockout() {
    // 2 free guesses, then an hour's wait; the test never sleeps.
    let data = ServerShare::generate();
    let (ks, id) = enrolled_and_checked(&data, |c| {
        c.free_attempts = Some(2);
        c.base_delay_seconds = Some(3600);
    })
    .await;
    for guess in ["123456", "password"] {
        let (state, blinded) = oprf::blind(USER, guess.as_bytes());
        drop(state);
        let (status, body) = ks.evaluate(&id, &blinded).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, blinded) = oprf::blind(USER, b"azerty");
    assert_refused(ks.evaluate(&id, &blinded).await, 429, "retry_later");
    ks.server.shutdown().await.unwrap();

    // No delays but a lock-out after 3 failures.
    let (ks, id) = enrolled_and_checked(&data, |c| {
        c.free_attempts = Some(3);
        c.max_failures = Some(3);
    })
    .await;
    let mut answered = 0;
    for i in 0..10 {
        let (_, blinded) = oprf::blind(USER, format!("guess{i}").as_bytes());
        let (status, body) = ks.evaluate(&id, &blinded).await;
        if status == 200 {
            answered += 1;
        } else {
            assert_refused((status, body), 423, "locked_out");
        }
    }
    assert_eq!(answered, 3, "the fourth guess onwards is locked out");
    ks.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn replacing_an_enrolment_needs_the_old_password() {
    let ks = Ks::start(|_| {}).await;
    let data = ServerShare::generate();
    let (_, old) = enrol(&ks, &data, "sunflower1987").await;

    // Someone who passed the code check but does not know the password cannot re-enrol.
    let id = ks.identity().await;
    let (shares, keys) = run_oprf(&ks, &id, &data, "hijack").await;
    let envelope = fresh_key_ring(USER).seal(&keys.wrap_key);
    assert_refused(
        ks.post("enrol", enrol_body(&id, &shares, &keys, &envelope, None))
            .await,
        403,
        "bad_previous_signature",
    );
    // With the old auth key (the old password), a password change goes through.
    let (status, body) = ks
        .post(
            "enrol",
            enrol_body(&id, &shares, &keys, &envelope, Some(&old.auth_key)),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    // A share that is not the key server's is refused.
    let id = ks.identity().await;
    let other = PublicShares {
        key_server: ServerShare::generate().public(),
        ..shares
    };
    assert_refused(
        ks.post(
            "enrol",
            enrol_body(&id, &other, &keys, &envelope, Some(&keys.auth_key)),
        )
        .await,
        400,
        "share_mismatch",
    );

    // Envelope updates: signed by the auth key, never replayed.
    let now = cachet_keyserver::service::now_ms();
    let update = |ts: i64, key: &SignKeyPair| {
        let env = b"new sealed ring".to_vec();
        json!({ "user_id": USER, "envelope": hex::encode(&env), "timestamp": ts,
                "signature": hex::encode(sign::sign_detached(&wire::update_message(USER, ts, &env), key)) })
    };
    let (status, _) = ks.post("update", update(now, &keys.auth_key)).await;
    assert_eq!(status, 204);
    assert_refused(
        ks.post("update", update(now, &keys.auth_key)).await,
        409,
        "stale_update",
    );
    assert_refused(
        ks.post("update", update(now + 1, &old.auth_key)).await,
        403,
        "bad_signature",
    );
    ks.server.shutdown().await.unwrap();
}

/// Signed operator headers for one request to the key server.
fn operator_headers(
    name: &str,
    key: &SignKeyPair,
    method: &str,
    path: &str,
    body: &[u8],
) -> [(String, String); 2] {
    use cachet_proto::auth::{sign_request, Caller, RequestTarget, SIG_HEADER, UID_HEADER};
    let h = sign_request(
        &Caller {
            user_id: format!("op:{name}"),
            build_number: 1,
            client_type: cachet_proto::v1::ClientType::Unspecified,
        },
        key,
        &RequestTarget { method, path, body },
        cachet_keyserver::service::now_ms(),
    );
    [
        (UID_HEADER.to_owned(), h.uid),
        (SIG_HEADER.to_owned(), h.sig),
    ]
}

#[tokio::test]
async fn operator_routes_refuse_bad_callers_and_bodies_with_reasons_and_change_nothing() {
    use prost::Message;
    const INIT: &str = "/api/v1/operator/vault/init";
    let ks = Ks::start(|_| {}).await;
    let kim = SignKeyPair::generate();
    assert!(cachet_keyserver::add_operator(
        &KeyServerConfig::for_data_dir(&ks.server.data_dir),
        "kim",
        kim.public().as_bytes()
    )
    .await
    .unwrap());
    // A name the operator rule refuses is refused with a reason.
    let err = cachet_keyserver::add_operator(
        &KeyServerConfig::for_data_dir(&ks.server.data_dir),
        "Kim!",
        kim.public().as_bytes(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("name"), "{err}");

    let send = |headers: Vec<(String, String)>, body: Vec<u8>| {
        let mut r = ks
            .http
            .post(format!("{}{INIT}", ks.server.url()))
            .body(body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            (
                status,
                body["reason"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let split = cachet_proto::v1::VaultSplit {
        shares: 3,
        threshold: 2,
        holders: Vec::new(),
    }
    .encode_to_vec();

    // Unsigned; signed by someone who is not an operator here; a malformed body.
    assert_eq!(
        send(Vec::new(), split.clone()).await,
        (401, "unauthenticated".into())
    );
    let stranger = SignKeyPair::generate();
    let h = operator_headers("kim", &stranger, "POST", INIT, &split);
    assert_eq!(
        send(h.to_vec(), split.clone()).await,
        (401, "unauthenticated".into())
    );
    let junk = vec![0xff, 0xff, 0xff];
    let h = operator_headers("kim", &kim, "POST", INIT, &junk);
    assert_eq!(send(h.to_vec(), junk).await, (400, "invalid_field".into()));
    // An unknown holder is refused before anything is split.
    let with_holder = cachet_proto::v1::VaultSplit {
        shares: 3,
        threshold: 2,
        holders: vec!["kim".into(), "kim".into(), "nobody".into()],
    }
    .encode_to_vec();
    let h = operator_headers("kim", &kim, "POST", INIT, &with_holder);
    assert_eq!(
        send(h.to_vec(), with_holder).await,
        (400, "invalid_field".into())
    );

    // Nothing was initialised by any of them.
    let status = ks
        .http
        .get(format!("{}/api/v1/vault/status", ks.server.url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        !cachet_proto::v1::VaultStatus::decode(status)
            .unwrap()
            .initialised
    );

    // A header sent twice is refused, whichever copy would have counted.
    let h = operator_headers("kim", &kim, "POST", INIT, &split);
    let mut twice = h.to_vec();
    twice.push(h[0].clone());
    assert_eq!(
        send(twice, split.clone()).await,
        (400, "duplicate_header".into())
    );

    // A good request works once; the same signed request again is a replay.
    let h = operator_headers("kim", &kim, "POST", INIT, &split);
    let r = ks
        .http
        .post(format!("{}{INIT}", ks.server.url()))
        .header(&h[0].0, &h[0].1)
        .header(&h[1].0, &h[1].1)
        .body(split.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        send(h.to_vec(), split).await,
        (401, "replayed_signature".into())
    );
}

/// The key server's data directory is its own account's only (0700), and so are its
/// database files and the codes file (0600), whatever the umask.
#[cfg(unix)]
#[tokio::test]
async fn data_directory_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let ks = Ks::start(|c| {
        let root = c.data_dir.clone().unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        c.data_dir = Some(root.join("keyserver"));
    })
    .await;
    ks.identity().await;
    let dir = ks.server.data_dir.clone();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert_files_present(
        &files,
        &[
            "keyserver.sqlite3",
            "keyserver.sqlite3-wal",
            "dev-codes.txt",
        ],
    );
}

async fn healthz(ks: &Ks) -> (u16, Value) {
    let r = ks
        .http
        .get(format!("{}/healthz", ks.server.url()))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_str(&r.text().await.unwrap()).unwrap(),
    )
}

/// A key server started while its PostgreSQL database is down waits for it instead of
/// exiting; `/healthz` then says whether the database answers: 503 `database_unavailable`
/// during an outage, 200 once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_before_its_database_it_waits_and_healthz_reports_outages() {
    cachet_server_common::testing::with_database(env!("CARGO_CRATE_NAME"), |db| async move {
        let mut relay = DatabaseRelay::new(&db);
        let relayed = relay.url();
        let starting = tokio::spawn(Ks::start(move |c| c.database_url = Some(relayed)));
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        assert!(
            !starting.is_finished(),
            "the key server waits for its database"
        );
        relay.restore().await;
        let ks = tokio::time::timeout(std::time::Duration::from_secs(60), starting)
            .await
            .expect("the key server starts once the database is up")
            .unwrap();
        let (status, body) = healthz(&ks).await;
        assert_eq!((status, &body["database"]), (200, &json!("ok")), "{body}");
        assert_eq!(body["sealed"], false);

        relay.cut().await;
        let (status, body) = healthz(&ks).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["reason"], "database_unavailable");

        relay.restore().await;
        let mut back = false;
        for _ in 0..60 {
            if healthz(&ks).await.0 == 200 {
                back = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert!(back, "healthz answers 200 again once the database is back");
    })
    .await;
}
