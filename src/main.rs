//! The `portcullis` binary: parse the command line, run the command, exit with its status.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = portcullis::cli::Cli::parse();
    match portcullis::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("portcullis: {}", failure.message);
            ExitCode::from(failure.status)
        }
    }
}
