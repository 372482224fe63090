//! A flow drawn as a graph, laid out here so the browser needs no script:
//! nodes in layers by their distance from the start (top to bottom), each
//! edge with its label (a menu option, a branch's condition, `on_failure`),
//! and how many runs stopped at each node from the flow's statistics.

use std::collections::{BTreeMap, HashMap, VecDeque};

use confab_flow::{Flow, Node};
use serde::Serialize;

const BOX_W: i64 = 180;
const BOX_H: i64 = 54;
const GAP_X: i64 = 40;
const GAP_Y: i64 = 70;
const MARGIN: i64 = 20;
/// Longer labels are cut, with an ellipsis.
const LABEL: usize = 24;

#[derive(Debug, Serialize)]
pub struct Drawn {
    pub width: i64,
    pub height: i64,
    pub nodes: Vec<Place>,
    pub edges: Vec<Line>,
}

#[derive(Debug, Serialize)]
pub struct Place {
    pub id: String,
    pub kind: &'static str,
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    /// Runs that stopped here (failed, expired or waiting still).
    pub dropped: i64,
    pub start: bool,
}

#[derive(Debug, Serialize)]
pub struct Line {
    /// An SVG path.
    pub d: String,
    pub label: String,
    pub lx: i64,
    pub ly: i64,
    /// Back to an earlier layer (a loop).
    pub back: bool,
}

/// Each edge of `node`, labelled: a menu option's label, a branch's
/// condition, the field of any other exit (none for a plain `next`).
fn edges(node: &Node) -> Vec<(String, &str)> {
    match node {
        Node::Menu(m) => {
            let mut out: Vec<(String, &str)> = m
                .options
                .iter()
                .map(|o| (o.label.clone(), o.next.as_str()))
                .collect();
            out.extend(m.on_give_up.as_deref().map(|t| ("on_give_up".into(), t)));
            out
        }
        Node::Branch(b) => {
            let mut out: Vec<(String, &str)> = b
                .branches
                .iter()
                .map(|br| (br.when.clone(), br.next.as_str()))
                .collect();
            out.push(("default".into(), b.default.as_str()));
            out
        }
        other => other
            .successors()
            .into_iter()
            .map(|(field, t)| (if field == "next" { "" } else { field }.to_string(), t))
            .collect(),
    }
}

fn cut(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= LABEL {
        return s.to_string();
    }
    let mut out: String = s.chars().take(LABEL - 1).collect();
    out.push('…');
    out
}

