//! Generates the gRPC code with protox (a pure-Rust protobuf compiler): no system protoc needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/spikerl.proto");
    let descriptors = protox::compile(["proto/spikerl.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
