//! The OpenAPI document, Swagger UI (served from the binary, no internet
//! needed) and ReDoc.
//!
//! The document must say what the server does (Schemathesis checks it in
//! CI). The handlers' annotations give each route's own answers; what every
//! route shares is added here in one pass ([`conventions`]): the errors a
//! route can answer whatever it does (a bad query, no credentials, a body
//! of the wrong type...), all as `application/problem+json`, and the
//! bounds of the parameters many routes take.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::app::AppState;
use crate::http::{api, ops, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "Confab", description = "WhatsApp conversation platform: webhooks for Twilio and the Meta WhatsApp Cloud API, contacts, message history and durable sending.\n\nErrors are RFC 9457 `application/problem+json`. Text must not contain NUL characters. Lists answer `{items, next_cursor}`; pass `next_cursor` as `cursor` to read on."),
    paths(
        api::auth::login, api::auth::token, api::auth::register, api::auth::me,
        api::users::list, api::users::create, api::users::get, api::users::update, api::users::delete,
        api::users::list_keys, api::users::create_key, api::users::revoke_key, api::users::audit,
        api::bots::list, api::bots::create, api::bots::get, api::bots::update, api::bots::delete,
        api::bots::test_channel,
        api::contacts::list, api::contacts::get, api::contacts::update, api::contacts::mark_read, api::contacts::history,
        api::messages::list, api::messages::get, api::messages::send, api::messages::send_bulk, api::media::get,
        api::broadcasts::list, api::broadcasts::create, api::broadcasts::get,
        api::rejected::list,
        api::runs::list, api::runs::get, api::runs::start, api::runs::cancel, api::runs::resume, api::runs::input, api::runs::statistics,
        api::flows::list, api::flows::create, api::flows::list_templates, api::flows::get,
        api::flows::update, api::flows::delete, api::flows::versions, api::flows::version,
        api::flows::publish, api::flows::get_node, api::flows::add_node, api::flows::put_node,
        api::flows::delete_node, api::flows::test, api::flows::stats, api::flows::reload,
        api::collections::list_collections, api::collections::list, api::collections::create,
        api::collections::get, api::collections::replace, api::collections::patch, api::collections::delete,
        api::triggers::list, api::triggers::create, api::triggers::get, api::triggers::update,
        api::triggers::delete, api::triggers::activate, api::triggers::deactivate,
        api::triggers::test, api::triggers::logs, api::triggers::statistics,
        api::templates::list, api::templates::declare, api::templates::get, api::templates::delete,
        api::templates::sync,
        api::assistant::ai_stats, api::stats::messages, api::assistant::get_access, api::assistant::put_allow_list, api::assistant::put_rate_limit,
        webhooks::legacy_webhook, webhooks::legacy_webhook_alive,
        ops::health, ops::ready, ops::metrics_text,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Log in for a token; users, API keys and the audit log"),
        (name = "bots", description = "Bots, the unit of tenancy, and their channels"),
        (name = "contacts", description = "The people Confab talks to"),
        (name = "messages", description = "History and sending"),
        (name = "flows", description = "A bot's flows, their versions and nodes, templates and conversation tests"),
        (name = "runs", description = "Where each contact is in which flow"),
        (name = "triggers", description = "Keyword, event and schedule triggers that start flows, with their logs"),
        (name = "templates", description = "Each bot's catalogue of WhatsApp message templates, which sends and flows are checked against"),
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

/// The document as served: the annotations, with what every route shares.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    conventions(&mut doc);
    serde_json::from_value(doc).expect("the document reads back")
}

const PROBLEM: &str = "application/problem+json";

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// A string parameter holds no NUL character (no database column can).
fn no_nul() -> Value {
    json!("^[^\\u0000]*$")
}

