//! The `creditgate` command line.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use creditgate_connector::{Connector, ConnectorConfig};

use crate::config::GatewayConfig;
use crate::gateway::Gateway;

/// creditgate: a mutual-TLS federated query gateway for credit information.
#[derive(Debug, Parser)]
#[command(name = "creditgate", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the guided demo: certificates, data, connectors, gateway, a tour of queries.
    Demo(crate::demo::DemoArgs),
    /// Run the gateway.
    Gateway {
        /// Gateway config file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Run a connector in front of one source's data.
    Connector {
        /// Connector config file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Generate the synthetic credit federation (Parquet).
    Datagen {
        /// Output directory.
        #[arg(long)]
        dir: PathBuf,
        /// Row-count multiplier for the large tables.
        #[arg(long, default_value_t = 1)]
        scale: u32,
        /// Random seed.
        #[arg(long, default_value_t = 20261128)]
        seed: u64,
    },
    /// Certificates: dev CA, issuing, revocation.
    #[command(subcommand)]
    Certs(creditgate_certs::cli::CertsCommand),
}

/// Logs go to stderr; `RUST_LOG` overrides the default (`info`, DataFusion at `warn`).
pub fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,datafusion=warn,datafusion_optimizer=warn,h2=warn,hyper=warn,tonic=warn")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Demo(args) => runtime()?.block_on(crate::demo::run(args)),
        Command::Gateway { config } => runtime()?.block_on(async move {
            let config = GatewayConfig::load(&config).map_err(|e| e.to_string())?;
            let gateway = Gateway::new(config).await.map_err(|e| e.to_string())?;
            let running = Arc::clone(&gateway).start().await.map_err(|e| e.to_string())?;
            println!("flight sql: {}", running.flight_addr);
            println!("http:       {}", running.http_addr);
            shutdown_signal().await;
            tracing::info!("shutting down");
            running.stop().await.map_err(|e| e.to_string())
        }),
        Command::Connector { config } => runtime()?.block_on(async move {
            let config = ConnectorConfig::load(&config).map_err(|e| e.to_string())?;
            let connector = Connector::open(config).await.map_err(|e| e.to_string())?;
            let running = connector.start().await.map_err(|e| e.to_string())?;
            println!("flight sql: {}", running.addr);
            shutdown_signal().await;
            running.stop().await.map_err(|e| e.to_string())
        }),
        Command::Datagen { dir, scale, seed } => {
            let options = creditgate_datagen::GenOptions {
                dir,
                scale,
                seed,
                as_of: chrono::Local::now().date_naive(),
                progress: true,
            };
            let manifest = creditgate_datagen::generate(&options).map_err(|e| e.to_string())?;
            let tables: usize = manifest.sources.iter().map(|s| s.tables.len()).sum();
            let rows: u64 = manifest.sources.iter().flat_map(|s| &s.tables).map(|t| t.rows).sum();
            println!(
                "wrote {} sources, {tables} tables, {rows} rows to {}",
                manifest.sources.len(),
                options.dir.display()
            );
            Ok(())
        }
        Command::Certs(command) => creditgate_certs::cli::run(command).map_err(|e| e.to_string()),
    }
}
