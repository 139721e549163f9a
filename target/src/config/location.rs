//! Where in a config file something was, and the error and warning texts that name it
//! (`file:line: directive: detail`).

use std::fmt;
use std::path::PathBuf;

use crate::Error;

/// A place in a config file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

pub(crate) fn cfg_err(loc: &Location, directive: &str, detail: String) -> Error {
    Error::Config {
        file: loc.file.clone(),
        line: loc.line,
        directive: directive.to_string(),
        detail,
    }
}

pub(super) fn warn(loc: &Location, directive: &str, text: impl fmt::Display) -> String {
    format!("{loc}: {directive}: {text}")
}
