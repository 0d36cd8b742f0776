//! Patient cases (whitepaper 3.6, 8.2.3): a fresh Case Key per case encrypts its fields
//! and its messages with `crypto_secretbox`; each participant gets the key sealed to them
//! with `crypto_box`. A participant added later receives the same key and so reads the
//! whole history. Case messages are signed by their author, since every participant
//! holds the key and could otherwise write in another's name.

use std::collections::BTreeMap;

use cachet_crypto::{boxes, secretbox, sign, BoxPublicKey, Nonce, SignPublicKey, SymmetricKey};
use cachet_proto::v1::{
    self, payload::Body, CaseCiphertext, Envelope, Payload, SealedCaseKey, SignedPayload,
};
use cachet_proto::Message;
use rusqlite::{params, OptionalExtension};
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};
use crate::messaging::{new_message_id, Conversation, Event, MessageKind, StoredMessage};
use crate::state::{Client, Contact, Session};

/// The first key epoch of a case.
pub const FIRST_EPOCH: u32 = 1;

/// A patient case as the user sees it, decrypted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Case {
    /// Its id.
    pub case_id: String,
    /// The case's title.
    pub title: String,
    /// Further fields (for example `patient`, `reason`), sealed under the case key.
    pub fields: BTreeMap<String, String>,
    /// Who opened it.
    pub created_by: String,
    /// Participants' user ids.
    pub participants: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SealedFields {
    title: String,
    fields: BTreeMap<String, String>,
}

/// Seals a case's title and fields under its case key: `nonce ‖ crypto_secretbox(JSON)`,
/// the JSON being `{"title": string, "fields": {string: string}}` (fields in key order).
/// The client calls it with a fresh random nonce; a given nonce serves the test vectors.
pub fn seal_case_fields(
    title: &str,
    fields: &BTreeMap<String, String>,
    case_key: &SymmetricKey,
    nonce: &Nonce,
) -> Result<Vec<u8>> {
    let json = Zeroizing::new(
        serde_json::to_vec(&SealedFields {
            title: title.to_owned(),
            fields: fields.clone(),
        })
        .map_err(|e| ClientError::InvalidInput(e.to_string()))?,
    );
    let mut sealed = nonce.as_bytes().to_vec();
    sealed.extend_from_slice(&secretbox::SecretBox::new(case_key).seal_with_nonce(&json, nonce));
    Ok(sealed)
}

/// Opens what [`seal_case_fields`] sealed: the title and the fields.
pub fn open_case_fields(
    sealed: &[u8],
    case_key: &SymmetricKey,
) -> Result<(String, BTreeMap<String, String>)> {
    let fields: SealedFields = secretbox::open_prefixed(sealed, case_key)
        .ok()
        .and_then(|b| serde_json::from_slice(&Zeroizing::new(b)).ok())
        .ok_or(ClientError::Decrypt)?;
    Ok((fields.title, fields.fields))
}

impl Client {
    fn seal_case_key(
        &self,
        s: &Session,
        case_key: &SymmetricKey,
        epoch: u32,
        recipient_id: &str,
        recipient_box: &BoxPublicKey,
    ) -> Result<SealedCaseKey> {
        let me = s.ring.current();
        let (nonce, ciphertext) = self
            .precomputed(s, me, recipient_box)?
            .seal(case_key.expose_secret());
        Ok(SealedCaseKey {
            participant_id: recipient_id.to_owned(),
            key_epoch: epoch,
            sealed_by: self.profile.user_id.clone(),
            sealer_box_key: me.box_keys.public.as_bytes().to_vec(),
            recipient_box_key: recipient_box.as_bytes().to_vec(),
            nonce: nonce.as_bytes().to_vec(),
            ciphertext,
        })
    }

