//! `cachet bench`: a load generator against a data server started in this process.
//!
//! N simulated users, each with real keys, send text envelopes to each other over real
//! HTTP (signed requests, `crypto_box` with keys precomputed per contact) and long-poll
//! their mailboxes. Two phases: as fast as the users can go (peak), then paced at half of
//! that peak. Each reports messages per second and send-to-receive latency percentiles.
//! In the same run, two ceilings for reference: the raw insert rate of the same database
//! kind (multi-row transactions, as a server batching its commits would do) and a trivial
//! axum endpoint on the same HTTP stack.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachet_crypto::boxes::PrecomputedBox;
use cachet_crypto::{BoxKeyPair, SignKeyPair};
use cachet_proto::auth::{sign_request, Caller, RequestTarget, SIG_HEADER, UID_HEADER};
use cachet_proto::v1::{
    payload, Ack, ClientType, Envelope, EnvelopeList, KeyChange, Payload, RecipientCiphertext,
    RegisterFinish, RegisterFinishResponse, RegisterStart, RegisterStartResponse, Text,
};
use cachet_proto::Message;
use serde::Serialize;

use crate::error::CliError;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Simulated users (each sends and receives).
    pub users: usize,
    /// Length of each load phase.
    pub duration: Duration,
    /// PostgreSQL URL; `None`: SQLite in a temporary data directory.
    pub database_url: Option<String>,
    /// Data directory (temporary when `None`).
    pub data_dir: Option<PathBuf>,
    /// Rows per transaction of the database ceiling.
    pub batch: usize,
}

/// One load phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Offered rate (messages/s) for a paced phase; `None` for the peak phase.
    pub offered_per_second: Option<f64>,
    /// Messages sent and received within the phase.
    pub messages: u64,
    /// Received messages per second.
    pub messages_per_second: f64,
    /// Send-to-receive latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Requests that failed.
    pub errors: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// `sqlite` or `postgres`.
    pub database: String,
    /// Simulated users.
    pub users: usize,
    /// Seconds per phase.
    pub seconds: f64,
    /// CPUs this process may use.
    pub cpus: usize,
    /// Users sending as fast as they can.
    pub peak: PhaseReport,
    /// Paced at half of the peak rate.
    pub half_load: PhaseReport,
    /// Raw inserts per second into the same database kind, `batch` rows per transaction.
    pub db_ceiling_rows_per_second: f64,
    /// The same with one row per transaction.
    pub db_unbatched_rows_per_second: f64,
    /// Rows per transaction of the ceiling.
    pub db_ceiling_batch: usize,
    /// Requests per second a trivial axum endpoint answers over the same HTTP client.
    pub http_ceiling_requests_per_second: f64,
    /// Peak messages/s over the batched database ceiling.
    pub ratio_to_db_ceiling: f64,
    /// Resident memory of this process (server and generator), KiB, at the end.
    pub rss_kib: Option<u64>,
    /// Highest resident memory of this process, KiB.
    pub peak_rss_kib: Option<u64>,
}

