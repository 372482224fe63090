//! A bot's flows through the API: made from a document (JSON or YAML) or
//! a template, published in versions, rolled back, edited node by node,
//! tried against conversation transcripts, deleted. Each change is
//! checked whole with the same checker as `confab flow validate` before
//! anything is stored; runs in progress keep the version they began on.
//!
//! The bundled flows and the flows directory's are read here but changed
//! only where they live.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confab_flow::transcript::{Transcript, run_transcript};
use confab_flow::{Flow, Node, RunStatus};
use confab_store::{Change, FlowWrite, RunFilter};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::scope::BotScope;
use super::{Body, Page};
use crate::app::AppState;
use crate::auth::Principal;
use crate::catalog::{Catalog, Source, hash};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult, Invalid};
use crate::message_templates;

#[derive(Serialize, utoipa::ToSchema)]
pub struct FlowOut {
    pub id: String,
    /// The live version (for one read from `/versions/{n}`: that version).
    pub version: i64,
    /// `bundled` (every bot has it), `file` (the flows directory's) or
    /// `api`. Only `api` flows can be changed through the API.
    pub source: Source,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Offered to every bot as a template.
    pub template: bool,
    /// The flow's definition, as JSON.
    #[schema(value_type = Object)]
    pub definition: Value,
}

impl FlowOut {
    fn new(id: &str, version: i64, source: Source, f: &Flow) -> FlowOut {
        FlowOut {
            id: id.to_string(),
            version,
            source,
            name: f.name.clone(),
            description: f.description.clone(),
            template: f.template,
            definition: serde_json::to_value(f).unwrap_or_default(),
        }
    }
}

/// `{flow}` of a path, with or without a `{bot}` before it.
#[derive(Deserialize)]
pub struct FlowPath {
    pub flow: String,
}

#[derive(Deserialize)]
pub struct VersionPath {
    pub flow: String,
    pub version: i64,
}

#[derive(Deserialize)]
pub struct NodePath {
    pub flow: String,
    pub node: String,
}

/// A document in the body: JSON, or YAML with `content-type:
/// application/yaml` (also `application/x-yaml`, `text/yaml`), whose text
/// is kept to say on which line each problem lies.
pub struct Document(pub Value, pub Option<String>);

impl<S: Send + Sync> FromRequest<S> for Document {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let yaml = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                let t = t.split(';').next().unwrap_or_default().trim();
                ["application/yaml", "application/x-yaml", "text/yaml"].contains(&t)
            });
        if !yaml {
            let Body(v) = Body::<Value>::from_request(req, state).await?;
            return Ok(Document(v, None));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| ApiError::Unprocessable("the YAML is not UTF-8".into()).into_response())?;
        let value: Value = serde_norway::from_str(&text).map_err(|e| {
            ApiError::Invalid(vec![Invalid {
                node: None,
                field: None,
                message: format!("the YAML cannot be read: {e}"),
                line: e.location().map(|l| l.line()),
            }])
            .into_response()
        })?;
        if super::has_nul(&value) {
            return Err(
                ApiError::Unprocessable("text must not contain NUL characters".into())
                    .into_response(),
            );
        }
        Ok(Document(value, Some(text)))
    }
}

/// A document read as a flow, or 422 naming what does not fit (and, for
/// YAML, on which line).
fn flow_of(doc: Value, yaml: Option<&str>) -> ApiResult<Flow> {
    serde_json::from_value(doc).map_err(|e| {
        let message = format!("the flow does not fit: {e}");
        // The text read again as a flow, for the place serde saw the fault.
        match yaml.map(serde_norway::from_str::<Flow>) {
            Some(Err(located)) => ApiError::Invalid(vec![Invalid {
                node: None,
                field: None,
                message,
                line: located.location().map(|l| l.line()),
            }]),
            _ => ApiError::Unprocessable(message),
        }
    })
}

/// Each problem with the line of the YAML document it lies on.
fn located(problems: Vec<Invalid>, yaml: Option<&str>) -> Vec<Invalid> {
    let Some(yaml) = yaml else {
        return problems;
    };
    problems
        .into_iter()
        .map(|mut p| {
            p.line = p.line.or_else(|| {
                confab_flow::load::line_of(yaml, p.node.as_deref(), p.field.as_deref())
            });
            p
        })
        .collect()
}

