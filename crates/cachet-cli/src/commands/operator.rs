//! `operator`: the master key's shares, sealing, the audit log and revocations.

use std::path::Path;

use cachet_client::{ClientError, Split};
use serde_json::json;

use cachet_cli::cli::{OperatorAction, OperatorArgs, SplitArgs};
use cachet_cli::error::CliError;
use cachet_cli::render;

use super::ctx::{Ctx, Result};

fn operator_client(ctx: &Ctx, args: &OperatorArgs) -> Result<cachet_client::OperatorClient> {
    let server = ctx.server.clone().ok_or_else(|| {
        CliError::usage("no server given", "pass --server URL or set CACHET_SERVER")
    })?;
    let name = args.name.clone().unwrap_or_else(|| "anonymous".into());
    let key = match &args.key {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::Io(format!("cannot read operator key {}: {e}", path.display()))
            })?;
            let seed = zeroize::Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
                CliError::usage(
                    format!("{} is not an operator key", path.display()),
                    "create one with `cachet operator keygen --out FILE`",
                )
            })?);
            cachet_crypto::SignKeyPair::from_seed_slice(&seed).map_err(|_| {
                CliError::usage(
                    format!("{} is not an operator key", path.display()),
                    "create one with `cachet operator keygen --out FILE`",
                )
            })?
        }
        // The status call is unsigned; any key will do for it.
        None if matches!(args.action, OperatorAction::Status) => {
            cachet_crypto::SignKeyPair::generate()
        }
        None => {
            return Err(CliError::usage(
                "no operator key given",
                "pass --name NAME --key FILE (or set CACHET_OPERATOR / CACHET_OPERATOR_KEY)",
            ))
        }
    };
    if args.name.is_none() && !matches!(args.action, OperatorAction::Status) {
        return Err(CliError::usage(
            "no operator name given",
            "pass --name NAME (as registered with `cachet server add-operator`)",
        ));
    }
    Ok(cachet_client::OperatorClient::new(
        &server,
        &name,
        key,
        ctx.ca.as_deref(),
    )?)
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| CliError::Io(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|e| CliError::Io(format!("cannot write {}: {e}", path.display())))
}

/// The vault's state, as a line or as JSON.
fn show_vault_status(ctx: &Ctx, s: &cachet_proto::v1::VaultStatus) {
    let state = match (s.initialised, s.sealed) {
        (false, _) => "unprotected (no master key yet: `cachet operator init`)".to_owned(),
        (true, true) => format!(
            "SEALED: {} of {} shares entered{}",
            s.shares_entered,
            s.threshold,
            if s.entered_by.is_empty() {
                String::new()
            } else {
                format!(" (by {})", s.entered_by.join(", "))
            }
        ),
        (true, false) => format!("unsealed ({} of {} shares open it)", s.threshold, s.shares),
    };
    ctx.report(
        format!("vault     {state}"),
        json!({
            "initialised": s.initialised,
            "sealed": s.sealed,
            "shares_entered": s.shares_entered,
            "threshold": s.threshold,
            "shares": s.shares,
            "entered_by": s.entered_by,
        }),
    );
}

fn hand_out_shares(
    ctx: &Ctx,
    split: &SplitArgs,
    shares: &cachet_proto::v1::VaultShares,
) -> Result<()> {
    if !shares.sealed_tokens.is_empty() {
        return hand_out_sealed_shares(ctx, split, shares);
    }
    match &split.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::Io(format!("cannot create {}: {e}", dir.display())))?;
            let mut files = Vec::new();
            for (i, token) in shares.tokens.iter().enumerate() {
                let path = dir.join(format!("share-{}.txt", i + 1));
                write_private(&path, &format!("{token}\n"))?;
                files.push(path.display().to_string());
            }
            ctx.report(format!(
                "{} shares written to {} (any {} open the server). Give each to one holder and delete the files.",
                shares.tokens.len(),
                dir.display(),
                split.threshold
            ), json!({ "share_files": files }));
        }
        None => {
            ctx.say(format!(
                "{} shares (any {} open the server). Give each to one holder; they are not shown again:",
                shares.tokens.len(),
                split.threshold
            ));
            for token in &shares.tokens {
                ctx.say(format!("  {token}"));
            }
            ctx.emit(json!({ "shares": shares.tokens }));
        }
    }
    Ok(())
}

/// Shares sealed to named holders: safe to pass around, each opens only with its
/// holder's operator key.
fn hand_out_sealed_shares(
    ctx: &Ctx,
    split: &SplitArgs,
    shares: &cachet_proto::v1::VaultShares,
) -> Result<()> {
    let pairs = shares.holders.iter().zip(&shares.sealed_tokens);
    match &split.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::Io(format!("cannot create {}: {e}", dir.display())))?;
            let mut files = Vec::new();
            for (i, (holder, sealed)) in pairs.enumerate() {
                let path = dir.join(format!("share-{}-{holder}.sealed.txt", i + 1));
                write_private(&path, &format!("{sealed}\n"))?;
                files.push(path.display().to_string());
            }
            ctx.report(format!(
                "{} shares written to {}, each sealed to its holder's key (any {} open the server). Send each file to its holder.",
                files.len(),
                dir.display(),
                split.threshold
            ), json!({ "share_files": files, "holders": shares.holders }));
        }
        None => {
            ctx.say(format!(
                "{} shares, each sealed to its holder's key (any {} open the server):",
                shares.sealed_tokens.len(),
                split.threshold
            ));
            for (holder, sealed) in pairs {
                ctx.say(format!("  {holder}: {sealed}"));
            }
            ctx.emit(json!({ "sealed_shares": shares.sealed_tokens, "holders": shares.holders }));
        }
    }
    Ok(())
}

