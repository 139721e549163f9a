//! `/etc/multipath/bindings`: the user-friendly name (`mpatha`, …) given to each WWID,
//! kept so that a map keeps its name across restarts and hosts that share the file.
//!
//! Format (multipath-tools `libmultipath/alias.c`, identical in 0.9.4 and 0.14.3): a
//! fixed header, then one `alias wwid` per line; `#` starts a comment anywhere.
//! Reading follows 0.14.3 (`_check_bindings_file`), which is stricter than 0.9.4 about
//! broken files but reads every file 0.9.4 wrote the same way:
//! - a line without WWID, or with a WWID longer than 127 bytes, is skipped; words after
//!   the WWID are ignored; each with a message naming the line;
//! - a second line for an alias already bound to another WWID is discarded (an alias
//!   must never name two disks), a repeated identical line is only noted;
//! - an alias that `multipaths { multipath { alias } }` gives another WWID is discarded;
//! - a missing or altered header, or a discarded line, asks for a rewrite.
//!
//! New names take the lowest free number: the suffix after `alias_prefix` counts in
//! bijective base 26 (a … z, aa … az, ba …; `format_devname`), a gap left by a removed
//! binding is reused first, and a name a live map already uses for another WWID is
//! skipped. The file is rewritten whole and atomically, sorted by alias (length, then
//! bytes) as 0.14.3 writes it; 0.9.4 appended instead, which only changes the order.

use std::path::Path;

use crate::config::{Config, Warning};
use crate::{statefile, Error, Result};

/// The header multipath-tools writes and checks.
pub const HEADER: &str = "# Multipath bindings, Version : 1.0\n\
# NOTE: this file is automatically maintained by the multipath program.\n\
# You should not need to edit this file in normal circumstances.\n\
#\n\
# Format:\n\
# alias wwid\n\
#\n";

/// multipath-tools' WWID_SIZE is 128 with the terminating NUL.
pub const MAX_WWID_LEN: usize = 127;

/// The suffix of id `id` (1 → "a", 26 → "z", 27 → "aa", 703 → "aaa").
pub fn format_devname(id: u32) -> String {
    let mut out = Vec::new();
    let mut n = id;
    while n >= 1 {
        n -= 1;
        out.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII letters")
}

/// The id of `alias` under `prefix` (the inverse of [`format_devname`]), or None when
/// the alias is not the prefix followed by 1 to 7 letters a–z, or overflows a C int
/// (`scan_devname`).
pub fn scan_devname(alias: &str, prefix: &str) -> Option<u32> {
    let suffix = alias.strip_prefix(prefix)?;
    if suffix.is_empty() || suffix.len() > 7 {
        return None;
    }
    let mut n: u64 = 0;
    for b in suffix.bytes() {
        if !b.is_ascii_lowercase() {
            return None;
        }
        n = n * 26 + u64::from(b - b'a') + 1;
    }
    u32::try_from(n).ok().filter(|&n| n <= i32::MAX as u32)
}

/// `alias_compar`: shorter aliases first, then byte order, so that for one prefix the
/// numeric order of ids is kept.
fn alias_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// One `alias wwid` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub alias: String,
    pub wwid: String,
}

/// The bindings file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bindings {
    /// Sorted by alias (`alias_order`), one entry per alias.
    list: Vec<Binding>,
    /// The file should be rewritten (bad header, discarded lines).
    needs_rewrite: bool,
}

