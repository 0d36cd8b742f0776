//! `attach` and `fetch`: encrypted files sent and received.

use std::path::PathBuf;

use cachet_client::{ClientError, Conversation};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use cachet_cli::cli::{AttachArgs, FetchArgs};
use cachet_cli::error::CliError;

use super::ctx::{Ctx, Result};
use super::messaging::{names, who};

fn progress_bar(ctx: &Ctx, total: u64, what: &str) -> ProgressBar {
    if ctx.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

pub(super) async fn attach(ctx: &Ctx, args: AttachArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    if args.resume {
        let pending = client.pending_uploads()?;
        if pending.is_empty() {
            ctx.say("no interrupted upload");
        }
        let mut sent = Vec::new();
        for p in pending {
            let bar = progress_bar(ctx, p.size, "resuming");
            let b = bar.clone();
            let m = client
                .resume_upload(&p.attachment_id, &move |done, _| {
                    b.set_position(done);
                    true
                })
                .await?;
            bar.finish_and_clear();
            ctx.say(format!("sent {} ({})", m.body, p.attachment_id));
            sent.push(m);
        }
        ctx.emit(json!(sent));
        ctx.keep(&client);
        return Ok(());
    }
    let (Some(to), Some(file)) = (args.to, args.file) else {
        return Err(CliError::usage(
            "give a recipient and a file",
            "cachet attach camille scan.pdf",
        ));
    };
    let size = std::fs::metadata(&file)
        .map_err(|e| ClientError::Io {
            path: file.clone(),
            source: e,
        })?
        .len();
    let conv = if args.group {
        Conversation::Group(client.find_group(&to)?.group_id)
    } else if args.case {
        Conversation::Case(client.find_case(&to)?.case_id)
    } else {
        Conversation::Direct(client.find_contact(&to)?.user_id)
    };
    let bar = progress_bar(ctx, size, "encrypting and uploading");
    let b = bar.clone();
    let result = client
        .send_file(&conv, &file, &move |done, _| {
            b.set_position(done);
            true
        })
        .await;
    bar.finish_and_clear();
    let m = result?;
    ctx.report(
        format!(
            "sent {} ({} bytes) to {to} as attachment {}",
            m.body,
            size,
            m.attachment_id.as_deref().unwrap_or("?")
        ),
        json!(m),
    );
    ctx.keep(&client);
    Ok(())
}

pub(super) async fn fetch(ctx: &Ctx, args: FetchArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    let list = client.attachments()?;
    let Some(id) = args.attachment else {
        let names = names(&client)?;
        if list.is_empty() {
            ctx.say("no attachments; receive with `cachet inbox`");
        }
        for a in &list {
            ctx.say(format!(
                "{}  {:<30} {:>12} bytes  from {}",
                a.attachment_id,
                a.file_name,
                a.size,
                who(&names, &a.sender_id)
            ));
        }
        ctx.emit(json!(list));
        return Ok(());
    };
    let info =
        list.iter()
            .find(|a| a.attachment_id == id)
            .ok_or_else(|| ClientError::NotFound {
                kind: "attachment",
                id: id.clone(),
            })?;
    let dest = if args.store {
        None
    } else {
        Some(
            args.output
                .unwrap_or_else(|| PathBuf::from(&info.file_name)),
        )
    };
    if let Some(d) = &dest {
        if d.exists() && !args.force {
            return Err(CliError::usage(
                format!("{} already exists", d.display()),
                "choose another path with -o, or pass --force to overwrite",
            ));
        }
    }
    let bar = progress_bar(ctx, info.size, "downloading");
    let b = bar.clone();
    let result = client
        .fetch_attachment(&id, dest.as_deref(), args.force, &move |done, _| {
            b.set_position(done);
            true
        })
        .await;
    bar.finish_and_clear();
    let size = result?;
    match &dest {
        Some(d) => ctx.say(format!("saved {} ({size} bytes, checked)", d.display())),
        None => ctx.say(format!(
            "stored {} ({size} bytes, checked) in the profile's encrypted file store",
            info.file_name
        )),
    }
    ctx.emit(json!({"attachment_id": id, "size": size, "path": dest}));
    ctx.keep(&client);
    Ok(())
}
