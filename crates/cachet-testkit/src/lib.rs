//! Test support for cachet, never published: a real data server on loopback with its
//! SQLite database in a temporary directory, and clients registered against it through
//! the real registration flow (one-time codes read from the development notifier's file).
//!
//! The end-to-end suite in `tests/` uses it; so can any crate's tests.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cachet_client::{
    Argon2Params, Argon2idProtector, Client, ClientError, ClientOptions, KeyHistory, NewProfile,
    UnlockSecret,
};
use cachet_server::{RunningServer, ServerConfig};
use tempfile::TempDir;

/// The PIN every test profile is created with.
pub const PIN: &str = "24680";

/// Client options for tests: cheap Argon2id (a real profile uses the recommended cost).
pub fn test_options() -> ClientOptions {
    ClientOptions {
        protector: Arc::new(Argon2idProtector::new(Argon2Params::INSECURE_FOR_TESTS)),
        ..ClientOptions::default()
    }
}

/// Reads the newest one-time code the development notifier wrote for `identifier` into
/// `<data_dir>/dev-codes.txt` (lines `identifier<TAB>code`).
pub fn dev_code(data_dir: &Path, identifier: &str) -> Option<String> {
    let wanted = cachet_proto::normalise_identifier(identifier);
    let text = std::fs::read_to_string(data_dir.join("dev-codes.txt")).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| l.split_once('\t'))
        .find(|(id, _)| *id == wanted)
        .map(|(_, code)| code.trim().to_owned())
}

/// A data server on 127.0.0.1 (random port) with its data in a temporary directory, and
/// a directory for client profiles.
pub struct TestServer {
    server: Option<RunningServer>,
    data: TempDir,
    profiles: TempDir,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a server.
    pub async fn start() -> Self {
        let data = tempfile::tempdir().expect("temporary directory");
        let profiles = tempfile::tempdir().expect("temporary directory");
        let config = ServerConfig {
            listen: Some(([127, 0, 0, 1], 0).into()),
            ..ServerConfig::for_data_dir(data.path())
        };
        let server = cachet_server::spawn(config).await.expect("server starts");
        Self {
            server: Some(server),
            data,
            profiles,
        }
    }

    /// The server's base URL.
    pub fn url(&self) -> String {
        self.server
            .as_ref()
            .map(|s| s.base_url())
            .unwrap_or_default()
    }

    /// The server's store, to inspect (or tamper with) what it holds.
    pub fn store(&self) -> Arc<dyn cachet_server::store::Store> {
        self.server.as_ref().expect("server running").store()
    }

    /// The server's data directory (database, blobs, dev codes).
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// A fresh profile directory named `name`.
    pub fn profile_dir(&self, name: &str) -> PathBuf {
        self.profiles.path().join(name)
    }

    /// Stops the server (what a client sees as "server down").
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("server shuts down");
        }
    }

    /// Registers `identifier` in the profile directory `profile`, with the test PIN.
    pub async fn register(&self, profile: &str, identifier: &str, name: &str) -> Client {
        self.register_with(profile, identifier, name, None, test_options())
            .await
            .expect("registration succeeds")
    }

    /// Registers a new installation, optionally carrying the keys of earlier ones.
    pub async fn register_with(
        &self,
        profile: &str,
        identifier: &str,
        name: &str,
        previous: Option<KeyHistory>,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let pending = Client::start_registration(&self.url(), identifier, options).await?;
        let mut code = None;
        for _ in 0..50 {
            code = dev_code(self.data_dir(), identifier);
            if code.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let code = code.expect("the development notifier wrote a code");
        pending
            .finish(NewProfile {
                dir: &self.profile_dir(profile),
                code: &code,
                display_name: name,
                secret: &UnlockSecret::new(PIN),
                previous,
            })
            .await
    }
}
