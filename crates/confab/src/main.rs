//! `confab`: the one binary. Subcommands serve the platform, migrate the
//! database, create the first credentials, check and test flows, and chat
//! with a bot from the terminal.

mod admin;
mod chat;
mod flow_cmd;
mod logs;

use std::path::PathBuf;

use admin::{KeyCommand, UserCommand, command_db};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use confab_server::App;
use confab_server::config::{RawSettings, Settings};
use confab_store::Store;
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "confab",
    version,
    about = "WhatsApp conversation platform: Twilio and Meta WhatsApp Cloud API, one binary."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (webhooks, API, docs) and the outbox worker.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DbArgs),
    /// Manage users who log in to the API.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API keys for other systems.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Check, test and reload flows.
    Flow {
        #[command(subcommand)]
        command: FlowCommand,
    },
    /// Talk to a bot from the terminal, as a contact would (same engine and database).
    Chat {
        /// The bot to talk to, by slug or id [default: default]
        #[arg(long)]
        bot: Option<String>,
        /// The flow to talk to [default: the bot's default flow; DEFAULT_FLOW for the default bot]
        #[arg(long)]
        flow: Option<String>,
        /// The phone number you write from.
        #[arg(long, default_value = "+15551234567")]
        from: String,
        /// Your WhatsApp profile name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        flows: FlowsArgs,
    },
    /// The key that seals the credentials Confab keeps (CONFAB_MASTER_KEY,
    /// or on SQLite a key file beside the database).
    MasterKey {
        #[command(subcommand)]
        command: MasterKeyCommand,
    },
    /// Load demo orders for the pms_menu bot into the database in use.
    Demo {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        flows: FlowsArgs,
    },
}

#[derive(Subcommand)]
enum MasterKeyCommand {
    /// Print a new random key, for CONFAB_MASTER_KEY.
    New,
    /// Reseal every stored credential under a new key. With a key file the
    /// file is replaced; with CONFAB_MASTER_KEY the new key is printed, to
    /// be set before the next start.
    Rotate {
        /// The new key (base64 or hex of 32 bytes) [default: a random one]
        #[arg(long, env = "CONFAB_NEW_MASTER_KEY", hide_env_values = true)]
        new_key: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Args)]
struct FlowsArgs {
    /// Flow and collection files that add to or override the bundled ones [default: ./flows]
    #[arg(long, env = "FLOWS_DIR")]
    flows_dir: Option<String>,
}

#[derive(Subcommand)]
enum FlowCommand {
    /// Check flow and collection files; exits non-zero on any problem.
    Validate {
        /// Files to check [default: every file in FLOWS_DIR]
        files: Vec<PathBuf>,
        #[command(flatten)]
        flows: FlowsArgs,
    },
    /// Run conversation transcripts; exits non-zero when one fails.
    Test {
        /// Transcripts [default: every one under FLOWS_DIR/tests]
        files: Vec<PathBuf>,
        #[command(flatten)]
        flows: FlowsArgs,
    },
    /// Print the JSON Schema of flow files.
    Schema,
    /// Ask a running server to read its flows again (as SIGHUP does).
    Reload {
        #[arg(long, env = "CONFAB_URL", default_value = "http://127.0.0.1:8000")]
        url: String,
        /// An API key (confab key create).
        #[arg(long, env = "CONFAB_API_KEY", hide_env_values = true)]
        key: String,
    },
}

#[derive(Args)]
pub(crate) struct DbArgs {
    /// sqlite://PATH or postgres://... [default: sqlite://./data/confab.db]
    #[arg(long, env = "DATABASE_URL")]
    pub(crate) database_url: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Address to listen on [default: 0.0.0.0]
    #[arg(long, env = "HOST")]
    host: Option<String>,
    /// Port to listen on [default: 8000]
    #[arg(long, env = "PORT")]
    port: Option<String>,
    /// The external base URL Twilio signs (e.g. https://bot.example.com)
    #[arg(long, env = "PUBLIC_URL")]
    public_url: Option<String>,
    /// Write logs as JSON lines.
    #[arg(long, env = "LOG_JSON")]
    log_json: bool,
    /// The flow a contact without a conversation starts in [default: product_review]
    #[arg(long, env = "DEFAULT_FLOW")]
    default_flow: Option<String>,
    #[command(flatten)]
    flows: FlowsArgs,
    /// Load demo orders for the pms_menu bot before serving.
    #[arg(long)]
    demo: bool,
}

