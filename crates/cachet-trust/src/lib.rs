//! The cachet trust chain: every identity event of every user is a signed block in an
//! append-only Merkle log (RFC 9162) whose heads the server signs, so that a client can
//! check in O(log n) that the keys it is about to encrypt to are the ones the user's own
//! chain says, and that the server showed it the same history as everyone else.
//!
//! Sans-IO: no network, no storage, no clock. See `docs/trust-chain.md`.
//!
//! * [`block`]: blocks and their canonical bytes.
//! * [`merkle`]: the log, its root, inclusion and consistency proofs.
//! * [`sth`]: signed tree heads.
//! * [`chain`]: a user's chain replayed rule by rule.
//! * [`verifier`]: the client's checks.

pub mod block;
pub mod chain;
#[doc(hidden)]
pub mod fuzzing;
pub mod merkle;
pub mod sth;
pub mod verifier;

pub use block::{Author, Block, BlockBody, Event, Scope};
pub use chain::{Authorisation, KeyGeneration, RevokedBy, UserChain};
pub use merkle::{Hash, MerkleLog};
pub use sth::SignedTreeHead;
pub use verifier::{audit_log, ChangeVerdict, LoggedBlock, Verifier};

/// Everything that can be wrong with a block, a proof or a head. Each variant names the
/// attack or fault it reveals; the client refuses the keys and shows the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// Bytes that are not a valid encoding.
    #[error("malformed trust data: {0}")]
    Malformed(&'static str),
    /// A block's signature does not verify under the key its author names.
    #[error("block {seq} of {user_id}'s chain has an invalid signature")]
    SignatureInvalid {
        /// Whose chain.
        user_id: String,
        /// Which block.
        seq: u64,
    },
    /// A block is signed by someone not allowed to write it.
    #[error("block {seq} of {user_id}'s chain is not authorised: {why}")]
    UnauthorisedAuthor {
        /// Whose chain.
        user_id: String,
        /// Which block.
        seq: u64,
        /// The rule broken.
        why: &'static str,
    },
    /// An operator block by an operator (or with a key) the client does not pin: a forged
    /// operator action.
    #[error("block signed as operator {operator}, whose key this client does not know")]
    UnknownOperator {
        /// The claimed operator.
        operator: String,
    },
    /// The server's signature on a tree head does not verify.
    #[error("the tree head of size {size} is not signed by the server's log key")]
    TreeHeadSignatureInvalid {
        /// Size claimed.
        size: u64,
    },
    /// A block is not in the log the head describes (or not at that index).
    #[error("inclusion proof for block {index} in the log of {size} blocks is invalid")]
    InclusionProofInvalid {
        /// Claimed index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// A new head does not extend the old one.
    #[error("the log of {new} blocks does not extend the log of {old} blocks this client saw")]
    ConsistencyProofInvalid {
        /// Old size.
        old: u64,
        /// New size.
        new: u64,
    },
    /// Two signed heads of the same server that cannot both be true: the server showed
    /// different histories to different clients (or at different times).
    #[error(
        "fork: the server signed two histories that disagree (sizes {old_size} and {new_size})"
    )]
    ForkDetected {
        /// Smaller size.
        old_size: u64,
        /// Larger size.
        new_size: u64,
    },
    /// The server offers an older head than one it already signed for this client.
    #[error("the server offers a log of {offered} blocks after showing {seen}")]
    HeadRollback {
        /// Size held.
        seen: u64,
        /// Size offered.
        offered: u64,
    },
    /// Blocks of a chain out of order.
    #[error("{user_id}'s chain is out of order: expected {expected}, found {found}")]
    OutOfOrder {
        /// Whose chain.
        user_id: String,
        /// Expected sequence number or key version.
        expected: u64,
        /// Found.
        found: u64,
    },
    /// A chain's blocks are not in increasing log order.
    #[error("{user_id}'s chain is not in log order at index {index}")]
    LogOrder {
        /// Whose chain.
        user_id: String,
        /// The offending index.
        index: u64,
    },
    /// A block does not link to the previous block of its chain.
    #[error("block {seq} of {user_id}'s chain does not link to the block before it")]
    BrokenLink {
        /// Whose chain.
        user_id: String,
        /// Which block.
        seq: u64,
    },
    /// The same block appears twice.
    #[error("block {seq} of {user_id}'s chain is replayed")]
    Replay {
        /// Whose chain.
        user_id: String,
        /// Which block.
        seq: u64,
    },
    /// A block of another user's chain.
    #[error("block of {found} served as {expected}'s chain")]
    WrongUser {
        /// Asked for.
        expected: String,
        /// Found.
        found: String,
    },
    /// The server hides a revocation this client already saw.
    #[error("the server no longer shows the revocation of {user_id}'s keys")]
    RevocationMissing {
        /// Whose chain.
        user_id: String,
    },
    /// The server shows a shorter chain than before.
    #[error("the server shows {offered} blocks of {user_id}'s chain after showing {seen}")]
    ChainRollback {
        /// Whose chain.
        user_id: String,
        /// Blocks seen before.
        seen: u64,
        /// Blocks offered now.
        offered: u64,
    },
    /// The server shows a different chain than before.
    #[error("{user_id}'s chain changed at block {seq} since this client saw it")]
    ChainRewritten {
        /// Whose chain.
        user_id: String,
        /// First differing block.
        seq: u64,
    },
    /// A key that was current once, but no longer.
    #[error("keys version {version} of {user_id} are no longer current")]
    StaleKey {
        /// Whose keys.
        user_id: String,
        /// Their version.
        version: u32,
    },
    /// A key that was revoked.
    #[error("keys version {version} of {user_id} are revoked")]
    KeyRevoked {
        /// Whose keys.
        user_id: String,
        /// Their version.
        version: u32,
    },
    /// A key that the user's chain never held: substituted.
    #[error("these keys are not in {user_id}'s chain (substituted?)")]
    KeyNotInLog {
        /// Whose keys.
        user_id: String,
    },
    /// No chain checked for this user.
    #[error("no checked chain for {user_id}")]
    UnknownChain {
        /// Who.
        user_id: String,
    },
    /// No tree head yet.
    #[error("no tree head from this server yet")]
    NoTreeHead,
    /// A downloaded log does not hash to the head.
    #[error("the downloaded log does not match the signed head of size {size}")]
    RootMismatch {
        /// Head size.
        size: u64,
    },
    /// A proof asked for a larger tree than exists.
    #[error("tree of {requested} blocks requested; the log has {size}")]
    TreeTooSmall {
        /// Requested size.
        requested: u64,
        /// Actual size.
        size: u64,
    },
    /// An index outside the tree.
    #[error("index {index} outside a tree of {size}")]
    IndexOutOfRange {
        /// Index.
        index: u64,
        /// Size.
        size: u64,
    },
}
