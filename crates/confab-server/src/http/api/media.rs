//! The files contacts send, as a person looks at them: a message's file
//! fetched through the bot's channel (once; then kept, `crate::media`).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::scope::BotScope;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::media::FileError;

/// `{id}` and `{position}` of a message's file.
#[derive(Deserialize)]
pub struct FilePath {
    id: i64,
    position: u32,
}

/// Types a browser may show in place. Anything else (an SVG or HTML file
/// could carry a script) is given as a download.
const SHOWN: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "application/pdf",
];
const SHOWN_KINDS: &[&str] = &["audio/", "video/"];

/// The file at `position` (from 0) of the message, as the contact sent it:
/// fetched from Twilio or Meta the first time, then kept until
/// `MEDIA_RETENTION_DAYS` have passed.
#[utoipa::path(get, path = "/api/v1/messages/{id}/media/{position}", tag = "messages",
    params(("id" = i64, Path), ("position" = u32, Path, description = "the file's place among the message's media, from 0")),
    responses(
        (status = 200, description = "the file, with its content type", content_type = "application/octet-stream", body = String),
        (status = 404, description = "no such message or file, or the provider no longer has it", body = crate::error::Problem),
        (status = 409, description = "the bot has no credentials for the message's channel", body = crate::error::Problem),
        (status = 502, description = "the provider failed, or the file is larger than MEDIA_MAX_BYTES", body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    bot: BotScope,
    Path(FilePath { id, position }): Path<FilePath>,
) -> ApiResult<Response> {
    let m = super::messages::message_of(&state, &bot, id).await?;
    let (file, _) = state
        .runtime
        .files
        .get(&m, position as usize, &[])
        .await
        .map_err(|e| match e {
            FileError::NoSuchFile(_) | FileError::Gone => ApiError::NotFound(e.to_string()),
            FileError::NoChannel(_) => ApiError::Conflict(e.to_string()),
            FileError::TooLarge { .. } | FileError::WrongType(_) | FileError::Failed(_) => {
                ApiError::BadGateway(e.to_string())
            }
            FileError::NotKept => ApiError::internal(e),
            FileError::Store(e) => e.into(),
        })?;
    let shown = SHOWN.contains(&file.content_type.as_str())
        || SHOWN_KINDS.iter().any(|k| file.content_type.starts_with(k));
    let mut resp = file.bytes.into_response();
    let h = resp.headers_mut();
    let content_type = match shown {
        true => HeaderValue::from_str(&file.content_type).ok(),
        false => None,
    };
    h.insert(
        header::CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if !shown {
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // What was sent does not change; it is the user's to keep, not a proxy's.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    Ok(resp)
}