impl Bindings {
    /// Reads the text of a bindings file. `config`, if given, supplies the
    /// `multipaths` aliases that bindings must not contradict. Problems are returned
    /// as warnings (they never stop the daemon: a broken line loses one name at most).
    pub fn parse(text: &[u8], file: &Path, config: Option<&Config>) -> (Bindings, Vec<Warning>) {
        let mut b = Bindings::default();
        let mut warnings = Vec::new();
        let mut warn = |line: Option<usize>, message: String| {
            warnings.push(Warning {
                file: file.to_path_buf(),
                line,
                message,
            })
        };
        if !text.starts_with(HEADER.as_bytes()) {
            warn(None, format!("invalid header in {}", file.display()));
            b.needs_rewrite = true;
        }
        for (i, raw) in text.split(|&c| c == b'\n').enumerate() {
            let line_nr = i + 1;
            let end = raw
                .iter()
                .position(|&c| c == b'#' || c == b'\r')
                .unwrap_or(raw.len());
            let line = String::from_utf8_lossy(&raw[..end]);
            let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
            let Some(alias) = words.next() else {
                continue;
            };
            let Some(wwid) = words.next() else {
                warn(
                    Some(line_nr),
                    format!("invalid line {line_nr} in bindings file, missing WWID"),
                );
                b.needs_rewrite = true;
                continue;
            };
            if wwid.len() > MAX_WWID_LEN {
                warn(
                    Some(line_nr),
                    format!("Ignoring too large wwid at {line_nr} in bindings file"),
                );
                b.needs_rewrite = true;
                continue;
            }
            if let Some(extra) = words.next() {
                warn(
                    Some(line_nr),
                    format!("invalid line {line_nr} in bindings file, extra args \"{extra}\""),
                );
            }
            if let Some(mp_wwid) = config.and_then(|c| c.wwid_of_alias(alias)) {
                if mp_wwid != wwid {
                    warn(Some(line_nr), format!("ERROR: alias \"{alias}\" for WWID {wwid} in bindings file on line {line_nr} conflicts with multipath.conf entry for {mp_wwid}"));
                    b.needs_rewrite = true;
                    continue;
                }
            }
            match b.position(alias) {
                Ok(i) if b.list[i].wwid == wwid => warn(
                    Some(line_nr),
                    format!("duplicate line for alias {alias} in bindings file on line {line_nr}"),
                ),
                Ok(_) => {
                    warn(Some(line_nr), format!("ERROR: multiple bindings for alias \"{alias}\" in bindings file on line {line_nr}, discarding binding to WWID {wwid}"));
                    b.needs_rewrite = true;
                }
                Err(i) => b.list.insert(
                    i,
                    Binding {
                        alias: alias.to_string(),
                        wwid: wwid.to_string(),
                    },
                ),
            }
        }
        (b, warnings)
    }

    /// Reads `path`; a missing file is an empty one that needs writing.
    pub fn load(path: &Path, config: Option<&Config>) -> Result<(Bindings, Vec<Warning>)> {
        match statefile::read(path)? {
            Some(text) => Ok(Bindings::parse(&text, path, config)),
            None => Ok((
                Bindings {
                    list: Vec::new(),
                    needs_rewrite: true,
                },
                Vec::new(),
            )),
        }
    }

    /// The file's text: header and sorted lines.
    pub fn to_text(&self) -> String {
        let mut out = String::from(HEADER);
        for b in &self.list {
            out.push_str(&b.alias);
            out.push(' ');
            out.push_str(&b.wwid);
            out.push('\n');
        }
        out
    }

    /// Writes the file atomically (temporary file + rename).
    pub fn save(&mut self, path: &Path) -> Result<()> {
        statefile::save(path, &self.to_text(), &mut self.needs_rewrite)
    }

    /// True when the content differs from what was read (a new binding, a removed one,
    /// or a file that needs repair).
    pub fn needs_rewrite(&self) -> bool {
        self.needs_rewrite
    }

