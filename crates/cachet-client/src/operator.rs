//! The operator side of the data server: the key hierarchy (init, unseal, rotation,
//! re-sharing, export) and the audit log. Every call is signed with the operator's own
//! Ed25519 key as `op:NAME`, so each action is attributable (whitepaper 10.6).

use std::sync::Arc;

use cachet_crypto::{holder, CryptoError, SignKeyPair};
use cachet_proto::auth::Caller;
use cachet_proto::v1::{self, ClientType};
use cachet_proto::Message;
use cachet_trust::{Author, Block, BlockBody, Event};
use reqwest::Method;
use zeroize::Zeroizing;

use crate::api::{Api, Signer};
use crate::clock::{Clock, SystemClock};
use crate::error::{ClientError, Result};

/// What `cachet operator audit` found.
#[derive(Debug, Clone)]
pub struct AuditReport {
    /// Every entry, oldest first; `opened_*` hold the readable text.
    pub entries: Vec<v1::AuditEntry>,
    /// Hash of the last entry (32 zero bytes for an empty log): keep it, and a later
    /// check that does not extend it reveals a rewritten history.
    pub head: Vec<u8>,
}

/// The end of a user's chain, as [`OperatorClient`] needs it to append.
struct ChainTail {
    last: Block,
    key_version: u32,
    revoked: bool,
}

/// What a [`OperatorClient::split`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Create the master key of an empty server.
    Init,
    /// Replace the master key.
    Rotate,
    /// Split the same master key for new holders.
    Reshare,
}

/// A connection to one data server as one operator.
#[derive(Debug)]
pub struct OperatorClient {
    api: Api,
    signer: Signer,
}

