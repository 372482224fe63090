//! Stand-ins for the AI provider and the WhatsApp providers' APIs, for the
//! assistant benchmark and for trying Confab with no accounts: chat
//! completions answer after a fixed delay, Twilio and Meta sends are
//! accepted at once (and printed, with `--print`), Meta lists one message
//! template, and `/stats` counts the sends.
//! Loopback only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "fake-providers",
    about = "A slow fake AI provider and a fake Twilio API on loopback"
)]
struct Args {
    #[arg(long, default_value_t = 18090)]
    port: u16,
    /// How long each chat completion takes.
    #[arg(long, default_value_t = 1000)]
    delay_ms: u64,
    /// Print every send as it arrives.
    #[arg(long)]
    print: bool,
}

#[derive(Default)]
struct Counts {
    chats: AtomicU64,
    sends: AtomicU64,
    in_flight: AtomicU64,
    most_in_flight: AtomicU64,
}

struct Ctx {
    delay: Duration,
    counts: Counts,
    print: bool,
}

async fn chat(State(ctx): State<Arc<Ctx>>) -> impl IntoResponse {
    let n = ctx.counts.chats.fetch_add(1, Ordering::Relaxed);
    let now = ctx.counts.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    ctx.counts.most_in_flight.fetch_max(now, Ordering::Relaxed);
    tokio::time::sleep(ctx.delay).await;
    ctx.counts.in_flight.fetch_sub(1, Ordering::Relaxed);
    axum::Json(serde_json::json!({
        "id": format!("chatcmpl-{n}"),
        "object": "chat.completion",
        "model": "bench-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("Answer {n}.")}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35}
    }))
}

async fn send(State(ctx): State<Arc<Ctx>>, body: String) -> impl IntoResponse {
    let n = ctx.counts.sends.fetch_add(1, Ordering::Relaxed);
    if ctx.print {
        let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap_or_default();
        let shown: Vec<String> = form
            .iter()
            .filter(|(k, _)| k != "StatusCallback")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("twilio send {n}: {}", shown.join(" "));
    }
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"sid": format!("SM{n:032x}"), "status": "queued"})),
    )
}

/// The Graph API's `/{version}/{phone-number-id}/messages`.
async fn meta_send(State(ctx): State<Arc<Ctx>>, body: String) -> impl IntoResponse {
    let n = ctx.counts.sends.fetch_add(1, Ordering::Relaxed);
    let to = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["to"].as_str().map(str::to_string))
        .unwrap_or_default();
    if ctx.print {
        println!("meta send {n}: {body}");
    }
    axum::Json(serde_json::json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": format!("wamid.FAKE{n}")}]
    }))
}

/// The Graph API's `/{version}/{waba-id}/message_templates`: one approved
/// template, as Meta's documented example lists it.
async fn message_templates() -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "data": [{
            "id": "1192339204654487", "name": "hello_world", "language": "en_US",
            "category": "UTILITY", "status": "APPROVED",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
                {"type": "BODY", "text": "Welcome and congratulations!! This message demonstrates your ability to send a message notification from WhatsApp Business Platform's Cloud API."},
                {"type": "FOOTER", "text": "WhatsApp Business API Team"}
            ]
        }],
        "paging": {"cursors": {"before": "MAZDZD", "after": "MjQZD"}}
    }))
}

async fn stats(State(ctx): State<Arc<Ctx>>) -> impl IntoResponse {
    let c = &ctx.counts;
    axum::Json(serde_json::json!({
        "chat_completions": c.chats.load(Ordering::Relaxed),
        "sends": c.sends.load(Ordering::Relaxed),
        "most_chats_in_flight": c.most_in_flight.load(Ordering::Relaxed),
    }))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let ctx = Arc::new(Ctx {
        delay: Duration::from_millis(args.delay_ms),
        counts: Counts::default(),
        print: args.print,
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(send))
        .route("/{version}/{phone}/messages", post(meta_send))
        .route(
            "/{version}/{phone}/message_templates",
            get(message_templates),
        )
        .route("/stats", get(stats))
        .with_state(ctx);
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "fake-providers: cannot listen on 127.0.0.1:{}: {e}",
                args.port
            );
            std::process::exit(1);
        }
    };
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("fake-providers: {e}");
        std::process::exit(1);
    }
}
