//! Collection records: what flows save (reviews, tickets...), readable and
//! editable by operators and other systems, and exportable as CSV.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confab_flow::collection::Collection;
use confab_store::{Record, RecordFilter};
use serde::Serialize;
use serde_json::{Map, Value};

use super::scope::{BotScope, Name, NameId};
use super::{Body, Page, cursor, limit};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::runtime::record_json;

/// Query parameters that are not field filters.
const RESERVED: [&str; 4] = ["limit", "cursor", "contact_id", "format"];
/// Most records one CSV export holds.
const MAX_EXPORT: i64 = 10_000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct CollectionOut {
    pub name: String,
    pub description: Option<String>,
    /// Field name to its type and rules.
    #[schema(value_type = Object)]
    pub fields: serde_json::Value,
}

/// The bot's collections: those declared next to the flows and by its flows.
#[utoipa::path(get, path = "/api/v1/collections", tag = "collections", responses((status = 200, body = Vec<CollectionOut>)), security(("bearer" = [])))]
pub async fn list_collections(
    State(state): State<AppState>,
    bot: BotScope,
) -> Json<Vec<CollectionOut>> {
    let catalog = state.registry.catalog(bot.id());
    let mut out: Vec<CollectionOut> = catalog
        .collections
        .values()
        .map(|c| CollectionOut {
            name: c.name.clone(),
            description: c.description.clone(),
            fields: serde_json::to_value(&c.fields).unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Json(out)
}

fn collection(state: &AppState, bot_id: i64, name: &str) -> ApiResult<Collection> {
    state
        .registry
        .catalog(bot_id)
        .collections
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no collection {name}")))
}

fn checked(
    c: &Collection,
    fields: &Map<String, Value>,
    partial: bool,
) -> ApiResult<Map<String, Value>> {
    c.check(fields, partial)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))
}

fn not_found(name: &str, id: i64) -> impl FnOnce(confab_store::StoreError) -> ApiError + '_ {
    move |e| match e {
        confab_store::StoreError::NotFound => {
            ApiError::NotFound(format!("no record {id} in {name}"))
        }
        e => e.into(),
    }
}

/// Records, newest first; any other query parameter filters by that field
/// (`?status=ON%20HOLD`). `format=csv` exports them as CSV.
#[utoipa::path(get, path = "/api/v1/collections/{name}/records", tag = "collections",
    params(("name" = String, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query), ("contact_id" = Option<i64>, Query), ("format" = Option<String>, Query, description = "json (default) or csv")),
    responses((status = 200, body = Page<Object>), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Name { name }): Path<Name>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let c = collection(&state, bot.id(), &name)?;
    let mut fields = Vec::new();
    for (k, v) in &q {
        if RESERVED.contains(&k.as_str()) {
            continue;
        }
        if !c.fields.contains_key(k) {
            return Err(ApiError::BadRequest(format!(
                "collection {name} has no field {k} to filter by"
            )));
        }
        fields.push((k.clone(), Value::String(v.clone())));
    }
    let contact_id = q
        .get("contact_id")
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| ApiError::BadRequest("contact_id must be a number".into()))
        })
        .transpose()?;
    let csv = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format {other:?} is not json or csv"
            )));
        }
    };
    // A page for JSON; the whole export for CSV unless a limit is given.
    let given = q
        .get("limit")
        .map(|l| limit(Some(l.parse().unwrap_or(0))))
        .transpose()?;
    let limit = match (csv, given) {
        (_, Some(n)) => n,
        (true, None) => MAX_EXPORT,
        (false, None) => limit(None)?,
    };
    let filter = RecordFilter {
        bot_id: bot.id(),
        fields,
        contact_id,
        before_id: cursor(q.get("cursor").map(String::as_str))?,
        limit: limit + 1,
    };
    let rows = state.store.records(&name, &filter).await?;
    if csv {
        let mut resp = to_csv(&c, &rows[..rows.len().min(MAX_EXPORT as usize)])?.into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        return Ok(resp);
    }
    Ok(Json(Page::new(rows, limit, |r| r.id, |r| record_json(&r))).into_response())
}

/// RFC 4180 CSV, written by the `csv` crate.
fn to_csv(c: &Collection, rows: &[Record]) -> Result<Vec<u8>, ApiError> {
    let mut columns = vec![
        "id".to_string(),
        "contact_id".into(),
        "created_at".into(),
        "updated_at".into(),
    ];
    columns.extend(c.fields.keys().cloned());
    let failed = |e: csv::Error| ApiError::Internal(format!("writing CSV failed: {e}"));
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    out.write_record(&columns).map_err(failed)?;
    for r in rows {
        let json = record_json(r);
        out.write_record(
            columns
                .iter()
                .map(|k| csv_cell(json.get(k).unwrap_or(&Value::Null))),
        )
        .map_err(failed)?;
    }
    out.into_inner()
        .map_err(|e| ApiError::Internal(format!("writing CSV failed: {e}")))
}

