//! The group-commit writer of [`super::SqliteStore`]: one OS thread owning one rusqlite
//! connection, which runs the hot writes (sends, acks, replay-cache entries) in batches.
//!
//! Why a thread of its own: SQLite has a single writer, so the batch is the serial part of
//! every send. Through sqlx each statement crossed to its worker thread and back (two
//! thread wake-ups per statement); here a whole batch runs on one thread with prepared,
//! cached statements and no hand-offs, and only the caller's answer crosses back
//! (`docs/benchmarks.md` has the before and after).
//!
//! Each batch is one `BEGIN IMMEDIATE … COMMIT`, so one fsync (`synchronous=FULL`) covers
//! every write in it; each caller gets its answer only after that commit. A write that
//! may fail halfway runs in a savepoint of its own, rolled back alone on failure. The
//! rarer writes still go through sqlx, with `BEGIN IMMEDIATE` too, and SQLite's lock
//! serialises the two paths.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::{NewMessage, SeenSignature, SendOutcome};
use crate::error::{Error, Result};

/// Most writes committed together; bounds the latency a batch adds to its first write.
const MAX_GROUP: usize = 256;

/// Whether a write of a group commit runs in a savepoint of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Savepoint {
    /// A failure rolls back exactly this write's statements.
    Own,
    /// For writes that leave nothing a failure would need undone (each statement is
    /// atomic): a replay-cache entry, an ack. They skip the savepoint's two statements.
    None,
}

/// Called once the batch holding a write has committed (`Ok`) or failed (the reason).
type Completion = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;
/// One write: runs inside the batch's transaction; says whether it succeeded (else its
/// savepoint is rolled back).
type Work = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

enum Command {
    Write {
        work: Work,
        savepoint: Savepoint,
    },
    /// Finish the queued writes, close the connection, then answer.
    Stop(oneshot::Sender<()>),
}

/// Handle to the writer thread; cloning shares the thread.
#[derive(Clone)]
pub(super) struct GroupCommit {
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommit")
    }
}

fn db(e: rusqlite::Error) -> Error {
    Error::Internal(format!("sqlite writer: {e}"))
}

impl GroupCommit {
    /// Opens a writer connection to the (already migrated) database at `path` and
    /// starts its thread.
    pub(super) fn start(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        // The writer never checkpoints itself (see `Checkpointer`).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = 0;",
        )
        .map_err(db)?;
        conn.set_prepared_statement_cache_capacity(64);
        let checkpointer = Checkpointer::start(path)?;
        let (commands, queue) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("cachet-sqlite-writer".into())
            .spawn(move || writer_thread(conn, queue, checkpointer))?;
        Ok(GroupCommit { commands })
    }

    /// Runs `write` in the next group transaction and returns its result once
    /// committed. With [`Savepoint::Own`] a failure rolls back exactly its writes;
    /// [`Savepoint::None`] is only for writes whose partial effect on failure is harmless.
    pub(super) async fn run<T, F>(&self, savepoint: Savepoint, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T>>();
        let work: Work = Box::new(move |conn| {
            let outcome = write(conn);
            let ok = outcome.is_ok();
            let done: Completion = Box::new(move |committed| {
                let _ = reply.send(match committed {
                    Ok(()) => outcome,
                    Err(why) => Err(Error::Internal(format!("group commit: {why}"))),
                });
            });
            (ok, done)
        });
        let stopped = || Error::Internal("the database writer has stopped".into());
        self.commands
            .send(Command::Write { work, savepoint })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Commits what is queued, stops the thread and closes its connection.
    pub(super) async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.commands.send(Command::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
    }
}

