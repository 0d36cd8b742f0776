//! Group conversations (whitepaper 8.2.1): one envelope, one `crypto_box` per member, so
//! nobody added later reads earlier messages. The member list travels in a `GroupInfo`
//! payload sealed to each member.

use cachet_proto::v1::{self, payload::Body};
use rusqlite::{params, OptionalExtension};

use crate::error::{ClientError, Result};
use crate::messaging::{new_message_id, Conversation, Event, StoredMessage};
use crate::state::{Client, Session};

/// Most members of a group.
pub const MAX_GROUP_MEMBERS: usize = 256;

/// A group as stored locally.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Group {
    /// Its id.
    pub group_id: String,
    /// Its name.
    pub name: String,
    /// Members' user ids, the user included.
    pub members: Vec<String>,
    /// Who created it.
    pub created_by: String,
}

impl Client {
    /// Creates a group with the given contacts (user ids) and tells each of them.
    pub async fn create_group(&self, name: &str, members: &[String]) -> Result<Group> {
        let s = self.session()?;
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(ClientError::InvalidInput(
                "a group name has 1 to 100 characters".into(),
            ));
        }
        let mut all: Vec<String> = members.to_vec();
        all.push(self.profile.user_id.clone());
        all.sort();
        all.dedup();
        if all.len() < 2 || all.len() > MAX_GROUP_MEMBERS {
            return Err(ClientError::InvalidInput(format!(
                "a group has 2 to {MAX_GROUP_MEMBERS} members, you included"
            )));
        }
        for m in &all {
            if m != &self.profile.user_id {
                self.ensure_contact(m).await?;
            }
        }
        let group_id = format!("g{}", &new_message_id()[..24]);
        let group = Group {
            group_id: group_id.clone(),
            name: name.to_owned(),
            members: all.clone(),
            created_by: self.profile.user_id.clone(),
        };
        self.save_group(&s, &group)?;
        self.send_payload(
            &s,
            &all,
            &group_id,
            Body::GroupInfo(v1::GroupInfo {
                group_id: group_id.clone(),
                name: name.to_owned(),
                member_ids: all.clone(),
            }),
        )
        .await?;
        self.log_membership(&s, cachet_trust::Scope::Group, &group_id, &all, true)
            .await?;
        Ok(group)
    }

    /// Sends a text to every member of a group, sealed separately for each.
    pub async fn send_group_text(&self, group_id: &str, text: &str) -> Result<StoredMessage> {
        let s = self.session()?;
        let members = self.group_members(&s, group_id)?;
        let conversation = Conversation::Group(group_id.to_owned());
        self.send_text_in(&s, &conversation, &members, group_id, text)
            .await
    }

    /// Every group the user is in.
    pub fn groups(&self) -> Result<Vec<Group>> {
        let sql = "SELECT group_id, name, members, created_by FROM groups ORDER BY name";
        self.session()?.db().all_rows(sql, row_to_group)
    }

    /// A group by id or name.
    pub fn find_group(&self, query: &str) -> Result<Group> {
        let groups = self.groups()?;
        let by_id: Vec<&Group> = groups.iter().filter(|g| g.group_id == query).collect();
        let by_name: Vec<&Group> = groups.iter().filter(|g| g.name == query).collect();
        match (by_id.as_slice(), by_name.as_slice()) {
            ([g], _) | ([], [g]) => Ok((*g).clone()),
            _ => Err(ClientError::NotFound {
                kind: "group",
                id: query.to_owned(),
            }),
        }
    }

    pub(crate) fn group_members(&self, s: &Session, group_id: &str) -> Result<Vec<String>> {
        let sql = "SELECT members FROM groups WHERE group_id = ?1";
        let members: String = s.db().value_of(sql, "group", group_id)?;
        Ok(serde_json::from_str(&members).unwrap_or_default())
    }

    fn save_group(&self, s: &Session, g: &Group) -> Result<()> {
        let members =
            serde_json::to_string(&g.members).map_err(|e| ClientError::Database(e.to_string()))?;
        s.db().conn.execute(
            "INSERT INTO groups (group_id, name, members, created_by) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (group_id) DO UPDATE SET name = excluded.name, members = excluded.members",
            params![g.group_id, g.name, members, g.created_by],
        )?;
        Ok(())
    }

    /// A message from someone in a group the user has not heard of: remember the group
    /// with what is known so far.
    pub(crate) fn ensure_group_member(
        &self,
        s: &Session,
        group_id: &str,
        sender: &str,
    ) -> Result<()> {
        match self.group_members(s, group_id) {
            Ok(mut members) => {
                if !members.iter().any(|m| m == sender) {
                    members.push(sender.to_owned());
                    members.sort();
                    let json = serde_json::to_string(&members)
                        .map_err(|e| ClientError::Database(e.to_string()))?;
                    s.db().conn.execute(
                        "UPDATE groups SET members = ?2 WHERE group_id = ?1",
                        params![group_id, json],
                    )?;
                }
                Ok(())
            }
            Err(ClientError::NotFound { .. }) => self.save_group(
                s,
                &Group {
                    group_id: group_id.to_owned(),
                    name: group_id.to_owned(),
                    members: vec![sender.to_owned(), self.profile.user_id.clone()],
                    created_by: sender.to_owned(),
                },
            ),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn apply_group_info(
        &self,
        s: &Session,
        sender: &str,
        envelope_group: &str,
        info: v1::GroupInfo,
    ) -> Result<Option<Event>> {
        if info.group_id != envelope_group
            || cachet_proto::decode::validate_id(&info.group_id, "group_id").is_err()
            || !info.member_ids.iter().any(|m| m == sender)
            || !info.member_ids.iter().any(|m| m == &self.profile.user_id)
            || info.member_ids.len() > MAX_GROUP_MEMBERS
        {
            return Ok(None);
        }
        let created_by: Option<String> = s
            .db()
            .conn
            .query_row(
                "SELECT created_by FROM groups WHERE group_id = ?1",
                [&info.group_id],
                |r| r.get(0),
            )
            .optional()?;
        let group = Group {
            group_id: info.group_id.clone(),
            name: info.name.chars().take(100).collect(),
            members: info.member_ids.clone(),
            created_by: created_by.unwrap_or_else(|| sender.to_owned()),
        };
        self.save_group(s, &group)?;
        Ok(Some(Event::Group {
            group_id: group.group_id,
            name: group.name,
            members: group.members,
        }))
    }
}

fn row_to_group(r: &rusqlite::Row<'_>) -> rusqlite::Result<Group> {
    let members: String = r.get(2)?;
    Ok(Group {
        group_id: r.get(0)?,
        name: r.get(1)?,
        members: serde_json::from_str(&members).unwrap_or_default(),
        created_by: r.get(3)?,
    })
}
