//! `confab`: the one binary. Subcommands serve the platform, migrate the
//! database and create the first credentials.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use confab_server::config::{RawSettings, Settings};
use confab_server::{App, auth};
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
}

#[derive(Args)]
struct DbArgs {
    /// sqlite://PATH or postgres://... [default: sqlite://./data/confab.db]
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
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
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from stdin (or prompted for).
    Add {
        name: String,
        #[arg(long, default_value = "admin", value_parser = ["admin", "operator"])]
        role: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an API key. It is printed once, alone on the last line.
    Create {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
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

fn now_ms() -> i64 {
    use confab_server::clock::Clock;
    confab_server::clock::SystemClock.now_ms()
}

/// The password from a prompt that does not echo it, or from piped stdin.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let pw = if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        if rpassword::prompt_password("Again: ")? != first {
            anyhow::bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if pw.chars().count() < 8 {
        anyhow::bail!("the password must be at least 8 characters");
    }
    Ok(pw)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            init_logs(args.log_json);
            let settings = settings(&args.db, |raw| {
                raw.host = args.host.clone().or(raw.host.take());
                raw.port = args.port.clone().or(raw.port.take());
                raw.public_url = args.public_url.clone().or(raw.public_url.take());
            })?;
            for w in settings.warnings() {
                tracing::warn!("{w}");
            }
            let addr = format!("{}:{}", settings.host, settings.port);
            let app = App::build(settings).await?;
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
        Command::User {
            command: UserCommand::Add { name, role, db },
        } => {
            let name = name.trim().to_string();
            if name.is_empty() || name.chars().count() > 64 {
                anyhow::bail!("the user name must be 1 to 64 characters");
            }
            let store = open(&db).await?;
            let password = read_password()?;
            let hash = auth::hash_password(password).await?;
            let user = store.create_user(&name, &hash, &role, now_ms()).await?;
            println!("user {} created with role {}", user.username, user.role);
            Ok(())
        }
        Command::Key {
            command: KeyCommand::Create { name, db },
        } => {
            let store = open(&db).await?;
            let (key, hash) = auth::new_api_key();
            let created = store.create_api_key(&name, &hash, now_ms()).await?;
            println!(
                "API key {} ({}) created; it is shown only once:",
                created.id, created.name
            );
            println!("{key}");
            Ok(())
        }
    }
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
