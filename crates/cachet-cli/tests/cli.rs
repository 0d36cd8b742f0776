//! The `cachet` binary against a real server on loopback: a working flow, and bad input
//! (unknown contact, wrong PIN, missing file, server down) giving a one-line reason, a
//! hint, a meaningful exit code, and no loss of local data.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use cachet_server::{RunningServer, ServerConfig};

const PIN: &str = "31415";

struct Env {
    server: Option<RunningServer>,
    url: String,
    data: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let config = ServerConfig {
            listen: Some(([127, 0, 0, 1], 0).into()),
            ..ServerConfig::for_data_dir(data.path())
        };
        let server = cachet_server::spawn(config).await.unwrap();
        Self {
            url: server.base_url(),
            server: Some(server),
            data,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn profile(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// `cachet --profile <name> ...` with a private config directory and no PIN set.
    fn cachet(&self, profile: &str) -> Command {
        let mut cmd = cachet_in(self.home.path());
        cmd.arg("--profile")
            .arg(self.profile(profile))
            .arg("--server")
            .arg(&self.url);
        cmd
    }

    fn register(&self, profile: &str, phone: &str, name: &str) {
        self.cachet(profile)
            .env("CACHET_PIN", PIN)
            .args(["register", phone, "--name", name, "--dev-codes"])
            .arg(self.data.path().join("dev-codes.txt"))
            .assert()
            .success();
    }

    /// Registers Dr Alice and Bob (profiles `alice` and `bob`) at these numbers, and has
    /// Alice add Bob as `bob`: the start of every conversation through the CLI.
    fn register_alice_with_contact_bob(&self, alice_phone: &str, bob_phone: &str) {
        self.register("alice", alice_phone, "Dr Alice");
        self.register("bob", bob_phone, "Bob");
        self.ok("alice", &["contacts", "add", bob_phone, "--as", "bob"]);
    }

    /// Runs `cachet --profile <profile> ARGS` and returns what it did.
    fn run(&self, profile: &str, args: &[&str]) -> Output {
        self.cachet(profile).args(args).output().unwrap()
    }

    /// Runs `cachet --profile <profile> ARGS`, which must succeed.
    fn ok(&self, profile: &str, args: &[&str]) {
        self.cachet(profile).args(args).assert().success();
    }

    /// Runs `cachet --profile <profile> ARGS` with the profile's PIN in `CACHET_PIN`.
    fn with_pin(&self, profile: &str, args: &[&str]) -> Output {
        self.cachet(profile)
            .env("CACHET_PIN", PIN)
            .args(args)
            .output()
            .unwrap()
    }

    /// The same, which must succeed.
    fn with_pin_ok(&self, profile: &str, args: &[&str]) {
        self.cachet(profile)
            .env("CACHET_PIN", PIN)
            .args(args)
            .assert()
            .success();
    }

    /// Creates the key of operator `name` (`<home>/<name>.key`) with `cachet operator
    /// keygen` and registers it with `cachet server add-operator`.
    fn add_operator(&self, name: &str) {
        let key = self.home.path().join(format!("{name}.key"));
        let out = self
            .cachet("unused")
            .args(["operator", "keygen", "--out"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let public = stdout(&out)
            .lines()
            .find_map(|l| l.strip_prefix("public key: ").map(|k| k.trim().to_owned()))
            .unwrap();
        self.cachet("unused")
            .args(["server", "add-operator", name, &public, "--data-dir"])
            .arg(self.data.path())
            .assert()
            .success();
    }

    /// Runs `cachet operator --name <name> --key <its key> ARGS`.
    fn operator(&self, name: &str, args: &[&str]) -> Output {
        self.cachet("unused")
            .args(["operator", "--name", name, "--key"])
            .arg(self.home.path().join(format!("{name}.key")))
            .args(args)
            .output()
            .unwrap()
    }

    async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.unwrap();
        }
    }
}

/// `register PHONE --name NAME --code CODE`.
fn registration<'a>(phone: &'a str, name: &'a str, code: &'a str) -> [&'a str; 6] {
    ["register", phone, "--name", name, "--code", code]
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_one_line_error(out: &Output, code: i32, reason: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(out));
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(reason), "{err}");
    assert!(lines.len() <= 2, "{err}");
    assert!(
        lines
            .get(1)
            .is_some_and(|l| l.trim_start().starts_with("hint: ")),
        "{err}"
    );
}

