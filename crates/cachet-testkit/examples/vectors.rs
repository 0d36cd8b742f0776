//! Writes (`--write`) or checks (`--check`, the default) the test vectors of
//! `docs/vectors/`, generated from cachet's own code with fixed keys, nonces and
//! randomness:
//!
//! ```text
//! cargo run -p cachet-testkit --example vectors -- --write
//! ```

#[path = "../vectors/generate.rs"]
#[allow(dead_code)] // each of the example and the test uses a part
mod generate;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let write = std::env::args().any(|a| a == "--write");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors");
    let mut stale = 0;
    for file in generate::all() {
        let path = dir.join(file.name);
        let text = generate::render(&file.content);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == text {
            println!("unchanged {}", path.display());
        } else if write {
            if let Err(e) = std::fs::write(&path, &text) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("wrote     {}", path.display());
        } else {
            println!("STALE     {}", path.display());
            stale += 1;
        }
    }
    if stale > 0 {
        eprintln!("{stale} vector file(s) differ from the code; run with --write");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
