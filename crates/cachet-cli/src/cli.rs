//! The command line, as clap sees it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Profiles:
  A profile is one registered installation: its keys (sealed under a master key that your
  PIN or passphrase protects with Argon2id), its SQLCipher database and its local files.
  The default profile lives in $XDG_DATA_HOME/cachet/default (~/.local/share/cachet/default).

Unlocking:
  Commands that need your keys unlock the profile with, in order: an unlock remembered by
  `cachet unlock` (valid ten minutes after the last use; its key is kept in the Linux
  kernel keyring, never on disk, so without a keyring nothing is remembered), CACHET_PIN
  or CACHET_PASSPHRASE, or a prompt. Wrong PINs lock the profile out for longer and
  longer (30 s, 1 min, 5 min...). PINs with a pattern (11111, 12121, 12345, 13579...)
  are refused when a PIN is chosen.

Configuration (lowest to highest precedence):
  $XDG_CONFIG_HOME/cachet/config.toml (or --client-config FILE) with the keys
  `server`, `profile`, `remember_unlock`, `require_verified`, `ca_certificate`,
  `operators` (a table `\"op:NAME\" = \"<hex key>\"` of operators whose trust-log blocks,
  such as revocations, this client accepts);
  then the environment (CACHET_SERVER, CACHET_PROFILE, CACHET_PIN, CACHET_PASSPHRASE);
  then the flags.

Exit codes:
  0  success
  1  unexpected failure
  2  bad usage or input (unknown option, malformed argument, weak PIN)
  3  locked: wrong PIN or passphrase, locked out, or no PIN given
  4  not found: unknown contact, group, case or attachment, missing file, no profile
  5  the server cannot be reached
  6  the server refused the request
  7  refused by key verification: the contact's verified keys changed without a
     signature by the verified key (KEY CHANGED); nothing was sent. Compare safety
     numbers again (`verify NAME --confirm`) or accept the new keys (`verify NAME --accept`)
  8  integrity failure: data did not decrypt or did not match its checksum
  9  the server's trust log contradicts itself, the directory or a saved head (a
     substituted key, a hidden revocation, a fork): nothing was encrypted to those keys
  10 refused because the contact was never verified and `require_verified` is set

Examples:
  cachet demo                                    # everything, on a private local server
  cachet server --data-dir ./srv                 # run a data server
  cachet --server http://127.0.0.1:7780 register +33612345678 --name \"Dr Martin\"
  cachet contacts add +33698765432 --as camille
  cachet send camille \"Your results are normal.\"
  cachet inbox                                   # receive; list conversations
  cachet inbox camille                           # show the conversation, mark it read
  cachet attach camille scan.pdf                 # encrypted, chunked, resumable upload
  cachet fetch <ATTACHMENT-ID> -o scan.pdf
  cachet case create \"Persistent cough\" --with camille --field reason=cough
  cachet verify camille                          # safety number and QR code
  cachet audit --export head.txt                 # check the trust log, save its head
  cachet audit --compare their-head.txt          # same history as another client?";

/// cachet: end-to-end encrypted messaging, attachments and patient cases for healthcare.
///
/// Messages are encrypted on this device with NaCl crypto_box, attachments and patient
/// cases with per-item keys; the server stores and forwards ciphertext only.
#[derive(Debug, Parser)]
#[command(name = "cachet", version, after_long_help = AFTER_HELP, after_help = "Run `cachet --help` for profiles, configuration, exit codes and examples.")]
pub struct Cli {
    /// Profile directory [default: $XDG_DATA_HOME/cachet/default].
    #[arg(long, global = true, env = "CACHET_PROFILE", value_name = "DIR")]
    pub profile: Option<PathBuf>,

