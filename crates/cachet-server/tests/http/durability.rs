//! An envelope answered with 204 survives `kill -9`: the server runs as a separate process
//! (this test binary, re-executed with an environment variable that turns
//! `durability_child_server` into a server), is killed in the middle of a stream of sends,
//! and restarted on the same data directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cachet_server::ServerConfig;
use reqwest::Method;

use crate::common::*;

const CHILD_DIR_ENV: &str = "CACHET_TEST_CHILD_DATA_DIR";
const ADDR_FILE: &str = "child-addr";

/// In the child process only: run a server on the given data directory until killed.
#[test]
fn durability_child_server() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return; // an ordinary test run: nothing to do
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut config = ServerConfig::for_data_dir(&dir);
        config.listen = Some("127.0.0.1:0".parse().expect("addr"));
        let server = cachet_server::spawn(config).await.expect("child server");
        let dir = Path::new(&dir);
        let tmp = dir.join(format!("{ADDR_FILE}.tmp"));
        std::fs::write(&tmp, server.local_addr().to_string()).expect("write addr");
        std::fs::rename(&tmp, dir.join(ADDR_FILE)).expect("publish addr");
        std::future::pending::<()>().await;
    });
}

/// A server process, killed with SIGKILL when dropped.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ServerProcess {
    fn start(dir: &Path) -> (Self, String) {
        let _ = std::fs::remove_file(dir.join(ADDR_FILE));
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "durability::durability_child_server",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server process");
        let process = ServerProcess(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(addr) = std::fs::read_to_string(dir.join(ADDR_FILE)) {
                return (process, format!("http://{addr}"));
            }
            assert!(Instant::now() < deadline, "server process did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9.
    fn kill(mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reaped");
    }
}

/// Drains the mailbox with acks; returns message ids in delivery order.
async fn drain(client: &Client, who: &TestUser) -> Vec<String> {
    let mut ids = Vec::new();
    let mut ack = Vec::new();
    loop {
        let page = receive(client, who, std::mem::take(&mut ack), 0).await;
        ids.extend(page.envelopes.iter().map(|e| e.message_id.clone()));
        ack = page.envelopes.iter().map(|e| e.delivery_id).collect();
        if page.envelopes.is_empty() {
            return ids;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_envelopes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, base) = ServerProcess::start(dir.path());
    let harness = TestServer {
        server: None,
        dir,
        client: Client::new(base),
    };
    let [alice, bob] = harness.register_all(["Alice", "Bob"]).await;

    // Four senders stream envelopes; each records what was attempted and what got 204.
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut senders = Vec::new();
    for task in 0..4 {
        let client = harness.client.clone();
        let (alice, bob) = (alice.clone(), bob.clone());
        let acked_tx = acked_tx.clone();
        senders.push(tokio::spawn(async move {
            let mut attempted = Vec::new();
            for n in 0..10_000 {
                let id = format!("d{task}-{n:05}");
                attempted.push(id.clone());
                let env = text_envelope(&alice, &[&bob], &id, "durable");
                let body = cachet_proto::Message::encode_to_vec(&env);
                let path = "/api/v1/messages/send";
                let headers = Client::headers_at(&alice, &Method::POST, path, &body, now_ms());
                let sent = client.try_raw(Method::POST, path, &headers, body).await;
                match sent {
                    Ok(r) if r.status == 204 => {
                        let _ = acked_tx.send(id);
                    }
                    // The server died under us: the outcome of this one is unknown.
                    _ => break,
                }
            }
            attempted
        }));
    }
    drop(acked_tx);

    let mut acked = BTreeSet::new();
    while acked.len() < 60 {
        acked.insert(acked_rx.recv().await.expect("senders running"));
    }
    process.kill();
    let mut attempted = BTreeSet::new();
    for s in senders {
        attempted.extend(s.await.expect("sender"));
    }
    while let Ok(id) = acked_rx.try_recv() {
        acked.insert(id);
    }

    // Restart on the same data directory and drain Bob's mailbox.
    let (process, base) = ServerProcess::start(harness.dir.path());
    let client = Client::new(base);
    let delivered = drain(&client, &bob).await;
    eprintln!(
        "durability: {} attempted, {} acknowledged, {} delivered after kill -9",
        attempted.len(),
        acked.len(),
        delivered.len()
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &delivered {
        *counts.entry(id).or_default() += 1;
    }
    assert!(
        counts.values().all(|&c| c == 1),
        "an envelope was delivered twice"
    );
    for id in &acked {
        assert!(
            counts.contains_key(id.as_str()),
            "acknowledged {id} was lost"
        );
    }
    for id in counts.keys() {
        assert!(attempted.contains(*id), "{id} was never sent");
    }
    // Per sender, delivery order follows send order.
    for task in 0..4 {
        let prefix = format!("d{task}-");
        let mine: Vec<&String> = delivered
            .iter()
            .filter(|i| i.starts_with(&prefix))
            .collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "order kept for {prefix}"
        );
    }

    // Acks are durable too: after another kill -9, nothing comes back.
    process.kill();
    let (_process, base) = ServerProcess::start(harness.dir.path());
    let client = Client::new(base);
    assert!(drain(&client, &bob).await.is_empty());
}
