//! Fetching inbound media from a fake Twilio, a fake Graph API and fake
//! storage servers. Every fake is its own origin (127.0.0.1 on its own port),
//! which is exactly what decides where credentials may go.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{FakeProvider, Recorded, Reply, closed_port_url};
use confab_channels::meta::{MetaClient, MetaConfig};
use confab_channels::twilio::{TwilioClient, TwilioConfig};
use confab_channels::{Fetched, MediaError, MediaLimits, USER_AGENT, http_client};
use confab_model::PhoneNumber;
use futures::stream::{self, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "twilio-auth-token-value";
const META_TOKEN: &str = "EAAG-meta-access-token-value";
const MEDIA_ID: &str = "1037543291543636";
const TIMEOUT: Duration = Duration::from_secs(2);
/// A fetch that refuses early returns well within this; one that waited for
/// a stalled body would not.
const PROMPT: Duration = Duration::from_secs(5);

fn twilio(api_url: &str) -> TwilioClient {
    let mut cfg = TwilioConfig::new(
        SID,
        TWILIO_TOKEN,
        PhoneNumber::parse("+14155238886").unwrap(),
    );
    cfg.api_url = format!("{api_url}/");
    TwilioClient::new(cfg, http_client(TIMEOUT))
}

fn meta(api_url: &str) -> MetaClient {
    let mut cfg = MetaConfig::new(META_TOKEN, "106540352242922");
    cfg.api_url = api_url.to_string();
    MetaClient::new(cfg, http_client(TIMEOUT))
}

fn limits(max_bytes: u64, accept: &[&str]) -> MediaLimits {
    MediaLimits {
        max_bytes,
        accept: accept.iter().map(|s| s.to_string()).collect(),
    }
}

fn any_type(max_bytes: u64) -> MediaLimits {
    limits(max_bytes, &[])
}

/// Where a webhook's MediaUrl0 points.
fn media_path() -> String {
    format!(
        "/2010-04-01/Accounts/{SID}/Messages/MM0123456789abcdef0123456789abcdef/Media/ME0123456789abcdef0123456789abcdef"
    )
}

fn file(content_type: &str, body: &str) -> Reply {
    Reply {
        status: 200,
        headers: vec![("content-type", content_type.to_string())],
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

fn redirect(status: u16, location: &str) -> Reply {
    Reply {
        status,
        headers: vec![("location", location.to_string())],
        body: String::new(),
        delay: Duration::ZERO,
    }
}

fn status(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn basic_auth() -> String {
    format!("Basic {}", BASE64.encode(format!("{SID}:{TWILIO_TOKEN}")))
}

fn assert_no_auth(r: &Recorded) {
    assert!(
        r.headers.get("authorization").is_none(),
        "{} received credentials",
        r.path
    );
}

fn assert_no_secret(e: &MediaError) {
    for secret in [TWILIO_TOKEN, META_TOKEN] {
        assert!(!e.to_string().contains(secret), "{e}");
        assert!(!format!("{e:?}").contains(secret), "{e:?}");
    }
}

fn graph_media(url: &str, mime_type: &str, sha256: &str, file_size: Value) -> Reply {
    Reply::json(
        200,
        json!({ "messaging_product": "whatsapp", "url": url, "mime_type": mime_type,
                "sha256": sha256, "file_size": file_size, "id": MEDIA_ID }),
    )
}

fn lookaside(cdn: &str) -> String {
    format!("{cdn}/whatsapp_business/attachments/?mid={MEDIA_ID}&ext=1700000000&hash=ATtS3kQ")
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    url
}

/// Storage that sends three bytes of a file and then nothing more, ever. A
/// fetch that returns while talking to it decided before reading the body.
async fn stalling_storage(content_type: &'static str, content_length: Option<u64>) -> String {
    serve(Router::new().fallback(move || async move {
        let body = stream::once(async { Ok::<_, Infallible>(Bytes::from_static(b"abc")) })
            .chain(stream::pending());
        let mut response = Response::builder().header(CONTENT_TYPE, content_type);
        if let Some(length) = content_length {
            response = response.header(CONTENT_LENGTH, length);
        }
        response.body(Body::from_stream(body)).unwrap()
    }))
    .await
}

const ENDLESS_TOTAL: u64 = 50 << 20;
static CHUNK: [u8; 64 << 10] = [7; 64 << 10];

/// Storage that streams a 50 MB file, chunked and without Content-Length,
/// producing each chunk only when the connection can take it. Returns its
/// URL and how many bytes it has produced so far.
async fn endless_storage() -> (String, Arc<AtomicU64>) {
    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    let url = serve(Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            let body = stream::unfold(0u64, move |sent| {
                let counter = counter.clone();
                async move {
                    if sent >= ENDLESS_TOTAL {
                        return None;
                    }
                    counter.fetch_add(CHUNK.len() as u64, Ordering::SeqCst);
                    let chunk = Ok::<_, Infallible>(Bytes::from_static(&CHUNK));
                    Some((chunk, sent + CHUNK.len() as u64))
                }
            });
            Response::builder()
                .header(CONTENT_TYPE, "video/mp4")
                .body(Body::from_stream(body))
                .unwrap()
        }
    }))
    .await;
    (url, produced)
}

// ---------------------------------------------------------------------------
// Twilio

#[tokio::test]
async fn twilio_credentials_go_to_the_api_host_only() {
    let api = FakeProvider::start().await;
    let cdn = FakeProvider::start().await;
    let body = "OggS\u{0}\u{2} not really opus, but bytes all the same";
    // Twilio's host first redirects within itself (relative Location), then
    // to storage with a signed, short-lived URL.
    api.reply(redirect(302, &format!("{}?redirected=1", media_path())))
        .reply(redirect(
            307,
            &format!(
                "{}/bucket/ME0123?Expires=1700000000&Signature=c2ln",
                cdn.url
            ),
        ));
    cdn.reply(file("Audio/OGG; codecs=opus", body));

    let fetched = twilio(&api.url)
        .fetch_media(
            &format!("{}{}", api.url, media_path()),
            &limits(1 << 20, &["image/", "audio/"]),
        )
        .await
        .unwrap();
    assert_eq!(
        fetched,
        Fetched {
            bytes: body.as_bytes().to_vec(),
            content_type: "audio/ogg".into(),
            size: body.len() as u64,
            sha256: sha256_hex(body.as_bytes()),
        }
    );

    let at_api = api.requests();
    assert_eq!(at_api.len(), 2);
    for r in &at_api {
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, media_path());
        assert_eq!(r.header("authorization"), basic_auth());
        assert_eq!(r.header("user-agent"), USER_AGENT);
    }
    let at_cdn = cdn.only_request();
    assert_eq!(at_cdn.method, "GET");
    assert_eq!(at_cdn.path, "/bucket/ME0123");
    assert_no_auth(&at_cdn);
    assert_eq!(at_cdn.header("user-agent"), USER_AGENT);
}

