//! Opaque attachment chunks behind a trait; the filesystem implementation is the default,
//! an object store can take its place.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};

/// Every file under `dir`, sorted (a missing or unreadable folder counts as empty): what
/// an operator, the demo or a test sees of the chunks a data directory holds.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Stores sealed attachment chunks by (attachment id, index). The bytes are ciphertext
/// the server cannot read.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores a chunk atomically: a reader sees the old chunk, the new one or nothing,
    /// never a torn write. Writing the same index again replaces it.
    async fn put_chunk(&self, attachment_id: &str, index: u32, data: Bytes) -> Result<()>;
    /// Reads a chunk.
    async fn get_chunk(&self, attachment_id: &str, index: u32) -> Result<Option<Bytes>>;
    /// Deletes every chunk of an attachment.
    async fn delete_attachment(&self, attachment_id: &str) -> Result<()>;
}

/// Chunks as files: `<root>/<first two hex digits of the id's hash>/<id>/<index>`.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// A store rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        crate::private_files::create_dir(&root)?;
        Ok(FsBlobStore { root })
    }

    fn dir(&self, attachment_id: &str) -> Result<PathBuf> {
        // Ids are server-made, but a path must never be built from anything that could
        // climb out of the root.
        check_attachment_id(attachment_id)?;
        let fanout = hex::encode(&cachet_crypto::sha256(attachment_id.as_bytes())[..1]);
        Ok(self.root.join(fanout).join(attachment_id))
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put_chunk(&self, attachment_id: &str, index: u32, data: Bytes) -> Result<()> {
        let dir = self.dir(attachment_id)?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            crate::private_files::create_dir(&dir)?;
            let tmp = dir.join(format!(
                ".{index}.{}.tmp",
                hex::encode(cachet_crypto::random_bytes::<8>())
            ));
            let result = (|| {
                let mut f = crate::private_files::create_new(&tmp)?;
                f.write_all(&data)?;
                f.sync_all()?;
                std::fs::rename(&tmp, dir.join(index.to_string()))?;
                sync_dir(&dir)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        })
        .await
        .map_err(|e| Error::Internal(format!("blob writer task: {e}")))??;
        Ok(())
    }

    async fn get_chunk(&self, attachment_id: &str, index: u32) -> Result<Option<Bytes>> {
        let path = self.dir(attachment_id)?.join(index.to_string());
        match tokio::fs::read(&path).await {
            Ok(v) => Ok(Some(Bytes::from(v))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_attachment(&self, attachment_id: &str) -> Result<()> {
        let dir = self.dir(attachment_id)?;
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Attachment ids become path segments or object keys only if they cannot climb out.
fn check_attachment_id(attachment_id: &str) -> Result<()> {
    if attachment_id.is_empty()
        || attachment_id.len() > 128
        || !attachment_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::invalid("attachment_id", "not a valid attachment id"));
    }
    Ok(())
}

/// Chunks as objects in an S3-compatible store (AWS S3, MinIO, Ceph, Garage...):
/// `<prefix>/<first two hex digits of the id's hash>/<id>/<index>`. A PUT of one object is
/// atomic in S3, which gives the no-torn-write rule; the hash spreads keys over the
/// store's partitions.
#[derive(Debug)]
pub struct S3BlobStore {
    store: object_store::aws::AmazonS3,
    prefix: String,
}

/// The HTTP transport of the S3 client: the workspace's own reqwest (rustls on ring), so the
/// object store brings no second HTTP and TLS stack (its built-in one is another reqwest
/// major over aws-lc-rs, a C library).
#[derive(Debug)]
struct S3Http {
    allow_http: bool,
}

/// One request of the S3 client, sent through reqwest.
#[derive(Debug)]
struct S3HttpService(reqwest::Client);

impl object_store::client::HttpConnector for S3Http {
    fn connect(
        &self,
        _options: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        let client = reqwest::Client::builder()
            .https_only(!self.allow_http)
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })?;
        Ok(object_store::client::HttpClient::new(S3HttpService(client)))
    }
}

#[async_trait::async_trait]
impl object_store::client::HttpService for S3HttpService {
    async fn call(
        &self,
        request: object_store::client::HttpRequest,
    ) -> std::result::Result<object_store::client::HttpResponse, object_store::client::HttpError>
    {
        use http_body_util::BodyExt;
        use object_store::client::{HttpError, HttpErrorKind, HttpResponseBody};
        let kind = |e: &reqwest::Error| {
            if e.is_timeout() {
                HttpErrorKind::Timeout
            } else if e.is_connect() {
                HttpErrorKind::Connect
            } else if e.is_body() || e.is_request() {
                HttpErrorKind::Request
            } else if e.is_decode() {
                HttpErrorKind::Decode
            } else {
                HttpErrorKind::Unknown
            }
        };
        let (parts, body) = request.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string())
            .map_err(|e| HttpError::new(HttpErrorKind::Request, e))?;
        let mut outgoing = reqwest::Request::new(parts.method, url);
        *outgoing.headers_mut() = parts.headers;
        *outgoing.body_mut() = Some(reqwest::Body::wrap(body));
        let answer = self
            .0
            .execute(outgoing)
            .await
            .map_err(|e| HttpError::new(kind(&e), e))?;
        let (parts, body) = axum::http::Response::<reqwest::Body>::from(answer).into_parts();
        let body = HttpResponseBody::new(body.map_err(move |e| HttpError::new(kind(&e), e)));
        Ok(axum::http::Response::from_parts(parts, body))
    }
}