pub(super) async fn operator(ctx: &Ctx, args: OperatorArgs) -> Result<()> {
    if let OperatorAction::Keygen { out } = &args.action {
        let key = cachet_crypto::SignKeyPair::generate();
        let seed = zeroize::Zeroizing::new(hex::encode(key.expose_seed()));
        write_private(out, &format!("{}\n", seed.as_str()))?;
        let public = hex::encode(key.public().as_bytes());
        ctx.say(format!("operator key written to {}", out.display()));
        ctx.say(format!("public key: {public}"));
        ctx.report(
            format!("on the server host: cachet server add-operator NAME {public} --data-dir DIR"),
            json!({ "key_file": out.display().to_string(), "public_key": public }),
        );
        return Ok(());
    }
    let op = operator_client(ctx, &args)?;
    match args.action {
        OperatorAction::Keygen { .. } => Ok(()),
        OperatorAction::Status => {
            let s = op.vault_status().await?;
            show_vault_status(ctx, &s);
            Ok(())
        }
        OperatorAction::Init(split) => {
            let shares = op
                .split(Split::Init, split.shares, split.threshold, &split.holders)
                .await?;
            hand_out_shares(ctx, &split, &shares)
        }
        OperatorAction::Rotate(split) => {
            let shares = op
                .split(Split::Rotate, split.shares, split.threshold, &split.holders)
                .await?;
            ctx.say("master key rotated; the old shares no longer open the server");
            hand_out_shares(ctx, &split, &shares)
        }
        OperatorAction::Reshare(split) => {
            let shares = op
                .split(
                    Split::Reshare,
                    split.shares,
                    split.threshold,
                    &split.holders,
                )
                .await?;
            ctx.say("master key re-shared; the old shares no longer open the server");
            hand_out_shares(ctx, &split, &shares)
        }
        OperatorAction::Unseal { share_file } => {
            let token = match share_file {
                Some(path) => {
                    zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
                        CliError::Io(format!("cannot read {}: {e}", path.display()))
                    })?)
                }
                None => zeroize::Zeroizing::new(
                    rpassword::prompt_password(
                        "share (cachet-share-v1:... or cachet-sealed-share-v1:...): ",
                    )
                    .map_err(|_| {
                        CliError::usage(
                            "no share given",
                            "pass --share-file FILE or run on a terminal",
                        )
                    })?,
                ),
            };
            let s = op.unseal(&token).await?;
            show_vault_status(ctx, &s);
            Ok(())
        }
        OperatorAction::Seal => {
            let s = op.seal().await?;
            show_vault_status(ctx, &s);
            Ok(())
        }
        OperatorAction::Export { out } => {
            let doc = op.export().await?;
            std::fs::write(&out, &doc)
                .map_err(|e| CliError::Io(format!("cannot write {}: {e}", out.display())))?;
            ctx.report(
                format!(
                "sealed key material written to {} (no secret in it; the shares are still needed)",
                out.display()
            ),
                json!({ "file": out.display().to_string() }),
            );
            Ok(())
        }
        OperatorAction::Import { file } => {
            let doc = std::fs::read(&file)
                .map_err(|e| CliError::Io(format!("cannot read {}: {e}", file.display())))?;
            let s = op.import(doc).await?;
            show_vault_status(ctx, &s);
            Ok(())
        }
        OperatorAction::Revoke { user_id, reason } => {
            let profile = op.revoke_keys(&user_id, &reason).await?;
            let version = profile.current_keys.as_ref().map_or(0, |k| k.key_version);
            ctx.report(format!(
                "keys of {} ({}) revoked (key version {version}); their contacts are told, and the revocation is in the audit log and the trust log",
                profile.user_id, profile.display_name
            ), json!({
                "user_id": profile.user_id,
                "display_name": profile.display_name,
                "revoked_key_version": version,
            }));
            Ok(())
        }
        OperatorAction::VerifyProfile { user_id, note } => {
            let profile = op.verify_profile(&user_id, &note).await?;
            ctx.report(
                format!(
                "profile of {} ({}) marked verified; recorded in the audit log and the trust log",
                profile.user_id, profile.display_name
            ),
                json!({
                    "user_id": profile.user_id,
                    "display_name": profile.display_name,
                    "verified": profile.verified,
                }),
            );
            Ok(())
        }
        OperatorAction::Audit { expect_head } => {
            let report = op.audit().await?;
            if let Some(kept) = expect_head {
                let kept = hex::decode(kept.trim()).map_err(|_| {
                    CliError::usage(
                        "--expect-head is not hex",
                        "give the hash printed by an earlier audit",
                    )
                })?;
                let extends = kept == cachet_proto::audit::GENESIS_HASH
                    || report.entries.iter().any(|e| e.hash == kept);
                if !extends {
                    return Err(ClientError::Integrity(
                        "the audit log no longer contains the head you kept: its history was rewritten".into(),
                    )
                    .into());
                }
            }
            for e in &report.entries {
                ctx.say(format!(
                    "{:>5}  {}  {:<14} {:<18} {}  {}",
                    e.seq,
                    render::time(e.timestamp),
                    e.operator_id,
                    e.action,
                    e.opened_subject,
                    e.opened_detail
                ));
            }
            let head = hex::encode(&report.head);
            ctx.report(
                format!(
                    "audit log OK: {} entries, hash chain intact; head {head}",
                    report.entries.len()
                ),
                json!({
                    "entries": report.entries.len(),
                    "head": head,
                    "log": report.entries.iter().map(|e| json!({
                        "seq": e.seq,
                        "timestamp": e.timestamp,
                        "operator_id": e.operator_id,
                        "action": e.action,
                        "subject": e.opened_subject,
                        "detail": e.opened_detail,
                    })).collect::<Vec<_>>(),
                }),
            );
            Ok(())
        }
    }
}
