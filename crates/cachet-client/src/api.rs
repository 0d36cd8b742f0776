//! The data server's HTTP API as typed calls. Every call but the two registration steps
//! is signed with the caller's Sign Key (`x-siilo-uid` / `x-siilo-sig`, whitepaper 8.3).

use std::sync::Arc;
use std::time::Duration;

use cachet_crypto::SignKeyPair;
use cachet_proto::auth::{sign_request, Caller, RequestTarget, SIG_HEADER, UID_HEADER};
use cachet_proto::v1;
use cachet_proto::Message;
use reqwest::{Method, StatusCode, Url};

use crate::clock::Clock;
use crate::error::{ClientError, Result};

const PROTOBUF: &str = "application/x-protobuf";
const OCTETS: &str = "application/octet-stream";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const CHUNK_TIMEOUT: Duration = Duration::from_secs(600);

/// Who signs: the user id and the current Sign Key.
pub(crate) struct Signer {
    pub caller: Caller,
    pub key: SignKeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("user_id", &self.caller.user_id)
            .finish_non_exhaustive()
    }
}

/// One request to the data server: described once, so that a single attempt and a
/// retried send take the same thing.
struct Call<'a> {
    method: Method,
    path: &'a str,
    body: Vec<u8>,
    content_type: &'static str,
    signer: Option<&'a Signer>,
    timeout: Duration,
}

impl<'a> Call<'a> {
    /// A protobuf request with the default timeout.
    fn protobuf(method: Method, path: &'a str, body: Vec<u8>, signer: Option<&'a Signer>) -> Self {
        Self {
            method,
            path,
            body,
            content_type: PROTOBUF,
            signer,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A connection to one data server.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    base: Url,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
}

/// How a send whose outcome is unknown or refused for a passing reason is tried again.
///
/// A message keeps its id and its exact bytes across attempts, and the data server
/// answers a repeated (sender, message id) with the same content as accepted without
/// storing or delivering it twice, so a send whose answer was lost is retried safely.
/// Retried: connection failures and timeouts, `502`, `503` and `504`, and `429` (after
/// its `Retry-After` if that is at most [`RetryPolicy::max_retry_after`]). Not retried:
/// TLS failures and every other answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: never retry).
    pub attempts: u32,
    /// The wait before the first retry; it doubles before each further one, and a random
    /// part of up to half of it is taken off, so that clients do not retry in step.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts (without `Retry-After`).
    pub max_backoff: Duration,
    /// The longest `Retry-After` of a `429` that is waited for; a longer one fails at once.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first retry), jittered.
    fn backoff(&self, retry: u32) -> Duration {
        let full = self
            .initial_backoff
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max_backoff);
        let jitter = u32::from(u16::from_le_bytes(cachet_crypto::random_bytes::<2>()));
        // Between half of `full` and all of it.
        full / 2 + (full / 2).mul_f64(f64::from(jitter) / f64::from(u16::MAX))
    }
}

/// One attempt that failed: the error, and whether (and when) trying again may succeed.
struct Failure {
    error: ClientError,
    transient: bool,
    retry_after: Option<Duration>,
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Self {
            error,
            transient: false,
            retry_after: None,
        }
    }
}

