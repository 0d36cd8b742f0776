//! A log server in memory, honest unless a test makes it otherwise, and users who write
//! their own blocks.
#![allow(dead_code)]

use std::collections::BTreeMap;

use cachet_crypto::{SignKeyPair, SignPublicKey};
use cachet_trust::merkle::Hash;
use cachet_trust::{
    Author, Block, BlockBody, Event, LoggedBlock, MerkleLog, SignedTreeHead, Verifier,
};

pub const OPERATOR: &str = "op:alice";

pub struct Server {
    pub log_key: SignKeyPair,
    pub log: MerkleLog,
    pub blocks: Vec<Block>,
    pub clock: i64,
}

impl Server {
    pub fn new() -> Self {
        Self {
            log_key: SignKeyPair::generate(),
            log: MerkleLog::new(),
            blocks: Vec::new(),
            clock: 1_000,
        }
    }

    /// An honest server whose log holds the creation block of the user `id`, and that
    /// user: where most tests start.
    pub fn with_user(id: &str) -> (Self, User) {
        let mut server = Self::new();
        let (user, created) = User::create(id);
        server.append(created);
        (server, user)
    }

    pub fn append(&mut self, block: Block) -> u64 {
        self.blocks.push(block.clone());
        self.log.append(&block.to_bytes())
    }

    pub fn head(&mut self) -> SignedTreeHead {
        self.clock += 1;
        SignedTreeHead::sign(self.log.size(), self.log.root(), self.clock, &self.log_key)
    }

    pub fn head_at(&mut self, size: u64) -> SignedTreeHead {
        self.clock += 1;
        SignedTreeHead::sign(
            size,
            self.log.root_at(size).unwrap(),
            self.clock,
            &self.log_key,
        )
    }

    pub fn consistency(&self, old: u64, new: u64) -> Vec<Hash> {
        self.log.consistency_proof(old, new).unwrap()
    }

    /// The user's blocks with proofs under the tree of `size` blocks.
    pub fn chain_at(&self, user_id: &str, size: u64) -> Vec<LoggedBlock> {
        self.blocks[..size as usize]
            .iter()
            .enumerate()
            .filter(|(_, b)| b.body.user_id == user_id)
            .map(|(i, b)| LoggedBlock {
                index: i as u64,
                block: b.clone(),
                proof: self.log.inclusion_proof(i as u64, size).unwrap(),
            })
            .collect()
    }

    pub fn chain(&self, user_id: &str) -> Vec<LoggedBlock> {
        self.chain_at(user_id, self.log.size())
    }

    /// A fresh client of this server, holding the current head.
    pub fn client(&mut self, operators: &BTreeMap<String, SignPublicKey>) -> Verifier {
        let mut v = Verifier::new(self.log_key.public(), operators.clone());
        let head = self.head();
        v.update_head(&head, &[]).unwrap();
        v
    }

    /// Brings a client's head up to date, honestly.
    pub fn sync(&mut self, client: &mut Verifier) {
        let old = client.head().map_or(0, |h| h.size);
        let head = self.head();
        client
            .update_head(&head, &self.consistency(old, head.size))
            .unwrap();
    }
}

pub struct User {
    pub id: String,
    pub sign: SignKeyPair,
    pub box_key: [u8; 32],
    pub version: u32,
    pub seq: u64,
    pub last: Hash,
    pub recovery: Option<SignKeyPair>,
}

impl User {
    fn body(&self, event: Event, author: Author) -> BlockBody {
        BlockBody {
            user_id: self.id.clone(),
            seq: self.seq,
            prev: self.last,
            timestamp_ms: 1,
            event,
            author,
        }
    }

    fn next(&mut self, block: &Block) {
        self.seq += 1;
        self.last = block.hash();
    }

    /// The next block of the chain: `event` by `author`, signed by `signer`.
    fn append(&mut self, event: Event, author: Author, signer: &SignKeyPair) -> Block {
        let block = self.body(event, author).sign(signer);
        self.next(&block);
        block
    }

