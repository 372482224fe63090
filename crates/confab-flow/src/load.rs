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
