// The corpus replay shared by the crates' `tests/fuzz_corpus.rs` (each `include!`s this
// file): every seed and corpus input of a fuzz target goes through the target's body
// once more, so what a fuzzer once found stays a test.

/// `fuzz/<kind>/<target>/`: `kind` is `seeds` (hand-made valid inputs, kept apart so
/// that `cargo fuzz cmin`, which rewrites the corpus folder, cannot drop them) or `corpus`.
fn fuzz_folder(kind: &str, target: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target)
}

/// Whether to (re)write the seeds with the real encoders first (`CACHET_WRITE_FUZZ_SEEDS=1`).
fn writing_seeds() -> bool {
    std::env::var_os("CACHET_WRITE_FUZZ_SEEDS").is_some()
}

/// Writes the seed `fuzz/seeds/<target>/<file>`.
fn write_seed(target: &str, file: &str, bytes: impl AsRef<[u8]>) {
    let dir = fuzz_folder("seeds", target);
    std::fs::create_dir_all(&dir).expect("seed folder");
    std::fs::write(dir.join(file), bytes).expect("seed written");
}

/// Runs `check` on the seeds, then the corpus, of `target` (either folder may be
/// missing); returns how many inputs it ran.
fn replay(target: &str, check: impl Fn(&[u8])) -> usize {
    let mut count = 0;
    for kind in ["seeds", "corpus"] {
        let Ok(entries) = std::fs::read_dir(fuzz_folder(kind, target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable folder entry").path();
            if path.is_file() {
                check(&std::fs::read(&path).expect("readable input"));
                count += 1;
            }
        }
    }
    count
}
