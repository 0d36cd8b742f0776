//! Messages (whitepaper 2.1.4, 8.1, 8.2): text, typing events and read receipts with
//! `crypto_box`, group messages sealed separately for each member (8.2.1), and the
//! receive loop with acks, ordering, de-duplication, contact updates (5.2) and the
//! fall-back through older keys (5.3).

use std::collections::BTreeMap;

use cachet_crypto::{BoxPublicKey, Nonce};
use cachet_proto::v1::{self, payload::Body, Envelope, Payload, RecipientCiphertext};
use cachet_proto::Message;
use rusqlite::{params, OptionalExtension};

use crate::error::{ClientError, Result};
use crate::state::{Client, KeyChangeReport, Session};

/// Where a message belongs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Conversation {
    /// A 1:1 conversation with a contact (their user id).
    Direct(String),
    /// A group (its id).
    Group(String),
    /// A patient case (its id).
    Case(String),
}

impl Conversation {
    pub(crate) fn key(&self) -> String {
        match self {
            Self::Direct(id) => format!("direct:{id}"),
            Self::Group(id) => format!("group:{id}"),
            Self::Case(id) => format!("case:{id}"),
        }
    }

    pub(crate) fn parse(key: &str) -> Option<Self> {
        let (kind, id) = key.split_once(':')?;
        match kind {
            "direct" => Some(Self::Direct(id.into())),
            "group" => Some(Self::Group(id.into())),
            "case" => Some(Self::Case(id.into())),
            _ => None,
        }
    }
}

/// What a stored message holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Text.
    Text,
    /// An attachment pointer; the body is the file name.
    Attachment,
    /// A message that could not be decrypted; the body says why.
    Undecryptable,
    /// A notice of this installation in the conversation (a contact's keys changed); the
    /// body says what happened. Never sent, never unread.
    Notice,
}

/// A message in the local store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredMessage {
    /// Local sequence number (order of arrival).
    pub local_id: i64,
    /// Where it belongs.
    pub conversation: Conversation,
    /// The sender's message id.
    pub message_id: String,
    /// The author's user id.
    pub sender_id: String,
    /// Whether the user sent it.
    pub outgoing: bool,
    /// What it holds.
    pub kind: MessageKind,
    /// The text, or the attachment's file name.
    pub body: String,
    /// The attachment id, for attachments.
    pub attachment_id: Option<String>,
    /// The sender's clock, ms since the epoch.
    pub timestamp: i64,
    /// When this installation stored it.
    pub received_at: i64,
    /// For incoming messages: when the user read it. For outgoing 1:1 messages: when the
    /// recipient's read receipt arrived.
    pub read_at: Option<i64>,
}

/// Something that arrived while receiving.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A new message (text, attachment or case message).
    Message(StoredMessage),
    /// A contact started or stopped typing.
    Typing {
        /// Who.
        from: String,
        /// In which group, if any.
        group_id: Option<String>,
        /// Typing or not.
        typing: bool,
    },
    /// A contact read messages of the user.
    ReadReceipt {
        /// Who read.
        from: String,
        /// Which messages.
        message_ids: Vec<String>,
        /// When, by their clock.
        read_at: i64,
    },
    /// A contact's keys changed (a reinstallation or a revocation, or a substitution).
    KeyChanged(KeyChangeReport),
    /// The user was added to a group, or its members changed.
    Group {
        /// The group.
        group_id: String,
        /// Its name.
        name: String,
        /// Its members.
        members: Vec<String>,
    },
    /// A message that could not be opened (shown so nothing disappears silently).
    Undecryptable {
        /// The claimed sender.
        sender_id: String,
        /// Its id.
        message_id: String,
        /// Why.
        reason: String,
    },
}

pub(crate) fn new_message_id() -> String {
    hex::encode(cachet_crypto::random_bytes::<16>())
}

/// Random-length padding so ciphertext sizes say less about the content.
fn padding() -> Vec<u8> {
    let n = usize::from(cachet_crypto::random_bytes::<1>()[0] % 64);
    vec![0u8; n]
}

const RECEIVE_PAGE: u32 = 200;

