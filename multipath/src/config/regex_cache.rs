//! Compiled regular expressions, kept per process by their text. The built-in hardware
//! table and blacklist (hwtable.rs, blacklist.rs) are the same expressions in every
//! configuration, and each `reconfigure`, `multipath -t` and parse of a drop-in used to
//! compile them all again; compiling is most of what parsing a multipath.conf costs
//! (under the fuzzer's coverage instrumentation an input took 13 ms, most of it in
//! the regex crate's compiler; 2.4 ms with this cache).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::Regex;

/// Distinct expressions kept. A node's configurations use a few dozen; past this (a
/// fuzzer makes endless new ones) the cache starts over rather than grow.
const KEPT: usize = 512;

static CACHE: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();

fn lock() -> std::sync::MutexGuard<'static, HashMap<String, Regex>> {
    CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// `Regex::new(text)`, compiled once per process for each text that compiles.
pub(crate) fn regex(text: &str) -> Result<Regex, regex::Error> {
    if let Some(re) = lock().get(text) {
        return Ok(re.clone());
    }
    // Compiled outside the lock: two threads may both compile a new text, and both
    // results are the same expression.
    let re = Regex::new(text)?;
    let mut kept = lock();
    if kept.len() >= KEPT {
        kept.clear();
    }
    kept.insert(text.to_string(), re.clone());
    Ok(re)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_compiles_to_the_same_expression_every_time() {
        let a = regex("^IET$").unwrap();
        let b = regex("^IET$").unwrap();
        assert_eq!(a.as_str(), "^IET$");
        assert!(a.is_match("IET") && b.is_match("IET") && !b.is_match("XIET"));
        assert!(regex("(").is_err());
        assert!(regex("(").is_err(), "an error is not kept as an expression");
    }

    #[test]
    fn the_cache_starts_over_instead_of_growing() {
        for i in 0..KEPT + 10 {
            let text = format!("^cache-test-{i}$");
            assert!(regex(&text).unwrap().is_match(&format!("cache-test-{i}")));
        }
        let kept = lock().len();
        assert!(kept <= KEPT, "{kept} kept");
    }
}
