//! `confab flow ...`: check flow files, run conversation transcripts, print
//! the schema, and reload a running server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use confab_flow::transcript::{Transcript, run_transcript};
use confab_server::catalog::{self, Catalog};

/// Files to read: those named, or every YAML/JSON file in `dir` (recursing
/// into subfolders for transcripts).
fn files(named: &[PathBuf], dir: &Path, recurse: bool) -> Vec<PathBuf> {
    if !named.is_empty() {
        return named.to_vec();
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                if recurse {
                    stack.push(p);
                }
            } else if p
                .extension()
                .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Checks flow and collection files against each other and the bundled
/// ones; prints every problem; false when there was one.
pub fn validate(named: &[PathBuf], flows_dir: &Path) -> anyhow::Result<bool> {
    let paths = files(named, flows_dir, false);
    let mut sources: Vec<(String, String)> = catalog::BUNDLED
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect();
    let mut mine = Vec::new();
    for p in &paths {
        let src = std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        sources.retain(|(n, _)| *n != name);
        sources.push((name.clone(), src));
        mine.push((name, p.display().to_string()));
    }
    let (flows, _, problems) = catalog::build(&sources, None);
    let mut ok = true;
    for p in &problems {
        // Problems start with the file's name; show the path given.
        let shown = mine
            .iter()
            .find(|(n, _)| p.starts_with(&format!("{n}:")))
            .map(|(n, path)| p.replacen(n.as_str(), path, 1));
        println!("{}", shown.unwrap_or_else(|| p.clone()));
        ok = false;
    }
    for (name, path) in &mine {
        if !problems.iter().any(|p| p.starts_with(&format!("{name}:"))) {
            let what = if name.starts_with("collections") {
                "collections".to_string()
            } else {
                format!("{} flow(s) in all", flows.len())
            };
            println!("{path}: ok ({what})");
        }
    }
    Ok(ok)
}

fn catalog_from(flows_dir: &Path) -> anyhow::Result<Catalog> {
    let (sources, problems) = catalog::sources(Some(flows_dir));
    let (flows, collections, more) = catalog::build(&sources, None);
    for p in problems.iter().chain(&more) {
        eprintln!("warning: {p}");
    }
    Ok(Catalog {
        flows: flows
            .into_iter()
            .map(|(k, f)| (k, (1, std::sync::Arc::new(f))))
            .collect(),
        collections,
        ..Catalog::default()
    })
}

/// Runs transcripts (those named, or every one under `FLOWS_DIR/tests`);
/// false when one failed.
pub fn test(named: &[PathBuf], flows_dir: &Path) -> anyhow::Result<bool> {
    let catalog = catalog_from(flows_dir)?;
    let paths = files(named, &flows_dir.join("tests"), true);
    if paths.is_empty() {
        anyhow::bail!(
            "no transcripts: name some, or put them under {}",
            flows_dir.join("tests").display()
        );
    }
    let flows: HashMap<String, confab_flow::Flow> = catalog
        .flows
        .iter()
        .map(|(k, (_, f))| (k.clone(), f.as_ref().clone()))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for p in &paths {
        let src = std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?;
        let result = serde_norway::from_str::<Transcript>(&src)
            .map_err(|e| format!("cannot read the transcript: {e}"))
            .and_then(|t| run_transcript(&t, &flows, &catalog.collections));
        match result {
            Ok(()) => {
                passed += 1;
                println!("ok    {}", p.display());
            }
            Err(e) => {
                failed += 1;
                println!("FAIL  {}\n{e}\n", p.display());
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}

pub fn schema() -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&confab_flow::json_schema())?
    );
    Ok(())
}

/// Asks a running server to read its flows again.
pub async fn reload(url: &str, key: &str) -> anyhow::Result<bool> {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/flows/reload", url.trim_end_matches('/')))
        .bearer_auth(key)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "the server answered {status}: {}",
            body["detail"].as_str().unwrap_or("")
        );
    }
    for f in body["flows"].as_array().into_iter().flatten() {
        println!("live: {}", f.as_str().unwrap_or_default());
    }
    let problems = body["problems"].as_array().cloned().unwrap_or_default();
    for p in &problems {
        println!("problem: {}", p.as_str().unwrap_or_default());
    }
    Ok(problems.is_empty())
}
