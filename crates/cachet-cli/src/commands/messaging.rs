//! `contacts`, `send` and `inbox`: contacts, text messages and conversations.

use std::collections::HashMap;

use cachet_client::{
    Client, ClientError, Contact, Conversation, Event, MessageKind, StoredMessage, TrustState,
};
use serde_json::{json, Value};

use cachet_cli::cli::{ContactsAction, ContactsArgs, InboxArgs, SendArgs};
use cachet_cli::error::CliError;
use cachet_cli::render;

use super::ctx::{join, Ctx, Result};

fn contact_line(c: &Contact) -> String {
    let op = if c.operator_verified {
        " [profile checked]"
    } else {
        ""
    };
    format!(
        "{:<16} {:<24} {}  keys v{}  {}{}",
        c.alias,
        c.display_name,
        c.user_id,
        c.key_version,
        c.trust.label(),
        op
    )
}

pub(super) async fn contacts(ctx: &Ctx, args: ContactsArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    match args.action.unwrap_or(ContactsAction::List) {
        ContactsAction::List => {
            let list = client.contacts()?;
            if list.is_empty() {
                ctx.say(
                    "no contacts yet; add one with `cachet contacts add +33612345678 --as NAME`",
                );
            }
            for c in &list {
                ctx.say(contact_line(c));
            }
            ctx.emit(json!(list));
        }
        ContactsAction::Add {
            identifier,
            user_id,
            alias,
        } => {
            let c = match (identifier, user_id) {
                (Some(i), _) => {
                    client
                        .add_contact_by_identifier(&i, alias.as_deref())
                        .await?
                }
                (None, Some(u)) => client.add_contact(&u, alias.as_deref()).await?,
                (None, None) => {
                    return Err(CliError::usage(
                        "give a phone number, an e-mail address or --user-id",
                        "cachet contacts add +33612345678 --as camille",
                    ))
                }
            };
            ctx.report(format!("added {}", contact_line(&c)), json!(c));
        }
        ContactsAction::Show { contact } => {
            let c = client.find_contact(&contact)?;
            ctx.say(contact_line(&c));
            ctx.say(format!("  box key   {}", hex::encode(c.box_key.as_bytes())));
            ctx.say(format!(
                "  sign key  {}",
                hex::encode(c.sign_key.as_bytes())
            ));
            if let TrustState::KeyChanged { note, .. } = &c.trust {
                ctx.say(format!("  KEY CHANGED: {note}"));
            }
            ctx.emit(json!(c));
        }
        ContactsAction::Refresh { contact } => {
            let c = client.find_contact(&contact)?;
            match client.refresh_contact(&c.user_id).await? {
                Some(report) => {
                    eprintln!("{}", render::key_change(&report));
                    ctx.emit(json!(report));
                }
                None => {
                    ctx.report(
                        format!("{}: keys unchanged (version {})", c.alias, c.key_version),
                        json!({"changed": false}),
                    );
                }
            }
        }
    }
    ctx.keep(&client);
    Ok(())
}

pub(super) async fn send(ctx: &Ctx, args: SendArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    let text = join(&args.text);
    let message = if args.group {
        let g = client.find_group(&args.to)?;
        client.send_group_text(&g.group_id, &text).await?
    } else {
        let c = client.find_contact(&args.to)?;
        client.send_text(&c.user_id, &text).await?
    };
    ctx.report(format!("sent to {}: \"{text}\"", args.to), json!(message));
    ctx.keep(&client);
    Ok(())
}

/// Names for user ids: contacts' aliases, "you" for the user.
pub(super) fn names(client: &Client) -> Result<HashMap<String, String>> {
    let mut map: HashMap<String, String> = client
        .contacts()?
        .into_iter()
        .map(|c| (c.user_id, c.alias))
        .collect();
    map.insert(client.user_id().to_owned(), "you".into());
    Ok(map)
}

pub(super) fn who(names: &HashMap<String, String>, id: &str) -> String {
    names.get(id).cloned().unwrap_or_else(|| id.to_owned())
}