impl OperatorClient {
    /// `name` is the operator name registered with `cachet server add-operator`.
    pub fn new(
        server_url: &str,
        name: &str,
        key: SignKeyPair,
        root_certificate_pem: Option<&[u8]>,
    ) -> Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Ok(Self {
            api: Api::new(server_url, clock, root_certificate_pem)?,
            signer: Signer {
                caller: Caller {
                    user_id: format!("op:{name}"),
                    build_number: crate::BUILD_NUMBER,
                    client_type: ClientType::Desktop,
                },
                key,
            },
        })
    }

    /// An audited operator action on one user (`verify`, `revoke`): the user's profile
    /// as the server answers it.
    async fn user_action(
        &self,
        user_id: &str,
        action: &str,
        body: Vec<u8>,
    ) -> Result<v1::UserProfile> {
        let path = format!("/api/v1/operator/users/{user_id}/{action}");
        self.call(Method::POST, &path, body, true).await
    }

    async fn call<Resp: Message + Default>(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        signed: bool,
    ) -> Result<Resp> {
        self.api
            .proto(method, path, body, signed.then_some(&self.signer))
            .await
    }

    /// Whether the server is initialised and sealed, and how far an unseal has got.
    pub async fn vault_status(&self) -> Result<v1::VaultStatus> {
        self.call(Method::GET, "/api/v1/vault/status", Vec::new(), false)
            .await
    }

    /// Creates the master key of an empty server and returns one share per holder.
    pub async fn init(&self, shares: u32, threshold: u32) -> Result<v1::VaultShares> {
        self.split(Split::Init, shares, threshold, &[]).await
    }

    /// Init, rotation or re-sharing. With `holders` (one operator name per share, as
    /// registered on the server), share N comes back sealed to operator N's key
    /// (`sealed_tokens`), so whoever runs the command sees no share in the clear.
    pub async fn split(
        &self,
        kind: Split,
        shares: u32,
        threshold: u32,
        holders: &[String],
    ) -> Result<v1::VaultShares> {
        let body = v1::VaultSplit {
            shares,
            threshold,
            holders: holders.to_vec(),
        }
        .encode_to_vec();
        let path = match kind {
            Split::Init => "/api/v1/operator/vault/init",
            Split::Rotate => "/api/v1/operator/vault/rotate",
            Split::Reshare => "/api/v1/operator/vault/reshare",
        };
        self.call(Method::POST, path, body, true).await
    }

    /// Enters one share: a plain token, or a share sealed to this operator (opened here
    /// with the operator's own key; the server only ever sees the token).
    pub async fn unseal(&self, token: &str) -> Result<v1::VaultStatus> {
        let token = if holder::is_sealed_share(token) {
            holder::open_share(token, &self.signer.key).map_err(|e| {
                ClientError::InvalidInput(match e {
                    CryptoError::Decrypt => {
                        "this sealed share belongs to another holder (or was tampered with)".into()
                    }
                    e => e.to_string(),
                })
            })?
        } else {
            Zeroizing::new(token.to_owned())
        };
        let body = v1::UnsealShare {
            token: token.trim().to_owned(),
        }
        .encode_to_vec();
        self.call(Method::POST, "/api/v1/operator/vault/unseal", body, true)
            .await
    }

    /// Makes the server forget its master key now.
    pub async fn seal(&self) -> Result<v1::VaultStatus> {
        self.call(
            Method::POST,
            "/api/v1/operator/vault/seal",
            Vec::new(),
            true,
        )
        .await
    }

    /// A new master key (KEKs re-wrapped, no row rewritten), split into new shares.
    pub async fn rotate(&self, shares: u32, threshold: u32) -> Result<v1::VaultShares> {
        self.split(Split::Rotate, shares, threshold, &[]).await
    }

    /// The same master key split into new shares for new holders.
    pub async fn reshare(&self, shares: u32, threshold: u32) -> Result<v1::VaultShares> {
        self.split(Split::Reshare, shares, threshold, &[]).await
    }

    /// The sealed key material (no secret in it), for a second server.
    pub async fn export(&self) -> Result<Vec<u8>> {
        let out: v1::VaultExport = self
            .call(
                Method::GET,
                "/api/v1/operator/vault/export",
                Vec::new(),
                true,
            )
            .await?;
        Ok(out.sealed_root)
    }

    /// Gives an uninitialised server the sealed key material of another one.
    pub async fn import(&self, sealed_root: Vec<u8>) -> Result<v1::VaultStatus> {
        let body = v1::VaultExport { sealed_root }.encode_to_vec();
        self.call(Method::POST, "/api/v1/operator/vault/import", body, true)
            .await
    }

    /// Marks a user's profile as checked by an operator (whitepaper 10.5); audited. The
    /// check also goes into the trust log as a `ProfileVerified` block signed by this
    /// operator, so it is attributable and visible to every client.
    pub async fn verify_profile(&self, user_id: &str, note: &str) -> Result<v1::UserProfile> {
        let body = v1::VerifyProfile {
            note: note.to_owned(),
        }
        .encode_to_vec();
        let profile = self.user_action(user_id, "verify", body).await?;
        if let Some(tail) = self.chain_tail(user_id).await? {
            self.append_as_operator(user_id, &tail.last, Event::ProfileVerified)
                .await?;
        }
        Ok(profile)
    }

    /// Revokes a user's current keys (a lost device reported to support); audited. The
    /// revocation also goes into the trust log as a block signed by this operator
    /// ([`Self::log_revocation`]), so that clients pinning this operator see it.
    pub async fn revoke_keys(&self, user_id: &str, reason: &str) -> Result<v1::UserProfile> {
        let body = v1::RevokeKeys {
            reason: reason.to_owned(),
        }
        .encode_to_vec();
        let profile = self.user_action(user_id, "revoke", body).await?;
        self.log_revocation(user_id).await?;
        Ok(profile)
    }

    /// Appends a `KeysRevoked` block for the user's current keys, signed as this operator.
    /// Does nothing for a user without a chain, or whose current keys are already
    /// revoked in it.
    pub async fn log_revocation(&self, user_id: &str) -> Result<()> {
        let Some(tail) = self.chain_tail(user_id).await? else {
            return Ok(());
        };
        if tail.revoked {
            return Ok(());
        }
        self.append_as_operator(
            user_id,
            &tail.last,
            Event::KeysRevoked {
                key_version: tail.key_version,
            },
        )
        .await
    }

    /// The last block of a user's chain as the server serves it, with the current key
    /// version and whether it is revoked; `None` for a user without a chain.
    async fn chain_tail(&self, user_id: &str) -> Result<Option<ChainTail>> {
        let served: v1::LogBlocks = self
            .call(
                Method::GET,
                &format!("/api/v1/log/blocks?user_id={user_id}"),
                Vec::new(),
                true,
            )
            .await?;
        let mut tail: Option<ChainTail> = None;
        for b in &served.blocks {
            let block = Block::from_bytes(&b.block)
                .map_err(|e| ClientError::Protocol(format!("trust log block: {e}")))?;
            let (mut key_version, mut revoked) = tail
                .as_ref()
                .map_or((0, false), |t| (t.key_version, t.revoked));
            match block.body.event {
                Event::UserCreated { .. } => (key_version, revoked) = (1, false),
                Event::KeysAdded { key_version: v, .. } => (key_version, revoked) = (v, false),
                Event::KeysRevoked { .. } => revoked = true,
                _ => {}
            }
            tail = Some(ChainTail {
                last: block,
                key_version,
                revoked,
            });
        }
        Ok(tail)
    }

    /// Appends `event` after `last` in the user's chain, signed as this operator.
    async fn append_as_operator(&self, user_id: &str, last: &Block, event: Event) -> Result<()> {
        let block = BlockBody {
            user_id: user_id.to_owned(),
            seq: last.body.seq + 1,
            prev: last.hash(),
            timestamp_ms: SystemClock.now_ms(),
            event,
            author: Author::Operator {
                id: self.signer.caller.user_id.clone(),
                key: self.signer.key.public(),
            },
        }
        .sign(&self.signer.key);
        let _: v1::LogBlocks = self
            .call(
                Method::POST,
                "/api/v1/log/blocks",
                v1::AppendBlock {
                    block: block.to_bytes(),
                }
                .encode_to_vec(),
                true,
            )
            .await?;
        Ok(())
    }

    /// Fetches the whole audit log and checks its hash chain.
    pub async fn audit(&self) -> Result<AuditReport> {
        let mut entries: Vec<v1::AuditEntry> = Vec::new();
        let mut head = cachet_proto::audit::GENESIS_HASH.to_vec();
        loop {
            let after = entries.last().map_or(0, |e| e.seq);
            let page: v1::AuditLog = self
                .call(
                    Method::GET,
                    &format!("/api/v1/operator/audit?after={after}&limit=1000"),
                    Vec::new(),
                    true,
                )
                .await?;
            if page.entries.is_empty() {
                return Ok(AuditReport { entries, head });
            }
            head = cachet_proto::audit::verify_entries(entries.last(), &page.entries)
                .map_err(|e| ClientError::Integrity(format!("audit log: {e}")))?;
            entries.extend(page.entries);
        }
    }
}
