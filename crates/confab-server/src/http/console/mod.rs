//! The web console at `/console`: server-rendered pages for the people who
//! run a bot. Every page reads, and every action writes, through the API
//! (`api`): the same routes, roles, checks and errors as from outside.
//!
//! A login keeps the user's API token in the session cookie (`session`);
//! every form carries the session's CSRF token. The pages work without
//! scripts; the vendored htmx (`assets`) only makes them quicker.

mod api;
mod assets;
mod broadcast;
mod chart;
mod dashboard;
mod diff;
mod flows;
mod graph;
mod inbox;
mod live;
mod records;
mod runs;
mod session;
mod settings;
mod simulator;
mod triggers;
mod view;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use api::ApiRouter;
use api::{Api, enc};

use crate::app::AppState;
use crate::origin::Origin;

/// How long a list every open console of a bot draws again is kept
/// (`Api::get_shared`): a change shows within it.
const MOMENT: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a live reload takes who the user is and which bots they see
/// from the last time its session asked (`Api::get_own`). Every open
/// console reloads its list every 2 s as messages come, and each asking
/// is two reads of the database; a session revoked, or a role taken away,
/// stops its live list within this. Every page loaded by hand asks afresh.
const SESSION_KEPT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a session lasts: as long as the token it holds.
fn session_age(state: &AppState) -> u64 {
    state.jwt.ttl.as_secs()
}

pub fn routes(api: ApiRouter) -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/login", post(login))
        .route("/console/logout", post(logout))
        .route("/console/static/{file}", get(assets::file))
        .route("/console/live", get(live::events))
        .route("/console/inbox", get(inbox::list))
        .route("/console/inbox/{contact}", get(inbox::conversation))
        .route("/console/inbox/{contact}/reply", post(inbox::reply))
        .route("/console/inbox/{contact}/read", post(inbox::read))
        .route("/console/inbox/{contact}/resume", post(inbox::resume))
        .route("/console/media/{message}/{position}", get(inbox::media))
        .route(
            "/console/simulator",
            get(simulator::page).post(simulator::start),
        )
        .route("/console/simulator/{contact}/say", post(simulator::say))
        .route(
            "/console/broadcast",
            get(broadcast::page).post(broadcast::send),
        )
        .route("/console/broadcast/{id}", get(broadcast::one))
        .route("/console/dashboard", get(dashboard::page))
        .route("/console/flows", get(flows::list))
        .route("/console/flows/{id}", get(flows::one))
        .route(
            "/console/flows/{id}/edit",
            get(flows::edit).post(flows::save),
        )
        .route("/console/flows/{id}/test", post(flows::test))
        .route(
            "/console/flows/{id}/versions/{version}/publish",
            post(flows::publish),
        )
        .route("/console/records", get(records::collections))
        .route("/console/records/{name}", get(records::table))
        .route("/console/records/{name}/export", get(records::export))
        .route(
            "/console/records/{name}/{id}",
            get(records::record).post(records::save),
        )
        .route("/console/records/{name}/{id}/delete", post(records::delete))
        .route("/console/settings", get(settings::page))
        .route("/console/settings/keys", post(settings::create_key))
        .route("/console/settings/users", post(settings::create_user))
        .route("/console/settings/users/{id}", post(settings::change_user))
        .route(
            "/console/settings/bots/{bot}/channels/{kind}/test",
            post(settings::test_channel),
        )
        .route(
            "/console/settings/keys/{id}/revoke",
            post(settings::revoke_key),
        )
        .route("/console/runs", get(runs::list))
        .route("/console/runs/{id}", get(runs::one))
        .route(
            "/console/triggers",
            get(triggers::list).post(triggers::create),
        )
        .route(
            "/console/triggers/{id}",
            get(triggers::one).post(triggers::update),
        )
        .route("/console/triggers/{id}/delete", post(triggers::delete))
        .route("/console/triggers/{id}/switch", post(triggers::switch))
        .layer(Extension(api))
        .layer(middleware::from_fn(page_headers))
}

