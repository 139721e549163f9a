//! `/etc/multipath/wwids`: the WWIDs that have been multipathed. With
//! `find_multipaths strict` (the default) only a WWID listed here gets a map; `multipath
//! -a`, `-w`, `-W` edit the file.
//!
//! Format (multipath-tools `libmultipath/wwids.c`, `wwids.h`, the same in 0.9.4 and
//! 0.14.3): a fixed header of comments, then one `/<wwid>/` per line. multipath-tools
//! reads a line that starts with `/` up to the next `/` and ignores every other line and
//! whatever follows the closing `/`; removing a WWID turns its leading `/` into `#`, so
//! it stays as a comment. hydra keeps every line it does not own as it was, and rewrites
//! the file whole and atomically instead of patching it in place.
//!
//! One difference on purpose: a line that starts with `/` but has no closing `/` is
//! reported with its line number and skipped; multipath-tools' byte reader would run on
//! into the next line and miss the WWID written there.

use std::path::Path;

use crate::config::Warning;
use crate::{statefile, Error, Result};

/// The header multipath-tools writes into a new or empty file.
pub const HEADER: &str = "# Multipath wwids, Version : 1.0\n\
# NOTE: This file is automatically maintained by multipath and multipathd.\n\
# You should not need to edit this file in normal circumstances.\n\
#\n\
# Valid WWIDs:\n";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// `/wwid/` and whatever followed the closing slash.
    Wwid { wwid: String, rest: String },
    /// A comment or anything else, kept as it was.
    Other(String),
}

/// The wwids file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wwids {
    lines: Vec<Line>,
    needs_rewrite: bool,
}

impl Default for Wwids {
    /// A new file: just the header.
    fn default() -> Wwids {
        Wwids {
            lines: HEADER.lines().map(|l| Line::Other(l.to_string())).collect(),
            needs_rewrite: true,
        }
    }
}

