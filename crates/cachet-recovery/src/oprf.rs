//! 2HashDH over ristretto255 with the key split additively between two servers, each
//! evaluation proven correct with a Chaum–Pedersen DLEQ proof.
//!
//! `F(k, x) = H2(x, H1(x)·k)` with `k = k1 + k2`. The client sends `A = H1(x)·r`; server
//! `i` answers `B_i = A·k_i` and a proof that `log_G(K_i) = log_A(B_i)` where
//! `K_i = G·k_i` is its published share; the client computes `(B_1 + B_2)·r⁻¹ = H1(x)·k`.
//!
//! Why not one RFC 9497 VOPRF per server, combined by a hash? That works too, but
//! additive shares of one key let the servers refresh their shares without the user
//! (`k1 + δ`, `k2 − δ`): a share stolen before a refresh is useless after it. The group
//! arithmetic comes from `curve25519-dalek`; only the 2HashDH composition and the DLEQ
//! proof are written here, following the standard constructions.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as G;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand_core::{CryptoRng, OsRng, RngCore};
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::RecoveryError;

const H1_LABEL: &[u8] = b"cachet 2HashDH v1 H1";
const H2_LABEL: &[u8] = b"cachet 2HashDH v1 H2";
const DLEQ_LABEL: &[u8] = b"cachet 2HashDH v1 DLEQ";

/// Encoded length of a group element.
pub const ELEMENT_LEN: usize = 32;
/// Encoded length of a DLEQ proof: challenge and response scalars.
pub const PROOF_LEN: usize = 64;

fn input_bytes(user_id: &str, password: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + user_id.len() + password.len());
    out.extend_from_slice(&(user_id.len() as u32).to_be_bytes());
    out.extend_from_slice(user_id.as_bytes());
    out.extend_from_slice(&(password.len() as u32).to_be_bytes());
    out.extend_from_slice(password);
    out
}

fn h1(input: &[u8]) -> RistrettoPoint {
    RistrettoPoint::hash_from_bytes::<Sha512>(&[H1_LABEL, input].concat())
}

fn decode_point(bytes: &[u8]) -> Result<RistrettoPoint, RecoveryError> {
    let point = CompressedRistretto::from_slice(bytes)
        .map_err(|_| RecoveryError::InvalidElement)?
        .decompress()
        .ok_or(RecoveryError::InvalidElement)?;
    if point.is_identity() {
        return Err(RecoveryError::InvalidElement);
    }
    Ok(point)
}

fn decode_scalar(bytes: &[u8]) -> Result<Scalar, RecoveryError> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| RecoveryError::InvalidElement)?;
    Option::from(Scalar::from_canonical_bytes(array)).ok_or(RecoveryError::InvalidElement)
}

/// A server's public key share `K_i = G·k_i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicShare(pub [u8; ELEMENT_LEN]);

impl PublicShare {
    fn point(&self) -> Result<RistrettoPoint, RecoveryError> {
        decode_point(&self.0)
    }
}

/// The public shares of both servers for one user, as recorded at enrolment. Each server
/// keeps the pair; a recovering client asks both and requires them to agree, so one
/// corrupt server cannot swap in a key of its own choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicShares {
    /// Data server's share.
    pub data_server: PublicShare,
    /// Key server's share.
    pub key_server: PublicShare,
}

impl PublicShares {
    /// Checks that two servers' copies agree; returns the agreed pair.
    pub fn agree(a: &Self, b: &Self) -> Result<Self, RecoveryError> {
        let same = a.data_server.0.ct_eq(&b.data_server.0) & a.key_server.0.ct_eq(&b.key_server.0);
        if bool::from(same) {
            Ok(*a)
        } else {
            Err(RecoveryError::InconsistentPublicShares)
        }
    }

    /// The joint public key `K1 + K2`, which a share refresh leaves unchanged.
    pub fn joint(&self) -> Result<[u8; ELEMENT_LEN], RecoveryError> {
        Ok((self.data_server.point()? + self.key_server.point()?)
            .compress()
            .to_bytes())
    }
}

