//! The flows and collections the server runs: the bundled ones, built into
//! the binary so they work from any directory, and a flows directory
//! (`FLOWS_DIR`) that adds to or overrides them. A broken file is reported
//! and the version before it stays live.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use confab_flow::collection::{Collection, CollectionsFile, check_collections};
use confab_flow::{Flow, Flows, Node, check, parse_flow};
use confab_store::Store;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Flow and collection files built into the binary.
pub const BUNDLED: &[(&str, &str)] = &[
    (
        "product_review.yaml",
        include_str!("../../../flows/product_review.yaml"),
    ),
    (
        "pms_menu.yaml",
        include_str!("../../../flows/pms_menu.yaml"),
    ),
    (
        "ai_assistant.yaml",
        include_str!("../../../flows/ai_assistant.yaml"),
    ),
    (
        "collections.yaml",
        include_str!("../../../flows/collections.yaml"),
    ),
];

/// The bundled flows' conversation tests, by flow id, built into the
/// binary too so the console can run them as they are.
pub const BUNDLED_TESTS: &[(&str, &str)] = &[
    (
        "ai_assistant",
        include_str!("../../../flows/tests/ai_assistant/commands.yaml"),
    ),
    (
        "ai_assistant",
        include_str!("../../../flows/tests/ai_assistant/conversation.yaml"),
    ),
    (
        "ai_assistant",
        include_str!("../../../flows/tests/ai_assistant/what_it_cannot_do.yaml"),
    ),
    (
        "pms_menu",
        include_str!("../../../flows/tests/pms_menu/defect_report.yaml"),
    ),
    (
        "pms_menu",
        include_str!("../../../flows/tests/pms_menu/errors_restart_and_resume.yaml"),
    ),
    (
        "pms_menu",
        include_str!("../../../flows/tests/pms_menu/maintenance_and_sla.yaml"),
    ),
    (
        "pms_menu",
        include_str!("../../../flows/tests/pms_menu/order_status.yaml"),
    ),
    (
        "pms_menu",
        include_str!("../../../flows/tests/pms_menu/talk_to_a_person.yaml"),
    ),
    (
        "product_review",
        include_str!("../../../flows/tests/product_review/completed_then_again.yaml"),
    ),
    (
        "product_review",
        include_str!("../../../flows/tests/product_review/every_validation_error.yaml"),
    ),
    (
        "product_review",
        include_str!("../../../flows/tests/product_review/happy_path_no.yaml"),
    ),
    (
        "product_review",
        include_str!("../../../flows/tests/product_review/happy_path_yes.yaml"),
    ),
    (
        "product_review",
        include_str!("../../../flows/tests/product_review/restart_at_any_step.yaml"),
    ),
    (
        "product_review",
        include_str!("../../../flows/tests/product_review/resume_after_interruption.yaml"),
    ),
    (
        "product_review",
        include_str!("../../../flows/tests/product_review/stop_and_start.yaml"),
    ),
    (
        "product_review",
        include_str!("../../../flows/tests/product_review/triggers_switch_flows.yaml"),
    ),
];

/// The conversation tests bundled with flow `flow`, as one YAML text of
/// `---` documents; empty when it has none.
pub fn bundled_tests(flow: &str) -> String {
    BUNDLED_TESTS
        .iter()
        .filter(|(f, _)| *f == flow)
        .map(|(_, t)| t.trim_end())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Where a bot's flow comes from: built into the binary (every bot has
/// them), the flows directory (the default bot's), or the API. Only the
/// API's can be changed through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Bundled,
    File,
    Api,
}

/// A consistent set of flows and collections: one bot's.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// The live definition of each flow, with its version.
    pub flows: HashMap<String, (i64, Arc<Flow>)>,
    pub sources: HashMap<String, Source>,
    pub collections: HashMap<String, Collection>,
}

impl Flows for Catalog {
    fn flow(&self, id: &str) -> Option<&Flow> {
        self.flows.get(id).map(|(_, f)| f.as_ref())
    }
}

impl Catalog {
    /// The flows, each once, for matching triggers.
    pub fn list(&self) -> Vec<&Flow> {
        self.flows.values().map(|(_, f)| f.as_ref()).collect()
    }

