use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    ownid_bridge::cli::run().await
}