fn settings(db: &DbArgs, f: impl FnOnce(&mut RawSettings)) -> anyhow::Result<Settings> {
    let mut raw = RawSettings::from_env();
    if db.database_url.is_some() {
        raw.database_url = db.database_url.clone();
    }
    f(&mut raw);
    Settings::from_raw(&raw).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn open(db: &DbArgs) -> anyhow::Result<Store> {
    let s = settings(db, |_| {})?;
    let store = Store::connect(&s.database_url)
        .await
        .context("DATABASE_URL: cannot open the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

pub(crate) fn now_ms() -> i64 {
    use confab_server::clock::Clock;
    confab_server::clock::SystemClock.now_ms()
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            logs::init(args.log_json);
            let settings = settings(&args.db, |raw| {
                raw.host = args.host.clone().or(raw.host.take());
                raw.port = args.port.clone().or(raw.port.take());
                raw.public_url = args.public_url.clone().or(raw.public_url.take());
                raw.default_flow = args.default_flow.clone().or(raw.default_flow.take());
                raw.flows_dir = args.flows.flows_dir.clone().or(raw.flows_dir.take());
            })?;
            for w in settings.warnings() {
                tracing::warn!("{w}");
            }
            let addr = format!("{}:{}", settings.host, settings.port);
            let app = App::build(settings).await?;
            if args.demo {
                let added = confab_server::demo::load_demo_orders(
                    &app.state.store,
                    &app.state.registry.catalog(confab_store::DEFAULT_BOT),
                    now_ms(),
                )
                .await?;
                tracing::info!(added, "demo orders loaded");
            }
            let registry = app.state.registry.clone();
            tokio::spawn(reload_on_hangup(registry));
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("HOST/PORT: cannot listen on {addr}"))?;
            tracing::info!(address = %listener.local_addr()?, database = app.state.store.backend().name(), "confab is serving");
            let (stop, stopped) = watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down");
                let _ = stop.send(true);
            });
            app.serve(listener, stopped).await
        }
        Command::Migrate(db) => {
            let store = open(&db).await?;
            println!("migrations applied ({})", store.backend().name());
            Ok(())
        }
        Command::User { command } => {
            let store = open(command_db(&command)).await?;
            admin::user(command, store).await
        }
        Command::Flow { command } => {
            let ok = match command {
                FlowCommand::Validate { files, flows } => {
                    flow_cmd::validate(&files, &flows_dir(&flows))?
                }
                FlowCommand::Test { files, flows } => flow_cmd::test(&files, &flows_dir(&flows))?,
                FlowCommand::Schema => {
                    flow_cmd::schema()?;
                    true
                }
                FlowCommand::Reload { url, key } => flow_cmd::reload(&url, &key).await?,
            };
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Chat {
            bot,
            flow,
            from,
            name,
            db,
            flows,
        } => {
            let settings = settings(&db, |raw| {
                raw.flows_dir = flows.flows_dir.clone().or(raw.flows_dir.take())
            })?;
            chat::chat(settings, bot, flow, &from, name).await
        }
        Command::MasterKey { command } => match command {
            MasterKeyCommand::New => {
                println!(
                    "{}",
                    confab_server::secrets::MasterKey::generate().encoded()
                );
                Ok(())
            }
            MasterKeyCommand::Rotate { new_key, db } => {
                let settings = settings(&db, |_| {})?;
                let store = open(&db).await?;
                let new_key = new_key
                    .as_deref()
                    .map(confab_server::secrets::MasterKey::parse)
                    .transpose()?;
                let setting = std::env::var("CONFAB_MASTER_KEY")
                    .ok()
                    .filter(|k| !k.trim().is_empty());
                let done = confab_server::secrets::rotate(
                    &store,
                    setting.as_deref(),
                    &settings.database_url,
                    new_key,
                    now_ms(),
                )
                .await?;
                println!(
                    "{} credential(s) resealed under master key {}",
                    done.resealed,
                    done.new_key.id()
                );
                match done.file {
                    Some(path) => println!("the key file {} holds the new key", path.display()),
                    None => {
                        println!("set CONFAB_MASTER_KEY to the new key before the next start:");
                        println!("{}", done.new_key.encoded());
                    }
                }
                Ok(())
            }
        },
        Command::Demo { db, flows } => {
            let settings = settings(&db, |raw| {
                raw.flows_dir = flows.flows_dir.clone().or(raw.flows_dir.take())
            })?;
            let store = open(&db).await?;
            let (registry, _) = confab_server::catalog::Registry::load(
                store.clone(),
                Some(&settings.flows_dir),
                now_ms(),
            )
            .await?;
            let added = confab_server::demo::load_demo_orders(
                &store,
                &registry.catalog(confab_store::DEFAULT_BOT),
                now_ms(),
            )
            .await?;
            println!(
                "{added} demo order(s) added: ORD-12345 (on track), ORD-12346 (completed), ORD-12347 (at risk), ORD-12348 (late)"
            );
            Ok(())
        }
        Command::Key { command } => {
            let db = match &command {
                KeyCommand::Create { db, .. }
                | KeyCommand::List { db }
                | KeyCommand::Revoke { db, .. } => db,
            };
            let store = open(db).await?;
            admin::key(command, store).await
        }
    }
}

fn flows_dir(args: &FlowsArgs) -> PathBuf {
    args.flows_dir
        .clone()
        .unwrap_or_else(|| "./flows".into())
        .into()
}

/// SIGHUP reads the flows again; a broken file keeps its previous version.
async fn reload_on_hangup(registry: std::sync::Arc<confab_server::catalog::Registry>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match registry.reload(now_ms()).await {
                Ok(report) => {
                    for p in &report.problems {
                        tracing::warn!("flows: {p}");
                    }
                    tracing::info!(flows = ?report.flows, "flows reloaded");
                }
                Err(e) => tracing::error!(error = %e, "reloading flows failed"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = registry;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn main() -> std::process::ExitCode {
    // `.env` fills in what the environment does not set; flags win over both.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: what is wrong and, through the context chain, why.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
