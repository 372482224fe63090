//! Regular expressions of flows (answer patterns, regex triggers),
//! compiled once by source: flows are few, messages many.
//!
//! The compiled regex is shared, not cloned: a clone of a `regex::Regex`
//! starts with an empty pool of search caches, so every search on a fresh
//! clone built its lazy DFA again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use regex::Regex;

/// More sources than this and the cache starts over: patterns come from
/// flow files, but a flow reloaded many times must not grow it for ever.
const MOST: usize = 1000;

/// `src` compiled, from the cache when it was compiled before.
pub fn compiled(src: &str) -> Result<Arc<Regex>, regex::Error> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(re) = cache.lock().ok().and_then(|c| c.get(src).cloned()) {
        return Ok(re);
    }
    let re = Arc::new(Regex::new(src)?);
    if let Ok(mut c) = cache.lock() {
        if c.len() >= MOST {
            c.clear();
        }
        c.insert(src.to_string(), re.clone());
    }
    Ok(re)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_compiled_once_and_shared() {
        let a = compiled(r"^\d{3}$").unwrap();
        let b = compiled(r"^\d{3}$").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(a.is_match("123") && !a.is_match("12"));
    }

    #[test]
    fn a_bad_source_is_an_error_and_is_not_kept() {
        assert!(compiled("(").is_err());
        assert!(compiled("(").is_err());
    }
}
