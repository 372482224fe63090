//! Reading flow files: YAML, or JSON (the same structure).

use crate::definition::Flow;

/// A flow file that cannot be read, with where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct LoadError {
    pub file: String,
    pub message: String,
}

/// Parses a flow from `source`; `file` names it in errors and picks JSON
/// for `.json` files.
pub fn parse_flow(file: &str, source: &str) -> Result<Flow, LoadError> {
    let err = |message: String| LoadError {
        file: file.to_string(),
        message,
    };
    if file.ends_with(".json") {
        serde_json::from_str(source).map_err(|e| err(e.to_string()))
    } else {
        serde_norway::from_str(source).map_err(|e| err(e.to_string()))
    }
}

/// The line (from 1) of a YAML flow document where a problem lies: within
/// node `node`'s entry, the line of its `field` (at any depth), else the
/// node's `id`; with no node, the document's own top-level `field`.
/// `None` where the text does not show it (a flow given as JSON, say).
pub fn line_of(source: &str, node: Option<&str>, field: Option<&str>) -> Option<usize> {
    let lines: Vec<&str> = source.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    // `key:` at the start of a line's content, after any list dash.
    let key_of = |l: &str| -> Option<(usize, String)> {
        let t = l.trim_start();
        let (col, t) = match t.strip_prefix("- ") {
            Some(rest) => (
                indent(l) + 2 + (rest.len() - rest.trim_start().len()),
                rest.trim_start(),
            ),
            None => (indent(l), t),
        };
        let (key, _) = t.split_once(':')?;
        let key = key.trim().trim_matches(['"', '\'']);
        (!key.is_empty() && !key.contains(' ')).then(|| (col, key.to_string()))
    };
    let unquote = |v: &str| v.trim().trim_matches(['"', '\'']).to_string();
    let Some(node) = node else {
        let field = field?;
        return lines
            .iter()
            .position(|l| key_of(l).is_some_and(|(col, k)| col == 0 && k == field))
            .map(|i| i + 1);
    };
    // The node's `id:` line, in block style (`- id: ask`) or flow style
    // (`- { id: ask, ... }`).
    let (at, col) = lines.iter().enumerate().find_map(|(i, l)| {
        if let Some((col, k)) = key_of(l)
            && k == "id"
            && unquote(l.split_once(':')?.1) == node
        {
            return Some((i, col));
        }
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        let inner = t.strip_prefix('{')?;
        inner.split(',').find_map(|pair| {
            let (k, v) = pair.split_once(':')?;
            (k.trim() == "id" && unquote(v.trim_end_matches('}')) == node).then_some((i, indent(l)))
        })
    })?;
    let Some(field) = field else {
        return Some(at + 1);
    };
    // The entry runs from its dash to the next line as shallow as it.
    let start = (0..=at)
        .rev()
        .find(|&i| {
            let l = lines[i];
            l.trim_start().starts_with("- ") && indent(l) + 2 <= col
        })
        .unwrap_or(at);
    let entry_indent = indent(lines[start]);
    let end = (start + 1..lines.len())
        .find(|&i| {
            let l = lines[i];
            !l.trim().is_empty() && !l.trim_start().starts_with('#') && indent(l) <= entry_indent
        })
        .unwrap_or(lines.len());
    let found = (start..end).find(|&i| {
        key_of(lines[i]).is_some_and(|(_, k)| k == field)
            || lines[i].contains(&format!("{field}:")) && lines[i].contains('{')
    });
    Some(found.unwrap_or(at) + 1)
}

#[cfg(test)]
mod tests {
    use super::line_of;

    const FLOW: &str = "\
id: demo
start: ask_name
nodes:
  - id: ask_name
    type: ask
    text: \"What's your name?\"
    answer:
      kind: text
      pattern: \"[\"
    next: thanks

  # a comment between entries
  - type: end
    id: 'thanks'
    text: Bye
  - { id: short, type: end, text: Hi, nxt: x }
";

    #[test]
    fn a_problem_is_found_on_its_nodes_field_or_its_id() {
        assert_eq!(line_of(FLOW, Some("ask_name"), None), Some(4));
        assert_eq!(line_of(FLOW, Some("ask_name"), Some("next")), Some(10));
        assert_eq!(line_of(FLOW, Some("ask_name"), Some("pattern")), Some(9));
        // A field the entry does not have: the node's id.
        assert_eq!(line_of(FLOW, Some("ask_name"), Some("save_as")), Some(4));
        // `id` not first, quoted; the field is looked for from the dash on.
        assert_eq!(line_of(FLOW, Some("thanks"), None), Some(14));
        assert_eq!(line_of(FLOW, Some("thanks"), Some("type")), Some(13));
        assert_eq!(line_of(FLOW, Some("short"), Some("nxt")), Some(16));
        assert_eq!(line_of(FLOW, None, Some("start")), Some(2));
        assert_eq!(line_of(FLOW, Some("nowhere"), Some("next")), None);
        assert_eq!(line_of(FLOW, None, None), None);
        assert_eq!(line_of("{\"id\": \"x\"}", Some("a"), None), None);
    }
}
