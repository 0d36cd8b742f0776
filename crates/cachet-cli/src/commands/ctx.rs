//! Settings shared by every command: the configuration file, the profile, unlocking and output.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cachet_client::{Client, ClientError, ClientOptions, UnlockSecret};
use serde_json::Value;

use cachet_cli::cli::Cli;
use cachet_cli::error::CliError;

pub(super) type Result<T, E = CliError> = std::result::Result<T, E>;

/// The client configuration file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Option<String>,
    profile: Option<PathBuf>,
    remember_unlock: Option<bool>,
    require_verified: Option<bool>,
    ca_certificate: Option<PathBuf>,
    /// Operators whose trust-log blocks are accepted: `op:NAME` → Ed25519 key in hex.
    operators: Option<BTreeMap<String, String>>,
}

/// Settings after merging flags, environment, file and defaults.
pub(super) struct Ctx {
    pub(super) profile: PathBuf,
    pub(super) server: Option<String>,
    pub(super) json: bool,
    remember: bool,
    require_verified: bool,
    pub(super) ca: Option<Vec<u8>>,
    operators: cachet_client::OperatorPins,
}

fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("cachet").join("config.toml"))
}

fn load_config(explicit: Option<&Path>) -> Result<FileConfig> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => match default_config_path() {
            Some(p) => (p, false),
            None => return Ok(FileConfig::default()),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            CliError::usage(
                format!("config file {}: {e}", path.display()),
                "keys are server, profile, remember_unlock, require_verified, ca_certificate, operators",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok(FileConfig::default())
        }
        Err(e) => Err(CliError::usage(
            format!("cannot read config file {}: {e}", path.display()),
            "check --client-config / CACHET_CLIENT_CONFIG",
        )),
    }
}

impl Ctx {
    pub(super) fn new(cli: &Cli) -> Result<Self> {
        let file = load_config(cli.client_config.as_deref())?;
        let profile = cli
            .profile
            .clone()
            .or(file.profile)
            .or_else(|| dirs::data_dir().map(|d| d.join("cachet").join("default")))
            .ok_or_else(|| {
                CliError::usage(
                    "no profile directory",
                    "pass --profile DIR or set CACHET_PROFILE",
                )
            })?;
        let ca = match file.ca_certificate {
            Some(p) => Some(std::fs::read(&p).map_err(|e| {
                CliError::Io(format!("cannot read CA certificate {}: {e}", p.display()))
            })?),
            None => None,
        };
        let mut operators = cachet_client::OperatorPins::new();
        for (id, key) in file.operators.unwrap_or_default() {
            let parsed = hex::decode(key.trim())
                .ok()
                .and_then(|b| cachet_crypto::SignPublicKey::from_slice(&b).ok())
                .ok_or_else(|| {
                    CliError::usage(
                        format!("config file: the key of operator {id:?} is not 32 bytes of hex"),
                        "write operators as \"op:NAME\" = \"<64 hex digits>\"",
                    )
                })?;
            let id = if id.starts_with("op:") {
                id
            } else {
                format!("op:{id}")
            };
            operators.insert(id, parsed);
        }
        Ok(Self {
            profile,
            server: cli.server.clone().or(file.server),
            json: cli.json,
            remember: file.remember_unlock.unwrap_or(true),
            require_verified: file.require_verified.unwrap_or(false),
            ca,
            operators,
        })
    }

    pub(super) fn options(&self) -> ClientOptions {
        ClientOptions {
            server_url: self.server.clone(),
            require_verified: self.require_verified,
            root_certificate_pem: self.ca.clone(),
            client_type: cachet_proto::v1::ClientType::Cli,
            operators: self.operators.clone(),
            ..ClientOptions::default()
        }
    }

    pub(super) fn open(&self) -> Result<Client> {
        Ok(Client::open(&self.profile, self.options())?)
    }

    /// Opens and unlocks: remembered unlock, then CACHET_PIN / CACHET_PASSPHRASE, then a
    /// prompt on a terminal.
    pub(super) fn unlocked(&self) -> Result<Client> {
        let client = self.open()?;
        if client.resume()? {
            return Ok(client);
        }
        let secret = env_secret().or_else(|| {
            std::io::stdin()
                .is_terminal()
                .then(|| prompt_secret("PIN or passphrase: "))
                .flatten()
        });
        let Some(secret) = secret else {
            return Err(ClientError::Locked.into());
        };
        client.unlock(&secret)?;
        self.keep(&client);
        Ok(client)
    }

    /// Extends the remembered unlock after a successful command.
    pub(super) fn keep(&self, client: &Client) {
        if self.remember && client.is_unlocked() {
            let _ = client.remember_unlock();
        }
    }

    pub(super) fn say(&self, line: impl AsRef<str>) {
        if !self.json {
            println!("{}", line.as_ref());
        }
    }

    pub(super) fn emit(&self, value: Value) {
        if self.json {
            println!("{value}");
        }
    }

    /// What a command did: a line for people, or the value as JSON with `--json`.
    pub(super) fn report(&self, line: impl AsRef<str>, value: Value) {
        self.say(line);
        self.emit(value);
    }
}

pub(super) fn env_secret() -> Option<UnlockSecret> {
    ["CACHET_PIN", "CACHET_PASSPHRASE"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .map(UnlockSecret::new)
}

pub(super) fn prompt_secret(prompt: &str) -> Option<UnlockSecret> {
    rpassword::prompt_password(prompt)
        .ok()
        .map(UnlockSecret::new)
}

pub(super) fn prompt_line(prompt: &str) -> Option<String> {
    use std::io::Write;
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    let line = line.trim().to_owned();
    (!line.is_empty()).then_some(line)
}

pub(super) fn join(words: &[String]) -> String {
    words.join(" ")
}

/// Reads a one-time code from a development server's code file, waiting a few seconds for
/// the server to write it.
pub(super) async fn poll_dev_code(file: &Path, identifier: &str) -> Option<String> {
    for _ in 0..100 {
        if let Some(code) = cachet_cli::demo::dev_code(file, identifier) {
            return Some(code);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}
