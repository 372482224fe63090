//! The OpenAPI document, Swagger UI (served from the binary, no internet
//! needed) and ReDoc.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::app::AppState;
use crate::http::{api, ops, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "Confab", description = "WhatsApp conversation platform: webhooks for Twilio and the Meta WhatsApp Cloud API, contacts, message history and durable sending."),
    paths(
        api::auth::login,
        api::contacts::list, api::contacts::get, api::contacts::update, api::contacts::mark_read, api::contacts::history,
        api::messages::list, api::messages::get, api::messages::send, api::messages::send_bulk,
        api::rejected::list,
        api::runs::list, api::runs::get, api::runs::start, api::runs::cancel, api::runs::resume,
        api::runs::flows, api::runs::reload, api::runs::stats,
        api::collections::list_collections, api::collections::list, api::collections::create,
        api::collections::get, api::collections::replace, api::collections::patch, api::collections::delete,
        api::assistant::ai_stats, api::assistant::get_access, api::assistant::put_allow_list,
        webhooks::twilio_inbound, webhooks::twilio_status, webhooks::meta_handshake, webhooks::meta_inbound,
        ops::health, ops::ready, ops::metrics_text,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Log in for a token"),
        (name = "contacts", description = "The people Confab talks to"),
        (name = "messages", description = "History and sending"),
        (name = "runs", description = "Flows, and where each contact is in them"),
        (name = "collections", description = "Records the flows keep"),
        (name = "assistant", description = "AI use, and who the bot answers"),
        (name = "webhooks", description = "Called by Twilio and Meta; authenticated by their signatures"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A JWT from /api/v1/auth/login, or an API key from `confab key create`",
                ))
                .build(),
        );
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", scheme);
    }
}

const REDOC: &str = r#"<!DOCTYPE html>
<html><head><title>Confab API</title><meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js"></script>
</body></html>"#;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .route("/redoc", get(|| async { Html(REDOC) }))
}
