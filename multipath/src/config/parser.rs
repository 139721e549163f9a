//! Sections and files, as multipath-tools' `process_stream` and `_init_config` walk them
//! (`libmpathutil/parser.c`, `libmultipath/config.c`, 0.9.4):
//!
//! - a keyword that owns a block (`devices`, `device`, …) reads the following lines as
//!   its block until a lone `}`; an unknown keyword is warned about and skipped, so an
//!   unknown `foo {` does not open a block (its `}` then closes the enclosing one, as in
//!   multipath-tools);
//! - a keyword given twice in one block is warned about ("duplicate keyword") and the
//!   later value wins; `device`, `multipath`, `protocol` and the blacklist rules repeat;
//! - after each file, its `device` entries without vendor or product are dropped and an
//!   entry with the same vendor/product/revision strings as an earlier one (built-in or
//!   from a file) is merged into the later one; at the end `multipaths` entries without
//!   WWID are dropped, duplicates merged and the table sorted by WWID, protocol entries
//!   merged by type, and the default blacklist rules appended.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::blacklist::{DeviceRule, Rule, RuleOrigin, Rules};
use super::keywords::{self, Kind};
use super::lexer::{self, Line};
use super::values::Value;
use super::{
    hwtable, Attrs, Config, DeviceEntry, EntryOrigin, Loaded, MultipathEntry, ProtocolEntry,
    Setting, Warning,
};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Defaults,
    Blacklist { except: bool },
    BlacklistDevice { except: bool },
    Devices,
    Device,
    Overrides,
    Protocol,
    Multipaths,
    Multipath,
}

impl Level {
    /// The keyword that opened this block, for "invalid keyword in the X section".
    fn name(self) -> Option<&'static str> {
        Some(match self {
            Level::Top => return None,
            Level::Defaults => "defaults",
            Level::Blacklist { except: false } => "blacklist",
            Level::Blacklist { except: true } => "blacklist_exceptions",
            Level::BlacklistDevice { .. } | Level::Device => "device",
            Level::Devices => "devices",
            Level::Overrides => "overrides",
            Level::Protocol => "protocol",
            Level::Multipaths => "multipaths",
            Level::Multipath => "multipath",
        })
    }

    /// The keywords of this block: (name, the block it opens, may repeat).
    fn lookup(self, kw: &str) -> Option<(&'static str, Option<Level>, bool)> {
        let table: &[&'static str] = match self {
            Level::Top => &[
                "defaults",
                "blacklist",
                "blacklist_exceptions",
                "devices",
                "overrides",
                "multipaths",
            ],
            Level::Defaults => keywords::DEFAULTS,
            Level::Blacklist { .. } => &["devnode", "wwid", "property", "protocol", "device"],
            Level::BlacklistDevice { .. } => &["vendor", "product"],
            Level::Devices => &["device"],
            Level::Device => keywords::DEVICE,
            Level::Overrides => {
                if kw == "protocol" {
                    return Some(("protocol", Some(Level::Protocol), true));
                }
                keywords::OVERRIDES
            }
            Level::Protocol => keywords::PROTOCOL,
            Level::Multipaths => &["multipath"],
            Level::Multipath => keywords::MULTIPATH,
        };
        let name = *table.iter().find(|k| **k == kw)?;
        let sub = match (self, name) {
            (Level::Top, "defaults") => Some(Level::Defaults),
            (Level::Top, "blacklist") => Some(Level::Blacklist { except: false }),
            (Level::Top, "blacklist_exceptions") => Some(Level::Blacklist { except: true }),
            (Level::Top, "devices") => Some(Level::Devices),
            (Level::Top, "overrides") => Some(Level::Overrides),
            (Level::Top, "multipaths") => Some(Level::Multipaths),
            (Level::Blacklist { except }, "device") => Some(Level::BlacklistDevice { except }),
            (Level::Devices, "device") => Some(Level::Device),
            (Level::Multipaths, "multipath") => Some(Level::Multipath),
            _ => None,
        };
        let repeats = matches!(
            (self, name),
            (Level::Blacklist { .. }, _) | (Level::Devices, _) | (Level::Multipaths, _)
        );
        Some((name, sub, repeats))
    }
}

