//! The SMTP notifier against a minimal SMTP server on loopback.

use cachet_proto::v1::RegisterStart;
use cachet_server::NotifierKind;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::common::*;

/// Accepts one SMTP session and returns the DATA it received.
async fn fake_smtp(listener: TcpListener) -> String {
    let (stream, _) = listener.accept().await.expect("accept");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 test ESMTP\r\n").await.expect("greet");
    let mut data = String::new();
    let mut in_data = false;
    while let Some(line) = lines.next_line().await.expect("line") {
        if in_data {
            if line == "." {
                in_data = false;
                write.write_all(b"250 queued\r\n").await.expect("w");
            } else {
                data.push_str(&line);
                data.push('\n');
            }
            continue;
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250 test\r\n"
        } else if upper.starts_with("DATA") {
            in_data = true;
            b"354 go ahead\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await.expect("w");
            break;
        } else {
            b"250 ok\r\n"
        };
        write.write_all(reply).await.expect("w");
    }
    data
}

#[tokio::test]
async fn codes_go_out_by_e_mail() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mail = tokio::spawn(fake_smtp(listener));
    let s = TestServer::start_with(|c| {
        c.notifier = Some(NotifierKind::Smtp);
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        c.smtp_from = Some("cachet <no-reply@example.org>".into());
    })
    .await;
    let r = s
        .post_unsigned(
            "/api/v1/register/start",
            &RegisterStart {
                identifier: "Doctor@Clinic.example".into(),
            },
        )
        .await;
    assert_eq!(r.status, 200);
    let data = mail.await.expect("mail session");
    assert!(data.contains("doctor@clinic.example"), "{data}");
    assert!(data.contains("registration code is "), "{data}");

    // Phone numbers cannot be reached by e-mail.
    s.post_unsigned(
        "/api/v1/register/start",
        &RegisterStart {
            identifier: phone(),
        },
    )
    .await
    .assert_error(400, "identifier_not_deliverable");
}
