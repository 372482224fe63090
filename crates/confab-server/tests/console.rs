//! The web console over real HTTP: logging in, the session cookie and CSRF
//! tokens, the inbox and an agent's answers, and the API's roles on every
//! action.
mod common;

use std::collections::HashMap;

use common::fake::{FakeProvider, Kind};
use common::*;
use confab_server::auth::Role;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

/// A browser without scripts: it keeps cookies and does not follow
/// redirects, so each answer can be looked at.
struct Browser {
    url: String,
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    /// The CSRF token in the page's forms.
    fn csrf(&self) -> String {
        let at = self.body.find("name=\"_csrf\" value=\"").expect("a form") + 20;
        self.body[at..at + 32].to_string()
    }

    fn location(&self) -> &str {
        self.headers.get(LOCATION).unwrap().to_str().unwrap()
    }

    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser {
            url: app.url.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, r: reqwest::Response) -> Page {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        for c in headers.get_all(SET_COOKIE).iter() {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Page {
            status,
            headers,
            body: r.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(r).await
    }

    /// As the page's script reloads part of a page (`target`, the id of
    /// the element it draws again) on a live event.
    async fn reload(&mut self, path: &str, target: &str) -> Page {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .header("cookie", self.cookie_header())
            .header("hx-request", "true")
            .header("hx-target", target)
            .send()
            .await
            .unwrap();
        self.keep(r).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(r).await
    }

    /// Logs in through the form.
    async fn log_in(&mut self, user: &str, password: &str) -> Page {
        let form = self.get("/console").await;
        assert_eq!(form.status, 200, "{}", form.body);
        self.post(
            "/console/login",
            &[
                ("username", user),
                ("password", password),
                ("_csrf", &form.csrf()),
            ],
        )
        .await
    }
}

async fn outbound(app: &TestApp) -> usize {
    let key = app.api_key_with(Role::Viewer).await;
    let (s, page) = app.get(&key, "/api/v1/messages?direction=outbound").await;
    assert_eq!(s, 200, "{page}");
    page["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn an_agent_logs_in_reads_the_inbox_and_answers_and_every_form_needs_the_sessions_token() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let app = spawn_app(settings(&fresh_database().await, Some(&twilio.url), None)).await;
    app.user("ana", Role::Agent).await;
    let mut b = Browser::new(&app);

    // Logged out, every screen leads to the login form.
    let away = b.get("/console/inbox").await;
    assert_eq!((away.status, away.location()), (303, "/console"));
    let form = b.get("/console").await;
    assert_eq!(form.status, 200);
    assert!(
        form.body
            .contains("<label for=\"password\">Password</label>")
    );
    let login_cookie = form.set_cookie("confab_login").unwrap();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"));
    for (name, value) in [
        ("content-security-policy", "script-src 'self'"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        let got = form.headers.get(name).unwrap().to_str().unwrap();
        assert!(got.contains(value), "{name}: {got}");
    }

    // A wrong password, or a form from elsewhere, logs nobody in.
    let wrong = b
        .post(
            "/console/login",
            &[
                ("username", "ana"),
                ("password", "not-it"),
                ("_csrf", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.body.contains("Wrong username or password."));
    assert!(wrong.set_cookie("confab_session").is_none());
    let forged = b
        .post(
            "/console/login",
            &[
                ("username", "ana"),
                ("password", "a-long-password"),
                ("_csrf", &"0".repeat(32)),
            ],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.set_cookie("confab_session").is_none());

    let ok = b.log_in("ana", "a-long-password").await;
    assert_eq!((ok.status, ok.location()), (303, "/console/inbox"));
    let session = ok.set_cookie("confab_session").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session.contains(part), "{session}");
    }
    assert!(!session.contains("Secure"), "plain HTTP: {session}");

    // A contact writes: the inbox lists them, unread, and the conversation
    // shows the message, escaped.
    app.twilio_text("+15550000001", "Hello <b>there</b>", "SM1")
        .await;
    let inbox = b.get("/console/inbox").await;
    assert_eq!(inbox.status, 200, "{}", inbox.body);
    assert!(inbox.body.contains("+15550000001"), "{}", inbox.body);
    assert!(inbox.body.contains("1 unread"), "{}", inbox.body);
    let id = app.count("contacts").await;
    let path = format!("/console/inbox/{id}?bot=default");
    let talk = b.get(&path).await;
    assert_eq!(talk.status, 200, "{}", talk.body);
    assert!(
        talk.body.contains("Hello &lt;b&gt;there&lt;") && !talk.body.contains("<b>there"),
        "{}",
        talk.body
    );
    assert!(talk.body.contains("24-hour window open"));
    let csrf = talk.csrf();

    // An answer without the session's token is refused, and nothing is sent.
    let reply = format!("/console/inbox/{id}/reply?bot=default");
    let forged = b
        .post(&reply, &[("_csrf", &"f".repeat(32)), ("text", "Hi!")])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(outbound(&app).await, 0);
    // Nothing to send: said beside the form.
    let empty = b.post(&reply, &[("_csrf", &csrf), ("text", "  ")]).await;
    assert_eq!(empty.status, 422, "{}", empty.body);
    assert!(empty.body.contains("Write a message, or pick a template."));
    // A template the catalogue lacks: the API's 422, and the typed text stays.
    let unknown = b
        .post(
            &reply,
            &[
                ("_csrf", &csrf),
                ("text", "keep me"),
                ("template", &format!("HX{}", "a".repeat(32))),
            ],
        )
        .await;
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    assert!(
        unknown.body.contains("not in the bot&#x27;s catalogue"),
        "{}",
        unknown.body
    );
    assert!(
        unknown.body.contains(">keep me</textarea>"),
        "{}",
        unknown.body
    );
    assert_eq!(outbound(&app).await, 0);

    let sent = b
        .post(
            &reply,
            &[("_csrf", &csrf), ("text", "Hi! How can we help?")],
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let after = b.get(sent.location()).await;
    assert!(
        after.body.contains("Your message is queued"),
        "{}",
        after.body
    );
    assert!(after.body.contains("Hi! How can we help?"));
    assert_eq!(outbound(&app).await, 1);
    app.eventually(10, "the answer went out", || async {
        twilio.requests().len() == 1
    })
    .await;

    let read = b
        .post(
            &format!("/console/inbox/{id}/read?bot=default"),
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(read.status, 303, "{}", read.body);
    let inbox = b.get("/console/inbox").await.body;
    assert!(!inbox.contains("unread"), "{inbox}");
    // The list shows each conversation's last message, the latest first.
    app.twilio_text("+15550000002", "Is the shop open?", "SM2")
        .await;
    let inbox = b.get("/console/inbox").await.body;
    let (newer, older) = (
        inbox
            .find("Is the shop open?")
            .expect("the newer conversation"),
        inbox
            .find("Hi! How can we help?")
            .expect("the agent's answer"),
    );
    assert!(newer < older, "{inbox}");

    // The scripts are served by the binary, kept by the browser.
    let js = b.get("/console/static/htmx-2.0.11.min.js").await;
    assert_eq!(js.status, 200);
    assert!(
        js.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(b.get("/console/static/nope.js").await.status, 404);

    // Logged out: the cookie goes, and the screens lead to the form again.
    let out = b.post("/console/logout", &[("_csrf", &csrf)]).await;
    assert_eq!((out.status, out.location()), (303, "/console"));
    assert_eq!(b.get("/console/inbox").await.status, 303);
}

#[tokio::test]
async fn the_apis_roles_apply_to_every_screen_and_action() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let app = spawn_app(settings(&fresh_database().await, Some(&twilio.url), None)).await;
    let key = app.api_key().await;
    app.user("vic", Role::Viewer).await;
    app.user("ana", Role::Agent).await;
    let (s, f) = app
        .post(
            &key,
            "/api/v1/flows",
            json!({"id": "help", "nodes": [
                {"id": "h", "type": "handoff", "text": "A person will answer you shortly.", "next": "bye"},
                {"id": "bye", "type": "end", "text": "The bot is back."}]}),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    let (s, t) = app
        .post(
            &key,
            "/api/v1/triggers",
            json!({"name": "Help", "flow": "help", "trigger_type": "keyword", "keywords": ["help"]}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    app.twilio_text("+15550000002", "help", "SM1").await;
    let id = app.count("contacts").await;

    // A viewer reads the conversation but may not answer or hand back.
    let mut viewer = Browser::new(&app);
    viewer.log_in("vic", "a-long-password").await;
    let talk = viewer.get(&format!("/console/inbox/{id}")).await;
    assert_eq!(talk.status, 200, "{}", talk.body);
    assert!(
        talk.body.contains("handed off to a person"),
        "{}",
        talk.body
    );
    let csrf = talk.csrf();
    let refused = viewer
        .post(
            &format!("/console/inbox/{id}/reply"),
            &[("_csrf", &csrf), ("text", "Hi")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("Not allowed"));
    let refused = viewer
        .post(&format!("/console/inbox/{id}/resume"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(outbound(&app).await, 1, "only the handoff's own message");

    // An agent hands the contact back: the run moves on and says so.
    let mut agent = Browser::new(&app);
    agent.log_in("ana", "a-long-password").await;
    let csrf = agent.get(&format!("/console/inbox/{id}")).await.csrf();
    let back = agent
        .post(&format!("/console/inbox/{id}/resume"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(back.status, 303, "{}", back.body);
    let after = agent.get(back.location()).await;
    assert!(
        after.body.contains("The bot has the conversation again."),
        "{}",
        after.body
    );
    assert!(
        !after.body.contains("handed off to a person"),
        "{}",
        after.body
    );
    app.eventually(10, "the flow's last message went out", || async {
        twilio
            .requests()
            .iter()
            .any(|r| r.form_value("Body").as_deref() == Some("The bot is back."))
    })
    .await;

    // Runs: the contact's run, filtered, and its event log.
    let runs = agent.get("/console/runs?flow=help&status=completed").await;
    assert_eq!(runs.status, 200, "{}", runs.body);
    assert!(runs.body.contains("help v1"), "{}", runs.body);
    assert!(runs.body.contains("+15550000002"), "{}", runs.body);
    let none = agent.get("/console/runs?status=waiting_input").await;
    assert!(none.body.contains("No run matches."), "{}", none.body);
    let bad = agent.get("/console/runs?status=sleeping").await;
    assert_eq!(bad.status, 200, "{}", bad.body);
    assert!(bad.body.contains("is not a run status"), "{}", bad.body);
    let run = agent.get("/console/runs/1").await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert!(run.body.contains("Run #1: help v1"), "{}", run.body);
    assert!(run.body.contains("Event log"), "{}", run.body);
    assert!(
        run.body.contains("<strong>command</strong>: name: resume"),
        "{}",
        run.body
    );
    assert_eq!(agent.get("/console/runs/999").await.status, 404);

    // A bot the user may not see is not shown.
    let none = agent.get("/console/inbox?bot=nope").await;
    assert_eq!(none.status, 404, "{}", none.body);
    // A session whose user is gone ends: back to the form.
    app.store
        .delete_user("ana", &confab_store::Change::by("test", 0))
        .await
        .unwrap();
    let gone = agent.get("/console/inbox").await;
    assert_eq!((gone.status, gone.location()), (303, "/console"));
    assert_eq!(
        gone.set_cookie("confab_session")
            .map(|c| c.contains("Max-Age=0")),
        Some(true)
    );
}

#[tokio::test]
async fn an_editor_makes_a_schedule_and_sees_when_it_fires_and_bad_fields_are_said_beside_them() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    app.user("eda", Role::Editor).await;
    app.user("vic", Role::Viewer).await;
    let mut b = Browser::new(&app);
    b.log_in("eda", "a-long-password").await;
    let page = b.get("/console/triggers").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("This bot has no trigger yet."));
    let csrf = page.csrf();
    let schedule = |zone: &'static str| {
        vec![
            ("name", "Monday check-in"),
            ("flow", "product_review"),
            ("trigger_type", "schedule"),
            ("schedule_type", "weekly"),
            ("schedule_days", "mon, thu"),
            ("schedule_time", "09:30"),
            ("schedule_timezone", zone),
            ("audience", "customer"),
        ]
    };
    // An unknown time zone: said beside its field, the form keeps what was
    // typed, and nothing is stored.
    let mut bad = schedule("Mars/Olympus");
    bad.push(("_csrf", &csrf));
    let refused = b.post("/console/triggers", &bad).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("id=\"fault-schedule_timezone\""),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("value=\"Mars&#x2f;Olympus\""),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("value=\"Monday check-in\""));
    assert_eq!(app.count("triggers").await, 0);
    // A preview says when it would fire, in its zone, and keeps nothing.
    let mut preview = schedule("Europe/Berlin");
    preview.push(("preview", "1"));
    preview.push(("_csrf", &csrf));
    let previewed = b.post("/console/triggers", &preview).await;
    assert_eq!(previewed.status, 200, "{}", previewed.body);
    assert!(
        previewed
            .body
            .contains("It would fire next at (in Europe&#x2f;Berlin)"),
        "{}",
        previewed.body
    );
    let listed = previewed.body.split("id=\"preview\"").nth(1).unwrap();
    assert_eq!(
        listed
            .split("</ol>")
            .next()
            .unwrap()
            .matches("<li>")
            .count(),
        5,
        "{listed}"
    );
    assert!(listed.contains("09:30"), "{listed}");
    assert_eq!(app.count("triggers").await, 0);

    let mut good = schedule("Europe/Berlin");
    good.push(("_csrf", &csrf));
    let made = b.post("/console/triggers", &good).await;
    assert_eq!(made.status, 303, "{}", made.body);
    let shown = b.get(made.location()).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains("The trigger is saved."));
    assert!(
        shown
            .body
            .contains("Next firing times (Europe&#x2f;Berlin)"),
        "{}",
        shown.body
    );
    let upcoming = shown.body.matches("09:30").count();
    assert!(upcoming >= 5, "five next times: {}", shown.body);
    assert!(shown.body.contains("It has not fired yet."));

    // Off and on again; the list says which.
    let off = b
        .post(
            "/console/triggers/1/switch",
            &[("_csrf", &csrf), ("to", "off")],
        )
        .await;
    assert_eq!(off.status, 303, "{}", off.body);
    let list = b.get("/console/triggers").await;
    assert!(
        list.body.contains("Switch on Monday check-in"),
        "{}",
        list.body
    );
    let (_, t) = app.get(&app.api_key().await, "/api/v1/triggers/1").await;
    assert_eq!(t["active"], false, "{t}");

    // A viewer sees the triggers but may not make or switch one.
    let mut viewer = Browser::new(&app);
    viewer.log_in("vic", "a-long-password").await;
    let csrf = viewer.get("/console/triggers").await.csrf();
    let refused = viewer
        .post(
            "/console/triggers/1/switch",
            &[("_csrf", &csrf), ("to", "on")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let mut again = schedule("UTC");
    again.push(("_csrf", &csrf));
    assert_eq!(viewer.post("/console/triggers", &again).await.status, 403);
    assert_eq!(app.count("triggers").await, 1);
}

#[tokio::test]
async fn records_are_listed_filtered_changed_deleted_and_exported_through_the_api() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let key = app.api_key().await;
    app.user("eda", Role::Editor).await;
    app.user("vic", Role::Viewer).await;
    let (s, r) = app
        .post(
            &key,
            "/api/v1/collections/reviews/records",
            json!({"contact_number": "+15550000003", "user_name": "Ana", "product_name": "Aurora Headphones",
                   "product_review": "Great sound, =cmd", "preferred_contact_again": true}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_i64().unwrap();
    let mut b = Browser::new(&app);
    b.log_in("eda", "a-long-password").await;

    let all = b.get("/console/records").await;
    assert_eq!(all.status, 200, "{}", all.body);
    for name in ["reviews", "orders", "defects"] {
        assert!(
            all.body.contains(&format!(">{name}</a>")),
            "{name}: {}",
            all.body
        );
    }
    let table = b.get("/console/records/reviews?user_name=Ana").await;
    assert_eq!(table.status, 200, "{}", table.body);
    assert!(table.body.contains("Aurora Headphones"), "{}", table.body);
    let none = b.get("/console/records/reviews?user_name=Bob").await;
    assert!(none.body.contains("No record matches."), "{}", none.body);
    let bad = b.get("/console/records/reviews?colour=red").await;
    assert!(bad.body.contains("has no field colour"), "{}", bad.body);
    assert_eq!(b.get("/console/records/nope").await.status, 404);

    // The export is the API's CSV, with the same filter.
    let csv = b.get("/console/records/reviews/export?user_name=Ana").await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        csv.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("reviews.csv")
    );
    assert!(
        csv.body.lines().next().unwrap().contains("user_name"),
        "{}",
        csv.body
    );
    assert!(csv.body.contains("Aurora Headphones"), "{}", csv.body);

    // A change the collection refuses is said beside its field; nothing changes.
    let page = b.get(&format!("/console/records/reviews/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.csrf();
    let path = format!("/console/records/reviews/{id}");
    let refused = b
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("user_name", "Ana"),
                ("preferred_contact_again", "maybe"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("id=\"fault-preferred_contact_again\""),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("value=\"maybe\""), "{}", refused.body);
    let saved = b
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("user_name", "Ana B"),
                ("preferred_contact_again", "no"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let (_, r) = app
        .get(&key, &format!("/api/v1/collections/reviews/records/{id}"))
        .await;
    assert_eq!(
        (&r["user_name"], &r["preferred_contact_again"]),
        (&json!("Ana B"), &json!(false)),
        "{r}"
    );

    // A viewer reads but may not delete; an editor deletes.
    let mut viewer = Browser::new(&app);
    viewer.log_in("vic", "a-long-password").await;
    let vcsrf = viewer.get(&path).await.csrf();
    let refused = viewer
        .post(&format!("{path}/delete"), &[("_csrf", &vcsrf)])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let gone = b.post(&format!("{path}/delete"), &[("_csrf", &csrf)]).await;
    assert_eq!(gone.status, 303, "{}", gone.body);
    let after = b.get(gone.location()).await;
    assert!(
        after.body.contains("The record is deleted."),
        "{}",
        after.body
    );
    assert!(after.body.contains("No record yet."), "{}", after.body);
}

#[tokio::test]
async fn flows_show_their_versions_and_an_editor_makes_an_older_one_live_again() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let key = app.api_key().await;
    app.user("eda", Role::Editor).await;
    app.user("vic", Role::Viewer).await;
    let hello = |text: &str| json!({"id": "hello", "name": "Hello", "nodes": [{"id": "a", "type": "end", "text": text}]});
    let (s, f) = app.post(&key, "/api/v1/flows", hello("Hello v1")).await;
    assert_eq!(s, 201, "{f}");
    let (s, f) = app
        .call(
            reqwest::Method::PUT,
            &key,
            "/api/v1/flows/hello",
            Some(hello("Hello v2")),
        )
        .await;
    assert_eq!((s, &f["version"]), (200, &json!(2)), "{f}");

    let mut b = Browser::new(&app);
    b.log_in("eda", "a-long-password").await;
    let list = b.get("/console/flows").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains(">hello</a>"), "{}", list.body);
    assert!(list.body.contains(">product_review</a>"), "{}", list.body);
    let page = b.get("/console/flows/hello").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("hello v2"), "{}", page.body);
    assert!(
        page.body.contains("text: Hello v2"),
        "the definition as YAML: {}",
        page.body
    );
    assert!(page.body.contains("Make version 1 live"), "{}", page.body);
    assert!(
        page.body.contains("<svg class=\"graph\""),
        "the flow drawn: {}",
        page.body
    );
    // A bundled flow has no button: it is changed by copying it.
    assert!(
        !b.get("/console/flows/product_review")
            .await
            .body
            .contains("Make version")
    );
    assert_eq!(b.get("/console/flows/nope").await.status, 404);

    // A viewer may not roll back; an editor does, and new runs start on it.
    let mut viewer = Browser::new(&app);
    viewer.log_in("vic", "a-long-password").await;
    let vcsrf = viewer.get("/console/flows/hello").await.csrf();
    let refused = viewer
        .post(
            "/console/flows/hello/versions/1/publish",
            &[("_csrf", &vcsrf)],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let done = b
        .post(
            "/console/flows/hello/versions/1/publish",
            &[("_csrf", &page.csrf())],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let after = b.get(done.location()).await;
    assert!(after.body.contains("Version 1 is live"), "{}", after.body);
    let (_, live) = app.get(&key, "/api/v1/flows/hello").await;
    assert_eq!(live["version"], 1, "{live}");
}

#[tokio::test]
async fn an_admin_makes_a_key_that_is_shown_once_and_revokes_it_and_others_are_told_it_is_an_admins()
 {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    app.user("ada", Role::Admin).await;
    app.user("eda", Role::Editor).await;
    let mut b = Browser::new(&app);
    b.log_in("ada", "a-long-password").await;
    let page = b.get("/console/settings").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<td>ada</td>"), "{}", page.body);
    let csrf = page.csrf();
    let made = b
        .post(
            "/console/settings/keys",
            &[("_csrf", &csrf), ("name", "crm"), ("role", "agent")],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let at = made.body.find("<code>cfb_").expect("the key, once") + 6;
    let key = &made.body[at..made.body[at..].find('<').unwrap() + at];
    assert_eq!(
        app.get(key, "/api/v1/contacts").await.0,
        200,
        "the key works"
    );
    let again = b.get("/console/settings").await;
    assert!(!again.body.contains(key), "never shown again");
    assert!(
        again.body.contains("key.create"),
        "in the audit log: {}",
        again.body
    );
    let bad = b
        .post(
            "/console/settings/keys",
            &[("_csrf", &csrf), ("name", "x"), ("role", "boss")],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    // Revoked, it stops working at once.
    let (_, keys) = app.get(&app.api_key().await, "/api/v1/keys").await;
    let id = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "crm")
        .unwrap()["id"]
        .clone();
    let action = format!("/console/settings/keys/{id}/revoke");
    assert!(again.body.contains("Revoke the key crm"), "{}", again.body);
    let gone = b.post(&action, &[("_csrf", &csrf)]).await;
    assert_eq!(gone.status, 303, "{action}: {}", gone.body);
    assert_eq!(app.get(key, "/api/v1/contacts").await.0, 401);

    let mut editor = Browser::new(&app);
    editor.log_in("eda", "a-long-password").await;
    let no = editor.get("/console/settings").await;
    assert_eq!(no.status, 200, "{}", no.body);
    assert!(no.body.contains("an admin"), "{}", no.body);
    let ecsrf = no.csrf();
    let refused = editor
        .post(
            "/console/settings/keys",
            &[("_csrf", &ecsrf), ("name", "mine"), ("role", "admin")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}

#[tokio::test]
async fn a_person_finishes_the_survey_in_the_simulator_taps_buttons_and_nothing_reaches_a_provider()
{
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let app = spawn_app(settings(&fresh_database().await, Some(&twilio.url), None)).await;
    let key = app.api_key().await;
    app.user("eda", Role::Editor).await;
    app.user("vic", Role::Viewer).await;
    let colours = json!({"id": "colours", "name": "Colours", "nodes": [
        {"id": "pick", "type": "send", "text": "Pick a colour", "buttons": [{"id": "red", "title": "Red"}, {"id": "blue", "title": "Blue"}], "next": "ask"},
        {"id": "ask", "type": "ask", "text": "Which one?", "save_as": "colour", "next": "done"},
        {"id": "done", "type": "end", "text": "You chose {{ colour }}"}]});
    let (s, f) = app.post(&key, "/api/v1/flows", colours).await;
    assert_eq!(s, 201, "{f}");

    let mut b = Browser::new(&app);
    b.log_in("eda", "a-long-password").await;
    let page = b.get("/console/simulator").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(">product_review</option>"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let started = b
        .post(
            "/console/simulator",
            &[("flow", "product_review"), ("_csrf", &csrf)],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let at = started.location().to_string();
    assert!(at.starts_with("/console/simulator?contact="), "{at}");
    let contact: i64 = at["/console/simulator?contact=".len()..]
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let say = format!("/console/simulator/{contact}/say");
    let screen = b.get(&at).await;
    assert!(
        screen.body.contains("What&#x27;s your name?"),
        "{}",
        screen.body
    );
    assert!(
        screen.body.contains("ask_name"),
        "the node: {}",
        screen.body
    );

    // A refused answer is the flow's own error, in the conversation.
    assert_eq!(
        b.post(&say, &[("text", "A"), ("_csrf", &csrf)])
            .await
            .status,
        303
    );
    let screen = b.get(&at).await;
    assert!(
        screen.body.contains("at least 2 characters"),
        "{}",
        screen.body
    );
    for answer in [
        "Ana",
        "Aurora Headphones",
        "Warm sound and a long battery.",
        "no",
    ] {
        let said = b.post(&say, &[("text", answer), ("_csrf", &csrf)]).await;
        assert_eq!(said.status, 303, "{answer}: {}", said.body);
    }
    let screen = b.get(&at).await;
    assert!(screen.body.contains("All done, Ana!"), "{}", screen.body);
    assert!(
        screen.body.contains("Restart to talk again"),
        "{}",
        screen.body
    );
    assert!(
        screen
            .body
            .contains("&quot;user_name&quot;: &quot;Ana&quot;"),
        "{}",
        screen.body
    );
    // Talking to a finished run is refused, and says so.
    let late = b.post(&say, &[("text", "hello"), ("_csrf", &csrf)]).await;
    assert_eq!(late.status, 409, "{}", late.body);
    assert!(late.body.contains("completed"), "{}", late.body);

    // The test contact is not in the inbox; the simulator is its place.
    let inbox = b.get("/console/inbox").await.body;
    for link in [
        format!("/console/inbox/{contact}?"),
        format!("/console/inbox/{contact}\""),
    ] {
        assert!(!inbox.contains(&link), "{inbox}");
    }

    // The record is in Records.
    let records = b.get("/console/records/reviews").await;
    assert!(
        records.body.contains("Aurora Headphones"),
        "{}",
        records.body
    );

    // Buttons are tapped by their id.
    let started = b
        .post(
            "/console/simulator",
            &[("flow", "colours"), ("_csrf", &csrf)],
        )
        .await;
    let at = started.location().to_string();
    let screen = b.get(&at).await;
    assert!(
        screen.body.contains("name=\"tap\" value=\"blue\""),
        "{}",
        screen.body
    );
    assert!(screen.body.contains(">Blue</button>"), "{}", screen.body);
    let other: i64 = at["/console/simulator?contact=".len()..]
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(other, contact, "each start is a fresh test contact");
    let tapped = b
        .post(
            &format!("/console/simulator/{other}/say"),
            &[("tap", "blue"), ("_csrf", &csrf)],
        )
        .await;
    assert_eq!(tapped.status, 303, "{}", tapped.body);
    assert!(b.get(&at).await.body.contains("You chose blue"));

    // Nothing went to the provider; no form works without the token; a
    // real contact is not talked to here; a viewer may look but not start.
    assert!(twilio.requests().is_empty());
    let forged = b.post(&say, &[("text", "hi")]).await;
    assert_eq!(forged.status, 403);
    let (s, real) = app
        .post(
            &key,
            "/api/v1/runs",
            json!({"contact": "+14155552671", "flow": "colours"}),
        )
        .await;
    assert_eq!(s, 201, "{real}");
    let real_screen = b
        .get(&format!(
            "/console/simulator?contact={}",
            real["contact_id"]
        ))
        .await;
    assert_eq!(real_screen.status, 404, "{}", real_screen.body);
    let mut v = Browser::new(&app);
    v.log_in("vic", "a-long-password").await;
    let page = v.get("/console/simulator").await;
    assert_eq!(page.status, 200);
    let refused = v
        .post(
            "/console/simulator",
            &[("flow", "product_review"), ("_csrf", &page.csrf())],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}

#[tokio::test]
async fn the_editor_shows_each_problem_on_its_line_publishes_nothing_broken_and_versions_compare() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let key = app.api_key().await;
    app.user("eda", Role::Editor).await;
    app.user("vic", Role::Viewer).await;
    let v1 = json!({"id": "hello", "name": "Hello", "nodes": [
        {"id": "a", "type": "send", "text": "Hi", "next": "b"},
        {"id": "b", "type": "end", "text": "Bye"}]});
    let (s, f) = app.post(&key, "/api/v1/flows", v1).await;
    assert_eq!(s, 201, "{f}");
    let mut b = Browser::new(&app);
    b.log_in("eda", "a-long-password").await;
    let page = b.get("/console/flows/hello").await;
    assert!(page.body.contains("Edit the YAML"), "{}", page.body);
    let editor = b.get("/console/flows/hello/edit").await;
    assert_eq!(editor.status, 200, "{}", editor.body);
    assert!(editor.body.contains("text: Hi"), "{}", editor.body);
    let csrf = editor.csrf();

    let broken = "id: hello\nname: Hello\nnodes:\n  - id: a\n    type: send\n    text: Hi\n    next: nowhere\n  - id: b\n    type: end\n    text: Bye\n";
    let checked = b
        .post(
            "/console/flows/hello/edit",
            &[("yaml", broken), ("publish", "1"), ("_csrf", &csrf)],
        )
        .await;
    assert_eq!(checked.status, 422, "{}", checked.body);
    let line = checked
        .body
        .split("<li id=\"line-7\" class=\"fault\">")
        .nth(1)
        .unwrap_or_else(|| panic!("line 7 is at fault: {}", checked.body));
    let line = &line[..line.find("</li>").unwrap()];
    assert!(line.contains("nowhere"), "{line}");
    assert!(
        checked.body.contains("nothing was published"),
        "{}",
        checked.body
    );
    // The text stays as typed.
    assert!(
        checked.body.contains("next: nowhere\n  - id: b"),
        "{}",
        checked.body
    );
    let (_, live) = app.get(&key, "/api/v1/flows/hello").await;
    assert_eq!(live["version"], 1, "{live}");

    // YAML that does not parse, and a field the flow has not: on their lines.
    let unreadable = "id: hello\nnodes:\n  - id: a\n    text: [unclosed\n";
    let checked = b
        .post(
            "/console/flows/hello/edit",
            &[("yaml", unreadable), ("_csrf", &csrf)],
        )
        .await;
    assert_eq!(checked.status, 422, "{}", checked.body);
    assert!(checked.body.contains("cannot be read"), "{}", checked.body);
    assert!(checked.body.contains("class=\"fault\""), "{}", checked.body);
    let misfit = "id: hello\nnodes:\n  - id: a\n    type: end\n    txet: Bye\n";
    let checked = b
        .post(
            "/console/flows/hello/edit",
            &[("yaml", misfit), ("_csrf", &csrf)],
        )
        .await;
    assert_eq!(checked.status, 422, "{}", checked.body);
    assert!(checked.body.contains("does not fit"), "{}", checked.body);
    assert!(checked.body.contains("class=\"fault\""), "{}", checked.body);

    // A check of good text publishes nothing; publishing makes version 2.
    let good = broken.replace("nowhere", "b").replace("Hi", "Hello there");
    let checked = b
        .post(
            "/console/flows/hello/edit",
            &[("yaml", &good), ("_csrf", &csrf)],
        )
        .await;
    assert_eq!(checked.status, 200, "{}", checked.body);
    assert!(checked.body.contains("No problems"), "{}", checked.body);
    let (_, live) = app.get(&key, "/api/v1/flows/hello").await;
    assert_eq!(live["version"], 1, "{live}");
    let published = b
        .post(
            "/console/flows/hello/edit",
            &[("yaml", &good), ("publish", "1"), ("_csrf", &csrf)],
        )
        .await;
    assert_eq!(published.status, 303, "{}", published.body);
    assert!(published.location().contains("done=2"));
    let (_, live) = app.get(&key, "/api/v1/flows/hello").await;
    assert_eq!(live["version"], 2, "{live}");

    // Version 1 against the live one.
    let compared = b.get("/console/flows/hello?diff=1").await;
    assert_eq!(compared.status, 200, "{}", compared.body);
    assert!(
        compared.body.contains("<li class=\"removed\"><span class=\"n\" aria-hidden=\"true\">−</span><code>  text: Hi</code>"),
        "{}",
        compared.body
    );
    assert!(
        compared.body.contains("<code>  text: Hello there</code>"),
        "{}",
        compared.body
    );

    // A viewer may look, not check or publish.
    let mut v = Browser::new(&app);
    v.log_in("vic", "a-long-password").await;
    let page = v.get("/console/flows/hello").await;
    let refused = v
        .post(
            "/console/flows/hello/edit",
            &[("yaml", &good), ("publish", "1"), ("_csrf", &page.csrf())],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}

/// Reads a server-sent event stream until `wanted` has come, for at most 10 s.
/// The contacts that `changed` events in `stream` (a stream's text) name.
fn changed_ids(stream: &str) -> Vec<i64> {
    stream
        .split("event: changed\ndata: ")
        .skip(1)
        .flat_map(|rest| rest.lines().next().unwrap_or_default().split(','))
        .filter_map(|id| id.trim().parse().ok())
        .collect()
}

async fn heard(resp: &mut reqwest::Response, wanted: &str) -> String {
    let mut seen = String::new();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains(wanted) {
        let chunk = tokio::time::timeout_at(until, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("{wanted:?} within 10 s; heard {seen:?}"))
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

#[tokio::test]
async fn an_open_inbox_hears_of_each_new_message_and_status_of_its_bot_only() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let app = spawn_app(settings(&fresh_database().await, Some(&twilio.url), None)).await;
    let key = app.api_key().await;
    app.user("ana", Role::Agent).await;
    let mut b = Browser::new(&app);
    b.log_in("ana", "a-long-password").await;
    let inbox = b.get("/console/inbox").await;
    assert!(
        inbox
            .body
            .contains("sse-connect=\"&#x2f;console&#x2f;live?bot=default&amp;contact=0\""),
        "{}",
        inbox.body
    );
    let mut live = b
        .http
        .get(format!("{}/console/live?bot=default", app.url))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    // The list with no conversation open hears that something changed, and
    // of no conversation in particular.
    let mut list_only = b
        .http
        .get(format!("{}/console/live?bot=default&contact=0", app.url))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap();

    // Another bot's contact writes: not heard here; then this bot's is.
    let (s, bot) = app
        .post(
            &key,
            "/api/v1/bots",
            json!({"slug": "bakery", "name": "Bakery"}),
        )
        .await;
    assert_eq!(s, 201, "{bot}");
    let (s, r) = app
        .post(
            &key,
            "/api/v1/bots/bakery/runs",
            json!({"flow": "product_review", "channel": "simulator"}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    app.twilio_text("+15550000001", "Hello", "SM1").await;
    let id = app.get(&key, "/api/v1/contacts/+15550000001").await.1["id"]
        .as_i64()
        .unwrap();
    let seen = heard(&mut live, &format!("event: changed\ndata: {id}")).await;
    assert!(
        seen.contains(&format!("event: contact-{id}\ndata: {id}")),
        "{seen}"
    );
    assert!(
        !seen.contains(&format!("contact-{}", r["contact_id"])),
        "another bot's: {seen}"
    );
    let seen = heard(&mut list_only, &format!("event: changed\ndata: {id}")).await;
    assert!(!seen.contains("event: contact-"), "{seen}");
    // A reply the agent sends, and its delivery, are heard too.
    let (s, sent) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+15550000001", "text": "Hi!"}),
        )
        .await;
    assert_eq!(s, 202, "{sent}");
    heard(&mut live, "event: changed").await;

    // Live reloads share what was read a moment ago, but never from before
    // a change heard: each reload after an event shows what it announced.
    for (i, text) in ["First of three", "Second of three", "Third of three"]
        .iter()
        .enumerate()
    {
        assert!(b.reload("/console/inbox", "contact-list").await.status == 200);
        app.twilio_text("+15550000001", text, &format!("SM{}", 10 + i))
            .await;
        heard(&mut live, "event: changed").await;
        let list = b.reload("/console/inbox", "contact-list").await.body;
        assert!(list.contains(text), "{text}: {list}");
        // The list alone is drawn, not the page around it.
        assert!(
            list.trim_start().starts_with("<div id=\"contact-list\""),
            "{list}"
        );
        assert!(!list.contains("<html"), "{list}");
    }
    // A conversation's page draws the same list with its contact marked,
    // and the whole page for any other part.
    let open = b
        .reload(&format!("/console/inbox/{id}"), "contact-list")
        .await
        .body;
    assert!(open.contains("aria-current=\"true\""), "{open}");
    assert!(!open.contains("<html"), "{open}");
    let messages = b
        .reload(&format!("/console/inbox/{id}"), "live-messages")
        .await
        .body;
    assert!(messages.contains("Third of three"), "{messages}");
    assert!(messages.contains("id=\"live-messages\""), "{messages}");

    // Two contacts write within the list's 2 s between tellings: the
    // stream tells of both, the second at the end of the wait, none dropped.
    app.twilio_text("+15550000031", "one", "SM31").await;
    app.twilio_text("+15550000032", "two", "SM32").await;
    let mut wanted = Vec::new();
    for phone in ["+15550000031", "+15550000032"] {
        let c = app.get(&key, &format!("/api/v1/contacts/{phone}")).await.1;
        wanted.push(c["id"].as_i64().unwrap());
    }
    let mut seen = String::new();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !wanted.iter().all(|id| changed_ids(&seen).contains(id)) {
        let chunk = tokio::time::timeout_at(until, list_only.chunk())
            .await
            .unwrap_or_else(|_| panic!("both {wanted:?} told within 10 s; heard {seen:?}"))
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }

    // Without a session there is no stream.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/console/live", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303);
}

#[tokio::test]
async fn a_console_on_one_server_hears_of_a_message_another_server_took() {
    let db = fresh_database().await;
    let one = spawn_app(settings(&db, None, None)).await;
    let two = spawn_app(settings(&db, None, None)).await;
    one.user("ana", Role::Agent).await;
    let mut b = Browser::new(&two);
    b.log_in("ana", "a-long-password").await;
    let mut live = b
        .http
        .get(format!("{}/console/live", two.url))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    one.twilio_text("+15550000007", "Hello", "SM7").await;
    heard(&mut live, "event: changed").await;
}

/// On PostgreSQL the server hears of changes on a connection of its own.
/// When it is cut, what was committed meanwhile is not heard: every open
/// console is told so (`missed`, and `changed` with `*`), and reloads.
#[tokio::test]
async fn an_open_console_is_told_when_the_server_may_have_missed_changes() {
    let db = fresh_database().await;
    if !db.starts_with("postgres") {
        return;
    }
    let app = spawn_app(settings(&db, None, None)).await;
    app.user("ana", Role::Agent).await;
    let mut b = Browser::new(&app);
    b.log_in("ana", "a-long-password").await;
    let mut live = b
        .http
        .get(format!("{}/console/live?contact=0", app.url))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let admin = sqlx::PgPool::connect(&db).await.unwrap();
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(cut, [true]);
    let seen = heard(&mut live, "event: changed\ndata: *").await;
    assert!(seen.contains("event: missed"), "{seen}");
    // And it hears what comes after.
    app.twilio_text("+15550000008", "Still there?", "SM8").await;
    heard(&mut live, "event: changed\ndata: 1").await;
}

#[tokio::test]
async fn a_broadcast_is_reviewed_with_its_reach_then_sent_and_followed() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let app = spawn_app(settings(&fresh_database().await, Some(&twilio.url), None)).await;
    let key = app.api_key().await;
    app.user("eda", Role::Editor).await;
    app.twilio_text("+15550000001", "hi", "SM1").await;
    let mut b = Browser::new(&app);
    b.log_in("eda", "a-long-password").await;
    let page = b.get("/console/broadcast").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.csrf();
    let form = [
        ("audience", "list"),
        ("numbers", "+15550000001\n+14155550199"),
        ("text", "We open at 9."),
        ("_csrf", csrf.as_str()),
    ];
    let review = b.post("/console/broadcast", &form).await;
    assert_eq!(review.status, 200, "{}", review.body);
    assert!(
        review.body.contains("It reaches 1 contact."),
        "{}",
        review.body
    );
    assert!(
        review.body.contains("1 is outside the 24-hour window"),
        "{}",
        review.body
    );
    assert!(review.body.contains("Send to 1 contact"), "{}", review.body);
    assert!(twilio.requests().is_empty(), "a review sends nothing");
    let mut confirmed = form.to_vec();
    confirmed.push(("send", "1"));
    let sent = b.post("/console/broadcast", &confirmed).await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let at = sent.location().to_string();
    assert!(at.starts_with("/console/broadcast/"), "{at}");
    app.eventually(10, "sent", || async { twilio.requests().len() == 1 })
        .await;
    app.eventually(10, "the page says it is done", || async {
        let mut again = Browser::new(&app);
        again.cookies = b.cookies.clone();
        again
            .get(&at)
            .await
            .body
            .contains("Done: every message has left the outbox")
    })
    .await;
    // Nothing at all is refused beside the form.
    let empty = b
        .post(
            "/console/broadcast",
            &[
                ("audience", "tag"),
                ("tag", "nobody"),
                ("text", "x"),
                ("_csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(empty.status, 422, "{}", empty.body);
    assert!(empty.body.contains("no contact"), "{}", empty.body);
    let (_, all) = app.get(&key, "/api/v1/broadcasts").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_dashboard_draws_the_days_messages_runs_and_delivery_outcomes() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let app = spawn_app(settings(&fresh_database().await, Some(&twilio.url), None)).await;
    let key = app.api_key().await;
    app.user("vic", Role::Viewer).await;
    // A contact starts the survey (its question goes back in the webhook's
    // answer); an agent's message goes out through the outbox.
    app.twilio_text("+15550000001", "review", "SM1").await;
    let (s, m) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+15550000001", "text": "Hi"}),
        )
        .await;
    assert_eq!(s, 202, "{m}");
    app.eventually(10, "sent", || async { twilio.requests().len() == 1 })
        .await;

    let (s, stats) = app.get(&key, "/api/v1/stats/messages").await;
    assert_eq!(s, 200, "{stats}");
    let days = stats["days"].as_array().unwrap();
    assert_eq!(days.len(), 30, "{stats}");
    let inbound: i64 = days.iter().map(|d| d["inbound"].as_i64().unwrap()).sum();
    let outbound: i64 = days.iter().map(|d| d["outbound"].as_i64().unwrap()).sum();
    assert_eq!((inbound, outbound), (1, 2), "{stats}");
    let by_status: i64 = stats["statuses"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(by_status, 2, "{stats}");
    let (s, bad) = app
        .get(&key, "/api/v1/stats/messages?from=2026-13-01")
        .await;
    assert_eq!(s, 400, "{bad}");

    let mut b = Browser::new(&app);
    b.log_in("vic", "a-long-password").await;
    let page = b.get("/console/dashboard").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("1 received, 2 sent."), "{}", page.body);
    assert!(
        page.body.contains(": 1 received</title>"),
        "a bar: {}",
        page.body
    );
    assert!(
        page.body
            .contains("<td>product_review</td><td>1</td><td>0</td>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("class=\"share-"), "{}", page.body);
    let narrow = b
        .get("/console/dashboard?from=2020-01-01&to=2020-01-02")
        .await;
    assert!(
        narrow.body.contains("0 received, 0 sent."),
        "{}",
        narrow.body
    );
    assert!(
        narrow.body.contains("Nothing was sent in these days."),
        "{}",
        narrow.body
    );
    let bad = b.get("/console/dashboard?from=yesterday").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[tokio::test]
async fn an_admin_makes_a_user_changes_their_role_and_disables_them_but_not_themselves() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let key = app.api_key().await;
    app.user("ada", Role::Admin).await;
    let mut b = Browser::new(&app);
    b.log_in("ada", "a-long-password").await;
    let page = b.get("/console/settings").await;
    let csrf = page.csrf();
    let made = b
        .post(
            "/console/settings/users",
            &[
                ("username", "newbie"),
                ("password", "a-long-password"),
                ("role", "agent"),
                ("_csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let page = b.get(made.location()).await;
    assert!(page.body.contains("The user is made"), "{}", page.body);
    let (_, users) = app.get(&key, "/api/v1/users").await;
    let newbie = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "newbie")
        .unwrap()
        .clone();
    assert_eq!(newbie["role"], "agent");
    let mut n = Browser::new(&app);
    assert_eq!(n.log_in("newbie", "a-long-password").await.status, 303);

    let change = format!("/console/settings/users/{}", newbie["id"]);
    let changed = b
        .post(&change, &[("role", "editor"), ("_csrf", &csrf)])
        .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    let disabled = b
        .post(&change, &[("disabled", "true"), ("_csrf", &csrf)])
        .await;
    assert_eq!(disabled.status, 303, "{}", disabled.body);
    let (_, after) = app
        .get(&key, &format!("/api/v1/users/{}", newbie["id"]))
        .await;
    assert_eq!(after["role"], "editor", "{after}");
    assert!(!after["disabled_at"].is_null(), "{after}");
    let mut again = Browser::new(&app);
    assert_eq!(again.log_in("newbie", "a-long-password").await.status, 401);

    // An admin may not disable themselves: said on the page, nothing changed.
    let (_, me) = app.get(&key, "/api/v1/users").await;
    let ada = me["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "ada")
        .unwrap()["id"]
        .clone();
    let refused = b
        .post(
            &format!("/console/settings/users/{ada}"),
            &[("disabled", "true"), ("_csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains("class=\"error\""), "{}", refused.body);
    let bad = b
        .post(
            "/console/settings/users",
            &[
                ("username", "x"),
                ("password", "short"),
                ("role", "agent"),
                ("_csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
}

#[tokio::test]
async fn an_editor_changes_a_trigger_in_its_filled_form_and_bad_fields_are_said_beside_them() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let key = app.api_key().await;
    app.user("eda", Role::Editor).await;
    // A keyword trigger with a priority and case sensitivity, which the
    // form does not show.
    let (s, t) = app
        .post(
            &key,
            "/api/v1/triggers",
            json!({"name": "Review", "flow": "product_review", "trigger_type": "keyword",
                "keywords": ["review", "feedback"], "match_type": "contains",
                "priority": 7, "case_sensitive": true}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let page_of = format!("/console/triggers/{}", t["id"]);
    let api_of = format!("/api/v1/triggers/{}", t["id"]);

    let mut b = Browser::new(&app);
    b.log_in("eda", "a-long-password").await;
    let page = b.get(&page_of).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let form = page.body.split("id=\"edit\"").nth(1).expect("the form");
    for filled in [
        "value=\"Review\"",
        "value=\"keyword\" checked",
        "value=\"review, feedback\"",
        "<option value=\"contains\" selected>",
        "<option value=\"product_review\" selected>",
        "priority 7",
        "keywords matched case-sensitively",
        ">Save the changes</button>",
    ] {
        assert!(form.contains(filled), "{filled}: {form}");
    }
    let csrf = page.csrf();

    // A bad regex: said beside the keywords, the form as typed, and the
    // trigger as it was.
    let bad = b
        .post(
            &page_of,
            &[
                ("_csrf", &csrf),
                ("name", "Review now"),
                ("flow", "product_review"),
                ("trigger_type", "keyword"),
                ("keywords", "(unclosed"),
                ("match_type", "regex"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    let fault = bad
        .body
        .split("id=\"t-keywords\"")
        .nth(1)
        .expect("the keywords' field");
    assert!(
        fault
            .split("</label>")
            .next()
            .unwrap()
            .contains("id=\"fault-keywords\""),
        "beside its field: {}",
        bad.body
    );
    assert!(bad.body.contains("value=\"Review now\""), "{}", bad.body);
    assert!(bad.body.contains("value=\"(unclosed\""), "{}", bad.body);
    assert!(bad.body.contains("<option value=\"regex\" selected>"));
    let (_, same) = app.get(&key, &api_of).await;
    assert_eq!(
        (&same["name"], &same["keywords"], &same["match_type"]),
        (
            &json!("Review"),
            &json!(["review", "feedback"]),
            &json!("contains")
        ),
        "{same}"
    );

    // Made a schedule: the preview says when it would fire and keeps nothing.
    let schedule = |preview: bool| {
        let mut f = vec![
            ("_csrf", csrf.as_str()),
            ("name", "Morning review"),
            ("flow", "product_review"),
            ("trigger_type", "schedule"),
            ("keywords", "review, feedback"),
            ("match_type", "contains"),
            ("schedule_type", "daily"),
            ("schedule_time", "07:15"),
            ("schedule_timezone", "America/New_York"),
            ("audience", "customer"),
        ];
        if preview {
            f.push(("preview", "1"));
        }
        f
    };
    let previewed = b.post(&page_of, &schedule(true)).await;
    assert_eq!(previewed.status, 200, "{}", previewed.body);
    let listed = previewed.body.split("id=\"preview\"").nth(1).unwrap();
    let listed = listed.split("</ol>").next().unwrap();
    assert_eq!(listed.matches("<li>").count(), 5, "{listed}");
    assert_eq!(listed.matches("07:15").count(), 5, "{listed}");
    assert!(
        previewed.body.contains("value=\"Morning review\""),
        "the form as typed: {}",
        previewed.body
    );
    let (_, same) = app.get(&key, &api_of).await;
    assert_eq!(same["trigger_type"], "keyword", "{same}");

    let saved = b.post(&page_of, &schedule(false)).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let shown = b.get(saved.location()).await;
    assert!(
        shown.body.contains("The trigger is changed."),
        "{}",
        shown.body
    );
    assert!(
        shown
            .body
            .contains("Next firing times (America&#x2f;New_York)"),
        "{}",
        shown.body
    );
    let (_, changed) = app.get(&key, &api_of).await;
    assert_eq!(changed["name"], "Morning review", "{changed}");
    assert_eq!(changed["trigger_type"], "schedule", "{changed}");
    assert_eq!(changed["schedule_time"], "07:15", "{changed}");
    assert_eq!(changed["schedule_timezone"], "America/New_York");
    assert_eq!(changed["audience"], json!({"tag": "customer"}));
    assert_eq!(changed["active"], true, "{changed}");
    // What the form does not show is kept where it still applies.
    assert_eq!(changed["priority"], 7, "{changed}");
    assert!(changed["keywords"].is_null() && changed["case_sensitive"].is_null());
    assert_eq!(changed["upcoming"].as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn a_viewer_sees_no_trigger_form_and_cannot_change_one_and_an_editor_deletes_one_when_sure() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let key = app.api_key().await;
    app.user("eda", Role::Editor).await;
    app.user("vic", Role::Viewer).await;
    let (s, t) = app
        .post(
            &key,
            "/api/v1/triggers",
            json!({"name": "Hi", "flow": "product_review", "trigger_type": "keyword", "keywords": ["hi"]}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let page_of = format!("/console/triggers/{}", t["id"]);
    let api_of = format!("/api/v1/triggers/{}", t["id"]);

    let mut viewer = Browser::new(&app);
    viewer.log_in("vic", "a-long-password").await;
    let page = viewer.get(&page_of).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("id=\"edit\""), "{}", page.body);
    assert!(!page.body.contains("Delete"), "{}", page.body);
    let csrf = page.csrf();
    let change = [
        ("_csrf", csrf.as_str()),
        ("name", "Mine now"),
        ("flow", "product_review"),
        ("trigger_type", "keyword"),
        ("keywords", "hi"),
    ];
    let refused = viewer.post(&page_of, &change).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refused = viewer
        .post(&format!("{page_of}/delete"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let (_, same) = app.get(&key, &api_of).await;
    assert_eq!(same["name"], "Hi", "{same}");

    // An editor is asked first, then the trigger and its log are gone.
    let mut b = Browser::new(&app);
    b.log_in("eda", "a-long-password").await;
    let page = b.get(&page_of).await;
    assert!(page.body.contains("Delete…"), "{}", page.body);
    assert!(!page.body.contains("id=\"delete\""), "{}", page.body);
    let asked = b.get(&format!("{page_of}?delete=1")).await;
    assert!(
        asked
            .body
            .contains("Delete the trigger <strong>Hi</strong> and its log?"),
        "{}",
        asked.body
    );
    assert_eq!(
        app.get(&key, &api_of).await.0,
        200,
        "asking deletes nothing"
    );
    let gone = b
        .post(&format!("{page_of}/delete"), &[("_csrf", &page.csrf())])
        .await;
    assert_eq!(gone.status, 303, "{}", gone.body);
    let list = b.get(gone.location()).await;
    assert!(
        list.body.contains("The trigger is deleted."),
        "{}",
        list.body
    );
    assert!(list.body.contains("This bot has no trigger yet."));
    assert_eq!(app.get(&key, &api_of).await.0, 404);
}

#[tokio::test]
async fn an_editor_runs_a_flows_conversation_tests_and_sees_each_pass_or_fail_and_why() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let key = app.api_key().await;
    app.user("eda", Role::Editor).await;
    app.user("vic", Role::Viewer).await;
    let greet = |v: u32| {
        json!({"id": "greet", "nodes": [
            {"id": "ask_name", "type": "ask", "text": format!("v{v}: what is your name?"), "save_as": "who", "next": "bye"},
            {"id": "bye", "type": "end", "text": format!("v{v}: goodbye {{{{ who }}}}")}]})
    };
    assert_eq!(app.post(&key, "/api/v1/flows", greet(1)).await.0, 201);
    let (s, f) = app
        .call(
            reqwest::Method::PUT,
            &key,
            "/api/v1/flows/greet",
            Some(greet(2)),
        )
        .await;
    assert_eq!(s, 200, "{f}");

    let mut b = Browser::new(&app);
    b.log_in("eda", "a-long-password").await;
    let page = b.get("/console/flows/greet").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(">Run tests</button>"), "{}", page.body);
    assert!(
        page.body.contains("?diff=1&amp;bot=default#diff\""),
        "comparing keeps the bot: {}",
        page.body
    );
    let csrf = page.csrf();
    // Nothing to run: said so, and nothing ran.
    let none = b
        .post(
            "/console/flows/greet/test",
            &[("_csrf", &csrf), ("transcripts", "  \n"), ("version", "")],
        )
        .await;
    assert_eq!(none.status, 200, "{}", none.body);
    assert!(
        none.body.contains("There are no tests to run"),
        "{}",
        none.body
    );

    // Two tests as two documents: one passes, one expects the old words.
    let tests = "name: greets\nsteps:\n  - user: hi\n    bot: [{ contains: \"v2: what\" }]\n  - user: Ana\n    bot: [\"v2: goodbye Ana\"]\n---\nname: expects the old words\nsteps:\n  - user: hi\n    bot: [{ contains: \"v1: what\" }]\n";
    let ran = b
        .post(
            "/console/flows/greet/test",
            &[("_csrf", &csrf), ("transcripts", tests), ("version", "")],
        )
        .await;
    assert_eq!(ran.status, 200, "{}", ran.body);
    assert!(
        ran.body.contains("1 of 2 tests failed on v2."),
        "{}",
        ran.body
    );
    let results = ran.body.split("aria-label=\"Each test\"").nth(1).unwrap();
    let results = results.split("</ol>").next().unwrap();
    let (first, second) = results.split_once("</li>").unwrap();
    assert!(
        first.contains("passed</span>") && first.contains("<strong>greets</strong>"),
        "{first}"
    );
    assert!(
        second.contains("failed</span>") && second.contains("expects the old words"),
        "{second}"
    );
    // What the failing one expected, and what came instead.
    let why = second
        .split("<pre class=\"variables\">")
        .nth(1)
        .expect("why");
    assert!(why.contains("v1: what"), "{why}");
    assert!(why.contains("v2: what is your name?"), "{why}");
    assert!(
        ran.body.contains("name: expects the old words"),
        "the tests stay in the box: {}",
        ran.body
    );

    // Against version 1 the second passes and the first fails.
    let old = b
        .post(
            "/console/flows/greet/test",
            &[("_csrf", &csrf), ("transcripts", tests), ("version", "1")],
        )
        .await;
    assert!(
        old.body.contains("1 of 2 tests failed on v1."),
        "{}",
        old.body
    );
    let one = b
        .post(
            "/console/flows/greet/test",
            &[
                ("_csrf", &csrf),
                ("transcripts", tests.split("---").next().unwrap()),
                ("version", ""),
            ],
        )
        .await;
    assert!(one.body.contains("The test passed on v2."), "{}", one.body);

    // A transcript that does not read: the API's words, the text kept.
    let bad = b
        .post(
            "/console/flows/greet/test",
            &[
                ("_csrf", &csrf),
                ("transcripts", "steps: 3"),
                ("version", ""),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("class=\"error\""), "{}", bad.body);
    assert!(bad.body.contains(">steps: 3</textarea>"), "{}", bad.body);
    assert_eq!(app.count("contacts").await, 0);

    // A viewer has no button, and the API refuses them the run.
    let mut viewer = Browser::new(&app);
    viewer.log_in("vic", "a-long-password").await;
    let page = viewer.get("/console/flows/greet").await;
    assert!(!page.body.contains(">Run tests</button>"), "{}", page.body);
    let refused = viewer
        .post(
            "/console/flows/greet/test",
            &[
                ("_csrf", &page.csrf()),
                ("transcripts", tests),
                ("version", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // A bundled flow's own tests are in the box, and they pass.
    let page = b.get("/console/flows/product_review").await;
    assert!(
        page.body
            .contains("These are the tests that come with this flow"),
        "{}",
        page.body
    );
    let bundled = confab_server::catalog::bundled_tests("product_review");
    assert!(page.body.contains("name: a review without further contact"));
    let ran = b
        .post(
            "/console/flows/product_review/test",
            &[("_csrf", &csrf), ("transcripts", &bundled), ("version", "")],
        )
        .await;
    assert_eq!(ran.status, 200, "{}", ran.body);
    assert!(ran.body.contains("All 8 tests passed"), "{}", ran.body);
}

#[tokio::test]
async fn settings_show_each_bots_channels_and_an_editor_tests_a_connection_and_sees_what_the_provider_said()
 {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let app = spawn_app(settings(&fresh_database().await, Some(&twilio.url), None)).await;
    app.user("eda", Role::Editor).await;
    app.user("vic", Role::Viewer).await;
    let row = |body: &str, kind: &str| -> String {
        body.split(&format!("id=\"channel-default-{kind}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("the {kind} channel: {body}"))
            .split("</tr>")
            .next()
            .unwrap()
            .to_string()
    };

    let mut b = Browser::new(&app);
    b.log_in("eda", "a-long-password").await;
    let page = b.get("/console/settings").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("an admin's"), "{}", page.body);
    let twilio_row = row(&page.body, "twilio");
    assert!(twilio_row.contains(ACCOUNT_SID), "{twilio_row}");
    assert!(
        twilio_row.contains("<dt>number</dt><dd>+14155238886</dd>"),
        "{twilio_row}"
    );
    assert!(
        twilio_row.contains("<dt>auth token</dt><dd>set</dd>"),
        "{twilio_row}"
    );
    assert!(twilio_row.contains("set by the server's environment"));
    assert!(twilio_row.contains(">Test connection</button>"));
    assert!(!page.body.contains(AUTH_TOKEN), "no secret is shown");
    let meta_row = row(&page.body, "meta");
    assert!(meta_row.contains("no: it only receives"), "{meta_row}");
    let csrf = page.csrf();
    let test = "/console/settings/bots/default/channels/twilio/test";

    // The provider takes the credentials: connected, said beside the channel.
    let ok = b.post(test, &[("_csrf", &csrf)]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let said = row(&ok.body, "twilio");
    assert!(
        said.contains("class=\"done\"") && said.contains("Connected."),
        "{said}"
    );
    assert!(!row(&ok.body, "meta").contains("Connected."));
    let asked = twilio.requests().pop().unwrap();
    assert_eq!(
        (asked.method.as_str(), asked.path.as_str()),
        (
            "GET",
            format!("/2010-04-01/Accounts/{ACCOUNT_SID}.json").as_str()
        )
    );

    // It refuses them: its error, beside the channel.
    twilio.script([common::fake::Reply::status(
        401,
        r#"{"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}"#,
    )]);
    let refused = b.post(test, &[("_csrf", &csrf)]).await;
    assert_eq!(refused.status, 200, "{}", refused.body);
    let said = row(&refused.body, "twilio");
    assert!(said.contains("class=\"error\""), "{said}");
    assert!(said.contains("The provider refused (HTTP 401)"), "{said}");
    assert!(said.contains("message: Authenticate"), "{said}");
    assert!(said.contains("code: 20003"), "{said}");

    // A channel that only receives cannot ask: the API says why.
    let cannot = b
        .post(
            "/console/settings/bots/default/channels/meta/test",
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(cannot.status, 409, "{}", cannot.body);
    let said = row(&cannot.body, "meta");
    assert!(said.contains("cannot call its provider without"), "{said}");
    assert_eq!(twilio.requests().len(), 2, "nothing sent: two probes only");

    // A viewer sees the channels but no test, and the API refuses theirs.
    let mut viewer = Browser::new(&app);
    viewer.log_in("vic", "a-long-password").await;
    let page = viewer.get("/console/settings").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(row(&page.body, "twilio").contains(ACCOUNT_SID));
    assert!(!page.body.contains("Test connection"), "{}", page.body);
    let refused = viewer.post(test, &[("_csrf", &page.csrf())]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(twilio.requests().len(), 2);
}

#[tokio::test]
async fn what_a_contact_sends_shows_in_the_conversation_fetched_with_the_bots_credentials() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let app = spawn_app(settings(&fresh_database().await, Some(&twilio.url), None)).await;
    app.user("vic", Role::Viewer).await;
    let key = app.api_key().await;
    let sid = "MMconsole01";
    let photo = "PNG: a photo of a parcel";
    let voice = "OggS: a voice note";
    let media = |n: usize| format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media/ME{n}");
    let photo_url = twilio.file(&media(0), "image/png", photo.as_bytes());
    let voice_url = twilio.file(&media(1), "audio/ogg", voice.as_bytes());
    app.twilio(
        "/webhooks/twilio",
        &[
            ("From", "whatsapp:+15550000007"),
            ("To", "whatsapp:+14155238886"),
            ("Body", "it came broken"),
            ("MessageSid", sid),
            ("NumMedia", "2"),
            ("MediaUrl0", &photo_url),
            ("MediaContentType0", "image/png"),
            ("MediaUrl1", &voice_url),
            ("MediaContentType1", "audio/ogg"),
        ],
    )
    .await;
    let (_, list) = app.get(&key, "/api/v1/messages?limit=1").await;
    let id = list["items"][0]["id"].as_i64().unwrap();
    let contact = list["items"][0]["contact_id"].as_i64().unwrap();

    let mut b = Browser::new(&app);
    b.log_in("vic", "a-long-password").await;
    let page = b.get(&format!("/console/inbox/{contact}")).await;
    assert_eq!(page.status, 200);
    // Shown in place, from the console, not from the provider's address
    // (the page writes `/` as `&#x2f;` in attributes).
    let file = |n: usize| format!("/console/media/{id}/{n}?bot=default").replace('/', "&#x2f;");
    assert!(
        page.body.contains(&format!("<img src=\"{}\"", file(0))),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!(
            "<audio controls preload=\"none\" src=\"{}\"",
            file(1)
        )),
        "{}",
        page.body
    );
    assert!(!page.body.contains(&photo_url), "{}", page.body);

    let got = b.get(&format!("/console/media/{id}/0?bot=default")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-type"], "image/png");
    assert_eq!(got.body, photo);
    let got = b.get(&format!("/console/media/{id}/1?bot=default")).await;
    assert_eq!(got.headers["content-type"], "audio/ogg");
    assert_eq!(got.body, voice);
    // Fetched with the account's credentials.
    let fetched: Vec<_> = twilio
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/Media/"))
        .collect();
    assert_eq!(fetched.len(), 2);
    assert!(
        fetched.iter().all(|r| r
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic "))),
        "{fetched:?}"
    );
    // A file the message has not is the API's 404, said on a page.
    let none = b.get(&format!("/console/media/{id}/2?bot=default")).await;
    assert_eq!(none.status, 404);
    assert!(none.body.contains("no file at position 2"), "{}", none.body);
    // Logged out, nothing.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/console/media/{id}/0", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303);
}