    /// The next block, by the user's current Sign Key.
    fn append_own(&mut self, event: Event) -> Block {
        let sign = self.sign.clone();
        self.append(event, Author::Key(sign.public()), &sign)
    }

    /// The next block, by an operator.
    fn append_by_operator(&mut self, event: Event, id: &str, operator: &SignKeyPair) -> Block {
        let author = Author::Operator {
            id: id.to_owned(),
            key: operator.public(),
        };
        self.append(event, author, operator)
    }

    /// New keys (`new` and a fresh Box Key), the block signed by `signer`.
    fn add_keys(&mut self, new: SignKeyPair, signer: &SignKeyPair) -> Block {
        let box_key = rand_key();
        let event = Event::KeysAdded {
            key_version: self.version + 1,
            box_key,
            sign_key: *new.public().as_bytes(),
        };
        let block = self.append(event, Author::Key(signer.public()), signer);
        self.sign = new;
        self.box_key = box_key;
        self.version += 1;
        block
    }

    /// Registration: a self-signed creation block.
    pub fn create(id: &str) -> (Self, Block) {
        let mut user = Self {
            id: id.to_owned(),
            box_key: rand_key(),
            sign: SignKeyPair::generate(),
            version: 1,
            seq: 0,
            last: [0; 32],
            recovery: None,
        };
        let block = user.append_own(Event::UserCreated {
            box_key: user.box_key,
            sign_key: *user.sign.public().as_bytes(),
        });
        (user, block)
    }

    /// A new installation whose keys the old Sign Key signs.
    pub fn new_installation(&mut self) -> Block {
        let old = self.sign.clone();
        self.add_keys(SignKeyPair::generate(), &old)
    }

    /// A device lost with its keys: the new keys sign themselves.
    pub fn lost_device(&mut self) -> Block {
        let new = SignKeyPair::generate();
        let signer = new.clone();
        self.add_keys(new, &signer)
    }

    pub fn set_recovery(&mut self) -> Block {
        let recovery = SignKeyPair::generate();
        let block = self.append_own(Event::RecoveryKeySet {
            recovery_key: *recovery.public().as_bytes(),
        });
        self.recovery = Some(recovery);
        block
    }

    /// Keys restored with the recovery key after the device was lost.
    pub fn recover(&mut self) -> Block {
        let recovery = self.recovery.as_ref().unwrap().clone();
        self.add_keys(SignKeyPair::generate(), &recovery)
    }

    pub fn revoke_self(&mut self) -> Block {
        self.append_own(Event::KeysRevoked {
            key_version: self.version,
        })
    }

    pub fn revoke_by_operator(&mut self, id: &str, operator: &SignKeyPair) -> Block {
        let event = Event::KeysRevoked {
            key_version: self.version,
        };
        self.append_by_operator(event, id, operator)
    }

    pub fn verified_by_operator(&mut self, id: &str, operator: &SignKeyPair) -> Block {
        self.append_by_operator(Event::ProfileVerified, id, operator)
    }

    pub fn joined_case(&mut self, case: &str, member: &str) -> Block {
        self.append_own(Event::MembershipChanged {
            scope: cachet_trust::Scope::Case,
            id: case.to_owned(),
            member_id: member.to_owned(),
            added: true,
        })
    }
}

/// Asserts that `result` failed with an error matching the pattern (and names `context`
/// in the failure message, when given).
macro_rules! assert_refused {
    ($result:expr, $pattern:pat $(if $guard:expr)?) => {{
        let err = $result.unwrap_err();
        assert!(matches!(&err, $pattern $(if $guard)?), "{err}");
    }};
    ($result:expr, $pattern:pat $(if $guard:expr)?, $context:expr) => {{
        let err = $result.unwrap_err();
        assert!(matches!(&err, $pattern $(if $guard)?), "{}: {err}", $context);
    }};
}

pub fn rand_key() -> [u8; 32] {
    cachet_crypto::random_bytes()
}

pub fn operators(op: &SignKeyPair) -> BTreeMap<String, SignPublicKey> {
    BTreeMap::from([(OPERATOR.to_owned(), op.public())])
}
