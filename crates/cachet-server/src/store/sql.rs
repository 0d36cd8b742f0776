//! The one implementation of [`super::Store`] shared by SQLite and PostgreSQL: every
//! statement is written once, in [`sql_store!`], and compiled for each database.
//!
//! Both databases accept the same text (`$n` parameters, `ON CONFLICT`, `RETURNING`,
//! explicit casts of aggregates), so a macro over the sqlx types is enough; a query
//! builder would add a dependency to produce the text we already write. What really
//! differs stays in each backend, through the hooks below and the methods each backend
//! passes to the macro:
//!
//! * how transactions begin: SQLite takes its write lock up front (`BEGIN IMMEDIATE`)
//!   and reads from a read-only pool; PostgreSQL reads one snapshot
//!   (`REPEATABLE READ, READ ONLY`).
//! * `lock_users` / `lock_table`: PostgreSQL serialises writers of several nodes with row
//!   and table locks; SQLite's single writer already does.
//! * the hot paths (the replay cache, sends, acks, key and mailbox reads), which SQLite
//!   runs on its group-commit writer thread and inline rusqlite reads, and PostgreSQL in
//!   the server-side functions of migration `0200_hot_path_functions.sql`.

use std::time::Duration;

use super::{EnvelopePage, StoredEnvelope};
use crate::error::Error;

/// Columns of a key generation, in the order `KeyRecord` is read back.
macro_rules! key_columns {
    () => {
        "key_version, box_key, sign_key, valid_from, valid_until, reason, \
         previous_key_signature, revoked_by_operator"
    };
}

/// The current keys of a user: read on every signed request.
pub(super) const CURRENT_KEYS_SQL: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM user_keys WHERE user_id = $1 ORDER BY key_version DESC LIMIT 1"
);
/// Every key generation of a user, oldest first.
pub(super) const KEY_HISTORY_SQL: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM user_keys WHERE user_id = $1 ORDER BY key_version"
);
/// The columns of [`CURRENT_KEYS_SQL`] and [`KEY_HISTORY_SQL`], in order.
pub(super) type KeyTuple = (i64, Vec<u8>, Vec<u8>, i64, i64, i64, Vec<u8>, String);

/// A key generation as read back.
pub(super) fn key_record(t: KeyTuple) -> cachet_proto::v1::KeyRecord {
    let (version, box_key, sign_key, valid_from, valid_until, reason, previous, revoked_by) = t;
    cachet_proto::v1::KeyRecord {
        key_version: to_u32(version),
        box_key,
        sign_key,
        valid_from,
        valid_until,
        reason: i32::try_from(reason).unwrap_or(0),
        previous_key_signature: previous,
        revoked_by_operator: revoked_by,
    }
}

/// Acks of one mailbox, as the backends' `acknowledge` hook takes them.
pub(super) struct Acks<'a> {
    /// The mailbox.
    pub user_id: &'a str,
    /// Delivery ids to ack (ids of other mailboxes are ignored).
    pub ids: Vec<i64>,
    /// Keep the envelopes, acked at this time, instead of deleting them.
    pub keep_acked_at: Option<i64>,
    /// The request's replay-cache entry, to write in the same commit.
    pub seen: Option<&'a super::SeenSignature>,
}

/// Unacked envelopes of a mailbox; `$2` is one more than the page, to see if more wait.
pub(super) const PENDING_SQL: &str = "SELECT delivery_id, envelope, acked_at FROM mailbox \
     WHERE recipient_id = $1 AND acked_at IS NULL ORDER BY delivery_id LIMIT $2";

/// Users to tell about a key change of `$1`: its contacts and case co-participants.
pub(super) const CONTACTS_SQL: &str =
    "SELECT contact_id AS c FROM contacts WHERE user_id = $1 AND contact_id <> $1 \
     UNION \
     SELECT b.user_id AS c FROM case_participants a \
     JOIN case_participants b ON a.case_id = b.case_id \
     WHERE a.user_id = $1 AND b.user_id <> $1 \
     ORDER BY c";

/// How many times a transaction aborted as a deadlock victim is run again.
const RETRIES: usize = 5;

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(super) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// A page of `limit` envelopes out of `limit + 1` rows read.
pub(super) fn page(rows: Vec<(i64, Vec<u8>, Option<i64>)>, limit: u32) -> EnvelopePage {
    let limit = limit as usize;
    let more = rows.len() > limit;
    let envelopes = rows
        .into_iter()
        .take(limit)
        .map(|(id, envelope, acked_at)| StoredEnvelope {
            delivery_id: to_u64(id),
            envelope,
            acked: acked_at.is_some(),
        })
        .collect();
    EnvelopePage { envelopes, more }
}

/// Whether the database aborted the transaction in a way that running it again may fix:
/// a PostgreSQL deadlock victim (`40P01`) or serialisation failure (`40001`). SQLite,
/// with its single writer, raises neither.
fn is_retryable(e: &Error) -> bool {
    match e {
        Error::Database(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40P01") | Some("40001"))
        }
        _ => false,
    }
}