impl Client {
    pub(crate) fn payload(
        &self,
        message_id: &str,
        timestamp: i64,
        group_id: &str,
        body: Body,
    ) -> Payload {
        Payload {
            message_id: message_id.to_owned(),
            sender_id: self.profile.user_id.clone(),
            timestamp,
            group_id: group_id.to_owned(),
            body: Some(body),
            padding: padding(),
        }
    }

    /// Seals one payload for each recipient with `crypto_box` (cached precomputed keys)
    /// and sends it as one envelope.
    pub(crate) async fn send_payload(
        &self,
        s: &Session,
        recipients: &[String],
        group_id: &str,
        body: Body,
    ) -> Result<(String, i64)> {
        // Contacts refuse keys the log does not hold: make sure ours are in.
        self.ensure_published(s).await?;
        let message_id = new_message_id();
        let timestamp = self.now_ms();
        let payload = self
            .payload(&message_id, timestamp, group_id, body)
            .encode_to_vec();
        let me = s.ring.current();
        let mut sealed = Vec::with_capacity(recipients.len());
        for rid in recipients {
            if rid == &self.profile.user_id {
                continue;
            }
            let contact = self.checked_contact(s, rid).await?;
            // Nothing goes to keys the user verified and that changed without their
            // owner's signature (a group send names the member refused).
            self.check_may_send(&contact)?;
            let pre = self.precomputed(s, me, &contact.box_key)?;
            let (nonce, ciphertext) = pre.seal(&payload);
            sealed.push(RecipientCiphertext {
                recipient_id: rid.clone(),
                nonce: nonce.as_bytes().to_vec(),
                ciphertext,
                sender_box_key: me.box_keys.public.as_bytes().to_vec(),
                recipient_box_key: contact.box_key.as_bytes().to_vec(),
            });
        }
        if sealed.is_empty() {
            return Err(ClientError::InvalidInput("no recipient".into()));
        }
        let envelope = Envelope {
            version: cachet_proto::ENVELOPE_VERSION,
            message_id: message_id.clone(),
            timestamp,
            group_id: group_id.to_owned(),
            recipients: sealed,
            ..Default::default()
        };
        self.api.send_envelope(&self.signer(s), &envelope).await?;
        Ok((message_id, timestamp))
    }

