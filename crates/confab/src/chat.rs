//! `confab chat`: a terminal standing in for a phone, over the same engine
//! and database as `serve`.

use std::io::{BufRead, Write};
use std::sync::Arc;

use confab_model::{Channel, Extra, InboundMessage, MessageKind, OutboundContent, PhoneNumber};
use confab_server::catalog::Registry;
use confab_server::clock::{Clock, SystemClock};
use confab_server::config::Settings;
use confab_server::runtime::Runtime;
use confab_store::Store;

fn show(content: &OutboundContent) -> String {
    match content {
        OutboundContent::Media { kind, url, caption } => {
            format!(
                "[{kind}: {url}]{}",
                caption
                    .as_ref()
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default()
            )
        }
        other => other.text().unwrap_or_default(),
    }
}

pub async fn chat(
    settings: Settings,
    bot: Option<String>,
    flow: Option<String>,
    from: &str,
    name: Option<String>,
) -> anyhow::Result<()> {
    let from = PhoneNumber::parse(from).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let store = Store::connect(&settings.database_url).await?;
    store.migrate().await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (registry, report) =
        Registry::load(store.clone(), Some(&settings.flows_dir), clock.now_ms()).await?;
    for p in &report.problems {
        eprintln!("warning: flows: {p}");
    }
    let bot = match &bot {
        Some(key) => store
            .bot(key)
            .await?
            .ok_or_else(|| anyhow::anyhow!("--bot: no bot {key:?}"))?,
        None => store
            .bot(&confab_store::DEFAULT_BOT.to_string())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the default bot is missing"))?,
    };
    let default_flow = match (flow, bot.id == confab_store::DEFAULT_BOT) {
        (Some(f), _) => f,
        (None, true) => settings
            .default_flow
            .clone()
            .ok_or_else(|| anyhow::anyhow!("DEFAULT_FLOW is none: name a flow with --flow"))?,
        (None, false) => bot.default_flow.clone().ok_or_else(|| {
            anyhow::anyhow!("bot {} has no default flow: name one with --flow", bot.slug)
        })?,
    };
    let catalog = registry.catalog(bot.id);
    if !catalog.flows.contains_key(&default_flow) {
        anyhow::bail!(
            "bot {} has no flow {default_flow:?} (its flows: {})",
            bot.slug,
            catalog.ids().join(", ")
        );
    }
    let settings = Arc::new(settings);
    let bots = confab_server::bots::Directory::load(store.clone(), settings.clone()).await?;
    let mut runtime = Runtime::new(
        store.clone(),
        Arc::new(registry),
        bots,
        settings,
        clock,
        Default::default(),
    );
    runtime.chat_flow = Some((bot.id, default_flow.clone()));
    // The bot's triggers answer here as they would on the server.
    runtime.triggers.reload(&store).await?;
    eprintln!(
        "Chatting with bot {}, flow {default_flow}, as {from}. Type a message; Ctrl-D ends.",
        bot.slug
    );
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        eprint!("you> ");
        std::io::stderr().flush()?;
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let text = line.trim_end_matches(['\r', '\n']).to_string();
        let msg = InboundMessage {
            bot_id: bot.id,
            channel: Channel::Simulator,
            provider_message_id: format!("chat-{}", uuid::Uuid::new_v4()),
            from: from.clone(),
            to: None,
            profile_name: name.clone(),
            kind: MessageKind::Text,
            text: Some(text),
            media: Vec::new(),
            extra: Extra::default(),
        };
        let stored = runtime.process(std::slice::from_ref(&msg)).await?;
        let mut replies: Vec<OutboundContent> = stored
            .first()
            .and_then(|s| s.response.as_deref())
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default();
        // HTTP calls and AI answers the step asked for, carried out here.
        replies.extend(confab_server::worker::carry_out_requests(&runtime).await);
        for r in &replies {
            println!("bot> {}", show(r).replace('\n', "\n     "));
        }
    }
    store.close().await;
    Ok(())
}