/// A flow of the bot, or 404.
fn live(catalog: &Catalog, id: &str) -> ApiResult<(i64, Arc<Flow>, Source)> {
    let (version, flow) = catalog
        .flows
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no flow {id}")))?;
    let source = catalog.sources.get(id).copied().unwrap_or(Source::Bundled);
    Ok((version, flow, source))
}

/// A flow the API may change: one made through it.
fn editable(catalog: &Catalog, id: &str) -> ApiResult<(i64, Arc<Flow>)> {
    let (version, flow, source) = live(catalog, id)?;
    match source {
        Source::Api => Ok((version, flow)),
        Source::File => Err(ApiError::Conflict(format!(
            "flow {id} comes from a file in the flows directory: change the file \
             (then POST /api/v1/flows/reload), or copy it with {{\"from_template\": \"{id}\", \"id\": \"...\"}}"
        ))),
        Source::Bundled => Err(ApiError::Conflict(format!(
            "flow {id} is bundled with Confab: copy it with {{\"from_template\": \"{id}\", \"id\": \"...\"}} and change the copy"
        ))),
    }
}

/// Each node of `flow` naming a template the bot's catalogue lacks.
async fn template_problems(state: &AppState, bot: i64, flow: &Flow) -> ApiResult<Vec<Invalid>> {
    if flow.templates().next().is_none() {
        return Ok(Vec::new());
    }
    let catalogue = state.store.templates(bot).await?;
    Ok(message_templates::flow_problems(flow, &catalogue)
        .into_iter()
        .map(|(node, message)| Invalid {
            node: Some(node.into()),
            field: Some("template".into()),
            message,
            line: None,
        })
        .collect())
}

/// Every problem of `flow` as the bot's: the checker's and the templates'
/// (on their lines of `yaml`, where it was given as YAML).
async fn check(state: &AppState, bot: &BotScope, flow: &Flow, yaml: Option<&str>) -> ApiResult<()> {
    let mut problems: Vec<Invalid> = state
        .registry
        .catalog(bot.id())
        .problems(flow)
        .into_iter()
        .map(Invalid::from)
        .collect();
    problems.extend(template_problems(state, bot.id(), flow).await?);
    match problems.is_empty() {
        true => Ok(()),
        false => Err(ApiError::Invalid(located(problems, yaml))),
    }
}

/// Checks `flow` as the bot's and stores it as a new version (or the first).
async fn save(
    state: &AppState,
    bot: &BotScope,
    principal: &Principal,
    (flow, yaml): (&Flow, Option<&str>),
    create: bool,
) -> ApiResult<FlowOut> {
    let catalog = state.registry.catalog(bot.id());
    if create && catalog.flows.contains_key(&flow.id) {
        // A file's or a bundled flow says how to change it instead.
        editable(&catalog, &flow.id)?;
        return Err(ApiError::Conflict(format!(
            "flow {} exists: PUT publishes a new version of it",
            flow.id
        )));
    }
    check(state, bot, flow, yaml).await?;
    let definition = serde_json::to_string(flow).map_err(ApiError::internal)?;
    let label = principal.label();
    let write = FlowWrite {
        bot_id: bot.id(),
        id: &flow.id,
        hash: &hash(&definition),
        definition: &definition,
    };
    let (version, _) = state
        .store
        .save_flow(&write, create, &Change::by(&label, state.clock.now_ms()))
        .await
        .map_err(|e| match e {
            confab_store::StoreError::Conflict(_) => {
                ApiError::Conflict(format!("flow {} exists", flow.id))
            }
            confab_store::StoreError::NotFound => {
                ApiError::NotFound(format!("no flow {}", flow.id))
            }
            e => e.into(),
        })?;
    state.rebuild_flows().await.map_err(ApiError::internal)?;
    Ok(FlowOut::new(&flow.id, version, Source::Api, flow))
}

/// The bot's flows, by id; all of them on one page (`next_cursor` is
/// always null), in the shape of every other list.
#[utoipa::path(get, path = "/api/v1/flows", tag = "flows", responses((status = 200, body = Page<FlowOut>)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, bot: BotScope) -> Json<Page<FlowOut>> {
    let catalog = state.registry.catalog(bot.id());
    Json(Page::whole(catalog.ids().into_iter().filter_map(|id| {
        let (version, flow, source) = live(&catalog, &id).ok()?;
        Some(FlowOut::new(&id, version, source, &flow))
    })))
}

