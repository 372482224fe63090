//! `/api/v1`: the management API. Every route but login needs a bearer
//! token (a JWT from login, or an API key).

pub mod assistant;
pub mod auth;
pub mod bots;
pub mod broadcasts;
pub mod collections;
pub mod contacts;
pub mod flows;
pub mod media;
pub mod messages;
pub mod rejected;
pub mod runs;
pub mod scope;
pub mod stats;
pub mod templates;
pub mod triggers;
pub mod users;

use axum::Router;
use axum::extract::{FromRequest, Request};
use axum::handler::Handler;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::auth::Role;
use crate::auth::policy::Access;
use crate::error::{ApiError, ApiResult};

/// Every route of the API with the least role it may be called by: the one
/// table the router and the access layer (`auth::policy`) are both built
/// from, so that no route can be added without its rule.
pub fn table() -> Table {
    use Access::{Least, Public};
    use Role::{Admin, Agent, Editor, Viewer};
    Table::default()
        .post("/auth/login", Public, auth::login)
        .post("/auth/token", Public, auth::token)
        .post("/auth/register", Public, auth::register)
        .get("/auth/me", Least(Viewer), auth::me)
        .get("/users", Least(Admin), users::list)
        .post("/users", Least(Admin), users::create)
        .get("/users/{id}", Least(Admin), users::get)
        .patch("/users/{id}", Least(Admin), users::update)
        .delete("/users/{id}", Least(Admin), users::delete)
        .get("/keys", Least(Admin), users::list_keys)
        .post("/keys", Least(Admin), users::create_key)
        .delete("/keys/{id}", Least(Admin), users::revoke_key)
        .get("/audit", Least(Admin), users::audit)
        .get("/bots", Least(Viewer), bots::list)
        .post("/bots", Least(Admin), bots::create)
        .get("/bots/{bot}", Least(Viewer), bots::get)
        .patch("/bots/{bot}", Least(Admin), bots::update)
        .delete("/bots/{bot}", Least(Admin), bots::delete)
        .post(
            "/bots/{bot}/channels/{kind}/test",
            Least(Editor),
            bots::test_channel,
        )
        .get_of_bots("/contacts", Least(Viewer), contacts::list)
        .get_of_bots("/contacts/{id}", Least(Viewer), contacts::get)
        .patch_of_bots("/contacts/{id}", Least(Agent), contacts::update)
        .post_of_bots("/contacts/{id}/read", Least(Agent), contacts::mark_read)
        .get_of_bots("/contacts/{id}/messages", Least(Viewer), contacts::history)
        .get_of_bots("/messages", Least(Viewer), messages::list)
        .post_of_bots("/messages", Least(Agent), messages::send)
        .post_of_bots("/messages/bulk", Least(Editor), messages::send_bulk)
        .get_of_bots("/broadcasts", Least(Viewer), broadcasts::list)
        .post_of_bots("/broadcasts", Least(Editor), broadcasts::create)
        .get_of_bots("/broadcasts/{id}", Least(Viewer), broadcasts::get)
        .get_of_bots("/messages/{id}", Least(Viewer), messages::get)
        .get_of_bots("/messages/{id}/media/{position}", Least(Viewer), media::get)
        .get("/rejected", Least(Viewer), rejected::list)
        .get_of_bots("/runs", Least(Viewer), runs::list)
        .post_of_bots("/runs", Least(Agent), runs::start)
        .get_of_bots("/runs/statistics", Least(Viewer), runs::statistics)
        .get_of_bots("/runs/{id}", Least(Viewer), runs::get)
        .post_of_bots("/runs/{id}/cancel", Least(Agent), runs::cancel)
        .post_of_bots("/runs/{id}/resume", Least(Agent), runs::resume)
        .post_of_bots("/runs/{id}/input", Least(Agent), runs::input)
        .get_of_bots("/flows", Least(Viewer), flows::list)
        .post_of_bots("/flows", Least(Editor), flows::create)
        .post("/flows/reload", Least(Editor), flows::reload)
        .get("/flow-templates", Least(Viewer), flows::list_templates)
        .get_of_bots("/flows/{flow}", Least(Viewer), flows::get)
        .put_of_bots("/flows/{flow}", Least(Editor), flows::update)
        .delete_of_bots("/flows/{flow}", Least(Editor), flows::delete)
        .get_of_bots("/flows/{flow}/stats", Least(Viewer), flows::stats)
        .get_of_bots("/flows/{flow}/versions", Least(Viewer), flows::versions)
        .get_of_bots(
            "/flows/{flow}/versions/{version}",
            Least(Viewer),
            flows::version,
        )
        .post_of_bots(
            "/flows/{flow}/versions/{version}/publish",
            Least(Editor),
            flows::publish,
        )
        .post_of_bots("/flows/{flow}/nodes", Least(Editor), flows::add_node)
        .get_of_bots("/flows/{flow}/nodes/{node}", Least(Viewer), flows::get_node)
        .put_of_bots("/flows/{flow}/nodes/{node}", Least(Editor), flows::put_node)
        .delete_of_bots(
            "/flows/{flow}/nodes/{node}",
            Least(Editor),
            flows::delete_node,
        )
        .post_of_bots("/flows/{flow}/test", Least(Editor), flows::test)
        .get_of_bots("/collections", Least(Viewer), collections::list_collections)
        .get_of_bots(
            "/collections/{name}/records",
            Least(Viewer),
            collections::list,
        )
        .post_of_bots(
            "/collections/{name}/records",
            Least(Editor),
            collections::create,
        )
        .get_of_bots(
            "/collections/{name}/records/{id}",
            Least(Viewer),
            collections::get,
        )
        .put_of_bots(
            "/collections/{name}/records/{id}",
            Least(Editor),
            collections::replace,
        )
        .patch_of_bots(
            "/collections/{name}/records/{id}",
            Least(Editor),
            collections::patch,
        )
        .delete_of_bots(
            "/collections/{name}/records/{id}",
            Least(Editor),
            collections::delete,
        )
        .get_of_bots("/triggers", Least(Viewer), triggers::list)
        .post_of_bots("/triggers", Least(Editor), triggers::create)
        .get_of_bots("/triggers/statistics", Least(Viewer), triggers::statistics)
        .get_of_bots("/triggers/{id}", Least(Viewer), triggers::get)
        .put_of_bots("/triggers/{id}", Least(Editor), triggers::update)
        .delete_of_bots("/triggers/{id}", Least(Editor), triggers::delete)
        .post_of_bots("/triggers/{id}/activate", Least(Editor), triggers::activate)
        .post_of_bots(
            "/triggers/{id}/deactivate",
            Least(Editor),
            triggers::deactivate,
        )
        .post_of_bots("/triggers/{id}/test", Least(Viewer), triggers::test)
        .get_of_bots("/triggers/{id}/logs", Least(Viewer), triggers::logs)
        .get_of_bots("/templates", Least(Viewer), templates::list)
        .post_of_bots("/templates", Least(Editor), templates::declare)
        .post_of_bots("/templates/sync", Least(Editor), templates::sync)
        .get_of_bots("/templates/{id}", Least(Viewer), templates::get)
        .delete_of_bots("/templates/{id}", Least(Editor), templates::delete)
        .get_of_bots("/stats/ai", Least(Viewer), assistant::ai_stats)
        .get_of_bots("/stats/messages", Least(Viewer), stats::messages)
        .get_of_bots("/access", Least(Viewer), assistant::get_access)
        .put_of_bots(
            "/access/allow-list",
            Least(Admin),
            assistant::put_allow_list,
        )
        .put_of_bots(
            "/access/rate-limit",
            Least(Admin),
            assistant::put_rate_limit,
        )
}