fn fail(message: impl Into<String>) -> CliError {
    CliError::Demo(message.into())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A value of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`); Linux only.
fn proc_status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

struct User {
    user_id: String,
    sign: SignKeyPair,
    boxk: BoxKeyPair,
}

/// An HTTP client that signs as users.
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    async fn post(
        &self,
        who: Option<&User>,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, bytes::Bytes), CliError> {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", cachet_server::PROTOBUF);
        if let Some(user) = who {
            let caller = Caller {
                user_id: user.user_id.clone(),
                build_number: 1,
                client_type: ClientType::Cli,
            };
            let target = RequestTarget {
                method: "POST",
                path,
                body: &body,
            };
            let h = sign_request(&caller, &user.sign, &target, now_ms());
            req = req.header(UID_HEADER, h.uid).header(SIG_HEADER, h.sig);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| fail(format!("request to {path}: {e}")))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| fail(format!("response of {path}: {e}")))?;
        Ok((status, bytes))
    }
}

async fn register(http: &Http, codes: &Path, n: usize) -> Result<User, CliError> {
    let identifier = format!(
        "bench-{n}-{}@example.org",
        hex::encode(cachet_crypto::random_bytes::<4>())
    );
    let (status, body) = http
        .post(
            None,
            "/api/v1/register/start",
            RegisterStart {
                identifier: identifier.clone(),
            }
            .encode_to_vec(),
        )
        .await?;
    if status != 200 {
        return Err(fail(format!("register/start answered {status}")));
    }
    let started = RegisterStartResponse::decode(body.as_ref())
        .map_err(|e| fail(format!("register/start: {e}")))?;
    let code = crate::demo::dev_code(codes, &identifier)
        .ok_or_else(|| fail("no development code was written"))?;
    let boxk = BoxKeyPair::generate();
    let sign = SignKeyPair::generate();
    let change = KeyChange {
        user_id: started.challenge_id.clone(),
        key_version: 0,
        box_key: boxk.public.as_bytes().to_vec(),
        sign_key: sign.public().as_bytes().to_vec(),
        previous_sign_key: Vec::new(),
    };
    let self_signature =
        cachet_crypto::sign::sign_detached(&cachet_proto::key_change_bytes(&change), &sign)
            .to_vec();
    let finish = RegisterFinish {
        challenge_id: started.challenge_id,
        code,
        box_key: change.box_key,
        sign_key: change.sign_key,
        display_name: format!("User {n}"),
        self_signature,
        previous_key_signature: Vec::new(),
    };
    let (status, body) = http
        .post(None, "/api/v1/register/finish", finish.encode_to_vec())
        .await?;
    if status != 200 {
        return Err(fail(format!("register/finish answered {status}")));
    }
    let done = RegisterFinishResponse::decode(body.as_ref())
        .map_err(|e| fail(format!("register/finish: {e}")))?;
    Ok(User {
        user_id: done.user_id,
        sign,
        boxk,
    })
}

/// Everything the load tasks share.
struct World {
    http: Http,
    users: Vec<User>,
    /// `boxes[a][b]`: the precomputed key between users a and b (symmetric).
    boxes: Vec<Vec<Option<PrecomputedBox>>>,
    epoch: Instant,
}

impl World {
    fn index_of(&self, user_id: &str) -> Option<usize> {
        self.users.iter().position(|u| u.user_id == user_id)
    }

    /// A sealed text envelope from `from` to `to`, whose message id carries the send time.
    fn envelope(&self, from: usize, to: usize, seq: u64) -> Result<Envelope, CliError> {
        let sent_us = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        let message_id = format!("{sent_us:016x}{seq:016x}");
        let timestamp = now_ms();
        let payload = Payload {
            message_id: message_id.clone(),
            sender_id: self.users[from].user_id.clone(),
            timestamp,
            body: Some(payload::Body::Text(Text {
                body: "Bed 4: results normal, discharge tomorrow.".to_owned(),
            })),
            ..Default::default()
        };
        let key = self.boxes[from][to]
            .as_ref()
            .ok_or_else(|| fail("no precomputed key"))?;
        let (nonce, ciphertext) = key.seal(&payload.encode_to_vec());
        Ok(Envelope {
            version: 1,
            message_id,
            timestamp,
            recipients: vec![RecipientCiphertext {
                recipient_id: self.users[to].user_id.clone(),
                nonce: nonce.as_bytes().to_vec(),
                ciphertext,
                sender_box_key: self.users[from].boxk.public.as_bytes().to_vec(),
                recipient_box_key: self.users[to].boxk.public.as_bytes().to_vec(),
            }],
            ..Default::default()
        })
    }
}

/// Latencies and counts of a phase, filled by the receivers.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
}

struct Phase {
    /// Messages sent between these instants (relative to the epoch, µs) are counted.
    from_us: u64,
    until_us: u64,
    tally: Mutex<Tally>,
    sending: AtomicBool,
    receiving: AtomicBool,
}

impl Phase {
    fn error(&self) {
        if let Ok(mut t) = self.tally.lock() {
            t.errors += 1;
        }
    }
}

async fn sender(
    world: Arc<World>,
    phase: Arc<Phase>,
    me: usize,
    interval: Option<Duration>,
) -> u64 {
    let n = world.users.len();
    let mut seq = 0u64;
    // Paced users start at evenly spread offsets: N users ticking in step would arrive
    // as bursts of N sends, which no real population of clients does.
    let mut ticker = interval.map(|i| {
        let offset = i.mul_f64(me as f64 / n as f64);
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, i);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    // A cheap deterministic spread of recipients.
    let mut state = (me as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    while phase.sending.load(Ordering::Relaxed) {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
            if !phase.sending.load(Ordering::Relaxed) {
                break;
            }
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let to = (me + 1 + (state % (n as u64 - 1)) as usize) % n;
        seq += 1;
        let Ok(env) = world.envelope(me, to, seq) else {
            phase.error();
            continue;
        };
        match world
            .http
            .post(
                Some(&world.users[me]),
                "/api/v1/messages/send",
                env.encode_to_vec(),
            )
            .await
        {
            Ok((204, _)) => {}
            _ => phase.error(),
        }
    }
    seq
}

async fn receiver(world: Arc<World>, phase: Arc<Phase>, me: usize) {
    let mut ack = Vec::new();
    let user = &world.users[me];
    while phase.receiving.load(Ordering::Relaxed) || !ack.is_empty() {
        let body = Ack {
            delivery_ids: std::mem::take(&mut ack),
            wait_seconds: if phase.receiving.load(Ordering::Relaxed) {
                1
            } else {
                0
            },
            limit: 500,
        };
        let list = match world
            .http
            .post(Some(user), "/api/v1/messages/receive", body.encode_to_vec())
            .await
        {
            Ok((200, bytes)) => match EnvelopeList::decode(bytes.as_ref()) {
                Ok(list) => list,
                Err(_) => {
                    phase.error();
                    continue;
                }
            },
            _ => {
                phase.error();
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let now_us = u64::try_from(world.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut got = Vec::with_capacity(list.envelopes.len());
        for env in &list.envelopes {
            ack.push(env.delivery_id);
            // A real client opens every message; so does the generator.
            let opened = world.index_of(&env.sender_id).and_then(|from| {
                let rc = env.recipients.first()?;
                let nonce = cachet_crypto::Nonce::from_slice(&rc.nonce).ok()?;
                world.boxes[me][from]
                    .as_ref()?
                    .open(&rc.ciphertext, &nonce)
                    .ok()
            });
            if opened.is_none() {
                phase.error();
                continue;
            }
            let sent_us = env
                .message_id
                .get(..16)
                .and_then(|h| u64::from_str_radix(h, 16).ok());
            if let Some(sent) = sent_us {
                if sent >= phase.from_us && sent < phase.until_us {
                    got.push(now_us.saturating_sub(sent));
                }
            }
        }
        if let Ok(mut t) = phase.tally.lock() {
            t.latencies_us.extend(got);
        }
    }
}

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

async fn run_phase(
    world: &Arc<World>,
    duration: Duration,
    rate: Option<f64>,
) -> Result<PhaseReport, CliError> {
    let n = world.users.len();
    let start_us = u64::try_from(world.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
    let phase = Arc::new(Phase {
        from_us: start_us,
        until_us: start_us + u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
        tally: Mutex::new(Tally::default()),
        sending: AtomicBool::new(true),
        receiving: AtomicBool::new(true),
    });
    let interval = rate.map(|r| Duration::from_secs_f64(n as f64 / r.max(0.001)));
    let mut receivers = tokio::task::JoinSet::new();
    for me in 0..n {
        receivers.spawn(receiver(world.clone(), phase.clone(), me));
    }
    let mut senders = tokio::task::JoinSet::new();
    for me in 0..n {
        senders.spawn(sender(world.clone(), phase.clone(), me, interval));
    }
    tokio::time::sleep(duration).await;
    phase.sending.store(false, Ordering::Relaxed);
    while senders.join_next().await.is_some() {}
    // Let the last messages arrive, then stop the long polls.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    phase.receiving.store(false, Ordering::Relaxed);
    while receivers.join_next().await.is_some() {}
    let mut tally = std::mem::take(
        &mut *phase
            .tally
            .lock()
            .map_err(|_| fail("a load task panicked"))?,
    );
    tally.latencies_us.sort_unstable();
    let l = &tally.latencies_us;
    Ok(PhaseReport {
        offered_per_second: rate,
        messages: l.len() as u64,
        messages_per_second: l.len() as f64 / duration.as_secs_f64(),
        p50_ms: percentile_ms(l, 50.0),
        p99_ms: percentile_ms(l, 99.0),
        p999_ms: percentile_ms(l, 99.9),
        max_ms: l.last().map_or(0.0, |v| *v as f64 / 1000.0),
        errors: tally.errors,
    })
}

/// The insert of `batch` envelope rows into the scratch `table` at once, with numbered
/// placeholders (`$1`, `$2`, ...), which both SQLite and PostgreSQL take.
fn batch_insert_sql(table: &str, batch: usize) -> String {
    let rows: Vec<String> = (0..batch)
        .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect();
    format!(
        "INSERT INTO {table} (recipient_id, envelope, created_at) VALUES {}",
        rows.join(", ")
    )
}

/// Rows per second inserted into a scratch table of the same database kind, `batch`
/// envelope-sized rows per transaction, for about `duration`.
async fn db_ceiling(
    database_url: Option<&str>,
    data_dir: &Path,
    batch: usize,
    duration: Duration,
) -> Result<f64, CliError> {
    use sqlx::Connection;
    let envelope = vec![0x5au8; 300];
    let db_err = |e: sqlx::Error| fail(format!("database ceiling: {e}"));
    let batch = batch.max(1);
    let started = Instant::now();
    let mut rows = 0u64;
    match database_url {
        None => {
            use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
            // Same file system and the same durability settings as the server's database.
            let options = SqliteConnectOptions::new()
                .filename(data_dir.join("ceiling.sqlite3"))
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .map_err(db_err)?;
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS ceiling (id INTEGER PRIMARY KEY, \
                 recipient_id TEXT NOT NULL, envelope BLOB NOT NULL, created_at INTEGER NOT NULL)",
            )
            .execute(&mut conn)
            .await
            .map_err(db_err)?;
            let sql = batch_insert_sql("ceiling", batch);
            while started.elapsed() < duration {
                let mut tx = conn.begin().await.map_err(db_err)?;
                let mut q = sqlx::query(&sql);
                for i in 0..batch {
                    q = q.bind(format!("u_{i:032x}")).bind(&envelope).bind(now_ms());
                }
                q.execute(&mut *tx).await.map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                rows += batch as u64;
            }
            conn.close().await.ok();
            let _ = std::fs::remove_file(data_dir.join("ceiling.sqlite3"));
            let _ = std::fs::remove_file(data_dir.join("ceiling.sqlite3-wal"));
            let _ = std::fs::remove_file(data_dir.join("ceiling.sqlite3-shm"));
        }
        Some(url) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .connect(url)
                .await
                .map_err(db_err)?;
            let table = format!(
                "cachet_ceiling_{}",
                hex::encode(cachet_crypto::random_bytes::<4>())
            );
            sqlx::query(&format!(
                "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, recipient_id TEXT NOT NULL, \
                 envelope BYTEA NOT NULL, created_at BIGINT NOT NULL)"
            ))
            .execute(&pool)
            .await
            .map_err(db_err)?;
            let sql = batch_insert_sql(&table, batch);
            // Four writers at once, as a pool of server connections would be.
            let mut writers = tokio::task::JoinSet::new();
            for _ in 0..4 {
                let (pool, sql, envelope) = (pool.clone(), sql.clone(), envelope.clone());
                writers.spawn(async move {
                    let mut rows = 0u64;
                    while started.elapsed() < duration {
                        let mut tx = pool.begin().await?;
                        let mut q = sqlx::query(&sql);
                        for i in 0..batch {
                            q = q.bind(format!("u_{i:032x}")).bind(&envelope).bind(now_ms());
                        }
                        q.execute(&mut *tx).await?;
                        tx.commit().await?;
                        rows += batch as u64;
                    }
                    Ok::<u64, sqlx::Error>(rows)
                });
            }
            while let Some(r) = writers.join_next().await {
                rows += r
                    .map_err(|e| fail(format!("ceiling task: {e}")))?
                    .map_err(db_err)?;
            }
            sqlx::query(&format!("DROP TABLE {table}"))
                .execute(&pool)
                .await
                .map_err(db_err)?;
            pool.close().await;
        }
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

/// Requests per second of a trivial axum endpoint, `concurrency` clients in parallel.
async fn http_ceiling(concurrency: usize, duration: Duration) -> Result<f64, CliError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| fail(format!("http ceiling: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| fail(format!("http ceiling: {e}")))?;
    let app = axum::Router::new().route("/ping", axum::routing::post(|| async { "ok" }));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| fail(format!("http client: {e}")))?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = format!("http://{addr}/ping");
        tasks.spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < duration {
                if let Ok(r) = client.post(&url).body("x").send().await {
                    if r.bytes().await.is_ok() {
                        n += 1;
                    }
                }
            }
            n
        });
    }
    let mut total = 0u64;
    while let Some(n) = tasks.join_next().await {
        total += n.unwrap_or(0);
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    server.abort();
    Ok(rate)
}

/// Runs the benchmark; `progress` receives a line per step.
pub async fn run(
    options: BenchOptions,
    progress: &mut (dyn std::io::Write + Send),
) -> Result<BenchReport, CliError> {
    if options.users < 2 {
        return Err(CliError::usage(
            "the benchmark needs at least two users",
            "pass --users 2 or more",
        ));
    }
    let temp = tempfile::tempdir().map_err(|e| fail(format!("temporary directory: {e}")))?;
    let data_dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    let database = if options.database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let say = |progress: &mut (dyn std::io::Write + Send), line: String| {
        let _ = writeln!(progress, "{line}");
    };
    let ceiling_time = Duration::from_secs(3).min(options.duration);

    say(
        progress,
        format!(
            "database ceiling ({database}, {} rows per transaction)...",
            options.batch
        ),
    );
    let db_ceiling_rows_per_second = db_ceiling(
        options.database_url.as_deref(),
        &data_dir,
        options.batch,
        ceiling_time,
    )
    .await?;
    let db_unbatched_rows_per_second =
        db_ceiling(options.database_url.as_deref(), &data_dir, 1, ceiling_time).await?;
    say(progress, "trivial HTTP endpoint ceiling...".into());
    let http_ceiling_requests_per_second = http_ceiling(options.users.max(2), ceiling_time).await?;

    let config = cachet_server::ServerConfig {
        listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        database_url: options.database_url.clone(),
        long_poll_max_seconds: Some(5),
        ..cachet_server::ServerConfig::for_data_dir(&data_dir)
    };
    let server = cachet_server::spawn(config).await?;
    let http = Http {
        client: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(4 * options.users)
            .build()
            .map_err(|e| fail(format!("http client: {e}")))?,
        base: server.base_url(),
    };
    say(progress, format!("registering {} users...", options.users));
    let codes = data_dir.join(cachet_server::notify::DEV_CODES_FILE);
    let mut users = Vec::with_capacity(options.users);
    for n in 0..options.users {
        users.push(register(&http, &codes, n).await?);
    }
    let boxes = users
        .iter()
        .enumerate()
        .map(|(a, ua)| {
            users
                .iter()
                .enumerate()
                .map(|(b, ub)| {
                    (a != b)
                        .then(|| PrecomputedBox::new(&ub.boxk.public, &ua.boxk.secret).ok())
                        .flatten()
                })
                .collect()
        })
        .collect();
    let world = Arc::new(World {
        http,
        users,
        boxes,
        epoch: Instant::now(),
    });

    say(progress, format!("peak load for {:?}...", options.duration));
    let peak = run_phase(&world, options.duration, None).await?;
    let half = (peak.messages_per_second / 2.0).max(1.0);
    say(progress, format!("half load ({half:.0} messages/s)..."));
    let half_load = run_phase(&world, options.duration, Some(half)).await?;
    let rss_kib = proc_status_kib("VmRSS");
    let peak_rss_kib = proc_status_kib("VmHWM");
    server.shutdown().await?;
    drop(temp);

    Ok(BenchReport {
        database: database.to_owned(),
        users: options.users,
        seconds: options.duration.as_secs_f64(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ratio_to_db_ceiling: peak.messages_per_second / db_ceiling_rows_per_second.max(1e-9),
        peak,
        half_load,
        db_ceiling_rows_per_second,
        db_unbatched_rows_per_second,
        db_ceiling_batch: options.batch,
        http_ceiling_requests_per_second,
        rss_kib,
        peak_rss_kib,
    })
}

/// The report as text.
pub fn render(r: &BenchReport) -> String {
    let phase = |name: &str, p: &PhaseReport| {
        format!(
            "{name:<10} {:>9.0} msg/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  max {:>7.2} ms  ({} messages, {} errors)\n",
            p.messages_per_second, p.p50_ms, p.p99_ms, p.p999_ms, p.max_ms, p.messages, p.errors
        )
    };
    let mut out = format!(
        "cachet bench: {} users, {} s per phase, {} ({} CPUs)\n",
        r.users, r.seconds, r.database, r.cpus
    );
    out += &phase("peak", &r.peak);
    out += &phase("half load", &r.half_load);
    out += &format!(
        "database ceiling  {:>9.0} rows/s ({} per transaction); unbatched {:.0} rows/s\n",
        r.db_ceiling_rows_per_second, r.db_ceiling_batch, r.db_unbatched_rows_per_second
    );
    out += &format!(
        "HTTP ceiling      {:>9.0} requests/s (trivial axum endpoint)\n",
        r.http_ceiling_requests_per_second
    );
    out += &format!(
        "peak / database ceiling = {:.1} %\n",
        100.0 * r.ratio_to_db_ceiling
    );
    if let (Some(rss), Some(hwm)) = (r.rss_kib, r.peak_rss_kib) {
        out += &format!(
            "resident memory (server and generator, one process): {:.1} MiB, peak {:.1} MiB\n",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    }
    out
}
