//! The `spine` command. The work is in the modules; this is the entry point.
#![warn(missing_docs)]

mod cli;
mod dev;
mod error;
mod events;
mod new;
mod offsets;
mod schemas;
mod settings;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args).await {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