/// Lays `flow` out; `dropped` is the statistics' runs stopped per node.
pub fn draw(flow: &Flow, dropped: &HashMap<String, i64>) -> Drawn {
    let index: HashMap<&str, usize> = flow
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id(), i))
        .collect();
    // Layers: the shortest distance from the start; what cannot be reached
    // goes below everything else, in file order.
    let mut layer: Vec<Option<usize>> = vec![None; flow.nodes.len()];
    let mut queue = VecDeque::new();
    if let Some(&s) = flow.start_node().and_then(|s| index.get(s)) {
        layer[s] = Some(0);
        queue.push_back(s);
    }
    while let Some(i) = queue.pop_front() {
        for (_, t) in edges(&flow.nodes[i]) {
            if let Some(&j) = index.get(t)
                && layer[j].is_none()
            {
                layer[j] = Some(layer[i].unwrap_or(0) + 1);
                queue.push_back(j);
            }
        }
    }
    let deepest = layer.iter().flatten().max().copied().unwrap_or(0);
    let mut rows: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, l) in layer.iter().enumerate() {
        rows.entry(l.unwrap_or(deepest + 1)).or_default().push(i);
    }
    let widest = rows.values().map(Vec::len).max().unwrap_or(1) as i64;
    let width = MARGIN * 2 + widest * BOX_W + (widest - 1).max(0) * GAP_X;
    let mut at: Vec<(i64, i64, usize)> = vec![(0, 0, 0); flow.nodes.len()];
    for (row, (&l, members)) in rows.iter().enumerate() {
        let n = members.len() as i64;
        let span = n * BOX_W + (n - 1) * GAP_X;
        let left = (width - span) / 2;
        for (k, &i) in members.iter().enumerate() {
            let x = left + k as i64 * (BOX_W + GAP_X);
            let y = MARGIN + row as i64 * (BOX_H + GAP_Y);
            at[i] = (x, y, l);
        }
    }
    let height = MARGIN * 2 + rows.len() as i64 * BOX_H + (rows.len() as i64 - 1).max(0) * GAP_Y;
    let start = flow.start_node();
    let nodes = flow
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Place {
            id: n.id().to_string(),
            kind: n.kind(),
            x: at[i].0,
            y: at[i].1,
            w: BOX_W,
            h: BOX_H,
            dropped: dropped.get(n.id()).copied().unwrap_or_default(),
            start: Some(n.id()) == start,
        })
        .collect();
    let mut edges_out = Vec::new();
    for (i, n) in flow.nodes.iter().enumerate() {
        let out = edges(n);
        let count = out.len() as i64;
        for (k, (label, t)) in out.into_iter().enumerate() {
            let Some(&j) = index.get(t) else { continue };
            let (sx, sy, sl) = at[i];
            let (tx, ty, tl) = at[j];
            // Exits spread along the bottom edge; entries at the top middle.
            let x1 = sx + BOX_W * (k as i64 + 1) / (count + 1);
            let y1 = sy + BOX_H;
            let x2 = tx + BOX_W / 2;
            let back = tl <= sl;
            let (d, lx, ly) = if back {
                // Around the right of both boxes, into the target's side.
                let side = sx.max(tx) + BOX_W + GAP_X / 2;
                let y2 = ty + BOX_H / 2;
                (
                    format!(
                        "M{x1},{y1} C{x1},{} {side},{} {side},{y2} L{},{y2}",
                        y1 + 30,
                        y1 + 30,
                        tx + BOX_W
                    ),
                    side + 4,
                    (y1 + y2) / 2,
                )
            } else {
                let mid = (y1 + ty) / 2;
                (
                    format!("M{x1},{y1} C{x1},{mid} {x2},{mid} {x2},{ty}"),
                    (x1 + x2) / 2 + 4,
                    mid,
                )
            };
            edges_out.push(Line {
                d,
                label: cut(&label),
                lx,
                ly,
                back,
            });
        }
    }
    Drawn {
        width: width + GAP_X,
        height,
        nodes,
        edges: edges_out,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[test]
    fn nodes_are_layered_from_the_start_and_edges_carry_their_labels() {
        let flow: confab_flow::Flow = serde_json::from_value(serde_json::json!({
            "id": "f", "nodes": [
                {"id": "menu", "type": "menu", "text": "Pick", "options": [
                    {"label": "Report a very long defect description", "next": "a"},
                    {"label": "Status", "next": "b"}]},
                {"id": "a", "type": "send", "text": "A", "next": "menu"},
                {"id": "b", "type": "end", "text": "B"},
                {"id": "lost", "type": "end", "text": "never"}]
        }))
        .unwrap();
        let d = super::draw(&flow, &HashMap::from([("b".to_string(), 3)]));
        let y = |id: &str| d.nodes.iter().find(|n| n.id == id).unwrap().y;
        assert!(y("menu") < y("a"));
        assert_eq!(y("a"), y("b"));
        assert!(y("lost") > y("b"), "the unreachable below");
        assert!(d.nodes[0].start);
        assert_eq!(d.nodes.iter().find(|n| n.id == "b").unwrap().dropped, 3);
        let labels: Vec<&str> = d.edges.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(labels, ["Report a very long defe…", "Status", ""]);
        assert!(d.edges[2].back, "a leads back to the menu");
        assert!(d.width > 2 * super::BOX_W && d.height > 3 * super::BOX_H);
    }
}