    fn position(&self, alias: &str) -> std::result::Result<usize, usize> {
        self.list.binary_search_by(|b| alias_order(&b.alias, alias))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The alias bound to `wwid` (the first in alias order if a hand-edited file binds
    /// it twice, as 0.14.3 picks it).
    pub fn alias_of(&self, wwid: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|b| b.wwid == wwid)
            .map(|b| b.alias.as_str())
    }

    pub fn wwid_of(&self, alias: &str) -> Option<&str> {
        self.position(alias)
            .ok()
            .map(|i| self.list[i].wwid.as_str())
    }

    /// The lowest id under `prefix` that no binding uses and `in_use` does not claim
    /// (`get_free_id`); `in_use(alias)` says whether a live map with another WWID
    /// already has that name.
    pub fn free_id(&self, prefix: &str, in_use: impl Fn(&str) -> bool) -> Result<u32> {
        let mut used: Vec<u32> = self
            .list
            .iter()
            .filter_map(|b| scan_devname(&b.alias, prefix))
            .collect();
        used.sort_unstable();
        let mut next = used.iter().copied().peekable();
        let mut id: u32 = 1;
        loop {
            while next.peek().is_some_and(|&u| u < id) {
                next.next();
            }
            if next.peek() != Some(&id) && !in_use(&format!("{prefix}{}", format_devname(id))) {
                return Ok(id);
            }
            if id >= i32::MAX as u32 {
                return Err(Error::AliasesExhausted {
                    prefix: prefix.to_string(),
                });
            }
            id += 1;
        }
    }

    /// The user-friendly name of `wwid` (`get_user_friendly_alias` without an old
    /// alias): its binding if it has one — an error if a live map of another WWID holds
    /// that name — or a new binding with the lowest free id. A new binding marks the
    /// file for rewriting; the caller saves it.
    pub fn alias_for(
        &mut self,
        wwid: &str,
        prefix: &str,
        in_use: impl Fn(&str) -> bool,
    ) -> Result<String> {
        if let Some(alias) = self.alias_of(wwid) {
            if in_use(alias) {
                return Err(Error::AliasInUse {
                    alias: alias.to_string(),
                    wwid: wwid.to_string(),
                });
            }
            return Ok(alias.to_string());
        }
        self.check_storable(wwid, prefix)?;
        let id = self.free_id(prefix, in_use)?;
        let alias = format!("{prefix}{}", format_devname(id));
        self.add(&alias, wwid)?;
        Ok(alias)
    }

    fn check_storable(&self, wwid: &str, prefix: &str) -> Result<()> {
        let bad = |what, value: &str, reason| {
            Err(Error::Unstorable {
                what,
                value: value.to_string(),
                reason,
            })
        };
        if wwid.is_empty() || wwid.len() > MAX_WWID_LEN {
            return bad("WWID", wwid, "empty or longer than 127 bytes");
        }
        if wwid.contains([' ', '\t', '\n', '\r', '#']) {
            return bad("WWID", wwid, "contains a blank or '#'");
        }
        if prefix.contains([' ', '\t', '\n', '\r', '#', '/']) {
            return bad("alias prefix", prefix, "contains a blank, '#' or '/'");
        }
        Ok(())
    }

    /// Binds `alias` to `wwid` (a name chosen by hand or kept from a running map).
    pub fn add(&mut self, alias: &str, wwid: &str) -> Result<()> {
        self.check_storable(wwid, "")?;
        if alias.is_empty() || alias.contains([' ', '\t', '\n', '\r', '#', '/']) {
            return Err(Error::Unstorable {
                what: "alias",
                value: alias.to_string(),
                reason: "empty, or contains a blank, '#' or '/'",
            });
        }
        match self.position(alias) {
            Ok(i) if self.list[i].wwid == wwid => Ok(()),
            Ok(i) => Err(Error::AliasInUse {
                alias: alias.to_string(),
                wwid: self.list[i].wwid.clone(),
            }),
            Err(i) => {
                self.list.insert(
                    i,
                    Binding {
                        alias: alias.to_string(),
                        wwid: wwid.to_string(),
                    },
                );
                self.needs_rewrite = true;
                Ok(())
            }
        }
    }

    /// Removes the binding(s) of `wwid`; true if there was one.
    pub fn remove(&mut self, wwid: &str) -> bool {
        let before = self.list.len();
        self.list.retain(|b| b.wwid != wwid);
        let removed = self.list.len() != before;
        self.needs_rewrite |= removed;
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const F: &str = "/etc/multipath/bindings";

    fn parse(text: &str) -> (Bindings, Vec<String>) {
        let (b, w) = Bindings::parse(text.as_bytes(), Path::new(F), None);
        (b, w.into_iter().map(|w| w.message).collect())
    }

    #[test]
    fn devnames_count_as_multipath_tools() {
        let cases = [
            (1, "a"),
            (2, "b"),
            (26, "z"),
            (27, "aa"),
            (52, "az"),
            (53, "ba"),
            (702, "zz"),
            (703, "aaa"),
            (18278, "zzz"),
            (18279, "aaaa"),
        ];
        for (id, s) in cases {
            assert_eq!(format_devname(id), s);
            assert_eq!(scan_devname(&format!("mpath{s}"), "mpath"), Some(id));
        }
        assert_eq!(format_devname(0), "");
        // Not ours: other prefix, nothing after the prefix, capitals, digits, too long.
        for a in [
            "disk1",
            "mpath",
            "mpathA",
            "mpath1",
            "mpathaaaaaaaa",
            "mpatha b",
        ] {
            assert_eq!(scan_devname(a, "mpath"), None, "{a}");
        }
        // 7 letters fit unless they pass INT_MAX ("fxshrxw" is 2^31-1).
        assert_eq!(scan_devname("mpathfxshrxw", "mpath"), Some(i32::MAX as u32));
        assert_eq!(scan_devname("mpathfxshrxx", "mpath"), None);
        assert_eq!(scan_devname("mpathzzzzzzz", "mpath"), None);
    }

    #[test]
    fn first_wwid_gets_mpatha_and_the_file_has_the_header() {
        let mut b = Bindings::default();
        let a = b
            .alias_for("360000000000000000e00000000010001", "mpath", |_| false)
            .unwrap();
        assert_eq!(a, "mpatha");
        assert_eq!(
            b.to_text(),
            format!("{HEADER}mpatha 360000000000000000e00000000010001\n")
        );
        assert!(b.needs_rewrite());
        // Asked again: the same name, nothing new.
        assert_eq!(
            b.alias_for("360000000000000000e00000000010001", "mpath", |_| false)
                .unwrap(),
            "mpatha"
        );
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn z_then_aa_and_gaps_are_reused() {
        let mut b = Bindings::default();
        for i in 0..27 {
            b.alias_for(&format!("3{i:04}"), "mpath", |_| false)
                .unwrap();
        }
        assert_eq!(b.alias_of("30025"), Some("mpathz"));
        assert_eq!(b.alias_of("30026"), Some("mpathaa"));
        // Remove mpathc: the next WWID gets mpathc, then mpathab.
        assert!(b.remove("30002"));
        assert_eq!(b.alias_for("3new1", "mpath", |_| false).unwrap(), "mpathc");
        assert_eq!(b.alias_for("3new2", "mpath", |_| false).unwrap(), "mpathab");
        // A name held by a live map of another WWID is skipped.
        b.remove("30000");
        assert_eq!(
            b.alias_for("3new3", "mpath", |a| a == "mpatha").unwrap(),
            "mpathac"
        );
        // Other prefixes and hand-made names do not take ids.
        let (mut b, _) = parse(&format!("{HEADER}rootdisk 3aa\ndiskb 3bb\nmpathb 3cc\n"));
        assert_eq!(b.alias_for("3dd", "mpath", |_| false).unwrap(), "mpatha");
        assert_eq!(b.alias_for("3ee", "mpath", |_| false).unwrap(), "mpathc");
        assert_eq!(b.alias_for("3ff", "disk", |_| false).unwrap(), "diska");
    }

    #[test]
    fn unsorted_file_still_takes_the_lowest_free_id() {
        // 0.9.4 appends in allocation order; a hand-edited file may be in any order.
        let (mut b, w) = parse(&format!("{HEADER}mpathd 3d\nmpathb 3b\nmpatha 3a\n"));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(b.alias_for("3c", "mpath", |_| false).unwrap(), "mpathc");
        assert_eq!(b.alias_for("3e", "mpath", |_| false).unwrap(), "mpathe");
    }

    #[test]
    fn existing_file_keeps_its_names_and_round_trips() {
        let text = format!(
            "{HEADER}mpatha 3600507680c82004cf80000000000014c\nmpathb 360000000000000000e00000000010001\nrootdisk 3600507680c8200000000000000000001\n"
        );
        let (b, w) = parse(&text);
        assert!(w.is_empty());
        assert!(!b.needs_rewrite());
        assert_eq!(
            b.alias_of("360000000000000000e00000000010001"),
            Some("mpathb")
        );
        assert_eq!(
            b.wwid_of("rootdisk"),
            Some("3600507680c8200000000000000000001")
        );
        // Sorted as 0.14.3 writes it: by length, then bytes.
        assert_eq!(b.to_text(), text);
        let (again, _) = parse(&b.to_text());
        assert_eq!(again, b);
    }

    #[test]
    fn malformed_lines_are_reported_and_skipped() {
        let long = "3".repeat(128);
        let text = format!(
            "{HEADER}mpatha 3a\n\nmpathb\n  # only a comment\nmpathc 3c extra\nmpathd {long}\nmpatha 3other\nmpatha 3a\nmpathe 3e # comment\r\n"
        );
        let (b, w) = parse(&text);
        assert_eq!(
            w,
            vec![
                "invalid line 10 in bindings file, missing WWID",
                "invalid line 12 in bindings file, extra args \"extra\"",
                "Ignoring too large wwid at 13 in bindings file",
                "ERROR: multiple bindings for alias \"mpatha\" in bindings file on line 14, discarding binding to WWID 3other",
                "duplicate line for alias mpatha in bindings file on line 15",
            ]
        );
        let pairs: Vec<_> = b
            .iter()
            .map(|b| (b.alias.as_str(), b.wwid.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![("mpatha", "3a"), ("mpathc", "3c"), ("mpathe", "3e")]
        );
        assert!(b.needs_rewrite());
        // A file without the header is read, and wants a rewrite.
        let (b, w) = parse("mpatha 3a\n");
        assert_eq!(w, vec!["invalid header in /etc/multipath/bindings"]);
        assert_eq!(b.alias_of("3a"), Some("mpatha"));
        assert!(b.needs_rewrite());
    }

    #[test]
    fn multipaths_aliases_win_over_bindings() {
        let cfg = Config::parse(
            Some((
                Path::new("/etc/multipath.conf"),
                b"multipaths {\n multipath {\n  wwid 3web\n  alias mpatha\n }\n}\n",
            )),
            &[],
        )
        .unwrap()
        .config;
        let (b, w) = Bindings::parse(
            format!("{HEADER}mpatha 3other\nmpathb 3web\n").as_bytes(),
            Path::new(F),
            Some(&cfg),
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].message, "ERROR: alias \"mpatha\" for WWID 3other in bindings file on line 8 conflicts with multipath.conf entry for 3web");
        assert_eq!(w[0].line, Some(8));
        assert_eq!(b.alias_of("3other"), None);
        assert!(b.needs_rewrite());
    }

    #[test]
    fn live_alias_of_another_map_is_an_error() {
        let (mut b, _) = parse(&format!("{HEADER}mpatha 3a\n"));
        let e = b.alias_for("3a", "mpath", |a| a == "mpatha").unwrap_err();
        assert_eq!(e.to_string(), "3a: alias 'mpatha' already taken");
        assert!(b.add("mpatha", "3b").is_err());
        assert!(b.alias_for("3 b", "mpath", |_| false).is_err());
    }

    #[test]
    fn save_is_atomic_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/multipath/bindings");
        let (mut b, w) = Bindings::load(&path, None).unwrap();
        assert!(w.is_empty() && b.is_empty() && b.needs_rewrite());
        b.alias_for("3a", "mpath", |_| false).unwrap();
        b.save(&path).unwrap();
        assert!(!b.needs_rewrite());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let parent = std::fs::metadata(path.parent().unwrap()).unwrap();
        assert_eq!(parent.permissions().mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}mpatha 3a\n")
        );
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["bindings"]);
        let (again, w) = Bindings::load(&path, None).unwrap();
        assert!(w.is_empty());
        assert_eq!(again.alias_of("3a"), Some("mpatha"));
    }