    /// Data server URL, for `register` or to override the profile's (with `operator`: the
    /// data server's or the key server's).
    #[arg(long, global = true, env = "CACHET_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Client configuration file [default: $XDG_CONFIG_HOME/cachet/config.toml].
    #[arg(long, global = true, env = "CACHET_CLIENT_CONFIG", value_name = "FILE")]
    pub client_config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register this device with a phone number or e-mail address (creates the profile).
    ///
    /// The server sends a one-time code; you type it (or, against a development server,
    /// give --dev-codes). You then choose a 5-digit PIN or a passphrase of 10+ characters
    /// (or set CACHET_PIN / CACHET_PASSPHRASE).
    Register(RegisterArgs),
    /// List, add, show or refresh contacts.
    Contacts(ContactsArgs),
    /// Send a text message to a contact (or a group with --group).
    Send(SendArgs),
    /// Receive new messages; list conversations, or show one and mark it read.
    Inbox(InboxArgs),
    /// Send a file (encrypted in 2 MiB chunks; resumes with --resume).
    Attach(AttachArgs),
    /// Download and decrypt an attachment you received.
    Fetch(FetchArgs),
    /// Group conversations: each message is encrypted for each member separately.
    Group(GroupArgs),
    /// Patient cases: a shared case key, fields and messages under it.
    Case(CaseArgs),
    /// Show the safety number and QR code of a contact, and mark them verified.
    Verify(VerifyArgs),
    /// Lock the profile now (forget the remembered unlock and its keyring key).
    Lock,
    /// Unlock the profile for ten minutes after the last use.
    Unlock,
    /// Show the profile: user id, key version, lock state.
    Status,
    /// Run a cachet data server (or manage it: `server add-operator`).
    Server(Box<ServerArgs>),
    /// Run the whole protocol end to end on a private local server and show each step.
    Demo(DemoArgs),
    /// Measure throughput and latency: simulated users on a server in this process.
    Bench(BenchArgs),
    /// Operate a data server as an operator: its key hierarchy (init, unseal, rotate,
    /// reshare, export, import) and its audit log. Every request is signed with your own
    /// operator key (create one with `cachet operator keygen`, then have it registered with
    /// `cachet server add-operator` on the server host).
    Operator(OperatorArgs),
    /// Password recovery: enable it (or change the password), or restore a lost device.
    Recovery(RecoveryArgs),
    /// Run a cachet key server, the second party of password recovery (or refresh its
    /// key shares with the data server: `keyserver refresh`).
    Keyserver(Box<KeyserverArgs>),
    /// Audit the server's trust log: check its signed head against the pinned log key and
    /// against the head saved last time, then save it.
    ///
    /// The log key is pinned the first time this profile talks to the log (at
    /// registration): trust on first use. Every later head must be signed by that key and
    /// extend the saved one (a consistency proof), or the server rewrote or forked its
    /// history. To catch a server that shows different clients different histories,
    /// exchange head files with someone else (`--export`) and compare them (`--compare`).
    ///
    /// Exit codes: 0 consistent; 9 the log contradicts itself or a saved head (the message
    /// says how); 5 or 6 the server could not be reached or refused.
    Audit(AuditArgs),
}

/// `cachet audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Also download the whole log and replay every chain under the head (slow on a big
    /// log).
    #[arg(long)]
    pub full: bool,
    /// Write the accepted head to FILE (one hex line), to compare with another client.
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// Check that the head in FILE (another client's `--export`) and this client's head are
    /// consistent: one a prefix of the other. Given twice, compares the two files.
    #[arg(long, value_name = "FILE", num_args = 1, action = clap::ArgAction::Append)]
    pub compare: Vec<PathBuf>,
}

/// `cachet recovery`.
#[derive(Debug, Args)]
pub struct RecoveryArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: RecoveryAction,
}

/// Where the codes of both identity checks come from.
#[derive(Debug, Args)]
pub struct RecoveryCodes {
    /// The key server's URL.
    #[arg(long, env = "CACHET_KEY_SERVER", value_name = "URL")]
    pub key_server: String,
    /// Read the data server's code from its development codes file.
    #[arg(long, value_name = "FILE")]
    pub dev_codes: Option<PathBuf>,
    /// Read the key server's code from its development codes file.
    #[arg(long, value_name = "FILE")]
    pub key_dev_codes: Option<PathBuf>,
}

/// `cachet recovery ...`.
#[derive(Debug, Subcommand)]
pub enum RecoveryAction {
    /// Seal every key of this account under a recovery password, at both servers (run
    /// again to change the password). The password comes from CACHET_RECOVERY_PASSWORD or
    /// a prompt.
    Enable {
        /// Servers and codes.
        #[command(flatten)]
        codes: RecoveryCodes,
    },
    /// Restore a lost device into a new profile: both identity checks, the recovery
    /// password, then a new installation signed by the recovered keys.
    Restore {
        /// Phone number or e-mail address of the account.
        identifier: String,
        /// The name your contacts see.
        #[arg(long)]
        name: String,
        /// Servers and codes.
        #[command(flatten)]
        codes: RecoveryCodes,
    },
}