fn profile_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| (e.path(), e.metadata().unwrap().len()))
        .collect();
    out.sort();
    out
}

#[test]
fn help_explains_exit_codes_and_configuration() {
    let out = Command::cargo_bin("cachet")
        .unwrap()
        .arg("--help")
        .output()
        .unwrap();
    let text = stdout(&out);
    for needle in [
        "Exit codes",
        "7  refused by key verification",
        "CACHET_PIN",
        "cachet demo",
        "config.toml",
    ] {
        assert!(text.contains(needle), "{needle} missing from --help");
    }
    let out = Command::cargo_bin("cachet")
        .unwrap()
        .arg("send")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn no_profile_is_reported_with_a_hint() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("cachet")
        .unwrap()
        .env("XDG_CONFIG_HOME", home.path())
        .arg("--profile")
        .arg(home.path().join("nothing"))
        .arg("contacts")
        .output()
        .unwrap();
    assert_one_line_error(&out, 4, "no cachet profile");
    assert!(stderr(&out).contains("cachet register"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_send_and_read_through_the_cli() {
    let env = Env::start().await;
    env.register_alice_with_contact_bob("+33611111111", "+33622222222");
    let out = env.run("alice", &["send", "bob", "Results", "are", "normal"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("sent to bob: \"Results are normal\""));
    // Bob is still unlocked from registration (the unlock is remembered for 10 minutes).
    let out = env.run("bob", &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"Results are normal\""),
        "{}",
        stdout(&out)
    );
    let out = env.run("bob", &["--json", "contacts"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["display_name"], "Dr Alice");
    let out = env.run("alice", &["verify", "bob", "--no-qr"]);
    assert!(stdout(&out).contains("Safety number with bob"));
    env.ok("alice", &["verify", "bob", "--confirm"]);
    let out = env.run("alice", &["status"]);
    assert!(stdout(&out).contains("unlocked"));

    // An attachment, then every file either profile holds is the owner's alone.
    let scan = env.home.path().join("scan.pdf");
    std::fs::write(&scan, vec![3u8; 40_000]).unwrap();
    let out = env
        .cachet("alice")
        .arg("attach")
        .arg("bob")
        .arg(&scan)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run("bob", &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut files = Vec::new();
    for profile in ["alice", "bob"] {
        assert_private(&env.profile(profile), &mut files);
    }
    for expected in ["profile.json", "cachet.db", "session.json"] {
        assert!(files.iter().any(|f| f == expected), "{expected}: {files:?}");
    }
}

/// Asserts that `dir` and everything in it is the owner's alone (0700 directories, 0600
/// files); collects the file names.
fn assert_private(dir: &Path, files: &mut Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            assert_private(&entry.path(), files);
        } else {
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", entry.path().display());
            files.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn a_pin_with_a_pattern_is_refused_at_registration() {
    let home = tempfile::tempdir().unwrap();
    for pin in ["12345", "00000", "54321", "24680", "12121"] {
        let out = register_in(home.path(), "p", pin, "http://127.0.0.1:9", "+33655555556");
        assert_one_line_error(&out, 2, "PIN");
        assert!(stderr(&out).contains("pattern"), "{pin}: {}", stderr(&out));
        assert!(!home.path().join("p").exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_wrong_pins_from_twenty_processes_at_once_are_all_counted() {
    let env = Env::start().await;
    env.register("alice", "+33666666661", "Dr Alice");
    env.ok("alice", &["lock"]);
    let runs: Vec<std::process::Child> = (0..20)
        .map(|_| {
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("cachet"));
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", env.home.path())
                .env("XDG_CONFIG_HOME", env.home.path().join("config"))
                .env("CACHET_PIN", "00000")
                .arg("--profile")
                .arg(env.profile("alice"))
                .arg("unlock")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    let outputs: Vec<Output> = runs
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let said = |needle: &str| {
        outputs
            .iter()
            .filter(|o| o.status.code() == Some(3) && stderr(o).contains(needle))
            .count()
    };
    // Two free attempts and a third that starts the 30 s lock-out were tried; the other
    // seventeen were refused without trying the PIN.
    assert_eq!(said("wrong PIN or passphrase"), 3);
    assert_eq!(said("too many wrong attempts"), 17);
    let out = env.run("alice", &["--json", "status"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["failed_unlocks"], 20);
    // Even the right PIN waits.
    let out = env.with_pin("alice", &["contacts"]);
    assert_one_line_error(&out, 3, "too many wrong attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_a_reason_a_hint_and_loses_nothing() {
    let mut env = Env::start().await;
    env.register_alice_with_contact_bob("+33633333333", "+33644444444");
    env.ok("alice", &["send", "bob", "first"]);
    let before = profile_files(&env.profile("alice"));

    // Unknown contact.
    let out = env.run("alice", &["send", "zed", "hello"]);
    assert_one_line_error(&out, 4, "unknown contact \"zed\"");

    // Missing file.
    let out = env.run("alice", &["attach", "bob", "/nonexistent/scan.pdf"]);
    assert_one_line_error(&out, 4, "/nonexistent/scan.pdf");

    // Wrong PIN, after locking.
    env.ok("alice", &["lock"]);
    let out = env
        .cachet("alice")
        .env("CACHET_PIN", "00000")
        .arg("contacts")
        .output()
        .unwrap();
    assert_one_line_error(&out, 3, "wrong PIN or passphrase");
    let out = env.run("alice", &["contacts"]);
    assert_one_line_error(&out, 3, "locked");
    // The right PIN still works, and the wrong one changed nothing.
    env.with_pin_ok("alice", &["unlock"]);

    // A weak PIN at registration is refused before anything is sent.
    let out = env
        .cachet("carol")
        .env("CACHET_PIN", "123")
        .args(registration("+33655555555", "Carol", "000000"))
        .output()
        .unwrap();
    assert_one_line_error(&out, 2, "PIN");
    assert!(!env.profile("carol").exists());

    // Server down.
    env.stop().await;
    let out = env.run("alice", &["send", "bob", "are you there?"]);
    assert_one_line_error(&out, 5, "cannot reach the server");
    let out = env.run("alice", &["inbox", "bob", "--offline"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"first\""));

    // Nothing was lost: the profile's files are all there (the database may only grow).
    let after = profile_files(&env.profile("alice"));
    for (path, len) in &before {
        if path.ends_with("session.json") || path.ends_with("lockout.json") {
            continue;
        }
        let now = after.iter().find(|(p, _)| p == path).map(|(_, l)| *l);
        assert!(
            now.is_some_and(|l| l >= *len),
            "{} shrank or vanished",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_init_seal_unseal_and_audit_through_the_cli() {
    let env = Env::start().await;
    env.add_operator("alice");

    // Without a key: a one-line reason and a hint.
    let out = env.run("unused", &["operator", "--name", "alice", "seal"]);
    assert_one_line_error(&out, 2, "no operator key given");

    let as_alice = |args: &[&str]| env.operator("alice", args);
    // `init`, `rotate` or `reshare` into shares with a threshold of 2, written to `dir`.
    let split = |command: &str, shares: &str, dir: &Path, holders: &[&str]| {
        let mut args = vec![command, "--shares", shares, "--threshold", "2"];
        args.extend_from_slice(holders);
        args.extend(["--out-dir", dir.to_str().unwrap()]);
        as_alice(&args)
    };
    let shares = env.home.path().join("shares");
    let out = split("init", "3", &shares, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    for i in 1..=3 {
        assert!(shares.join(format!("share-{i}.txt")).is_file());
    }
    let out = as_alice(&["seal"]);
    assert!(stdout(&out).contains("SEALED"), "{}", stdout(&out));
    let share = |i: u32| shares.join(format!("share-{i}.txt")).display().to_string();
    let out = as_alice(&["unseal", "--share-file", &share(1)]);
    assert!(stdout(&out).contains("1 of 2"), "{}", stdout(&out));
    let out = as_alice(&["unseal", "--share-file", &share(3)]);
    assert!(stdout(&out).contains("unsealed"), "{}", stdout(&out));
    let out = env.run("unused", &["operator", "status"]);
    assert!(stdout(&out).contains("unsealed"), "{}", stdout(&out));

    let out = as_alice(&["audit"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stdout(&out);
    for needle in ["vault_init", "vault_seal", "vault_unseal", "audit log OK"] {
        assert!(log.contains(needle), "{log}");
    }
    let head = log.split("head ").nth(1).unwrap().trim().to_owned();
    let out = as_alice(&["audit", "--expect-head", &head]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = as_alice(&["audit", "--expect-head", &"ab".repeat(32)]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));

    // Re-shared to named holders: the files hold sealed shares only, and the holder's
    // own key opens them at unseal.
    let sealed = env.home.path().join("sealed");
    let out = split("reshare", "2", &sealed, &["--holders", "alice,alice"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = |i: u32| sealed.join(format!("share-{i}-alice.sealed.txt"));
    let text = std::fs::read_to_string(file(1)).unwrap();
    assert!(text.starts_with("cachet-sealed-share-v1:"), "{text}");
    as_alice(&["seal"]);
    for i in 1..=2 {
        let out = as_alice(&["unseal", "--share-file", file(i).to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = as_alice(&["status"]);
    assert!(stdout(&out).contains("unsealed"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_checks_saves_exports_and_compares_tree_heads() {
    let env = Env::start().await;
    env.register("alice", "+33655555555", "Dr Alice");
    env.register("bob", "+33666666666", "Bob");
    let (a, b) = (
        env.home.path().join("a.head"),
        env.home.path().join("b.head"),
    );

    let out = env.with_pin(
        "alice",
        &["audit", "--full", "--export", a.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("(pinned)"), "{text}"); // pinned at registration
    assert!(
        text.contains("consistent with the head saved before"),
        "{text}"
    );
    assert!(text.contains("2 chains follow the rules"), "{text}");
    env.with_pin_ok("bob", &["audit", "--export", b.to_str().unwrap()]);

    // Alice's head (2 blocks) and Bob's (the same) extend one another.
    let out = env.with_pin(
        "alice",
        &["--json", "audit", "--compare", b.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["audit"]["size"], 2);
    env.with_pin_ok(
        "alice",
        &[
            "audit",
            "--compare",
            a.to_str().unwrap(),
            "--compare",
            b.to_str().unwrap(),
        ],
    );

    // A head the server's log key did not sign (here: a flipped bit in its root).
    let mut forged = hex::decode(std::fs::read_to_string(&b).unwrap().trim()).unwrap();
    forged[20] ^= 1;
    let f = env.home.path().join("forged.head");
    std::fs::write(&f, hex::encode(&forged)).unwrap();
    let out = env.with_pin("alice", &["audit", "--compare", f.to_str().unwrap()]);
    assert_one_line_error(&out, 9, "not signed by the server's log key");

    // Not a head file at all.
    std::fs::write(&f, "hello").unwrap();
    let out = env.with_pin("alice", &["audit", "--compare", f.to_str().unwrap()]);
    assert_one_line_error(&out, 2, "hex");

    // Pinned operators come from the client configuration.
    let config = env.home.path().join("pins.toml");
    std::fs::write(&config, "[operators]\n\"op:support\" = \"00ff\"\n").unwrap();
    let out = env.with_pin(
        "alice",
        &["--client-config", config.to_str().unwrap(), "audit"],
    );
    assert_one_line_error(&out, 2, "operator \"op:support\"");
    std::fs::write(
        &config,
        format!("[operators]\n\"op:support\" = \"{}\"\n", "ab".repeat(32)),
    )
    .unwrap();
    env.with_pin_ok(
        "alice",
        &["--client-config", config.to_str().unwrap(), "audit"],
    );

    let out = env.run("alice", &["audit", "--help"]);
    let help = stdout(&out);
    assert!(
        help.contains("trust on first use") && help.contains("--compare"),
        "{help}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_key_server_is_named_with_its_flag() {
    let env = Env::start().await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let key_server = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = env
        .cachet("restored")
        .env("CACHET_PIN", PIN)
        .env("CACHET_RECOVERY_PASSWORD", "sunflower1987")
        .args(["recovery", "restore", "+33600000950", "--name", "Patient"])
        .args(["--key-server", &key_server])
        .output()
        .unwrap();
    assert_one_line_error(&out, 5, "key server");
    let err = stderr(&out);
    assert!(err.contains("--key-server"), "{err}");
    assert!(!err.contains("(--server"), "{err}");
    // Nothing was created, and the data server sent no code.
    assert!(!env.profile("restored").exists());
    assert!(!env.data.path().join("dev-codes.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_to_a_key_changed_contact_until_accepted_through_the_cli() {
    let env = Env::start().await;
    env.register_alice_with_contact_bob("+33677777701", "+33677777702");
    env.ok("alice", &["verify", "bob", "--confirm"]);
    env.ok("alice", &["send", "bob", "before"]);
    env.ok("bob", &["inbox"]);

    // Someone who reads the one-time codes registers Bob's number with their own keys.
    env.register("mallory", "+33677777702", "Bob");
    let out = env.run("alice", &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("CHANGED"), "{}", stderr(&out));

    let out = env.run("alice", &["send", "bob", "the", "diagnosis"]);
    assert_one_line_error(&out, 7, "the keys of bob changed");
    assert!(
        stderr(&out).contains("nothing was sent"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("cachet verify bob --accept"),
        "{}",
        stderr(&out)
    );
    let out = env.run("alice", &["--json", "send", "bob", "again"]);
    assert_eq!(out.status.code(), Some(7));
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"]["kind"], "key_changed");
    let out = env.run("mallory", &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("diagnosis"), "{}", stdout(&out));
    // The conversation shows what happened.
    let out = env.run("alice", &["inbox", "bob", "--offline"]);
    assert!(stdout(&out).contains("KEY CHANGED"), "{}", stdout(&out));

    // Accepting the new keys without comparing: messages go to them again.
    let out = env.run("alice", &["verify", "bob", "--accept"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("accepted the new keys of bob"));
    env.ok("alice", &["send", "bob", "after"]);
    let out = env.run("mallory", &["inbox"]);
    assert!(stdout(&out).contains("\"after\""), "{}", stdout(&out));
    // Nothing left to accept.
    let out = env.run("alice", &["verify", "bob", "--accept"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// `cachet` with a private home and no server flag.
fn cachet_in(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("cachet").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"));
    cmd
}

/// `cachet register` of `<home>/<profile>` at `server` with a made-up code, for the cases
/// refused before anything is sent.
fn register_in(home: &Path, profile: &str, pin: &str, server: &str, phone: &str) -> Output {
    cachet_in(home)
        .env("CACHET_PIN", pin)
        .arg("--profile")
        .arg(home.join(profile))
        .args(["--server", server])
        .args(registration(phone, "Carol", "000000"))
        .output()
        .unwrap()
}

async fn tls_server(data: &Path, name: &str) -> (RunningServer, PathBuf) {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = data.join(format!("{name}.pem"));
    let key = data.join(format!("{name}.key"));
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let config = ServerConfig {
        listen: Some(([127, 0, 0, 1], 0).into()),
        tls_cert: Some(cert.clone()),
        tls_key: Some(key),
        ..ServerConfig::for_data_dir(data)
    };
    (cachet_server::spawn(config).await.unwrap(), cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_pins_the_server_certificate_and_plain_http_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let (data, other) = (home.path().join("srv"), home.path().join("other"));
    let (server, cert) = tls_server(&data, "ours").await;
    let (impostor, _) = tls_server(&other, "theirs").await;
    let profile = home.path().join("alice");

    let out = cachet_in(home.path())
        .env("CACHET_PIN", PIN)
        .arg("--profile")
        .arg(&profile)
        .args(["--server", &server.base_url()])
        .args(["register", "+33677777711", "--name", "Alice", "--dev-codes"])
        .arg(data.join("dev-codes.txt"))
        .arg("--ca-cert")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(profile.join("server-ca.pem").exists());

    // Later commands use the pin stored in the profile.
    let out = cachet_in(home.path())
        .arg("--profile")
        .arg(&profile)
        .arg("inbox")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // Another certificate at the server's address is refused.
    let out = cachet_in(home.path())
        .arg("--profile")
        .arg(&profile)
        .args(["--server", &impostor.base_url()])
        .arg("inbox")
        .output()
        .unwrap();
    assert_one_line_error(&out, 5, "certificate is not trusted");

    // Plain http:// to anything but loopback is refused before connecting.
    let out = register_in(
        home.path(),
        "carol",
        PIN,
        "http://192.0.2.10:7780",
        "+33677777712",
    );
    assert_one_line_error(&out, 2, "plain http://");
    assert!(!home.path().join("carol").exists());
}

/// `cachet operator revoke` and `verify-profile` over a real server: their help says what
/// they do, both need a reason or note, the server applies and audits them, and a second
/// revocation or an unknown user gives a one-line error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_revoke_keys_and_verify_profiles_through_the_cli() {
    let env = Env::start().await;
    env.register("alice", "+33677777777", "Dr Alice");
    let out = env.with_pin("alice", &["--json", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let alice_id = status["user_id"].as_str().unwrap().to_owned();

    for (action, needles) in [
        (
            "revoke",
            &["--reason", "audit log", "trust log", "register"][..],
        ),
        ("verify-profile", &["--note", "audit log", "verified"][..]),
    ] {
        let out = env.run("unused", &["operator", action, "--help"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let help = stdout(&out);
        for needle in needles {
            assert!(
                help.contains(needle),
                "{needle} missing from {action} --help"
            );
        }
    }

    env.add_operator("support");
    let as_support = |args: &[&str]| env.operator("support", args);
    let store = env.server.as_ref().unwrap().store();

    // The reason and the note are required.
    let out = as_support(&["revoke", &alice_id]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = as_support(&["verify-profile", &alice_id]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let out = as_support(&["verify-profile", &alice_id, "--note", "ID card seen"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("verified"), "{}", stdout(&out));
    assert!(store.get_user(&alice_id).await.unwrap().unwrap().verified);

    let out = as_support(&["revoke", &alice_id, "--reason", "ticket 4521: phone stolen"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("revoked"), "{}", stdout(&out));
    let keys = store.current_keys(&alice_id).await.unwrap().unwrap();
    assert_eq!(keys.revoked_by_operator, "op:support");

    // Revoked keys sign nothing any more.
    let out = env.with_pin("alice", &["contacts", "add", "+33688888888"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));

    let out = as_support(&["revoke", &alice_id, "--reason", "again"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already revoked"), "{}", stderr(&out));
    let out = as_support(&["verify-profile", "u_nobody", "--note", "x"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no such user"), "{}", stderr(&out));

    let out = as_support(&["audit"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stdout(&out);
    for needle in [
        "verify_profile",
        "ID card seen",
        "revoke_keys",
        "phone stolen",
    ] {
        assert!(log.contains(needle), "{needle} missing from {log}");
    }
}
