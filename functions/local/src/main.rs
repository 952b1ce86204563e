//! `cargo run`: the all-in-one local server. `cargo run -- token --practice prc_demo --role admin` prints a
//! token to try the API with curl.

use clap::{Parser, Subcommand};

use std::sync::Arc;
use std::time::Duration;

use adapters::config::{AlertSenderKind, Config, StoreFlags};
use adapters::senders::{AwsSender, RecordingSender};
use adapters::texting::AwsTextSender;
use domain::alert::AlertSender;
use domain::identity::Role;
use domain::texting::TextSender;

#[derive(Parser)]
#[command(about = "Veterinary conversation backend: the all-in-one local server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Keep the data in DIR (default: DATA_DIR, else $XDG_DATA_HOME/vetchat or ~/.local/share/vetchat).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// Keep the data in memory only: a throwaway run, gone when the server stops.
    #[arg(long, global = true)]
    in_memory: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every route on 127.0.0.1:$PORT (the default).
    Serve,
    /// Print a bearer token signed with LOCAL_JWT_SECRET.
    Token {
        /// The practice (tenant) id the token belongs to.
        #[arg(long, default_value = "prc_demo")]
        practice: String,
        /// admin, staff, client or integration.
        #[arg(long, default_value = "admin")]
        role: String,
        /// The user id (`sub`); defaults to "<role>-1".
        #[arg(long)]
        sub: Option<String>,
        /// Validity in hours.
        #[arg(long, default_value_t = 24)]
        hours: i64,
    },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let cli = Cli::parse();
    let config = Config::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Token {
            practice,
            role,
            sub,
            hours,
        } => {
            let role = Role::parse(&role).ok_or(format!(
                "unknown role {role:?}: admin, staff, client or integration"
            ))?;
            let sub = sub.unwrap_or_else(|| format!("{}-1", role.as_str()));
            let now = adapters::now().timestamp();
            println!(
                "{}",
                local::sign_token(
                    config.local_server_jwt_secret(),
                    &practice,
                    role,
                    &sub,
                    now,
                    hours * 3600
                )
            );
            Ok(())
        }
        Command::Serve => {
            adapters::telemetry::init(&config);
            let flags = StoreFlags {
                data_dir: cli.data_dir,
                in_memory: cli.in_memory,
            };
            let (store, changes) = match local::build_store(&config, &flags).await {
                Ok(built) => built,
                Err(e) => {
                    // Said plainly (it names the directory and what to do), not as a debug dump.
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            };
            let recorder = RecordingSender::new();
            let sender: Arc<dyn AlertSender> = match config.alert_sender {
                AlertSenderKind::Record => Arc::new(recorder.clone()),
                AlertSenderKind::Aws => {
                    let sdk = adapters::aws::sdk_config(&config).await?;
                    let from = config
                        .sender_email
                        .clone()
                        .ok_or("ALERT_SENDER=aws needs SENDER_EMAIL")?;
                    Arc::new(AwsSender::new(&sdk, from))
                }
            };
            local::spawn_alert_worker(
                store.clone(),
                sender.clone(),
                config.dashboard_url.clone(),
                Duration::from_millis(500),
            );
            let sockets = local::live::LocalSockets::default();
            let text_sender: Arc<dyn TextSender> = match config.text_sender {
                AlertSenderKind::Record => Arc::new(recorder.clone()),
                AlertSenderKind::Aws => {
                    let sdk = adapters::aws::sdk_config(&config).await?;
                    Arc::new(AwsTextSender::new(
                        &sdk,
                        config.sms_configuration_set.clone(),
                    ))
                }
            };
            local::live::spawn_fanout(store.clone(), sockets.clone(), text_sender.clone(), changes);
            local::spawn_text_sweep(store.clone(), text_sender.clone(), Duration::from_secs(30));
            let services = local::LocalServices {
                recorder,
                sender,
                text_sender,
                dashboard_url: config.dashboard_url.clone(),
                websocket_url: config.websocket_url.clone(),
                client_rate_limits: config.client_rate_limits,
                sockets,
                cors_allow_origins: config.cors_allow_origins.clone(),
            };
            local::spawn_reminder_timer(store.clone(), Duration::from_secs(60));
            let app = local::app(store, config.local_server_jwt_secret(), services);
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], config.port));
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!("listening on http://{addr} (live updates: ws://{addr}/ws)");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown())
                .await?;
            Ok(())
        }
    }
}

/// Ctrl-C or SIGTERM (`kill`): the server stops taking requests, finishes those in flight and closes the
/// data file cleanly (a kill -9 loses nothing either, but the next start then checks the file first).
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