/// `cachet keyserver`.
#[derive(Debug, Args)]
pub struct KeyserverArgs {
    /// Administration instead of serving.
    #[command(subcommand)]
    pub action: Option<KeyserverAction>,
    /// Key server settings.
    #[command(flatten)]
    pub config: cachet_keyserver::KeyServerConfig,
}

/// `cachet keyserver ...`.
#[derive(Debug, Subcommand)]
pub enum KeyserverAction {
    /// Re-randomise every account's key shares together with the data server (the
    /// joint key, so every password, stays the same; stolen old shares become useless).
    Refresh {
        /// The data server's URL.
        #[arg(long, value_name = "URL")]
        data_server: String,
        /// Operator name, registered at both servers (`op:NAME`).
        #[arg(long)]
        operator: String,
        /// File holding the operator's 32-byte Ed25519 seed in hex.
        #[arg(long, value_name = "FILE")]
        operator_key: PathBuf,
        /// The running key server's URL (it opens its own shares, which may be sealed
        /// under its master key).
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:7781")]
        key_server: String,
    },
    /// Register an operator of this key server (its vault and audit routes, and
    /// refresh): `cachet operator --server <key server> ...` then works as on the data
    /// server. Run it before the key server holds accounts, then `cachet operator init`.
    AddOperator {
        /// Operator name (a-z 0-9 . _ -).
        name: String,
        /// Their 32-byte Ed25519 public key, in hex (`cachet operator keygen` prints it).
        public_key: String,
        /// Where the key server keeps its data: the same `--data-dir`, `--database-url` and
        /// `--config` (and `CACHET_KEYSERVER_*` variables) as `cachet keyserver`.
        #[command(flatten)]
        config: Box<cachet_keyserver::KeyServerConfig>,
    },
}

/// `cachet operator`.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: OperatorAction,
    /// Your operator name, as registered with `cachet server add-operator`.
    #[arg(long, env = "CACHET_OPERATOR", global = true)]
    pub name: Option<String>,
    /// File holding your operator secret key (written by `cachet operator keygen`).
    #[arg(long, env = "CACHET_OPERATOR_KEY", value_name = "FILE", global = true)]
    pub key: Option<PathBuf>,
}

/// How many shares and how many to open: 7 and 5 unless told.
#[derive(Debug, Args, Clone)]
pub struct SplitArgs {
    /// Shares to create, one per key holder.
    #[arg(long, default_value_t = 7)]
    pub shares: u32,
    /// Shares needed to unseal.
    #[arg(long, default_value_t = 5)]
    pub threshold: u32,
    /// Write share N to DIR/share-N.txt (readable by you only) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Seal share N to the key of the Nth operator named here (comma-separated, one per
    /// share, each registered on the server): you see only sealed shares, and each
    /// holder's `cachet operator unseal --share-file` opens theirs with their own key.
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub holders: Vec<String>,
}

