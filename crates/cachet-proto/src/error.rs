//! The one error type of this crate.

/// What can be wrong with bytes received from the network.
///
/// Each request-signature failure has its own variant so that the server can answer with a
/// precise reason (`docs/protocol.md` lists them).
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum ProtoError {
    /// An audit log entry does not chain to the one before it.
    #[error("audit chain broken at entry {seq}: {reason}")]
    AuditChainBroken {
        /// First entry that does not check.
        seq: u64,
        /// What does not check.
        reason: &'static str,
    },
    /// The protobuf bytes did not decode.
    #[error("malformed protobuf: {0}")]
    MalformedProtobuf(String),
    /// The message decoded but breaks a rule (limit, missing field, bad length).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header is missing.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// `x-siilo-sig` is not valid base64.
    #[error("x-siilo-sig is not valid base64")]
    MalformedBase64,
    /// `x-siilo-sig` decoded but is too short to hold a signature.
    #[error("x-siilo-sig is too short")]
    SignatureTooShort,
    /// `x-siilo-sig` holds a signature header that is not valid protobuf.
    #[error("x-siilo-sig does not hold a valid SignatureHeader")]
    MalformedSignatureHeader,
    /// `x-siilo-uid` differs from the signed `user_id`.
    #[error("x-siilo-uid does not match the signed user id")]
    UidMismatch,
    /// The signed path differs from the request path.
    #[error("signed path does not match the request path")]
    PathMismatch,
    /// The signed method differs from the request method.
    #[error("signed method does not match the request method")]
    MethodMismatch,
    /// The signed body hash differs from the body received.
    #[error("signed body hash does not match the body")]
    BodyMismatch,
    /// The signed timestamp is outside the accepted window.
    #[error("signature timestamp is {skew_ms} ms away from the server clock (limit 300000)")]
    Expired {
        /// Signed time minus server time.
        skew_ms: i64,
    },
    /// No Sign Key is known for the signed user id.
    #[error("unknown user")]
    UnknownUser,
    /// The signature does not verify under the user's current Sign Key.
    #[error("bad signature")]
    BadSignature,
}