/// A flow from a template: `{"from_template": "pms_menu", "id": "factory"}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FromTemplate {
    /// A template's id (`GET /api/v1/flow-templates`).
    pub from_template: String,
    /// The new flow's id; the template's when left out.
    pub id: Option<String>,
    pub name: Option<String>,
}

/// Make a flow: the body is a flow document (JSON, or YAML with
/// `content-type: application/yaml`), or `{"from_template", "id"}` to copy
/// a template with the collections it uses. 422 lists every problem (node,
/// field, message); 201 answers the flow at version 1.
#[utoipa::path(post, path = "/api/v1/flows", tag = "flows",
    request_body(content = Object, description = "A flow document (the format of `confab flow schema`), as JSON or as YAML with content-type application/yaml; or {\"from_template\": \"pms_menu\", \"id\": \"factory\"}."),
    responses((status = 201, body = FlowOut), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Document(doc, yaml): Document,
) -> ApiResult<(StatusCode, Json<FlowOut>)> {
    let (flow, yaml) = if doc.get("from_template").is_some() {
        let req: FromTemplate = serde_json::from_value(doc)
            .map_err(|e| ApiError::Unprocessable(format!("the body does not fit: {e}")))?;
        (from_template(&state, &principal, req)?, None)
    } else {
        (flow_of(doc, yaml.as_deref())?, yaml)
    };
    let out = save(&state, &bot, &principal, (&flow, yaml.as_deref()), true).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// A template copied as a flow of its own, with the collections it uses.
fn from_template(state: &AppState, principal: &Principal, req: FromTemplate) -> ApiResult<Flow> {
    let (catalog, mut flow) = templates(state, principal)
        .into_iter()
        .find(|(_, f)| f.id == req.from_template)
        .map(|(c, f)| (c, f.as_ref().clone()))
        .ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "from_template: no template {:?} (GET /api/v1/flow-templates lists them)",
                req.from_template
            ))
        })?;
    if let Some(id) = req.id {
        flow.id = id;
    }
    if let Some(name) = req.name {
        flow.name = Some(name);
    }
    flow.template = false;
    for n in &flow.nodes {
        let used = match n {
            Node::SaveRecord(r) => &r.collection,
            Node::FindRecord(r) => &r.collection,
            Node::UpdateRecord(r) => &r.collection,
            _ => continue,
        };
        if let Some(c) = catalog.collections.get(used)
            && !flow.collections.iter().any(|d| d.name == *used)
        {
            flow.collections.push(c.clone());
        }
    }
    Ok(flow)
}