impl Wwids {
    /// Reads the text of a wwids file; malformed lines are reported and skipped (kept
    /// in the file as they are).
    pub fn parse(text: &[u8], file: &Path) -> (Wwids, Vec<Warning>) {
        if text.is_empty() {
            // multipath-tools writes the header into an empty file when it opens it.
            return (Wwids::default(), Vec::new());
        }
        let mut warnings = Vec::new();
        let body = text.strip_suffix(b"\n").unwrap_or(text);
        let lines = body
            .split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, raw)| {
                let s = String::from_utf8_lossy(raw).into_owned();
                let Some(after) = s.strip_prefix('/') else {
                    return Line::Other(s);
                };
                match after.find('/') {
                    Some(0) => {
                        warnings.push(Warning {
                            file: file.to_path_buf(),
                            line: Some(i + 1),
                            message: format!("empty wwid on line {} of {}", i + 1, file.display()),
                        });
                        Line::Other(s)
                    }
                    Some(end) => Line::Wwid {
                        wwid: after[..end].to_string(),
                        rest: after[end + 1..].to_string(),
                    },
                    None => {
                        warnings.push(Warning {
                            file: file.to_path_buf(),
                            line: Some(i + 1),
                            message: format!(
                                "invalid line {} in {}, missing closing '/'",
                                i + 1,
                                file.display()
                            ),
                        });
                        Line::Other(s)
                    }
                }
            })
            .collect();
        (
            Wwids {
                lines,
                needs_rewrite: false,
            },
            warnings,
        )
    }

    /// Reads `path`; a missing file is a new one (header only) that needs writing.
    pub fn load(path: &Path) -> Result<(Wwids, Vec<Warning>)> {
        match statefile::read(path)? {
            Some(text) => Ok(Wwids::parse(&text, path)),
            None => Ok((Wwids::default(), Vec::new())),
        }
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            match l {
                Line::Wwid { wwid, rest } => {
                    out.push('/');
                    out.push_str(wwid);
                    out.push('/');
                    out.push_str(rest);
                }
                Line::Other(s) => out.push_str(s),
            }
            out.push('\n');
        }
        out
    }

    /// Writes the file atomically (temporary file + rename).
    pub fn save(&mut self, path: &Path) -> Result<()> {
        statefile::save(path, &self.to_text(), &mut self.needs_rewrite)
    }

    /// True when the content differs from what was read.
    pub fn needs_rewrite(&self) -> bool {
        self.needs_rewrite
    }

    /// `check_wwids_file`: is the WWID listed?
    pub fn contains(&self, wwid: &str) -> bool {
        self.iter().any(|w| w == wwid)
    }

    /// The listed WWIDs in file order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            Line::Wwid { wwid, .. } => Some(wwid.as_str()),
            Line::Other(_) => None,
        })
    }

    fn check(wwid: &str) -> Result<()> {
        if wwid.is_empty() || wwid.contains(['/', '\n', '\r']) {
            return Err(Error::Unstorable {
                what: "WWID",
                value: wwid.to_string(),
                reason: "empty, or contains '/' or a line break",
            });
        }
        Ok(())
    }

    /// `remember_wwid` (`multipath -a`): appends the WWID unless it is listed; true if
    /// it was added.
    pub fn add(&mut self, wwid: &str) -> Result<bool> {
        Self::check(wwid)?;
        if self.contains(wwid) {
            return Ok(false);
        }
        self.lines.push(Line::Wwid {
            wwid: wwid.to_string(),
            rest: String::new(),
        });
        self.needs_rewrite = true;
        Ok(true)
    }

    /// `remove_wwid` (`multipath -w`): the line's leading `/` becomes `#`, as
    /// multipath-tools leaves it; true if the WWID was listed.
    pub fn remove(&mut self, wwid: &str) -> bool {
        let mut found = false;
        for l in &mut self.lines {
            if let Line::Wwid { wwid: w, rest } = l {
                if w == wwid {
                    *l = Line::Other(format!("#{w}/{rest}"));
                    found = true;
                }
            }
        }
        self.needs_rewrite |= found;
        found
    }

    /// `replace_wwids` (`multipath -W`): the header and exactly these WWIDs.
    pub fn replace<'a>(&mut self, wwids: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let mut new = Wwids::default();
        for w in wwids {
            new.add(w)?;
        }
        *self = new;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const F: &str = "/etc/multipath/wwids";

    #[test]
    fn new_file_has_multipath_tools_header() {
        let mut w = Wwids::default();
        assert!(w.add("360000000000000000e00000000010001").unwrap());
        assert!(!w.add("360000000000000000e00000000010001").unwrap());
        assert_eq!(
            w.to_text(),
            format!("{HEADER}/360000000000000000e00000000010001/\n")
        );
        assert!(w.needs_rewrite());
    }

    #[test]
    fn reads_a_file_as_multipath_tools_writes_it() {
        let text = format!("{HEADER}/3600507680c82004cf80000000000014c/\n/360000000000000000e00000000010001/\n#36001405dead/\n");
        let (w, warn) = Wwids::parse(text.as_bytes(), Path::new(F));
        assert!(warn.is_empty());
        assert!(!w.needs_rewrite());
        assert!(w.contains("360000000000000000e00000000010001"));
        // A removed WWID (its slash turned into '#') is not listed.
        assert!(!w.contains("36001405dead"));
        assert_eq!(w.iter().count(), 2);
        assert_eq!(w.to_text(), text);
    }

    #[test]
    fn remove_comments_the_line_out_like_multipath_tools() {
        let (mut w, _) = Wwids::parse(format!("{HEADER}/3a/\n/3b/\n").as_bytes(), Path::new(F));
        assert!(w.remove("3a"));
        assert!(!w.remove("3a"));
        assert_eq!(w.to_text(), format!("{HEADER}#3a/\n/3b/\n"));
        assert!(w.add("3a").unwrap());
        assert_eq!(w.to_text(), format!("{HEADER}#3a/\n/3b/\n/3a/\n"));
        w.replace(["3c", "3d"]).unwrap();
        assert_eq!(w.to_text(), format!("{HEADER}/3c/\n/3d/\n"));
    }

    #[test]
    fn malformed_lines_are_reported_and_kept() {
        let text = "/3a/ trailing words\n/3nocl\n//\n  /3indented/\nrandom\n/3b/";
        let (w, warn) = Wwids::parse(text.as_bytes(), Path::new(F));
        let msgs: Vec<_> = warn.iter().map(|w| (w.line, w.message.as_str())).collect();
        assert_eq!(
            msgs,
            vec![
                (
                    Some(2),
                    "invalid line 2 in /etc/multipath/wwids, missing closing '/'"
                ),
                (Some(3), "empty wwid on line 3 of /etc/multipath/wwids"),
            ]
        );
        // Only lines that start with '/' count (as multipath-tools' reader).
        assert_eq!(w.iter().collect::<Vec<_>>(), vec!["3a", "3b"]);
        // Everything is written back as it was (plus the final newline).
        assert_eq!(w.to_text(), format!("{text}\n"));
        assert!(Wwids::default().add("3/x").is_err());
        // An empty file gets the header.
        let (w, _) = Wwids::parse(b"", Path::new(F));
        assert_eq!(w.to_text(), HEADER);
    }

    #[test]
    fn save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multipath/wwids");
        let (mut w, warn) = Wwids::load(&path).unwrap();
        assert!(warn.is_empty() && w.needs_rewrite());
        w.add("3a").unwrap();
        w.save(&path).unwrap();
        let (again, _) = Wwids::load(&path).unwrap();
        assert!(again.contains("3a") && !again.needs_rewrite());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}/3a/\n")
        );
    }

    proptest! {
        #[test]
        fn round_trip(ops in proptest::collection::vec((any::<bool>(), "[0-9a-f]{1,8}"), 0..40)) {
            let mut w = Wwids::default();
            let mut model: Vec<String> = Vec::new();
            for (add, id) in ops {
                let wwid = format!("3{id}");
                if add {
                    w.add(&wwid).unwrap();
                    if !model.contains(&wwid) { model.push(wwid); }
                } else {
                    w.remove(&wwid);
                    model.retain(|m| *m != wwid);
                }
                let (again, warn) = Wwids::parse(w.to_text().as_bytes(), Path::new(F));
                prop_assert!(warn.is_empty());
                prop_assert_eq!(again.iter().collect::<Vec<_>>(), model.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }

        #[test]
        fn any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (w, _) = Wwids::parse(&bytes, Path::new(F));
            let (again, _) = Wwids::parse(w.to_text().as_bytes(), Path::new(F));
            prop_assert_eq!(again.iter().collect::<Vec<_>>(), w.iter().collect::<Vec<_>>());
        }
    }
}