/// Declares a secret scalar newtype: zeroized on drop, redacted in `Debug`, drawn at
/// random, and moved to and from 32 bytes. Server shares and refresh deltas are both that.
macro_rules! secret_scalar {
    (
        $(#[$meta:meta])*
        pub struct $name:ident;
        generate: $generate_doc:literal,
        from_bytes: $from_bytes_doc:literal,
        expose_secret: $expose_doc:literal $(,)?
    ) => {
        $(#[$meta])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name(Scalar);

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl $name {
            #[doc = $generate_doc]
            pub fn generate() -> Self {
                Self(Scalar::random(&mut OsRng))
            }
            #[doc = $from_bytes_doc]
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecoveryError> {
                Ok(Self(decode_scalar(bytes)?))
            }
            #[doc = $expose_doc]
            pub fn expose_secret(&self) -> [u8; 32] {
                self.0.to_bytes()
            }
        }
    };
}

secret_scalar! {
    /// One server's secret share `k_i` for one user. Zeroized on drop; never printed.
    pub struct ServerShare;
    generate: "A fresh random share (at enrolment).",
    from_bytes: "Restores a share from storage.",
    expose_secret: "The share for storage (the server encrypts it at rest).",
}

/// What a server returns for one blinded element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// `B_i = A·k_i`, compressed.
    pub element: [u8; ELEMENT_LEN],
    /// DLEQ proof `(c, s)` that `log_G(K_i) = log_A(B_i)`.
    pub proof: [u8; PROOF_LEN],
}

impl ServerShare {
    /// The public share `G·k_i`.
    pub fn public(&self) -> PublicShare {
        PublicShare((G * self.0).compress().to_bytes())
    }

    /// Evaluates on a client's blinded element and proves it.
    pub fn evaluate(&self, blinded: &[u8]) -> Result<Evaluation, RecoveryError> {
        self.evaluate_with_rng(blinded, &mut OsRng)
    }

    /// [`ServerShare::evaluate`] with the proof's nonce `t` drawn from `rng` (64 bytes,
    /// reduced mod ℓ). For test vectors only: a server must use a fresh random `t` per
    /// proof, or two proofs reveal its share.
    pub fn evaluate_with_rng(
        &self,
        blinded: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Evaluation, RecoveryError> {
        let a = decode_point(blinded)?;
        let b = a * self.0;
        let k_pub = G * self.0;
        // Chaum–Pedersen: t random, T1 = G·t, T2 = A·t, c = H(K, A, B, T1, T2), s = t − c·k.
        let mut t = Scalar::random(rng);
        let c = dleq_challenge(&k_pub, &a, &b, &(G * t), &(a * t));
        let s = t - c * self.0;
        t.zeroize();
        let mut proof = [0u8; PROOF_LEN];
        proof[..32].copy_from_slice(c.as_bytes());
        proof[32..].copy_from_slice(s.as_bytes());
        Ok(Evaluation {
            element: b.compress().to_bytes(),
            proof,
        })
    }

    /// Refreshes both shares of one user with a random `δ` (`k1 + δ`, `k2 − δ`); the joint
    /// key, and so every user's recovery secret, stays the same. Run between the servers;
    /// afterwards a share stolen earlier no longer combines with the current one.
    pub fn refresh(data_server: &mut Self, key_server: &mut Self) {
        let mut delta = Scalar::random(&mut OsRng);
        data_server.0 += delta;
        key_server.0 -= delta;
        delta.zeroize();
    }
}

secret_scalar! {
    /// The random `δ` of a share refresh run between two servers (each in its own process):
    /// the data server adds it, the key server subtracts it. Secret until both applied it.
    pub struct RefreshDelta;
    generate: "A fresh random delta.",
    from_bytes: "Restores a delta sent over the wire.",
    expose_secret: "The delta for the wire.",
}

impl ServerShare {
    /// The data server's half of a refresh: `k1 + δ`.
    pub fn add_delta(&mut self, delta: &RefreshDelta) {
        self.0 += delta.0;
    }
    /// The key server's half of a refresh: `k2 − δ`.
    pub fn subtract_delta(&mut self, delta: &RefreshDelta) {
        self.0 -= delta.0;
    }
}

impl PublicShares {
    /// The recorded pair after a refresh by `delta`: `(K1 + G·δ, K2 − G·δ)`.
    pub fn refreshed(&self, delta: &RefreshDelta) -> Result<Self, RecoveryError> {
        let d = G * delta.0;
        Ok(Self {
            data_server: PublicShare((self.data_server.point()? + d).compress().to_bytes()),
            key_server: PublicShare((self.key_server.point()? - d).compress().to_bytes()),
        })
    }
}

fn dleq_challenge(
    k: &RistrettoPoint,
    a: &RistrettoPoint,
    b: &RistrettoPoint,
    t1: &RistrettoPoint,
    t2: &RistrettoPoint,
) -> Scalar {
    let mut h = Sha512::new();
    h.update(DLEQ_LABEL);
    for p in [&G, k, a, b, t1, t2] {
        h.update(p.compress().as_bytes());
    }
    Scalar::from_hash(h)
}

fn verify_dleq(
    k: &RistrettoPoint,
    a: &RistrettoPoint,
    eval: &Evaluation,
) -> Result<RistrettoPoint, ()> {
    let b = decode_point(&eval.element).map_err(|_| ())?;
    let c = decode_scalar(&eval.proof[..32]).map_err(|_| ())?;
    let s = decode_scalar(&eval.proof[32..]).map_err(|_| ())?;
    let t1 = G * s + k * c;
    let t2 = a * s + b * c;
    if bool::from(dleq_challenge(k, a, &b, &t1, &t2).ct_eq(&c)) {
        Ok(b)
    } else {
        Err(())
    }
}

/// The client's secret blinding state between [`blind`] and [`finalize`].
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct BlindState {
    r: Scalar,
    #[zeroize(skip)]
    blinded: RistrettoPoint,
    input: Vec<u8>,
}

impl core::fmt::Debug for BlindState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("BlindState(<redacted>)")
    }
}

