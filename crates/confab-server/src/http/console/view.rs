//! The console's pages: templates in the repo (`console/templates`), built
//! into the binary and rendered with HTML escaping.

use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;

/// Each template by name, with its source built in.
macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../console/templates/", $name)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates![
    "base.html",
    "login.html",
    "inbox.html",
    "problem.html",
    "runs.html",
    "run.html",
    "flows.html",
    "flow.html",
    "settings.html",
    "records.html",
    "record.html",
    "_switch.html",
    "triggers.html",
    "trigger.html",
    "_trigger_form.html",
    "simulator.html",
    "flow_edit.html",
    "_graph.html",
    "_template_picker.html",
    "broadcast.html",
    "broadcast_one.html",
    "dashboard.html",
    "_messages.html",
    "_contact_list.html",
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // `.html` templates escape what they print (minijinja's default).
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "a console template does not parse");
            }
        }
        env.add_filter("when", when);
        env.add_global("stylesheet", super::assets::stylesheet());
        env
    })
}

/// `2026-12-03T22:41:16.123Z` as `2026-12-03 22:41` (UTC).
fn when(rfc3339: String) -> String {
    rfc3339.get(..16).unwrap_or(&rfc3339).replacen('T', " ", 1)
}

/// A page rendered with `context`; a template that fails is a 500 that
/// says so (and is logged), never a half page.
pub fn render(name: &str, context: impl Serialize) -> Response {
    render_with(StatusCode::OK, name, context)
}

pub fn render_with(status: StatusCode, name: &str, context: impl Serialize) -> Response {
    match html(name, context) {
        Some(html) => (status, Html(html)).into_response(),
        None => failed(),
    }
}

/// The HTML of `name` with `context`; none when it failed (logged).
pub fn html(name: &str, context: impl Serialize) -> Option<String> {
    env()
        .get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&context))))
        .map_err(
            |e| tracing::error!(template = name, error = %e, "a console page failed to render"),
        )
        .ok()
}

/// The 500 for a template that failed: it says so, never a half page.
pub fn failed() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html("<!doctype html><title>Error</title><p>This page could not be shown; the error is in the server's log.</p>"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn every_template_parses_and_escapes_what_it_prints() {
        for (name, source) in super::TEMPLATES {
            let mut alone = minijinja::Environment::new();
            let parsed = alone.add_template(name, source);
            assert!(parsed.is_ok(), "{name}: {parsed:?}");
            assert!(super::env().get_template(name).is_ok(), "{name}");
        }
        let html = super::env()
            .get_template("problem.html")
            .unwrap()
            .render(minijinja::Value::from(minijinja::value::Serde(
                json!({"title": "<b>x</b>", "detail": "<script>alert(1)</script>"}),
            )))
            .unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn times_show_to_the_minute() {
        assert_eq!(
            super::when("2026-12-03T22:41:16.123Z".into()),
            "2026-12-03 22:41"
        );
        assert_eq!(super::when("soon".into()), "soon");
    }
}