fn writer_thread(
    conn: Connection,
    mut queue: mpsc::UnboundedReceiver<Command>,
    checkpointer: Checkpointer,
) {
    let Checkpointer { nudge, thread } = checkpointer;
    let mut batches = 0u64;
    let mut catch_up_due = false;
    let mut batch: Vec<(Work, Savepoint)> = Vec::with_capacity(MAX_GROUP);
    let mut stop = None;
    while stop.is_none() {
        // Wait for one write, then take whatever else queued meanwhile.
        let mut next = queue.blocking_recv();
        while let Some(command) = next {
            match command {
                Command::Write { work, savepoint } => batch.push((work, savepoint)),
                Command::Stop(done) => {
                    stop = Some(done);
                    break;
                }
            }
            next = if batch.len() < MAX_GROUP {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        if batch.is_empty() && stop.is_none() {
            break; // every handle is gone
        }
        commit_batch(&conn, &mut batch);
        batches += 1;
        if batches.is_multiple_of(CHECKPOINT_EVERY) {
            let _ = nudge.try_send(());
        }
        catch_up_due |= batches.is_multiple_of(CHECKPOINT_EVERY * CATCH_UP_EVERY);
        if catch_up_due {
            // Under a steady stream the checkpointer never quite reaches the last commit,
            // and the log restarts from its beginning only once a checkpoint has: copy
            // the short tail here, between two batches. Busy (the checkpointer is at
            // work): try again after the next batch.
            catch_up_due = checkpoint_was_busy(&conn);
        }
    }
    drop(conn);
    // Its last checkpoint done, the checkpointer closes its connection too.
    drop(nudge);
    let _ = thread.join();
    if let Some(done) = stop {
        let _ = done.send(());
    }
}

/// Batches between two nudges of the checkpointer.
const CHECKPOINT_EVERY: u64 = 16;
/// Nudges between two catch-up checkpoints on the writer itself.
const CATCH_UP_EVERY: u64 = 16;

/// A `PASSIVE` checkpoint: copies what it can of the log into the database file without
/// waiting for anyone. True only if another checkpoint was running, so that this one is
/// worth trying again soon; a failure is logged and left to the next round.
fn checkpoint_was_busy(conn: &Connection) -> bool {
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0)) {
        Ok(busy) => busy != 0,
        Err(e) => {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying later");
            false
        }
    }
}

/// Longest time between two checkpoints while there are writes.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

/// Copies the WAL back into the database file on a thread and connection of its own.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses the threshold, so
/// the writer (and every send queued behind it) would stall for the copy and its fsync;
/// that stall was the 99th percentile at half load (`docs/benchmarks.md`). A `PASSIVE`
/// checkpoint from another connection never blocks the writer, and the WAL restarts from
/// its beginning once a checkpoint has caught up, so it stays bounded.
struct Checkpointer {
    nudge: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        let (nudge, nudges) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("cachet-sqlite-checkpoint".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                loop {
                    match nudges.recv_timeout(CHECKPOINT_IDLE) {
                        Ok(()) | Err(RecvTimeoutError::Timeout) => {
                            checkpoint_was_busy(&conn);
                        }
                        Err(RecvTimeoutError::Disconnected) => {
                            checkpoint_was_busy(&conn);
                            return;
                        }
                    }
                }
            })?;
        Ok(Checkpointer { nudge, thread })
    }
}

/// One transaction for the whole batch, one savepoint per write that needs it; every
/// completion learns whether the commit happened.
fn commit_batch(conn: &Connection, batch: &mut Vec<(Work, Savepoint)>) {
    if batch.is_empty() {
        return;
    }
    let mut done: Vec<Completion> = Vec::with_capacity(batch.len());
    let step = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    let outcome = (|| -> rusqlite::Result<()> {
        step("BEGIN IMMEDIATE")?;
        for (work, savepoint) in batch.drain(..) {
            if savepoint == Savepoint::None {
                let (_, completion) = work(conn);
                done.push(completion);
                continue;
            }
            step("SAVEPOINT write")?;
            let (ok, completion) = work(conn);
            done.push(completion);
            if !ok {
                step("ROLLBACK TO write")?;
            }
            step("RELEASE write")?;
        }
        step("COMMIT")?;
        Ok(())
    })();
    if outcome.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    // Writes not reached (an error before them) are dropped with the batch: their
    // callers get "writer stopped"-style errors, never a false success.
    batch.clear();
    let committed = outcome.map_err(|e| e.to_string());
    for completion in done {
        completion(committed.clone());
    }
}

// ---- The writes themselves ----

/// Records a signature in the replay cache; false if it was there.
pub(super) fn remember(conn: &Connection, seen: &SeenSignature) -> Result<bool> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO seen_signatures (signature_hash, expires_at) VALUES (?1, ?2) \
             ON CONFLICT (signature_hash) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![seen.hash, seen.expires_at]))
        .map_err(db)?;
    Ok(inserted == 1)
}

/// Deletes (or marks acked) the caller's envelopes among `ids`: one prepared statement
/// per id, so every ack size shares the same cached statement.
pub(super) fn ack(
    conn: &Connection,
    user_id: &str,
    ids: &[i64],
    keep_acked_at: Option<i64>,
) -> Result<u64> {
    let mut total = 0u64;
    match keep_acked_at {
        Some(at) => {
            let mut s = conn
                .prepare_cached(
                    "UPDATE mailbox SET acked_at = ?2 WHERE recipient_id = ?1 \
                     AND acked_at IS NULL AND delivery_id = ?3",
                )
                .map_err(db)?;
            for id in ids {
                total += s.execute(params![user_id, at, id]).map_err(db)? as u64;
            }
        }
        None => {
            let mut s = conn
                .prepare_cached("DELETE FROM mailbox WHERE recipient_id = ?1 AND delivery_id = ?2")
                .map_err(db)?;
            for id in ids {
                total += s.execute(params![user_id, id]).map_err(db)? as u64;
            }
        }
    }
    Ok(total)
}