/// Checks a server URL: `https://`, or plain `http://` only to this machine (127.0.0.0/8,
/// `::1`, `localhost`), where nothing crosses a network.
pub(crate) fn check_server_url(server_url: &str) -> Result<Url> {
    let base = Url::parse(server_url).map_err(|e| {
        ClientError::InvalidInput(format!("server URL {server_url:?} is not valid: {e}"))
    })?;
    match base.scheme() {
        "https" => Ok(base),
        "http" if is_loopback(&base) => Ok(base),
        "http" => Err(ClientError::InsecureUrl {
            url: server_url.to_owned(),
        }),
        _ => Err(ClientError::InvalidInput(format!(
            "server URL {server_url:?} must start with https:// (or http:// to a loopback address)"
        ))),
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The HTTP client of a profile: with a pinned certificate, only that certificate (a CA,
/// or the server's own self-signed certificate) is trusted, not the system's roots.
pub(crate) fn http_client(
    root_certificate_pem: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("cachet-client/", env!("CARGO_PKG_VERSION")));
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    if let Some(pem) = root_certificate_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ClientError::InvalidInput(format!("pinned certificate: {e}")))?;
        if certs.is_empty() {
            return Err(ClientError::InvalidInput(
                "pinned certificate: no PEM certificate in the file".into(),
            ));
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| ClientError::InvalidInput(format!("HTTP client: {e}")))
}

/// A transport error as the SDK reports it: a TLS failure (a certificate the pin does not
/// vouch for, a handshake refused) is [`ClientError::Tls`], never retried; anything else
/// is [`ClientError::Unreachable`].
pub(crate) fn transport_error(base: &Url, e: &reqwest::Error) -> ClientError {
    // The innermost cause says it best ("Connection refused (os error 111)").
    let mut detail = e.to_string();
    let mut tls = false;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if inner.downcast_ref::<rustls::Error>().is_some() {
                    tls = true;
                    detail = inner.to_string();
                }
            }
        }
        if s.downcast_ref::<rustls::Error>().is_some() {
            tls = true;
        }
        source = s.source();
    }
    // Whatever wraps it on the way up, rustls names its failures this way.
    tls |= detail.contains("invalid peer certificate")
        || detail.contains("received fatal alert")
        || detail.contains("peer is incompatible")
        || detail.contains("peer misbehaved");
    if tls {
        return ClientError::Tls {
            url: base.to_string(),
            detail,
        };
    }
    if e.is_timeout() {
        detail = "timed out".into();
    }
    ClientError::Unreachable {
        url: base.to_string(),
        detail,
    }
}

impl Api {
    pub fn new(
        server_url: &str,
        clock: Arc<dyn Clock>,
        root_certificate_pem: Option<&[u8]>,
    ) -> Result<Self> {
        let base = check_server_url(server_url)?;
        let http = http_client(root_certificate_pem, None)?;
        Ok(Self {
            base,
            http,
            clock,
            retry: RetryPolicy::default(),
        })
    }

    /// A connection with the clock and retry policy of a client's `options`, trusting
    /// `root_certificate_pem` where given: how every installation reaches its server.
    pub fn configured(
        server_url: &str,
        options: &crate::ClientOptions,
        root_certificate_pem: Option<&[u8]>,
    ) -> Result<Self> {
        Ok(
            Self::new(server_url, options.clock.clone(), root_certificate_pem)?
                .with_retry(options.retry),
        )
    }

    /// [`Self::configured`] trusting the certificate the `options` name, if any.
    pub fn for_options(server_url: &str, options: &crate::ClientOptions) -> Result<Self> {
        Self::configured(server_url, options, options.root_certificate_pem.as_deref())
    }

