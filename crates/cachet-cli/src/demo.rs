//! `cachet demo`: the whole protocol, end to end, on a private data server on loopback.
//!
//! Two doctors and a patient register; they exchange a message and its read receipt, a
//! multi-megabyte attachment, a patient case that a second doctor joins later; the patient
//! reinstalls and still reads what was sent to the old keys; fingerprints are compared and
//! a substituted key is caught; a doctor who lost his phone recovers his keys with a
//! password through the data server and a key server. At the end the server's files are opened and searched:
//! they hold ciphertext only. Every step is checked; the first failure stops the demo with
//! an error (and a non-zero exit).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cachet_client::recovery::{Checks, RecoveryServers};
use cachet_client::{
    no_progress, Client, ClientError, ClientOptions, Conversation, Event, KeyHistory, MessageKind,
    NewProfile, TrustState, UnlockSecret,
};
use cachet_server::{RunningServer, ServerConfig};
use sha2::Digest;

use crate::error::CliError;
use crate::render;

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Keep the server's data (and the demo profiles) here; it must be empty or absent.
    /// `None` uses a temporary directory removed at the end.
    pub data_dir: Option<PathBuf>,
    /// Size of the generated attachment.
    pub attachment_bytes: usize,
    /// Draw progress bars (on a terminal).
    pub show_progress: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            data_dir: None,
            attachment_bytes: 5 * 1024 * 1024,
            show_progress: false,
        }
    }
}

/// What the demo did, for `--json` and for tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoReport {
    /// The steps that passed, in order.
    pub steps: Vec<String>,
    /// Where the server kept its data.
    pub server_data_dir: PathBuf,
    /// Every secret the demo sent (texts, case fields, file name), to search for.
    pub plaintexts: Vec<String>,
    /// Windows of the attachment's plaintext, hex, to search for.
    pub attachment_samples: Vec<String>,
    /// Rows per server table.
    pub tables: Vec<(String, i64)>,
    /// Files the server stored, and their total size.
    pub files_scanned: usize,
    /// Bytes searched.
    pub bytes_scanned: u64,
    /// Plaintexts found in the server's files (empty when all is well).
    pub found: Vec<String>,
}

/// Reads the newest one-time code for `identifier` from a development notifier's file
/// (lines `identifier<TAB>code`).
pub fn dev_code(codes_file: &Path, identifier: &str) -> Option<String> {
    let wanted = cachet_proto::normalise_identifier(identifier);
    let text = std::fs::read_to_string(codes_file).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| l.split_once('\t'))
        .find(|(id, _)| *id == wanted)
        .map(|(_, code)| code.trim().to_owned())
}

fn fail(message: impl Into<String>) -> CliError {
    CliError::Demo(message.into())
}