/// Puts one envelope in one mailbox under the next delivery id of that mailbox.
fn enqueue(conn: &Connection, recipient_id: &str, envelope: &[u8], now: i64) -> Result<u64> {
    let id: Option<i64> = conn
        .prepare_cached(
            "UPDATE users SET last_delivery_id = last_delivery_id + 1 WHERE user_id = ?1 \
             RETURNING last_delivery_id",
        )
        .and_then(|mut s| s.query_row([recipient_id], |r| r.get(0)).optional())
        .map_err(db)?;
    let id = id.ok_or_else(|| Error::UnknownRecipient(recipient_id.to_owned()))?;
    conn.prepare_cached(
        "INSERT INTO mailbox (recipient_id, delivery_id, envelope, created_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![recipient_id, id, envelope, now]))
    .map_err(db)?;
    Ok(u64::try_from(id).unwrap_or(0))
}

/// The writes of a send: the message id (deduplicated by digest), one mailbox copy per
/// recipient, the case history entry, the contact graph.
pub(super) fn store_message(conn: &Connection, msg: &NewMessage) -> Result<SendOutcome> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO messages (sender_id, message_id, digest, created_at) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (sender_id, message_id) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                msg.sender_id,
                msg.message_id,
                msg.digest,
                msg.created_at
            ])
        })
        .map_err(db)?;
    if inserted == 0 {
        let digest: Vec<u8> = conn
            .prepare_cached("SELECT digest FROM messages WHERE sender_id = ?1 AND message_id = ?2")
            .and_then(|mut s| s.query_row([&msg.sender_id, &msg.message_id], |r| r.get(0)))
            .map_err(db)?;
        return if digest == msg.digest {
            Ok(SendOutcome::Duplicate)
        } else {
            Err(Error::MessageIdReused)
        };
    }
    for d in &msg.deliveries {
        enqueue(conn, &d.recipient_id, &d.envelope, msg.created_at)?;
    }
    if let Some((case_id, envelope)) = &msg.case_entry {
        let seq: Option<i64> = conn
            .prepare_cached(
                "UPDATE cases SET last_seq = last_seq + 1 WHERE case_id = ?1 RETURNING last_seq",
            )
            .and_then(|mut s| s.query_row([case_id], |r| r.get(0)).optional())
            .map_err(db)?;
        let seq = seq.ok_or(Error::CaseNotFound)?;
        conn.prepare_cached(
            "INSERT INTO case_messages (case_id, seq, envelope, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![case_id, seq, envelope, msg.created_at]))
        .map_err(db)?;
    }
    let mut both_ways = conn
        .prepare_cached(
            "INSERT INTO contacts (user_id, contact_id) VALUES (?1, ?2), (?2, ?1) \
             ON CONFLICT (user_id, contact_id) DO NOTHING",
        )
        .map_err(db)?;
    for c in msg.contacts.iter().filter(|c| **c != msg.sender_id) {
        both_ways.execute([&msg.sender_id, c]).map_err(db)?;
    }
    Ok(SendOutcome::Stored)
}

// ---- Hot reads ----

/// A few read-only rusqlite connections, used inline on the calling task for the reads
/// every request makes (the caller's key, recipients, the mailbox).
///
/// Why inline: these are indexed point reads of hot pages, a few microseconds each, while
/// handing a read to a worker thread and back costs two thread wake-ups, more than the
/// read itself (`docs/benchmarks.md`). The rarer reads keep sqlx's reader pool.
pub(super) struct Readers {
    /// `None` once closed.
    conns: Vec<std::sync::Mutex<Option<Connection>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Readers({})", self.conns.len())
    }
}

impl Readers {
    /// Opens `n` read-only connections to the database at `path`.
    pub(super) fn open(path: &Path, n: usize) -> Result<Self> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
            | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let conns = (0..n.max(1))
            .map(|_| {
                let conn = Connection::open_with_flags(path, flags).map_err(db)?;
                conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
                conn.set_prepared_statement_cache_capacity(32);
                Ok(std::sync::Mutex::new(Some(conn)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Readers {
            conns,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Runs `read` on a free connection (or waits for one).
    pub(super) fn with<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let run = |conn: &Option<Connection>| match conn {
            Some(conn) => read(conn).map_err(db),
            None => Err(Error::Internal("the database is closed".into())),
        };
        for conn in &self.conns {
            if let Ok(conn) = conn.try_lock() {
                return run(&conn);
            }
        }
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.conns.len();
        let conn = self.conns[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        run(&conn)
    }

    /// Closes every connection; later reads fail.
    pub(super) fn close(&self) {
        for conn in &self.conns {
            let mut conn = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            conn.take();
        }
    }
}
