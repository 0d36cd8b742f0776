//! `case`: patient cases.

use std::collections::BTreeMap;

use cachet_client::{Client, ClientError, Conversation};
use serde_json::json;

use cachet_cli::cli::{CaseAction, CaseArgs};
use cachet_cli::error::CliError;

use super::ctx::{join, Ctx, Result};
use super::messaging::{contact_ids, message_line, names};

pub(super) async fn case(ctx: &Ctx, args: CaseArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    let names_now = names(&client)?;
    match args.action.unwrap_or(CaseAction::List) {
        CaseAction::List => {
            let cases = client.cases().await?;
            if cases.is_empty() {
                ctx.say("no cases");
            }
            for c in &cases {
                ctx.say(format!(
                    "{:<30} {}  {} participant(s)",
                    format!("\"{}\"", c.title),
                    c.case_id,
                    c.participants.len()
                ));
            }
            ctx.emit(json!(cases));
        }
        CaseAction::Create {
            title,
            participants,
            fields,
        } => {
            let ids = contact_ids(&client, participants.iter().map(|p| p.trim()))?;
            let mut map = BTreeMap::new();
            for f in &fields {
                let (k, v) = f.split_once('=').ok_or_else(|| {
                    CliError::usage(
                        format!("field {f:?} is not NAME=VALUE"),
                        "e.g. --field reason=cough",
                    )
                })?;
                map.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            let c = client.create_case(&title, &map, &ids).await?;
            ctx.report(
                format!(
                    "opened case \"{}\" ({}) with {} participant(s)",
                    c.title,
                    c.case_id,
                    c.participants.len()
                ),
                json!(c),
            );
        }
        CaseAction::Send { case, text } => {
            let c = find_case(&client, &case).await?;
            let text = join(&text);
            let m = client.send_case_message(&c.case_id, &text).await?;
            ctx.report(
                format!("sent in case \"{}\": \"{text}\"", c.title),
                json!(m),
            );
        }
        CaseAction::Add { case, participants } => {
            let c = find_case(&client, &case).await?;
            let ids = contact_ids(&client, participants.iter().map(String::as_str))?;
            let c = client.add_case_participants(&c.case_id, &ids).await?;
            ctx.report(
                format!(
                    "case \"{}\" now has {} participant(s); they can read its whole history",
                    c.title,
                    c.participants.len()
                ),
                json!(c),
            );
        }
        CaseAction::Show { case } => {
            let c = find_case(&client, &case).await?;
            client.fetch_case_history(&c.case_id).await?;
            ctx.say(format!("— case \"{}\" —", c.title));
            for (k, v) in &c.fields {
                ctx.say(format!("  {k}: {v}"));
            }
            let messages = client.messages(&Conversation::Case(c.case_id.clone()), 1000)?;
            for m in &messages {
                ctx.say(message_line(m, &names_now));
            }
            ctx.emit(json!({"case": c, "messages": messages}));
        }
    }
    ctx.keep(&client);
    Ok(())
}

async fn find_case(client: &Client, query: &str) -> Result<cachet_client::Case> {
    match client.find_case(query) {
        Ok(c) => Ok(c),
        Err(ClientError::NotFound { .. }) => {
            let all = client.cases().await?;
            all.into_iter()
                .find(|c| c.case_id == query || c.title == query)
                .ok_or_else(|| {
                    ClientError::NotFound {
                        kind: "case",
                        id: query.to_owned(),
                    }
                    .into()
                })
        }
        Err(e) => Err(e.into()),
    }
}