/// A field given as `null` (`Some(None)`) told apart from one left out
/// (`None`), for changes where `null` means "clear".
pub fn given<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// Where the API's routes are mounted.
pub const PREFIX: &str = "/api/v1";

/// A route's method, its full path as routed, and who may call it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub method: Method,
    pub path: String,
    pub access: Access,
}

/// Routes and their rules, built together.
#[derive(Default)]
pub struct Table {
    router: Router<AppState>,
    rules: Vec<Rule>,
}

macro_rules! verb {
    ($name:ident, $method:ident, $filter:ident) => {
        fn $name<H, T>(self, path: &str, access: Access, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.add(
                Method::$method,
                path,
                access,
                on(MethodFilter::$filter, handler),
            )
        }
    };
}

/// A route of a bot's data: for the default bot at `path`, and for any bot
/// at `/bots/{bot}` + `path` (the handler takes the bot from `BotScope`).
macro_rules! verb_of_bots {
    ($name:ident, $single:ident) => {
        fn $name<H, T>(self, path: &str, access: Access, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.$single(path, access, handler.clone()).$single(
                &format!("/bots/{{bot}}{path}"),
                access,
                handler,
            )
        }
    };
}

impl Table {
    verb_of_bots!(get_of_bots, get);
    verb_of_bots!(post_of_bots, post);
    verb_of_bots!(put_of_bots, put);
    verb_of_bots!(patch_of_bots, patch);
    verb_of_bots!(delete_of_bots, delete);
    verb!(get, GET, GET);
    verb!(post, POST, POST);
    verb!(put, PUT, PUT);
    verb!(patch, PATCH, PATCH);
    verb!(delete, DELETE, DELETE);

