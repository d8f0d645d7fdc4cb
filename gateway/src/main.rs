//! The `creditgate` binary: parse the command line, set up telemetry, run.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc malloc: query planning and Arrow decoding
/// allocate many small objects from many threads, and glibc's allocator was
/// about a fifth of a lookup profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    creditgate_certs::install_default_provider();
    let cli = creditgate_gateway::cli::Cli::parse();
    let log_file = match &cli.command {
        creditgate_gateway::cli::Command::Demo(args) => args.log_file(),
        _ => None,
    };
    if let Err(e) = creditgate_gateway::cli::init_tracing(cli.log_json, log_file.as_deref()) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match creditgate_gateway::cli::run(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
