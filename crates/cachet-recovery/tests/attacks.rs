//! Plays a corrupt server against the recovery design, and against the original design
//! as ePrint 2025/1512 abstracts it, to show what the distributed OPRF buys.
#![allow(clippy::unwrap_used)]

use cachet_crypto::{secretbox, SymmetricKey};
use cachet_recovery::oprf::{self, PublicShares, ServerShare};
use cachet_recovery::testing::fresh_key_ring;
use cachet_recovery::{HardeningParams, KeyRing, RecoveryError, RecoveryKeys};

const PARAMS: HardeningParams = HardeningParams::INSECURE_FAST;
const USER: &str = "u_patient";
const PASSWORD: &str = "sunflower1987";

/// Candidate passwords an attacker would try; the real one is among them.
fn dictionary() -> Vec<String> {
    let mut words: Vec<String> = (0..400).map(|i| format!("sunflower{}", 1700 + i)).collect();
    words.extend(["123456", "password", "azerty", "doctolib"].map(String::from));
    assert!(words.iter().any(|w| w == PASSWORD));
    words
}

/// What each server holds after enrolment in the cachet design.
struct ServerState {
    share: ServerShare,
    public_shares: PublicShares,
    sealed_key_ring: Vec<u8>,
    auth_public: cachet_crypto::SignPublicKey,
}

fn run_oprf(
    password: &str,
    data: &ServerShare,
    key: &ServerShare,
    shares: &PublicShares,
) -> RecoveryKeys {
    let (state, element) = oprf::blind(USER, password.as_bytes());
    let output = oprf::finalize(
        state,
        shares,
        &data.evaluate(&element).expect("valid element"),
        &key.evaluate(&element).expect("valid element"),
    )
    .expect("honest servers");
    RecoveryKeys::derive(&output, USER, PARAMS).expect("valid parameters")
}

/// Enrolment: both servers make a share, the client runs the OPRF, seals its key ring and
/// gives both servers the same envelope (so losing one server's disk loses nothing).
fn enrol(ring: &KeyRing) -> (ServerState, ServerState) {
    let (data_share, key_share) = (ServerShare::generate(), ServerShare::generate());
    let shares = PublicShares {
        data_server: data_share.public(),
        key_server: key_share.public(),
    };
    let keys = run_oprf(PASSWORD, &data_share, &key_share, &shares);
    let sealed = ring.seal(&keys.wrap_key);
    let state = |share: ServerShare| ServerState {
        share,
        public_shares: shares,
        sealed_key_ring: sealed.clone(),
        auth_public: keys.auth_key.public(),
    };
    (state(data_share), state(key_share))
}

#[test]
fn honest_recovery_opens_the_key_ring_and_a_wrong_password_does_not() {
    let ring = fresh_key_ring(USER);
    let (data, key) = enrol(&ring);
    let shares = PublicShares::agree(&data.public_shares, &key.public_shares).unwrap();
    let keys = run_oprf(PASSWORD, &data.share, &key.share, &shares);
    assert_eq!(
        keys.auth_key.public(),
        data.auth_public,
        "the servers can recognise a success"
    );
    assert_eq!(
        KeyRing::open(&data.sealed_key_ring, &keys.wrap_key, USER).unwrap(),
        ring
    );
    let wrong = run_oprf("sunflower1986", &data.share, &key.share, &shares);
    assert_eq!(
        KeyRing::open(&key.sealed_key_ring, &wrong.wrap_key, USER).unwrap_err(),
        RecoveryError::WrongPasswordOrDamaged
    );
}

/// A corrupt server has its whole database and its share. To test a guess it needs the
/// PRF value, which needs the other server's share: the best it can do offline is to
/// guess that share too, and then no password, not even the right one, opens the ring,
/// and no guess can be told from another (the auth key never matches).
fn offline_attack_by(corrupt: &ServerState, is_data_server: bool) -> usize {
    let mut hits = 0;
    for guess in dictionary() {
        let stand_in = ServerShare::generate(); // the other server's share is unknown
        let (d, k) = if is_data_server {
            (&corrupt.share, &stand_in)
        } else {
            (&stand_in, &corrupt.share)
        };
        let output = oprf::evaluate_with_both_shares(USER, guess.as_bytes(), d, k);
        let keys = RecoveryKeys::derive(&output, USER, PARAMS).unwrap();
        if keys.auth_key.public() == corrupt.auth_public
            || KeyRing::open(&corrupt.sealed_key_ring, &keys.wrap_key, USER).is_ok()
        {
            hits += 1;
        }
    }
    hits
}

#[test]
fn a_corrupt_data_server_cannot_test_guesses_offline() {
    let (data, _key) = enrol(&fresh_key_ring(USER));
    assert_eq!(offline_attack_by(&data, true), 0);
}