/// What every console answer carries: no framing, no sniffing, scripts and
/// styles from the console only, and pages never cached (they hold a
/// user's data).
async fn page_headers(req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/console/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; \
             media-src 'self' https:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
             form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_static {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A bot the user may see, for the picker.
#[derive(Clone, Debug, Serialize)]
pub struct BotChoice {
    pub id: i64,
    pub slug: String,
    pub name: String,
    /// Its channels that can send (`twilio`, `meta`).
    pub channels: Vec<String>,
}

/// A logged-in user on a console page: who, with which bot in view.
pub struct Console {
    pub api: Api,
    pub user: Value,
    pub bots: Vec<BotChoice>,
    pub bot: BotChoice,
    pub csrf: String,
    token: String,
    /// The server's live updates: when the bot last changed.
    live: std::sync::Arc<crate::live::Live>,
    /// The page's script asks (a live reload of part of a page, which
    /// every open console makes as the bot's conversations change), not a
    /// person: what was read a moment ago may serve.
    pub reload: bool,
    /// The id of the part of the page a reload draws again (htmx's
    /// `HX-Target`), when it names one.
    pub target: Option<String>,
}

impl Console {
    /// When the consoles were last told of changes of the bot in view: what
    /// was read before may not show them (`Live::changed_at`).
    pub fn changed_at(&self) -> std::time::Instant {
        self.live.changed_at(self.bot.id)
    }

    /// The API path of the bot in view: `/api/v1/bots/{slug}{rest}`.
    pub fn path(&self, rest: &str) -> String {
        format!("/api/v1/bots/{}{rest}", enc(&self.bot.slug))
    }

    /// A console link that keeps the bot in view.
    pub fn link(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}bot={}", enc(&self.bot.slug))
    }

    /// The context every page's layout reads, with the page's own.
    pub fn page(&self, screen: &str, mut own: Value) -> Value {
        let base = json!({
            "screen": screen,
            "user": self.user,
            "bots": self.bots,
            "bot": self.bot,
            "csrf": self.csrf,
            "csrf_field": session::CSRF_FIELD,
        });
        if let (Some(o), Value::Object(b)) = (own.as_object_mut(), base) {
            for (k, v) in b {
                o.entry(k).or_insert(v);
            }
        }
        own
    }

    /// The refusal of a form whose CSRF token is not this session's.
    pub fn forged(&self, headers: &HeaderMap, field: Option<&str>) -> Option<Response> {
        let given = field.map(str::to_string).or_else(|| {
            headers
                .get(session::CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
        match given {
            Some(g) if session::csrf_ok(&self.token, &g) => None,
            _ => Some(problem(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form is out of date or did not come from the console. Reload the page and try again.",
            )),
        }
    }
}

/// A console form, sent: the session, and the form once its CSRF token
/// (the form's `_csrf`, or a script's `x-csrf-token` header) is found to be
/// the session's. Anything else is refused before the handler runs.
pub struct Action<F> {
    pub console: Console,
    pub form: F,
}

/// Any form: what an action that takes no fields reads.
pub type NoFields = std::collections::BTreeMap<String, String>;

impl<F: DeserializeOwned + Send> FromRequest<AppState> for Action<F> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let console = Console::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let token: CsrfOnly = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        if let Some(r) = console.forged(&headers, token.csrf.as_deref()) {
            return Err(r);
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not understood",
                &format!("The form could not be read: {e}"),
            )
        })?;
        Ok(Action { console, form })
    }
}

/// Why a console page could not be shown to the caller.
pub enum Away {
    /// Not logged in (or the session ended): to the login form.
    LogIn {
        clear: bool,
    },
    Page(Response),
}

impl IntoResponse for Away {
    fn into_response(self) -> Response {
        match self {
            Away::LogIn { clear } => {
                let mut resp = Redirect::to("/console").into_response();
                if clear {
                    resp.headers_mut().insert(
                        header::SET_COOKIE,
                        session::set_cookie(session::SESSION, "", 0, false),
                    );
                }
                resp
            }
            Away::Page(r) => r,
        }
    }
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Away;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = session::cookie(&parts.headers, session::SESSION)
            .ok_or(Away::LogIn { clear: false })?;
        let router = parts
            .extensions
            .get::<ApiRouter>()
            .cloned()
            .ok_or_else(|| {
                Away::Page(problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error",
                    "the console is not wired to the API",
                ))
            })?;
        let api = Api::new(&router, &token);
        let reload = parts
            .headers
            .get("hx-request")
            .is_some_and(|v| v.as_bytes() == b"true");
        let target = reload
            .then(|| parts.headers.get("hx-target")?.to_str().ok())
            .flatten()
            .map(str::to_string);
        let get = |path: &'static str| {
            let api = api.clone();
            async move {
                match reload {
                    // Asked by every page; a live reload asks again soon.
                    true => api.get_own(path, SESSION_KEPT).await,
                    false => api.get(path).await,
                }
            }
        };
        let user = match get("/api/v1/auth/me").await {
            Ok(u) => u,
            Err(r) if r.status == 401 => return Err(Away::LogIn { clear: true }),
            Err(r) => return Err(Away::Page(refused_page(&r))),
        };
        let listed = get("/api/v1/bots")
            .await
            .map_err(|r| Away::Page(refused_page(&r)))?;
        let bots: Vec<BotChoice> = listed["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| BotChoice {
                id: b["id"].as_i64().unwrap_or_default(),
                slug: b["slug"].as_str().unwrap_or_default().to_string(),
                name: b["name"].as_str().unwrap_or_default().to_string(),
                channels: b["channels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, c)| c["can_send"].as_bool().unwrap_or(true))
                    .map(|(k, _)| k.clone())
                    .collect(),
            })
            .collect();
        let wanted = parts.uri.query().and_then(|q| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .ok()?
                .into_iter()
                .find(|(k, _)| k == "bot")
                .map(|(_, v)| v)
        });
        let bot = match &wanted {
            Some(slug) => bots
                .iter()
                .find(|b| &b.slug == slug)
                .cloned()
                .ok_or_else(|| {
                    Away::Page(problem(
                        StatusCode::NOT_FOUND,
                        "No such bot",
                        &format!("There is no bot {slug:?} that you may see."),
                    ))
                })?,
            None => bots
                .iter()
                .find(|b| b.slug == "default")
                .or(bots.first())
                .cloned()
                .ok_or_else(|| {
                    Away::Page(problem(
                        StatusCode::FORBIDDEN,
                        "No bot",
                        "Your account may not act on any bot. Ask an admin to give you one.",
                    ))
                })?,
        };
        Ok(Console {
            csrf: session::csrf_of(&token),
            api,
            user,
            bots,
            bot,
            token,
            live: state.live.clone(),
            reload,
            target,
        })
    }
}

