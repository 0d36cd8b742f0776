//! `group`: group conversations.

use serde_json::json;

use cachet_cli::cli::{GroupAction, GroupArgs};

use super::ctx::{join, Ctx, Result};
use super::messaging::{contact_ids, names, who};

pub(super) async fn group(ctx: &Ctx, args: GroupArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    match args.action.unwrap_or(GroupAction::List) {
        GroupAction::List => {
            let groups = client.groups()?;
            let names = names(&client)?;
            if groups.is_empty() {
                ctx.say("no groups");
            }
            for g in &groups {
                let members: Vec<String> = g.members.iter().map(|m| who(&names, m)).collect();
                ctx.say(format!(
                    "{:<20} {}  {}",
                    g.name,
                    g.group_id,
                    members.join(", ")
                ));
            }
            ctx.emit(json!(groups));
        }
        GroupAction::Create { name, members } => {
            let ids = contact_ids(&client, members.iter().map(String::as_str))?;
            let g = client.create_group(&name, &ids).await?;
            ctx.report(
                format!(
                    "created group {} ({}) with {} members",
                    g.name,
                    g.group_id,
                    g.members.len()
                ),
                json!(g),
            );
        }
        GroupAction::Send { group, text } => {
            let g = client.find_group(&group)?;
            let text = join(&text);
            let m = client.send_group_text(&g.group_id, &text).await?;
            ctx.report(format!("sent to group {}: \"{text}\"", g.name), json!(m));
        }
    }
    ctx.keep(&client);
    Ok(())
}
