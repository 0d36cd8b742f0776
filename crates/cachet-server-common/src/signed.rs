//! The servers' side of a signed request (`x-siilo-uid`, `x-siilo-sig`;
//! `docs/protocol.md`), written once for both: reading the two headers, what the signature
//! covers, and the record that refuses a replay. The check itself is
//! [`cachet_proto::auth::ParsedSignature`]; which key a signer has and where the replay
//! record is kept stay with each server (the data server knows users and operators and
//! records some replays in the handler's own commit; the key server knows operators only).

use axum::http::{HeaderMap, Method, Uri};
use cachet_proto::auth::{ParsedSignature, RequestTarget, MAX_SKEW_MS, SIG_HEADER, UID_HEADER};
use cachet_proto::ProtoError;

/// Seen signatures are kept this much longer than the clock window, against clock steps.
pub const REPLAY_MARGIN_MS: i64 = 60_000;

/// Why a request's signature headers could not be read; each server answers in its own
/// words.
#[derive(Debug)]
pub enum HeaderError {
    /// A header sent twice: proxies and frameworks disagree on which copy wins, so the
    /// signature would not say who is calling.
    Duplicate(&'static str),
    /// A header that is not visible ASCII.
    NotAscii(&'static str),
    /// Missing or malformed headers.
    Malformed(ProtoError),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Duplicate(name) => write!(f, "{name} sent more than once"),
            HeaderError::NotAscii(name) => write!(f, "{name} is not visible ASCII"),
            HeaderError::Malformed(e) => e.fmt(f),
        }
    }
}

/// The one value of an authentication header, if it is there.
fn one_value<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, HeaderError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HeaderError::Duplicate(name));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| HeaderError::NotAscii(name))
}

/// The signature headers of a request, parsed (read before the body, so that a request
/// without a well-formed signature is refused before it is received).
pub fn parse_headers(headers: &HeaderMap) -> Result<ParsedSignature, HeaderError> {
    let uid = one_value(headers, UID_HEADER)?;
    let sig = one_value(headers, SIG_HEADER)?;
    ParsedSignature::parse(uid, sig).map_err(HeaderError::Malformed)
}

/// What the signature covers: the method, the path with its query, and the body.
pub fn target<'a>(method: &'a Method, uri: &'a Uri, body: &'a [u8]) -> RequestTarget<'a> {
    RequestTarget {
        method: method.as_str(),
        path: uri.path_and_query().map_or(uri.path(), |pq| pq.as_str()),
        body,
    }
}

/// The replay record of an accepted signature: the SHA-256 of its replay id, and when it
/// may be forgotten (once its timestamp has left the clock window, with a margin).
pub fn replay_record(parsed: &ParsedSignature) -> ([u8; 32], i64) {
    let hash = cachet_crypto::sha256(parsed.replay_id());
    let forget_at = parsed
        .header
        .timestamp
        .saturating_add(MAX_SKEW_MS + REPLAY_MARGIN_MS);
    (hash, forget_at)
}
