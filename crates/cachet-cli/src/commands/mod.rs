//! What each subcommand does, on top of the SDK: one module a command family, the
//! settings they share in `ctx`.

mod attachments;
mod cases;
mod ctx;
mod groups;
mod messaging;
mod operator;
mod recovery;
mod register;
mod servers;
mod verify;

use serde_json::{json, Value};

use cachet_cli::cli::{Cli, Command};

use ctx::{Ctx, Result};

/// Runs one command line.
pub async fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx::new(&cli)?;
    match cli.command {
        Command::Register(args) => register::register(&ctx, args).await,
        Command::Contacts(args) => messaging::contacts(&ctx, args).await,
        Command::Send(args) => messaging::send(&ctx, args).await,
        Command::Inbox(args) => messaging::inbox(&ctx, args).await,
        Command::Attach(args) => attachments::attach(&ctx, args).await,
        Command::Fetch(args) => attachments::fetch(&ctx, args).await,
        Command::Group(args) => groups::group(&ctx, args).await,
        Command::Case(args) => cases::case(&ctx, args).await,
        Command::Verify(args) => verify::verify(&ctx, args).await,
        Command::Lock => {
            ctx.open()?.lock()?;
            ctx.report("locked", json!({"locked": true}));
            Ok(())
        }
        Command::Unlock => {
            ctx.unlocked()?.remember_unlock()?;
            ctx.report(
                "unlocked for 10 minutes after the last use (`cachet lock` to lock now)",
                json!({"unlocked": true}),
            );
            Ok(())
        }
        Command::Status => register::status(&ctx),
        Command::Server(args) => servers::server(*args).await,
        Command::Recovery(args) => recovery::recovery(&ctx, args).await,
        Command::Keyserver(args) => servers::keyserver(*args).await,
        Command::Operator(args) => operator::operator(&ctx, args).await,
        Command::Audit(args) => verify::audit(&ctx, args).await,
        Command::Demo(args) => {
            let options = cachet_cli::demo::DemoOptions {
                data_dir: args.data_dir,
                attachment_bytes: args.attachment_mib.max(1) * 1024 * 1024,
                show_progress: !ctx.json,
            };
            // With --json, stdout carries only the report; the narration goes to stderr.
            let report = if ctx.json {
                cachet_cli::demo::run(options, &mut std::io::stderr()).await?
            } else {
                cachet_cli::demo::run(options, &mut std::io::stdout()).await?
            };
            if ctx.json {
                ctx.emit(serde_json::to_value(&report).unwrap_or(Value::Null));
            }
            Ok(())
        }
        Command::Bench(args) => {
            let options = cachet_cli::bench::BenchOptions {
                users: args.users,
                duration: std::time::Duration::from_secs(args.seconds.max(1)),
                database_url: args.database_url,
                data_dir: args.data_dir,
                batch: args.batch,
            };
            let report = cachet_cli::bench::run(options, &mut std::io::stderr()).await?;
            if ctx.json {
                ctx.emit(serde_json::to_value(&report).unwrap_or(Value::Null));
            } else {
                print!("{}", cachet_cli::bench::render(&report));
            }
            Ok(())
        }
    }
}
