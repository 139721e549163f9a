//! multipath.conf as multipath-tools reads it, and the settings it gives a path or map.
//!
//! Layers, one file each:
//! - [`lexer`]: one line into a keyword and a value (quotes, `""`, `#`/`!` comments);
//! - [`keywords`]: the keyword tables of each section and how each value is read;
//! - [`values`]: the typed values (`PgPolicy`, `NoPathRetry`, …) and how they print;
//! - [`parser`]: sections and subsections, drop-in files, merging of duplicate entries;
//! - [`hwtable`]: hydra's built-in device entries and blacklist;
//! - [`blacklist`]: `blacklist` / `blacklist_exceptions` evaluation;
//! - [`resolve`]: the effective settings of a path/map (multipaths > overrides >
//!   devices > defaults > built-in defaults);
//! - [`print`]: `multipath -t` / `multipathd show config`.
//!
//! Reference version: Debian 12's multipath-tools 0.9.4 for keywords, defaults, messages
//! and output; hydra's differences are listed in the README ("multipath.conf").
//! Parsing is sans-IO ([`Config::parse`]); [`Config::load`] only reads the files.

pub mod blacklist;
pub mod hwtable;
pub(crate) mod keywords;
mod lexer;
mod parser;
pub mod print;
mod regex_cache;
pub mod resolve;
pub mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use regex::Regex;

use crate::{Error, Result};

pub use blacklist::{Criterion, PathFacts, Rules, Verdict};
pub use keywords::PROTOCOLS;
pub use resolve::{Globals, PathIdentity, Settings, Source, Sourced};
pub use values::*;

/// The main configuration file.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/multipath.conf";
/// Drop-ins, read after the main file in alphabetical order (`*.conf` only).
pub const DEFAULT_CONFIG_DIR: &str = "/etc/multipath/conf.d";

/// One keyword's value and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: Value,
    pub file: Arc<PathBuf>,
    pub line: usize,
}

/// The attributes of one section or entry, by keyword (`checker` is stored as
/// `path_checker`, as multipath-tools does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    map: BTreeMap<&'static str, Setting>,
}

impl Attrs {
    pub fn get(&self, keyword: &str) -> Option<&Value> {
        self.map.get(keyword).map(|s| &s.value)
    }

    pub fn setting(&self, keyword: &str) -> Option<&Setting> {
        self.map.get(keyword)
    }

    pub(crate) fn set(&mut self, keyword: &'static str, setting: Setting) {
        self.map.insert(keyword, setting);
    }

    /// A string value (Str or Regex).
    pub fn str(&self, keyword: &str) -> Option<&str> {
        match self.get(keyword)? {
            Value::Str(s) | Value::Regex(s) => Some(s),
            _ => None,
        }
    }

    /// Fills what `self` lacks from `older` (multipath-tools' `merge_hwe`/`merge_mpe`:
    /// a later duplicate entry wins, an earlier one fills its gaps).
    pub(crate) fn fill_from(&mut self, older: &Attrs) {
        for (k, v) in &older.map {
            self.map.entry(k).or_insert_with(|| v.clone());
        }
    }

    /// The settings in keyword order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Setting)> {
        self.map.iter().map(|(k, s)| (*k, s))
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Where a `devices` entry comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOrigin {
    /// hydra's built-in table ([`hwtable`]).
    Builtin,
    /// A configuration file (the main file or a drop-in).
    File(Arc<PathBuf>),
}

/// `devices { device { … } }`: matched by regular expression on the INQUIRY vendor,
/// product and revision.
#[derive(Debug, Clone)]
pub struct DeviceEntry {
    pub(crate) attrs: Attrs,
    pub(crate) origin: EntryOrigin,
    /// vendor, product and revision compiled on first match (None: one does not
    /// compile, which parsing rules out; such an entry matches nothing).
    matcher: OnceLock<Option<[Option<Regex>; 3]>>,
}

impl PartialEq for DeviceEntry {
    fn eq(&self, other: &DeviceEntry) -> bool {
        self.attrs == other.attrs && self.origin == other.origin
    }
}

impl Eq for DeviceEntry {}

impl DeviceEntry {
    pub(crate) fn new(attrs: Attrs, origin: EntryOrigin) -> DeviceEntry {
        DeviceEntry {
            attrs,
            origin,
            matcher: OnceLock::new(),
        }
    }

    pub fn attrs(&self) -> &Attrs {
        &self.attrs
    }

    pub fn origin(&self) -> &EntryOrigin {
        &self.origin
    }

    /// `hwe_regmatch`: every expression the entry has matches the path's string.
    pub fn matches(&self, vendor: &str, product: &str, revision: &str) -> bool {
        let compiled = self.matcher.get_or_init(|| {
            let re = |k| self.attrs.str(k).map(regex_cache::regex).transpose();
            Some([
                re("vendor").ok()?,
                re("product").ok()?,
                re("revision").ok()?,
            ])
        });
        let Some(res) = compiled else {
            return false;
        };
        res.iter()
            .zip([vendor, product, revision])
            .all(|(re, s)| re.as_ref().is_none_or(|r| r.is_match(s)))
    }
}

/// `overrides { protocol { type …; … } }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolEntry {
    /// One of [`PROTOCOLS`]; None until `type` is read (dropped if it never is).
    pub kind: Option<&'static str>,
    pub attrs: Attrs,
}