    /// Opens a new case with a fresh Case Key, shared with each participant (user ids)
    /// and the user. Refused for any participant whose verified keys changed.
    pub async fn create_case(
        &self,
        title: &str,
        fields: &BTreeMap<String, String>,
        participants: &[String],
    ) -> Result<Case> {
        let s = self.session()?;
        if title.trim().is_empty() {
            return Err(ClientError::InvalidInput("a case needs a title".into()));
        }
        let contacts: Vec<Contact> = self.gate_new_keys(participants).await?;
        let case_key = SymmetricKey::generate();
        let case_id = format!("c{}", &new_message_id()[..24]);
        let sealed_fields = seal_case_fields(title, fields, &case_key, &Nonce::random())?;
        let me = s.ring.current().box_keys.public;
        let mut keys =
            vec![self.seal_case_key(&s, &case_key, FIRST_EPOCH, &self.profile.user_id, &me)?];
        for c in &contacts {
            keys.push(self.seal_case_key(&s, &case_key, FIRST_EPOCH, &c.user_id, &c.box_key)?);
        }
        let record = self
            .api
            .create_case(
                &self.signer(&s),
                &v1::CreateCase {
                    case_id: case_id.clone(),
                    sealed_fields,
                    keys,
                },
            )
            .await?;
        self.store_case_key(&s, &case_id, FIRST_EPOCH, &case_key)?;
        let added: Vec<String> = contacts.iter().map(|c| c.user_id.clone()).collect();
        self.log_membership(&s, cachet_trust::Scope::Case, &case_id, &added, true)
            .await?;
        let case = Case {
            case_id,
            title: title.to_owned(),
            fields: fields.clone(),
            created_by: self.profile.user_id.clone(),
            participants: if record.participants.is_empty() {
                let mut p: Vec<String> = contacts.iter().map(|c| c.user_id.clone()).collect();
                p.push(self.profile.user_id.clone());
                p
            } else {
                record.participants
            },
        };
        self.save_case(&s, &case)?;
        Ok(case)
    }

    /// Shares a case's key with more participants; they can then read its whole history.
    /// Refused for any participant whose verified keys changed.
    pub async fn add_case_participants(&self, case_id: &str, users: &[String]) -> Result<Case> {
        let s = self.session()?;
        let (epoch, case_key) = self.case_key(&s, case_id).await?;
        let contacts = self.gate_new_keys(users).await?;
        if contacts.is_empty() {
            return Err(ClientError::InvalidInput("no participant to add".into()));
        }
        let keys = contacts
            .iter()
            .map(|c| self.seal_case_key(&s, &case_key, epoch, &c.user_id, &c.box_key))
            .collect::<Result<Vec<_>>>()?;
        self.api
            .add_participants(&self.signer(&s), case_id, &v1::AddParticipants { keys })
            .await?;
        let added: Vec<String> = contacts.iter().map(|c| c.user_id.clone()).collect();
        self.log_membership(&s, cachet_trust::Scope::Case, case_id, &added, true)
            .await?;
        self.sync_case(&s, case_id).await
    }

