//! Records: each collection of the bot as a table, filtered by its fields
//! and paged; one record to change or delete; and the CSV export.

use std::collections::BTreeMap;

use axum::extract::{Path, Query};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::api::{Refused, enc};
use super::{Action, Console, NoFields, refused_page, see_other, view};

/// Records on one page.
const RECORDS: usize = 50;
/// Query parameters that are not field filters.
const RESERVED: [&str; 4] = ["bot", "cursor", "done", "limit"];

/// The bot's collections.
pub async fn collections(console: Console) -> Response {
    let listed = match console.api.get(&console.path("/collections")).await {
        Ok(l) => l,
        Err(r) => return refused_page(&r),
    };
    let collections: Vec<Value> = listed
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut c = c.clone();
            let name = c["name"].as_str().unwrap_or_default().to_string();
            c["href"] = json!(console.link(&format!("/console/records/{}", enc(&name))));
            c["field_names"] = json!(field_names(&c));
            c
        })
        .collect();
    view::render(
        "records.html",
        console.page("records", json!({"collections": collections})),
    )
}

/// A collection's field names, in the order it declares them.
fn field_names(collection: &Value) -> Vec<String> {
    collection["fields"]
        .as_object()
        .map(|f| f.keys().cloned().collect())
        .unwrap_or_default()
}

/// The collection as the API describes it.
async fn described(console: &Console, name: &str) -> Result<Value, Response> {
    let listed = console
        .api
        .get(&console.path("/collections"))
        .await
        .map_err(|r| refused_page(&r))?;
    listed
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .cloned()
        .ok_or_else(|| {
            super::problem(
                StatusCode::NOT_FOUND,
                "Not found",
                &format!("This bot has no collection {name:?}."),
            )
        })
}

/// The field filters of a query, in the collection's order.
fn filters(q: &BTreeMap<String, String>) -> Vec<(String, String)> {
    q.iter()
        .filter(|(k, v)| !RESERVED.contains(&k.as_str()) && !v.trim().is_empty())
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect()
}

fn query_of(filters: &[(String, String)]) -> String {
    filters
        .iter()
        .map(|(k, v)| format!("&{}={}", enc(k), enc(v)))
        .collect()
}

/// One collection's records, newest first.
pub async fn table(
    console: Console,
    Path(name): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let collection = match described(&console, &name).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let set = filters(&q);
    let mut path = console.path(&format!(
        "/collections/{}/records?limit={RECORDS}{}",
        enc(&name),
        query_of(&set)
    ));
    if let Some(c) = q.get("cursor").filter(|c| !c.is_empty()) {
        path.push_str(&format!("&cursor={}", enc(c)));
    }
    let (page, error) = match console.api.get(&path).await {
        Ok(p) => (p, None),
        Err(r) if r.status == 400 => (json!({"items": []}), Some(r.say())),
        Err(r) => return refused_page(&r),
    };
    let base = format!("/console/records/{}", enc(&name));
    let more = page["next_cursor"]
        .as_str()
        .map(|c| console.link(&format!("{base}?cursor={}{}", enc(c), query_of(&set))));
    let fields = field_names(&collection);
    let rows: Vec<Value> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let cells: Vec<String> = fields.iter().map(|f| shown(&r[f.as_str()])).collect();
            json!({
                "id": r["id"],
                "cells": cells,
                "created_at": r["created_at"],
                "href": console.link(&format!("{base}/{}", r["id"])),
            })
        })
        .collect();
    let filter_values: Map<String, Value> =
        set.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    view::render(
        "records.html",
        console.page(
            "records",
            json!({
                "collection": collection,
                "fields": fields,
                "rows": rows,
                "more": more,
                "error": error,
                "filters": filter_values,
                "done": q.get("done").map(|_| "The record is deleted."),
                "table_action": base,
                "export_href": console.link(&format!("{base}/export?{}", query_of(&set).trim_start_matches('&'))),
                "collections_href": console.link("/console/records"),
            }),
        ),
    )
}

/// A value as a cell shows it.
fn shown(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The collection's records as CSV, as the API exports them.
pub async fn export(
    console: Console,
    Path(name): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let path = console.path(&format!(
        "/collections/{}/records?format=csv{}",
        enc(&name),
        query_of(&filters(&q))
    ));
    match console.api.text(&path).await {
        Ok(csv) => {
            let file: String = name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            let disposition =
                HeaderValue::from_str(&format!("attachment; filename=\"{file}.csv\""))
                    .unwrap_or(HeaderValue::from_static("attachment"));
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/csv; charset=utf-8"),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                csv,
            )
                .into_response()
        }
        Err(r) => refused_page(&r),
    }
}