/// The bounds of a query or path parameter, by name (and, where the same
/// name means different things, by path).
fn refine_parameter(path: &str, p: &mut Map<String, Value>) {
    let name = p
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let place = p
        .get("in")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(schema) = p.get_mut("schema").and_then(Value::as_object_mut) else {
        return;
    };
    // An optional query parameter is absent or a value, never `null`.
    if let Some(Value::Array(types)) = schema.get("type").cloned() {
        let concrete: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
        if concrete.len() == 1 {
            schema.insert("type".into(), concrete[0].clone());
        }
    }
    let ids = json!("^[0-9]{1,18}$");
    match (place.as_str(), name.as_str()) {
        ("query", "limit") => {
            schema.insert("minimum".into(), json!(1));
            schema.insert("maximum".into(), json!(confab_store::MAX_PAGE));
        }
        // A contact list in activity order pages on from a time and a
        // contact (`time.contact`); either order reads either form.
        ("query", "cursor") if path.ends_with("/contacts") => {
            schema.insert("pattern".into(), json!("^[0-9]{1,18}([.][0-9]{1,18})?$"));
        }
        // Cursors are the ids this API gave out.
        ("query", "cursor" | "before") => {
            schema.insert("pattern".into(), ids);
        }
        ("query", "direction") => {
            schema.insert("enum".into(), json!(["inbound", "outbound"]));
        }
        ("query", "channel") => {
            let all: Vec<&str> = confab_model::Channel::ALL
                .iter()
                .map(|c| c.as_str())
                .collect();
            schema.insert("enum".into(), json!(all));
        }
        ("query", "status") if path.ends_with("/runs") => {
            let all: Vec<&str> = confab_flow::RunStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .collect();
            schema.insert("enum".into(), json!(all));
        }
        ("query", "status") => {
            let all: Vec<&str> = confab_model::DeliveryStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .collect();
            schema.insert("enum".into(), json!(all));
        }
        ("query", "since" | "until") => {
            schema.remove("type");
            schema.insert(
                "anyOf".into(),
                json!([{"type": "string", "format": "date-time"}, {"type": "string", "pattern": "^[0-9]{1,15}$"}]),
            );
        }
        ("query", "from" | "to") => {
            schema.insert("format".into(), json!("date"));
        }
        ("query", "format") => {
            schema.insert("enum".into(), json!(["json", "csv"]));
        }
        ("query", "contact" | "phone") | ("path", "id")
            if schema.get("type") == Some(&json!("string")) =>
        {
            if path.starts_with("/api/v1/contacts") || place == "query" {
                schema.insert("pattern".into(), json!(api::contacts::CONTACT_KEY_PATTERN));
            } else {
                schema.insert("pattern".into(), no_nul());
            }
        }
        _ if schema.get("type") == Some(&json!("string"))
            && !schema.contains_key("pattern")
            && !schema.contains_key("enum")
            && !schema.contains_key("format") =>
        {
            schema.insert("pattern".into(), no_nul());
        }
        _ => {}
    }
}

/// What the webhooks read of their bodies: the fields every request of its
/// kind has are required (without them: 400), the rest is optional. What
/// is well formed but unusable (a sender that is not a phone number) is
/// kept as rejected and answered 200, since the provider would not send it
/// again.
/// The legacy webhook's body: Twilio's, as the channel describes it.
fn webhook_body(path: &str) -> Option<Value> {
    (path == "/webhook")
        .then(|| confab_channels::webhook::of(confab_model::Channel::Twilio))
        .flatten()
        .map(|w| {
            json!({"content": {w.content_type(): {"schema": w.body_schema(confab_channels::webhook::Hook::Inbound)}}, "required": true})
        })
}

/// Bounds of request fields that the derive cannot say.
fn refine_schemas(schemas: &mut Map<String, Value>) {
    let mut set = |schema: &str, field: &str, value: Value| {
        if let Some(props) = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(Value::as_object_mut)
        {
            props.insert(field.to_string(), value);
        }
    };
    let phone = || json!({"type": "string", "pattern": api::contacts::CONTACT_KEY_PATTERN});
    // Text that must hold more than spaces, with its longest length.
    let text = |max: usize| json!({"type": "string", "maxLength": max, "pattern": "\\S"});
    set(
        "ContactUpdate",
        "tags",
        json!({"type": ["array", "null"], "items": text(64)}),
    );
    set(
        "ContactUpdate",
        "profile_name",
        json!({"anyOf": [text(256), {"type": "null"}]}),
    );
    set("StartRun", "contact", phone());
    set(
        "TokenForm",
        "grant_type",
        json!({"type": "string", "enum": ["password"]}),
    );
    set(
        "StartRun",
        "channel",
        json!({"type": ["string", "null"], "enum": ["twilio", "meta", "simulator", null]}),
    );
    set("Outgoing_String", "to", phone());
    set(
        "Outgoing_Audience",
        "to",
        json!({"oneOf": [
            {"type": "object", "required": ["tag"], "additionalProperties": false,
             "properties": {"tag": {"type": "string", "minLength": 1, "maxLength": 64}}},
            {"type": "array", "minItems": 1, "maxItems": api::messages::MAX_BULK, "items": {"type": "string"}}]}),
    );
    // Each recipient of a bulk send is checked on its own: a bad one gets
    // its own error in the answer.
    set(
        "Outgoing_Vec_String",
        "to",
        json!({"type": "array", "minItems": 1, "maxItems": api::messages::MAX_BULK, "items": {"type": "string"}}),
    );
    set(
        "AllowListIn",
        "numbers",
        json!({"type": ["array", "null"], "items": phone()}),
    );
}

