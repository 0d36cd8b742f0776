//! The client side of the trust chain (`docs/trust-chain.md`).
//!
//! * After registering, the installation appends the block of its keys to the server's log
//!   ([`Client::publish_keys`]): `UserCreated` for a new account, `KeysAdded` signed by the
//!   previous Sign Key when the old keys came along (also after password recovery, which
//!   recovers them), or self-signed when they were lost.
//! * Before encrypting to a contact, the client checks the contact's chain against a
//!   signed tree head that extends the last head it accepted from that server (kept in the
//!   local database, with the log key pinned on first use), and that the keys it is about
//!   to use are the chain's current keys. A verified chain is cached with the keys it
//!   vouched for, so a steady conversation costs no request; the chain is fetched again
//!   when the directory's keys change or, on a refresh, when the head moved.
//! * `cachet audit` ([`Client::audit_log`], [`Client::compare_heads`]) checks a head by hand
//!   and compares heads two clients saw.

use cachet_crypto::SignPublicKey;
use cachet_trust::sth::check_heads;
use cachet_trust::verifier::judge;
use cachet_trust::{
    Author, Block, BlockBody, ChangeVerdict, Event, LoggedBlock, Scope, SignedTreeHead, TrustError,
    UserChain, Verifier,
};
use rusqlite::{params, OptionalExtension};

use crate::error::{ClientError, Result};
use crate::state::{Client, Contact, Session};
use crate::trust::TrustState;

/// Local meta key: the key version whose block is known to be in the log.
const META_PUBLISHED: &str = "trust.published_version";

/// Blocks per page when downloading the whole log.
const AUDIT_PAGE: u32 = 1000;

/// Wraps a trust error with what was being checked.
fn refused(context: impl Into<String>) -> impl FnOnce(TrustError) -> ClientError {
    let context = context.into();
    move |source| ClientError::TrustLog { context, source }
}

fn hashes(raw: &[Vec<u8>]) -> Result<Vec<[u8; 32]>> {
    raw.iter()
        .map(|h| {
            <[u8; 32]>::try_from(h.as_slice())
                .map_err(|_| ClientError::Protocol("a proof hash is not 32 bytes".into()))
        })
        .collect()
}

/// Parses a head as `cachet audit --export` writes it: the 113 bytes in hex.
pub fn parse_head(text: &str) -> Result<SignedTreeHead> {
    let bytes = hex::decode(text.trim())
        .map_err(|_| ClientError::InvalidInput("a tree head file holds one hex line".into()))?;
    SignedTreeHead::from_bytes(&bytes).map_err(refused("the tree head file"))
}

/// Formats a head for a file (`cachet audit --export`).
pub fn format_head(head: &SignedTreeHead) -> String {
    format!("{}\n", hex::encode(head.to_bytes()))
}

/// What [`Client::audit_log`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogAudit {
    /// The server audited.
    pub server: String,
    /// The pinned log key, hex.
    pub log_key: String,
    /// Whether the log key was pinned by this audit (trust on first use).
    pub pinned_now: bool,
    /// Size of the head held before, if any.
    pub previous_size: Option<u64>,
    /// Size of the head accepted now.
    pub size: u64,
    /// Its root, hex.
    pub root: String,
    /// The server's timestamp on it, ms since the epoch.
    pub timestamp_ms: i64,
    /// With `full`: the number of chains replayed from the whole log.
    pub chains_replayed: Option<usize>,
}

/// A chain as cached in the local database.
struct CachedChain {
    blocks: Vec<Block>,
    head_size: u64,
    /// The (box, sign) keys the chain vouched for when it was checked.
    keys: Option<([u8; 32], [u8; 32])>,
}

/// A `trust_chains` row: blocks (JSON), head size, box key, sign key.
type CachedRow = (String, u64, Option<Vec<u8>>, Option<Vec<u8>>);

fn key32(bytes: Option<Vec<u8>>) -> Option<[u8; 32]> {
    bytes.and_then(|b| b.try_into().ok())
}

impl Client {
    fn log_server(&self) -> String {
        self.api.server_url().to_owned()
    }

