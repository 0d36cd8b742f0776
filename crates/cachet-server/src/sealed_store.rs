//! A [`Store`] that encrypts server metadata at rest under the key hierarchy before it
//! reaches the database (any database: it wraps the SQLite or PostgreSQL store).
//!
//! | Data | At rest |
//! |---|---|
//! | display names | XChaCha20-Poly1305 under the `profiles` KEK, bound to (users, user id, display_name) |
//! | identifier hashes | keyed hash under the `identifiers` KEK (done by the API through [`Vault::blind_identifier`]) |
//! | audit subject and detail | sealed under the `audit` KEK, bound to (time, operator, action, column) |
//! | recovery: this server's OPRF key share | sealed under the `oprf-shares` KEK, bound to the account |
//! | recovery: the copy of the sealed key ring | sealed again under the `key-rings` KEK, bound to the account |
//! | the trust log's signing-key seed | sealed under the `trust-log` KEK (made after `init`) |
//!
//! The contact graph and mailbox owners stay in the clear: the server queries them inside
//! its transactions to route envelopes and fan out key changes. Envelopes, attachment
//! chunks and case fields are end-to-end ciphertext already.
//!
//! When no vault protects the database, values pass through unchanged; once one does,
//! every display name must be sealed (init refuses a database that already has users).

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use cachet_proto::v1::{AuditEntry, CaseRecord, KeyRecord, SealedCaseKey};
use cachet_vault::KeyHierarchy;

use crate::error::{Error, Result};
use crate::store::{
    AckRequest, AttachmentRow, AuditDraft, Challenge, DiscoveryCharge, EnvelopePage,
    NewInstallation, NewMessage, NewParticipants, NewTrustBlock, NewUser, Purged, RecoveryRow,
    Revocation, SeenSignature, SendOutcome, Store, UserRow,
};
use crate::vault::{Vault, AUDIT, KEY_RINGS, OPRF_SHARES, PROFILES, TRUST_LOG};

/// Prefix of a sealed text column.
const SEALED_PREFIX: &str = "sealed:v1:";

/// The encrypting wrapper.
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    vault: Arc<Vault>,
}

impl EncryptedStore {
    /// Wraps `inner`; `vault` must have been loaded from the same database.
    pub fn new(inner: Arc<dyn Store>, vault: Arc<Vault>) -> Self {
        Self { inner, vault }
    }
}

/// A sealed column: the KEK purpose its values are sealed under, and the table and
/// column that, with the row's id, every sealed value is bound to.
#[derive(Debug, Clone, Copy)]
struct SealedColumn {
    purpose: &'static str,
    table: &'static str,
    column: &'static str,
}

/// `users.display_name`.
const DISPLAY_NAME: SealedColumn = SealedColumn::new(PROFILES, "users", "display_name");
/// `audit_log.subject`.
const AUDIT_SUBJECT: SealedColumn = SealedColumn::new(AUDIT, "audit_log", "subject");
/// `audit_log.detail`.
const AUDIT_DETAIL: SealedColumn = SealedColumn::new(AUDIT, "audit_log", "detail");
/// `recovery_accounts.share` (this server's OPRF key share).
const RECOVERY_SHARE: SealedColumn = SealedColumn::new(OPRF_SHARES, "recovery_accounts", "share");
/// `recovery_accounts.envelope` (the copy of the sealed key ring).
const RECOVERY_ENVELOPE: SealedColumn =
    SealedColumn::new(KEY_RINGS, "recovery_accounts", "envelope");
/// The trust log's signing-key seed (its one row, `1`).
const TRUST_LOG_SEED: SealedColumn = SealedColumn::new(TRUST_LOG, "trust_log_key", "seed");

impl SealedColumn {
    /// The `column` of `table`, sealed under the `purpose` KEK.
    const fn new(purpose: &'static str, table: &'static str, column: &'static str) -> Self {
        Self {
            purpose,
            table,
            column,
        }
    }

