//! The first pass over the lexed lines: blocks and options, before meaning. Nesting
//! errors (a block inside a store, a close that closes nothing) are found here.

use super::lexer::{Item, Line};
use super::location::{cfg_err, Location};
use crate::Result;

#[derive(Debug, Clone)]
pub(super) struct RawOpt {
    pub key: String,
    pub value: String,
    pub loc: Location,
}

#[derive(Debug)]
pub(super) struct RawStore {
    pub path: String,
    pub direct: bool,
    pub opts: Vec<RawOpt>,
    pub loc: Location,
}

#[derive(Debug)]
pub(super) struct RawTarget {
    pub iqn: String,
    pub loc: Location,
    pub opts: Vec<RawOpt>,
    pub stores: Vec<RawStore>,
}

/// The whole file: global options and target blocks.
#[derive(Debug, Default)]
pub(super) struct Raw {
    pub opts: Vec<RawOpt>,
    pub targets: Vec<RawTarget>,
}

/// `backing-store` or `direct-store` (whether it is direct), else None.
pub(super) fn store_kind(kind: &str) -> Option<bool> {
    match kind {
        "backing-store" => Some(false),
        "direct-store" => Some(true),
        _ => None,
    }
}

pub(super) fn kind_of(s: &RawStore) -> &'static str {
    if s.direct {
        "direct-store"
    } else {
        "backing-store"
    }
}

/// Blocks and options of `lines`, nesting checked.
pub(super) fn structure(lines: Vec<Line>) -> Result<Raw> {
    let mut n = Nesting::default();
    for Line { loc, item } in lines {
        match item {
            Item::Open { kind, name } => n.open(kind, name, loc)?,
            Item::Close { kind } => n.close(&kind, loc)?,
            Item::Opt { key, value } => n.opt(key, value, loc)?,
        }
    }
    n.finish()
}

/// Where the walk is: the target and the store container open, if any.
#[derive(Default)]
struct Nesting {
    raw: Raw,
    target: Option<RawTarget>,
    store: Option<RawStore>,
}

impl Nesting {
    /// `<kind name>`.
    fn open(&mut self, kind: String, name: Option<String>, loc: Location) -> Result<()> {
        let tag = format!("<{kind}>");
        if let Some(s) = &self.store {
            return Err(cfg_err(
                &loc,
                &tag,
                format!(
                    "blocks cannot nest inside <{}> (opened at {}): is a </{}> missing?",
                    kind_of(s),
                    s.loc,
                    kind_of(s)
                ),
            ));
        }
        match (&self.target, kind.as_str(), store_kind(&kind)) {
            (None, "target", _) => {
                let iqn = name.ok_or_else(|| {
                    cfg_err(
                        &loc,
                        &tag,
                        "needs the target's name: <target iqn.yyyy-mm.domain:name>".into(),
                    )
                })?;
                self.target = Some(RawTarget {
                    iqn,
                    loc,
                    opts: Vec::new(),
                    stores: Vec::new(),
                });
                Ok(())
            }
            (Some(t), "target", _) => Err(cfg_err(
                &loc,
                &tag,
                format!(
                    "<target> inside <target {}> (opened at {}): is a </target> missing?",
                    t.iqn, t.loc
                ),
            )),
            (Some(_), _, Some(direct)) => {
                let path = name.ok_or_else(|| {
                    cfg_err(
                        &loc,
                        &tag,
                        "needs a path: <backing-store /path/to/file>".into(),
                    )
                })?;
                self.store = Some(RawStore {
                    path,
                    direct,
                    opts: Vec::new(),
                    loc,
                });
                Ok(())
            }
            (None, _, Some(_)) => Err(cfg_err(
                &loc,
                &tag,
                "must be inside a <target> block".into(),
            )),
            (_, _, None) => Err(cfg_err(&loc, &tag, unknown_block(&kind))),
        }
    }

    /// `</kind>`: closes the innermost open block, which must be a `kind`.
    fn close(&mut self, kind: &str, loc: Location) -> Result<()> {
        let tag = format!("</{kind}>");
        if let Some(s) = self.store.take() {
            if kind != kind_of(&s) {
                return Err(cfg_err(
                    &loc,
                    &tag,
                    format!(
                        "does not close <{} {}> opened at {}",
                        kind_of(&s),
                        s.path,
                        s.loc
                    ),
                ));
            }
            self.target
                .as_mut()
                .expect("a store is inside a target")
                .stores
                .push(s);
        } else if let Some(t) = self.target.take() {
            if kind != "target" {
                return Err(cfg_err(
                    &loc,
                    &tag,
                    format!("does not close <target {}> opened at {}", t.iqn, t.loc),
                ));
            }
            self.raw.targets.push(t);
        } else {
            return Err(cfg_err(&loc, &tag, format!("no <{kind}> block is open")));
        }
        Ok(())
    }

    /// `key value`: a store line (`backing-store PATH`) or an option of the innermost
    /// open block.
    fn opt(&mut self, key: String, value: Option<String>, loc: Location) -> Result<()> {
        let value = match value {
            Some(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => return Err(cfg_err(&loc, &key, "needs a value".into())),
        };
        if let Some(direct) = store_kind(&key) {
            return match (&mut self.target, &self.store) {
                (Some(_), Some(s)) => Err(cfg_err(
                    &loc,
                    &key,
                    format!(
                        "cannot be inside <{} {}> (opened at {})",
                        kind_of(s),
                        s.path,
                        s.loc
                    ),
                )),
                (Some(t), None) => {
                    t.stores.push(RawStore {
                        path: value,
                        direct,
                        opts: Vec::new(),
                        loc,
                    });
                    Ok(())
                }
                (None, _) => Err(cfg_err(
                    &loc,
                    &key,
                    "must be inside a <target> block".into(),
                )),
            };
        }
        let opt = RawOpt { key, value, loc };
        match (&mut self.target, &mut self.store) {
            (_, Some(s)) => s.opts.push(opt),
            (Some(t), None) => t.opts.push(opt),
            (None, None) => self.raw.opts.push(opt),
        }
        Ok(())
    }

    /// End of file: nothing may be left open.
    fn finish(self) -> Result<Raw> {
        if let Some(s) = self.store {
            return Err(cfg_err(
                &s.loc,
                &format!("<{}>", kind_of(&s)),
                format!(
                    "<{} {}> is not closed by </{}>",
                    kind_of(&s),
                    s.path,
                    kind_of(&s)
                ),
            ));
        }
        if let Some(t) = self.target {
            return Err(cfg_err(
                &t.loc,
                "<target>",
                format!("<target {}> is not closed by </target>", t.iqn),
            ));
        }
        Ok(self.raw)
    }
}

fn unknown_block(kind: &str) -> String {
    let hint = if ["target", "backing-store", "direct-store"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(kind))
    {
        " (block names are exact: target, backing-store, direct-store)"
    } else {
        ""
    };
    format!("unknown block{hint}")
}