#[test]
fn a_corrupt_key_server_cannot_test_guesses_offline() {
    let (_data, key) = enrol(&fresh_key_ring(USER));
    assert_eq!(offline_attack_by(&key, false), 0);
}

#[test]
fn a_corrupt_server_cannot_steer_the_client_with_its_own_key() {
    let ring = fresh_key_ring(USER);
    let (data, key) = enrol(&ring);
    // The key server pretends the user's share is one it just made up.
    let rogue = ServerShare::generate();
    let lied = PublicShares {
        key_server: rogue.public(),
        ..key.public_shares
    };
    assert_eq!(
        PublicShares::agree(&data.public_shares, &lied).unwrap_err(),
        RecoveryError::InconsistentPublicShares
    );
    // And with the honest record, its answer under the made-up key is caught.
    let (state, element) = oprf::blind(USER, PASSWORD.as_bytes());
    let err = oprf::finalize(
        state,
        &data.public_shares,
        &data.share.evaluate(&element).unwrap(),
        &rogue.evaluate(&element).unwrap(),
    )
    .unwrap_err();
    assert_eq!(err, RecoveryError::BadEvaluation(1));
}

#[test]
fn a_share_refresh_does_not_disturb_recovery() {
    let ring = fresh_key_ring(USER);
    let (mut data, mut key) = enrol(&ring);
    ServerShare::refresh(&mut data.share, &mut key.share);
    let fresh = PublicShares {
        data_server: data.share.public(),
        key_server: key.share.public(),
    };
    assert_eq!(fresh.joint().unwrap(), data.public_shares.joint().unwrap());
    let keys = run_oprf(PASSWORD, &data.share, &key.share, &fresh);
    assert_eq!(
        KeyRing::open(&key.sealed_key_ring, &keys.wrap_key, USER).unwrap(),
        ring
    );
}

// ---------------------------------------------------------------------------------------
// The original design, as the paper abstracts it, kept here only to show the attack.
// The app (data) server generates and keeps a "user secret"; the key ring is sealed under
// it and stored at the key server; the key server gates access with a fast unsalted hash
// of the password, which the client sends.

struct LegacyDataServer {
    user_secret: SymmetricKey,
}

struct LegacyKeyServer {
    password_gate: [u8; 32],
    sealed_key_ring: Vec<u8>,
}

fn legacy_enrol(ring: &KeyRing) -> (LegacyDataServer, LegacyKeyServer) {
    let user_secret = SymmetricKey::generate();
    let sealed = ring.seal(&user_secret);
    (
        LegacyDataServer { user_secret },
        LegacyKeyServer {
            password_gate: cachet_crypto::sha256(PASSWORD.as_bytes()),
            sealed_key_ring: sealed,
        },
    )
}

#[test]
fn legacy_design_falls_to_a_corrupt_key_server() {
    let ring = fresh_key_ring(USER);
    let (data, key) = legacy_enrol(&ring);
    // Offline: the key server tests the whole dictionary against its own gate.
    let found: Vec<String> = dictionary()
        .into_iter()
        .filter(|g| cachet_crypto::sha256(g.as_bytes()) == key.password_gate)
        .collect();
    assert_eq!(
        found,
        vec![PASSWORD.to_string()],
        "the password falls offline"
    );
    // Online, once: log in to the data server as the user with the recovered password,
    // receive the user secret, open the key ring.
    let released = &data.user_secret;
    assert_eq!(
        KeyRing::open(&key.sealed_key_ring, released, USER).unwrap(),
        ring
    );
}

#[test]
fn legacy_design_falls_to_a_corrupt_data_server_in_one_online_request() {
    let ring = fresh_key_ring(USER);
    let (data, key) = legacy_enrol(&ring);
    // The data server holds the user secret; it needs the envelope, which the key server
    // releases to whoever presents the right fast hash. It guesses online, but every guess
    // that the key server's gate accepts is confirmed locally before it is sent: the
    // envelope opens or it does not. A single accepted request suffices.
    let gate = |h: [u8; 32]| (h == key.password_gate).then(|| key.sealed_key_ring.clone());
    let mut requests = 0;
    let mut opened = None;
    for guess in dictionary() {
        requests += 1;
        if let Some(envelope) = gate(cachet_crypto::sha256(guess.as_bytes())) {
            opened = Some(KeyRing::open(&envelope, &data.user_secret, USER).unwrap());
            break;
        }
    }
    assert_eq!(opened.unwrap(), ring);
    assert!(requests <= dictionary().len());
    // Contrast: in the cachet design the data server's secret alone opens nothing.
    let (cachet_data, _) = enrol(&ring);
    let as_key = SymmetricKey::from_bytes(cachet_data.share.expose_secret());
    assert!(secretbox::open_prefixed(&cachet_data.sealed_key_ring, &as_key).is_err());
}
