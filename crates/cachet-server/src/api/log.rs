//! The trust log API (`docs/trust-chain.md`, `docs/protocol.md` "Trust log").

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::Uri;
use cachet_proto::v1::{AppendBlock, LogBlock, LogBlocks, LogHead, LogProof};
use cachet_trust::{Author, Block, MerkleLog};

use super::check_id;
use crate::auth::OPERATOR_PREFIX;
use crate::error::{Error, Result};
use crate::extract::{Authenticated, Principal};
use crate::extract::{Proto, Protobuf};
use crate::state::AppState;

/// Most blocks one page of the whole log holds.
const MAX_PAGE: u32 = 1000;

/// Any authenticated caller: users and operators both read the log and write blocks.
pub(crate) struct AnyCaller(Principal);

impl<S: Send + Sync> FromRequestParts<S> for AnyCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        match parts.extensions.get::<Authenticated>() {
            Some(a) => Ok(AnyCaller(a.principal.clone())),
            None => Err(Error::Internal("route is not behind authentication".into())),
        }
    }
}

/// Parses `?k=v&...` into the named integers (and an optional `user_id`), refusing
/// anything else.
fn query(uri: &Uri, names: &[&'static str]) -> Result<(Vec<Option<u64>>, Option<String>)> {
    let mut values = vec![None; names.len()];
    let mut user_id = None;
    for pair in uri.query().unwrap_or("").split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "user_id" && names.contains(&"user_id") {
            check_id(v, "user_id")?;
            user_id = Some(v.to_owned());
            continue;
        }
        let Some(i) = names.iter().position(|n| *n == k) else {
            return Err(Error::InvalidPath(format!("unknown query parameter {k:?}")));
        };
        values[i] = Some(
            v.parse()
                .map_err(|_| Error::InvalidPath(format!("{k} must be an integer")))?,
        );
    }
    Ok((values, user_id))
}

fn too_small(what: &str, asked: u64, size: u64) -> Error {
    Error::LogTooSmall(format!("{what} {asked}, log size {size}"))
}

fn hashes(proof: Vec<[u8; 32]>) -> Vec<Vec<u8>> {
    proof.into_iter().map(|h| h.to_vec()).collect()
}

/// GET /api/v1/log/head
pub(crate) async fn head(
    State(state): State<AppState>,
    _caller: AnyCaller,
) -> Result<Protobuf<LogHead>> {
    let store = state.store.as_ref();
    let tree = state.trust.synced(store).await?;
    Ok(Protobuf(LogHead {
        sth: state.trust.sign_head(store, &tree).await?.to_bytes(),
        log_key: state.trust.public_key(store).await?.as_bytes().to_vec(),
    }))
}

/// The two numbers a proof route requires, or 400 naming them.
fn required_pair(uri: &Uri, names: [&'static str; 2]) -> Result<(u64, u64)> {
    let (v, _) = query(uri, &names)?;
    match (v[0], v[1]) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(Error::InvalidPath(format!(
            "{} and {} are required",
            names[0], names[1]
        ))),
    }
}

/// GET /api/v1/log/proof/inclusion?index=I&size=N
pub(crate) async fn inclusion(
    State(state): State<AppState>,
    _caller: AnyCaller,
    uri: Uri,
) -> Result<Protobuf<LogProof>> {
    let (index, size) = required_pair(&uri, ["index", "size"])?;
    let tree = state.trust.synced(state.store.as_ref()).await?;
    if size > tree.size() || index >= size {
        return Err(too_small("index/size", index.max(size), tree.size()));
    }
    let proof = tree
        .inclusion_proof(index, size)
        .map_err(|e| Error::LogTooSmall(e.to_string()))?;
    Ok(Protobuf(LogProof {
        hashes: hashes(proof),
    }))
}

/// GET /api/v1/log/proof/consistency?from=M&to=N
pub(crate) async fn consistency(
    State(state): State<AppState>,
    _caller: AnyCaller,
    uri: Uri,
) -> Result<Protobuf<LogProof>> {
    let (from, to) = required_pair(&uri, ["from", "to"])?;
    if from > to {
        return Err(Error::InvalidPath("from must not exceed to".into()));
    }
    let tree = state.trust.synced(state.store.as_ref()).await?;
    if to > tree.size() {
        return Err(too_small("to", to, tree.size()));
    }
    let proof = tree
        .consistency_proof(from, to)
        .map_err(|e| Error::LogTooSmall(e.to_string()))?;
    Ok(Protobuf(LogProof {
        hashes: hashes(proof),
    }))
}

fn with_proofs(tree: &MerkleLog, size: u64, rows: Vec<(u64, Vec<u8>)>) -> Result<LogBlocks> {
    let blocks = rows
        .into_iter()
        .filter(|(index, _)| *index < size)
        .map(|(index, block)| {
            let proof = tree
                .inclusion_proof(index, size)
                .map_err(|e| Error::Internal(e.to_string()))?;
            Ok(LogBlock {
                index,
                block,
                proof: hashes(proof),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LogBlocks { blocks, size })
}

/// GET /api/v1/log/blocks?user_id=U&size=N (one chain) or ?after=I&limit=M&size=N (the
/// whole log, blocks with index >= after); proofs are for the tree of `size` blocks
/// (default: the current size).
pub(crate) async fn blocks(
    State(state): State<AppState>,
    _caller: AnyCaller,
    uri: Uri,
) -> Result<Protobuf<LogBlocks>> {
    let (v, user_id) = query(&uri, &["user_id", "size", "after", "limit"])?;
    let tree = state.trust.synced(state.store.as_ref()).await?;
    let size = v[1].unwrap_or(tree.size());
    if size > tree.size() {
        return Err(too_small("size", size, tree.size()));
    }
    let rows = match user_id {
        Some(user_id) => state.store.trust_blocks_of(&user_id).await?,
        None => {
            let limit = v[3].map_or(MAX_PAGE, |l| {
                u32::try_from(l).unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE)
            });
            state.store.trust_blocks(v[2].unwrap_or(0), limit).await?
        }
    };
    Ok(Protobuf(with_proofs(&tree, size, rows)?))
}

/// POST /api/v1/log/blocks: a user appends a block of their own chain; an operator, a
/// block it signs as itself.
pub(crate) async fn append(
    State(state): State<AppState>,
    AnyCaller(principal): AnyCaller,
    Proto(req): Proto<AppendBlock>,
) -> Result<Protobuf<LogBlocks>> {
    let block =
        Block::from_bytes(&req.block).map_err(|e| Error::invalid("block", e.to_string()))?;
    check_id(&block.body.user_id, "user_id")?;
    match (&principal, &block.body.author) {
        (Principal::User(me), Author::Key(_)) if *me == block.body.user_id => {}
        (Principal::Operator(name), Author::Operator { id, .. })
            if *id == format!("{OPERATOR_PREFIX}{name}") => {}
        _ => return Err(Error::TrustBlockRejected(
            "users write blocks of their own chain; operators write blocks signed as themselves"
                .into(),
        )),
    }
    let index = state.trust.append(state.store.as_ref(), &block).await?;
    let tree = state.trust.synced(state.store.as_ref()).await?;
    let size = tree.size();
    let proof = tree
        .inclusion_proof(index, size)
        .map_err(|e| Error::Internal(e.to_string()))?;
    tracing::info!(user_id = %block.body.user_id, seq = block.body.seq, index, "trust block appended");
    Ok(Protobuf(LogBlocks {
        blocks: vec![LogBlock {
            index,
            block: req.block,
            proof: hashes(proof),
        }],
        size,
    }))
}