    #[allow(clippy::too_many_arguments)] // one column each; crate-private
    pub(crate) fn store_message(
        &self,
        s: &Session,
        conversation: &Conversation,
        message_id: &str,
        sender_id: &str,
        kind: MessageKind,
        body: &str,
        attachment_id: Option<&str>,
        timestamp: i64,
    ) -> Result<Option<StoredMessage>> {
        let outgoing = sender_id == self.profile.user_id;
        let now = self.now_ms();
        let db = s.db();
        let inserted = db.conn.execute(
            "INSERT OR IGNORE INTO messages (conversation, message_id, sender_id, outgoing, kind,
             body, attachment_id, timestamp, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                conversation.key(),
                message_id,
                sender_id,
                outgoing,
                kind_column(kind),
                body,
                attachment_id,
                timestamp,
                now
            ],
        )?;
        if inserted == 0 {
            return Ok(None);
        }
        Ok(Some(StoredMessage {
            local_id: db.conn.last_insert_rowid(),
            conversation: conversation.clone(),
            message_id: message_id.to_owned(),
            sender_id: sender_id.to_owned(),
            outgoing,
            kind,
            body: body.to_owned(),
            attachment_id: attachment_id.map(str::to_owned),
            timestamp,
            received_at: now,
            read_at: None,
        }))
    }

    /// Sends a text message to a contact (user id). Returns the stored message.
    pub async fn send_text(&self, user_id: &str, text: &str) -> Result<StoredMessage> {
        let s = self.session()?;
        let contact = self.ensure_contact(user_id).await?;
        let conversation = Conversation::Direct(contact.user_id.clone());
        self.send_text_in(&s, &conversation, &[contact.user_id], "", text)
            .await
    }

    /// Seals a text to `recipients` (with the group id, if any), sends it, and stores it
    /// in `conversation`.
    pub(crate) async fn send_text_in(
        &self,
        s: &Session,
        conversation: &Conversation,
        recipients: &[String],
        group_id: &str,
        text: &str,
    ) -> Result<StoredMessage> {
        let body = Body::Text(v1::Text {
            body: text.to_owned(),
        });
        let (message_id, ts) = self.send_payload(s, recipients, group_id, body).await?;
        self.store_message(
            s,
            conversation,
            &message_id,
            &self.profile.user_id,
            MessageKind::Text,
            text,
            None,
            ts,
        )?
        .ok_or_else(|| ClientError::Database("message id collision".into()))
    }

    /// Tells a contact, or every member of a group, that the user is (or stopped) typing.
    pub async fn send_typing(&self, conversation: &Conversation, typing: bool) -> Result<()> {
        let s = self.session()?;
        let (recipients, group_id) = match conversation {
            Conversation::Direct(id) => (vec![id.clone()], String::new()),
            Conversation::Group(id) => (self.group_members(&s, id)?, id.clone()),
            Conversation::Case(_) => {
                return Err(ClientError::InvalidInput(
                    "typing events are not sent in patient cases".into(),
                ))
            }
        };
        self.send_payload(
            &s,
            &recipients,
            &group_id,
            Body::Typing(v1::TypingEvent { typing }),
        )
        .await?;
        Ok(())
    }

    /// Marks every unread incoming message of a conversation read, and sends read
    /// receipts to their senders (1:1 and groups). Returns how many were marked.
    pub async fn mark_read(&self, conversation: &Conversation) -> Result<usize> {
        let s = self.session()?;
        let now = self.now_ms();
        let unread: Vec<(String, String)> = {
            let db = s.db();
            let mut stmt = db.conn.prepare(
                "SELECT sender_id, message_id FROM messages WHERE conversation = ?1
                 AND outgoing = 0 AND read_at IS NULL AND kind NOT IN ('undecryptable', 'notice')
                 ORDER BY local_id",
            )?;
            let rows = stmt.query_map([conversation.key()], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if unread.is_empty() {
            return Ok(0);
        }
        let mut by_sender: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (sender, id) in &unread {
            by_sender
                .entry(sender.clone())
                .or_default()
                .push(id.clone());
        }
        let group_id = match conversation {
            Conversation::Group(g) => g.clone(),
            _ => String::new(),
        };
        if !matches!(conversation, Conversation::Case(_)) {
            for (sender, ids) in by_sender {
                // No receipt goes to keys that changed after verification; the messages
                // are marked read here all the same.
                if self
                    .contact(&sender)?
                    .is_some_and(|c| matches!(c.trust, crate::TrustState::KeyChanged { .. }))
                {
                    continue;
                }
                self.send_payload(
                    &s,
                    &[sender],
                    &group_id,
                    Body::ReadReceipt(v1::ReadReceipt {
                        message_ids: ids,
                        read_at: now,
                    }),
                )
                .await?;
            }
        }
        let db = s.db();
        db.conn.execute(
            "UPDATE messages SET read_at = ?2 WHERE conversation = ?1 AND outgoing = 0 AND read_at IS NULL",
            params![conversation.key(), now],
        )?;
        Ok(unread.len())
    }

    /// Messages of a conversation, oldest first (at most `limit`, the most recent ones).
    pub fn messages(
        &self,
        conversation: &Conversation,
        limit: usize,
    ) -> Result<Vec<StoredMessage>> {
        let s = self.session()?;
        let db = s.db();
        let mut stmt = db.conn.prepare(&format!(
            "SELECT * FROM ({MESSAGE_SELECT} WHERE conversation = ?1 ORDER BY local_id DESC LIMIT ?2)
             ORDER BY local_id"
        ))?;
        let rows = stmt.query_map(params![conversation.key(), limit as i64], row_to_message)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Conversations with their unread count and last message, most recent first.
    pub fn conversations(&self) -> Result<Vec<(Conversation, usize, StoredMessage)>> {
        let s = self.session()?;
        let db = s.db();
        let mut stmt = db.conn.prepare(&format!(
            "{MESSAGE_SELECT} WHERE local_id IN (SELECT max(local_id) FROM messages GROUP BY conversation)
             ORDER BY local_id DESC"
        ))?;
        let last: Vec<StoredMessage> = stmt
            .query_map([], row_to_message)?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::new();
        for m in last {
            let unread: i64 = db.conn.query_row(
                "SELECT count(*) FROM messages WHERE conversation = ?1 AND outgoing = 0 AND read_at IS NULL",
                [m.conversation.key()],
                |r| r.get(0),
            )?;
            out.push((m.conversation.clone(), unread as usize, m));
        }
        Ok(out)
    }

    /// Who read an outgoing message, and when.
    pub fn read_by(&self, message_id: &str) -> Result<Vec<(String, i64)>> {
        let s = self.session()?;
        let db = s.db();
        let mut stmt = db.conn.prepare(
            "SELECT reader_id, read_at FROM receipts WHERE message_id = ?1 ORDER BY read_at",
        )?;
        let rows = stmt.query_map([message_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Receives everything waiting on the server: processes envelopes in delivery order,
    /// skips duplicates, acks what was processed. `wait_seconds` long-polls when nothing
    /// is waiting. Returns what arrived.
    pub async fn receive(&self, wait_seconds: u32) -> Result<Vec<Event>> {
        let s = self.session()?;
        let signer = self.signer(&s);
        let mut events = Vec::new();
        let mut acks = self.pending_acks(&s)?;
        let mut wait = wait_seconds;
        loop {
            let list = self
                .api
                .receive(
                    &signer,
                    &v1::Ack {
                        delivery_ids: acks.clone(),
                        wait_seconds: wait,
                        limit: RECEIVE_PAGE,
                    },
                )
                .await?;
            wait = 0;
            self.clear_acks(&s, &acks)?;
            if list.envelopes.is_empty() {
                break;
            }
            let mut envelopes = list.envelopes;
            envelopes.sort_by_key(|e| e.delivery_id);
            acks = Vec::with_capacity(envelopes.len());
            for env in envelopes {
                let delivery_id = env.delivery_id;
                events.extend(self.process_envelope(&s, env, true).await?);
                s.db().conn.execute(
                    "INSERT OR IGNORE INTO pending_acks (delivery_id) VALUES (?1)",
                    [delivery_id as i64],
                )?;
                acks.push(delivery_id);
            }
        }
        Ok(events)
    }

    fn pending_acks(&self, s: &Session) -> Result<Vec<u64>> {
        let db = s.db();
        let mut stmt = db
            .conn
            .prepare("SELECT delivery_id FROM pending_acks ORDER BY delivery_id")?;
        let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
        Ok(rows
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(|v| v as u64)
            .collect())
    }

    fn clear_acks(&self, s: &Session, acks: &[u64]) -> Result<()> {
        let db = s.db();
        for id in acks {
            db.conn.execute(
                "DELETE FROM pending_acks WHERE delivery_id = ?1",
                [*id as i64],
            )?;
        }
        Ok(())
    }

    fn already_processed(&self, s: &Session, sender: &str, message_id: &str) -> Result<bool> {
        Ok(s.db()
            .conn
            .query_row(
                "SELECT 1 FROM processed WHERE sender_id = ?1 AND message_id = ?2",
                [sender, message_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    pub(crate) fn mark_processed(&self, s: &Session, sender: &str, message_id: &str) -> Result<()> {
        s.db().conn.execute(
            "INSERT OR IGNORE INTO processed (sender_id, message_id, processed_at) VALUES (?1, ?2, ?3)",
            params![sender, message_id, self.now_ms()],
        )?;
        Ok(())
    }

    /// Processes one envelope. `from_mailbox` is false for case history pages.
    pub(crate) async fn process_envelope(
        &self,
        s: &Session,
        env: Envelope,
        from_mailbox: bool,
    ) -> Result<Vec<Event>> {
        if let Some(update) = &env.contact_update {
            let key = format!("{}:{}", update.user_id, update.key_version);
            if self.already_processed(s, "contact-update", &key)? {
                return Ok(vec![]);
            }
            let mut events = Vec::new();
            if self.contact(&update.user_id)?.is_some() {
                if let Some(report) = self.refresh_contact(&update.user_id).await? {
                    events.push(Event::KeyChanged(report));
                }
            }
            self.mark_processed(s, "contact-update", &key)?;
            return Ok(events);
        }
        if env.sender_id.is_empty()
            || cachet_proto::decode::validate_id(&env.sender_id, "sender_id").is_err()
        {
            return Ok(vec![]);
        }
        if self.already_processed(s, &env.sender_id, &env.message_id)? {
            return Ok(vec![]);
        }
        let events = if env.case_message.is_some() {
            self.process_case_envelope(s, &env).await?
        } else if from_mailbox {
            self.process_direct(s, &env).await?
        } else {
            vec![]
        };
        self.mark_processed(s, &env.sender_id, &env.message_id)?;
        Ok(events)
    }

    async fn process_direct(&self, s: &Session, env: &Envelope) -> Result<Vec<Event>> {
        let Some(rc) = env
            .recipients
            .iter()
            .find(|r| r.recipient_id == self.profile.user_id)
        else {
            return Ok(vec![]);
        };
        let payload = match self.open_direct(s, env, rc).await? {
            Ok(p) => p,
            Err(reason) => return self.undecryptable(s, env, reason),
        };
        if payload.message_id != env.message_id
            || payload.sender_id != env.sender_id
            || payload.timestamp != env.timestamp
            || payload.group_id != env.group_id
        {
            return self.undecryptable(
                s,
                env,
                "the envelope does not match the copy sealed inside it".into(),
            );
        }
        let sender = env.sender_id.as_str();
        let conversation = if env.group_id.is_empty() {
            Conversation::Direct(sender.to_owned())
        } else {
            Conversation::Group(env.group_id.clone())
        };
        let mut events = Vec::new();
        match payload.body {
            Some(Body::Text(t)) => {
                if let Conversation::Group(g) = &conversation {
                    self.ensure_group_member(s, g, sender)?;
                }
                if let Some(m) = self.store_message(
                    s,
                    &conversation,
                    &env.message_id,
                    sender,
                    MessageKind::Text,
                    &t.body,
                    None,
                    env.timestamp,
                )? {
                    events.push(Event::Message(m));
                }
            }
            Some(Body::Typing(t)) => events.push(Event::Typing {
                from: sender.to_owned(),
                group_id: (!env.group_id.is_empty()).then(|| env.group_id.clone()),
                typing: t.typing,
            }),
            Some(Body::ReadReceipt(r)) => {
                let db = s.db();
                let mut confirmed = Vec::new();
                for id in r.message_ids.iter().take(1000) {
                    // Only messages the user sent to this reader.
                    let ours = db
                        .conn
                        .query_row(
                            "SELECT conversation FROM messages WHERE message_id = ?1 AND outgoing = 1",
                            [id],
                            |row| row.get::<_, String>(0),
                        )
                        .optional()?;
                    let Some(conv) = ours.and_then(|c| Conversation::parse(&c)) else {
                        continue;
                    };
                    let allowed = match &conv {
                        Conversation::Direct(peer) => peer == sender,
                        Conversation::Group(_) => true,
                        Conversation::Case(_) => false,
                    };
                    if !allowed {
                        continue;
                    }
                    db.conn.execute(
                        "INSERT OR IGNORE INTO receipts (message_id, reader_id, read_at) VALUES (?1, ?2, ?3)",
                        params![id, sender, r.read_at],
                    )?;
                    if matches!(conv, Conversation::Direct(_)) {
                        db.conn.execute(
                            "UPDATE messages SET read_at = ?2 WHERE message_id = ?1 AND outgoing = 1 AND read_at IS NULL",
                            params![id, r.read_at],
                        )?;
                    }
                    confirmed.push(id.clone());
                }
                if !confirmed.is_empty() {
                    events.push(Event::ReadReceipt {
                        from: sender.to_owned(),
                        message_ids: confirmed,
                        read_at: r.read_at,
                    });
                }
            }
            Some(Body::Attachment(pointer)) => {
                if let Some(m) = self.store_attachment_pointer(s, &conversation, env, pointer)? {
                    events.push(Event::Message(m));
                }
            }
            Some(Body::GroupInfo(info)) => {
                if let Some(e) = self.apply_group_info(s, sender, &env.group_id, info)? {
                    events.push(e);
                }
            }
            Some(Body::CaseKeyShare(share)) => {
                self.store_case_key_share(s, sender, share)?;
            }
            None => {}
        }
        Ok(events)
    }

    fn undecryptable(&self, s: &Session, env: &Envelope, reason: String) -> Result<Vec<Event>> {
        let conversation = if env.group_id.is_empty() {
            Conversation::Direct(env.sender_id.clone())
        } else {
            Conversation::Group(env.group_id.clone())
        };
        self.store_message(
            s,
            &conversation,
            &env.message_id,
            &env.sender_id,
            MessageKind::Undecryptable,
            &reason,
            None,
            env.timestamp,
        )?;
        Ok(vec![Event::Undecryptable {
            sender_id: env.sender_id.clone(),
            message_id: env.message_id.clone(),
            reason,
        }])
    }

    /// Opens a `crypto_box` addressed to the user: tries the key pair the envelope names
    /// first, then every own key and every key the sender ever had, newest first
    /// (whitepaper 5.3). If the sender's key is unknown, their key history is fetched once.
    async fn open_direct(
        &self,
        s: &Session,
        env: &Envelope,
        rc: &RecipientCiphertext,
    ) -> Result<std::result::Result<Payload, String>> {
        let Ok(nonce) = Nonce::from_slice(&rc.nonce) else {
            return Ok(Err("malformed nonce".into()));
        };
        let claimed_sender = BoxPublicKey::from_slice(&rc.sender_box_key).ok();
        let claimed_recipient = BoxPublicKey::from_slice(&rc.recipient_box_key).ok();
        if self.contact(&env.sender_id)?.is_none() {
            self.add_contact(&env.sender_id, None).await?;
        }
        for attempt in 0..2 {
            let mut theirs: Vec<BoxPublicKey> = self
                .contact_keys(s, &env.sender_id)?
                .into_iter()
                .map(|(_, b, _)| b)
                .collect();
            let known = claimed_sender.is_some_and(|k| theirs.contains(&k));
            if let Some(k) = claimed_sender.filter(|_| known) {
                theirs.retain(|x| *x != k);
                theirs.insert(0, k);
            }
            let mut own: Vec<&crate::vault::InstallationKeys> = s.ring.newest_first().collect();
            if let Some(k) = claimed_recipient {
                own.sort_by_key(|i| i.box_keys.public != k);
            }
            for mine in &own {
                for their in &theirs {
                    let Ok(pre) = self.precomputed(s, mine, their) else {
                        continue;
                    };
                    if let Ok(plain) = pre.open(&rc.ciphertext, &nonce) {
                        return Ok(Payload::decode(plain.as_slice())
                            .map_err(|_| "the sealed payload is malformed".to_owned()));
                    }
                }
            }
            if attempt == 0 && !known {
                self.refresh_contact(&env.sender_id).await?;
                continue;
            }
            break;
        }
        Ok(Err(
            "no key of this installation or of the sender opens it".into()
        ))
    }
}

fn kind_column(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Text => "text",
        MessageKind::Attachment => "attachment",
        MessageKind::Undecryptable => "undecryptable",
        MessageKind::Notice => "notice",
    }
}

const MESSAGE_SELECT: &str = "SELECT local_id, conversation, message_id, sender_id, outgoing, kind,
    body, attachment_id, timestamp, received_at, read_at FROM messages";

fn row_to_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    let conv: String = r.get(1)?;
    let kind: String = r.get(5)?;
    Ok(StoredMessage {
        local_id: r.get(0)?,
        conversation: Conversation::parse(&conv).unwrap_or(Conversation::Direct(conv)),
        message_id: r.get(2)?,
        sender_id: r.get(3)?,
        outgoing: r.get(4)?,
        kind: match kind.as_str() {
            "attachment" => MessageKind::Attachment,
            "undecryptable" => MessageKind::Undecryptable,
            "notice" => MessageKind::Notice,
            _ => MessageKind::Text,
        },
        body: r.get(6)?,
        attachment_id: r.get(7)?,
        timestamp: r.get(8)?,
        received_at: r.get(9)?,
        read_at: r.get(10)?,
    })
}