    fn add(
        mut self,
        method: Method,
        path: &str,
        access: Access,
        route: axum::routing::MethodRouter<AppState>,
    ) -> Self {
        // The same path twice merges its methods (a method twice panics at
        // start, which the tests see).
        self.router = self.router.route(path, route);
        self.rules.push(Rule {
            method,
            path: format!("{PREFIX}{path}"),
            access,
        });
        self
    }

    pub fn into_parts(self) -> (Router<AppState>, Vec<Rule>) {
        (self.router, self.rules)
    }
}

/// A JSON request body: axum's extractor (415 without a JSON content type,
/// 400 for bad JSON, 413 over the size limit), then 422 for text holding a
/// NUL character, which no database text column can store, or for a body
/// that does not fit `T`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if has_nul(&value) {
            return Err(
                ApiError::Unprocessable("text must not contain NUL characters".into())
                    .into_response(),
            );
        }
        T::deserialize(value).map(Body).map_err(|e| {
            ApiError::Unprocessable(format!("the body does not fit: {e}")).into_response()
        })
    }
}

pub(super) fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// A page of a list, newest first. Pass `next_cursor` as `cursor` to read on;
/// it is null on the last page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Every item at once: a list short enough to need no next page.
    pub fn whole(items: impl IntoIterator<Item = T>) -> Page<T> {
        Page {
            items: items.into_iter().collect(),
            next_cursor: None,
        }
    }

    /// `rows` was fetched with one row more than `limit`, to learn whether a
    /// next page exists without a second query.
    pub fn new<R>(
        rows: Vec<R>,
        limit: i64,
        id: impl Fn(&R) -> i64,
        map: impl FnMut(R) -> T,
    ) -> Page<T> {
        Page::with_cursor(rows, limit, |r| id(r).to_string(), map)
    }

    /// As [`Page::new`], for a cursor that is more than an id.
    pub fn with_cursor<R>(
        mut rows: Vec<R>,
        limit: i64,
        cursor: impl Fn(&R) -> String,
        map: impl FnMut(R) -> T,
    ) -> Page<T> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more { rows.last().map(cursor) } else { None };
        Page {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }
}

pub fn limit(requested: Option<i64>) -> ApiResult<i64> {
    match requested {
        None => Ok(confab_store::DEFAULT_PAGE),
        Some(n) if (1..=confab_store::MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {}",
            confab_store::MAX_PAGE
        ))),
    }
}

pub fn cursor(c: Option<&str>) -> ApiResult<Option<i64>> {
    c.map(|s| {
        s.parse::<i64>()
            .map_err(|_| ApiError::BadRequest("cursor is not one this API gave out".into()))
    })
    .transpose()
}

/// A flow id given as text, or as a number by earlier clients.
pub(crate) fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match <serde_json::Value as serde::Deserialize>::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("a flow id, not {other}"))),
    }
}

/// A `bot_id` in a body, as earlier clients send it, must name the route's
/// bot: 422 pointing at the route of the bot it names otherwise.
pub(crate) fn same_bot(
    state: &AppState,
    bot: &scope::BotScope,
    given: &serde_json::Value,
    resource: &str,
) -> ApiResult<()> {
    let key = match given {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if state.bots.find(&key).map(|b| b.id()) != Some(bot.id()) {
        return Err(ApiError::Unprocessable(format!(
            "bot_id: {key} is not this route's bot; use /api/v1/bots/{key}/{resource}"
        )));
    }
    Ok(())
}

/// `?dry_run=true`: check what the call would do and do nothing.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DryRun {
    /// Check, say what would be done, and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}