/// `multipaths { multipath { wwid …; alias …; … } }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipathEntry {
    pub attrs: Attrs,
}

impl MultipathEntry {
    pub fn wwid(&self) -> Option<&str> {
        self.attrs.str("wwid")
    }

    pub fn alias(&self) -> Option<&str> {
        self.attrs.str("alias")
    }
}

/// Something multipath-tools logs and carries on after (unknown keyword, extra data,
/// deprecated option, capped number, dropped entry). The message is multipath-tools'
/// own wording, with file and line where it has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

/// The message, behind its file's name unless it names the file already (most of
/// multipath-tools' wordings do: "/etc/multipath.conf line 2, invalid keyword ...") or
/// has none (a check across files).
impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display().to_string();
        if file.is_empty() || self.message.contains(&file) {
            f.write_str(&self.message)
        } else {
            write!(f, "{file}: {}", self.message)
        }
    }
}

/// A parsed configuration: the main file and its drop-ins over hydra's built-in tables.
#[derive(Debug, Clone)]
pub struct Config {
    pub defaults: Attrs,
    pub blacklist: Rules,
    pub exceptions: Rules,
    /// Built-in entries first, then the files' entries in reading order; exact
    /// duplicates (same vendor, product and revision strings) are merged into the
    /// later one.
    pub devices: Vec<DeviceEntry>,
    /// None when no `overrides` section was given.
    pub overrides: Option<Attrs>,
    /// One entry per protocol type, later sections merged over earlier ones.
    pub protocols: Vec<ProtocolEntry>,
    /// Sorted by WWID, one entry per WWID (as multipath-tools' `merge_mptable`).
    pub multipaths: Vec<MultipathEntry>,
}

/// A configuration and what was warned about while reading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Warning>,
}

impl Config {
    /// The configuration with no file at all: built-in defaults and tables.
    pub fn builtin() -> Config {
        parser::Parser::new().finish().config
    }

    /// Parses the main file's text (None: there is no main file) and the drop-ins' texts,
    /// in the order given (the caller sorts them, as [`Config::load`] does).
    pub fn parse(main: Option<(&Path, &[u8])>, dropins: &[(&Path, &[u8])]) -> Result<Loaded> {
        let mut p = parser::Parser::new();
        if let Some((path, text)) = main {
            p.file(path, text, true)?;
        }
        for (path, text) in dropins {
            p.file(path, text, false)?;
        }
        Ok(p.finish())
    }

    /// Reads `main` (a missing file is no error, as with multipath-tools) and every
    /// `*.conf` in `config_dir` in byte order of their names (a missing directory is no
    /// error either).
    pub fn load(main: &Path, config_dir: &Path) -> Result<Loaded> {
        let main_text = match std::fs::read(main) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(main, "cannot read the configuration file", e)),
        };
        let mut names = Vec::new();
        match std::fs::read_dir(config_dir) {
            Ok(rd) => {
                for entry in rd {
                    let entry =
                        entry.map_err(|e| Error::io(config_dir, "cannot read the directory", e))?;
                    let name = entry.file_name();
                    let is_conf =
                        name.to_str().and_then(|n| n.rfind('.').map(|i| &n[i..])) == Some(".conf");
                    if is_conf && entry.path().is_file() {
                        names.push(entry.path());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(config_dir, "cannot read the directory", e)),
        }
        names.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        let mut texts = Vec::new();
        for path in &names {
            let t = std::fs::read(path).map_err(|e| Error::io(path, "cannot read the file", e))?;
            texts.push(t);
        }
        let dropins: Vec<(&Path, &[u8])> = names
            .iter()
            .map(PathBuf::as_path)
            .zip(texts.iter().map(Vec::as_slice))
            .collect();
        Config::parse(main_text.as_deref().map(|t| (main, t)), &dropins)
    }

    /// The `multipaths` entry of a WWID (exact match).
    pub fn multipath(&self, wwid: &str) -> Option<&MultipathEntry> {
        self.multipaths.iter().find(|m| m.wwid() == Some(wwid))
    }

    /// The WWID a `multipaths` entry gives this alias, if any (for the bindings check).
    pub fn wwid_of_alias(&self, alias: &str) -> Option<&str> {
        self.multipaths
            .iter()
            .find(|m| m.alias() == Some(alias))
            .and_then(MultipathEntry::wwid)
    }

    /// The blacklist verdict for a path.
    pub fn filter(&self, path: &PathFacts<'_>) -> Verdict {
        blacklist::filter(&self.blacklist, &self.exceptions, path)
    }
}
