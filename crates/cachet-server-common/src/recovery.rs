//! Statements of a recovery-account table: the data server keeps its accounts in
//! `recovery_accounts`, the key server in `accounts`, with the same columns.

/// The columns of an account, in `cachet_keyserver::RecoveryRow` order.
macro_rules! account_columns {
    () => {
        "user_id, identifier_hash, share, data_server_share, key_server_share, auth_public, \
         envelope, updated_at, failures, last_failure_at, pending_delta, version"
    };
}

/// An account row as read by [`AccountTable::select`], in column order.
pub type AccountTuple = (
    String,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    i64,
    i64,
    i64,
    Vec<u8>,
    i64,
);

/// The statements of one account table.
#[derive(Debug, Clone, Copy)]
pub struct AccountTable {
    /// The account of user `$1`, as an [`AccountTuple`].
    pub select: &'static str,
    /// Inserts a new account (all columns, in order); changes nothing when the user id or
    /// identifier hash is taken. Bind with [`crate::bind_new_account!`].
    pub insert: &'static str,
    /// Replaces an account's state if its version is still the expected one. Bind with
    /// [`crate::bind_account_update!`].
    pub replace: &'static str,
}

macro_rules! account_table {
    ($(#[$doc:meta])* $name:ident, $table:literal) => {
        $(#[$doc])*
        pub const $name: AccountTable = AccountTable {
            select: concat!(
                "SELECT ",
                account_columns!(),
                " FROM ",
                $table,
                " WHERE user_id = $1"
            ),
            insert: concat!(
                "INSERT INTO ",
                $table,
                " (",
                account_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT DO NOTHING"
            ),
            replace: concat!(
                "UPDATE ",
                $table,
                " SET share = $1, data_server_share = $2, key_server_share = $3, \
                 auth_public = $4, envelope = $5, updated_at = $6, failures = $7, \
                 last_failure_at = $8, pending_delta = $9, version = $10 \
                 WHERE user_id = $11 AND version = $12"
            ),
        };
    };
}

account_table!(
    /// The data server's `recovery_accounts`.
    DATA_SERVER_ACCOUNTS,
    "recovery_accounts"
);
account_table!(
    /// The key server's `accounts`.
    KEY_SERVER_ACCOUNTS,
    "accounts"
);

/// Binds the ten state columns of an account (`share` to `version`), in column order.
#[macro_export]
macro_rules! bind_account_state {
    ($query:expr, $r:expr) => {
        $query
            .bind(&$r.share)
            .bind(&$r.data_server_share)
            .bind(&$r.key_server_share)
            .bind(&$r.auth_public)
            .bind(&$r.envelope)
            .bind($r.updated_at)
            .bind(i64::from($r.failures))
            .bind($r.last_failure_at)
            .bind(&$r.pending_delta)
            .bind($r.version)
    };
}

/// Binds a whole account to [`AccountTable::insert`].
#[macro_export]
macro_rules! bind_new_account {
    ($query:expr, $r:expr) => {
        $crate::bind_account_state!($query.bind(&$r.user_id).bind(&$r.identifier_hash), $r)
    };
}

/// Binds an account and the version it must still have to [`AccountTable::replace`].
#[macro_export]
macro_rules! bind_account_update {
    ($query:expr, $r:expr, $expected_version:expr) => {
        $crate::bind_account_state!($query, $r)
            .bind(&$r.user_id)
            .bind($expected_version)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_table_names_itself_and_every_column() {
        for (table, name) in [
            (DATA_SERVER_ACCOUNTS, "recovery_accounts"),
            (KEY_SERVER_ACCOUNTS, "accounts"),
        ] {
            assert!(table
                .select
                .ends_with(&format!("FROM {name} WHERE user_id = $1")));
            assert!(table
                .insert
                .starts_with(&format!("INSERT INTO {name} (user_id,")));
            assert!(table
                .replace
                .starts_with(&format!("UPDATE {name} SET share = $1")));
            assert_eq!(table.insert.matches('$').count(), 12);
            assert_eq!(table.replace.matches('$').count(), 12);
        }
    }
}
