//! Storage behind a trait, so that a PostgreSQL implementation can sit beside SQLite.
//!
//! Every method is one atomic operation: it either happens completely or not at all, and
//! concurrent calls behave as if run one after the other. Implementations must keep all
//! state in the database (several server nodes may share one), and must pass the suite in
//! [`crate::conformance`].
//!
//! Envelopes are stored as opaque protobuf bytes: the store never decodes them. The server
//! patches `delivery_id` in when it reads them back.

use async_trait::async_trait;
use cachet_proto::v1::{AuditEntry, CaseRecord, KeyRecord, SealedCaseKey};

use crate::error::Result;
/// A pending registration: the one-time code (hashed) sent to an identifier (hashed); the
/// same record as a recovery challenge of the key server.
pub use cachet_keyserver::service::Challenge;
pub use cachet_keyserver::RecoveryRow;

pub mod postgres;
mod schema;
mod sql;
pub mod sqlite;
mod sqlite_writer;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A user as the directory knows them (keys apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Server-assigned id.
    pub user_id: String,
    /// Display name chosen at registration.
    pub display_name: String,
    /// Set by an operator.
    pub verified: bool,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
}

/// A first registration.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Server-assigned id.
    pub user_id: String,
    /// `discovery_hash` of the identifier.
    pub identifier_hash: Vec<u8>,
    /// Display name.
    pub display_name: String,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Key generation 1.
    pub keys: KeyRecord,
}

/// A new installation of an existing user.
#[derive(Debug, Clone)]
pub struct NewInstallation {
    /// The user.
    pub user_id: String,
    /// The key version the caller saw as current; the store refuses if it changed.
    pub expected_version: u32,
    /// The new key generation (version `expected_version + 1`).
    pub keys: KeyRecord,
    /// New display name, if one was given.
    pub display_name: Option<String>,
    /// The contact-update envelope (encoded) to queue for every contact.
    pub contact_update: Vec<u8>,
}

/// What an operator action writes to the audit log (hash and sequence are the store's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDraft {
    /// Time of the action, ms since the epoch.
    pub timestamp: i64,
    /// Who acted: `op:<name>` for an operator, `console` for an action on the server host.
    pub operator_id: String,
    /// What was done (`revoke_keys`, `verify_profile`, `add_operator`...).
    pub action: String,
    /// On whom.
    pub subject: String,
    /// Free text given by the operator.
    pub detail: String,
}

/// One envelope to put in one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Mailbox owner.
    pub recipient_id: String,
    /// Encoded envelope (without `delivery_id`).
    pub envelope: Vec<u8>,
}

/// Discovery lookups to count against one user's budget of one window
/// ([`Store::take_discovery_budget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoveryCharge {
    /// Start of the window, ms since the epoch.
    pub window_start: i64,
    /// End of the window, ms since the epoch (its counter may be purged after it).
    pub window_end: i64,
    /// Lookups to count.
    pub hashes: u64,
    /// Lookups the window allows in all.
    pub limit: u64,
}

/// An operator's revocation of a user's current keys ([`Store::revoke_keys`]).
#[derive(Debug, Clone, Copy)]
pub struct Revocation<'a> {
    /// Whose keys.
    pub user_id: &'a str,
    /// The key version the operator saw as current.
    pub expected_version: u32,
    /// The contact update queued to every contact.
    pub contact_update: &'a [u8],
    /// The audit entry written with it.
    pub audit: &'a AuditDraft,
}

/// A user's acknowledgement of delivered envelopes ([`Store::ack_and_remember`]).
#[derive(Debug, Clone, Copy)]
pub struct AckRequest<'a> {
    /// Whose mailbox.
    pub user_id: &'a str,
    /// The envelopes acknowledged.
    pub delivery_ids: &'a [u64],
    /// Keep them, acked at this time, instead of deleting them (web clients).
    pub keep_acked_at: Option<i64>,
}

/// Participants added to a case, with their keys ([`Store::add_case_participants`]).
#[derive(Debug, Clone, Copy)]
pub struct NewParticipants<'a> {
    /// The case.
    pub case_id: &'a str,
    /// Who adds them.
    pub added_by: &'a str,
    /// Server time, ms since the epoch.
    pub added_at: i64,
    /// The keys sealed to the participants (which they name).
    pub keys: &'a [SealedCaseKey],
}

/// A block of one user's chain, to append to the trust log ([`Store::append_trust_block`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewTrustBlock<'a> {
    /// Whose chain.
    pub user_id: &'a str,
    /// Position in that chain.
    pub seq: u64,
    /// The encoded block.
    pub block: &'a [u8],
    /// Server time, ms since the epoch.
    pub created_at: i64,
}