/// `cachet operator ...`.
#[derive(Debug, Subcommand)]
pub enum OperatorAction {
    /// Create your operator key pair; prints the public key to register on the server.
    Keygen {
        /// Where to write the secret key (refuses to overwrite).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Show whether the server is initialised and sealed (no key needed).
    Status,
    /// Create the master key of a new, empty server and split it into shares.
    Init(SplitArgs),
    /// Enter your share; the server opens when the threshold is reached.
    Unseal {
        /// Read the share from this file instead of prompting for it.
        #[arg(long, value_name = "FILE")]
        share_file: Option<PathBuf>,
    },
    /// Make the server forget its master key now (it then refuses all user traffic).
    Seal,
    /// Replace the master key (KEKs re-wrapped, data untouched) and split the new one.
    Rotate(SplitArgs),
    /// Split the same master key anew for a new set of holders; old shares stop working.
    Reshare(SplitArgs),
    /// Save the sealed key material (no secret in it) for a second server.
    Export {
        /// Output file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Give an empty second server the sealed key material exported from the first.
    Import {
        /// File written by `cachet operator export`.
        file: PathBuf,
    },
    /// Revoke a user's current keys, e.g. for a lost or stolen device.
    ///
    /// From then on the server refuses every request signed with those keys; each of the
    /// user's contacts receives a contact update naming the revoked keys, and a
    /// `KeysRevoked` block signed with your operator key goes into the trust log. The action
    /// and REASON are written to the audit log under your name. The user gets back in by
    /// registering again (new keys, one-time code to their phone or e-mail).
    ///
    /// Example: cachet operator --name alice --key alice.key revoke u_3f... --reason "ticket 4521: phone stolen"
    #[command(verbatim_doc_comment)]
    Revoke {
        /// The user's id (u_...), as in the audit log or a contact's details.
        user_id: String,
        /// Why, for the audit log (a support ticket, who asked); required.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Mark a user's profile as verified after checking who they are.
    ///
    /// Contacts then see the profile as verified. A `ProfileVerified` block signed with your
    /// operator key goes into the trust log, and the action and NOTE (how the identity was
    /// checked) are written to the audit log under your name.
    ///
    /// Example: cachet operator --name alice --key alice.key verify-profile u_3f... --note "ID card seen at the front desk"
    #[command(verbatim_doc_comment)]
    VerifyProfile {
        /// The user's id (u_...).
        user_id: String,
        /// How the identity was checked, for the audit log; required.
        #[arg(long, value_name = "TEXT")]
        note: String,
    },
    /// Fetch the audit log, check its hash chain and print it.
    Audit {
        /// Fail unless the log extends the history whose last hash you kept (hex).
        #[arg(long, value_name = "HEX")]
        expect_head: Option<String>,
    },
}

/// `cachet register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Phone number in international form (+33612345678) or e-mail address.
    pub identifier: String,
    /// The name your contacts see.
    #[arg(long)]
    pub name: String,
    /// The one-time code, if you already have it.
    #[arg(long)]
    pub code: Option<String>,
    /// Read the code from a development server's codes file (`<data-dir>/dev-codes.txt`).
    #[arg(long, value_name = "FILE")]
    pub dev_codes: Option<PathBuf>,
    /// Pin the server's certificate: a PEM file holding the certificate authority that
    /// signed it, or its own self-signed certificate. Stored in the profile; every later
    /// request of the profile (messages, attachments, key server) trusts only it.
    #[arg(long, value_name = "FILE", alias = "pin-cert")]
    pub ca_cert: Option<PathBuf>,
}

/// `cachet contacts`.
#[derive(Debug, Args)]
pub struct ContactsArgs {
    /// What to do (default: list).
    #[command(subcommand)]
    pub action: Option<ContactsAction>,
}

/// `cachet contacts ...`.
#[derive(Debug, Subcommand)]
pub enum ContactsAction {
    /// List contacts.
    List,
    /// Add a contact by phone number or e-mail address (or by user id with --user-id).
    Add {
        /// Phone number or e-mail address (the server sees only a hash).
        identifier: Option<String>,
        /// Add by server user id instead.
        #[arg(long, conflicts_with = "identifier")]
        user_id: Option<String>,
        /// Local name to address them by.
        #[arg(long = "as", value_name = "ALIAS")]
        alias: Option<String>,
    },
    /// Show a contact and their key history.
    Show {
        /// Alias, user id, identifier or name.
        contact: String,
    },
    /// Fetch a contact's keys again and report any change.
    Refresh {
        /// Alias, user id, identifier or name.
        contact: String,
    },
}

/// `cachet send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Contact (alias, user id, phone number or name), or group with --group.
    pub to: String,
    /// The text (several words are joined with spaces).
    #[arg(required = true)]
    pub text: Vec<String>,
    /// Send to a group.
    #[arg(long)]
    pub group: bool,
}

/// `cachet inbox`.
#[derive(Debug, Args)]
pub struct InboxArgs {
    /// Show this conversation (contact, group or case) and mark it read.
    pub conversation: Option<String>,
    /// Wait up to this many seconds for new mail when none is waiting.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub wait: u32,
    /// Show without marking read (no read receipts).
    #[arg(long)]
    pub no_read: bool,
    /// Do not contact the server; show what is stored.
    #[arg(long)]
    pub offline: bool,
    /// Most messages shown.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// `cachet attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Contact, or group with --group, or case with --case.
    #[arg(required_unless_present = "resume")]
    pub to: Option<String>,
    /// The file to send.
    #[arg(required_unless_present = "resume")]
    pub file: Option<PathBuf>,
    /// Send to a group.
    #[arg(long, conflicts_with = "case")]
    pub group: bool,
    /// Send into a patient case.
    #[arg(long)]
    pub case: bool,
    /// Resume interrupted uploads instead.
    #[arg(long, conflicts_with_all = ["to", "file"])]
    pub resume: bool,
}

/// `cachet fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The attachment id (from `cachet inbox`); omit to list attachments.
    pub attachment: Option<String>,
    /// Where to write the file [default: its name, in the current directory].
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Keep it in the profile's encrypted file store instead of writing it out.
    #[arg(long, conflicts_with = "output")]
    pub store: bool,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// `cachet group`.
#[derive(Debug, Args)]
pub struct GroupArgs {
    /// What to do (default: list).
    #[command(subcommand)]
    pub action: Option<GroupAction>,
}

/// `cachet group ...`.
#[derive(Debug, Subcommand)]
pub enum GroupAction {
    /// List groups.
    List,
    /// Create a group with some contacts.
    Create {
        /// Its name.
        name: String,
        /// Members (contacts).
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Send a text to a group.
    Send {
        /// Group name or id.
        group: String,
        /// The text.
        #[arg(required = true)]
        text: Vec<String>,
    },
}

/// `cachet case`.
#[derive(Debug, Args)]
pub struct CaseArgs {
    /// What to do (default: list).
    #[command(subcommand)]
    pub action: Option<CaseAction>,
}

/// `cachet case ...`.
#[derive(Debug, Subcommand)]
pub enum CaseAction {
    /// List your cases (fetched from the server and decrypted).
    List,
    /// Open a case with a fresh case key shared with the participants.
    Create {
        /// The case title (encrypted).
        title: String,
        /// Participants (contacts); repeat or separate with commas.
        #[arg(long = "with", value_delimiter = ',', required = true)]
        participants: Vec<String>,
        /// A field `name=value` (encrypted); repeatable.
        #[arg(long = "field", value_name = "NAME=VALUE")]
        fields: Vec<String>,
    },
    /// Send a message in a case.
    Send {
        /// Case title or id.
        case: String,
        /// The text.
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Share the case key with more participants (they read the whole history).
    Add {
        /// Case title or id.
        case: String,
        /// Contacts to add.
        #[arg(required = true)]
        participants: Vec<String>,
    },
    /// Fetch a case's whole history and show it.
    Show {
        /// Case title or id.
        case: String,
    },
}

/// `cachet verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The contact.
    pub contact: String,
    /// Mark verified: you compared the safety number face to face and it matched.
    #[arg(long)]
    pub confirm: bool,
    /// Verify with the hex payload of the contact's QR code.
    #[arg(long, value_name = "HEX", conflicts_with = "confirm")]
    pub scanned: Option<String>,
    /// Withdraw the verification.
    #[arg(long, conflicts_with_all = ["confirm", "scanned"])]
    pub reset: bool,
    /// Accept the new keys of a KEY CHANGED contact without comparing safety numbers:
    /// they become unverified with their new keys, and messages go to them again.
    #[arg(long, conflicts_with_all = ["confirm", "scanned", "reset"])]
    pub accept: bool,
    /// Do not draw the QR code.
    #[arg(long)]
    pub no_qr: bool,
}

/// `cachet server`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServerArgs {
    /// Administration instead of serving.
    #[command(subcommand)]
    pub action: Option<ServerAction>,
    /// Server settings.
    #[command(flatten)]
    pub config: cachet_server::ServerConfig,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
}

/// `cachet server ...`.
#[derive(Debug, Subcommand)]
pub enum ServerAction {
    /// Register an operator's Ed25519 public key (they sign as `op:NAME`).
    AddOperator {
        /// Operator name (a-z 0-9 . _ -).
        name: String,
        /// Their 32-byte Ed25519 public key, in hex.
        public_key: String,
        /// Where the server keeps its data: the same `--data-dir`, `--database-url` and
        /// `--config` (and `CACHET_*` variables) as `cachet server`.
        #[command(flatten)]
        config: Box<cachet_server::ServerConfig>,
    },
}

/// `cachet demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the server's data here instead of a temporary directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Size of the generated attachment, in MiB.
    #[arg(long, default_value_t = 5, value_name = "MIB")]
    pub attachment_mib: usize,
}

/// `cachet bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Simulated users; each sends and long-polls.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub users: usize,
    /// Seconds of each load phase (peak, then half of the peak).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub seconds: u64,
    /// Run the server on this PostgreSQL database instead of SQLite in a temporary
    /// directory (the database must exist).
    #[arg(
        long,
        env = "CACHET_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Keep the server's data here instead of a temporary directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// Rows per transaction when measuring the database ceiling.
    #[arg(long, default_value_t = 100, value_name = "ROWS")]
    pub batch: usize,
}