    /// Every case the user takes part in, fetched from the server and decrypted.
    pub async fn cases(&self) -> Result<Vec<Case>> {
        let s = self.session()?;
        let list = self.api.list_cases(&self.signer(&s)).await?;
        let mut out = Vec::new();
        for record in list.cases {
            match self.open_case_record(&s, &record).await {
                Ok(case) => out.push(case),
                Err(ClientError::Decrypt) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// A case by id or title, from the local store.
    pub fn find_case(&self, query: &str) -> Result<Case> {
        let s = self.session()?;
        let db = s.db();
        let mut stmt = db.conn.prepare(
            "SELECT case_id, title, fields, created_by, participants FROM cases
             WHERE case_id = ?1 OR title = ?1",
        )?;
        let found: Vec<Case> = stmt
            .query_map([query], row_to_case)?
            .collect::<rusqlite::Result<_>>()?;
        match found.as_slice() {
            [c] => Ok(c.clone()),
            _ => Err(ClientError::NotFound {
                kind: "case",
                id: query.to_owned(),
            }),
        }
    }

    /// Sends a message to every participant of a case, under the case key and signed.
    pub async fn send_case_message(&self, case_id: &str, text: &str) -> Result<StoredMessage> {
        let s = self.session()?;
        let (message_id, timestamp) = self
            .send_case_payload(
                &s,
                case_id,
                Body::Text(v1::Text {
                    body: text.to_owned(),
                }),
            )
            .await?;
        self.store_message(
            &s,
            &Conversation::Case(case_id.to_owned()),
            &message_id,
            &self.profile.user_id,
            MessageKind::Text,
            text,
            None,
            timestamp,
        )?
        .ok_or_else(|| ClientError::Database("message id collision".into()))
    }

    /// Signs a payload with the user's Sign Key, seals it under the case key and sends it.
    pub(crate) async fn send_case_payload(
        &self,
        s: &Session,
        case_id: &str,
        body: Body,
    ) -> Result<(String, i64)> {
        let (epoch, case_key) = self.case_key(s, case_id).await?;
        let message_id = new_message_id();
        let timestamp = self.now_ms();
        let payload = self
            .payload(&message_id, timestamp, "", body)
            .encode_to_vec();
        let me = s.ring.current();
        let signed = SignedPayload {
            signature: sign::sign_detached(&payload, &me.sign_keys).to_vec(),
            sign_key: me.sign_keys.public().as_bytes().to_vec(),
            payload,
        };
        let (nonce, ciphertext) = secretbox::seal(&signed.encode_to_vec(), &case_key);
        let envelope = Envelope {
            version: cachet_proto::ENVELOPE_VERSION,
            message_id: message_id.clone(),
            timestamp,
            case_message: Some(CaseCiphertext {
                case_id: case_id.to_owned(),
                nonce: nonce.as_bytes().to_vec(),
                ciphertext,
                key_epoch: epoch,
            }),
            ..Default::default()
        };
        self.api.send_envelope(&self.signer(s), &envelope).await?;
        self.mark_processed(s, &self.profile.user_id, &message_id)?;
        Ok((message_id, timestamp))
    }

    /// Fetches a case's whole message history from the server (what a participant added
    /// later does) and returns the new messages.
    pub async fn fetch_case_history(&self, case_id: &str) -> Result<Vec<Event>> {
        let s = self.session()?;
        self.case_key(&s, case_id).await?;
        let mut after: i64 = s
            .db()
            .conn
            .query_row(
                "SELECT history_after FROM cases WHERE case_id = ?1",
                [case_id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let mut events = Vec::new();
        loop {
            let page = self
                .api
                .case_messages(&self.signer(&s), case_id, after as u64)
                .await?;
            let mut envelopes = page.envelopes;
            envelopes.sort_by_key(|e| e.delivery_id);
            let Some(last) = envelopes.last().map(|e| e.delivery_id as i64) else {
                break;
            };
            for env in envelopes {
                events.extend(self.process_envelope(&s, env, false).await?);
            }
            after = after.max(last);
            s.db().conn.execute(
                "UPDATE cases SET history_after = ?2 WHERE case_id = ?1",
                params![case_id, after],
            )?;
            if !page.more {
                break;
            }
        }
        Ok(events)
    }

    pub(crate) async fn process_case_envelope(
        &self,
        s: &Session,
        env: &Envelope,
    ) -> Result<Vec<Event>> {
        let Some(cm) = &env.case_message else {
            return Ok(vec![]);
        };
        let key = match self.case_key_for_epoch(s, &cm.case_id, cm.key_epoch).await {
            Ok(k) => k,
            Err(ClientError::NotFound { .. }) | Err(ClientError::Decrypt) => {
                return Ok(vec![Event::Undecryptable {
                    sender_id: env.sender_id.clone(),
                    message_id: env.message_id.clone(),
                    reason: format!("no key for case {} epoch {}", cm.case_id, cm.key_epoch),
                }])
            }
            Err(e) => return Err(e),
        };
        let opened = Nonce::from_slice(&cm.nonce)
            .ok()
            .and_then(|n| secretbox::open(&cm.ciphertext, &n, &key).ok())
            .and_then(|b| SignedPayload::decode(b.as_slice()).ok());
        let Some(signed) = opened else {
            return Ok(vec![Event::Undecryptable {
                sender_id: env.sender_id.clone(),
                message_id: env.message_id.clone(),
                reason: "does not open under the case key".into(),
            }]);
        };
        let payload = match self
            .check_case_signature(s, &env.sender_id, &signed)
            .await?
        {
            Some(p) => p,
            None => {
                return Ok(vec![Event::Undecryptable {
                    sender_id: env.sender_id.clone(),
                    message_id: env.message_id.clone(),
                    reason: "the author's signature does not verify".into(),
                }])
            }
        };
        if payload.message_id != env.message_id
            || payload.sender_id != env.sender_id
            || payload.timestamp != env.timestamp
        {
            return Ok(vec![Event::Undecryptable {
                sender_id: env.sender_id.clone(),
                message_id: env.message_id.clone(),
                reason: "the envelope does not match the copy sealed inside it".into(),
            }]);
        }
        let conversation = Conversation::Case(cm.case_id.clone());
        let stored = match payload.body {
            Some(Body::Text(t)) => self.store_message(
                s,
                &conversation,
                &env.message_id,
                &env.sender_id,
                MessageKind::Text,
                &t.body,
                None,
                env.timestamp,
            )?,
            Some(Body::Attachment(pointer)) => {
                self.store_attachment_pointer(s, &conversation, env, pointer)?
            }
            _ => None,
        };
        Ok(stored.map(Event::Message).into_iter().collect())
    }

    /// Verifies a case message's signature under one of its author's known Sign Keys.
    async fn check_case_signature(
        &self,
        s: &Session,
        author: &str,
        signed: &SignedPayload,
    ) -> Result<Option<Payload>> {
        let Ok(claimed) = SignPublicKey::from_slice(&signed.sign_key) else {
            return Ok(None);
        };
        let known = |client: &Client| -> Result<bool> {
            if author == client.profile.user_id {
                return Ok(s
                    .ring
                    .installations
                    .iter()
                    .any(|i| i.sign_keys.public() == claimed));
            }
            Ok(client
                .contact_keys(s, author)?
                .iter()
                .any(|(_, _, k)| *k == claimed))
        };
        if !known(self)? && author != self.profile.user_id {
            self.ensure_contact(author).await?;
            self.refresh_contact(author).await?;
        }
        if !known(self)? {
            return Ok(None);
        }
        if sign::verify_detached(&signed.payload, &signed.signature, &claimed).is_err() {
            return Ok(None);
        }
        Ok(Payload::decode(signed.payload.as_slice()).ok())
    }

    fn store_case_key(
        &self,
        s: &Session,
        case_id: &str,
        epoch: u32,
        key: &SymmetricKey,
    ) -> Result<()> {
        s.db().conn.execute(
            "INSERT OR IGNORE INTO case_keys (case_id, key_epoch, key) VALUES (?1, ?2, ?3)",
            params![case_id, epoch, key.expose_secret().to_vec()],
        )?;
        Ok(())
    }

    pub(crate) fn store_case_key_share(
        &self,
        s: &Session,
        _sender: &str,
        share: v1::CaseKeyShare,
    ) -> Result<()> {
        if cachet_proto::decode::validate_case_key_share(&share).is_err() {
            return Ok(());
        }
        if let Ok(key) = SymmetricKey::from_slice(&share.case_key) {
            self.store_case_key(s, &share.case_id, share.key_epoch, &key)?;
        }
        Ok(())
    }

    fn local_case_key(
        &self,
        s: &Session,
        case_id: &str,
        epoch: Option<u32>,
    ) -> Result<Option<(u32, SymmetricKey)>> {
        let db = s.db();
        let row: Option<(u32, Vec<u8>)> = match epoch {
            Some(e) => db
                .conn
                .query_row(
                    "SELECT key_epoch, key FROM case_keys WHERE case_id = ?1 AND key_epoch = ?2",
                    params![case_id, e],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?,
            None => db
                .conn
                .query_row(
                    "SELECT key_epoch, key FROM case_keys WHERE case_id = ?1 ORDER BY key_epoch DESC LIMIT 1",
                    [case_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?,
        };
        match row {
            Some((e, k)) => Ok(Some((e, SymmetricKey::from_slice(&Zeroizing::new(k))?))),
            None => Ok(None),
        }
    }

    /// The newest key of a case, fetched from the server if not held yet.
    async fn case_key(&self, s: &Session, case_id: &str) -> Result<(u32, SymmetricKey)> {
        if let Some(k) = self.local_case_key(s, case_id, None)? {
            return Ok(k);
        }
        self.sync_case(s, case_id).await?;
        self.local_case_key(s, case_id, None)?
            .ok_or_else(|| ClientError::NotFound {
                kind: "case",
                id: case_id.to_owned(),
            })
    }

    async fn case_key_for_epoch(
        &self,
        s: &Session,
        case_id: &str,
        epoch: u32,
    ) -> Result<SymmetricKey> {
        if let Some((_, k)) = self.local_case_key(s, case_id, Some(epoch))? {
            return Ok(k);
        }
        self.sync_case(s, case_id).await?;
        self.local_case_key(s, case_id, Some(epoch))?
            .map(|(_, k)| k)
            .ok_or_else(|| ClientError::NotFound {
                kind: "case key",
                id: format!("{case_id}#{epoch}"),
            })
    }

    async fn sync_case(&self, s: &Session, case_id: &str) -> Result<Case> {
        let record = match self.api.get_case(&self.signer(s), case_id).await {
            Err(ClientError::Server {
                status: 404 | 403, ..
            }) => {
                return Err(ClientError::NotFound {
                    kind: "case",
                    id: case_id.to_owned(),
                })
            }
            other => other?,
        };
        self.open_case_record(s, &record).await
    }

    /// Opens the user's sealed keys of a case record and its fields, and stores them.
    async fn open_case_record(&self, s: &Session, record: &v1::CaseRecord) -> Result<Case> {
        cachet_proto::decode::validate_id(&record.case_id, "case_id")?;
        for sealed in &record.my_keys {
            if sealed.participant_id != self.profile.user_id {
                continue;
            }
            if let Some(key) = self.open_sealed_case_key(s, sealed).await? {
                self.store_case_key(s, &record.case_id, sealed.key_epoch, &key)?;
            }
        }
        let (_, key) = self
            .local_case_key(s, &record.case_id, None)?
            .ok_or(ClientError::Decrypt)?;
        let (title, fields) = open_case_fields(&record.sealed_fields, &key)?;
        let case = Case {
            case_id: record.case_id.clone(),
            title,
            fields,
            created_by: record.created_by.clone(),
            participants: record.participants.clone(),
        };
        self.save_case(s, &case)?;
        Ok(case)
    }

    /// Opens a case key sealed to the user: any own key pair, sealed by one of the
    /// sealer's known Box Keys.
    async fn open_sealed_case_key(
        &self,
        s: &Session,
        sealed: &SealedCaseKey,
    ) -> Result<Option<SymmetricKey>> {
        let Ok(nonce) = Nonce::from_slice(&sealed.nonce) else {
            return Ok(None);
        };
        let Ok(sealer_key) = BoxPublicKey::from_slice(&sealed.sealer_box_key) else {
            return Ok(None);
        };
        let sealer_known = if sealed.sealed_by == self.profile.user_id {
            s.ring
                .installations
                .iter()
                .any(|i| i.box_keys.public == sealer_key)
        } else {
            self.ensure_contact(&sealed.sealed_by).await?;
            let mut keys = self.contact_keys(s, &sealed.sealed_by)?;
            if !keys.iter().any(|(_, b, _)| *b == sealer_key) {
                self.refresh_contact(&sealed.sealed_by).await?;
                keys = self.contact_keys(s, &sealed.sealed_by)?;
            }
            keys.iter().any(|(_, b, _)| *b == sealer_key)
        };
        if !sealer_known {
            return Ok(None);
        }
        for mine in s.ring.newest_first() {
            if let Ok(bytes) = boxes::open(
                &sealed.ciphertext,
                &nonce,
                &sealer_key,
                &mine.box_keys.secret,
            ) {
                let bytes = Zeroizing::new(bytes);
                return Ok(SymmetricKey::from_slice(&bytes).ok());
            }
        }
        Ok(None)
    }

    fn save_case(&self, s: &Session, c: &Case) -> Result<()> {
        let fields =
            serde_json::to_string(&c.fields).map_err(|e| ClientError::Database(e.to_string()))?;
        let participants = serde_json::to_string(&c.participants)
            .map_err(|e| ClientError::Database(e.to_string()))?;
        s.db().conn.execute(
            "INSERT INTO cases (case_id, title, fields, created_by, participants) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (case_id) DO UPDATE SET title = excluded.title, fields = excluded.fields,
             participants = excluded.participants",
            params![c.case_id, c.title, fields, c.created_by, participants],
        )?;
        Ok(())
    }
}

fn row_to_case(r: &rusqlite::Row<'_>) -> rusqlite::Result<Case> {
    let fields: String = r.get(2)?;
    let participants: String = r.get(4)?;
    Ok(Case {
        case_id: r.get(0)?,
        title: r.get(1)?,
        fields: serde_json::from_str(&fields).unwrap_or_default(),
        created_by: r.get(3)?,
        participants: serde_json::from_str(&participants).unwrap_or_default(),
    })
}