    /// The ids of the flows, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.flows.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The problems with `flow` as a flow of this catalog (taking the place
    /// of its flow of the same id): the checker's, and the collections it
    /// writes to that neither it nor the catalog declares or that it
    /// declares other than the catalog does.
    pub fn problems(&self, flow: &Flow) -> Vec<confab_flow::Problem> {
        let exists = |id: &str| id == flow.id || self.flows.contains_key(id);
        let mut problems = check(flow, &exists);
        let mut known = self.collections.clone();
        for c in &flow.collections {
            match known.get(&c.name) {
                Some(other) if other != c => problems.push(confab_flow::Problem {
                    node: None,
                    field: Some("collections".into()),
                    message: format!(
                        "collection {} is declared already, with other fields",
                        c.name
                    ),
                }),
                _ => {
                    known.insert(c.name.clone(), c.clone());
                }
            }
        }
        problems.extend(
            unknown_collections(flow, &known)
                .into_iter()
                .map(|(node, message)| confab_flow::Problem {
                    node: Some(node),
                    field: Some("collection".into()),
                    message,
                }),
        );
        problems
    }
}

/// What a load found.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub flows: Vec<String>,
    pub problems: Vec<String>,
}

/// The files to load: the bundled ones, then the directory's (same name
/// overrides).
pub fn sources(dir: Option<&Path>) -> (Vec<(String, String)>, Vec<String>) {
    let mut files: Vec<(String, String)> = BUNDLED
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect();
    let mut problems = Vec::new();
    let Some(dir) = dir.filter(|d| d.is_dir()) else {
        return (files, problems);
    };
    let mut entries: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) => {
            problems.push(format!("{}: {e}", dir.display()));
            return (files, problems);
        }
    };
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().to_string()) else {
            continue;
        };
        if !(name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json"))
            || !path.is_file()
        {
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(src) => {
                files.retain(|(n, _)| *n != name);
                files.push((name, src));
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    (files, problems)
}

fn is_collections_file(name: &str) -> bool {
    name.starts_with("collections")
}

/// Parses and checks `files` into flows and collections. A file that fails
/// keeps the previous catalog's flow of the same id, if there was one.
pub fn build(
    files: &[(String, String)],
    previous: Option<&Catalog>,
) -> (
    HashMap<String, Flow>,
    HashMap<String, Collection>,
    Vec<String>,
) {
    let mut problems = Vec::new();
    let mut collections = HashMap::new();
    for (name, src) in files.iter().filter(|(n, _)| is_collections_file(n)) {
        match serde_norway::from_str::<CollectionsFile>(src) {
            Ok(file) => {
                let issues = check_collections(&file);
                if issues.is_empty() {
                    collections.extend(file.collections.into_iter().map(|c| (c.name.clone(), c)));
                } else {
                    problems.extend(issues.into_iter().map(|p| format!("{name}: {p}")));
                }
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    if collections.is_empty()
        && let Some(prev) = previous
    {
        collections = prev.collections.clone();
    }
    let mut parsed: Vec<(String, Flow)> = Vec::new();
    for (name, src) in files.iter().filter(|(n, _)| !is_collections_file(n)) {
        match parse_flow(name, src) {
            Ok(f) => parsed.push((name.clone(), f)),
            Err(e) => problems.push(e.to_string()),
        }
    }
    // A flow may declare the collections it writes to, as a file would.
    for (name, f) in &parsed {
        for c in &f.collections {
            match collections.get(&c.name) {
                Some(other) if other != c => problems.push(format!(
                    "{name}: collection {} is declared already, with other fields",
                    c.name
                )),
                _ => {
                    collections.insert(c.name.clone(), c.clone());
                }
            }
        }
    }
    let ids: std::collections::HashSet<String> = parsed.iter().map(|(_, f)| f.id.clone()).collect();
    let mut flows = HashMap::new();
    for (name, f) in parsed {
        let mut issues: Vec<String> = check(&f, &|id| ids.contains(id))
            .into_iter()
            .map(|p| p.to_string())
            .collect();
        issues.extend(
            unknown_collections(&f, &collections)
                .into_iter()
                .map(|(node, message)| format!("node {node}: {message}")),
        );
        if issues.is_empty() {
            flows.insert(f.id.clone(), f);
        } else {
            problems.extend(issues.into_iter().map(|p| format!("{name}: {p}")));
            if let Some((_, old)) = previous.and_then(|p| p.flows.get(&f.id)) {
                problems.push(format!(
                    "{name}: the previous version of flow {} stays live",
                    f.id
                ));
                flows.insert(f.id.clone(), old.as_ref().clone());
            }
        }
    }
    (flows, collections, problems)
}

fn unknown_collections(
    f: &Flow,
    collections: &HashMap<String, Collection>,
) -> Vec<(String, String)> {
    f.nodes
        .iter()
        .filter_map(|n| {
            let c = match n {
                Node::SaveRecord(r) => &r.collection,
                Node::FindRecord(r) => &r.collection,
                Node::UpdateRecord(r) => &r.collection,
                _ => return None,
            };
            (!collections.contains_key(c) && !f.collections.iter().any(|d| d.name == *c)).then(
                || {
                    (
                        n.id().to_string(),
                        format!("collection {c:?} is not declared"),
                    )
                },
            )
        })
        .collect()
}

/// A flow of the files, with the text its versions are kept as.
struct Layered {
    flow: Arc<Flow>,
    definition: String,
    hash: String,
}

impl Layered {
    fn new(flow: Flow) -> anyhow::Result<Layered> {
        let definition = serde_json::to_string(&flow)?;
        Ok(Layered {
            hash: hash(&definition),
            definition,
            flow: Arc::new(flow),
        })
    }
}

/// The flows of the files, checked: what every bot's catalog starts from.
#[derive(Default)]
struct Layers {
    /// The bundled flows and collections: every bot has them.
    bundled: (HashMap<String, Layered>, HashMap<String, Collection>),
    /// The bundled ones with the flows directory's over them: the default bot's.
    default: (HashMap<String, Layered>, HashMap<String, Collection>),
    /// Flows of the default bot that come from the directory.
    from_dir: std::collections::HashSet<String>,
}

/// The hash a version of a flow is known by.
pub fn hash(definition: &str) -> String {
    hex::encode(Sha256::digest(definition.as_bytes()))
}

/// Every bot's flows and collections, swapped whole on a change, plus every
/// version runs may still be pinned to.
///
/// A bot's catalog is the bundled flows (the default bot's: with the flows
/// directory over them) and its flows made through the API. Versions are
/// numbered per bot: each bot publishes the bundled flows under its own id.
pub struct Registry {
    store: Store,
    dir: Option<std::path::PathBuf>,
    layers: RwLock<Arc<Layers>>,
    catalogs: RwLock<Arc<HashMap<i64, Arc<Catalog>>>>,
    /// (bot, flow) -> (hash, version) known to be stored, so that a rebuild
    /// writes only what is new.
    published: Mutex<HashMap<(i64, String), (String, i64)>>,
    pinned: Mutex<HashMap<(i64, String, i64), Arc<Flow>>>,
    /// One rebuild at a time: a later one always reads later data.
    rebuilding: tokio::sync::Mutex<()>,
}

impl Registry {
    /// Loads the flows and publishes their versions. With no flow at all
    /// (every file broken) start-up fails.
    pub async fn load(
        store: Store,
        dir: Option<&Path>,
        now_ms: i64,
    ) -> anyhow::Result<(Registry, LoadReport)> {
        let registry = Registry {
            store,
            dir: dir.map(Path::to_path_buf),
            layers: RwLock::default(),
            catalogs: RwLock::default(),
            published: Mutex::default(),
            pinned: Mutex::default(),
            rebuilding: tokio::sync::Mutex::new(()),
        };
        let report = registry.reload(now_ms).await?;
        Ok((registry, report))
    }

    /// Reads the files again; what is broken keeps its previous version.
    pub async fn reload(&self, now_ms: i64) -> anyhow::Result<LoadReport> {
        let bundled_files: Vec<(String, String)> = BUNDLED
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        let (bundled, bundled_collections, _) = build(&bundled_files, None);
        let previous = self.catalog(confab_store::DEFAULT_BOT);
        let (files, mut problems) = sources(self.dir.as_deref());
        let (flows, collections, more) = build(&files, Some(&previous));
        problems.extend(more);
        let from_dir = flows
            .iter()
            .filter(|(id, f)| bundled.get(*id) != Some(f))
            .map(|(id, _)| id.clone())
            .collect();
        let layer = |flows: HashMap<String, Flow>| -> anyhow::Result<HashMap<String, Layered>> {
            flows
                .into_iter()
                .map(|(id, f)| Ok((id, Layered::new(f)?)))
                .collect()
        };
        let layers = Layers {
            bundled: (layer(bundled)?, bundled_collections),
            default: (layer(flows)?, collections),
            from_dir,
        };
        *self.layers.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(layers);
        problems.extend(self.rebuild(now_ms).await?);
        let catalog = self.catalog(confab_store::DEFAULT_BOT);
        // A file's flow stays live when its template is missing (the
        // catalogue may be synced after), and is reported.
        let mut files: Vec<(&String, &Arc<Flow>)> = catalog
            .flows
            .iter()
            .filter(|(id, (_, f))| {
                catalog.sources.get(*id) == Some(&Source::File) && f.templates().next().is_some()
            })
            .map(|(id, (_, f))| (id, f))
            .collect();
        if !files.is_empty() {
            files.sort_by_key(|(id, _)| *id);
            let catalogue = self.store.templates(confab_store::DEFAULT_BOT).await?;
            for (id, flow) in files {
                for (node, why) in crate::message_templates::flow_problems(flow, &catalogue) {
                    problems.push(format!("flow {id}, node {node}: {why}"));
                }
            }
        }
        let mut names: Vec<String> = catalog
            .flows
            .iter()
            .map(|(id, (v, _))| format!("{id} v{v}"))
            .collect();
        names.sort();
        Ok(LoadReport {
            flows: names,
            problems,
        })
    }

    /// Builds every bot's catalog again from the files as last read and the
    /// flows stored through the API; returns what could not be used.
    pub async fn rebuild(&self, now_ms: i64) -> anyhow::Result<Vec<String>> {
        let _one = self.rebuilding.lock().await;
        let layers = self
            .layers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut api: HashMap<i64, Vec<confab_store::StoredFlow>> = HashMap::new();
        for f in self.store.api_flows().await? {
            api.entry(f.bot_id).or_default().push(f);
        }
        let mut problems = Vec::new();
        let mut catalogs = HashMap::new();
        for bot in self.store.bots().await? {
            let default = bot.id == confab_store::DEFAULT_BOT;
            let (base, collections) = if default {
                &layers.default
            } else {
                &layers.bundled
            };
            let mut catalog = Catalog {
                collections: collections.clone(),
                ..Catalog::default()
            };
            for (id, l) in base {
                let version = self.publish(bot.id, id, l, now_ms).await?;
                let source = if default && layers.from_dir.contains(id) {
                    Source::File
                } else {
                    Source::Bundled
                };
                catalog.flows.insert(id.clone(), (version, l.flow.clone()));
                catalog.sources.insert(id.clone(), source);
            }
            for stored in api.remove(&bot.id).unwrap_or_default() {
                if catalog.flows.contains_key(&stored.id) {
                    problems.push(format!(
                        "bot {}: flow {} is also a file's; the file's is live",
                        bot.slug, stored.id
                    ));
                    continue;
                }
                let flow: Flow = match serde_json::from_str(&stored.definition) {
                    Ok(f) => f,
                    Err(e) => {
                        problems.push(format!("bot {}: flow {}: {e}", bot.slug, stored.id));
                        continue;
                    }
                };
                for c in &flow.collections {
                    catalog
                        .collections
                        .entry(c.name.clone())
                        .or_insert_with(|| c.clone());
                }
                let flow = self.pin((bot.id, stored.id.clone(), stored.version), flow);
                catalog.sources.insert(stored.id.clone(), Source::Api);
                catalog.flows.insert(stored.id, (stored.version, flow));
            }
            catalogs.insert(bot.id, Arc::new(catalog));
        }
        *self.catalogs.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalogs);
        Ok(problems)
    }

    /// The version of a file's flow for `bot`, publishing it when new.
    async fn publish(&self, bot: i64, id: &str, l: &Layered, now_ms: i64) -> anyhow::Result<i64> {
        let key = (bot, id.to_string());
        let known = self
            .published
            .lock()
            .ok()
            .and_then(|p| p.get(&key).cloned());
        if let Some((hash, version)) = known
            && hash == l.hash
        {
            return Ok(version);
        }
        let version = self
            .store
            .publish_flow(
                &confab_store::FlowWrite {
                    bot_id: bot,
                    id,
                    definition: &l.definition,
                    hash: &l.hash,
                },
                now_ms,
            )
            .await?;
        if let Ok(mut p) = self.published.lock() {
            p.insert(key, (l.hash.clone(), version));
        }
        if let Ok(mut pinned) = self.pinned.lock() {
            pinned.insert((bot, id.to_string(), version), l.flow.clone());
        }
        Ok(version)
    }

    fn pin(&self, key: (i64, String, i64), flow: Flow) -> Arc<Flow> {
        let mut pinned = self.pinned.lock().unwrap_or_else(|e| e.into_inner());
        pinned.entry(key).or_insert_with(|| Arc::new(flow)).clone()
    }

    /// The flows every bot has, sorted: a new bot's.
    pub fn bundled_ids(&self) -> Vec<String> {
        let layers = self
            .layers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut ids: Vec<String> = layers.bundled.0.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// A bot's flows and collections as they are live now.
    pub fn catalog(&self, bot: i64) -> Arc<Catalog> {
        self.catalogs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&bot)
            .cloned()
            .unwrap_or_default()
    }

    /// A bot's flow as it was at `version`, for runs pinned to it.
    pub async fn version(
        &self,
        bot: i64,
        id: &str,
        version: i64,
    ) -> anyhow::Result<Option<Arc<Flow>>> {
        let key = (bot, id.to_string(), version);
        if let Some(f) = self.pinned.lock().ok().and_then(|p| p.get(&key).cloned()) {
            return Ok(Some(f));
        }
        let Some(definition) = self.store.flow_definition(bot, id, version).await? else {
            return Ok(None);
        };
        Ok(Some(self.pin(key, serde_json::from_str(&definition)?)))
    }
}

/// The flows a run sees: its own flow at the version it pinned, any other
/// (subflows) as live now.
pub struct Pinned<'a> {
    pub root: &'a Flow,
    pub catalog: &'a Catalog,
}

impl Flows for Pinned<'_> {
    fn flow(&self, id: &str) -> Option<&Flow> {
        if id == self.root.id {
            Some(self.root)
        } else {
            self.catalog.flow(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_flows_load_clean() {
        let files: Vec<(String, String)> = BUNDLED
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        let (flows, collections, problems) = build(&files, None);
        assert_eq!(problems, Vec::<String>::new());
        assert!(flows.contains_key("product_review") && flows.contains_key("pms_menu"));
        for c in ["reviews", "orders", "defects", "tickets"] {
            assert!(collections.contains_key(c), "{c}");
        }
    }

    #[test]
    fn a_broken_file_keeps_the_previous_version() {
        let good = "id: hello\nnodes:\n  - { id: a, type: end, text: hi }\n";
        let (flows, collections, _) = build(&[("hello.yaml".into(), good.into())], None);
        let previous = Catalog {
            flows: flows
                .into_iter()
                .map(|(k, v)| (k, (1, Arc::new(v))))
                .collect(),
            collections,
            ..Catalog::default()
        };
        let broken = "id: hello\nnodes:\n  - { id: a, type: send, text: hi, next: nowhere }\n";
        let (flows, _, problems) = build(&[("hello.yaml".into(), broken.into())], Some(&previous));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("hello.yaml: node a: next names unknown node")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("previous version of flow hello stays live"))
        );
        assert_eq!(flows["hello"].nodes[0].kind(), "end");
        let unknown = "id: saver\nnodes:\n  - { id: s, type: save_record, collection: nope, fields: { a: \"1\" } }\n";
        let (flows, _, problems) = build(&[("saver.yaml".into(), unknown.into())], None);
        assert!(flows.is_empty());
        assert!(
            problems[0].contains("collection \"nope\" is not declared"),
            "{problems:?}"
        );
    }
}
