//! `server` and `keyserver`: running the two servers and registering their operators.

use cachet_cli::cli::{KeyserverAction, KeyserverArgs, ServerAction, ServerArgs};
use cachet_cli::error::CliError;

use super::ctx::Result;

/// An operator's public key as `add-operator` takes it: hex (the servers check its length).
fn operator_public_key(hex_key: &str) -> Result<Vec<u8>> {
    hex::decode(hex_key.trim()).map_err(|_| {
        CliError::usage(
            "the public key is not hex",
            "give the 32-byte Ed25519 key as 64 hex digits",
        )
    })
}

/// What `add-operator` reports: where the operator was written.
fn registered(
    name: &str,
    server: &str,
    database_url: Option<&str>,
    data_dir: &std::path::Path,
) -> String {
    match database_url {
        Some(_) => format!("operator op:{name} registered in the {server}'s PostgreSQL"),
        None => format!(
            "operator op:{name} registered in the {server} at {}",
            data_dir.display()
        ),
    }
}

/// Resolves on Ctrl-C: a server's signal to shut down gracefully.
async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

pub(super) async fn server(args: ServerArgs) -> Result<()> {
    let Some(ServerAction::AddOperator {
        name,
        public_key,
        config,
    }) = args.action
    else {
        cachet_server::init_logging(args.log_json);
        return Ok(cachet_server::serve(args.config, ctrl_c()).await?);
    };
    let key = operator_public_key(&public_key)?;
    let config = config.merged()?;
    let data_dir = config.data_dir_or_default();
    let database_url = config.database_url.as_deref();
    cachet_server::add_operator(&data_dir, database_url, &name, &key).await?;
    println!("{}", registered(&name, "server", database_url, &data_dir));
    Ok(())
}

pub(super) async fn keyserver(args: KeyserverArgs) -> Result<()> {
    match args.action {
        Some(KeyserverAction::Refresh {
            data_server,
            operator,
            operator_key,
            key_server,
        }) => {
            let text = std::fs::read_to_string(&operator_key)
                .map_err(|e| CliError::Io(format!("{}: {e}", operator_key.display())))?;
            let seed: [u8; 32] = hex::decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    CliError::usage(
                        "the operator key is not 32 bytes of hex",
                        "the file holds the operator's Ed25519 seed as 64 hex digits",
                    )
                })?;
            let key = cachet_crypto::SignKeyPair::from_seed(seed);
            let n = cachet_keyserver::refresh_shares(&key_server, &data_server, &operator, &key)
                .await?;
            println!("refreshed the key shares of {n} account(s)");
            Ok(())
        }
        Some(KeyserverAction::AddOperator {
            name,
            public_key,
            config,
        }) => {
            let key = operator_public_key(&public_key)?;
            let config = config.merged()?;
            if !cachet_keyserver::add_operator(&config, &name, &key).await? {
                return Err(CliError::usage(
                    format!("an operator named {name:?} exists already"),
                    "choose another name",
                ));
            }
            let data_dir = config.data_dir_or_default();
            let database_url = config.database_url.as_deref();
            println!(
                "{}",
                registered(&name, "key server", database_url, &data_dir)
            );
            Ok(())
        }
        None => {
            let config = args.config.merged()?;
            cachet_http::init_logging(config.log_json());
            Ok(cachet_keyserver::serve(config, ctrl_c()).await?)
        }
    }
}