    /// Text sealed for `row`, stored as the prefix and base64.
    fn seal_text(self, keys: &KeyHierarchy, row: &str, text: &str) -> Result<String> {
        let sealed = keys.seal_row(self.purpose, self.table, row, self.column, text.as_bytes())?;
        Ok(format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(sealed)
        ))
    }

    /// Stored text opened; `None` if it was not sealed.
    fn open_text(self, keys: &KeyHierarchy, row: &str, stored: &str) -> Result<Option<String>> {
        let Some(body) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(None);
        };
        let (table, column) = (self.table, self.column);
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| Error::Internal(format!("{table}.{column} of {row}: not base64")))?;
        let plain = keys.open_row(self.purpose, table, row, column, &sealed)?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| Error::Internal(format!("{table}.{column} of {row}: not UTF-8")))
    }

    /// Bytes sealed for `row`, stored behind the prefix (empty stays empty).
    fn seal_bytes(self, keys: &KeyHierarchy, row: &str, plain: &[u8]) -> Result<Vec<u8>> {
        if plain.is_empty() {
            return Ok(Vec::new());
        }
        let sealed = keys.seal_row(self.purpose, self.table, row, self.column, plain)?;
        Ok([SEALED_PREFIX.as_bytes(), &sealed].concat())
    }

    /// Stored bytes opened (empty stays empty); an error if they were not sealed.
    fn open_bytes(self, keys: &KeyHierarchy, row: &str, stored: &[u8]) -> Result<Vec<u8>> {
        if stored.is_empty() {
            return Ok(Vec::new());
        }
        let (table, column) = (self.table, self.column);
        let sealed = stored
            .strip_prefix(SEALED_PREFIX.as_bytes())
            .ok_or_else(|| Error::Internal(format!("{table}.{column} of {row} is not sealed")))?;
        Ok(keys.open_row(self.purpose, table, row, column, sealed)?)
    }
}

/// The identity an audit entry's sealed columns are bound to (its sequence number is
/// only assigned by the store, after sealing).
fn audit_row(timestamp: i64, operator_id: &str, action: &str) -> String {
    format!("{timestamp}/{operator_id}/{action}")
}

impl EncryptedStore {
    fn seal_name(&self, user_id: &str, name: &str) -> Result<String> {
        match self.vault.keys()? {
            None => Ok(name.to_owned()),
            Some(k) => DISPLAY_NAME.seal_text(&k, user_id, name),
        }
    }

    fn seal_audit(&self, a: &AuditDraft) -> Result<AuditDraft> {
        let Some(k) = self.vault.keys()? else {
            return Ok(a.clone());
        };
        let row = audit_row(a.timestamp, &a.operator_id, &a.action);
        Ok(AuditDraft {
            subject: AUDIT_SUBJECT.seal_text(&k, &row, &a.subject)?,
            detail: AUDIT_DETAIL.seal_text(&k, &row, &a.detail)?,
            ..a.clone()
        })
    }
}

#[async_trait]
impl Store for EncryptedStore {
    async fn insert_challenge(&self, challenge: &Challenge) -> Result<()> {
        self.inner.insert_challenge(challenge).await
    }
    async fn live_challenges(&self, identifier_hash: &[u8], now: i64) -> Result<u64> {
        self.inner.live_challenges(identifier_hash, now).await
    }
    async fn get_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>> {
        self.inner.get_challenge(challenge_id).await
    }
    async fn record_failed_attempt(&self, challenge_id: &str) -> Result<u32> {
        self.inner.record_failed_attempt(challenge_id).await
    }
    async fn delete_challenge(&self, challenge_id: &str) -> Result<()> {
        self.inner.delete_challenge(challenge_id).await
    }
    async fn create_user(&self, challenge_id: &str, user: &NewUser) -> Result<()> {
        let user = NewUser {
            display_name: self.seal_name(&user.user_id, &user.display_name)?,
            ..user.clone()
        };
        self.inner.create_user(challenge_id, &user).await
    }
    async fn add_installation(&self, challenge_id: &str, inst: &NewInstallation) -> Result<u64> {
        let inst = NewInstallation {
            display_name: inst
                .display_name
                .as_deref()
                .map(|n| self.seal_name(&inst.user_id, n))
                .transpose()?,
            ..inst.clone()
        };
        self.inner.add_installation(challenge_id, &inst).await
    }

    async fn user_by_identifier_hash(&self, hash: &[u8]) -> Result<Option<String>> {
        self.inner.user_by_identifier_hash(hash).await
    }
    async fn get_user(&self, user_id: &str) -> Result<Option<UserRow>> {
        let found = self.inner.get_user(user_id).await?;
        self.opened(found, |k, row| {
            row.display_name = DISPLAY_NAME
                .open_text(k, user_id, &row.display_name)?
                .ok_or_else(|| {
                    Error::Internal(format!("display name of {user_id} is not sealed"))
                })?;
            Ok(())
        })
    }
    async fn current_keys(&self, user_id: &str) -> Result<Option<KeyRecord>> {
        self.inner.current_keys(user_id).await
    }
    async fn key_history(&self, user_id: &str) -> Result<Vec<KeyRecord>> {
        self.inner.key_history(user_id).await
    }
    async fn discover(&self, hashes: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, String)>> {
        self.inner.discover(hashes).await
    }
    async fn existing_users(&self, user_ids: &[String]) -> Result<Vec<String>> {
        self.inner.existing_users(user_ids).await
    }
    async fn contacts_of(&self, user_id: &str) -> Result<Vec<String>> {
        self.inner.contacts_of(user_id).await
    }

