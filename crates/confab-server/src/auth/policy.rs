//! Which role may call which route: one table (`http::api::table`, from
//! which the router is built too, so no route is without a rule), enforced
//! by one layer over every `/api/v1` route. A path with no rule is refused
//! to everyone (and logged): fail closed. A method with no rule on a path
//! that has rules is most likely one the path does not take (405); it is
//! let through for admins only, and logged if it turns out to be served.

use std::sync::OnceLock;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Principal, Role};
use crate::app::AppState;
use crate::error::ApiError;
pub use crate::http::api::Rule;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (logging in).
    Public,
    /// A user or key with at least this role.
    Least(Role),
}

use Access::{Least, Public};

/// Every `/api/v1` route and its rule, from the table the router is built
/// from (`http::api::table`).
pub fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| crate::http::api::table().into_parts().1)
}

/// The rule for a routed request. HEAD is routed as GET by axum, and is
/// allowed to whoever may GET.
pub fn rule(method: &Method, path: &str) -> Option<Access> {
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    rules()
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.access)
}

/// What a route acts on, for callers limited to some bots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Users, keys, the audit log, making bots: above the bots, for those
    /// who may act on every bot.
    Server,
    /// The list of bots: each caller sees theirs.
    Bots,
    /// The caller itself (`/auth/me`).
    Own,
    /// The bot named by the path's `{bot}`.
    PathBot,
    /// The bot `default` (every unscoped route).
    DefaultBot,
}

/// The scope of a routed path (as `MatchedPath` gives it).
pub fn scope(method: &Method, route: &str) -> Scope {
    let path = route
        .strip_prefix(crate::http::api::PREFIX)
        .unwrap_or(route);
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if path.starts_with("/bots/{bot}") {
        Scope::PathBot
    } else if path == "/bots" {
        if method == Method::GET || method == Method::HEAD {
            Scope::Bots
        } else {
            Scope::Server
        }
    } else if under("/users") || under("/keys") || under("/audit") {
        Scope::Server
    } else if under("/auth") {
        Scope::Own
    } else {
        Scope::DefaultBot
    }
}

/// Refuses a caller limited to some bots a route outside them.
async fn within_bots(
    principal: &Principal,
    state: &AppState,
    req: &mut Request,
    method: &Method,
    route: &str,
) -> Result<(), ApiError> {
    let Some(allowed) = principal.bots() else {
        return Ok(());
    };
    let slugs = || {
        let names: Vec<String> = allowed
            .iter()
            .filter_map(|id| state.bots.by_id(*id))
            .map(|b| b.slug().to_string())
            .collect();
        if names.is_empty() {
            "no bot".to_string()
        } else {
            format!("the bots {}", names.join(", "))
        }
    };
    match scope(method, route) {
        Scope::Bots | Scope::Own => Ok(()),
        Scope::Server => Err(ApiError::Forbidden(format!(
            "{method} {route} is for those who may act on every bot; this caller may act on {} only",
            slugs()
        ))),
        Scope::DefaultBot => {
            if principal.may_act_on(confab_store::DEFAULT_BOT) {
                Ok(())
            } else {
                Err(ApiError::Forbidden(format!(
                    "{method} {route} acts on the bot `default`; this caller may act on {} only",
                    slugs()
                )))
            }
        }
        Scope::PathBot => {
            use axum::RequestExt;
            let params = req
                .extract_parts::<axum::extract::RawPathParams>()
                .await
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let key = params
                .iter()
                .find(|(name, _)| *name == "bot")
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            match state.bots.find(&key) {
                // Another's bot is as good as none.
                Some(bot) if !principal.may_act_on(bot.id()) => {
                    Err(ApiError::NotFound(format!("no bot {key}")))
                }
                _ => Ok(()),
            }
        }
    }
}

/// The layer: authenticates the caller (401), checks its role against the
/// route's rule (403) and its bots against the route's bot (403, 404),
/// and leaves the principal for the handler.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let (least, ruled) = match rule(req.method(), &route) {
        Some(Public) => return next.run(req).await,
        Some(Least(least)) => (least, true),
        None if rules().iter().any(|r| r.path == route) => (Role::Admin, false),
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
    let method = req.method().clone();
    if let Err(e) = within_bots(&principal, &state, &mut req, &method, &route).await {
        return e.into_response();
    }
    req.extensions_mut().insert(principal);
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
    fn every_rule_is_said_once() {
        let mut seen = std::collections::HashSet::new();
        for r in rules() {
            assert!(r.path.starts_with("/api/v1/"), "{}", r.path);
            assert!(
                seen.insert((r.method.clone(), r.path.clone())),
                "{} {} has two rules",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn every_route_acts_on_the_server_a_bot_or_the_default_bot() {
        use Scope::*;
        let cases = [
            (Method::GET, "/api/v1/bots", Bots),
            (Method::POST, "/api/v1/bots", Server),
            (Method::PATCH, "/api/v1/bots/{bot}", PathBot),
            (
                Method::POST,
                "/api/v1/bots/{bot}/channels/{kind}/test",
                PathBot,
            ),
            (Method::GET, "/api/v1/users/{id}", Server),
            (Method::DELETE, "/api/v1/keys/{id}", Server),
            (Method::GET, "/api/v1/audit", Server),
            (Method::GET, "/api/v1/auth/me", Own),
            (Method::GET, "/api/v1/contacts", DefaultBot),
            (Method::GET, "/api/v1/keysafe", DefaultBot),
        ];
        for (m, path, want) in cases {
            assert_eq!(scope(&m, path), want, "{m} {path}");
        }
    }

    #[test]
    fn head_follows_get_and_unknown_routes_have_no_rule() {
        assert_eq!(
            rule(&Method::HEAD, "/api/v1/contacts"),
            Some(Least(Role::Viewer))
        );
        assert_eq!(rule(&Method::DELETE, "/api/v1/contacts"), None);
        assert_eq!(rule(&Method::GET, "/api/v1/nowhere"), None);
    }
}
