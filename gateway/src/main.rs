//! The `creditgate` binary: parse the command line, set up telemetry, run.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    creditgate_certs::install_default_provider();
    let cli = creditgate_gateway::cli::Cli::parse();
    creditgate_gateway::cli::init_tracing(cli.log_json);
    match creditgate_gateway::cli::run(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