pub(super) fn message_line(m: &StoredMessage, names: &HashMap<String, String>) -> String {
    let from = who(names, &m.sender_id);
    let body = match m.kind {
        MessageKind::Text => format!("\"{}\"", m.body),
        MessageKind::Attachment => format!(
            "[attachment {} — `cachet fetch {}`]",
            m.body,
            m.attachment_id.as_deref().unwrap_or("?")
        ),
        MessageKind::Undecryptable => format!("[could not decrypt: {}]", m.body),
        MessageKind::Notice => {
            return format!("{}  ** {} **", render::time(m.timestamp), m.body);
        }
    };
    let read = match (m.outgoing, m.read_at) {
        (true, Some(_)) => "  ✓ read",
        _ => "",
    };
    format!("{}  {from}: {body}{read}", render::time(m.timestamp))
}

fn conversation_title(
    client: &Client,
    c: &Conversation,
    names: &HashMap<String, String>,
) -> String {
    match c {
        Conversation::Direct(id) => who(names, id),
        Conversation::Group(g) => client
            .find_group(g)
            .map(|g| format!("group {}", g.name))
            .unwrap_or_else(|_| format!("group {g}")),
        Conversation::Case(id) => client
            .find_case(id)
            .map(|c| format!("case \"{}\"", c.title))
            .unwrap_or_else(|_| format!("case {id}")),
    }
}

fn print_events(ctx: &Ctx, client: &Client, events: &[Event]) -> Result<()> {
    let names = names(client)?;
    for e in events {
        match e {
            Event::Message(m) => {
                let title = conversation_title(client, &m.conversation, &names);
                ctx.say(format!("new in {title}: {}", message_line(m, &names)));
            }
            Event::Typing { from, typing, .. } => ctx.say(format!(
                "{} {}",
                who(&names, from),
                if *typing {
                    "is typing…"
                } else {
                    "stopped typing"
                }
            )),
            Event::ReadReceipt {
                from, message_ids, ..
            } => ctx.say(format!(
                "{} read {} of your message(s)",
                who(&names, from),
                message_ids.len()
            )),
            Event::KeyChanged(report) => eprintln!("{}", render::key_change(report)),
            Event::Group { name, members, .. } => ctx.say(format!(
                "you are in group {name} ({} members)",
                members.len()
            )),
            Event::Undecryptable {
                sender_id, reason, ..
            } => ctx.say(format!(
                "a message from {} could not be decrypted: {reason}",
                who(&names, sender_id)
            )),
        }
    }
    Ok(())
}

fn resolve_conversation(client: &Client, query: &str) -> Result<Conversation> {
    if let Ok(c) = client.find_contact(query) {
        return Ok(Conversation::Direct(c.user_id));
    }
    if let Ok(g) = client.find_group(query) {
        return Ok(Conversation::Group(g.group_id));
    }
    if let Ok(c) = client.find_case(query) {
        return Ok(Conversation::Case(c.case_id));
    }
    Err(ClientError::UnknownContact(query.to_owned()).into())
}

pub(super) async fn inbox(ctx: &Ctx, args: InboxArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    let mut events = Vec::new();
    if !args.offline {
        events = client.receive(args.wait).await?;
        print_events(ctx, &client, &events)?;
    }
    let names = names(&client)?;
    match &args.conversation {
        Some(q) => {
            let conv = resolve_conversation(&client, q)?;
            let messages = client.messages(&conv, args.limit)?;
            ctx.say(format!(
                "— {} —",
                conversation_title(&client, &conv, &names)
            ));
            for m in &messages {
                ctx.say(message_line(m, &names));
            }
            let marked = if args.no_read || args.offline {
                0
            } else {
                client.mark_read(&conv).await?
            };
            ctx.emit(json!({"events": events, "messages": messages, "marked_read": marked}));
        }
        None => {
            let list = client.conversations()?;
            if list.is_empty() {
                ctx.say("no messages");
            }
            for (conv, unread, last) in &list {
                ctx.say(format!(
                    "{:<28} {:>3} unread  {}",
                    conversation_title(&client, conv, &names),
                    unread,
                    message_line(last, &names)
                ));
            }
            let list: Vec<Value> = list
                .iter()
                .map(|(c, u, m)| json!({"conversation": c, "unread": u, "last": m}))
                .collect();
            ctx.emit(json!({"events": events, "conversations": list}));
        }
    }
    ctx.keep(&client);
    Ok(())
}

/// The user ids of the contacts the queries name (alias, identifier or user id).
pub(super) fn contact_ids<'a>(
    client: &Client,
    queries: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>> {
    queries
        .into_iter()
        .map(|q| Ok(client.find_contact(q)?.user_id))
        .collect()
}
