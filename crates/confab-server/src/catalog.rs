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

/// A consistent set of flows and collections.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// The live definition of each flow, with its version.
    pub flows: HashMap<String, (i64, Arc<Flow>)>,
    pub collections: HashMap<String, Collection>,
}

impl Flows for Catalog {
    fn flow(&self, id: &str) -> Option<&Flow> {
        self.flows.get(id).map(|(_, f)| f.as_ref())
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
    let ids: std::collections::HashSet<String> = parsed.iter().map(|(_, f)| f.id.clone()).collect();
    let mut flows = HashMap::new();
    for (name, f) in parsed {
        let mut issues: Vec<String> = check(&f, &|id| ids.contains(id))
            .into_iter()
            .map(|p| p.to_string())
            .collect();
        issues.extend(unknown_collections(&f, &collections));
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

fn unknown_collections(f: &Flow, collections: &HashMap<String, Collection>) -> Vec<String> {
    f.nodes
        .iter()
        .filter_map(|n| {
            let c = match n {
                Node::SaveRecord(r) => &r.collection,
                Node::FindRecord(r) => &r.collection,
                Node::UpdateRecord(r) => &r.collection,
                _ => return None,
            };
            (!collections.contains_key(c))
                .then(|| format!("node {}: collection {c:?} is not declared", n.id()))
        })
        .collect()
}

/// The flows and collections live now, swapped whole on reload, plus every
/// version runs may still be pinned to.
pub struct Registry {
    store: Store,
    dir: Option<std::path::PathBuf>,
    current: RwLock<Arc<Catalog>>,
    pinned: Mutex<HashMap<(String, i64), Arc<Flow>>>,
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
            current: RwLock::new(Arc::new(Catalog::default())),
            pinned: Mutex::new(HashMap::new()),
        };
        let report = registry.reload(now_ms).await?;
        Ok((registry, report))
    }

    /// Reads the files again; what is broken keeps its previous version.
    pub async fn reload(&self, now_ms: i64) -> anyhow::Result<LoadReport> {
        let previous = self.catalog();
        let (files, mut problems) = sources(self.dir.as_deref());
        let (flows, collections, more) = build(&files, Some(&previous));
        problems.extend(more);
        let mut catalog = Catalog {
            flows: HashMap::new(),
            collections,
        };
        let mut names = Vec::new();
        for (id, f) in flows {
            let definition = serde_json::to_string(&f)?;
            let hash = hex::encode(Sha256::digest(definition.as_bytes()));
            let version = self
                .store
                .publish_flow(&id, &hash, &definition, now_ms)
                .await?;
            let f = Arc::new(f);
            if let Ok(mut pinned) = self.pinned.lock() {
                pinned.insert((id.clone(), version), f.clone());
            }
            names.push(format!("{id} v{version}"));
            catalog.flows.insert(id, (version, f));
        }
        names.sort();
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(catalog);
        }
        Ok(LoadReport {
            flows: names,
            problems,
        })
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.current.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// A flow as it was at `version`, for runs pinned to it.
    pub async fn version(&self, id: &str, version: i64) -> anyhow::Result<Option<Arc<Flow>>> {
        let key = (id.to_string(), version);
        if let Some(f) = self.pinned.lock().ok().and_then(|p| p.get(&key).cloned()) {
            return Ok(Some(f));
        }
        let Some(definition) = self.store.flow_definition(id, version).await? else {
            return Ok(None);
        };
        let f: Arc<Flow> = Arc::new(serde_json::from_str(&definition)?);
        if let Ok(mut pinned) = self.pinned.lock() {
            pinned.insert(key, f.clone());
        }
        Ok(Some(f))
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