    async fn remember_signature(&self, signature_hash: &[u8], expires_at: i64) -> Result<bool> {
        self.inner
            .remember_signature(signature_hash, expires_at)
            .await
    }
    async fn operator_key(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.inner.operator_key(name).await
    }
    async fn put_operator(&self, name: &str, sign_key: &[u8], audit: &AuditDraft) -> Result<()> {
        let audit = self.seal_audit(audit)?;
        self.inner.put_operator(name, sign_key, &audit).await
    }

    async fn revoke_keys(&self, revocation: Revocation<'_>) -> Result<u64> {
        let audit = self.seal_audit(revocation.audit)?;
        self.inner
            .revoke_keys(Revocation {
                audit: &audit,
                ..revocation
            })
            .await
    }
    async fn set_verified(&self, user_id: &str, audit: &AuditDraft) -> Result<bool> {
        let audit = self.seal_audit(audit)?;
        self.inner.set_verified(user_id, &audit).await
    }
    async fn append_audit(&self, audit: &AuditDraft) -> Result<AuditEntry> {
        let audit = self.seal_audit(audit)?;
        let mut entry = self.inner.append_audit(&audit).await?;
        self.open_audit(&mut entry)?;
        Ok(entry)
    }
    async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>> {
        let mut entries = self.inner.audit_entries(after, limit).await?;
        for e in &mut entries {
            self.open_audit(e)?;
        }
        Ok(entries)
    }

    async fn store_message(&self, msg: &NewMessage) -> Result<SendOutcome> {
        self.inner.store_message(msg).await
    }
    async fn ack(
        &self,
        user_id: &str,
        delivery_ids: &[u64],
        keep_acked_at: Option<i64>,
    ) -> Result<u64> {
        self.inner.ack(user_id, delivery_ids, keep_acked_at).await
    }
    async fn store_message_and_remember(
        &self,
        msg: &NewMessage,
        seen: &SeenSignature,
    ) -> Result<SendOutcome> {
        self.inner.store_message_and_remember(msg, seen).await
    }
    async fn ack_and_remember(&self, acks: AckRequest<'_>, seen: &SeenSignature) -> Result<u64> {
        self.inner.ack_and_remember(acks, seen).await
    }
    async fn pending(&self, user_id: &str, limit: u32) -> Result<EnvelopePage> {
        self.inner.pending(user_id, limit).await
    }
    async fn mailbox_history(&self, user_id: &str, after: u64, limit: u32) -> Result<EnvelopePage> {
        self.inner.mailbox_history(user_id, after, limit).await
    }

    async fn create_attachment(&self, row: &AttachmentRow, quota: u64) -> Result<()> {
        self.inner.create_attachment(row, quota).await
    }
    async fn get_attachment(&self, attachment_id: &str) -> Result<Option<AttachmentRow>> {
        self.inner.get_attachment(attachment_id).await
    }
    async fn record_chunk(&self, attachment_id: &str, index: u32, size: u64) -> Result<()> {
        self.inner.record_chunk(attachment_id, index, size).await
    }
    async fn complete_attachment(
        &self,
        attachment_id: &str,
        sha256: &[u8],
        readers: &[String],
    ) -> Result<()> {
        self.inner
            .complete_attachment(attachment_id, sha256, readers)
            .await
    }

    async fn create_case(&self, case: &CaseRecord, keys: &[SealedCaseKey]) -> Result<()> {
        self.inner.create_case(case, keys).await
    }
    async fn get_case(&self, case_id: &str) -> Result<Option<CaseRecord>> {
        self.inner.get_case(case_id).await
    }
    async fn cases_of(&self, user_id: &str) -> Result<Vec<CaseRecord>> {
        self.inner.cases_of(user_id).await
    }
    async fn case_keys(&self, case_id: &str, participant_id: &str) -> Result<Vec<SealedCaseKey>> {
        self.inner.case_keys(case_id, participant_id).await
    }
    async fn add_case_participants(&self, added: NewParticipants<'_>) -> Result<()> {
        self.inner.add_case_participants(added).await
    }
    async fn case_history(&self, case_id: &str, after: u64, limit: u32) -> Result<EnvelopePage> {
        self.inner.case_history(case_id, after, limit).await
    }

    async fn purge_expired(&self, now: i64, acked_before: i64) -> Result<Purged> {
        self.inner.purge_expired(now, acked_before).await
    }