/// Blinds the password of `user_id`. Returns the state to keep and the element to send to
/// both servers; the element is uniformly random and says nothing about the password.
pub fn blind(user_id: &str, password: &[u8]) -> (BlindState, [u8; ELEMENT_LEN]) {
    blind_with_rng(user_id, password, &mut OsRng)
}

/// [`blind`] with the blinding scalar `r` drawn from `rng` (64 bytes, reduced mod ℓ).
/// For test vectors only: a client must blind with fresh randomness every time.
pub fn blind_with_rng(
    user_id: &str,
    password: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> (BlindState, [u8; ELEMENT_LEN]) {
    let input = input_bytes(user_id, password);
    let r = Scalar::random(rng);
    let blinded = h1(&input) * r;
    let element = blinded.compress().to_bytes();
    (BlindState { r, blinded, input }, element)
}

/// The OPRF output: 64 bytes, secret. Zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct OprfOutput([u8; 64]);

impl OprfOutput {
    /// The raw output.
    pub fn expose_secret(&self) -> &[u8; 64] {
        &self.0
    }
}

impl core::fmt::Debug for OprfOutput {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("OprfOutput(<redacted>)")
    }
}

/// Checks both servers' proofs against the agreed public shares, unblinds and hashes.
/// A wrong answer from either server is named ([`RecoveryError::BadEvaluation`] 0 for
/// the data server, 1 for the key server).
pub fn finalize(
    state: BlindState,
    shares: &PublicShares,
    data_server: &Evaluation,
    key_server: &Evaluation,
) -> Result<OprfOutput, RecoveryError> {
    let b1 = verify_dleq(&shares.data_server.point()?, &state.blinded, data_server)
        .map_err(|_| RecoveryError::BadEvaluation(0))?;
    let b2 = verify_dleq(&shares.key_server.point()?, &state.blinded, key_server)
        .map_err(|_| RecoveryError::BadEvaluation(1))?;
    let unblinded = (b1 + b2) * state.r.invert();
    Ok(OprfOutput(h2(&state.input, &unblinded)))
}

fn h2(input: &[u8], point: &RistrettoPoint) -> [u8; 64] {
    Sha512::new()
        .chain_update(H2_LABEL)
        .chain_update((input.len() as u32).to_be_bytes())
        .chain_update(input)
        .chain_update(point.compress().as_bytes())
        .finalize()
        .into()
}