/// Templates the principal may copy: the bundled flows, and every flow
/// marked `template: true` of a bot it may see, with the catalog each is in.
fn templates(state: &AppState, principal: &Principal) -> Vec<(Arc<Catalog>, Arc<Flow>)> {
    let mut out: Vec<(Arc<Catalog>, Arc<Flow>)> = Vec::new();
    for bot in state.bots.all() {
        if !principal.may_act_on(bot.id()) {
            continue;
        }
        let catalog = state.registry.catalog(bot.id());
        for id in catalog.ids() {
            let Ok((_, flow, source)) = live(&catalog, &id) else {
                continue;
            };
            if (source == Source::Bundled || flow.template)
                && !out.iter().any(|(_, f)| f.id == flow.id)
            {
                out.push((catalog.clone(), flow));
            }
        }
    }
    out
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TemplateOut {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Collections its records go to, copied with it.
    pub collections: Vec<String>,
}

/// Flows that can be copied into any bot: the bundled ones and those
/// marked `template: true`.
#[utoipa::path(get, path = "/api/v1/flow-templates", tag = "flows", responses((status = 200, body = Page<TemplateOut>)), security(("bearer" = [])))]
pub async fn list_templates(
    State(state): State<AppState>,
    principal: Principal,
) -> Json<Page<TemplateOut>> {
    let mut out: Vec<TemplateOut> = templates(&state, &principal)
        .into_iter()
        .map(|(_, f)| {
            let mut collections: Vec<String> = f
                .nodes
                .iter()
                .filter_map(|n| match n {
                    Node::SaveRecord(r) => Some(r.collection.clone()),
                    Node::FindRecord(r) => Some(r.collection.clone()),
                    Node::UpdateRecord(r) => Some(r.collection.clone()),
                    _ => None,
                })
                .collect();
            collections.sort();
            collections.dedup();
            TemplateOut {
                id: f.id.clone(),
                name: f.name.clone(),
                description: f.description.clone(),
                collections,
            }
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Json(Page::whole(out))
}

/// A flow at its live version. With `accept: application/yaml`, its
/// definition as YAML.
#[utoipa::path(get, path = "/api/v1/flows/{flow}", tag = "flows", params(("flow" = String, Path)),
    responses((status = 200, body = FlowOut), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    bot: BotScope,
    headers: HeaderMap,
    Path(FlowPath { flow }): Path<FlowPath>,
) -> ApiResult<Response> {
    let catalog = state.registry.catalog(bot.id());
    let (version, f, source) = live(&catalog, &flow)?;
    let wants_yaml = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("yaml"));
    if wants_yaml {
        let text = serde_norway::to_string(f.as_ref()).map_err(ApiError::internal)?;
        return Ok(([(header::CONTENT_TYPE, "application/yaml")], text).into_response());
    }
    Ok(Json(FlowOut::new(&flow, version, source, &f)).into_response())
}

/// Publish a new version of a flow made through the API: the whole
/// document, checked as for `POST`. Its `id` may be left out. The same
/// definition as the live one publishes nothing. Runs in progress finish
/// on the version they began on. A YAML document's problems name their
/// lines.
#[utoipa::path(put, path = "/api/v1/flows/{flow}", tag = "flows", params(("flow" = String, Path), super::DryRun),
    request_body(content = Object, description = "A flow document, as JSON or YAML."),
    responses((status = 200, body = FlowOut), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Path(FlowPath { flow }): Path<FlowPath>,
    Query(q): Query<super::DryRun>,
    Document(mut doc, yaml): Document,
) -> ApiResult<Json<FlowOut>> {
    editable(&state.registry.catalog(bot.id()), &flow)?;
    if let Some(o) = doc.as_object_mut() {
        o.entry("id").or_insert_with(|| Value::String(flow.clone()));
    }
    let f = flow_of(doc, yaml.as_deref())?;
    if f.id != flow {
        return Err(ApiError::Unprocessable(format!(
            "id: the document is flow {:?}, the path flow {flow:?}",
            f.id
        )));
    }
    if q.dry_run {
        check(&state, &bot, &f, yaml.as_deref()).await?;
        let catalog = state.registry.catalog(bot.id());
        let (version, live_flow, source) = live(&catalog, &flow)?;
        return Ok(Json(FlowOut::new(&flow, version, source, &live_flow)));
    }
    Ok(Json(
        save(&state, &bot, &principal, (&f, yaml.as_deref()), false).await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Cancel the runs in progress in the flow, then delete it.
    pub force: Option<bool>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FlowDeleted {
    pub id: String,
    /// Runs that were in progress and were cancelled.
    pub cancelled_runs: i64,
}

/// Delete a flow made through the API, with its versions. Refused (409)
/// while runs are in progress in it, unless `?force=true`, which cancels them.
#[utoipa::path(delete, path = "/api/v1/flows/{flow}", tag = "flows", params(("flow" = String, Path), DeleteQuery),
    responses((status = 200, body = FlowDeleted), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Path(FlowPath { flow }): Path<FlowPath>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<FlowDeleted>> {
    editable(&state.registry.catalog(bot.id()), &flow)?;
    let mut cancelled = 0;
    if q.force == Some(true) {
        for status in RunStatus::ALL.into_iter().filter(|s| !s.is_finished()) {
            loop {
                let runs = state
                    .store
                    .runs(&RunFilter {
                        bot_id: Some(bot.id()),
                        flow_id: Some(flow.clone()),
                        status: Some(status.as_str().into()),
                        limit: confab_store::MAX_PAGE,
                        ..RunFilter::default()
                    })
                    .await?;
                if runs.is_empty() {
                    break;
                }
                for r in runs {
                    // One that ended meanwhile is no matter.
                    if state.runtime.cancel_run(r.id).await.is_ok() {
                        cancelled += 1;
                    }
                }
            }
        }
    }
    let label = principal.label();
    state
        .store
        .delete_flow(bot.id(), &flow, &Change::by(&label, state.clock.now_ms()))
        .await?;
    state.rebuild_flows().await.map_err(ApiError::internal)?;
    Ok(Json(FlowDeleted {
        id: flow,
        cancelled_runs: cancelled,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionOut {
    pub version: i64,
    /// The version new runs start on.
    pub live: bool,
    pub hash: String,
    pub created_at: String,
}

/// A flow's versions, newest first.
#[utoipa::path(get, path = "/api/v1/flows/{flow}/versions", tag = "flows", params(("flow" = String, Path)),
    responses((status = 200, body = Page<VersionOut>), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn versions(
    State(state): State<AppState>,
    bot: BotScope,
    Path(FlowPath { flow }): Path<FlowPath>,
) -> ApiResult<Json<Page<VersionOut>>> {
    let (live_version, _, _) = live(&state.registry.catalog(bot.id()), &flow)?;
    let versions = state.store.flow_versions(bot.id(), &flow).await?;
    Ok(Json(Page::whole(versions.into_iter().map(|v| {
        VersionOut {
            live: v.version == live_version,
            version: v.version,
            hash: v.hash,
            created_at: rfc3339(v.created_ms),
        }
    }))))
}

/// One version of a flow.
#[utoipa::path(get, path = "/api/v1/flows/{flow}/versions/{version}", tag = "flows",
    params(("flow" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = FlowOut), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn version(
    State(state): State<AppState>,
    bot: BotScope,
    Path(VersionPath { flow, version }): Path<VersionPath>,
) -> ApiResult<Json<FlowOut>> {
    let (_, _, source) = live(&state.registry.catalog(bot.id()), &flow)?;
    let f = state
        .registry
        .version(bot.id(), &flow, version)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound(format!("flow {flow} has no version {version}")))?;
    Ok(Json(FlowOut::new(&flow, version, source, &f)))
}

/// Make a version the live one again (roll back, or forward): new runs
/// start on it; runs in progress keep theirs.
#[utoipa::path(post, path = "/api/v1/flows/{flow}/versions/{version}/publish", tag = "flows",
    params(("flow" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = FlowOut), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn publish(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Path(VersionPath { flow, version }): Path<VersionPath>,
) -> ApiResult<Json<FlowOut>> {
    editable(&state.registry.catalog(bot.id()), &flow)?;
    let old = state
        .registry
        .version(bot.id(), &flow, version)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound(format!("flow {flow} has no version {version}")))?;
    // The catalogue may have lost a template since this version was live.
    let problems = template_problems(&state, bot.id(), &old).await?;
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let label = principal.label();
    state
        .store
        .publish_flow_version(
            bot.id(),
            &flow,
            version,
            &Change::by(&label, state.clock.now_ms()),
        )
        .await
        .map_err(|e| match e {
            confab_store::StoreError::NotFound => {
                ApiError::NotFound(format!("flow {flow} has no version {version}"))
            }
            e => e.into(),
        })?;
    state.rebuild_flows().await.map_err(ApiError::internal)?;
    let (version, f, source) = live(&state.registry.catalog(bot.id()), &flow)?;
    Ok(Json(FlowOut::new(&flow, version, source, &f)))
}

/// One node of a flow's live version.
#[utoipa::path(get, path = "/api/v1/flows/{flow}/nodes/{node}", tag = "flows",
    params(("flow" = String, Path), ("node" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn get_node(
    State(state): State<AppState>,
    bot: BotScope,
    Path(NodePath { flow, node }): Path<NodePath>,
) -> ApiResult<Json<Value>> {
    let (_, f, _) = live(&state.registry.catalog(bot.id()), &flow)?;
    let n = f
        .nodes
        .iter()
        .find(|n| n.id() == node)
        .ok_or_else(|| ApiError::NotFound(format!("flow {flow} has no node {node}")))?;
    Ok(Json(serde_json::to_value(n).map_err(ApiError::internal)?))
}

/// A node in a body, with `id` filled in from the path when left out.
fn node_of(mut doc: Value, id: Option<&str>) -> ApiResult<Node> {
    if let (Some(o), Some(id)) = (doc.as_object_mut(), id) {
        o.entry("id")
            .or_insert_with(|| Value::String(id.to_string()));
    }
    serde_json::from_value(doc)
        .map_err(|e| ApiError::Unprocessable(format!("the node does not fit: {e}")))
}

/// The flow with `change` made to a copy of its nodes, published as a new
/// version after the whole flow is checked.
async fn edit_nodes(
    state: &AppState,
    bot: &BotScope,
    principal: &Principal,
    flow: &str,
    change: impl FnOnce(&mut Vec<Node>) -> ApiResult<()>,
) -> ApiResult<FlowOut> {
    let (_, f) = editable(&state.registry.catalog(bot.id()), flow)?;
    let mut f = f.as_ref().clone();
    change(&mut f.nodes)?;
    save(state, bot, principal, (&f, None), false).await
}

/// Add a node (publishes a new version). Another node's `next` must name
/// it for it to be reachable: the flow is checked whole.
#[utoipa::path(post, path = "/api/v1/flows/{flow}/nodes", tag = "flows", params(("flow" = String, Path)),
    request_body(content = Object, description = "A node, as in a flow document."),
    responses((status = 201, body = FlowOut), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn add_node(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Path(FlowPath { flow }): Path<FlowPath>,
    Document(doc, _): Document,
) -> ApiResult<(StatusCode, Json<FlowOut>)> {
    let node = node_of(doc, None)?;
    let out = edit_nodes(&state, &bot, &principal, &flow, |nodes| {
        if nodes.iter().any(|n| n.id() == node.id()) {
            return Err(ApiError::Conflict(format!(
                "flow {flow} has a node {} already: PUT changes it",
                node.id()
            )));
        }
        nodes.push(node);
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Replace a node (publishes a new version).
#[utoipa::path(put, path = "/api/v1/flows/{flow}/nodes/{node}", tag = "flows",
    params(("flow" = String, Path), ("node" = String, Path)),
    request_body(content = Object, description = "The node, as in a flow document; its id may be left out."),
    responses((status = 200, body = FlowOut), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn put_node(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Path(NodePath { flow, node }): Path<NodePath>,
    Document(doc, _): Document,
) -> ApiResult<Json<FlowOut>> {
    let new = node_of(doc, Some(&node))?;
    if new.id() != node {
        return Err(ApiError::Unprocessable(format!(
            "id: the body is node {:?}, the path node {node:?}",
            new.id()
        )));
    }
    let out = edit_nodes(&state, &bot, &principal, &flow, |nodes| {
        let slot = nodes
            .iter_mut()
            .find(|n| n.id() == node)
            .ok_or_else(|| ApiError::NotFound(format!("flow {flow} has no node {node}")))?;
        *slot = new;
        Ok(())
    })
    .await?;
    Ok(Json(out))
}

/// Remove a node (publishes a new version); refused (422) while another
/// node leads to it.
#[utoipa::path(delete, path = "/api/v1/flows/{flow}/nodes/{node}", tag = "flows",
    params(("flow" = String, Path), ("node" = String, Path)),
    responses((status = 200, body = FlowOut), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn delete_node(
    State(state): State<AppState>,
    bot: BotScope,
    principal: Principal,
    Path(NodePath { flow, node }): Path<NodePath>,
) -> ApiResult<Json<FlowOut>> {
    let out = edit_nodes(&state, &bot, &principal, &flow, |nodes| {
        let before = nodes.len();
        nodes.retain(|n| n.id() != node);
        if nodes.len() == before {
            return Err(ApiError::NotFound(format!(
                "flow {flow} has no node {node}"
            )));
        }
        Ok(())
    })
    .await?;
    Ok(Json(out))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TestQuery {
    /// The version to test; the live one when left out.
    pub version: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestOut {
    /// Every transcript passed.
    pub passed: bool,
    pub version: i64,
    pub results: Vec<TranscriptOut>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TranscriptOut {
    pub name: Option<String>,
    pub passed: bool,
    /// The conversation up to where it differed, and how.
    pub difference: Option<String>,
}

/// Run conversation transcripts (the `confab flow test` format: `steps`
/// of what the user says and what the bot should answer) against a
/// version of the flow, in memory: no contact, message or record is
/// touched. The body is one transcript or `{"transcripts": [...]}`; a
/// transcript's `flow` defaults to this one.
#[utoipa::path(post, path = "/api/v1/flows/{flow}/test", tag = "flows", params(("flow" = String, Path), TestQuery),
    request_body(content = Object, description = "A transcript, or {\"transcripts\": [...]}, as JSON or YAML."),
    responses((status = 200, body = TestOut), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn test(
    State(state): State<AppState>,
    bot: BotScope,
    Path(FlowPath { flow }): Path<FlowPath>,
    Query(q): Query<TestQuery>,
    Document(doc, _): Document,
) -> ApiResult<Json<TestOut>> {
    const MAX_TRANSCRIPTS: usize = 100;
    let catalog = state.registry.catalog(bot.id());
    let (live_version, _, _) = live(&catalog, &flow)?;
    let version = q.version.unwrap_or(live_version);
    let tested = state
        .registry
        .version(bot.id(), &flow, version)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound(format!("flow {flow} has no version {version}")))?;
    let docs = match doc {
        Value::Object(mut o) if o.contains_key("transcripts") => match o.remove("transcripts") {
            Some(Value::Array(a)) => a,
            _ => {
                return Err(ApiError::Unprocessable(
                    "transcripts: a list of transcripts".into(),
                ));
            }
        },
        other => vec![other],
    };
    if docs.is_empty() || docs.len() > MAX_TRANSCRIPTS {
        return Err(ApiError::Unprocessable(format!(
            "transcripts: give 1 to {MAX_TRANSCRIPTS}"
        )));
    }
    let mut transcripts = Vec::new();
    for (i, mut d) in docs.into_iter().enumerate() {
        if let Some(o) = d.as_object_mut() {
            o.entry("flow")
                .or_insert_with(|| Value::String(flow.clone()));
        }
        let t: Transcript = serde_json::from_value(d).map_err(|e| {
            ApiError::Unprocessable(format!(
                "transcripts[{i}]: the transcript does not fit: {e}"
            ))
        })?;
        transcripts.push(t);
    }
    let mut flows: HashMap<String, Flow> = catalog
        .flows
        .iter()
        .map(|(id, (_, f))| (id.clone(), f.as_ref().clone()))
        .collect();
    flows.insert(flow.clone(), tested.as_ref().clone());
    let collections = catalog.collections.clone();
    // The engine is pure but a long transcript is real work: off the
    // request threads.
    let results = tokio::task::spawn_blocking(move || {
        transcripts
            .iter()
            .map(|t| {
                let outcome = run_transcript(t, &flows, &collections);
                TranscriptOut {
                    name: t.name.clone(),
                    passed: outcome.is_ok(),
                    difference: outcome.err(),
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(TestOut {
        passed: results.iter().all(|r| r.passed),
        version,
        results,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FlowStatsOut {
    pub flow: String,
    pub version: Option<i64>,
    pub started: i64,
    pub completed: i64,
    pub failed: i64,
    pub expired: i64,
    pub cancelled: i64,
    /// Replaced by a newer run of the same contact.
    pub interrupted: i64,
    pub in_progress: i64,
    /// Runs that stopped at a node and went no further, by node.
    #[schema(value_type = Object)]
    pub dropped_at: std::collections::HashMap<String, i64>,
}

/// How a flow's runs ended up, and where contacts dropped off.
#[utoipa::path(get, path = "/api/v1/flows/{flow}/stats", tag = "flows", params(("flow" = String, Path)),
    responses((status = 200, body = FlowStatsOut)), security(("bearer" = [])))]
pub async fn stats(
    State(state): State<AppState>,
    bot: BotScope,
    Path(FlowPath { flow }): Path<FlowPath>,
) -> ApiResult<Json<FlowStatsOut>> {
    let version = state
        .registry
        .catalog(bot.id())
        .flows
        .get(&flow)
        .map(|(v, _)| *v);
    let s = state.store.flow_stats(bot.id(), &flow).await?;
    if version.is_none() && s.by_status.is_empty() {
        return Err(ApiError::NotFound(format!("no flow {flow}")));
    }
    let c = super::runs::RunCounts::of(&[&s.by_status], Vec::new());
    Ok(Json(FlowStatsOut {
        started: c.started,
        completed: c.completed,
        failed: c.failed,
        expired: c.expired,
        cancelled: c.cancelled,
        interrupted: c.interrupted,
        in_progress: c.in_progress,
        dropped_at: s.dropped_at,
        flow,
        version,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ReloadOut {
    /// Flows live after the reload, with their versions.
    pub flows: Vec<String>,
    /// Files that could not be loaded (their previous versions stay live).
    pub problems: Vec<String>,
}

/// Read the flows directory again; a broken file keeps its previous version live.
#[utoipa::path(post, path = "/api/v1/flows/reload", tag = "runs", responses((status = 200, body = ReloadOut)), security(("bearer" = [])))]
pub async fn reload(State(state): State<AppState>) -> ApiResult<Json<ReloadOut>> {
    let report = state
        .registry
        .reload(state.clock.now_ms())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(ReloadOut {
        flows: report.flows,
        problems: report.problems,
    }))
}
