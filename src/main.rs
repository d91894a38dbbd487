//! The `portcullis` binary: parse the command line, run the command, exit with its status.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: a request allocates and frees many small buffers (headers, JSON, statements), and
/// glibc's allocator spent about a tenth of the CPU of a bare request in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