    async fn vault_config(&self) -> Result<Option<Vec<u8>>> {
        self.inner.vault_config().await
    }
    async fn put_vault_config(&self, expected: Option<&[u8]>, config: &[u8]) -> Result<bool> {
        self.inner.put_vault_config(expected, config).await
    }
    async fn user_count(&self) -> Result<u64> {
        self.inner.user_count().await
    }

    async fn recovery_account(&self, user_id: &str) -> Result<Option<RecoveryRow>> {
        let found = self.inner.recovery_account(user_id).await?;
        self.opened(found, |k, row| {
            row.share = RECOVERY_SHARE.open_bytes(k, user_id, &row.share)?;
            row.envelope = RECOVERY_ENVELOPE.open_bytes(k, user_id, &row.envelope)?;
            Ok(())
        })
    }
    async fn recovery_insert(&self, row: &RecoveryRow) -> Result<bool> {
        let row = self.seal_recovery(row)?;
        self.inner.recovery_insert(&row).await
    }
    async fn recovery_replace(&self, row: &RecoveryRow, expected_version: i64) -> Result<bool> {
        let row = self.seal_recovery(row)?;
        self.inner.recovery_replace(&row, expected_version).await
    }
    async fn put_backup(&self, user_id: &str, backup: &[u8], now: i64) -> Result<()> {
        // Already end-to-end ciphertext under the user's backup key.
        self.inner.put_backup(user_id, backup, now).await
    }
    async fn get_backup(&self, user_id: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get_backup(user_id).await
    }

    // The trust log is public by design (anyone may audit it).
    async fn append_trust_block(&self, block: NewTrustBlock<'_>) -> Result<u64> {
        self.inner.append_trust_block(block).await
    }
    async fn trust_blocks(&self, from: u64, limit: u32) -> Result<Vec<(u64, Vec<u8>)>> {
        self.inner.trust_blocks(from, limit).await
    }
    async fn trust_blocks_of(&self, user_id: &str) -> Result<Vec<(u64, Vec<u8>)>> {
        self.inner.trust_blocks_of(user_id).await
    }
    async fn close(&self) {
        self.inner.close().await;
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn take_discovery_budget(&self, user_id: &str, charge: DiscoveryCharge) -> Result<bool> {
        self.inner.take_discovery_budget(user_id, charge).await
    }
    async fn trust_log_seed(&self, candidate: &[u8]) -> Result<Vec<u8>> {
        let Some(k) = self.vault.keys()? else {
            return self.inner.trust_log_seed(candidate).await;
        };
        let sealed = TRUST_LOG_SEED.seal_bytes(&k, "1", candidate)?;
        let stored = self.inner.trust_log_seed(&sealed).await?;
        if !stored.starts_with(SEALED_PREFIX.as_bytes()) {
            // Made before the vault existed (a log head was served before `init`).
            tracing::warn!("the trust log key was made before the vault and is kept in the clear");
            return Ok(stored);
        }
        TRUST_LOG_SEED.open_bytes(&k, "1", &stored)
    }
}

impl EncryptedStore {
    /// A row read from the inner store with its sealed columns opened by `open` (when a
    /// vault protects the database; `None` stays `None`).
    fn opened<T>(
        &self,
        found: Option<T>,
        open: impl FnOnce(&KeyHierarchy, &mut T) -> Result<()>,
    ) -> Result<Option<T>> {
        let Some(mut row) = found else {
            return Ok(None);
        };
        if let Some(k) = self.vault.keys()? {
            open(&k, &mut row)?;
        }
        Ok(Some(row))
    }

    fn seal_recovery(&self, row: &RecoveryRow) -> Result<RecoveryRow> {
        let Some(k) = self.vault.keys()? else {
            return Ok(row.clone());
        };
        let id = &row.user_id;
        Ok(RecoveryRow {
            share: RECOVERY_SHARE.seal_bytes(&k, id, &row.share)?,
            envelope: RECOVERY_ENVELOPE.seal_bytes(&k, id, &row.envelope)?,
            ..row.clone()
        })
    }

    /// Fills `opened_subject` and `opened_detail`; the hashed fields stay as stored. Vault
    /// events are logged in the clear (they name no user) and are copied as they are.
    fn open_audit(&self, e: &mut AuditEntry) -> Result<()> {
        let (subject, detail) = match self.vault.keys()? {
            None => (None, None),
            Some(k) => {
                let row = audit_row(e.timestamp, &e.operator_id, &e.action);
                (
                    AUDIT_SUBJECT.open_text(&k, &row, &e.subject)?,
                    AUDIT_DETAIL.open_text(&k, &row, &e.detail)?,
                )
            }
        };
        e.opened_subject = subject.unwrap_or_else(|| e.subject.clone());
        e.opened_detail = detail.unwrap_or_else(|| e.detail.clone());
        Ok(())
    }
}