/// Direct evaluation with both shares in one place. Only a party holding BOTH shares can
/// call this; tests use it to show what a single server cannot do.
pub fn evaluate_with_both_shares(
    user_id: &str,
    password: &[u8],
    data_server: &ServerShare,
    key_server: &ServerShare,
) -> OprfOutput {
    let input = input_bytes(user_id, password);
    OprfOutput(h2(&input, &(h1(&input) * (data_server.0 + key_server.0))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (ServerShare, ServerShare, PublicShares) {
        let (a, b) = (ServerShare::generate(), ServerShare::generate());
        let shares = PublicShares {
            data_server: a.public(),
            key_server: b.public(),
        };
        (a, b, shares)
    }

    fn run(
        user: &str,
        pw: &[u8],
        a: &ServerShare,
        b: &ServerShare,
        shares: &PublicShares,
    ) -> [u8; 64] {
        let (state, element) = blind(user, pw);
        let out = finalize(
            state,
            shares,
            &a.evaluate(&element).unwrap(),
            &b.evaluate(&element).unwrap(),
        )
        .unwrap();
        *out.expose_secret()
    }

    #[test]
    fn blinded_protocol_matches_direct_evaluation() {
        let (a, b, shares) = setup();
        let out = run("u_1", b"correct horse", &a, &b, &shares);
        assert_eq!(
            &out,
            evaluate_with_both_shares("u_1", b"correct horse", &a, &b).expose_secret()
        );
        assert_ne!(out, run("u_1", b"correct horsf", &a, &b, &shares));
        assert_ne!(out, run("u_2", b"correct horse", &a, &b, &shares));
    }

    #[test]
    fn refresh_keeps_the_output_and_the_joint_key() {
        let (mut a, mut b, shares) = setup();
        let before = run("u_1", b"pw", &a, &b, &shares);
        let old_a = a.clone();
        ServerShare::refresh(&mut a, &mut b);
        let fresh = PublicShares {
            data_server: a.public(),
            key_server: b.public(),
        };
        assert_eq!(fresh.joint().unwrap(), shares.joint().unwrap());
        assert_eq!(before, run("u_1", b"pw", &a, &b, &fresh));
        // An old share does not combine with a new one.
        assert_ne!(
            before,
            *evaluate_with_both_shares("u_1", b"pw", &old_a, &b).expose_secret()
        );
    }

    #[test]
    fn refresh_in_two_places_matches_the_published_pair() {
        let (mut a, mut b, shares) = setup();
        let before = run("u_1", b"pw", &a, &b, &shares);
        let delta = RefreshDelta::from_bytes(&RefreshDelta::generate().expose_secret()).unwrap();
        a.add_delta(&delta);
        b.subtract_delta(&delta);
        let fresh = shares.refreshed(&delta).unwrap();
        assert_eq!(fresh.data_server, a.public());
        assert_eq!(fresh.key_server, b.public());
        assert_eq!(before, run("u_1", b"pw", &a, &b, &fresh));
    }

    #[test]
    fn a_wrong_evaluation_is_caught_and_named() {
        let (a, b, shares) = setup();
        let (state, element) = blind("u_1", b"pw");
        let good = a.evaluate(&element).unwrap();
        // The key server answers with some other key (a corrupt server trying to steer the output).
        let rogue = ServerShare::generate().evaluate(&element).unwrap();
        assert_eq!(
            finalize(state, &shares, &good, &rogue).unwrap_err(),
            RecoveryError::BadEvaluation(1)
        );
        let (state, element) = blind("u_1", b"pw");
        let mut tampered = a.evaluate(&element).unwrap();
        tampered.proof[40] ^= 1;
        assert_eq!(
            finalize(state, &shares, &tampered, &b.evaluate(&element).unwrap()).unwrap_err(),
            RecoveryError::BadEvaluation(0)
        );
    }

    #[test]
    fn servers_reject_junk_elements() {
        let a = ServerShare::generate();
        assert!(a.evaluate(&[0u8; 32]).is_err()); // identity
        assert!(a.evaluate(&[0xffu8; 32]).is_err()); // not a point
        assert!(a.evaluate(&[1u8; 31]).is_err());
        let (_, b, shares) = setup();
        let other = PublicShares {
            key_server: b.public(),
            ..shares
        };
        assert!(PublicShares::agree(&shares, &shares).is_ok());
        assert_eq!(
            PublicShares::agree(
                &shares,
                &PublicShares {
                    data_server: ServerShare::generate().public(),
                    ..other
                }
            ),
            Err(RecoveryError::InconsistentPublicShares)
        );
    }
}