    /// The same connection with another retry policy for sends.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn server_url(&self) -> &str {
        self.base.as_str()
    }

    fn url(&self, path_and_query: &str) -> Result<Url> {
        let base_path = self.base.path().trim_end_matches('/');
        let mut url = self.base.clone();
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        url.set_path(&format!("{base_path}{path}"));
        url.set_query(query);
        Ok(url)
    }

    async fn send(&self, call: &Call<'_>) -> Result<bytes::Bytes> {
        self.attempt(call).await.map_err(|f| f.error)
    }

    /// [`send`](Self::send) for a request that is safe to repeat, tried again on a
    /// transient failure per the [`RetryPolicy`] (signed afresh each time: the server
    /// refuses a replayed signature).
    async fn send_retrying(&self, call: &Call<'_>) -> Result<bytes::Bytes> {
        let mut retries = 0;
        loop {
            let failure = match self.attempt(call).await {
                Ok(bytes) => return Ok(bytes),
                Err(f) => f,
            };
            if !failure.transient || retries + 1 >= self.retry.attempts {
                return Err(failure.error);
            }
            let wait = match failure.retry_after {
                Some(after) if after > self.retry.max_retry_after => return Err(failure.error),
                Some(after) => after,
                None => self.retry.backoff(retries),
            };
            tokio::time::sleep(wait).await;
            retries += 1;
        }
    }

    async fn attempt(&self, call: &Call<'_>) -> std::result::Result<bytes::Bytes, Failure> {
        let Call {
            method,
            path,
            body,
            content_type,
            signer,
            timeout,
        } = call;
        let (content_type, signer, timeout) = (*content_type, *signer, *timeout);
        let url = self.url(path)?;
        let signed_path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut request = self
            .http
            .request(method.clone(), url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::ACCEPT, PROTOBUF);
        if let Some(signer) = signer {
            let headers = sign_request(
                &signer.caller,
                &signer.key,
                &RequestTarget {
                    method: method.as_str(),
                    path: &signed_path,
                    body,
                },
                self.clock.now_ms(),
            );
            request = request
                .header(UID_HEADER, headers.uid)
                .header(SIG_HEADER, headers.sig);
        }
        let network = |e: reqwest::Error| {
            let error = transport_error(&self.base, &e);
            Failure {
                transient: matches!(error, ClientError::Unreachable { .. }),
                error,
                retry_after: None,
            }
        };
        let response = request.body(body.to_vec()).send().await.map_err(network)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(network)?;
        if status.is_success() {
            return Ok(bytes);
        }
        let transient = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        );
        Err(Failure {
            error: server_error(status, &bytes),
            transient,
            retry_after: retry_after.filter(|_| transient),
        })
    }

    pub(crate) async fn proto<Resp: Message + Default>(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        signer: Option<&Signer>,
    ) -> Result<Resp> {
        let bytes = self
            .send(&Call::protobuf(method, path, body, signer))
            .await?;
        Ok(cachet_proto::decode::message(&bytes)?)
    }

    /// A signed `GET` answered with a protobuf message.
    async fn get<Resp: Message + Default>(&self, path: &str, signer: &Signer) -> Result<Resp> {
        self.proto(Method::GET, path, vec![], Some(signer)).await
    }

    /// A signed request whose body and answer are raw bytes (chunks, backups), with the
    /// timeout of a chunk.
    async fn octets(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        signer: &Signer,
    ) -> Result<bytes::Bytes> {
        self.send(&Call {
            content_type: OCTETS,
            timeout: CHUNK_TIMEOUT,
            ..Call::protobuf(method, path, body, Some(signer))
        })
        .await
    }

    /// A signed protobuf `POST` whose answer carries nothing.
    async fn post_proto(&self, path: &str, body: &impl Message, signer: &Signer) -> Result<()> {
        let body = body.encode_to_vec();
        self.send(&Call::protobuf(Method::POST, path, body, Some(signer)))
            .await?;
        Ok(())
    }

    // ---- Registration (unsigned) ----

    pub async fn register_start(&self, identifier: &str) -> Result<v1::RegisterStartResponse> {
        let body = v1::RegisterStart {
            identifier: identifier.to_owned(),
        };
        self.proto(
            Method::POST,
            "/api/v1/register/start",
            body.encode_to_vec(),
            None,
        )
        .await
    }

    pub async fn register_finish(
        &self,
        finish: &v1::RegisterFinish,
    ) -> Result<v1::RegisterFinishResponse> {
        self.proto(
            Method::POST,
            "/api/v1/register/finish",
            finish.encode_to_vec(),
            None,
        )
        .await
    }

    // ---- Encrypted message backup (recovery) ----

    pub async fn put_backup(&self, s: &Signer, sealed: Vec<u8>) -> Result<()> {
        self.octets(Method::POST, "/api/v1/recovery/backup", sealed, s)
            .await?;
        Ok(())
    }

    pub async fn get_backup(&self, s: &Signer) -> Result<bytes::Bytes> {
        self.octets(Method::GET, "/api/v1/recovery/backup", Vec::new(), s)
            .await
    }

    // ---- Directory ----

    pub async fn user(&self, s: &Signer, user_id: &str) -> Result<v1::UserProfile> {
        cachet_proto::decode::validate_id(user_id, "user_id")?;
        self.get(&format!("/api/v1/users/{user_id}"), s).await
    }

    pub async fn key_history(&self, s: &Signer, user_id: &str) -> Result<v1::KeyHistory> {
        cachet_proto::decode::validate_id(user_id, "user_id")?;
        self.get(&format!("/api/v1/users/{user_id}/keys"), s).await
    }

    pub async fn discover(&self, s: &Signer, hashes: Vec<Vec<u8>>) -> Result<v1::DiscoverResponse> {
        let body = v1::DiscoverRequest {
            identifier_hashes: hashes,
        };
        self.proto(
            Method::POST,
            "/api/v1/directory/discover",
            body.encode_to_vec(),
            Some(s),
        )
        .await
    }

    // ---- Trust log ----

    pub async fn log_head(&self, s: &Signer) -> Result<v1::LogHead> {
        self.get("/api/v1/log/head", s).await
    }

    pub async fn log_consistency(&self, s: &Signer, from: u64, to: u64) -> Result<v1::LogProof> {
        self.get(
            &format!("/api/v1/log/proof/consistency?from={from}&to={to}"),
            s,
        )
        .await
    }

    /// One user's chain with inclusion proofs for the tree of `size` blocks.
    pub async fn log_chain(&self, s: &Signer, user_id: &str, size: u64) -> Result<v1::LogBlocks> {
        cachet_proto::decode::validate_id(user_id, "user_id")?;
        self.get(
            &format!("/api/v1/log/blocks?user_id={user_id}&size={size}"),
            s,
        )
        .await
    }

    /// A page of the whole log (blocks with index >= `after`).
    pub async fn log_page(
        &self,
        s: &Signer,
        after: u64,
        limit: u32,
        size: u64,
    ) -> Result<v1::LogBlocks> {
        self.get(
            &format!("/api/v1/log/blocks?after={after}&limit={limit}&size={size}"),
            s,
        )
        .await
    }

    pub async fn log_append(&self, s: &Signer, block: Vec<u8>) -> Result<v1::LogBlocks> {
        let body = v1::AppendBlock { block };
        self.proto(
            Method::POST,
            "/api/v1/log/blocks",
            body.encode_to_vec(),
            Some(s),
        )
        .await
    }

    // ---- Messages ----

    /// Sends an envelope, retrying transient failures with the same bytes (so the same
    /// message id): the server stores and delivers it once.
    pub async fn send_envelope(&self, s: &Signer, envelope: &v1::Envelope) -> Result<()> {
        let path = "/api/v1/messages/send";
        self.send_retrying(&Call::protobuf(
            Method::POST,
            path,
            envelope.encode_to_vec(),
            Some(s),
        ))
        .await?;
        Ok(())
    }

    pub async fn receive(&self, s: &Signer, ack: &v1::Ack) -> Result<v1::EnvelopeList> {
        let timeout = DEFAULT_TIMEOUT + Duration::from_secs(u64::from(ack.wait_seconds));
        let path = "/api/v1/messages/receive";
        let bytes = self
            .send(&Call {
                timeout,
                ..Call::protobuf(Method::POST, path, ack.encode_to_vec(), Some(s))
            })
            .await?;
        Ok(cachet_proto::decode::message(&bytes)?)
    }

    // ---- Attachments ----

    pub async fn create_attachment(
        &self,
        s: &Signer,
        sealed_size: u64,
    ) -> Result<v1::AttachmentStatus> {
        let body = v1::CreateAttachment { sealed_size };
        self.proto(
            Method::POST,
            "/api/v1/attachments",
            body.encode_to_vec(),
            Some(s),
        )
        .await
    }

    pub async fn attachment_status(&self, s: &Signer, id: &str) -> Result<v1::AttachmentStatus> {
        cachet_proto::decode::validate_id(id, "attachment_id")?;
        self.get(&format!("/api/v1/attachments/{id}"), s).await
    }

    pub async fn put_chunk(&self, s: &Signer, id: &str, index: u64, chunk: Vec<u8>) -> Result<()> {
        self.octets(
            Method::PUT,
            &format!("/api/v1/attachments/{id}/chunks/{index}"),
            chunk,
            s,
        )
        .await?;
        Ok(())
    }

    pub async fn get_chunk(&self, s: &Signer, id: &str, index: u64) -> Result<bytes::Bytes> {
        cachet_proto::decode::validate_id(id, "attachment_id")?;
        self.octets(
            Method::GET,
            &format!("/api/v1/attachments/{id}/chunks/{index}"),
            vec![],
            s,
        )
        .await
    }

    pub async fn complete_attachment(
        &self,
        s: &Signer,
        id: &str,
        complete: &v1::CompleteAttachment,
    ) -> Result<()> {
        self.post_proto(&format!("/api/v1/attachments/{id}/complete"), complete, s)
            .await
    }

    // ---- Cases ----

    pub async fn create_case(&self, s: &Signer, case: &v1::CreateCase) -> Result<v1::CaseRecord> {
        self.proto(Method::POST, "/api/v1/cases", case.encode_to_vec(), Some(s))
            .await
    }

    pub async fn list_cases(&self, s: &Signer) -> Result<v1::CaseList> {
        self.get("/api/v1/cases", s).await
    }

    pub async fn get_case(&self, s: &Signer, case_id: &str) -> Result<v1::CaseRecord> {
        cachet_proto::decode::validate_id(case_id, "case_id")?;
        self.get(&format!("/api/v1/cases/{case_id}"), s).await
    }

    pub async fn add_participants(
        &self,
        s: &Signer,
        case_id: &str,
        add: &v1::AddParticipants,
    ) -> Result<()> {
        self.post_proto(&format!("/api/v1/cases/{case_id}/participants"), add, s)
            .await
    }

    pub async fn case_messages(
        &self,
        s: &Signer,
        case_id: &str,
        after: u64,
    ) -> Result<v1::EnvelopeList> {
        cachet_proto::decode::validate_id(case_id, "case_id")?;
        self.get(
            &format!("/api/v1/cases/{case_id}/messages?after={after}"),
            s,
        )
        .await
    }
}

