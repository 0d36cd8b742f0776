//! Compiles the `.proto` files with protox (a pure-Rust protobuf compiler), so building
//! needs no `protoc` binary.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/cachet/v1/envelope.proto",
        "proto/cachet/v1/signature.proto",
        "proto/cachet/v1/api.proto",
        "proto/cachet/v1/vault.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