    /// The pinned log key and the last head accepted from this server, if any.
    fn stored_verifier(&self, s: &Session) -> Result<Option<Verifier>> {
        let row: Option<(Vec<u8>, Option<Vec<u8>>)> = s
            .db()
            .conn
            .query_row(
                "SELECT log_key, head FROM trust_heads WHERE server = ?1",
                [self.log_server()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((key, head)) = row else {
            return Ok(None);
        };
        let key = SignPublicKey::from_slice(&key)
            .map_err(|_| ClientError::CorruptProfile("the pinned trust log key".into()))?;
        let mut v = Verifier::new(key, self.options.operators.clone());
        if let Some(head) = head {
            let head = SignedTreeHead::from_bytes(&head).map_err(refused("the saved tree head"))?;
            v.restore_head(head)
                .map_err(refused("the saved tree head"))?;
        }
        Ok(Some(v))
    }

    /// The last head accepted from this server.
    pub fn saved_head(&self) -> Result<Option<SignedTreeHead>> {
        let s = self.session()?;
        Ok(self.stored_verifier(&s)?.and_then(|v| v.head().copied()))
    }

    /// Fetches the server's head and accepts it only if it is signed by the pinned log key
    /// and extends the head held; saves it. The first head pins the log key. Returns the
    /// verifier and whether the key was pinned now.
    async fn sync_head(&self, s: &Session) -> Result<(Verifier, bool)> {
        let signer = self.signer(s);
        let served = self.api.log_head(&signer).await?;
        let server = self.log_server();
        let sth = SignedTreeHead::from_bytes(&served.sth)
            .map_err(refused(format!("the tree head of {server}")))?;
        let (mut v, pinned_now) = match self.stored_verifier(s)? {
            Some(v) => (v, false),
            None => {
                // Trust on first use: the first log key this profile sees is pinned.
                let key = SignPublicKey::from_slice(&served.log_key)
                    .map_err(|_| ClientError::Protocol("the log key is not 32 bytes".into()))?;
                (Verifier::new(key, self.options.operators.clone()), true)
            }
        };
        let proof = match v.head() {
            Some(held) if held.size > 0 && held.size < sth.size => hashes(
                &self
                    .api
                    .log_consistency(&signer, held.size, sth.size)
                    .await?
                    .hashes,
            )?,
            _ => Vec::new(),
        };
        v.update_head(&sth, &proof)
            .map_err(refused(format!("the log of {server}")))?;
        // Pinned together with the first head it verified.
        s.db().conn.execute(
            "INSERT INTO trust_heads (server, log_key, head) VALUES (?1, ?2, ?3)
             ON CONFLICT (server) DO UPDATE SET head = excluded.head",
            params![server, v.log_key().as_bytes().to_vec(), sth.to_bytes()],
        )?;
        Ok((v, pinned_now))
    }

    fn stored_chain(&self, s: &Session, user_id: &str) -> Result<Option<CachedChain>> {
        let row: Option<CachedRow> = s
            .db()
            .conn
            .query_row(
                "SELECT blocks, head_size, box_key, sign_key FROM trust_chains
                 WHERE server = ?1 AND user_id = ?2",
                params![self.log_server(), user_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((blocks, head_size, box_key, sign_key)) = row else {
            return Ok(None);
        };
        let encoded: Vec<String> = serde_json::from_str(&blocks)
            .map_err(|_| ClientError::CorruptProfile("a cached trust chain".into()))?;
        let blocks = encoded
            .iter()
            .map(|h| {
                hex::decode(h)
                    .ok()
                    .and_then(|b| Block::from_bytes(&b).ok())
                    .ok_or_else(|| ClientError::CorruptProfile("a cached trust chain".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(CachedChain {
            blocks,
            head_size,
            keys: key32(box_key).zip(key32(sign_key)),
        }))
    }

    fn store_chain(
        &self,
        s: &Session,
        user_id: &str,
        blocks: &[Block],
        head_size: u64,
        keys: Option<([u8; 32], [u8; 32])>,
    ) -> Result<()> {
        let encoded: Vec<String> = blocks.iter().map(|b| hex::encode(b.to_bytes())).collect();
        let json = serde_json::to_string(&encoded)
            .map_err(|e| ClientError::Database(format!("trust chain: {e}")))?;
        s.db().conn.execute(
            "INSERT INTO trust_chains (server, user_id, blocks, head_size, box_key, sign_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (server, user_id) DO UPDATE SET blocks = excluded.blocks,
             head_size = excluded.head_size, box_key = excluded.box_key,
             sign_key = excluded.sign_key",
            params![
                self.log_server(),
                user_id,
                json,
                head_size,
                keys.map(|k| k.0.to_vec()),
                keys.map(|k| k.1.to_vec())
            ],
        )?;
        Ok(())
    }

    /// Before encrypting to `contact`'s current keys: are they the current, unrevoked keys
    /// of the contact's chain, in a log that extends everything this client saw? Without
    /// `force`, a chain already checked for exactly these keys is trusted without a
    /// request; with it, the head is fetched and the chain again if the head moved.
    ///
    /// A verified contact whose chain shows a change their verified key did not authorise
    /// (or an operator revocation) becomes KEY CHANGED.
    pub(crate) async fn check_contact_keys(
        &self,
        s: &Session,
        contact: &Contact,
        force: bool,
    ) -> Result<()> {
        let result = self.check_contact_keys_once(s, contact, force).await;
        if let Err(ClientError::TrustLog { .. }) = &result {
            // Refused keys are not vouched for any more, whatever was cached.
            s.db().conn.execute(
                "UPDATE trust_chains SET box_key = NULL, sign_key = NULL
                 WHERE server = ?1 AND user_id = ?2",
                params![self.log_server(), contact.user_id],
            )?;
        }
        result
    }

    async fn check_contact_keys_once(
        &self,
        s: &Session,
        contact: &Contact,
        force: bool,
    ) -> Result<()> {
        let user_id = &contact.user_id;
        let keys = (*contact.box_key.as_bytes(), *contact.sign_key.as_bytes());
        let cached = self.stored_chain(s, user_id)?;
        let same_keys = cached.as_ref().is_some_and(|c| c.keys == Some(keys));
        if same_keys && !force {
            return Ok(());
        }
        let (mut v, _) = self.sync_head(s).await?;
        let head = *v
            .head()
            .ok_or_else(|| ClientError::Protocol("no tree head after fetching the head".into()))?;
        let context = format!("{} ({user_id})", contact.alias);
        if let Some(c) = &cached {
            if same_keys && c.head_size == head.size {
                return Ok(());
            }
            v.restore_chain(user_id, &c.blocks)
                .map_err(refused(format!("the cached chain of {context}")))?;
        }
        let served = self
            .api
            .log_chain(&self.signer(s), user_id, head.size)
            .await?;
        if served.size != head.size {
            return Err(ClientError::Protocol(format!(
                "the log served proofs for {} blocks instead of {}",
                served.size, head.size
            )));
        }
        let mut entries = Vec::with_capacity(served.blocks.len());
        for b in &served.blocks {
            entries.push(LoggedBlock {
                index: b.index,
                block: Block::from_bytes(&b.block).map_err(refused(context.clone()))?,
                proof: hashes(&b.proof)?,
            });
        }
        if entries.is_empty() {
            // The directory serves keys the log holds no block for: the server's own
            // rule is broken (or a chain seen before has vanished).
            return Err(refused(context)(match &cached {
                Some(c) => TrustError::ChainRollback {
                    user_id: user_id.clone(),
                    seen: c.blocks.len() as u64,
                    offered: 0,
                },
                None => TrustError::KeyNotInLog {
                    user_id: user_id.clone(),
                },
            }));
        }
        let chain = v
            .verify_chain(user_id, &entries)
            .map_err(refused(context.clone()))?
            .clone();
        let key_check = v
            .check_key(user_id, &contact.sign_key, contact.box_key.as_bytes())
            .map(|_| ());
        // The chain is sound whatever the keys: remember it, so a later one must extend it.
        let blocks: Vec<Block> = entries.into_iter().map(|e| e.block).collect();
        self.store_chain(
            s,
            user_id,
            &blocks,
            head.size,
            key_check.is_ok().then_some(keys),
        )?;
        key_check.map_err(refused(context))?;
        self.apply_chain_verdict(s, user_id, &chain)?;
        Ok(())
    }

    /// Applies the chain's verdict on a verified contact's change of keys.
    fn apply_chain_verdict(&self, s: &Session, user_id: &str, chain: &UserChain) -> Result<()> {
        let Some(contact) = self.contact(user_id)? else {
            return Ok(());
        };
        if !matches!(contact.trust, TrustState::Verified { .. }) {
            return Ok(());
        }
        let db = s.db();
        let verified: Option<Vec<u8>> = db.conn.query_row(
            "SELECT verified_sign_key FROM contacts WHERE user_id = ?1",
            [user_id],
            |r| r.get(0),
        )?;
        let Some(verified) = verified.and_then(|k| SignPublicKey::from_slice(&k).ok()) else {
            return Ok(());
        };
        match judge(chain, &verified) {
            ChangeVerdict::Unchanged => {}
            ChangeVerdict::KeepVerified { note } => {
                db.conn.execute(
                    "UPDATE contacts SET verified_box_key = box_key, verified_sign_key = sign_key,
                     trust_note = ?2 WHERE user_id = ?1",
                    params![user_id, note],
                )?;
            }
            ChangeVerdict::Unverify { note } => {
                db.conn.execute(
                    "UPDATE contacts SET trust = 'changed', trust_note = ?2, trust_changed_at = ?3
                     WHERE user_id = ?1",
                    params![user_id, format!("trust log: {note}"), self.now_ms()],
                )?;
            }
        }
        Ok(())
    }

    /// Appends the block of this installation's keys to the trust log, if the user's
    /// chain does not hold them yet (so it can be retried after a failure): `UserCreated`
    /// for a new account; `KeysAdded` signed by the chain's current Sign Key when this
    /// installation holds it (carried over, or recovered with the password), self-signed
    /// otherwise. Contacts refuse keys that are not in the log.
    pub async fn publish_keys(&self) -> Result<()> {
        let s = self.session()?;
        let me = self.profile.user_id.clone();
        let chain = self.own_chain(&s).await?;
        let current = s.ring.current();
        let box_key = *current.box_keys.public.as_bytes();
        let sign_key = current.sign_keys.public();
        let published = current.key_version.to_string();
        if chain
            .generations
            .iter()
            .any(|g| g.sign_key == sign_key && g.box_key == box_key)
        {
            s.db().set_meta(META_PUBLISHED, &published)?;
            return Ok(());
        }
        let last_version = chain.generations.last().map_or(0, |g| g.version);
        if current.key_version != last_version + 1 {
            return Err(ClientError::Protocol(format!(
                "cannot log keys version {}: your chain in the trust log ends at version {last_version}",
                current.key_version
            )));
        }
        let (event, author) = if chain.is_empty() {
            (
                Event::UserCreated {
                    box_key,
                    sign_key: *sign_key.as_bytes(),
                },
                &current.sign_keys,
            )
        } else {
            let previous = chain.current().and_then(|g| {
                s.ring
                    .installations
                    .iter()
                    .find(|i| i.sign_keys.public() == g.sign_key)
            });
            (
                Event::KeysAdded {
                    key_version: current.key_version,
                    box_key,
                    sign_key: *sign_key.as_bytes(),
                },
                previous.map_or(&current.sign_keys, |i| &i.sign_keys),
            )
        };
        let block = BlockBody {
            user_id: me,
            seq: chain.len(),
            prev: chain.block_hashes.last().copied().unwrap_or([0u8; 32]),
            timestamp_ms: self.now_ms(),
            event,
            author: Author::Key(author.public()),
        }
        .sign(author);
        self.api
            .log_append(&self.signer(&s), block.to_bytes())
            .await?;
        s.db().set_meta(META_PUBLISHED, &published)?;
        Ok(())
    }

    /// Publishes this installation's key block if it is not known to be in the log (a
    /// registration whose second step failed): one local read otherwise.
    pub(crate) async fn ensure_published(&self, s: &Session) -> Result<()> {
        let current = s.ring.current().key_version.to_string();
        if s.db().meta(META_PUBLISHED)?.as_deref() == Some(current.as_str()) {
            return Ok(());
        }
        self.publish_keys().await
    }

    /// The user's own chain, checked like a contact's against a fresh head (empty before
    /// the first block).
    async fn own_chain(&self, s: &Session) -> Result<UserChain> {
        let me = &self.profile.user_id;
        let (mut v, _) = self.sync_head(s).await?;
        let size = v.head().map_or(0, |h| h.size);
        let served = self.api.log_chain(&self.signer(s), me, size).await?;
        let mut entries = Vec::with_capacity(served.blocks.len());
        for b in &served.blocks {
            entries.push(LoggedBlock {
                index: b.index,
                block: Block::from_bytes(&b.block).map_err(refused("your own chain"))?,
                proof: hashes(&b.proof)?,
            });
        }
        if entries.is_empty() {
            return Ok(UserChain::new(me));
        }
        Ok(v.verify_chain(me, &entries)
            .map_err(refused("your own chain"))?
            .clone())
    }

    /// Records in the user's chain that they added (or removed) `members` of a group or
    /// case: one `MembershipChanged` block each, signed by the current Sign Key.
    pub(crate) async fn log_membership(
        &self,
        s: &Session,
        scope: Scope,
        id: &str,
        members: &[String],
        added: bool,
    ) -> Result<()> {
        let members: Vec<&String> = members
            .iter()
            .filter(|m| **m != self.profile.user_id)
            .collect();
        if members.is_empty() {
            return Ok(());
        }
        let chain = self.own_chain(s).await?;
        let key = &s.ring.current().sign_keys;
        if chain.current().map(|g| g.sign_key) != Some(key.public()) {
            return Err(ClientError::Protocol(
                "this installation's keys are not the current keys of your chain in the trust log"
                    .into(),
            ));
        }
        let mut prev = chain.block_hashes.last().copied().unwrap_or([0u8; 32]);
        for (seq, member) in (chain.len()..).zip(members) {
            let block = BlockBody {
                user_id: self.profile.user_id.clone(),
                seq,
                prev,
                timestamp_ms: self.now_ms(),
                event: Event::MembershipChanged {
                    scope,
                    id: id.to_owned(),
                    member_id: member.clone(),
                    added,
                },
                author: Author::Key(key.public()),
            }
            .sign(key);
            self.api
                .log_append(&self.signer(s), block.to_bytes())
                .await?;
            prev = block.hash();
        }
        Ok(())
    }

    /// `cachet audit`: fetches the server's head, checks it is signed by the pinned log key
    /// (pinning it on first use) and extends the head saved before, and saves it. With
    /// `full`, downloads the whole log and replays every chain under that head.
    pub async fn audit_log(&self, full: bool) -> Result<LogAudit> {
        let s = self.session()?;
        let previous_size = self
            .stored_verifier(&s)?
            .and_then(|v| v.head().map(|h| h.size));
        let (v, pinned_now) = self.sync_head(&s).await?;
        let head = *v
            .head()
            .ok_or_else(|| ClientError::Protocol("no tree head".into()))?;
        let chains_replayed = if full {
            let signer = self.signer(&s);
            let mut blocks = Vec::new();
            while (blocks.len() as u64) < head.size {
                let page = self
                    .api
                    .log_page(&signer, blocks.len() as u64, AUDIT_PAGE, head.size)
                    .await?;
                if page.blocks.is_empty() {
                    return Err(ClientError::Protocol(
                        "the log ended before its head's size".into(),
                    ));
                }
                for b in page.blocks {
                    if b.index != blocks.len() as u64 {
                        return Err(ClientError::Protocol("the log skipped a block".into()));
                    }
                    blocks.push(Block::from_bytes(&b.block).map_err(refused("the whole log"))?);
                }
            }
            let chains =
                cachet_trust::audit_log(&blocks, &head, v.log_key(), &self.options.operators)
                    .map_err(refused("the whole log"))?;
            Some(chains.len())
        } else {
            None
        };
        Ok(LogAudit {
            server: self.log_server(),
            log_key: hex::encode(v.log_key().as_bytes()),
            pinned_now,
            previous_size,
            size: head.size,
            root: hex::encode(head.root),
            timestamp_ms: head.timestamp_ms,
            chains_replayed,
        })
    }

    /// Checks that two heads of this server (e.g. the ones two clients saved) are both
    /// signed by the pinned log key and that one extends the other, with a consistency
    /// proof from the server. A failure is the server's signed proof of a fork.
    pub async fn compare_heads(&self, a: &SignedTreeHead, b: &SignedTreeHead) -> Result<()> {
        let s = self.session()?;
        let v = match self.stored_verifier(&s)? {
            Some(v) => v,
            None => self.sync_head(&s).await?.0,
        };
        let (old, new) = if a.size <= b.size { (a, b) } else { (b, a) };
        let proof = if old.size > 0 && old.size < new.size {
            match self
                .api
                .log_consistency(&self.signer(&s), old.size, new.size)
                .await
            {
                Ok(p) => hashes(&p.hashes)?,
                // A server that cannot prove it has no proof to give: the check fails.
                Err(ClientError::Server { .. }) => Vec::new(),
                Err(e) => return Err(e),
            }
        } else {
            Vec::new()
        };
        check_heads(a, b, &proof, v.log_key()).map_err(refused("the two tree heads"))
    }
}