/// One record, with a form to change it.
pub async fn record(
    console: Console,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let done = q.contains_key("done").then_some("The record is saved.");
    show(&console, &name, &id, None, None, done, StatusCode::OK).await
}

#[allow(clippy::too_many_arguments)]
async fn show(
    console: &Console,
    name: &str,
    id: &str,
    typed: Option<&Map<String, Value>>,
    refused: Option<&Refused>,
    done: Option<&str>,
    status: StatusCode,
) -> Response {
    let collection = match described(console, name).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let path = console.path(&format!("/collections/{}/records/{}", enc(name), enc(id)));
    let record = match console.api.get(&path).await {
        Ok(r) => r,
        Err(r) => return refused_page(&r),
    };
    // The API names a field at fault as `field: why`.
    let fault = refused.and_then(|r| {
        let (field, why) = r.detail.split_once(": ")?;
        collection["fields"]
            .get(field)
            .is_some()
            .then(|| json!({"field": field, "message": why}))
    });
    let fields: Vec<Value> = collection["fields"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(f, spec)| {
            let value = typed
                .and_then(|t| t.get(f))
                .map(shown)
                .unwrap_or_else(|| shown(&record[f.as_str()]));
            json!({"name": f, "type": spec["type"], "required": spec["required"],
                   "values": spec["values"], "value": value})
        })
        .collect();
    let base = format!("/console/records/{}/{}", enc(name), enc(id));
    view::render_with(
        status,
        "record.html",
        console.page(
            "records",
            json!({
                "collection": collection,
                "record": record,
                "fields": fields,
                "fault": fault,
                "done": done,
                "error": refused.map(Refused::say),
                "save_action": console.link(&base),
                "delete_action": console.link(&format!("{base}/delete")),
                "table_href": console.link(&format!("/console/records/{}", enc(name))),
            }),
        ),
    )
}

/// The form's text as the collection's types: numbers and yes/no as JSON
/// values, an empty field as null; what does not read is left as text for
/// the API to refuse, naming the field.
fn typed(collection: &Value, form: &BTreeMap<String, String>) -> Map<String, Value> {
    let mut out = Map::new();
    for (field, spec) in collection["fields"].as_object().into_iter().flatten() {
        let Some(text) = form.get(field) else {
            continue;
        };
        let text = text.trim();
        let value = match (spec["type"].as_str().unwrap_or("string"), text) {
            (_, "") => Value::Null,
            ("integer", t) => t
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| json!(t)),
            ("number", t) => t
                .parse::<f64>()
                .ok()
                .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                .unwrap_or_else(|| json!(t)),
            ("boolean", "true" | "yes") => Value::Bool(true),
            ("boolean", "false" | "no") => Value::Bool(false),
            (_, t) => json!(t),
        };
        out.insert(field.clone(), value);
    }
    out
}

/// Saves a changed record through the API (`PATCH`).
pub async fn save(
    Path((name, id)): Path<(String, String)>,
    Action { console, form }: Action<BTreeMap<String, String>>,
) -> Response {
    let collection = match described(&console, &name).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let changes = typed(&collection, &form);
    let path = console.path(&format!("/collections/{}/records/{}", enc(&name), enc(&id)));
    match console
        .api
        .call(Method::PATCH, &path, Some(Value::Object(changes.clone())))
        .await
    {
        Ok(_) => see_other(&console.link(&format!(
            "/console/records/{}/{}?done=saved",
            enc(&name),
            enc(&id)
        ))),
        Err(r) if matches!(r.status, 400 | 409 | 422) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            show(&console, &name, &id, Some(&changes), Some(&r), None, status).await
        }
        Err(r) => refused_page(&r),
    }
}

/// Deletes a record through the API.
pub async fn delete(
    Path((name, id)): Path<(String, String)>,
    Action { console, .. }: Action<NoFields>,
) -> Response {
    let path = console.path(&format!("/collections/{}/records/{}", enc(&name), enc(&id)));
    match console.api.call(Method::DELETE, &path, None).await {
        Ok(_) => see_other(&console.link(&format!("/console/records/{}?done=deleted", enc(&name)))),
        Err(r) => refused_page(&r),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn form_text_becomes_the_fields_types() {
        let c = json!({"fields": {"rating": {"type": "integer"}, "ok": {"type": "boolean"},
            "note": {"type": "text"}, "price": {"type": "number"}}});
        let form = [
            ("rating", "4"),
            ("ok", "yes"),
            ("note", " fine "),
            ("price", ""),
            ("_csrf", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            serde_json::Value::Object(super::typed(&c, &form)),
            json!({"rating": 4, "ok": true, "note": "fine", "price": null})
        );
        let form = [("rating", "four")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(super::typed(&c, &form)["rating"], "four");
    }
}
