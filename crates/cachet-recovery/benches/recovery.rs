//! Cost of a recovery, next to OPAQUE (opaque-ke) measured in the same run as the anchor.
//!
//! * `server_evaluation/*`: one server's CPU per OPRF evaluation (cachet: one scalar
//!   multiplication and a DLEQ proof), against opaque-ke's `ServerLogin::start`.
//! * `end_to_end/*`: a whole run in one process without network: cachet's blind, two
//!   server evaluations, both proofs checked, unblinding, Argon2id, HKDF and opening the
//!   sealed key ring; against opaque-ke's full login (client start, server start, client
//!   finish, server finish). Both use Argon2id with 64 MiB, 3 passes, 1 lane.
#![allow(missing_docs, clippy::unwrap_used)]

use cachet_recovery::oprf::{self, PublicShares, ServerShare};
use cachet_recovery::testing::fresh_key_ring;
use cachet_recovery::{HardeningParams, KeyRing, RecoveryKeys};
use criterion::{criterion_group, criterion_main, Criterion};
use opaque_ke::ciphersuite::CipherSuite;
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, Identifiers, ServerLogin, ServerLoginParameters,
    ServerRegistration, ServerSetup,
};
use rand_core::OsRng;

struct Suite;

impl CipherSuite for Suite {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<opaque_ke::Ristretto255, sha2::Sha512>;
    type Ksf = argon2::Argon2<'static>;
}

const USER: &str = "u_bench";
const PASSWORD: &[u8] = b"correct horse battery staple";

fn argon() -> argon2::Argon2<'static> {
    let p = HardeningParams::RECOMMENDED;
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(p.memory_kib, p.iterations, 1, None).unwrap(),
    )
}

fn cachet_setup() -> (ServerShare, ServerShare, PublicShares, Vec<u8>) {
    let (k1, k2) = (ServerShare::generate(), ServerShare::generate());
    let shares = PublicShares {
        data_server: k1.public(),
        key_server: k2.public(),
    };
    let out = oprf::evaluate_with_both_shares(USER, PASSWORD, &k1, &k2);
    let keys = RecoveryKeys::derive(&out, USER, HardeningParams::RECOMMENDED).unwrap();
    let ring = fresh_key_ring(USER);
    let sealed = ring.seal(&keys.wrap_key);
    (k1, k2, shares, sealed)
}

fn cachet_recovery(k1: &ServerShare, k2: &ServerShare, shares: &PublicShares, sealed: &[u8]) {
    let (state, blinded) = oprf::blind(USER, PASSWORD);
    let e1 = k1.evaluate(&blinded).unwrap();
    let e2 = k2.evaluate(&blinded).unwrap();
    let out = oprf::finalize(state, shares, &e1, &e2).unwrap();
    let keys = RecoveryKeys::derive(&out, USER, HardeningParams::RECOMMENDED).unwrap();
    KeyRing::open(sealed, &keys.wrap_key, USER).unwrap();
}

fn opaque_setup() -> (ServerSetup<Suite>, ServerRegistration<Suite>) {
    let ksf = argon();
    let setup = ServerSetup::<Suite>::new(&mut OsRng);
    let start = ClientRegistration::<Suite>::start(&mut OsRng, PASSWORD).unwrap();
    let response =
        ServerRegistration::<Suite>::start(&setup, start.message, USER.as_bytes()).unwrap();
    let finish = start
        .state
        .finish(
            &mut OsRng,
            PASSWORD,
            response.message,
            ClientRegistrationFinishParameters::new(Identifiers::default(), Some(&ksf)),
        )
        .unwrap();
    (setup, ServerRegistration::finish(finish.message))
}

fn opaque_login(setup: &ServerSetup<Suite>, file: &ServerRegistration<Suite>) {
    let ksf = argon();
    let start = ClientLogin::<Suite>::start(&mut OsRng, PASSWORD).unwrap();
    let server = ServerLogin::start(
        &mut OsRng,
        setup,
        Some(file.clone()),
        start.message,
        USER.as_bytes(),
        ServerLoginParameters::default(),
    )
    .unwrap();
    let client = start
        .state
        .finish(
            &mut OsRng,
            PASSWORD,
            server.message,
            ClientLoginFinishParameters::new(None, Identifiers::default(), Some(&ksf)),
        )
        .unwrap();
    let done = server
        .state
        .finish(client.message, ServerLoginParameters::default())
        .unwrap();
    assert_eq!(client.session_key, done.session_key);
}

fn bench(c: &mut Criterion) {
    let (k1, k2, shares, sealed) = cachet_setup();
    let (setup, file) = opaque_setup();

    let mut g = c.benchmark_group("server_evaluation");
    let (_, blinded) = oprf::blind(USER, PASSWORD);
    g.bench_function("cachet_oprf_evaluate_with_dleq", |b| {
        b.iter(|| k1.evaluate(&blinded).unwrap())
    });
    g.bench_function("opaque_ke_server_login_start", |b| {
        b.iter_batched(
            || {
                ClientLogin::<Suite>::start(&mut OsRng, PASSWORD)
                    .unwrap()
                    .message
            },
            |request| {
                ServerLogin::start(
                    &mut OsRng,
                    &setup,
                    Some(file.clone()),
                    request,
                    USER.as_bytes(),
                    ServerLoginParameters::default(),
                )
                .unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("end_to_end");
    g.sample_size(10);
    g.bench_function("cachet_two_server_recovery", |b| {
        b.iter(|| cachet_recovery(&k1, &k2, &shares, &sealed))
    });
    g.bench_function("opaque_ke_login", |b| {
        b.iter(|| opaque_login(&setup, &file))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
