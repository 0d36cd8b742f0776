//! `verify` and `audit`: safety numbers and the trust log.

use std::path::Path;

use cachet_client::TrustState;
use serde_json::json;

use cachet_cli::cli::{AuditArgs, VerifyArgs};
use cachet_cli::error::CliError;
use cachet_cli::render;

use super::ctx::{Ctx, Result};

pub(super) async fn verify(ctx: &Ctx, args: VerifyArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    let c = client.find_contact(&args.contact)?;
    // Always compare against the keys the server shows now.
    if let Some(report) = client.refresh_contact(&c.user_id).await? {
        eprintln!("{}", render::key_change(&report));
    }
    let c = client.find_contact(&c.user_id)?;
    if args.reset {
        client.mark_unverified(&c)?;
        ctx.report(
            format!("{} is no longer verified", c.alias),
            json!({"verified": false}),
        );
        ctx.keep(&client);
        return Ok(());
    }
    if args.accept {
        if !matches!(c.trust, TrustState::KeyChanged { .. }) {
            return Err(CliError::usage(
                format!(
                    "the keys of {} did not change since you verified them ({}): nothing to accept",
                    c.alias,
                    c.trust.label()
                ),
                format!("`cachet verify {}` shows the safety number", c.alias),
            ));
        }
        let c = client.accept_key_change(&c)?;
        ctx.report(format!(
            "accepted the new keys of {} (version {}): messages go to them again; they are unverified until you compare safety numbers (`cachet verify {}`)",
            c.alias, c.key_version, c.alias
        ), json!(c));
        ctx.keep(&client);
        return Ok(());
    }
    if let Some(hex_payload) = &args.scanned {
        let bytes = hex::decode(hex_payload.trim()).map_err(|_| {
            CliError::usage(
                "the scanned payload is not hex",
                "paste the hex shown under the QR code",
            )
        })?;
        let c = client.verify_scanned(&c, &bytes)?;
        ctx.report(
            format!("the codes match: {} is verified", c.alias),
            json!(c),
        );
        ctx.keep(&client);
        return Ok(());
    }
    let number = client.safety_number(&c)?;
    if args.confirm {
        let c = client.mark_verified(&c)?;
        ctx.report(
            format!("{} is verified (safety number {})", c.alias, number.digits),
            json!({"contact": c, "safety_number": number}),
        );
        ctx.keep(&client);
        return Ok(());
    }
    ctx.say(format!(
        "Safety number with {} ({}):",
        c.alias,
        c.trust.label()
    ));
    let groups: Vec<&str> = number.digits.split(' ').collect();
    for row in groups.chunks(4) {
        ctx.say(format!("    {}", row.join(" ")));
    }
    if !args.no_qr {
        ctx.say(render::qr(&number.qr_payload));
    }
    ctx.say(format!("QR payload: {}", hex::encode(&number.qr_payload)));
    ctx.report(
        format!(
            "Compare these digits with {} in person. If they match: cachet verify {} --confirm",
            c.alias, c.alias
        ),
        json!({"contact": c, "safety_number": number}),
    );
    ctx.keep(&client);
    Ok(())
}

fn read_head(path: &Path) -> Result<cachet_client::SignedTreeHead> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Io(format!("cannot read {}: {e}", path.display())))?;
    cachet_client::parse_head(&text).map_err(|e| {
        CliError::usage(
            format!("{}: {e}", path.display()),
            "give a file written by `cachet audit --export`",
        )
    })
}

pub(super) async fn audit(ctx: &Ctx, args: AuditArgs) -> Result<()> {
    if args.compare.len() > 2 {
        return Err(CliError::usage(
            "--compare takes one or two head files",
            "compare your head with one file, or two files with each other",
        ));
    }
    let client = ctx.unlocked()?;
    let report = client.audit_log(args.full).await?;
    ctx.say(format!("server     {}", report.server));
    ctx.say(format!(
        "log key    {}{}",
        report.log_key,
        if report.pinned_now {
            " (pinned now: trust on first use)"
        } else {
            " (pinned)"
        }
    ));
    ctx.say(format!(
        "head       {} blocks, root {}",
        report.size, report.root
    ));
    ctx.say(match report.previous_size {
        Some(n) => format!("consistent with the head saved before ({n} blocks); saved"),
        None => "no head saved before; saved".to_owned(),
    });
    if let Some(n) = report.chains_replayed {
        ctx.say(format!(
            "full audit: every block replayed, {n} chains follow the rules"
        ));
    }
    let mine = client
        .saved_head()?
        .ok_or_else(|| CliError::Io("no head was saved".into()))?;
    let mut compared = Vec::new();
    match args.compare.as_slice() {
        [] => {}
        [theirs] => {
            let other = read_head(theirs)?;
            client.compare_heads(&mine, &other).await?;
            ctx.say(format!(
                "{} ({} blocks) is consistent with this client's head",
                theirs.display(),
                other.size
            ));
            compared.push(theirs.display().to_string());
        }
        [a, b, ..] => {
            let (ha, hb) = (read_head(a)?, read_head(b)?);
            client.compare_heads(&ha, &hb).await?;
            ctx.say(format!(
                "{} ({} blocks) and {} ({} blocks) are consistent",
                a.display(),
                ha.size,
                b.display(),
                hb.size
            ));
            compared.push(a.display().to_string());
            compared.push(b.display().to_string());
        }
    }
    if let Some(path) = &args.export {
        std::fs::write(path, cachet_client::format_head(&mine))
            .map_err(|e| CliError::Io(format!("cannot write {}: {e}", path.display())))?;
        ctx.say(format!("head written to {}", path.display()));
    }
    ctx.emit(json!({"audit": report, "compared": compared, "exported": args.export}));
    ctx.keep(&client);
    Ok(())
}
