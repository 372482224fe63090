//! Which role may call which route: one table, enforced by one layer over
//! every `/api/v1` route. A path with no rule is refused to everyone (and
//! logged), so a route added without one cannot be open by mistake. A
//! method with no rule on a path that has rules is most likely one the path
//! does not take (405); it is let through for admins only, and logged if it
//! turns out to be served.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Principal, Role};
use crate::app::AppState;
use crate::error::ApiError;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (logging in).
    Public,
    /// A user or key with at least this role.
    Least(Role),
}

use Access::{Least, Public};
use Role::{Admin, Agent, Editor, Viewer};

/// Every `/api/v1` route: method, path as routed, who may call it. The
/// README's table of roles says the same in words.
pub const RULES: &[(&str, &str, Access)] = &[
    ("POST", "/api/v1/auth/login", Public),
    ("GET", "/api/v1/contacts", Least(Viewer)),
    ("GET", "/api/v1/contacts/{id}", Least(Viewer)),
    ("PATCH", "/api/v1/contacts/{id}", Least(Agent)),
    ("POST", "/api/v1/contacts/{id}/read", Least(Agent)),
    ("GET", "/api/v1/contacts/{id}/messages", Least(Viewer)),
    ("GET", "/api/v1/messages", Least(Viewer)),
    ("POST", "/api/v1/messages", Least(Agent)),
    ("POST", "/api/v1/messages/bulk", Least(Editor)),
    ("GET", "/api/v1/messages/{id}", Least(Viewer)),
    ("GET", "/api/v1/rejected", Least(Viewer)),
    ("GET", "/api/v1/runs", Least(Viewer)),
    ("POST", "/api/v1/runs", Least(Agent)),
    ("GET", "/api/v1/runs/{id}", Least(Viewer)),
    ("POST", "/api/v1/runs/{id}/cancel", Least(Agent)),
    ("POST", "/api/v1/runs/{id}/resume", Least(Agent)),
    ("GET", "/api/v1/flows", Least(Viewer)),
    ("POST", "/api/v1/flows/reload", Least(Editor)),
    ("GET", "/api/v1/flows/{id}/stats", Least(Viewer)),
    ("GET", "/api/v1/collections", Least(Viewer)),
    ("GET", "/api/v1/collections/{name}/records", Least(Viewer)),
    ("POST", "/api/v1/collections/{name}/records", Least(Editor)),
    (
        "GET",
        "/api/v1/collections/{name}/records/{id}",
        Least(Viewer),
    ),
    (
        "PUT",
        "/api/v1/collections/{name}/records/{id}",
        Least(Editor),
    ),
    (
        "PATCH",
        "/api/v1/collections/{name}/records/{id}",
        Least(Editor),
    ),
    (
        "DELETE",
        "/api/v1/collections/{name}/records/{id}",
        Least(Editor),
    ),
    ("GET", "/api/v1/stats/ai", Least(Viewer)),
    ("GET", "/api/v1/access", Least(Viewer)),
    ("PUT", "/api/v1/access/allow-list", Least(Admin)),
];

/// The rule for a routed request. HEAD is routed as GET by axum, and is
/// allowed to whoever may GET.
pub fn rule(method: &Method, path: &str) -> Option<Access> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    RULES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, a)| *a)
}

/// The layer: authenticates the caller (401), checks its role against the
/// route's rule (403), and leaves the principal for the handler.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let (least, ruled) = match rule(req.method(), &route) {
        Some(Public) => return next.run(req).await,
        Some(Least(least)) => (least, true),
        None if RULES.iter().any(|(_, p, _)| *p == route) => (Admin, false),
        None => {
            tracing::error!(method = %req.method(), %route, "a route without an access rule was called; refusing it");
            return ApiError::Forbidden("this route has no access rule".into()).into_response();
        }
    };
    let principal = match Principal::authenticate(req.headers(), &state).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if principal.role() < least {
        return ApiError::Forbidden(format!(
            "{} {route} needs the role {least} or above; this {} has the role {}",
            req.method(),
            match principal {
                Principal::User { .. } => "user",
                Principal::ApiKey { .. } => "API key",
            },
            principal.role()
        ))
        .into_response();
    }
    req.extensions_mut().insert(principal);
    let method = req.method().clone();
    let resp = next.run(req).await;
    if !ruled && resp.status() != axum::http::StatusCode::METHOD_NOT_ALLOWED {
        tracing::error!(%method, %route, "a route without an access rule was served (to an admin); give it a rule");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_for_a_known_method_and_said_once() {
        let mut seen = std::collections::HashSet::new();
        for (m, p, _) in RULES {
            assert!(
                ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(m),
                "{m} {p}"
            );
            assert!(p.starts_with("/api/v1/"), "{p}");
            assert!(seen.insert((m, p)), "{m} {p} has two rules");
        }
    }

    #[test]
    fn head_follows_get_and_unknown_routes_have_no_rule() {
        assert_eq!(rule(&Method::HEAD, "/api/v1/contacts"), Some(Least(Viewer)));
        assert_eq!(rule(&Method::DELETE, "/api/v1/contacts"), None);
        assert_eq!(rule(&Method::GET, "/api/v1/nowhere"), None);
    }
}