    proptest! {
        #[test]
        fn format_and_scan_are_inverse(id in 1u32..=i32::MAX as u32) {
            let s = format_devname(id);
            prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase()));
            prop_assert_eq!(scan_devname(&format!("p{s}"), "p"), Some(id));
        }

        /// Allocation always gives the lowest id not taken, whatever was removed.
        #[test]
        fn lowest_free_id(ops in proptest::collection::vec((any::<bool>(), 0u8..40), 1..80)) {
            let mut b = Bindings::default();
            for (add, w) in ops {
                let wwid = format!("3{w:02}");
                if add {
                    let used: Vec<u32> = b.iter().filter_map(|x| scan_devname(&x.alias, "mpath")).collect();
                    let had = b.alias_of(&wwid).map(str::to_string);
                    let a = b.alias_for(&wwid, "mpath", |_| false).unwrap();
                    match had {
                        Some(h) => prop_assert_eq!(a, h),
                        None => {
                            let lowest = (1..).find(|i| !used.contains(i)).unwrap();
                            prop_assert_eq!(scan_devname(&a, "mpath"), Some(lowest));
                        }
                    }
                } else {
                    b.remove(&wwid);
                }
                let (again, w) = Bindings::parse(b.to_text().as_bytes(), Path::new(F), None);
                prop_assert!(w.is_empty());
                prop_assert_eq!(&again.list, &b.list);
            }
        }
    }
}
