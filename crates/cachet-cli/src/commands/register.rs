//! `register` and `status`: creating a profile and showing it.

use std::io::IsTerminal;

use cachet_client::{Client, ClientError, NewProfile};
use serde_json::json;

use cachet_cli::cli::RegisterArgs;
use cachet_cli::error::CliError;

use super::ctx::{env_secret, poll_dev_code, prompt_line, prompt_secret, Ctx, Result};

pub(super) async fn register(ctx: &Ctx, args: RegisterArgs) -> Result<()> {
    if Client::exists(&ctx.profile) {
        return Err(ClientError::ProfileExists(ctx.profile.clone()).into());
    }
    let server = ctx.server.clone().ok_or_else(|| {
        CliError::usage(
            "no server URL",
            "pass --server URL (e.g. http://127.0.0.1:7780) or set CACHET_SERVER",
        )
    })?;
    // Ask for the secret first, so a mistake costs no one-time code.
    let secret = match env_secret() {
        Some(s) => s,
        None if std::io::stdin().is_terminal() => {
            let a = prompt_secret("Choose a 5-digit PIN or a passphrase (10+ characters): ")
                .ok_or(ClientError::Locked)?;
            let b = prompt_secret("Repeat it: ").ok_or(ClientError::Locked)?;
            if a.expose_secret() != b.expose_secret() {
                return Err(CliError::usage(
                    "the two entries differ",
                    "run the command again",
                ));
            }
            a
        }
        None => {
            return Err(CliError::usage(
                "no PIN or passphrase",
                "set CACHET_PIN (5 digits) or CACHET_PASSPHRASE, or run in a terminal",
            ))
        }
    };
    secret.check_new()?;
    let mut options = ctx.options();
    if let Some(path) = &args.ca_cert {
        // Pinned in the profile: every later request of the profile trusts only it.
        let pem = std::fs::read(path).map_err(|e| {
            CliError::usage(
                format!("cannot read the certificate {}: {e}", path.display()),
                "--ca-cert names a PEM file: the server's certificate authority, or its self-signed certificate",
            )
        })?;
        options.root_certificate_pem = Some(pem);
    }
    let pending = Client::start_registration(&server, &args.identifier, options).await?;
    let code = match (&args.code, &args.dev_codes) {
        (Some(c), _) => c.clone(),
        (None, Some(file)) => poll_dev_code(file, &args.identifier).await.ok_or_else(|| {
            CliError::usage(
                format!("no code for {} in {}", args.identifier, file.display()),
                "--dev-codes names the dev-codes.txt of a server run with the dev notifier",
            )
        })?,
        (None, None) => prompt_line(&format!("One-time code sent to {}: ", args.identifier))
            .ok_or_else(|| {
                CliError::usage(
                    "no one-time code given",
                    "type the code, or pass --code CODE",
                )
            })?,
    };
    let client = pending
        .finish(NewProfile {
            dir: &ctx.profile,
            code: &code,
            display_name: &args.name,
            secret: &secret,
            previous: None,
        })
        .await?;
    ctx.keep(&client);
    ctx.report(
        format!(
            "registered {} as {} (key version {}); profile in {}",
            args.name,
            client.user_id(),
            client.key_version(),
            ctx.profile.display()
        ),
        json!({
            "user_id": client.user_id(),
            "key_version": client.key_version(),
            "profile": ctx.profile,
        }),
    );
    Ok(())
}

pub(super) fn status(ctx: &Ctx) -> Result<()> {
    let client = ctx.open()?;
    let unlocked = client.resume()?;
    ctx.say(format!(
        "user      {} ({})",
        client.display_name(),
        client.user_id()
    ));
    ctx.say(format!("identifier {}", client.identifier()));
    ctx.say(format!("server    {}", client.server_url()));
    ctx.say(format!("keys      version {}", client.key_version()));
    ctx.say(format!("profile   {}", client.dir().display()));
    ctx.report(
        format!(
            "lock      {}{}",
            if unlocked { "unlocked" } else { "locked" },
            match client.failed_unlocks() {
                0 => String::new(),
                n => format!(" ({n} failed attempt(s) since the last unlock)"),
            }
        ),
        json!({
            "user_id": client.user_id(),
            "display_name": client.display_name(),
            "server": client.server_url(),
            "key_version": client.key_version(),
            "unlocked": unlocked,
            "failed_unlocks": client.failed_unlocks(),
        }),
    );
    Ok(())
}
