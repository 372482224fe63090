//! `confab user …` and `confab key …`: the people and systems that may
//! manage Confab, and what each may do. Every change takes effect on the
//! next request, also on servers already running: credentials are checked
//! against the database each time.

use std::io::{BufRead, IsTerminal};

use clap::Subcommand;
use confab_model::Role;
use confab_server::auth;
use confab_store::{Change, Store, StoreError};

use crate::{DbArgs, now_ms};

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user; the password is read from stdin (or prompted for).
    Add {
        name: String,
        /// admin, editor, agent or viewer (see the README's table of roles).
        #[arg(long, default_value = "admin")]
        role: Role,
        /// Limit the user to these bots (slugs or ids, comma-separated).
        #[arg(long, value_delimiter = ',')]
        bots: Option<Vec<String>>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List users, their roles and whether they are disabled.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Give a user another role; it applies to their next request.
    SetRole {
        name: String,
        role: Role,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Set a new password (read like `add`'s); the user's tokens stop working.
    SetPassword {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Stop a user from logging in; their tokens stop working at once.
    Disable {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Let a disabled user log in again.
    Enable {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Remove a user; their tokens stop working at once.
    Delete {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// Create an API key. It is printed once, alone on the last line.
    Create {
        name: String,
        /// admin, editor, agent or viewer (see the README's table of roles).
        #[arg(long, default_value = "admin")]
        role: Role,
        /// Limit the key to these bots (slugs or ids, comma-separated).
        #[arg(long, value_delimiter = ',')]
        bots: Option<Vec<String>>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List API keys (never the keys themselves).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a key by its id (from `key list`); it stops working at once.
    Revoke {
        id: i64,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// The database a user command names.
pub(crate) fn command_db(c: &UserCommand) -> &DbArgs {
    match c {
        UserCommand::Add { db, .. }
        | UserCommand::List { db }
        | UserCommand::SetRole { db, .. }
        | UserCommand::SetPassword { db, .. }
        | UserCommand::Disable { db, .. }
        | UserCommand::Enable { db, .. }
        | UserCommand::Delete { db, .. } => db,
    }
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
    if pw.len() > 1024 {
        anyhow::bail!("the password must be at most 1024 bytes");
    }
    Ok(pw)
}

fn date(ms: Option<i64>) -> String {
    ms.and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

/// Changes made here are audited as the CLI's.
fn cli() -> Change<'static> {
    Change::by("cli", now_ms())
}

/// "no user ana" rather than "not found"; a refusal as it is.
fn named(what: String) -> impl FnOnce(StoreError) -> anyhow::Error {
    move |e| match e {
        StoreError::NotFound => anyhow::anyhow!("no {what}"),
        StoreError::Refused(why) => anyhow::anyhow!("{what}: {why}"),
        e => e.into(),
    }
}

/// What a limit to some bots says, for a message.
fn limited(bots: Option<&[i64]>) -> String {
    match bots {
        Some(ids) => {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            format!(", limited to bots {}", ids.join(", "))
        }
        None => String::new(),
    }
}

/// The ids of the bots named by slug or id; an unknown one is an error.
async fn bot_ids(store: &Store, bots: Option<Vec<String>>) -> anyhow::Result<Option<Vec<i64>>> {
    let Some(keys) = bots else {
        return Ok(None);
    };
    let mut ids = Vec::new();
    for key in keys.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
        let bot = store
            .bot(key)
            .await?
            .ok_or_else(|| anyhow::anyhow!("--bots: no bot {key:?}"))?;
        ids.push(bot.id);
    }
    if ids.is_empty() {
        anyhow::bail!("--bots: name at least one bot");
    }
    Ok(Some(ids))
}

pub(crate) async fn user(command: UserCommand, store: Store) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name, role, bots, ..
        } => {
            let name = name.trim().to_string();
            if name.is_empty() || name.chars().count() > 64 {
                anyhow::bail!("the user name must be 1 to 64 characters");
            }
            let bots = bot_ids(&store, bots).await?;
            let hash = auth::hash_password(read_password()?).await?;
            let user = store
                .create_limited_user(&name, &hash, role, bots.as_deref(), &cli())
                .await?;
            println!(
                "user {} created with role {}{}",
                user.username,
                user.role,
                limited(bots.as_deref())
            );
        }
        UserCommand::List { .. } => {
            println!("{:<24} {:<8} {:<26} disabled", "user", "role", "created");
            for u in store.users().await? {
                println!(
                    "{:<24} {:<8} {:<26} {}",
                    u.username,
                    u.role,
                    date(Some(u.created_ms)),
                    if u.disabled_ms.is_some() {
                        date(u.disabled_ms)
                    } else {
                        "no".into()
                    }
                );
            }
        }
        UserCommand::SetRole { name, role, .. } => {
            let u = store
                .set_user_role(&name, role, &cli())
                .await
                .map_err(named(format!("user {name}")))?;
            println!("user {} now has the role {}", u.username, u.role);
        }
        UserCommand::SetPassword { name, .. } => {
            if store.user_by_name(&name).await?.is_none() {
                anyhow::bail!("no user {name}");
            }
            let hash = auth::hash_password(read_password()?).await?;
            store
                .set_user_password(&name, &hash, &cli())
                .await
                .map_err(named(format!("user {name}")))?;
            println!("password of {name} changed; their earlier tokens no longer work");
        }
        UserCommand::Disable { name, .. } => {
            store
                .disable_user(&name, &cli())
                .await
                .map_err(named(format!("user {name}")))?;
            println!("user {name} disabled; their tokens no longer work");
        }
        UserCommand::Enable { name, .. } => {
            store
                .enable_user(&name, &cli())
                .await
                .map_err(named(format!("user {name}")))?;
            println!("user {name} may log in again");
        }
        UserCommand::Delete { name, .. } => {
            store
                .delete_user(&name, &cli())
                .await
                .map_err(named(format!("user {name}")))?;
            println!("user {name} deleted; their tokens no longer work");
        }
    }
    Ok(())
}

pub(crate) async fn key(command: KeyCommand, store: Store) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create {
            name, role, bots, ..
        } => {
            let name = name.trim().to_string();
            if name.is_empty() || name.chars().count() > 64 {
                anyhow::bail!("the key name must be 1 to 64 characters");
            }
            let bots = bot_ids(&store, bots).await?;
            let (key, hash) = auth::new_api_key();
            let created = store
                .create_limited_api_key(&name, &hash, role, bots.as_deref(), &cli())
                .await?;
            println!(
                "API key {} ({}, role {}{}) created; it is shown only once:",
                created.id,
                created.name,
                created.role,
                limited(bots.as_deref())
            );
            println!("{key}");
        }
        KeyCommand::List { .. } => {
            println!(
                "{:<5} {:<24} {:<8} {:<26} {:<26} revoked",
                "id", "name", "role", "created", "last used"
            );
            for k in store.api_keys().await? {
                println!(
                    "{:<5} {:<24} {:<8} {:<26} {:<26} {}",
                    k.id,
                    k.name,
                    k.role,
                    date(Some(k.created_ms)),
                    date(k.last_used_ms),
                    if k.revoked_ms.is_some() {
                        date(k.revoked_ms)
                    } else {
                        "no".into()
                    }
                );
            }
        }
        KeyCommand::Revoke { id, .. } => {
            let k = store
                .revoke_api_key(id, &cli())
                .await
                .map_err(named(format!("API key {id}")))?;
            println!("API key {} ({}) revoked; it no longer works", k.id, k.name);
        }
    }
    Ok(())
}
