//! TLS 1.3 with a self-signed certificate.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName};

use crate::common::*;

#[tokio::test]
async fn serves_tls_1_3_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("certificate");
    let cert_pem = generated.cert.pem();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).expect("write cert");
    std::fs::write(&key_path, generated.signing_key.serialize_pem()).expect("write key");

    let s = TestServer::start_with(|c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
    })
    .await;
    assert!(s.base.starts_with("https://"));

    // A client that trusts only this certificate gets through, over HTTP/2 or 1.1.
    let http = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .build()
        .expect("client");
    let client = Client {
        http,
        base: s.base.clone(),
    };
    let r = client
        .raw(reqwest::Method::GET, "/healthz", &[], Vec::new())
        .await;
    assert_eq!(r.status, 200);
    // The API works over TLS too.
    let started: cachet_proto::v1::RegisterStartResponse = client
        .post_unsigned(
            "/api/v1/register/start",
            &cachet_proto::v1::RegisterStart {
                identifier: phone(),
            },
        )
        .await
        .decode();
    assert!(started.challenge_id.starts_with("c_"));

    // The handshake is TLS 1.3.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(generated.cert.der().to_vec()))
        .expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(s.running().local_addr())
        .await
        .expect("connect");
    let tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    // Plain HTTP on the TLS port gets nowhere.
    let plain = format!("http://{}/healthz", s.running().local_addr());
    assert!(reqwest::Client::new().get(plain).send().await.is_err());
}