fn check(ok: bool, message: impl Into<String>) -> Result<(), CliError> {
    if ok {
        Ok(())
    } else {
        Err(fail(message))
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so the file is incompressible and
/// any window of it is distinctive.
fn generate(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

struct Person {
    name: &'static str,
    phone: &'static str,
    pin: &'static str,
}

const MARTIN: Person = Person {
    name: "Dr Alice Martin",
    phone: "+33 6 10 00 00 01",
    pin: "31704",
};
const KELLER: Person = Person {
    name: "Dr Bruno Keller",
    phone: "+33 6 10 00 00 02",
    pin: "58203",
};
const CAMILLE: Person = Person {
    name: "Camille Durand",
    phone: "+33 6 10 00 00 03",
    pin: "92618",
};

struct Demo<'a> {
    out: &'a mut dyn Write,
    server: Option<RunningServer>,
    server_dir: PathBuf,
    profiles: PathBuf,
    work: PathBuf,
    options: DemoOptions,
    report: DemoReport,
}

impl Demo<'_> {
    fn say(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.out, "{}", line.as_ref());
    }

    fn step(&mut self, title: &str) {
        let n = self.report.steps.len() + 1;
        self.say(format!("\n== {n}. {title}"));
    }

    fn passed(&mut self, title: &str) {
        self.report.steps.push(title.to_owned());
    }

    fn url(&self) -> String {
        self.server
            .as_ref()
            .map(|s| s.base_url())
            .unwrap_or_default()
    }

    fn secret(&mut self, text: &str) -> String {
        self.report.plaintexts.push(text.to_owned());
        text.to_owned()
    }

    async fn register(
        &mut self,
        who: &Person,
        profile: &str,
        previous: Option<KeyHistory>,
    ) -> Result<Client, CliError> {
        let options = ClientOptions::default();
        let pending = Client::start_registration(&self.url(), who.phone, options).await?;
        let codes = self.server_dir.join("dev-codes.txt");
        let mut code = None;
        for _ in 0..100 {
            code = dev_code(&codes, who.phone);
            if code.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let code = code.ok_or_else(|| fail(format!("no one-time code for {}", who.phone)))?;
        self.say(format!(
            "  {}: one-time code {code} for {} read from the development notifier",
            who.name, who.phone
        ));
        let client = pending
            .finish(NewProfile {
                dir: &self.profiles.join(profile),
                code: &code,
                display_name: who.name,
                secret: &UnlockSecret::new(who.pin),
                previous,
            })
            .await?;
        Ok(client)
    }

    fn texts(events: &[Event]) -> Vec<(String, String)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) if m.kind == MessageKind::Text => {
                    Some((m.sender_id.clone(), m.body.clone()))
                }
                _ => None,
            })
            .collect()
    }

    async fn send(
        &mut self,
        from: &Client,
        to: &Client,
        to_name: &str,
        text: &str,
    ) -> Result<(), CliError> {
        let text = self.secret(text);
        from.send_text(to.user_id(), &text).await?;
        self.say(format!(
            "  {} -> {to_name}: sent \"{text}\"",
            from.display_name()
        ));
        Ok(())
    }

    /// A new installation of `name` adds Dr Martin back and reads `text`, which he sent
    /// to the old keys (saying how it `opened`); then Dr Martin's app learns the new keys.
    /// Both reinstallations of the demo (with a key history, after a recovery) do this.
    async fn back_with_martin(
        &mut self,
        installation: &Client,
        name: &str,
        martin: &Client,
        (text, opened): (&str, &str),
    ) -> Result<(), CliError> {
        installation
            .add_contact(martin.user_id(), Some("dr-martin"))
            .await?;
        self.expect_text(installation, martin, text).await?;
        self.say(opened);
        let report = martin
            .refresh_contact(installation.user_id())
            .await?
            .ok_or_else(|| fail(format!("Dr Martin did not see {name}'s new keys")))?;
        self.say(format!(
            "  Dr Martin's app: {}",
            render::key_change(&report)
        ));
        Ok(())
    }

    async fn expect_text(
        &mut self,
        who: &Client,
        from: &Client,
        text: &str,
    ) -> Result<Vec<Event>, CliError> {
        let events = who.receive(0).await?;
        let got = Self::texts(&events);
        let found = got
            .iter()
            .any(|(sender, body)| sender == from.user_id() && body == text);
        for (sender, body) in &got {
            let name = if sender == from.user_id() {
                from.display_name().to_owned()
            } else {
                sender.clone()
            };
            self.say(format!(
                "  {} received from {name}: \"{body}\"",
                who.display_name()
            ));
        }
        check(
            found,
            format!("{} did not receive \"{text}\"", who.display_name()),
        )?;
        Ok(events)
    }

    async fn start_server(&mut self) -> Result<(), CliError> {
        self.step("A data server on loopback");
        let config = ServerConfig {
            listen: Some(([127, 0, 0, 1], 0).into()),
            ..ServerConfig::for_data_dir(&self.server_dir)
        };
        let server = cachet_server::spawn(config).await?;
        self.say(format!(
            "  listening on {} with SQLite and blobs in {}",
            server.base_url(),
            self.server_dir.display()
        ));
        self.server = Some(server);
        self.passed("server");
        Ok(())
    }

    async fn run(&mut self) -> Result<(), CliError> {
        self.start_server().await?;

        self.step("Registration: two doctors and a patient");
        self.say("  each installation generates a Box Key, a Sign Key, a Database Key and a Local File Key;");
        self.say("  the keys are sealed under a master key protected by the PIN through Argon2id");
        let martin = self.register(&MARTIN, "martin", None).await?;
        let keller = self.register(&KELLER, "keller", None).await?;
        let camille = self.register(&CAMILLE, "camille", None).await?;
        for c in [&martin, &keller, &camille] {
            self.say(format!(
                "  registered {} as {} (key version {}, local database: SQLCipher {})",
                c.display_name(),
                c.user_id(),
                c.key_version(),
                c.database_cipher_version()?
            ));
        }
        self.passed("registration");

        self.step("Contact discovery by hashed phone number");
        martin
            .add_contact_by_identifier(CAMILLE.phone, Some("camille"))
            .await?;
        martin
            .add_contact_by_identifier(KELLER.phone, Some("keller"))
            .await?;
        camille
            .add_contact_by_identifier(MARTIN.phone, Some("dr-martin"))
            .await?;
        keller
            .add_contact_by_identifier(MARTIN.phone, Some("dr-martin"))
            .await?;
        self.say(format!(
            "  Dr Martin found Camille ({}) and Dr Keller; the server saw only SHA-256 hashes of the numbers",
            camille.user_id()
        ));
        self.passed("contacts");

        self.step("A message and its read receipt (crypto_box)");
        martin
            .send_typing(&Conversation::Direct(camille.user_id().to_owned()), true)
            .await?;
        let events = camille.receive(0).await?;
        check(
            events
                .iter()
                .any(|e| matches!(e, Event::Typing { typing: true, .. })),
            "the typing event did not arrive",
        )?;
        self.say("  Camille sees: Dr Alice Martin is typing…");
        let t1 = "Your blood test results are in: everything is within normal ranges.";
        self.send(&martin, &camille, "Camille", t1).await?;
        self.expect_text(&camille, &martin, t1).await?;
        let marked = camille
            .mark_read(&Conversation::Direct(martin.user_id().to_owned()))
            .await?;
        check(marked == 1, "Camille had no unread message to mark")?;
        let events = martin.receive(0).await?;
        let receipt = events.iter().find_map(|e| match e {
            Event::ReadReceipt {
                from,
                message_ids,
                read_at,
            } if from == camille.user_id() => Some((message_ids.clone(), *read_at)),
            _ => None,
        });
        let (ids, at) = receipt.ok_or_else(|| fail("no read receipt arrived"))?;
        self.say(format!(
            "  Dr Alice Martin got a read receipt: Camille read message {} at {} UTC",
            ids.join(", "),
            render::time(at)
        ));
        let t2 = "Thank you, doctor! Should I still come on Friday?";
        self.send(&camille, &martin, "Dr Martin", t2).await?;
        self.expect_text(&martin, &camille, t2).await?;
        self.passed("message and read receipt");

        self.attachment(&martin, &camille).await?;
        self.case(&martin, &keller, &camille).await?;
        let camille = self.reinstall(&martin, camille).await?;
        self.verification(&martin, &camille).await?;
        self.lost_device(&martin, keller).await?;
        drop((martin, camille));
        self.server_storage().await?;
        Ok(())
    }

    async fn attachment(&mut self, martin: &Client, camille: &Client) -> Result<(), CliError> {
        let size = self.options.attachment_bytes;
        self.step(&format!(
            "A {:.1} MiB attachment: fresh key, 2 MiB chunks, checked byte for byte",
            size as f64 / 1048576.0
        ));
        let data = generate(size, 0x5eed_cafe_f00d_1234);
        let name = self.secret("chest-ct-scan-camille-durand.dcm");
        let src = self.work.join(&name);
        std::fs::write(&src, &data).map_err(|e| CliError::Io(format!("{}: {e}", src.display())))?;
        for at in [0, size / 2, size.saturating_sub(64)] {
            let end = (at + 64).min(size);
            if end > at + 16 {
                self.report
                    .attachment_samples
                    .push(hex::encode(&data[at..end]));
            }
        }
        let chunks = cachet_crypto::attachment::chunk_count(
            cachet_crypto::attachment::FormatVersion::V2,
            size as u64,
        );
        let bar = self.bar(size as u64, "Dr Martin uploads");
        let b = bar.clone();
        let sent = martin
            .send_file(
                &Conversation::Direct(camille.user_id().to_owned()),
                &src,
                &move |done, _| {
                    b.set_position(done);
                    true
                },
            )
            .await;
        bar.finish_and_clear();
        let sent = sent?;
        let id = sent.attachment_id.clone().unwrap_or_default();
        self.say(format!(
            "  Dr Martin sent {name} ({size} bytes) as {chunks} sealed chunks, attachment {id}"
        ));
        self.say("  the Attachment Key travelled to Camille inside a crypto_box'ed pointer");
        let events = camille.receive(0).await?;
        check(
            events.iter().any(|e| matches!(e, Event::Message(m) if m.attachment_id.as_deref() == Some(id.as_str()))),
            "the attachment pointer did not arrive",
        )?;
        let out = self.work.join("received.dcm");
        let bar = self.bar(size as u64, "Camille downloads");
        let b = bar.clone();
        let got = camille
            .fetch_attachment(&id, Some(&out), false, &move |done, _| {
                b.set_position(done);
                true
            })
            .await;
        bar.finish_and_clear();
        got?;
        let back =
            std::fs::read(&out).map_err(|e| CliError::Io(format!("{}: {e}", out.display())))?;
        check(
            back == data,
            "the downloaded file differs from the original",
        )?;
        self.say(format!(
            "  Camille downloaded and decrypted it: {} bytes, identical byte for byte (SHA-256 {})",
            back.len(),
            render::hex_snippet(&sha2::Sha256::digest(&back), 12)
        ));
        self.passed("attachment");
        Ok(())
    }

    fn bar(&self, total: u64, what: &str) -> indicatif::ProgressBar {
        if !self.options.show_progress {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "  {msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        bar
    }

    async fn case(
        &mut self,
        martin: &Client,
        keller: &Client,
        camille: &Client,
    ) -> Result<(), CliError> {
        self.step("A patient case that a second doctor joins later");
        let title = self.secret("Camille Durand: persistent dry cough");
        let mut fields = BTreeMap::new();
        for (k, v) in [
            ("patient", "Camille Durand, born 1984-03-12"),
            ("history", "dry cough for six weeks, non-smoker"),
            ("allergies", "penicillin"),
        ] {
            let v = self.secret(v);
            fields.insert(k.to_owned(), v);
        }
        let case = martin
            .create_case(&title, &fields, &[camille.user_id().to_owned()])
            .await?;
        self.say(format!(
            "  Dr Martin opened case {} \"{title}\" with a fresh case key, sealed to herself and Camille",
            case.case_id
        ));
        let c1 =
            self.secret("Chest X-ray shows no consolidation. I am referring you to pulmonology.");
        martin.send_case_message(&case.case_id, &c1).await?;
        self.say(format!("  Dr Martin in the case: sent \"{c1}\""));
        self.expect_text(camille, martin, &c1).await?;
        let c2 = self.secret("Thank you. The cough is worse at night.");
        camille.send_case_message(&case.case_id, &c2).await?;
        self.say(format!("  Camille in the case: sent \"{c2}\""));
        self.expect_text(martin, camille, &c2).await?;

        martin
            .add_case_participants(&case.case_id, &[keller.user_id().to_owned()])
            .await?;
        self.say("  Dr Martin added Dr Keller: the case key was sealed to his Box Key");
        let cases = keller.cases().await?;
        let joined = cases
            .iter()
            .find(|c| c.case_id == case.case_id)
            .ok_or_else(|| fail("Dr Keller does not see the case"))?;
        check(
            joined.title == title && joined.fields == fields,
            "Dr Keller decrypted other case fields",
        )?;
        self.say(format!(
            "  Dr Keller decrypted the case \"{}\":",
            joined.title
        ));
        for (k, v) in &joined.fields {
            self.say(format!("      {k}: \"{v}\""));
        }
        let history = keller.fetch_case_history(&case.case_id).await?;
        let read: Vec<String> = Self::texts(&history).into_iter().map(|(_, b)| b).collect();
        for body in &read {
            self.say(format!("  Dr Keller read from the start: \"{body}\""));
        }
        check(
            read == [c1.clone(), c2.clone()],
            "Dr Keller did not read the whole history in order",
        )?;
        let c3 = self.secret("I will see Camille on Thursday; please bring the CT scan.");
        keller.send_case_message(&case.case_id, &c3).await?;
        self.say(format!("  Dr Keller in the case: sent \"{c3}\""));
        self.expect_text(martin, keller, &c3).await?;
        self.expect_text(camille, keller, &c3).await?;
        self.passed("patient case");
        Ok(())
    }

    async fn reinstall(&mut self, martin: &Client, camille: Client) -> Result<Client, CliError> {
        self.step("A reinstallation: old messages still read through the previous keys");
        let r1 = "Reminder: fasting blood test tomorrow at 8:00.";
        self.send(martin, &camille, "Camille", r1).await?;
        let r2 = "Sent from my old phone just before reinstalling the app.";
        self.send(&camille, martin, "Dr Martin", r2).await?;
        self.say("  (neither has received yet)");
        let history = camille.export_key_history()?;
        drop(camille);
        self.say("  Camille reinstalls the app; the new installation carries her key history");
        self.say("  (later, password recovery restores it on a new device) and signs its new keys");
        self.say("  with the previous Sign Key");
        let camille = self
            .register(&CAMILLE, "camille-reinstalled", Some(history))
            .await?;
        check(
            camille.key_version() == 2,
            "the new installation is not key version 2",
        )?;
        self.say(format!(
            "  Camille's new installation: key version {} (new Box and Sign keys)",
            camille.key_version()
        ));
        let opened = "  -> opened with Camille's previous Box Key (version 1)";
        self.back_with_martin(&camille, "Camille", martin, (r1, opened))
            .await?;
        let events = self.expect_text(martin, &camille, r2).await?;
        self.say("  -> opened with Camille's previous Box Key (version 1) from her key history");
        for e in &events {
            if let Event::KeyChanged(r) = e {
                self.say(format!(
                    "  contact update from the server: {}",
                    render::key_change(r)
                ));
            }
        }
        let r3 = "Welcome back. Did the fasting test go well?";
        self.send(martin, &camille, "Camille", r3).await?;
        self.expect_text(&camille, martin, r3).await?;
        self.say("  -> new messages use the new keys");
        self.passed("reinstallation");
        Ok(camille)
    }

    async fn recovery_checks(
        &mut self,
        servers: &RecoveryServers,
        key_dir: &Path,
        who: &Person,
    ) -> Result<Checks, CliError> {
        let started = servers.start(who.phone).await?;
        let mut codes = (None, None);
        for _ in 0..100 {
            codes = (
                dev_code(&self.server_dir.join("dev-codes.txt"), who.phone),
                dev_code(&key_dir.join("dev-codes.txt"), who.phone),
            );
            if codes.0.is_some() && codes.1.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (Some(data), Some(key)) = codes else {
            return Err(fail("no one-time codes for the recovery checks"));
        };
        self.say(format!(
            "  {}: code {data} from the data server, code {key} from the key server (two independent checks)",
            who.name
        ));
        Ok(started.with_codes(&data, &key))
    }

    async fn lost_device(&mut self, martin: &Client, keller: Client) -> Result<(), CliError> {
        self.step("A lost device recovered with a password (data server + key server)");
        let key_dir = self.server_dir.with_file_name("keyserver");
        let key_server =
            cachet_keyserver::spawn(cachet_keyserver::KeyServerConfig::for_data_dir(&key_dir))
                .await?;
        self.say(format!(
            "  a key server on {}, its own SQLite database in {}",
            key_server.url(),
            key_dir.display()
        ));
        let result = self
            .lost_device_steps(martin, keller, &key_server.url(), &key_dir)
            .await;
        let _ = key_server.shutdown().await;
        result
    }

    async fn lost_device_steps(
        &mut self,
        martin: &Client,
        keller: Client,
        key_url: &str,
        key_dir: &Path,
    ) -> Result<(), CliError> {
        let params = cachet_recovery::HardeningParams::RECOMMENDED;
        let servers = RecoveryServers::new(&self.url(), key_url, params)?;
        let password = "correct horse battery staple";
        let checks = self.recovery_checks(&servers, key_dir, &KELLER).await?;
        keller
            .enable_recovery(key_url, &checks, password, params)
            .await?;
        self.say("  Dr Keller enables recovery: his key ring is sealed under a key from a two-server OPRF");
        self.say(
            "  of his password (each server holds one key share and proves its answer with DLEQ),",
        );
        self.say("  then Argon2id; both servers keep a copy of the sealed ring");
        let t = "Dr Keller, the MRI of our patient is scheduled for Monday.";
        self.send(martin, &keller, "Dr Keller", t).await?;
        let user_id = keller.user_id().to_owned();
        drop(keller);
        self.say("  Dr Keller loses his phone (its profile is gone)");

        let checks = self.recovery_checks(&servers, key_dir, &KELLER).await?;
        let recovered = Client::recover(
            &self.profiles.join("keller-recovered"),
            &servers,
            KELLER.phone,
            &checks,
            password,
            KELLER.name,
            &UnlockSecret::new(KELLER.pin),
            ClientOptions::default(),
        )
        .await?;
        let keller = recovered.client;
        check(
            keller.user_id() == user_id,
            "the recovery registered another account",
        )?;
        self.say(format!(
            "  on a new phone: both checks passed, OPRF run with both servers, {} key generation(s) recovered;",
            recovered.recovered_generations
        ));
        self.say(format!(
            "  the new installation (key version {}) is announced signed by the recovered Sign Key",
            keller.key_version()
        ));
        let opened = "  -> the message sent to the lost phone opened with the recovered Box Key";
        self.back_with_martin(&keller, "Dr Keller", martin, (t, opened))
            .await?;
        let err = servers
            .recover(
                &self.recovery_checks(&servers, key_dir, &KELLER).await?,
                "wrong horse battery staple",
            )
            .await;
        check(
            matches!(err, Err(ClientError::Recovery(_))),
            "a wrong password opened the key ring",
        )?;
        self.say("  a wrong password: the ring does not open, and both servers count the failure");
        self.passed("lost device recovered");
        Ok(())
    }

    async fn verification(&mut self, martin: &Client, camille: &Client) -> Result<(), CliError> {
        self.step("Fingerprint verification, then a substituted key caught");
        let c_in_martin = martin.find_contact(camille.user_id())?;
        let m_in_camille = camille.find_contact(martin.user_id())?;
        let on_martin = martin.safety_number(&c_in_martin)?;
        let on_camille = camille.safety_number(&m_in_camille)?;
        self.say(format!(
            "  safety number on Dr Martin's screen: {}",
            on_martin.digits
        ));
        self.say(format!(
            "  safety number on Camille's screen:   {}",
            on_camille.digits
        ));
        check(
            on_martin.digits == on_camille.digits,
            "the safety numbers differ",
        )?;
        self.say("  they match; Camille's QR code, as Dr Martin's camera would scan it:");
        let qr = render::qr(&on_camille.qr_payload);
        for line in qr.lines() {
            self.say(format!("    {line}"));
        }
        martin.verify_scanned(&c_in_martin, &on_camille.qr_payload)?;
        camille.mark_verified(&m_in_camille)?;
        self.say("  both marked each other verified");

        self.say(
            "  now someone who can read one-time codes (a server insider) registers Camille's",
        );
        self.say("  number with keys of their own, without her previous Sign Key");
        let impostor = self.register(&CAMILLE, "impostor", None).await?;
        let events = martin.receive(0).await?;
        let alarm = events.iter().find_map(|e| match e {
            Event::KeyChanged(r) if r.is_alarm() => Some(r.clone()),
            _ => None,
        });
        let alarm = alarm.ok_or_else(|| fail("the substituted key went unnoticed"))?;
        self.say(render::key_change(&alarm));
        let substituted = martin.find_contact(camille.user_id())?;
        check(
            matches!(substituted.trust, TrustState::KeyChanged { .. }),
            "Camille is still marked verified",
        )?;
        let now_on_martin = martin.safety_number(&substituted)?;
        self.say(format!(
            "  safety number Dr Martin would now compare: {}",
            now_on_martin.digits
        ));
        self.say(format!(
            "  what the real Camille shows:               {}",
            on_camille.digits
        ));
        check(
            now_on_martin.digits != on_camille.digits,
            "the safety number did not change",
        )?;
        match martin
            .create_case("Follow-up", &BTreeMap::new(), &[camille.user_id().to_owned()])
            .await
        {
            Err(ClientError::KeyChanged { .. }) => {
                self.say("  Dr Martin tries to open a new case with Camille: REFUSED, no case key is sealed to the new key")
            }
            Ok(_) => return Err(fail("a case key was shared with a substituted key")),
            Err(e) => return Err(e.into()),
        }
        match martin
            .send_text(camille.user_id(), "Are you there?")
            .await
        {
            Err(ClientError::KeyChanged { .. }) => self.say(
                "  and to send her a text: REFUSED, nothing goes to keys that changed after verification",
            ),
            Ok(_) => return Err(fail("a text was sent to a substituted key")),
            Err(e) => return Err(e.into()),
        }
        let file = self.work.join("note.txt");
        std::fs::write(&file, b"x").map_err(|e| CliError::Io(e.to_string()))?;
        match martin
            .send_file(
                &Conversation::Direct(camille.user_id().to_owned()),
                &file,
                &no_progress,
            )
            .await
        {
            Err(ClientError::KeyChanged { .. }) => self.say(
                "  and to send her an attachment: REFUSED, no attachment key is shared either",
            ),
            Ok(_) => return Err(fail("an attachment key was shared with a substituted key")),
            Err(e) => return Err(e.into()),
        }
        let history = martin.messages(&Conversation::Direct(camille.user_id().to_owned()), 100)?;
        self.say(format!(
            "  existing data stays readable: {} messages with Camille in Dr Martin's encrypted database",
            history.len()
        ));
        let audit = martin.audit_log(true).await?;
        self.say(format!(
            "  the impostor's keys are a self-signed block in Camille's chain, shown to everyone: the trust log holds {} blocks, its signed head extends the one Dr Martin's client saved, and a full replay finds {} chains that follow the rules",
            audit.size,
            audit.chains_replayed.unwrap_or(0)
        ));
        drop(impostor);
        self.passed("verification");
        Ok(())
    }

    async fn server_storage(&mut self) -> Result<(), CliError> {
        self.step("What the server stored: ciphertext only");
        if let Some(server) = self.server.take() {
            server.shutdown().await?;
        }
        let db_path = self
            .server_dir
            .join(cachet_server::store::sqlite::DATABASE_FILE);
        let conn = rusqlite::Connection::open_with_flags(
            &db_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .map_err(|e| CliError::Io(format!("{}: {e}", db_path.display())))?;
        let tables = table_names(&conn)?;
        for t in &tables {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
                .map_err(|e| CliError::Io(e.to_string()))?;
            self.report.tables.push((t.clone(), n));
        }
        let counts: Vec<String> = self
            .report
            .tables
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        self.say(format!("  rows per table: {}", counts.join(", ")));
        for (table, column) in [
            ("mailbox", None),
            ("messages", None),
            ("case_messages", None),
            ("case_keys", Some("ciphertext")),
        ] {
            if let Some(snippet) = first_blob(&conn, table, column)? {
                self.say(format!("  {table}: {snippet}"));
            }
        }
        let files = cachet_server::blob::files_under(&self.server_dir);
        let blobs: Vec<&PathBuf> = files
            .iter()
            .filter(|p| p.starts_with(self.server_dir.join(cachet_server::BLOB_DIR)))
            .collect();
        let blob_bytes: u64 = blobs
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        self.say(format!(
            "  attachment blobs: {} files, {blob_bytes} bytes{}",
            blobs.len(),
            blobs
                .first()
                .and_then(|p| std::fs::read(p).ok())
                .map(|b| format!(", starting {}", render::hex_snippet(&b, 24)))
                .unwrap_or_default()
        ));
        let mut needles: Vec<(String, Vec<u8>)> = self
            .report
            .plaintexts
            .iter()
            .map(|p| (format!("\"{p}\""), p.as_bytes().to_vec()))
            .collect();
        for s in &self.report.attachment_samples {
            if let Ok(bytes) = hex::decode(s) {
                needles.push((format!("attachment bytes {}", &s[..16]), bytes));
            }
        }
        let mut found = Vec::new();
        let mut total = 0u64;
        for f in &files {
            let Ok(bytes) = std::fs::read(f) else {
                continue;
            };
            total += bytes.len() as u64;
            for (label, needle) in &needles {
                if contains(&bytes, needle) {
                    found.push(format!("{label} in {}", f.display()));
                }
            }
        }
        self.report.files_scanned = files.len();
        self.report.bytes_scanned = total;
        self.report.found = found.clone();
        self.say(format!(
            "  searched {} server files ({total} bytes) for the {} plaintexts sent: {}",
            files.len(),
            needles.len(),
            if found.is_empty() {
                "none found".to_owned()
            } else {
                format!("FOUND {}", found.join("; "))
            }
        ));
        check(found.is_empty(), "plaintext found on the server")?;
        self.passed("server storage");
        Ok(())
    }
}

fn table_names(conn: &rusqlite::Connection) -> Result<Vec<String>, CliError> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name")
        .map_err(|e| CliError::Io(e.to_string()))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| CliError::Io(e.to_string()))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::Io(e.to_string()))
}

