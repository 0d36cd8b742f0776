//! `cachet`: the command-line client, data server and demo.

use std::io::Write;

use clap::Parser;

use cachet_cli::cli::Cli;
use cachet_cli::error::{exit, CliError};

mod commands;

fn main() {
    let cli = Cli::parse();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(exit::FAILURE);
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // Do not wait for lingering blocking tasks (a long poll cancelled by an error).
    runtime.shutdown_background();
    match result {
        Ok(()) => std::process::exit(exit::OK),
        Err(e) => {
            report(&e, json);
            std::process::exit(e.exit_code());
        }
    }
}

fn report(e: &CliError, json: bool) {
    let mut err = std::io::stderr().lock();
    if json {
        let body = serde_json::json!({
            "error": {
                "code": e.exit_code(),
                "kind": e.kind(),
                "message": e.to_string(),
                "hint": e.hint(),
            }
        });
        let _ = writeln!(err, "{body}");
    } else {
        let _ = writeln!(err, "error: {e}");
        if let Some(hint) = e.hint() {
            let _ = writeln!(err, "  hint: {hint}");
        }
    }
}