/// A signed request's entry in the replay cache: the hash of its signature, kept until
/// the clock window has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenSignature {
    /// SHA-256 of the signature.
    pub hash: Vec<u8>,
    /// When the entry may be forgotten, ms since the epoch.
    pub expires_at: i64,
}

/// Adds to a user's discovery counter of one window, unless the total would pass the
/// limit (`$5`); the same text runs on SQLite and PostgreSQL. No row changes when refused.
pub(crate) const TAKE_DISCOVERY_BUDGET_SQL: &str =
    "INSERT INTO discovery_usage (user_id, window_start, window_end, hashes) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (user_id, window_start) DO UPDATE \
     SET hashes = discovery_usage.hashes + excluded.hashes \
     WHERE discovery_usage.hashes + excluded.hashes <= $5";

/// Delivery ids as the databases store them (ids beyond `i64` match nothing).
fn delivery_ids_in(delivery_ids: &[u64]) -> Vec<i64> {
    delivery_ids
        .iter()
        .filter_map(|&id| i64::try_from(id).ok())
        .collect()
}

/// An accepted envelope, with everything it fans out to.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Authenticated sender.
    pub sender_id: String,
    /// Sender-chosen id, unique per sender.
    pub message_id: String,
    /// SHA-256 of the canonical envelope; a resend must match it.
    pub digest: Vec<u8>,
    /// Server time, ms since the epoch.
    pub created_at: i64,
    /// Copies for recipients' mailboxes.
    pub deliveries: Vec<Delivery>,
    /// For case messages: the case and the envelope to append to its history.
    pub case_entry: Option<(String, Vec<u8>)>,
    /// Users the sender now has exchanged envelopes with (contact graph).
    pub contacts: Vec<String>,
}

/// Result of [`Store::store_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Stored and fanned out.
    Stored,
    /// The same envelope was stored before; nothing changed.
    Duplicate,
}

/// An envelope read back from a mailbox or a case history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEnvelope {
    /// Mailbox delivery id, or sequence number in a case history.
    pub delivery_id: u64,
    /// Encoded envelope, without `delivery_id`.
    pub envelope: Vec<u8>,
    /// Whether a web client acked it (kept for the retention period).
    pub acked: bool,
}

/// A page of envelopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvelopePage {
    /// In increasing `delivery_id` order.
    pub envelopes: Vec<StoredEnvelope>,
    /// More are waiting beyond the page.
    pub more: bool,
}

/// An attachment's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRow {
    /// Server-assigned id.
    pub attachment_id: String,
    /// Uploader.
    pub owner_id: String,
    /// Total stored size.
    pub sealed_size: u64,
    /// Size of every chunk but the last.
    pub chunk_size: u32,
    /// Whether the upload was completed (then it never changes).
    pub complete: bool,
    /// SHA-256 of the whole object, once complete.
    pub sha256: Vec<u8>,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Indexes of stored chunks, increasing.
    pub received_chunks: Vec<u32>,
    /// Users allowed to download besides the owner, sorted.
    pub readers: Vec<String>,
}

/// Counts of rows removed by [`Store::purge_expired`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Expired registration challenges.
    pub challenges: u64,
    /// Seen signatures past the replay window.
    pub signatures: u64,
    /// Web-acked envelopes past retention.
    pub acked_envelopes: u64,
    /// Discovery counters of windows that ended.
    pub discovery_windows: u64,
}