/// multipath-tools' `is_sublevel_keyword`: these say "missing '{'" rather than "missing
/// value" (overrides and protocol are not in its list).
fn is_sublevel_keyword(kw: &str) -> bool {
    matches!(
        kw,
        "defaults"
            | "blacklist"
            | "blacklist_exceptions"
            | "devices"
            | "device"
            | "multipaths"
            | "multipath"
    )
}

struct File<'a> {
    path: Arc<PathBuf>,
    lines: Vec<&'a [u8]>,
    next: usize,
}

impl File<'_> {
    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

pub(crate) struct Parser {
    cfg: Config,
    warnings: Vec<Warning>,
}

impl Parser {
    pub(crate) fn new() -> Parser {
        Parser {
            cfg: Config {
                defaults: Attrs::default(),
                blacklist: Rules::default(),
                exceptions: Rules::default(),
                devices: hwtable::builtin_devices(),
                overrides: None,
                protocols: Vec::new(),
                multipaths: Vec::new(),
            },
            warnings: Vec::new(),
        }
    }

    fn warn(&mut self, file: &File<'_>, line: Option<usize>, message: String) {
        self.warnings.push(Warning {
            file: file.path.to_path_buf(),
            line,
            message,
        });
    }

    /// Reads one file; `main` is the main multipath.conf (it names itself in the
    /// warnings with its full path, drop-ins by their file name, as multipath-tools).
    pub(crate) fn file(&mut self, path: &Path, text: &[u8], main: bool) -> Result<()> {
        let mut f = File {
            path: Arc::new(path.to_path_buf()),
            lines: text.split(|&b| b == b'\n').collect(),
            next: 0,
        };
        // A trailing newline does not make one more line.
        if text.ends_with(b"\n") {
            f.lines.pop();
        }
        let before = self.cfg.devices.len();
        let protocols_before = self.cfg.protocols.len();
        self.stream(&mut f, Level::Top, 0)?;
        let desc = if main {
            f.name()
        } else {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| f.name())
        };
        self.factorize_devices(before, &f, &desc);
        // validate_pctable: a protocol section without type is dropped.
        let mut i = protocols_before;
        while i < self.cfg.protocols.len() {
            if self.cfg.protocols[i].kind.is_none() {
                self.cfg.protocols.remove(i);
                self.warn(&f, None, format!("protocol section in {desc} missing type"));
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    fn stream(&mut self, f: &mut File<'_>, level: Level, depth: usize) -> Result<()> {
        let mut seen: Vec<&'static str> = Vec::new();
        while f.next < f.lines.len() {
            let raw = f.lines[f.next];
            f.next += 1;
            let line_nr = f.next;
            let mut lex_warnings = Vec::new();
            let line = lexer::split(raw, |m| lex_warnings.push(m));
            for m in lex_warnings {
                let msg = format!("{m} on line {line_nr} of {}", f.name());
                self.warn(f, Some(line_nr), msg);
            }
            let (keyword, value, opens) = match line {
                Line::Empty | Line::Skip => continue,
                Line::Close => {
                    if depth > 0 {
                        return Ok(());
                    }
                    let msg = format!("unmatched '}}' at line {line_nr} of {}", f.name());
                    self.warn(f, Some(line_nr), msg);
                    let msg = format!("{} line {line_nr}, invalid keyword: }}", f.name());
                    self.warn(f, Some(line_nr), msg);
                    continue;
                }
                Line::Item {
                    keyword,
                    value,
                    opens,
                } => (keyword, value, opens),
            };
            if !opens && is_sublevel_keyword(&keyword) {
                let msg = match &value {
                    None => format!("missing '{{' on line {line_nr} of {}", f.name()),
                    Some(v) => format!(
                        "expecting '{{' on line {line_nr} of {}. found '{v}'",
                        f.name()
                    ),
                };
                self.warn(f, Some(line_nr), msg);
            }
            let Some((name, sub, repeats)) = level.lookup(&keyword) else {
                let msg = match level.name() {
                    Some(section) => format!(
                        "{} line {line_nr}, invalid keyword in the {section} section: {keyword}",
                        f.name()
                    ),
                    None => format!("{} line {line_nr}, invalid keyword: {keyword}", f.name()),
                };
                self.warn(f, Some(line_nr), msg);
                continue;
            };
            if !opens && value.is_none() && !is_sublevel_keyword(name) {
                return Err(Error::MissingValue {
                    file: f.path.to_path_buf(),
                    line: line_nr,
                    keyword: name.to_string(),
                });
            }
            if !repeats {
                if seen.contains(&name) {
                    let msg = format!("{} line {line_nr}, duplicate keyword: {name}", f.name());
                    self.warn(f, Some(line_nr), msg);
                } else {
                    seen.push(name);
                }
            }
            match sub {
                Some(sub) => {
                    self.open(sub, f);
                    self.stream(f, sub, depth + 1)?;
                }
                None => {
                    let value = value.unwrap_or_default();
                    self.attribute(level, name, &value, f, line_nr)?;
                }
            }
        }
        if depth == 1 {
            let msg = format!("missing '}}' at end of {}", f.name());
            self.warn(f, None, msg);
        }
        Ok(())
    }

    /// A block starts: make the entry its attributes go to.
    fn open(&mut self, sub: Level, f: &File<'_>) {
        match sub {
            Level::Device => self.cfg.devices.push(DeviceEntry::new(
                Attrs::default(),
                EntryOrigin::File(f.path.clone()),
            )),
            Level::Multipath => self.cfg.multipaths.push(MultipathEntry {
                attrs: Attrs::default(),
            }),
            Level::Overrides => {
                self.cfg.overrides.get_or_insert_with(Attrs::default);
            }
            Level::Protocol => self.cfg.protocols.push(ProtocolEntry {
                kind: None,
                attrs: Attrs::default(),
            }),
            Level::BlacklistDevice { except } => {
                let rules = if except {
                    &mut self.cfg.exceptions
                } else {
                    &mut self.cfg.blacklist
                };
                rules.device.push(DeviceRule {
                    vendor: None,
                    product: None,
                    origin: RuleOrigin::Config,
                });
            }
            _ => {}
        }
    }

    fn attribute(
        &mut self,
        level: Level,
        name: &'static str,
        value: &str,
        f: &File<'_>,
        line: usize,
    ) -> Result<()> {
        let bad = |reason: String| Error::Value {
            file: f.path.to_path_buf(),
            line,
            keyword: name.to_string(),
            value: value.to_string(),
            reason,
        };
        // Blacklist rules: regular expressions, kept in order.
        if let Level::Blacklist { except } | Level::BlacklistDevice { except } = level {
            let rule = Rule::new(value, RuleOrigin::Config).map_err(bad)?;
            let rules = if except {
                &mut self.cfg.exceptions
            } else {
                &mut self.cfg.blacklist
            };
            match (level, name) {
                (Level::BlacklistDevice { .. }, "vendor") => {
                    if let Some(d) = rules.device.last_mut() {
                        d.vendor = Some(rule);
                    }
                }
                (Level::BlacklistDevice { .. }, _) => {
                    if let Some(d) = rules.device.last_mut() {
                        d.product = Some(rule);
                    }
                }
                (_, "devnode") => rules.devnode.push(rule),
                (_, "wwid") => rules.wwid.push(rule),
                (_, "property") => rules.property.push(rule),
                _ => rules.protocol.push(rule),
            }
            return Ok(());
        }
        let kind = keywords::kind(name);
        // 0.9.4 accepts and ignores this one without a word (it prints "ignored").
        if name == "disable_changed_wwids" {
            return Ok(());
        }
        let parsed = keywords::parse(name, kind, value).map_err(bad)?;
        if let Some(w) = parsed.warning {
            let msg = if kind == Kind::Deprecated {
                format!("{} line {line}: {w}", f.name())
            } else {
                format!("{} line {line}, {w}", f.name())
            };
            self.warn(f, Some(line), msg);
        }
        if parsed.value == Value::Ignored {
            return Ok(());
        }
        if name == "features" && value.contains("queue_if_no_path") {
            let msg = format!("{} line {line}: option 'features \"1 queue_if_no_path\"' is deprecated, please use 'no_path_retry queue' instead", f.name());
            self.warn(f, Some(line), msg);
        }
        let key = if name == "checker" {
            "path_checker"
        } else {
            name
        };
        let setting = Setting {
            value: parsed.value,
            file: f.path.clone(),
            line,
        };
        match level {
            Level::Defaults => self.cfg.defaults.set(key, setting),
            Level::Device => {
                if let Some(d) = self.cfg.devices.last_mut() {
                    d.attrs.set(key, setting);
                }
            }
            Level::Overrides => {
                if let Some(o) = self.cfg.overrides.as_mut() {
                    o.set(key, setting);
                }
            }
            Level::Protocol => {
                if let Some(p) = self.cfg.protocols.last_mut() {
                    if key == "type" {
                        if let Value::Word(w) = setting.value {
                            p.kind = Some(w);
                        }
                    } else {
                        p.attrs.set(key, setting);
                    }
                }
            }
            Level::Multipath => {
                if let Some(m) = self.cfg.multipaths.last_mut() {
                    m.attrs.set(key, setting);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// multipath-tools' `factorize_hwtable` for the entries a file added (from index
    /// `n` on): drop those without vendor or product, merge each entry into a later one
    /// with the same strings (the later wins, the earlier fills its gaps).
    fn factorize_devices(&mut self, n: usize, f: &File<'_>, desc: &str) {
        let mut n = n;
        let mut i = 0;
        while i < self.cfg.devices.len() {
            let e = &self.cfg.devices[i];
            if i >= n && (e.attrs.str("vendor").is_none() || e.attrs.str("product").is_none()) {
                self.cfg.devices.remove(i);
                self.warn(
                    f,
                    None,
                    format!("device config in {desc} missing vendor or product parameter"),
                );
                continue;
            }
            let key = |e: &DeviceEntry| {
                (
                    e.attrs.str("vendor").map(str::to_string),
                    e.attrs.str("product").map(str::to_string),
                    e.attrs.str("revision").map(str::to_string),
                )
            };
            let k = key(&self.cfg.devices[i]);
            let from = n.max(i + 1);
            if let Some(j) =
                (from..self.cfg.devices.len()).find(|&j| key(&self.cfg.devices[j]) == k)
            {
                if i >= n {
                    let msg = format!(
                        "factorize_hwtable: duplicate device section for {}:{}:{} in {desc}",
                        k.0.as_deref().unwrap_or("(null)"),
                        k.1.as_deref().unwrap_or("(null)"),
                        k.2.as_deref().unwrap_or("(null)")
                    );
                    self.warn(f, None, msg);
                }
                let older = self.cfg.devices.remove(i);
                self.cfg.devices[j - 1].attrs.fill_from(&older.attrs);
                if i < n {
                    n -= 1;
                }
                continue;
            }
            i += 1;
        }
    }

    pub(crate) fn finish(mut self) -> Loaded {
        // merge_pctable: an earlier protocol entry of the same type merges into the later.
        let mut i = 0;
        while i < self.cfg.protocols.len() {
            let kind = self.cfg.protocols[i].kind;
            if let Some(j) =
                (i + 1..self.cfg.protocols.len()).find(|&j| self.cfg.protocols[j].kind == kind)
            {
                let older = self.cfg.protocols.remove(i);
                self.cfg.protocols[j - 1].attrs.fill_from(&older.attrs);
                continue;
            }
            i += 1;
        }
        // merge_mptable.
        let mut mps = std::mem::take(&mut self.cfg.multipaths);
        let before = mps.len();
        mps.retain(|m| m.wwid().is_some());
        for _ in mps.len()..before {
            self.warnings.push(Warning {
                file: PathBuf::new(),
                line: None,
                message: "multipaths config section missing wwid".into(),
            });
        }
        mps.sort_by(|a, b| a.wwid().cmp(&b.wwid()));
        let mut merged: Vec<MultipathEntry> = Vec::new();
        for m in mps {
            match merged.last_mut() {
                Some(last) if last.wwid() == m.wwid() => {
                    self.warnings.push(Warning {
                        file: PathBuf::new(),
                        line: None,
                        message: format!(
                            "merge_mptable: duplicate multipath config section for {}",
                            m.wwid().unwrap_or_default()
                        ),
                    });
                    let older = std::mem::replace(last, m);
                    last.attrs.fill_from(&older.attrs);
                }
                _ => merged.push(m),
            }
        }
        self.cfg.multipaths = merged;
        hwtable::add_default_blacklist(&mut self.cfg);
        Loaded {
            config: self.cfg,
            warnings: self.warnings,
        }
    }
}