/// Runs `attempt` again, a few times, while it fails in a way [`is_retryable`] accepts;
/// the retried work has no side effect outside the database.
pub(super) async fn retrying<T, F, Fut>(attempt: F) -> crate::error::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = crate::error::Result<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(e) if tries < RETRIES && is_retryable(&e) => {
                tries += 1;
                tracing::debug!(error = %e, tries, "transaction aborted by the database; retrying");
                tokio::time::sleep(Duration::from_millis(2 * tries as u64)).await;
            }
            other => return other,
        }
    }
}

/// Implements [`super::Store`] for `$store` over the sqlx database `$db` (connection type
/// `$conn`): reads from the pool in field `$reader`, multi-statement reads in a
/// transaction opened by the statement `$begin_read`, writes through the pool in field
/// `$writer`, write transactions opened by `$begin_write`. The backend provides the hooks
/// described in the module comment (`lock_users`, `lock_table`, and the hot writes `send`
/// and `acknowledge`), and passes its other hot paths (`current_keys`, `key_history`,
/// `discover`, `existing_users`, `remember_signature`, `pending`, `close`) after the `;`.
macro_rules! sql_store {
    (
        $store:ty, $db:ty, $conn:ty,
        read: $reader:ident begun with $begin_read:expr,
        write: $writer:ident begun with $begin_write:expr;
        $($hot:tt)*
    ) => {
        use $crate::store::sql::{
            is_foreign_key_violation, is_unique_violation, page, retrying, to_i64, to_u32,
            to_u64, CONTACTS_SQL,
        };
        use cachet_server_common::recovery::DATA_SERVER_ACCOUNTS as RECOVERY_ACCOUNTS;
        use cachet_server_common::{audit, challenge, vault as vault_sql};

        async fn insert_keys(
            conn: &mut $conn,
            user_id: &str,
            k: &cachet_proto::v1::KeyRecord,
        ) -> $crate::error::Result<()> {
            sqlx::query(
                "INSERT INTO user_keys (user_id, key_version, box_key, sign_key, valid_from, \
                 valid_until, reason, previous_key_signature, revoked_by_operator) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(user_id)
            .bind(i64::from(k.key_version))
            .bind(&k.box_key)
            .bind(&k.sign_key)
            .bind(k.valid_from)
            .bind(k.valid_until)
            .bind(i64::from(k.reason))
            .bind(&k.previous_key_signature)
            .bind(&k.revoked_by_operator)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Puts one envelope in one mailbox under the next delivery id of that mailbox.
        async fn enqueue(
            conn: &mut $conn,
            recipient_id: &str,
            envelope: &[u8],
            now: i64,
        ) -> $crate::error::Result<u64> {
            let id: Option<i64> = sqlx::query_scalar(
                "UPDATE users SET last_delivery_id = last_delivery_id + 1 WHERE user_id = $1 \
                 RETURNING last_delivery_id",
            )
            .bind(recipient_id)
            .fetch_optional(&mut *conn)
            .await?;
            let id = id.ok_or_else(|| {
                $crate::error::Error::UnknownRecipient(recipient_id.to_owned())
            })?;
            sqlx::query(
                "INSERT INTO mailbox (recipient_id, delivery_id, envelope, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(recipient_id)
            .bind(id)
            .bind(envelope)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(to_u64(id))
        }

        async fn contacts_in(conn: &mut $conn, user_id: &str) -> $crate::error::Result<Vec<String>> {
            Ok(sqlx::query_scalar(CONTACTS_SQL)
                .bind(user_id)
                .fetch_all(&mut *conn)
                .await?)
        }

        /// Queues `envelope` for every contact of `user_id`.
        async fn fan_out_to_contacts(
            conn: &mut $conn,
            user_id: &str,
            envelope: &[u8],
            now: i64,
        ) -> $crate::error::Result<u64> {
            let contacts = contacts_in(conn, user_id).await?;
            <$store>::lock_users(conn, &contacts).await?;
            for c in &contacts {
                enqueue(conn, c, envelope, now).await?;
            }
            Ok(contacts.len() as u64)
        }

        async fn append_audit_in(
            conn: &mut $conn,
            d: &$crate::store::AuditDraft,
        ) -> $crate::error::Result<cachet_proto::v1::AuditEntry> {
            // One writer of the chain at a time, across all nodes; plain reads go on.
            <$store>::lock_table(conn, "audit_log").await?;
            let last: Option<(i64, Vec<u8>)> = sqlx::query_as(audit::LAST_ENTRY_SQL)
                .fetch_optional(&mut *conn)
                .await?;
            let entry = audit::next_entry(
                last,
                audit::Action {
                    timestamp: d.timestamp,
                    operator_id: &d.operator_id,
                    action: &d.action,
                    subject: &d.subject,
                    detail: &d.detail,
                },
            );
            cachet_server_common::bind_audit_entry!(sqlx::query(audit::INSERT_ENTRY_SQL), entry)
                .execute(&mut *conn)
                .await?;
            Ok(entry)
        }

        fn case_from_row(
            row: &<$db as sqlx::Database>::Row,
        ) -> $crate::error::Result<cachet_proto::v1::CaseRecord> {
            use sqlx::Row;
            Ok(cachet_proto::v1::CaseRecord {
                case_id: row.try_get("case_id")?,
                created_by: row.try_get("created_by")?,
                sealed_fields: row.try_get("sealed_fields")?,
                participants: Vec::new(),
                my_keys: Vec::new(),
                created_at: row.try_get("created_at")?,
            })
        }

        async fn participants_in(
            conn: &mut $conn,
            case_id: &str,
        ) -> $crate::error::Result<Vec<String>> {
            Ok(sqlx::query_scalar(
                "SELECT user_id FROM case_participants WHERE case_id = $1 \
                 ORDER BY added_at, user_id",
            )
            .bind(case_id)
            .fetch_all(&mut *conn)
            .await?)
        }

        async fn insert_participants_and_keys(
            conn: &mut $conn,
            case_id: &str,
            added_by: &str,
            added_at: i64,
            keys: &[cachet_proto::v1::SealedCaseKey],
        ) -> $crate::error::Result<()> {
            for k in keys {
                sqlx::query(
                    "INSERT INTO case_participants (case_id, user_id, added_by, added_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (case_id, user_id) DO NOTHING",
                )
                .bind(case_id)
                .bind(&k.participant_id)
                .bind(added_by)
                .bind(added_at)
                .execute(&mut *conn)
                .await?;
                sqlx::query(
                    "INSERT INTO case_keys (case_id, participant_id, key_epoch, sealed_by, \
                     sealer_box_key, recipient_box_key, nonce, ciphertext) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (case_id, participant_id, key_epoch) DO NOTHING",
                )
                .bind(case_id)
                .bind(&k.participant_id)
                .bind(i64::from(k.key_epoch))
                .bind(&k.sealed_by)
                .bind(&k.sealer_box_key)
                .bind(&k.recipient_box_key)
                .bind(&k.nonce)
                .bind(&k.ciphertext)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }

        /// Consumes a registration challenge; `UnknownChallenge` if it was gone.
        async fn consume_challenge(
            conn: &mut $conn,
            challenge_id: &str,
        ) -> $crate::error::Result<()> {
            let consumed = sqlx::query(cachet_server_common::challenge::DELETE_SQL)
                .bind(challenge_id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if consumed == 0 {
                return Err($crate::error::Error::UnknownChallenge);
            }
            Ok(())
        }

        impl $store {
            fn read_pool(&self) -> &sqlx::Pool<$db> {
                &self.$reader
            }

            fn write_pool(&self) -> &sqlx::Pool<$db> {
                &self.$writer
            }

            async fn begin_read(&self) -> $crate::error::Result<sqlx::Transaction<'static, $db>> {
                Ok(self.$reader.begin_with($begin_read).await?)
            }

            async fn begin_write(&self) -> $crate::error::Result<sqlx::Transaction<'static, $db>> {
                Ok(self.$writer.begin_with($begin_write).await?)
            }
        }

        // One attempt of each transaction that `retrying` may run again.
        impl $store {
            async fn add_installation_once(
                &self,
                challenge_id: &str,
                inst: &$crate::store::NewInstallation,
            ) -> $crate::error::Result<u64> {
                let mut tx = self.begin_write().await?;
                consume_challenge(&mut tx, challenge_id).await?;
                // Key changes of one user are serialised on the user's row.
                <$store>::lock_users(&mut tx, std::slice::from_ref(&inst.user_id)).await?;
                let current: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(MAX(key_version) AS BIGINT) FROM user_keys WHERE user_id = $1",
                )
                .bind(&inst.user_id)
                .fetch_one(&mut *tx)
                .await?;
                if current != Some(i64::from(inst.expected_version)) {
                    return Err($crate::error::Error::ConcurrentKeyChange);
                }
                let now = inst.keys.valid_from;
                sqlx::query(
                    "UPDATE user_keys SET valid_until = $3 \
                     WHERE user_id = $1 AND key_version = $2 AND valid_until = 0",
                )
                .bind(&inst.user_id)
                .bind(i64::from(inst.expected_version))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                insert_keys(&mut tx, &inst.user_id, &inst.keys).await?;
                if let Some(name) = &inst.display_name {
                    sqlx::query("UPDATE users SET display_name = $2 WHERE user_id = $1")
                        .bind(&inst.user_id)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
                let n =
                    fan_out_to_contacts(&mut tx, &inst.user_id, &inst.contact_update, now).await?;
                tx.commit().await?;
                Ok(n)
            }

            async fn revoke_keys_once(
                &self,
                revocation: $crate::store::Revocation<'_>,
            ) -> $crate::error::Result<u64> {
                let mut tx = self.begin_write().await?;
                <$store>::lock_users(&mut tx, &[revocation.user_id.to_owned()]).await?;
                let current: Option<(i64, String)> = sqlx::query_as(
                    "SELECT key_version, revoked_by_operator FROM user_keys WHERE user_id = $1 \
                     ORDER BY key_version DESC LIMIT 1",
                )
                .bind(revocation.user_id)
                .fetch_optional(&mut *tx)
                .await?;
                let (version, revoked_by) =
                    current.ok_or($crate::error::Error::UserNotFound)?;
                if version != i64::from(revocation.expected_version) {
                    return Err($crate::error::Error::ConcurrentKeyChange);
                }
                if !revoked_by.is_empty() {
                    return Err($crate::error::Error::AlreadyRevoked);
                }
                sqlx::query(
                    "UPDATE user_keys SET revoked_by_operator = $3, \
                     valid_until = CASE WHEN valid_until = 0 THEN $4 ELSE valid_until END \
                     WHERE user_id = $1 AND key_version = $2",
                )
                .bind(revocation.user_id)
                .bind(version)
                .bind(&revocation.audit.operator_id)
                .bind(revocation.audit.timestamp)
                .execute(&mut *tx)
                .await?;
                let n = fan_out_to_contacts(
                    &mut tx,
                    revocation.user_id,
                    revocation.contact_update,
                    revocation.audit.timestamp,
                )
                .await?;
                append_audit_in(&mut tx, revocation.audit).await?;
                tx.commit().await?;
                Ok(n)
            }

            async fn append_trust_block_once(
                &self,
                new: $crate::store::NewTrustBlock<'_>,
            ) -> $crate::error::Result<u64> {
                let mut tx = self.begin_write().await?;
                // Indexes must be dense and in commit order on every node.
                <$store>::lock_table(&mut tx, "trust_blocks").await?;
                let idx: i64 =
                    sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM trust_blocks")
                        .fetch_one(&mut *tx)
                        .await?;
                let inserted = sqlx::query(
                    "INSERT INTO trust_blocks (idx, user_id, seq, block, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(idx)
                .bind(new.user_id)
                .bind(to_i64(new.seq))
                .bind(new.block)
                .bind(new.created_at)
                .execute(&mut *tx)
                .await;
                match inserted {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        return Err($crate::error::Error::TrustBlockConflict)
                    }
                    Err(e) => return Err(e.into()),
                }
                tx.commit().await?;
                Ok(to_u64(idx))
            }

            async fn purge_expired_once(
                &self,
                now: i64,
                acked_before: i64,
            ) -> $crate::error::Result<$crate::store::Purged> {
                let mut tx = self.begin_write().await?;
                let mut delete = async |sql: &'static str, before: i64| {
                    sqlx::query(sql)
                        .bind(before)
                        .execute(&mut *tx)
                        .await
                        .map(|done| done.rows_affected())
                };
                let purged = $crate::store::Purged {
                    challenges: delete(challenge::PURGE_SQL, now)
                        .await?,
                    signatures: delete("DELETE FROM seen_signatures WHERE expires_at < $1", now)
                        .await?,
                    acked_envelopes: delete(
                        "DELETE FROM mailbox WHERE acked_at IS NOT NULL AND acked_at < $1",
                        acked_before,
                    )
                    .await?,
                    discovery_windows: delete(
                        "DELETE FROM discovery_usage WHERE window_end < $1",
                        now,
                    )
                    .await?,
                };
                tx.commit().await?;
                Ok(purged)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn insert_challenge(
                &self,
                c: &$crate::store::Challenge,
            ) -> $crate::error::Result<()> {
                cachet_server_common::bind_challenge!(sqlx::query(challenge::INSERT_SQL), c)
                    .execute(self.write_pool())
                    .await?;
                Ok(())
            }

            async fn live_challenges(
                &self,
                identifier_hash: &[u8],
                now: i64,
            ) -> $crate::error::Result<u64> {
                let n: i64 = sqlx::query_scalar(challenge::LIVE_COUNT_SQL)
                    .bind(identifier_hash)
                    .bind(now)
                    .fetch_one(self.read_pool())
                    .await?;
                Ok(to_u64(n))
            }

            async fn get_challenge(
                &self,
                challenge_id: &str,
            ) -> $crate::error::Result<Option<$crate::store::Challenge>> {
                let row: Option<challenge::ChallengeTuple> = sqlx::query_as(challenge::SELECT_SQL)
                    .bind(challenge_id)
                    .fetch_optional(self.read_pool())
                    .await?;
                Ok(row.map($crate::store::Challenge::from))
            }

            async fn record_failed_attempt(&self, challenge_id: &str) -> $crate::error::Result<u32> {
                let n: Option<i64> = sqlx::query_scalar(challenge::FAILED_ATTEMPT_SQL)
                    .bind(challenge_id)
                    .fetch_optional(self.write_pool())
                    .await?;
                Ok(n.map_or(0, to_u32))
            }

            async fn delete_challenge(&self, challenge_id: &str) -> $crate::error::Result<()> {
                sqlx::query(challenge::DELETE_SQL)
                    .bind(challenge_id)
                    .execute(self.write_pool())
                    .await?;
                Ok(())
            }

            async fn create_user(
                &self,
                challenge_id: &str,
                user: &$crate::store::NewUser,
            ) -> $crate::error::Result<()> {
                let mut tx = self.begin_write().await?;
                consume_challenge(&mut tx, challenge_id).await?;
                // A concurrent registration of the same identifier makes this wait for its
                // outcome, then fail on the unique constraint.
                let inserted = sqlx::query(
                    "INSERT INTO users (user_id, identifier_hash, display_name, verified, \
                     created_at) VALUES ($1, $2, $3, FALSE, $4)",
                )
                .bind(&user.user_id)
                .bind(&user.identifier_hash)
                .bind(&user.display_name)
                .bind(user.created_at)
                .execute(&mut *tx)
                .await;
                match inserted {
                    Err(e) if is_unique_violation(&e) => {
                        return Err($crate::error::Error::ConcurrentKeyChange)
                    }
                    other => {
                        other?;
                    }
                }
                insert_keys(&mut tx, &user.user_id, &user.keys).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn add_installation(
                &self,
                challenge_id: &str,
                inst: &$crate::store::NewInstallation,
            ) -> $crate::error::Result<u64> {
                retrying(|| self.add_installation_once(challenge_id, inst)).await
            }

            async fn user_by_identifier_hash(
                &self,
                hash: &[u8],
            ) -> $crate::error::Result<Option<String>> {
                Ok(
                    sqlx::query_scalar("SELECT user_id FROM users WHERE identifier_hash = $1")
                        .bind(hash)
                        .fetch_optional(self.read_pool())
                        .await?,
                )
            }

            async fn get_user(
                &self,
                user_id: &str,
            ) -> $crate::error::Result<Option<$crate::store::UserRow>> {
                let row: Option<(String, String, bool, i64)> = sqlx::query_as(
                    "SELECT user_id, display_name, verified, created_at FROM users \
                     WHERE user_id = $1",
                )
                .bind(user_id)
                .fetch_optional(self.read_pool())
                .await?;
                Ok(row.map(|(user_id, display_name, verified, created_at)| {
                    $crate::store::UserRow {
                        user_id,
                        display_name,
                        verified,
                        created_at,
                    }
                }))
            }

            async fn store_message(
                &self,
                msg: &$crate::store::NewMessage,
            ) -> $crate::error::Result<$crate::store::SendOutcome> {
                self.send(msg, None).await
            }

            async fn store_message_and_remember(
                &self,
                msg: &$crate::store::NewMessage,
                seen: &$crate::store::SeenSignature,
            ) -> $crate::error::Result<$crate::store::SendOutcome> {
                self.send(msg, Some(seen)).await
            }

            async fn ack(
                &self,
                user_id: &str,
                delivery_ids: &[u64],
                keep_acked_at: Option<i64>,
            ) -> $crate::error::Result<u64> {
                let ids = $crate::store::delivery_ids_in(delivery_ids);
                if ids.is_empty() {
                    return Ok(0);
                }
                let acks = $crate::store::sql::Acks { user_id, ids, keep_acked_at, seen: None };
                self.acknowledge(acks).await
            }

            async fn ack_and_remember(
                &self,
                acks: $crate::store::AckRequest<'_>,
                seen: &$crate::store::SeenSignature,
            ) -> $crate::error::Result<u64> {
                let ids = $crate::store::delivery_ids_in(acks.delivery_ids);
                let seen = Some(seen);
                self.acknowledge($crate::store::sql::Acks {
                    user_id: acks.user_id,
                    ids,
                    keep_acked_at: acks.keep_acked_at,
                    seen,
                })
                    .await
            }

            async fn contacts_of(&self, user_id: &str) -> $crate::error::Result<Vec<String>> {
                let mut conn = self.read_pool().acquire().await?;
                contacts_in(&mut conn, user_id).await
            }

            async fn operator_key(&self, name: &str) -> $crate::error::Result<Option<Vec<u8>>> {
                Ok(
                    sqlx::query_scalar("SELECT sign_key FROM operators WHERE name = $1")
                        .bind(name)
                        .fetch_optional(self.read_pool())
                        .await?,
                )
            }

            async fn put_operator(
                &self,
                name: &str,
                sign_key: &[u8],
                audit: &$crate::store::AuditDraft,
            ) -> $crate::error::Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO operators (name, sign_key, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET sign_key = excluded.sign_key",
                )
                .bind(name)
                .bind(sign_key)
                .bind(audit.timestamp)
                .execute(&mut *tx)
                .await?;
                append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn revoke_keys(
                &self,
                revocation: $crate::store::Revocation<'_>,
            ) -> $crate::error::Result<u64> {
                retrying(|| self.revoke_keys_once(revocation)).await
            }

            async fn set_verified(
                &self,
                user_id: &str,
                audit: &$crate::store::AuditDraft,
            ) -> $crate::error::Result<bool> {
                let mut tx = self.begin_write().await?;
                let n = sqlx::query("UPDATE users SET verified = TRUE WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Ok(false);
                }
                append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn append_audit(
                &self,
                audit: &$crate::store::AuditDraft,
            ) -> $crate::error::Result<cachet_proto::v1::AuditEntry> {
                let mut tx = self.begin_write().await?;
                let entry = append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(entry)
            }

            async fn audit_entries(
                &self,
                after: u64,
                limit: u32,
            ) -> $crate::error::Result<Vec<cachet_proto::v1::AuditEntry>> {
                let rows: Vec<audit::AuditRow> = sqlx::query_as(audit::ENTRIES_AFTER_SQL)
                    .bind(to_i64(after))
                    .bind(i64::from(limit))
                    .fetch_all(self.read_pool())
                    .await?;
                Ok(rows.into_iter().map(audit::entry_from_row).collect())
            }

            async fn mailbox_history(
                &self,
                user_id: &str,
                after: u64,
                limit: u32,
            ) -> $crate::error::Result<$crate::store::EnvelopePage> {
                let rows: Vec<(i64, Vec<u8>, Option<i64>)> = sqlx::query_as(
                    "SELECT delivery_id, envelope, acked_at FROM mailbox \
                     WHERE recipient_id = $1 AND delivery_id > $2 ORDER BY delivery_id LIMIT $3",
                )
                .bind(user_id)
                .bind(to_i64(after))
                .bind(i64::from(limit) + 1)
                .fetch_all(self.read_pool())
                .await?;
                Ok(page(rows, limit))
            }

            async fn create_attachment(
                &self,
                row: &$crate::store::AttachmentRow,
                quota: u64,
            ) -> $crate::error::Result<()> {
                let mut tx = self.begin_write().await?;
                // Quota checks of one owner are serialised on the owner's row. An unknown
                // owner has no row; the insert below then fails on the foreign key.
                <$store>::lock_users(&mut tx, std::slice::from_ref(&row.owner_id)).await?;
                let used: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(sealed_size), 0) AS BIGINT) FROM attachments \
                     WHERE owner_id = $1",
                )
                .bind(&row.owner_id)
                .fetch_one(&mut *tx)
                .await?;
                if to_u64(used).saturating_add(row.sealed_size) > quota {
                    return Err($crate::error::Error::QuotaExceeded(quota));
                }
                sqlx::query(
                    "INSERT INTO attachments (attachment_id, owner_id, sealed_size, chunk_size, \
                     complete, sha256, created_at) VALUES ($1, $2, $3, $4, FALSE, $5, $6)",
                )
                .bind(&row.attachment_id)
                .bind(&row.owner_id)
                .bind(to_i64(row.sealed_size))
                .bind(i64::from(row.chunk_size))
                .bind(&row.sha256)
                .bind(row.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_attachment(
                &self,
                attachment_id: &str,
            ) -> $crate::error::Result<Option<$crate::store::AttachmentRow>> {
                let mut tx = self.begin_read().await?;
                let row: Option<(String, String, i64, i64, bool, Vec<u8>, i64)> = sqlx::query_as(
                    "SELECT attachment_id, owner_id, sealed_size, chunk_size, complete, sha256, \
                     created_at FROM attachments WHERE attachment_id = $1",
                )
                .bind(attachment_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((
                    attachment_id,
                    owner_id,
                    sealed_size,
                    chunk_size,
                    complete,
                    sha256,
                    created_at,
                )) = row
                else {
                    return Ok(None);
                };
                let chunks: Vec<i64> = sqlx::query_scalar(
                    "SELECT chunk_index FROM attachment_chunks WHERE attachment_id = $1 \
                     ORDER BY chunk_index",
                )
                .bind(&attachment_id)
                .fetch_all(&mut *tx)
                .await?;
                let readers: Vec<String> = sqlx::query_scalar(
                    "SELECT reader_id FROM attachment_readers WHERE attachment_id = $1 \
                     ORDER BY reader_id",
                )
                .bind(&attachment_id)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some($crate::store::AttachmentRow {
                    attachment_id,
                    owner_id,
                    sealed_size: to_u64(sealed_size),
                    chunk_size: to_u32(chunk_size),
                    complete,
                    sha256,
                    created_at,
                    received_chunks: chunks.into_iter().map(to_u32).collect(),
                    readers,
                }))
            }

            async fn record_chunk(
                &self,
                attachment_id: &str,
                index: u32,
                size: u64,
            ) -> $crate::error::Result<()> {
                sqlx::query(
                    "INSERT INTO attachment_chunks (attachment_id, chunk_index, size) \
                     VALUES ($1, $2, $3) ON CONFLICT (attachment_id, chunk_index) DO NOTHING",
                )
                .bind(attachment_id)
                .bind(i64::from(index))
                .bind(to_i64(size))
                .execute(self.write_pool())
                .await?;
                Ok(())
            }

            async fn complete_attachment(
                &self,
                attachment_id: &str,
                sha256: &[u8],
                readers: &[String],
            ) -> $crate::error::Result<()> {
                let mut tx = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE attachments SET complete = TRUE, sha256 = $2 WHERE attachment_id = $1",
                )
                .bind(attachment_id)
                .bind(sha256)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err($crate::error::Error::AttachmentNotFound);
                }
                for r in readers {
                    let res = sqlx::query(
                        "INSERT INTO attachment_readers (attachment_id, reader_id) \
                         VALUES ($1, $2) ON CONFLICT (attachment_id, reader_id) DO NOTHING",
                    )
                    .bind(attachment_id)
                    .bind(r)
                    .execute(&mut *tx)
                    .await;
                    match res {
                        Err(e) if is_foreign_key_violation(&e) => {
                            return Err($crate::error::Error::UnknownRecipient(r.clone()))
                        }
                        other => {
                            other?;
                        }
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn create_case(
                &self,
                case: &cachet_proto::v1::CaseRecord,
                keys: &[cachet_proto::v1::SealedCaseKey],
            ) -> $crate::error::Result<()> {
                let mut tx = self.begin_write().await?;
                let n = sqlx::query(
                    "INSERT INTO cases (case_id, created_by, sealed_fields, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (case_id) DO NOTHING",
                )
                .bind(&case.case_id)
                .bind(&case.created_by)
                .bind(&case.sealed_fields)
                .bind(case.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err($crate::error::Error::CaseExists);
                }
                insert_participants_and_keys(
                    &mut tx,
                    &case.case_id,
                    &case.created_by,
                    case.created_at,
                    keys,
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_case(
                &self,
                case_id: &str,
            ) -> $crate::error::Result<Option<cachet_proto::v1::CaseRecord>> {
                let mut tx = self.begin_read().await?;
                let row = sqlx::query(
                    "SELECT case_id, created_by, sealed_fields, created_at FROM cases \
                     WHERE case_id = $1",
                )
                .bind(case_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let mut case = case_from_row(&row)?;
                case.participants = participants_in(&mut tx, case_id).await?;
                tx.commit().await?;
                Ok(Some(case))
            }

            async fn cases_of(
                &self,
                user_id: &str,
            ) -> $crate::error::Result<Vec<cachet_proto::v1::CaseRecord>> {
                let mut tx = self.begin_read().await?;
                let rows = sqlx::query(
                    "SELECT c.case_id, c.created_by, c.sealed_fields, c.created_at FROM cases c \
                     JOIN case_participants p ON p.case_id = c.case_id WHERE p.user_id = $1 \
                     ORDER BY c.created_at, c.case_id",
                )
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
                let mut cases = Vec::with_capacity(rows.len());
                for row in &rows {
                    let mut case = case_from_row(row)?;
                    case.participants = participants_in(&mut tx, &case.case_id).await?;
                    cases.push(case);
                }
                tx.commit().await?;
                Ok(cases)
            }

            async fn case_keys(
                &self,
                case_id: &str,
                participant_id: &str,
            ) -> $crate::error::Result<Vec<cachet_proto::v1::SealedCaseKey>> {
                let rows: Vec<(String, i64, String, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>)> =
                    sqlx::query_as(
                        "SELECT participant_id, key_epoch, sealed_by, sealer_box_key, \
                         recipient_box_key, nonce, ciphertext FROM case_keys \
                         WHERE case_id = $1 AND participant_id = $2 ORDER BY key_epoch",
                    )
                    .bind(case_id)
                    .bind(participant_id)
                    .fetch_all(self.read_pool())
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(
                        |(participant_id, epoch, sealed_by, sealer, recipient, nonce, ciphertext)| {
                            cachet_proto::v1::SealedCaseKey {
                                participant_id,
                                key_epoch: to_u32(epoch),
                                sealed_by,
                                sealer_box_key: sealer,
                                recipient_box_key: recipient,
                                nonce,
                                ciphertext,
                            }
                        },
                    )
                    .collect())
            }

            async fn add_case_participants(
                &self,
                added: $crate::store::NewParticipants<'_>,
            ) -> $crate::error::Result<()> {
                let mut tx = self.begin_write().await?;
                let exists: Option<String> =
                    sqlx::query_scalar("SELECT case_id FROM cases WHERE case_id = $1")
                        .bind(added.case_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if exists.is_none() {
                    return Err($crate::error::Error::CaseNotFound);
                }
                insert_participants_and_keys(
                    &mut tx,
                    added.case_id,
                    added.added_by,
                    added.added_at,
                    added.keys,
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn case_history(
                &self,
                case_id: &str,
                after: u64,
                limit: u32,
            ) -> $crate::error::Result<$crate::store::EnvelopePage> {
                let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT seq, envelope FROM case_messages WHERE case_id = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                )
                .bind(case_id)
                .bind(to_i64(after))
                .bind(i64::from(limit) + 1)
                .fetch_all(self.read_pool())
                .await?;
                Ok(page(
                    rows.into_iter().map(|(s, e)| (s, e, None)).collect(),
                    limit,
                ))
            }

            async fn purge_expired(
                &self,
                now: i64,
                acked_before: i64,
            ) -> $crate::error::Result<$crate::store::Purged> {
                retrying(|| self.purge_expired_once(now, acked_before)).await
            }

            async fn vault_config(&self) -> $crate::error::Result<Option<Vec<u8>>> {
                // From the writer: it must see the last compare-and-swap.
                Ok(
                    sqlx::query_scalar(vault_sql::CONFIG_SQL)
                        .fetch_optional(self.write_pool())
                        .await?,
                )
            }

            async fn put_vault_config(
                &self,
                expected: Option<&[u8]>,
                config: &[u8],
            ) -> $crate::error::Result<bool> {
                let changed = match expected {
                    None => sqlx::query(vault_sql::INSERT_CONFIG_SQL)
                    .bind(config)
                    .execute(self.write_pool())
                    .await?
                    .rows_affected(),
                    Some(old) => sqlx::query(vault_sql::SWAP_CONFIG_SQL)
                    .bind(config)
                    .bind(old)
                    .execute(self.write_pool())
                    .await?
                    .rows_affected(),
                };
                Ok(changed == 1)
            }

            async fn user_count(&self) -> $crate::error::Result<u64> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                    .fetch_one(self.read_pool())
                    .await?;
                Ok(to_u64(n))
            }

            async fn append_trust_block(
                &self,
                block: $crate::store::NewTrustBlock<'_>,
            ) -> $crate::error::Result<u64> {
                retrying(|| self.append_trust_block_once(block)).await
            }

            async fn trust_blocks(
                &self,
                from: u64,
                limit: u32,
            ) -> $crate::error::Result<Vec<(u64, Vec<u8>)>> {
                let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT idx, block FROM trust_blocks WHERE idx >= $1 ORDER BY idx LIMIT $2",
                )
                .bind(to_i64(from))
                .bind(i64::from(limit))
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.into_iter().map(|(i, b)| (to_u64(i), b)).collect())
            }

            async fn trust_blocks_of(
                &self,
                user_id: &str,
            ) -> $crate::error::Result<Vec<(u64, Vec<u8>)>> {
                let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT idx, block FROM trust_blocks WHERE user_id = $1 ORDER BY idx",
                )
                .bind(user_id)
                .fetch_all(self.read_pool())
                .await?;
                Ok(rows.into_iter().map(|(i, b)| (to_u64(i), b)).collect())
            }

            async fn trust_log_seed(&self, candidate: &[u8]) -> $crate::error::Result<Vec<u8>> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO trust_log_key (id, seed) VALUES (1, $1) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(candidate)
                .execute(&mut *tx)
                .await?;
                let seed: Vec<u8> =
                    sqlx::query_scalar("SELECT seed FROM trust_log_key WHERE id = 1")
                        .fetch_one(&mut *tx)
                        .await?;
                tx.commit().await?;
                Ok(seed)
            }

            async fn ping(&self) -> $crate::error::Result<()> {
                sqlx::query("SELECT 1").execute(self.read_pool()).await?;
                Ok(())
            }

            async fn take_discovery_budget(
                &self,
                user_id: &str,
                charge: $crate::store::DiscoveryCharge,
            ) -> $crate::error::Result<bool> {
                if charge.hashes == 0 {
                    return Ok(true);
                }
                if charge.hashes > charge.limit {
                    return Ok(false);
                }
                // One statement: atomic on SQLite's single writer, and the row lock of
                // ON CONFLICT serialises PostgreSQL nodes counting at once.
                let counted = sqlx::query($crate::store::TAKE_DISCOVERY_BUDGET_SQL)
                    .bind(user_id)
                    .bind(charge.window_start)
                    .bind(charge.window_end)
                    .bind(to_i64(charge.hashes))
                    .bind(to_i64(charge.limit))
                    .execute(self.write_pool())
                    .await?
                    .rows_affected();
                Ok(counted == 1)
            }

            async fn recovery_account(
                &self,
                user_id: &str,
            ) -> $crate::error::Result<Option<$crate::store::RecoveryRow>> {
                let row: Option<cachet_server_common::recovery::AccountTuple> =
                    sqlx::query_as(RECOVERY_ACCOUNTS.select)
                        .bind(user_id)
                        .fetch_optional(self.read_pool())
                        .await?;
                Ok(row.map($crate::store::RecoveryRow::from))
            }

            async fn recovery_insert(
                &self,
                r: &$crate::store::RecoveryRow,
            ) -> $crate::error::Result<bool> {
                let done =
                    cachet_server_common::bind_new_account!(sqlx::query(RECOVERY_ACCOUNTS.insert), r)
                        .execute(self.write_pool())
                        .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn recovery_replace(
                &self,
                r: &$crate::store::RecoveryRow,
                expected_version: i64,
            ) -> $crate::error::Result<bool> {
                let done = cachet_server_common::bind_account_update!(
                    sqlx::query(RECOVERY_ACCOUNTS.replace),
                    r,
                    expected_version
                )
                .execute(self.write_pool())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn put_backup(
                &self,
                user_id: &str,
                backup: &[u8],
                now: i64,
            ) -> $crate::error::Result<()> {
                sqlx::query(
                    "INSERT INTO recovery_backups (user_id, backup, updated_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE \
                     SET backup = excluded.backup, updated_at = excluded.updated_at",
                )
                .bind(user_id)
                .bind(backup)
                .bind(now)
                .execute(self.write_pool())
                .await?;
                Ok(())
            }

            async fn get_backup(&self, user_id: &str) -> $crate::error::Result<Option<Vec<u8>>> {
                Ok(
                    sqlx::query_scalar("SELECT backup FROM recovery_backups WHERE user_id = $1")
                        .bind(user_id)
                        .fetch_optional(self.read_pool())
                        .await?,
                )
            }

            $($hot)*
        }
    };
}
pub(super) use sql_store;
