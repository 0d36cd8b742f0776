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

use super::{
    AttachmentRow, AuditDraft, Challenge, EnvelopePage, NewInstallation, NewMessage, NewUser,
    Purged, RecoveryRow, SeenSignature, SendOutcome, Store, UserRow,
};
use crate::error::{Error, Result};
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

fn seal_text(
    keys: &KeyHierarchy,
    purpose: &str,
    table: &str,
    row: &str,
    column: &str,
    text: &str,
) -> Result<String> {
    let sealed = keys.seal_row(purpose, table, row, column, text.as_bytes())?;
    Ok(format!(
        "{SEALED_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(sealed)
    ))
}

fn open_text(
    keys: &KeyHierarchy,
    purpose: &str,
    table: &str,
    row: &str,
    column: &str,
    stored: &str,
) -> Result<Option<String>> {
    let Some(body) = stored.strip_prefix(SEALED_PREFIX) else {
        return Ok(None);
    };
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| Error::Internal(format!("{table}.{column} of {row}: not base64")))?;
    let plain = keys.open_row(purpose, table, row, column, &sealed)?;
    String::from_utf8(plain)
        .map(Some)
        .map_err(|_| Error::Internal(format!("{table}.{column} of {row}: not UTF-8")))
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
            Some(k) => seal_text(&k, PROFILES, "users", user_id, "display_name", name),
        }
    }

    fn seal_audit(&self, a: &AuditDraft) -> Result<AuditDraft> {
        let Some(k) = self.vault.keys()? else {
            return Ok(a.clone());
        };
        let row = audit_row(a.timestamp, &a.operator_id, &a.action);
        Ok(AuditDraft {
            subject: seal_text(&k, AUDIT, "audit_log", &row, "subject", &a.subject)?,
            detail: seal_text(&k, AUDIT, "audit_log", &row, "detail", &a.detail)?,
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
        let Some(mut row) = self.inner.get_user(user_id).await? else {
            return Ok(None);
        };
        if let Some(k) = self.vault.keys()? {
            row.display_name = open_text(
                &k,
                PROFILES,
                "users",
                user_id,
                "display_name",
                &row.display_name,
            )?
            .ok_or_else(|| Error::Internal(format!("display name of {user_id} is not sealed")))?;
        }
        Ok(Some(row))
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

    async fn revoke_keys(
        &self,
        user_id: &str,
        expected_version: u32,
        contact_update: &[u8],
        audit: &AuditDraft,
    ) -> Result<u64> {
        let audit = self.seal_audit(audit)?;
        self.inner
            .revoke_keys(user_id, expected_version, contact_update, &audit)
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
    async fn ack_and_remember(
        &self,
        user_id: &str,
        delivery_ids: &[u64],
        keep_acked_at: Option<i64>,
        seen: &SeenSignature,
    ) -> Result<u64> {
        self.inner
            .ack_and_remember(user_id, delivery_ids, keep_acked_at, seen)
            .await
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
    async fn add_case_participants(
        &self,
        case_id: &str,
        added_by: &str,
        added_at: i64,
        keys: &[SealedCaseKey],
    ) -> Result<()> {
        self.inner
            .add_case_participants(case_id, added_by, added_at, keys)
            .await
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
        let Some(mut row) = self.inner.recovery_account(user_id).await? else {
            return Ok(None);
        };
        if let Some(k) = self.vault.keys()? {
            row.share = open_bytes(
                &k,
                OPRF_SHARES,
                "recovery_accounts",
                user_id,
                "share",
                &row.share,
            )?;
            row.envelope = open_bytes(
                &k,
                KEY_RINGS,
                "recovery_accounts",
                user_id,
                "envelope",
                &row.envelope,
            )?;
        }
        Ok(Some(row))
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
    async fn append_trust_block(
        &self,
        user_id: &str,
        seq: u64,
        block: &[u8],
        created_at: i64,
    ) -> Result<u64> {
        self.inner
            .append_trust_block(user_id, seq, block, created_at)
            .await
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
    async fn take_discovery_budget(
        &self,
        user_id: &str,
        window_start: i64,
        window_end: i64,
        hashes: u64,
        limit: u64,
    ) -> Result<bool> {
        self.inner
            .take_discovery_budget(user_id, window_start, window_end, hashes, limit)
            .await
    }
    async fn trust_log_seed(&self, candidate: &[u8]) -> Result<Vec<u8>> {
        let Some(k) = self.vault.keys()? else {
            return self.inner.trust_log_seed(candidate).await;
        };
        let sealed = seal_bytes(&k, TRUST_LOG, "trust_log_key", "1", "seed", candidate)?;
        let stored = self.inner.trust_log_seed(&sealed).await?;
        if !stored.starts_with(SEALED_PREFIX.as_bytes()) {
            // Made before the vault existed (a log head was served before `init`).
            tracing::warn!("the trust log key was made before the vault and is kept in the clear");
            return Ok(stored);
        }
        open_bytes(&k, TRUST_LOG, "trust_log_key", "1", "seed", &stored)
    }
}

fn seal_bytes(
    keys: &KeyHierarchy,
    purpose: &str,
    table: &str,
    row: &str,
    column: &str,
    plain: &[u8],
) -> Result<Vec<u8>> {
    if plain.is_empty() {
        return Ok(Vec::new());
    }
    let sealed = keys.seal_row(purpose, table, row, column, plain)?;
    Ok([SEALED_PREFIX.as_bytes(), &sealed].concat())
}

fn open_bytes(
    keys: &KeyHierarchy,
    purpose: &str,
    table: &str,
    row: &str,
    column: &str,
    stored: &[u8],
) -> Result<Vec<u8>> {
    if stored.is_empty() {
        return Ok(Vec::new());
    }
    let sealed = stored
        .strip_prefix(SEALED_PREFIX.as_bytes())
        .ok_or_else(|| Error::Internal(format!("{table}.{column} of {row} is not sealed")))?;
    Ok(keys.open_row(purpose, table, row, column, sealed)?)
}

impl EncryptedStore {
    fn seal_recovery(&self, row: &RecoveryRow) -> Result<RecoveryRow> {
        let Some(k) = self.vault.keys()? else {
            return Ok(row.clone());
        };
        let id = &row.user_id;
        Ok(RecoveryRow {
            share: seal_bytes(
                &k,
                OPRF_SHARES,
                "recovery_accounts",
                id,
                "share",
                &row.share,
            )?,
            envelope: seal_bytes(
                &k,
                KEY_RINGS,
                "recovery_accounts",
                id,
                "envelope",
                &row.envelope,
            )?,
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
                    open_text(&k, AUDIT, "audit_log", &row, "subject", &e.subject)?,
                    open_text(&k, AUDIT, "audit_log", &row, "detail", &e.detail)?,
                )
            }
        };
        e.opened_subject = subject.unwrap_or_else(|| e.subject.clone());
        e.opened_detail = detail.unwrap_or_else(|| e.detail.clone());
        Ok(())
    }
}