pub(crate) fn server_error(status: StatusCode, body: &[u8]) -> ClientError {
    #[derive(serde::Deserialize)]
    struct Body {
        reason: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(b) => ClientError::Server {
            status: status.as_u16(),
            reason: b.reason,
            message: b.message,
        },
        Err(_) => ClientError::Server {
            status: status.as_u16(),
            reason: format!("http_{}", status.as_u16()),
            message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_accepted_only_to_loopback() {
        for ok in [
            "https://cachet.example.org",
            "https://192.0.2.1:7780/base",
            "http://127.0.0.1:7780",
            "http://127.8.9.10",
            "http://[::1]:7780",
            "http://localhost:7780",
            "http://LOCALHOST",
        ] {
            assert!(check_server_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://cachet.example.org",
            "http://192.0.2.1:7780",
            "http://10.0.0.1",
            "http://[2001:db8::1]",
            "http://[::ffff:127.0.0.1]",
            "http://localhost.example.org",
            "http://127.0.0.1.example.org",
        ] {
            assert!(
                matches!(
                    check_server_url(refused),
                    Err(ClientError::InsecureUrl { .. })
                ),
                "{refused}"
            );
        }
        assert!(matches!(
            check_server_url("ftp://127.0.0.1"),
            Err(ClientError::InvalidInput(_))
        ));
    }

    #[test]
    fn backoff_doubles_within_bounds() {
        let policy = RetryPolicy {
            attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(700),
            max_retry_after: Duration::from_secs(1),
        };
        for (retry, full) in [(0, 100), (1, 200), (2, 400), (3, 700), (9, 700), (40, 700)] {
            let wait = policy.backoff(retry);
            let full = Duration::from_millis(full);
            assert!(wait >= full / 2 && wait <= full, "{retry}: {wait:?}");
        }
    }
}