/// Adds what every operation shares to `doc` (see the module's comment).
/// A bot's data has the routes of the default bot's under
/// `/api/v1/bots/{bot}`: each is documented as its unscoped route is, with
/// the bot as a path parameter.
fn of_bots(paths: &mut Map<String, Value>) {
    const SCOPED: &str = "/api/v1/bots/{bot}";
    let mut added: Vec<(String, String, Value)> = Vec::new();
    for rule in crate::auth::policy::rules() {
        let Some(rest) = rule.path.strip_prefix(SCOPED) else {
            continue;
        };
        let unscoped = format!("{}{rest}", api::PREFIX);
        let method = rule.method.as_str().to_ascii_lowercase();
        let Some(op) = paths.get(&unscoped).and_then(|ops| ops.get(&method)) else {
            continue;
        };
        let mut op = op.clone();
        if let Some(o) = op.as_object_mut() {
            if let Some(Value::String(id)) = o.get("operationId").cloned() {
                o.insert("operationId".into(), json!(format!("{id}_of_bot")));
            }
            let params = o.entry("parameters").or_insert_with(|| json!([]));
            if let Some(ps) = params.as_array_mut() {
                ps.insert(
                    0,
                    json!({"name": "bot", "in": "path", "required": true,
                           "description": "the bot's id or slug", "schema": {"type": "string"}}),
                );
            }
        }
        added.push((rule.path.clone(), method, op));
    }
    for (path, method, op) in added {
        if let Some(ops) = paths
            .entry(path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            ops.insert(method, op);
        }
    }
}

fn conventions(doc: &mut Value) {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        refine_schemas(schemas);
    }
    // Records export as CSV too (`format=csv`).
    if let Some(ok) = doc
        .pointer_mut("/paths/~1api~1v1~1collections~1{name}~1records/get/responses/200/content")
        .and_then(Value::as_object_mut)
    {
        ok.insert("text/csv".into(), json!({"schema": {"type": "string"}}));
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    of_bots(paths);
    webhooks::document(paths);
    for (path, ops) in paths.iter_mut() {
        let Some(ops) = ops.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            if method == "post"
                && let Some(body) = webhook_body(path)
            {
                op.insert("requestBody".into(), body);
            }
            let secured = op.contains_key("security");
            let body = op.get("requestBody").cloned();
            let params: Vec<Value> = op
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(Value::Array(ps)) = op.get_mut("parameters") {
                for p in ps.iter_mut() {
                    if let Some(p) = p.as_object_mut() {
                        refine_parameter(path, p);
                    }
                }
            }
            let responses = op
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses is an object");
            // Every error is a problem, whatever its annotation said.
            for (code, r) in responses.iter_mut() {
                if code.starts_with('4') || code.starts_with('5') {
                    let description = r
                        .get("description")
                        .and_then(Value::as_str)
                        .filter(|d| !d.is_empty())
                        .unwrap_or("A problem")
                        .to_string();
                    *r = problem(&description);
                }
            }
            let mut add = |code: &str, description: &str| {
                responses
                    .entry(code.to_string())
                    .or_insert_with(|| problem(description));
            };
            if !params.is_empty() || body.is_some() {
                add("400", "The query, path or body cannot be read");
            }
            if params.iter().any(|p| p["in"] == "path") {
                add("404", "No such resource");
            }
            if secured {
                add(
                    "401",
                    "No valid credentials: a missing, expired or revoked token or key",
                );
                add("403", "The caller's role may not do this");
            }
            if body.is_some() {
                add("413", "The body is larger than MAX_BODY_BYTES");
                add("415", "The body is not of the type this route takes");
                // Webhook forms missing a field are 400 (said above); every
                // other body that does not fit is 422.
                if !path.starts_with("/webhook") {
                    add("422", "The body does not fit");
                }
            }
            if path.starts_with("/api/") || path.starts_with("/webhook") {
                add(
                    "503",
                    "The database does not answer, or the server is at a limit of its own; try again",
                );
            }
        }
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
        .merge(SwaggerUi::new("/docs").url("/openapi.json", document()))
        .route("/redoc", get(|| async { Html(REDOC) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_a_problem_and_secured_routes_say_401_and_403() {
        let doc = serde_json::to_value(document()).unwrap();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for (code, r) in responses {
                    if code.starts_with('4') || code.starts_with('5') {
                        assert!(
                            r["content"].get(PROBLEM).is_some(),
                            "{method} {path} {code}: {r}"
                        );
                    }
                }
                if op.get("security").is_some() {
                    assert!(responses.contains_key("401") && responses.contains_key("403"));
                }
            }
        }
        let limit = &doc["paths"]["/api/v1/contacts"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap()["schema"];
        assert_eq!(
            (limit["minimum"].clone(), limit["maximum"].clone()),
            (json!(1), json!(500))
        );
    }
}