/// The persistent state of the data server.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- Registration ----

    /// Saves a new challenge.
    async fn insert_challenge(&self, challenge: &Challenge) -> Result<()>;
    /// How many unexpired challenges exist for this identifier hash (rate limit).
    async fn live_challenges(&self, identifier_hash: &[u8], now: i64) -> Result<u64>;
    /// Reads a challenge.
    async fn get_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>>;
    /// Counts one more wrong code; returns the new count (0 if the challenge is gone).
    async fn record_failed_attempt(&self, challenge_id: &str) -> Result<u32>;
    /// Deletes a challenge (expired or exhausted).
    async fn delete_challenge(&self, challenge_id: &str) -> Result<()>;
    /// Creates a user and consumes the challenge, atomically. Fails with
    /// `UnknownChallenge` if the challenge was consumed meanwhile.
    async fn create_user(&self, challenge_id: &str, user: &NewUser) -> Result<()>;
    /// Replaces a user's keys (new installation), consumes the challenge and queues the
    /// contact update to every contact, atomically. Returns how many contacts were notified.
    async fn add_installation(&self, challenge_id: &str, inst: &NewInstallation) -> Result<u64>;

    // ---- Directory ----

    /// The user registered under this identifier hash.
    async fn user_by_identifier_hash(&self, hash: &[u8]) -> Result<Option<String>>;
    /// A user's profile row.
    async fn get_user(&self, user_id: &str) -> Result<Option<UserRow>>;
    /// The newest key generation of a user (revoked or not).
    async fn current_keys(&self, user_id: &str) -> Result<Option<KeyRecord>>;
    /// Every key generation of a user, oldest first.
    async fn key_history(&self, user_id: &str) -> Result<Vec<KeyRecord>>;
    /// Which of these identifier hashes belong to users: `(hash, user_id)` pairs.
    async fn discover(&self, hashes: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, String)>>;
    /// Which of these user ids exist.
    async fn existing_users(&self, user_ids: &[String]) -> Result<Vec<String>>;
    /// The users to tell about a key change: those who exchanged envelopes with the user
    /// and co-participants of the user's cases, sorted.
    async fn contacts_of(&self, user_id: &str) -> Result<Vec<String>>;

    // ---- Contact discovery ----

    /// Counts the charge's `hashes` more discovery lookups against `user_id`'s budget of
    /// the window starting at `window_start`, if the window's total stays within `limit`;
    /// otherwise counts nothing and returns false. Atomic across every node sharing the
    /// database.
    async fn take_discovery_budget(&self, user_id: &str, charge: DiscoveryCharge) -> Result<bool>;

    // ---- Signed requests ----

    /// Remembers an accepted signature until `expires_at`. Returns false if it was seen.
    async fn remember_signature(&self, signature_hash: &[u8], expires_at: i64) -> Result<bool>;

    /// Records a request's signature; `ReplayedSignature` if it was seen before.
    async fn remember_or_refuse(&self, seen: &SeenSignature) -> Result<()> {
        if self.remember_signature(&seen.hash, seen.expires_at).await? {
            Ok(())
        } else {
            Err(crate::error::Error::ReplayedSignature)
        }
    }

    /// [`Store::store_message`] and the request's replay-cache entry in one commit: a
    /// send costs one durable write instead of two. A replay gets `ReplayedSignature`
    /// and writes nothing.
    async fn store_message_and_remember(
        &self,
        msg: &NewMessage,
        seen: &SeenSignature,
    ) -> Result<SendOutcome>;

    /// [`Store::ack`] and the request's replay-cache entry in one commit.
    async fn ack_and_remember(&self, acks: AckRequest<'_>, seen: &SeenSignature) -> Result<u64>;
    /// An operator's Sign Key.
    async fn operator_key(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Adds an operator or replaces their key, and audits it.
    async fn put_operator(&self, name: &str, sign_key: &[u8], audit: &AuditDraft) -> Result<()>;

    // ---- Operator actions (each audited in the same transaction) ----

    /// Marks the current keys revoked (if still `expected_version`), queues the contact
    /// update to every contact, audits. Fails with `AlreadyRevoked` or
    /// `ConcurrentKeyChange`.
    async fn revoke_keys(&self, revocation: Revocation<'_>) -> Result<u64>;
    /// Sets the verified flag and audits. False if the user does not exist.
    async fn set_verified(&self, user_id: &str, audit: &AuditDraft) -> Result<bool>;
    /// Appends an entry to the audit log.
    async fn append_audit(&self, audit: &AuditDraft) -> Result<AuditEntry>;
    /// Audit entries with `seq > after`, oldest first.
    async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>>;

    // ---- Messages ----

    /// Stores an envelope and its fan-out. Same (sender, message id) with the same digest:
    /// `Duplicate`, nothing written; with another digest: `MessageIdReused`.
    async fn store_message(&self, msg: &NewMessage) -> Result<SendOutcome>;
    /// Acks envelopes of `user_id`'s mailbox: deletes them, or with `keep_acked_at` marks
    /// them acked at that time. Ids of other mailboxes are ignored. Returns how many.
    async fn ack(
        &self,
        user_id: &str,
        delivery_ids: &[u64],
        keep_acked_at: Option<i64>,
    ) -> Result<u64>;
    /// Unacked envelopes of a mailbox, in delivery order.
    async fn pending(&self, user_id: &str, limit: u32) -> Result<EnvelopePage>;
    /// All stored envelopes of a mailbox (acked ones included) with `delivery_id > after`.
    async fn mailbox_history(&self, user_id: &str, after: u64, limit: u32) -> Result<EnvelopePage>;

    // ---- Attachments ----

    /// Creates an attachment if the owner's total stays within `quota`.
    async fn create_attachment(&self, row: &AttachmentRow, quota: u64) -> Result<()>;
    /// Reads an attachment.
    async fn get_attachment(&self, attachment_id: &str) -> Result<Option<AttachmentRow>>;
    /// Records that a chunk is stored (idempotent).
    async fn record_chunk(&self, attachment_id: &str, index: u32, size: u64) -> Result<()>;
    /// Marks complete with its hash and adds readers.
    async fn complete_attachment(
        &self,
        attachment_id: &str,
        sha256: &[u8],
        readers: &[String],
    ) -> Result<()>;

    // ---- Cases ----

    /// Creates a case with its participants (those the keys name) and their sealed keys.
    /// Fails with `CaseExists`.
    async fn create_case(&self, case: &CaseRecord, keys: &[SealedCaseKey]) -> Result<()>;
    /// A case with its participants (`my_keys` empty).
    async fn get_case(&self, case_id: &str) -> Result<Option<CaseRecord>>;
    /// The cases a user takes part in, oldest first (`my_keys` empty).
    async fn cases_of(&self, user_id: &str) -> Result<Vec<CaseRecord>>;
    /// Sealed case keys of one participant.
    async fn case_keys(&self, case_id: &str, participant_id: &str) -> Result<Vec<SealedCaseKey>>;
    /// Adds participants (those the keys name) and keys. Existing keys are kept unchanged.
    async fn add_case_participants(&self, added: NewParticipants<'_>) -> Result<()>;
    /// Case history with `seq > after`.
    async fn case_history(&self, case_id: &str, after: u64, limit: u32) -> Result<EnvelopePage>;

    // ---- Housekeeping ----

    /// Deletes expired challenges and seen signatures (`expires_at < now`), discovery
    /// counters of windows that ended (`window_end < now`) and web-acked envelopes acked
    /// before `acked_before`.
    async fn purge_expired(&self, now: i64, acked_before: i64) -> Result<Purged>;

    // ---- Key hierarchy ----

    /// The stored vault document, if a vault protects this database.
    async fn vault_config(&self) -> Result<Option<Vec<u8>>>;
    /// Replaces the vault document if the stored one is still `expected` (`None`: no
    /// document yet). False if it changed meanwhile.
    async fn put_vault_config(&self, expected: Option<&[u8]>, config: &[u8]) -> Result<bool>;
    /// How many users are registered.
    async fn user_count(&self) -> Result<u64>;
    // ---- Trust log ----

    /// Appends a block of `user_id`'s chain at position `seq`, giving it the next log
    /// index (dense from 0), which it returns. Fails with `TrustBlockConflict` if the
    /// user's chain already has a block at `seq`.
    async fn append_trust_block(&self, block: NewTrustBlock<'_>) -> Result<u64>;
    /// Blocks with index `>= from`, in log order, at most `limit`.
    async fn trust_blocks(&self, from: u64, limit: u32) -> Result<Vec<(u64, Vec<u8>)>>;
    /// Every block of one user's chain, in log order.
    async fn trust_blocks_of(&self, user_id: &str) -> Result<Vec<(u64, Vec<u8>)>>;
    /// The seed of the log key: stores `candidate` if there is none yet, and returns the
    /// stored one (so that every node signs with the same key).
    async fn trust_log_seed(&self, candidate: &[u8]) -> Result<Vec<u8>>;

    /// Checks that the database answers (a trivial query), for `/healthz`.
    async fn ping(&self) -> Result<()>;

    /// Closes the connections (SQLite: flushes the WAL into the database file), once
    /// nothing uses the store any more.
    async fn close(&self);
    // Recovery

    /// This server's recovery state of an account (`docs/recovery.md`).
    async fn recovery_account(&self, user_id: &str) -> Result<Option<RecoveryRow>>;
    /// Creates an account's recovery state; false if it exists.
    async fn recovery_insert(&self, row: &RecoveryRow) -> Result<bool>;
    /// Replaces an account's recovery state if its version is still `expected_version`.
    async fn recovery_replace(&self, row: &RecoveryRow, expected_version: i64) -> Result<bool>;
    /// Stores (replacing) a user's encrypted message backup.
    async fn put_backup(&self, user_id: &str, backup: &[u8], now: i64) -> Result<()>;
    /// A user's encrypted message backup.
    async fn get_backup(&self, user_id: &str) -> Result<Option<Vec<u8>>>;
}
