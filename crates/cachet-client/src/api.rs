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

/// A connection to one data server.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    base: Url,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl Api {
    pub fn new(
        server_url: &str,
        clock: Arc<dyn Clock>,
        root_certificate_pem: Option<&[u8]>,
    ) -> Result<Self> {
        let base = Url::parse(server_url).map_err(|e| {
            ClientError::InvalidInput(format!("server URL {server_url:?} is not valid: {e}"))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::InvalidInput(format!(
                "server URL {server_url:?} must start with http:// or https://"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("cachet-client/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = root_certificate_pem {
            // Certificate pinning (whitepaper 9): trust only the given certificate authority.
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ClientError::InvalidInput(format!("CA certificate: {e}")))?;
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::InvalidInput(format!("HTTP client: {e}")))?;
        Ok(Self { base, http, clock })
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

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        signer: Option<&Signer>,
        timeout: Duration,
    ) -> Result<bytes::Bytes> {
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
                    body: &body,
                },
                self.clock.now_ms(),
            );
            request = request
                .header(UID_HEADER, headers.uid)
                .header(SIG_HEADER, headers.sig);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| self.network(e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.network(e))?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(server_error(status, &bytes))
    }

    fn network(&self, e: reqwest::Error) -> ClientError {
        // The innermost cause says it best ("Connection refused (os error 111)").
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail = s.to_string();
            source = s.source();
        }
        if e.is_timeout() {
            detail = "timed out".into();
        }
        ClientError::Unreachable {
            url: self.base.to_string(),
            detail,
        }
    }

    pub(crate) async fn proto<Resp: Message + Default>(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        signer: Option<&Signer>,
    ) -> Result<Resp> {
        let bytes = self
            .send(method, path, body, PROTOBUF, signer, DEFAULT_TIMEOUT)
            .await?;
        Ok(cachet_proto::decode::message(&bytes)?)
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
        self.send(
            Method::POST,
            "/api/v1/recovery/backup",
            sealed,
            OCTETS,
            Some(s),
            CHUNK_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    pub async fn get_backup(&self, s: &Signer) -> Result<bytes::Bytes> {
        self.send(
            Method::GET,
            "/api/v1/recovery/backup",
            Vec::new(),
            OCTETS,
            Some(s),
            CHUNK_TIMEOUT,
        )
        .await
    }

    // ---- Directory ----

    pub async fn user(&self, s: &Signer, user_id: &str) -> Result<v1::UserProfile> {
        cachet_proto::decode::validate_id(user_id, "user_id")?;
        self.proto(
            Method::GET,
            &format!("/api/v1/users/{user_id}"),
            vec![],
            Some(s),
        )
        .await
    }

    pub async fn key_history(&self, s: &Signer, user_id: &str) -> Result<v1::KeyHistory> {
        cachet_proto::decode::validate_id(user_id, "user_id")?;
        self.proto(
            Method::GET,
            &format!("/api/v1/users/{user_id}/keys"),
            vec![],
            Some(s),
        )
        .await
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
        self.proto(Method::GET, "/api/v1/log/head", vec![], Some(s))
            .await
    }

    pub async fn log_consistency(&self, s: &Signer, from: u64, to: u64) -> Result<v1::LogProof> {
        self.proto(
            Method::GET,
            &format!("/api/v1/log/proof/consistency?from={from}&to={to}"),
            vec![],
            Some(s),
        )
        .await
    }

    /// One user's chain with inclusion proofs for the tree of `size` blocks.
    pub async fn log_chain(&self, s: &Signer, user_id: &str, size: u64) -> Result<v1::LogBlocks> {
        cachet_proto::decode::validate_id(user_id, "user_id")?;
        self.proto(
            Method::GET,
            &format!("/api/v1/log/blocks?user_id={user_id}&size={size}"),
            vec![],
            Some(s),
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
        self.proto(
            Method::GET,
            &format!("/api/v1/log/blocks?after={after}&limit={limit}&size={size}"),
            vec![],
            Some(s),
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

    pub async fn send_envelope(&self, s: &Signer, envelope: &v1::Envelope) -> Result<()> {
        self.send(
            Method::POST,
            "/api/v1/messages/send",
            envelope.encode_to_vec(),
            PROTOBUF,
            Some(s),
            DEFAULT_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    pub async fn receive(&self, s: &Signer, ack: &v1::Ack) -> Result<v1::EnvelopeList> {
        let timeout = DEFAULT_TIMEOUT + Duration::from_secs(u64::from(ack.wait_seconds));
        let bytes = self
            .send(
                Method::POST,
                "/api/v1/messages/receive",
                ack.encode_to_vec(),
                PROTOBUF,
                Some(s),
                timeout,
            )
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
        self.proto(
            Method::GET,
            &format!("/api/v1/attachments/{id}"),
            vec![],
            Some(s),
        )
        .await
    }

    pub async fn put_chunk(&self, s: &Signer, id: &str, index: u64, chunk: Vec<u8>) -> Result<()> {
        self.send(
            Method::PUT,
            &format!("/api/v1/attachments/{id}/chunks/{index}"),
            chunk,
            OCTETS,
            Some(s),
            CHUNK_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    pub async fn get_chunk(&self, s: &Signer, id: &str, index: u64) -> Result<bytes::Bytes> {
        cachet_proto::decode::validate_id(id, "attachment_id")?;
        self.send(
            Method::GET,
            &format!("/api/v1/attachments/{id}/chunks/{index}"),
            vec![],
            OCTETS,
            Some(s),
            CHUNK_TIMEOUT,
        )
        .await
    }

    pub async fn complete_attachment(
        &self,
        s: &Signer,
        id: &str,
        complete: &v1::CompleteAttachment,
    ) -> Result<()> {
        self.send(
            Method::POST,
            &format!("/api/v1/attachments/{id}/complete"),
            complete.encode_to_vec(),
            PROTOBUF,
            Some(s),
            DEFAULT_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    // ---- Cases ----

    pub async fn create_case(&self, s: &Signer, case: &v1::CreateCase) -> Result<v1::CaseRecord> {
        self.proto(Method::POST, "/api/v1/cases", case.encode_to_vec(), Some(s))
            .await
    }

    pub async fn list_cases(&self, s: &Signer) -> Result<v1::CaseList> {
        self.proto(Method::GET, "/api/v1/cases", vec![], Some(s))
            .await
    }

    pub async fn get_case(&self, s: &Signer, case_id: &str) -> Result<v1::CaseRecord> {
        cachet_proto::decode::validate_id(case_id, "case_id")?;
        self.proto(
            Method::GET,
            &format!("/api/v1/cases/{case_id}"),
            vec![],
            Some(s),
        )
        .await
    }

    pub async fn add_participants(
        &self,
        s: &Signer,
        case_id: &str,
        add: &v1::AddParticipants,
    ) -> Result<()> {
        self.send(
            Method::POST,
            &format!("/api/v1/cases/{case_id}/participants"),
            add.encode_to_vec(),
            PROTOBUF,
            Some(s),
            DEFAULT_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    pub async fn case_messages(
        &self,
        s: &Signer,
        case_id: &str,
        after: u64,
    ) -> Result<v1::EnvelopeList> {
        cachet_proto::decode::validate_id(case_id, "case_id")?;
        self.proto(
            Method::GET,
            &format!("/api/v1/cases/{case_id}/messages?after={after}"),
            vec![],
            Some(s),
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