#[tokio::test]
async fn a_foreign_media_url_gets_no_credentials() {
    let api = FakeProvider::start().await;
    // Same address as the API fake, another port: another origin.
    let foreign = FakeProvider::start().await;
    foreign.reply(file("image/png", "png bytes"));
    let fetched = twilio(&api.url)
        .fetch_media(&format!("{}/m/0.png", foreign.url), &any_type(1 << 20))
        .await
        .unwrap();
    assert_eq!(fetched.bytes, b"png bytes");
    assert_eq!(fetched.content_type, "image/png");
    assert_no_auth(&foreign.only_request());
    assert!(api.requests().is_empty());
}

#[tokio::test]
async fn a_redirect_back_to_the_api_host_gets_no_credentials_either() {
    let api = FakeProvider::start().await;
    let foreign = FakeProvider::start().await;
    // A third party bouncing us onto Twilio must not make us authenticate
    // there on its behalf.
    foreign.reply(redirect(302, &format!("{}{}", api.url, media_path())));
    api.reply(status(401, r#"{"code":20003,"message":"Authenticate"}"#));
    let e = twilio(&api.url)
        .fetch_media(&format!("{}/m/0", foreign.url), &any_type(1 << 20))
        .await
        .unwrap_err();
    assert_eq!(e, MediaError::Status(401));
    assert_no_auth(&foreign.only_request());
    assert_no_auth(&api.only_request());
}

#[tokio::test]
async fn an_unaccepted_type_is_refused_before_the_body() {
    let api = FakeProvider::start().await;
    let storage = stalling_storage("video/mp4", None).await;
    api.reply(redirect(307, &format!("{storage}/v.mp4")));
    let started = Instant::now();
    let e = tokio::time::timeout(
        PROMPT,
        twilio(&api.url).fetch_media(
            &format!("{}{}", api.url, media_path()),
            &limits(1 << 20, &["image/", "audio/"]),
        ),
    )
    .await
    .expect("the body was waited for")
    .unwrap_err();
    assert_eq!(e, MediaError::WrongType("video/mp4".into()));
    assert!(!e.is_retryable());
    assert!(started.elapsed() < PROMPT);
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body() {
    let api = FakeProvider::start().await;
    // Declares 10 MB and sends three bytes: only the header can end this.
    let storage = stalling_storage("image/jpeg", Some(10_000_000)).await;
    api.reply(redirect(307, &format!("{storage}/big.jpg")));
    let e = tokio::time::timeout(
        PROMPT,
        twilio(&api.url).fetch_media(
            &format!("{}{}", api.url, media_path()),
            &limits(1_000_000, &["image/"]),
        ),
    )
    .await
    .expect("the body was waited for")
    .unwrap_err();
    assert_eq!(e, MediaError::TooLarge { limit: 1_000_000 });
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_cut_off() {
    let api = FakeProvider::start().await;
    let (storage, produced) = endless_storage().await;
    api.reply(redirect(307, &format!("{storage}/endless.mp4")));
    let started = Instant::now();
    let e = tokio::time::timeout(
        PROMPT,
        twilio(&api.url).fetch_media(
            &format!("{}{}", api.url, media_path()),
            &any_type(256 << 10),
        ),
    )
    .await
    .expect("the fetch read on past its limit")
    .unwrap_err();
    assert_eq!(e, MediaError::TooLarge { limit: 256 << 10 });
    assert!(started.elapsed() < PROMPT);
    // Once we hang up the server stops producing; what it managed is what
    // fitted in the socket buffers, far from the whole file.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = produced.load(Ordering::SeqCst);
    assert!(sent >= 256 << 10, "{sent}");
    assert!(sent < ENDLESS_TOTAL / 2, "the server sent {sent} bytes");
}

#[tokio::test]
async fn the_limit_itself_is_allowed() {
    let cdn = FakeProvider::start().await;
    let body = "x".repeat(1000);
    cdn.reply(file("application/pdf", &body))
        .reply(file("application/pdf", &body));
    let c = twilio(&closed_port_url().await);
    let url = format!("{}/doc.pdf", cdn.url);
    let fetched = c
        .fetch_media(&url, &limits(1000, &["application/pdf"]))
        .await
        .unwrap();
    assert_eq!(fetched.size, 1000);
    assert_eq!(
        c.fetch_media(&url, &limits(999, &["application/pdf"]))
            .await
            .unwrap_err(),
        MediaError::TooLarge { limit: 999 }
    );
}

#[tokio::test]
async fn twilio_answers_map_to_errors() {
    let api = FakeProvider::start().await;
    let c = twilio(&api.url);
    let url = format!("{}{}", api.url, media_path());
    let l = any_type(1 << 20);

    api.reply(status(500, "Internal Server Error"));
    let e = c.fetch_media(&url, &l).await.unwrap_err();
    assert_eq!(e, MediaError::Status(500));
    assert!(e.is_retryable());

    api.reply(status(429, "slow down"));
    assert!(c.fetch_media(&url, &l).await.unwrap_err().is_retryable());

    api.reply(Reply::json(
        401,
        json!({ "code": 20003, "message": "Authenticate", "status": 401 }),
    ));
    let e = c.fetch_media(&url, &l).await.unwrap_err();
    assert_eq!(e, MediaError::Status(401));
    assert!(!e.is_retryable());
    assert_no_secret(&e);

    api.reply(Reply::json(
        404,
        json!({ "code": 20404, "message": "The requested resource was not found", "status": 404 }),
    ));
    let e = c.fetch_media(&url, &l).await.unwrap_err();
    assert_eq!(e, MediaError::NotFound);
    assert!(!e.is_retryable());

    // An empty file is not a file.
    api.reply(file("image/jpeg", ""));
    assert!(matches!(
        c.fetch_media(&url, &l).await.unwrap_err(),
        MediaError::Malformed(_)
    ));
}

#[tokio::test]
async fn an_unreachable_host_is_a_retryable_network_error() {
    let gone = closed_port_url().await;
    let e = twilio(&gone)
        .fetch_media(&format!("{gone}{}", media_path()), &any_type(1 << 20))
        .await
        .unwrap_err();
    match &e {
        MediaError::Network(m) => assert!(m.starts_with("could not connect"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(e.is_retryable());
    assert_no_secret(&e);
}

#[tokio::test]
async fn redirects_are_followed_five_times_at_most() {
    let api = FakeProvider::start().await;
    for _ in 0..6 {
        api.reply(redirect(302, &media_path()));
    }
    let e = twilio(&api.url)
        .fetch_media(&format!("{}{}", api.url, media_path()), &any_type(1 << 20))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, MediaError::Malformed(m) if m.contains("redirects")),
        "{e:?}"
    );
    assert_eq!(api.requests().len(), 6);

    api.reply(status(302, ""));
    let e = twilio(&api.url)
        .fetch_media(&format!("{}{}", api.url, media_path()), &any_type(1 << 20))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, MediaError::Malformed(m) if m.contains("Location")),
        "{e:?}"
    );
}

#[tokio::test]
async fn urls_that_are_not_http_are_refused_without_a_request() {
    let api = FakeProvider::start().await;
    for url in ["", "not a url", "file:///etc/passwd", "ftp://h.test/a"] {
        let e = twilio(&api.url)
            .fetch_media(url, &any_type(1 << 20))
            .await
            .unwrap_err();
        assert!(matches!(e, MediaError::Malformed(_)), "{url}: {e:?}");
    }
    assert!(api.requests().is_empty());
}

// ---------------------------------------------------------------------------
// Meta

#[tokio::test]
async fn meta_resolves_the_id_then_downloads_with_the_token() {
    let graph = FakeProvider::start().await;
    let cdn = FakeProvider::start().await;
    let body = "\u{FF}\u{D8}\u{FF} a JPEG, in spirit";
    graph.reply(graph_media(
        &lookaside(&cdn.url),
        "image/jpeg",
        &sha256_hex(body.as_bytes()),
        json!(body.len()),
    ));
    cdn.reply(file("image/jpeg", body));

    let fetched = meta(&graph.url)
        .fetch_media(MEDIA_ID, &limits(1 << 20, &["image/"]))
        .await
        .unwrap();
    assert_eq!(
        fetched,
        Fetched {
            bytes: body.as_bytes().to_vec(),
            content_type: "image/jpeg".into(),
            size: body.len() as u64,
            sha256: sha256_hex(body.as_bytes()),
        }
    );

    let lookup = graph.only_request();
    assert_eq!(lookup.method, "GET");
    assert_eq!(lookup.path, format!("/v23.0/{MEDIA_ID}"));
    assert_eq!(
        lookup.header("authorization"),
        format!("Bearer {META_TOKEN}")
    );
    assert_eq!(lookup.header("user-agent"), USER_AGENT);
    let download = cdn.only_request();
    assert_eq!(download.method, "GET");
    assert_eq!(download.path, "/whatsapp_business/attachments/");
    assert_eq!(
        download.header("authorization"),
        format!("Bearer {META_TOKEN}")
    );
    assert_eq!(download.header("user-agent"), USER_AGENT);
}

#[tokio::test]
async fn meta_hash_in_base64_and_a_typeless_download() {
    let graph = FakeProvider::start().await;
    let cdn = FakeProvider::start().await;
    let body = "voice note";
    // The spec writes file_size as a string and webhooks write hashes in
    // base64; storage may not name the type at all.
    graph.reply(graph_media(
        &lookaside(&cdn.url),
        "audio/ogg; codecs=opus",
        &BASE64.encode(Sha256::digest(body.as_bytes())),
        json!(body.len().to_string()),
    ));
    cdn.reply(file("application/octet-stream", body));
    let fetched = meta(&graph.url)
        .fetch_media(MEDIA_ID, &limits(1 << 20, &["audio/"]))
        .await
        .unwrap();
    assert_eq!(fetched.content_type, "audio/ogg");
    assert_eq!(fetched.bytes, body.as_bytes());
}

#[tokio::test]
async fn meta_rejects_a_file_that_does_not_match_its_hash() {
    let graph = FakeProvider::start().await;
    let cdn = FakeProvider::start().await;
    graph.reply(graph_media(
        &lookaside(&cdn.url),
        "image/jpeg",
        &sha256_hex(b"the original"),
        json!(12),
    ));
    cdn.reply(file("image/jpeg", "a substitute"));
    let e = meta(&graph.url)
        .fetch_media(MEDIA_ID, &any_type(1 << 20))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, MediaError::Malformed(m) if m.contains("sha256")),
        "{e:?}"
    );
    assert!(!e.is_retryable());
}

/// Graph answers an id it does not know (or that is not ours) with 400 and
/// error 100/33; that is NotFound, as is a plain 404. Other refusals keep
/// their status.
#[tokio::test]
async fn meta_unknown_ids_and_refusals() {
    let graph = FakeProvider::start().await;
    let c = meta(&graph.url);
    let l = any_type(1 << 20);

    graph.reply(Reply::json(
        400,
        json!({ "error": { "message": format!("Unsupported get request. Object with ID '{MEDIA_ID}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."),
                           "type": "GraphMethodException", "code": 100, "error_subcode": 33,
                           "fbtrace_id": "AXsgnV2Cm3ZMGF3dF_cfYIn" } }),
    ));
    assert_eq!(
        c.fetch_media(MEDIA_ID, &l).await.unwrap_err(),
        MediaError::NotFound
    );

    graph.reply(status(404, ""));
    assert_eq!(
        c.fetch_media(MEDIA_ID, &l).await.unwrap_err(),
        MediaError::NotFound
    );

    graph.reply(Reply::json(
        400,
        json!({ "error": { "message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100 } }),
    ));
    assert_eq!(
        c.fetch_media(MEDIA_ID, &l).await.unwrap_err(),
        MediaError::Status(400)
    );

    graph.reply(Reply::json(
        401,
        json!({ "error": { "message": "Error validating access token", "type": "OAuthException", "code": 190 } }),
    ));
    let e = c.fetch_media(MEDIA_ID, &l).await.unwrap_err();
    assert_eq!(e, MediaError::Status(401));
    assert!(!e.is_retryable());
    assert_no_secret(&e);

    // Rate limits come as 400 with a code, and are retried.
    graph.reply(Reply::json(
        400,
        json!({ "error": { "message": "(#4) Application request limit reached", "type": "OAuthException", "code": 4 } }),
    ));
    let e = c.fetch_media(MEDIA_ID, &l).await.unwrap_err();
    assert_eq!(e, MediaError::Status(429));
    assert!(e.is_retryable());

    graph.reply(status(500, "oops"));
    assert!(
        c.fetch_media(MEDIA_ID, &l)
            .await
            .unwrap_err()
            .is_retryable()
    );

    graph.reply(Reply::json(200, json!({ "messaging_product": "whatsapp" })));
    assert!(matches!(
        c.fetch_media(MEDIA_ID, &l).await.unwrap_err(),
        MediaError::Malformed(_)
    ));
    graph.reply(status(200, "<html>"));
    assert!(matches!(
        c.fetch_media(MEDIA_ID, &l).await.unwrap_err(),
        MediaError::Malformed(_)
    ));

    // Not an id at all: no request, nothing to find.
    let asked = graph.requests().len();
    for id in ["", "../me", "123/messages", "1?fields=x"] {
        assert_eq!(
            c.fetch_media(id, &l).await.unwrap_err(),
            MediaError::NotFound,
            "{id}"
        );
    }
    assert_eq!(graph.requests().len(), asked);
}

#[tokio::test]
async fn meta_metadata_refusals_download_nothing() {
    let graph = FakeProvider::start().await;
    let cdn = FakeProvider::start().await;
    let c = meta(&graph.url);

    graph.reply(graph_media(
        &lookaside(&cdn.url),
        "video/mp4",
        &sha256_hex(b"v"),
        json!(1),
    ));
    assert_eq!(
        c.fetch_media(MEDIA_ID, &limits(1 << 20, &["image/", "audio/"]))
            .await
            .unwrap_err(),
        MediaError::WrongType("video/mp4".into())
    );

    graph.reply(graph_media(
        &lookaside(&cdn.url),
        "image/jpeg",
        &sha256_hex(b"v"),
        json!("303833"),
    ));
    assert_eq!(
        c.fetch_media(MEDIA_ID, &limits(300_000, &["image/"]))
            .await
            .unwrap_err(),
        MediaError::TooLarge { limit: 300_000 }
    );

    graph.reply(graph_media(
        &lookaside(&cdn.url),
        "image/jpeg",
        "<HASH>",
        json!(1),
    ));
    assert!(matches!(
        c.fetch_media(MEDIA_ID, &any_type(1 << 20))
            .await
            .unwrap_err(),
        MediaError::Malformed(_)
    ));

    assert_eq!(graph.requests().len(), 3);
    assert!(cdn.requests().is_empty(), "a refused file was downloaded");
}

#[tokio::test]
async fn meta_download_answers_and_redirects() {
    let graph = FakeProvider::start().await;
    let cdn = FakeProvider::start().await;
    let elsewhere = FakeProvider::start().await;
    let c = meta(&graph.url);
    let l = any_type(1 << 20);
    let media = || graph_media(&lookaside(&cdn.url), "image/jpeg", "", json!(4));

    graph.reply(media());
    cdn.reply(status(500, ""));
    let e = c.fetch_media(MEDIA_ID, &l).await.unwrap_err();
    assert_eq!(e, MediaError::Status(500));
    assert!(e.is_retryable());

    graph.reply(media());
    cdn.reply(status(404, ""));
    assert_eq!(
        c.fetch_media(MEDIA_ID, &l).await.unwrap_err(),
        MediaError::NotFound
    );

    // The token is for the URL Graph named, not for wherever that sends us.
    graph.reply(media());
    cdn.reply(redirect(302, &format!("{}/f", elsewhere.url)));
    elsewhere.reply(file("image/jpeg", "jpeg"));
    let fetched = c.fetch_media(MEDIA_ID, &l).await.unwrap();
    assert_eq!(fetched.bytes, b"jpeg");
    assert_eq!(cdn.requests().len(), 3);
    for r in cdn.requests() {
        assert_eq!(r.header("authorization"), format!("Bearer {META_TOKEN}"));
    }
    assert_no_auth(&elsewhere.only_request());
}

#[tokio::test]
async fn meta_unreachable_is_a_retryable_network_error() {
    let e = meta(&closed_port_url().await)
        .fetch_media(MEDIA_ID, &any_type(1 << 20))
        .await
        .unwrap_err();
    assert!(matches!(e, MediaError::Network(_)), "{e:?}");
    assert!(e.is_retryable());

    let graph = FakeProvider::start().await;
    graph.reply(graph_media(
        &lookaside(&closed_port_url().await),
        "image/jpeg",
        "",
        json!(4),
    ));
    let e = meta(&graph.url)
        .fetch_media(MEDIA_ID, &any_type(1 << 20))
        .await
        .unwrap_err();
    assert!(matches!(e, MediaError::Network(_)), "{e:?}");
    assert_no_secret(&e);
}
