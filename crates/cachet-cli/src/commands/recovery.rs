//! `recovery`: password recovery across the data server and the key server.

use std::io::IsTerminal;
use std::path::Path;

use cachet_client::{Client, ClientError};
use serde_json::json;

use cachet_cli::cli::{RecoveryAction, RecoveryArgs, RecoveryCodes};
use cachet_cli::error::CliError;

use super::ctx::{env_secret, poll_dev_code, prompt_line, Ctx, Result};

fn recovery_password(confirm: bool) -> Result<String> {
    if let Ok(p) = std::env::var("CACHET_RECOVERY_PASSWORD") {
        if !p.is_empty() {
            return Ok(p);
        }
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "no recovery password",
            "set CACHET_RECOVERY_PASSWORD or run in a terminal",
        ));
    }
    let a = rpassword::prompt_password("Recovery password: ").unwrap_or_default();
    if confirm {
        let b = rpassword::prompt_password("Repeat it: ").unwrap_or_default();
        if a != b {
            return Err(CliError::usage(
                "the two entries differ",
                "run the command again",
            ));
        }
    }
    Ok(a)
}

async fn recovery_code(file: Option<&Path>, identifier: &str, which: &str) -> Result<String> {
    match file {
        Some(file) => poll_dev_code(file, identifier).await.ok_or_else(|| {
            CliError::usage(
                format!("no code for {identifier} in {}", file.display()),
                "name the dev-codes.txt of a server run with the dev notifier",
            )
        }),
        None => prompt_line(&format!("Code from the {which} sent to {identifier}: "))
            .ok_or_else(|| CliError::usage("no one-time code given", "type the code when asked")),
    }
}

async fn recovery_checks(
    servers: &cachet_client::recovery::RecoveryServers,
    identifier: &str,
    codes: &RecoveryCodes,
) -> Result<cachet_client::recovery::Checks> {
    let started = servers.start(identifier).await?;
    let data = recovery_code(codes.dev_codes.as_deref(), identifier, "data server").await?;
    let key = recovery_code(codes.key_dev_codes.as_deref(), identifier, "key server").await?;
    Ok(started.with_codes(&data, &key))
}

pub(super) async fn recovery(ctx: &Ctx, args: RecoveryArgs) -> Result<()> {
    use cachet_client::recovery::RecoveryServers;
    let params = cachet_recovery::HardeningParams::RECOMMENDED;
    match args.action {
        RecoveryAction::Enable { codes } => {
            let client = ctx.unlocked()?;
            let password = recovery_password(true)?;
            let servers = RecoveryServers::pinned(
                client.server_url(),
                &codes.key_server,
                params,
                client.pinned_certificate(),
            )?;
            let checks = recovery_checks(&servers, client.identifier(), &codes).await?;
            client
                .enable_recovery(&codes.key_server, &checks, &password, params)
                .await?;
            ctx.emit(json!({ "recovery": "enabled", "user_id": client.user_id() }));
            Ok(())
        }
        RecoveryAction::Restore {
            identifier,
            name,
            codes,
        } => {
            if Client::exists(&ctx.profile) {
                return Err(ClientError::ProfileExists(ctx.profile.clone()).into());
            }
            let server = ctx.server.clone().ok_or_else(|| {
                CliError::usage("no server URL", "pass --server URL or set CACHET_SERVER")
            })?;
            let secret = env_secret().ok_or_else(|| {
                CliError::usage(
                    "no PIN or passphrase for the new profile",
                    "set CACHET_PIN (5 digits) or CACHET_PASSPHRASE",
                )
            })?;
            secret.check_new()?;
            let password = recovery_password(false)?;
            let servers =
                RecoveryServers::pinned(&server, &codes.key_server, params, ctx.ca.as_deref())?;
            let checks = recovery_checks(&servers, &identifier, &codes).await?;
            let recovered = Client::recover(
                &ctx.profile,
                &servers,
                &identifier,
                &checks,
                &password,
                &name,
                &secret,
                ctx.options(),
            )
            .await?;
            ctx.emit(json!({
                "recovered": recovered.client.user_id(),
                "key_version": recovered.client.key_version(),
                "recovered_generations": recovered.recovered_generations,
            }));
            Ok(())
        }
    }
}