fn s3_error(e: object_store::Error) -> Error {
    Error::Internal(format!("object store: {e}"))
}

impl S3BlobStore {
    /// A store on the bucket the settings name. Unset credentials and region fall back to
    /// the `AWS_*` environment variables (and instance credentials).
    pub fn new(s3: &crate::config::S3Settings) -> Result<Self> {
        use object_store::aws::AmazonS3Builder;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&s3.bucket);
        if let Some(endpoint) = &s3.endpoint {
            // Self-hosted stores are addressed path-style; plain HTTP only if asked for.
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let allow_http = s3
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        builder = builder.with_http_connector(S3Http { allow_http });
        if let Some(region) = &s3.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &s3.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &s3.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose());
        }
        let store = builder
            .build()
            .map_err(|e| Error::Config(format!("s3: {e}")))?;
        Ok(S3BlobStore {
            store,
            prefix: s3.prefix.clone(),
        })
    }

    fn dir(&self, attachment_id: &str) -> Result<String> {
        check_attachment_id(attachment_id)?;
        let fanout = hex::encode(&cachet_crypto::sha256(attachment_id.as_bytes())[..1]);
        Ok(if self.prefix.is_empty() {
            format!("{fanout}/{attachment_id}")
        } else {
            format!("{}/{fanout}/{attachment_id}", self.prefix)
        })
    }

    fn key(&self, attachment_id: &str, index: u32) -> Result<object_store::path::Path> {
        Ok(object_store::path::Path::from(format!(
            "{}/{index}",
            self.dir(attachment_id)?
        )))
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put_chunk(&self, attachment_id: &str, index: u32, data: Bytes) -> Result<()> {
        use object_store::ObjectStoreExt;
        let key = self.key(attachment_id, index)?;
        self.store
            .put(&key, object_store::PutPayload::from_bytes(data))
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    async fn get_chunk(&self, attachment_id: &str, index: u32) -> Result<Option<Bytes>> {
        use object_store::ObjectStoreExt;
        let key = self.key(attachment_id, index)?;
        match self.store.get(&key).await {
            Ok(found) => Ok(Some(found.bytes().await.map_err(s3_error)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(s3_error(e)),
        }
    }

    async fn delete_attachment(&self, attachment_id: &str) -> Result<()> {
        use futures_util::TryStreamExt;
        use object_store::{ObjectStore, ObjectStoreExt};
        let dir = object_store::path::Path::from(self.dir(attachment_id)?);
        let keys: Vec<_> = self
            .store
            .list(Some(&dir))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(s3_error)?;
        for key in keys {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(s3_error(e)),
            }
        }
        Ok(())
    }
}

/// Puts one chunk and checks that reading it back gives exactly those bytes (the
/// conformance check does this for a first write and for an overwrite).
async fn put_then_read_back(blobs: &dyn BlobStore, id: &str, index: u32, bytes: &'static [u8]) {
    blobs
        .put_chunk(id, index, Bytes::from_static(bytes))
        .await
        .expect("put");
    assert_eq!(
        blobs.get_chunk(id, index).await.expect("get").as_deref(),
        Some(bytes)
    );
}

/// Checks the [`BlobStore`] contract; reusable by any implementation's tests.
pub async fn conformance(blobs: &dyn BlobStore) {
    let id = format!("a_conf_{}", hex::encode(cachet_crypto::random_bytes::<8>()));
    assert!(blobs.get_chunk(&id, 0).await.expect("get").is_none());
    put_then_read_back(blobs, &id, 0, b"first").await;
    put_then_read_back(blobs, &id, 1, b"second").await;
    let first = blobs.get_chunk(&id, 0).await.expect("get");
    assert_eq!(first.as_deref(), Some(&b"first"[..]), "chunk 0 kept");
    put_then_read_back(blobs, &id, 0, b"replaced").await;
    blobs.delete_attachment(&id).await.expect("delete");
    assert!(blobs.get_chunk(&id, 1).await.expect("get").is_none());
    blobs.delete_attachment(&id).await.expect("delete twice");
    assert!(blobs
        .put_chunk("../escape", 0, Bytes::from_static(b"x"))
        .await
        .is_err());
}