/// A page that says what went wrong.
pub fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    view::render_with(
        status,
        "problem.html",
        json!({"title": title, "detail": detail}),
    )
}

/// The page for what the API refused.
pub fn refused_page(r: &api::Refused) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let title = match r.status {
        403 => "Not allowed",
        404 => "Not found",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    problem(status, title, &r.detail)
}

/// The login form, or the inbox for a user already logged in.
async fn home(origin: Origin, headers: HeaderMap) -> Response {
    if session::cookie(&headers, session::SESSION).is_some() {
        return Redirect::to("/console/inbox").into_response();
    }
    login_form(&origin, StatusCode::OK, None, "")
}

/// The form, with a fresh login cookie its CSRF token comes from.
fn login_form(
    origin: &Origin,
    status: StatusCode,
    error: Option<&str>,
    username: &str,
) -> Response {
    let secret = crate::auth::random_secret();
    let mut resp = view::render_with(
        status,
        "login.html",
        json!({
            "csrf": session::csrf_of(&secret),
            "csrf_field": session::CSRF_FIELD,
            "error": error,
            "username": username,
        }),
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(session::LOGIN, &secret, 3600, origin.scheme == "https"),
    );
    resp
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(rename = "_csrf")]
    csrf: String,
}

/// Logs in with the API's login (its limits on guessing included) and
/// keeps the token in the session cookie.
async fn login(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let from_form = session::cookie(&headers, session::LOGIN)
        .is_some_and(|secret| session::csrf_ok(&secret, &f.csrf));
    if !from_form {
        return login_form(
            &origin,
            StatusCode::FORBIDDEN,
            Some("The form had expired. Please log in again."),
            &f.username,
        );
    }
    match crate::http::api::auth::sign_in(&state, &origin, f.username.clone(), f.password).await {
        Ok(token) => {
            let secure = origin.scheme == "https";
            let mut resp = Redirect::to("/console/inbox").into_response();
            let h = resp.headers_mut();
            h.append(
                header::SET_COOKIE,
                session::set_cookie(
                    session::SESSION,
                    &token.access_token,
                    session_age(&state),
                    secure,
                ),
            );
            h.append(
                header::SET_COOKIE,
                session::set_cookie(session::LOGIN, "", 0, secure),
            );
            resp
        }
        Err(e) => {
            let (status, message) = match &e {
                crate::error::ApiError::TooManyRequests(s) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Too many failed logins. Try again in {s} s."),
                ),
                crate::error::ApiError::Unauthorized(_) => (
                    StatusCode::UNAUTHORIZED,
                    "Wrong username or password.".to_string(),
                ),
                other => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("Logging in failed: {other}"),
                ),
            };
            login_form(&origin, status, Some(&message), &f.username)
        }
    }
}

#[derive(Deserialize, Default)]
pub struct CsrfOnly {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Ends the session: the cookie goes (the token itself runs out as issued).
async fn logout(origin: Origin, _: Action<NoFields>) -> Response {
    let mut resp = Redirect::to("/console").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(session::SESSION, "", 0, origin.scheme == "https"),
    );
    resp
}

/// After a form: back to a page (a 303, so the browser GETs it).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