/// The first BLOB value of a table (in `column`, or any column), as a hex snippet.
fn first_blob(
    conn: &rusqlite::Connection,
    table: &str,
    column: Option<&str>,
) -> Result<Option<String>, CliError> {
    let sql = format!("SELECT * FROM \"{table}\" LIMIT 1");
    let Ok(mut stmt) = conn.prepare(&sql) else {
        return Ok(None);
    };
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut rows = stmt.query([]).map_err(|e| CliError::Io(e.to_string()))?;
    let Some(row) = rows.next().map_err(|e| CliError::Io(e.to_string()))? else {
        return Ok(None);
    };
    for (i, name) in names.iter().enumerate() {
        if column.is_some_and(|c| c != name) {
            continue;
        }
        if let Ok(rusqlite::types::ValueRef::Blob(b)) = row.get_ref(i) {
            if b.len() > 32 {
                return Ok(Some(format!(
                    "{name} = {} ({} bytes)",
                    render::hex_snippet(b, 32),
                    b.len()
                )));
            }
        }
    }
    Ok(None)
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs the demo, writing its narration to `out`.
pub async fn run(options: DemoOptions, out: &mut dyn Write) -> Result<DemoReport, CliError> {
    let temp =
        tempfile::tempdir().map_err(|e| CliError::Io(format!("temporary directory: {e}")))?;
    let root = match &options.data_dir {
        Some(dir) => {
            if dir.exists()
                && std::fs::read_dir(dir)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(true)
            {
                return Err(CliError::usage(
                    format!("{} is not empty", dir.display()),
                    "give --data-dir an empty or new directory",
                ));
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::Io(format!("{}: {e}", dir.display())))?;
            dir.clone()
        }
        None => temp.path().to_path_buf(),
    };
    let server_dir = root.join("server");
    let profiles = root.join("profiles");
    let work = temp.path().join("files");
    std::fs::create_dir_all(&work).map_err(|e| CliError::Io(e.to_string()))?;
    let mut demo = Demo {
        out,
        server: None,
        server_dir: server_dir.clone(),
        profiles: profiles.clone(),
        work,
        options,
        report: DemoReport {
            steps: Vec::new(),
            server_data_dir: server_dir.clone(),
            plaintexts: Vec::new(),
            attachment_samples: Vec::new(),
            tables: Vec::new(),
            files_scanned: 0,
            bytes_scanned: 0,
            found: Vec::new(),
        },
    };
    demo.say(
        "cachet demo: end-to-end encrypted messaging for healthcare, on a private local server",
    );
    let result = demo.run().await;
    if let Some(server) = demo.server.take() {
        let _ = server.shutdown().await;
    }
    match result {
        Ok(()) => {
            let n = demo.report.steps.len();
            demo.say(format!("\nAll {n} steps passed."));
            if demo.options.data_dir.is_some() {
                demo.say(format!(
                    "Server data kept in {}; the demo profiles in {} (PINs 31704, 58203, 92618).",
                    server_dir.display(),
                    profiles.display()
                ));
            }
            Ok(demo.report)
        }
        Err(e) => {
            demo.say(format!("\nFAILED: {e}"));
            Err(e)
        }
    }
}