/// A cell as a spreadsheet will not run it: text that a spreadsheet would
/// take for a formula (OWASP's list: starting with `=`, `+`, `-`, `@`, a
/// tab, a carriage return or a line feed, also after leading spaces) gets
/// an apostrophe in front. Numbers are numbers.
fn csv_cell(v: &Value) -> String {
    let s = match v {
        Value::Null => return String::new(),
        Value::Number(n) => return n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let formula = |t: &str| t.starts_with(['=', '+', '-', '@', '\t', '\r', '\n']);
    if formula(&s) || formula(s.trim_start_matches(' ')) {
        format!("'{s}")
    } else {
        s
    }
}

/// Store a record; 422 names the field that does not fit.
#[utoipa::path(post, path = "/api/v1/collections/{name}/records", tag = "collections", params(("name" = String, Path)),
    request_body(content = Object), responses((status = 201, body = Object), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    bot: BotScope,
    Path(Name { name }): Path<Name>,
    Body(fields): Body<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let c = collection(&state, bot.id(), &name)?;
    let data = checked(&c, &fields, false)?;
    let contact_id = match fields.get("contact_id") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let id = v.as_i64().ok_or_else(|| {
                ApiError::Unprocessable("contact_id: must be a contact id".into())
            })?;
            let no_contact = || ApiError::Unprocessable(format!("contact_id: no contact {id}"));
            let contact = state.store.contact(id).await.map_err(|_| no_contact())?;
            if contact.bot_id != bot.id() {
                return Err(no_contact());
            }
            Some(id)
        }
    };
    let r = state
        .store
        .insert_record(bot.id(), &name, contact_id, &data, state.clock.now_ms())
        .await?;
    Ok((StatusCode::CREATED, Json(record_json(&r))))
}

#[utoipa::path(get, path = "/api/v1/collections/{name}/records/{id}", tag = "collections", params(("name" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    bot: BotScope,
    Path(NameId { name, id }): Path<NameId>,
) -> ApiResult<Json<Value>> {
    collection(&state, bot.id(), &name)?;
    let r = state
        .store
        .record(bot.id(), &name, id)
        .await
        .map_err(not_found(&name, id))?;
    Ok(Json(record_json(&r)))
}

/// Replace a record's fields.
#[utoipa::path(put, path = "/api/v1/collections/{name}/records/{id}", tag = "collections", params(("name" = String, Path), ("id" = i64, Path)),
    request_body(content = Object), responses((status = 200, body = Object), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    bot: BotScope,
    Path(NameId { name, id }): Path<NameId>,
    Body(fields): Body<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    write(&state, (bot.id(), &name, id), &fields, true).await
}

/// PUT (`replace`) and PATCH: checks the fields and stores them.
async fn write(
    state: &AppState,
    (bot_id, name, id): (i64, &str, i64),
    fields: &Map<String, Value>,
    replace: bool,
) -> ApiResult<Json<Value>> {
    let c = collection(state, bot_id, name)?;
    let data = checked(&c, fields, !replace)?;
    let r = state
        .store
        .update_record((bot_id, name, id), &data, replace, state.clock.now_ms())
        .await
        .map_err(not_found(name, id))?;
    Ok(Json(record_json(&r)))
}

/// Change some of a record's fields (null removes one).
#[utoipa::path(patch, path = "/api/v1/collections/{name}/records/{id}", tag = "collections", params(("name" = String, Path), ("id" = i64, Path)),
    request_body(content = Object), responses((status = 200, body = Object), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    bot: BotScope,
    Path(NameId { name, id }): Path<NameId>,
    Body(fields): Body<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    write(&state, (bot.id(), &name, id), &fields, false).await
}

#[utoipa::path(delete, path = "/api/v1/collections/{name}/records/{id}", tag = "collections", params(("name" = String, Path), ("id" = i64, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    bot: BotScope,
    Path(NameId { name, id }): Path<NameId>,
) -> ApiResult<StatusCode> {
    collection(&state, bot.id(), &name)?;
    state
        .store
        .delete_record(bot.id(), &name, id)
        .await
        .map_err(not_found(&name, id))?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::csv_cell;
    use serde_json::json;

    #[test]
    fn cells_a_spreadsheet_would_run_get_an_apostrophe() {
        for (given, written) in [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("\n=1", "'\n=1"),
            ("  =1", "'  =1"),
            (" @x", "' @x"),
            ("plain", "plain"),
            ("a=b", "a=b"),
            ("  text", "  text"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(&json!(given)), written, "{given:?}");
        }
        assert_eq!(csv_cell(&json!(-5)), "-5", "numbers are numbers");
        assert_eq!(csv_cell(&json!(null)), "");
        assert_eq!(csv_cell(&json!(true)), "true");
    }
}
