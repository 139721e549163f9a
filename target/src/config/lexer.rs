//! targets.conf lines, the way tgt-admin's reader (Perl Config::General, with the options
//! tgt-admin passes: `-UseApacheInclude -IncludeGlob -IncludeDirectories`) sees them:
//!
//! - `#` starts a comment anywhere on a line unless written `\#`;
//! - a line ending in `\` continues on the next one (leading blanks of the next line are
//!   dropped), after comments were removed;
//! - `include PATH` / `includeoptional PATH` (case-insensitive, optionally quoted) splices
//!   other files in place, wherever it appears (see [`super::include`]);
//! - `<name value>` opens a block, `</name>` closes it, `<name value/>` is an empty block;
//! - `key value`, `key = value` or `key=value` set an option; a value wholly in double
//!   quotes loses them; `\"`, `\#`, `\\`, `\$` unescape to the character.
//!
//! Here-documents (`key <<EOF`) and C comments are Config::General features tgt-admin
//! does not use; here-documents are refused with a clear error rather than misread.

use std::path::{Path, PathBuf};

use super::location::{cfg_err, Location};
use crate::Result;

/// One logical line of the (included-into-one) config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `<kind name>`; `name` is None for `<kind>`.
    Open { kind: String, name: Option<String> },
    /// `</kind>`
    Close { kind: String },
    /// `key value`; `value` is None when nothing follows the key.
    Opt { key: String, value: Option<String> },
}

#[derive(Debug, Clone)]
pub struct Line {
    pub loc: Location,
    pub item: Item,
}

/// Include nesting deeper than this is a loop or a mistake.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Read `text` (the contents of `file`) into logical lines, following includes.
pub fn lex(text: &str, file: &Path) -> Result<Vec<Line>> {
    let mut out = Vec::new();
    let mut stack = vec![file.to_path_buf()];
    lex_into(text, file, &mut stack, &mut out)?;
    Ok(out)
}

fn lex_into(text: &str, file: &Path, stack: &mut Vec<PathBuf>, out: &mut Vec<Line>) -> Result<()> {
    let mut long: Option<(usize, String)> = None;
    for (idx, raw) in text.lines().enumerate() {
        let n = idx + 1;
        let at = |line| Location {
            file: file.to_path_buf(),
            line,
        };
        let line = strip_comment(raw);
        if let Some(body) = continued(line) {
            match &mut long {
                Some((_, acc)) => acc.push_str(body.trim_start()),
                None => long = Some((n, body.trim_start().to_string())),
            }
            continue;
        }
        if let Some((start, mut acc)) = long.take() {
            acc.push_str(line.trim_start());
            push_content(&acc, at(start), out)?;
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        if let Some((optional, target)) = include_of(line) {
            if stack.len() > MAX_INCLUDE_DEPTH {
                return Err(cfg_err(
                    &at(n),
                    "include",
                    format!("includes nested more than {MAX_INCLUDE_DEPTH} deep (a loop?)"),
                ));
            }
            for path in super::include::expand(&target, file, optional)
                .map_err(|d| cfg_err(&at(n), "include", d))?
            {
                if stack.iter().any(|p| same_file(p, &path)) {
                    return Err(cfg_err(
                        &at(n),
                        "include",
                        format!("{} includes itself (loop)", path.display()),
                    ));
                }
                let text = read_config(&path).map_err(|e| {
                    cfg_err(
                        &at(n),
                        "include",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                stack.push(path.clone());
                lex_into(&text, &path, stack, out)?;
                stack.pop();
            }
            continue;
        }
        push_content(line, at(n), out)?;
    }
    if let Some((start, acc)) = long {
        // A continuation on the last line: Config::General drops it silently; say so.
        let loc = Location {
            file: file.to_path_buf(),
            line: start,
        };
        return Err(cfg_err(
            &loc,
            first_word(&acc),
            "line continues (ends in \\) past the end of the file".to_string(),
        ));
    }
    Ok(())
}

/// Larger than this is not a config file (and `include /dev/zero` must not hang).
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Read a config file: a regular file of sane size, UTF-8.
pub fn read_config(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut text = String::new();
    f.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    Ok(text)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or("")
}

/// Drop everything from the first `#` that is not written `\#`.
fn strip_comment(line: &str) -> &str {
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'#' && (i == 0 || b[i - 1] != b'\\') {
            return &line[..i];
        }
    }
    line
}

/// `Some(line without its final backslash)` when the line ends in a single `\`.
fn continued(line: &str) -> Option<&str> {
    let body = line.strip_suffix('\\')?;
    if body.ends_with('\\') {
        None
    } else {
        Some(body)
    }
}

/// `include PATH`, `include "PATH"`, `includeoptional PATH` (case-insensitive keyword).
fn include_of(line: &str) -> Option<(bool, String)> {
    let t = line.trim();
    let lower = t.to_ascii_lowercase();
    let (optional, rest) = if let Some(r) = lower.strip_prefix("includeoptional") {
        (true, &t[t.len() - r.len()..])
    } else if let Some(r) = lower.strip_prefix("include") {
        (false, &t[t.len() - r.len()..])
    } else {
        return None;
    };
    let quoted = rest.trim_start();
    for q in ['"', '\''] {
        if let Some(inner) = quoted.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            if !rest.is_empty() {
                return Some((optional, inner.to_string()));
            }
        }
    }
    if !rest.starts_with(char::is_whitespace) || rest.trim().is_empty() {
        return None;
    }
    Some((optional, rest.trim().to_string()))
}

/// One content line: a block start/end or an option.
fn push_content(line: &str, loc: Location, out: &mut Vec<Line>) -> Result<()> {
    let t = line.trim();
    if t.is_empty() {
        return Ok(());
    }
    if let Some(rest) = t.strip_prefix("</") {
        let kind = rest
            .strip_suffix('>')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| cfg_err(&loc, t, "a closing tag looks like </name>".to_string()))?;
        out.push(Line {
            loc,
            item: Item::Close {
                kind: kind.to_string(),
            },
        });
        return Ok(());
    }
    if let Some(rest) = t.strip_prefix('<') {
        let Some(inner) = rest.strip_suffix('>') else {
            return Err(cfg_err(
                &loc,
                first_word(t),
                "a block start must end with '>' on the same line".to_string(),
            ));
        };
        // `<kind name/>`: an empty block.
        let (inner, empty) = match inner.strip_suffix('/') {
            Some(i) if i.trim_end().contains(char::is_whitespace) || !i.contains('/') => (i, true),
            _ => (inner, false),
        };
        let (kind, name) = split_block(inner.trim())
            .ok_or_else(|| cfg_err(&loc, t, "empty block name".to_string()))?;
        out.push(Line {
            loc: loc.clone(),
            item: Item::Open {
                kind: kind.clone(),
                name,
            },
        });
        if empty {
            out.push(Line {
                loc,
                item: Item::Close { kind },
            });
        }
        return Ok(());
    }
    if heredoc(t) {
        return Err(cfg_err(
            &loc,
            first_word(t),
            "here-documents (<<EOF) are not supported in targets.conf".to_string(),
        ));
    }
    let (key, value) = split_option(t);
    out.push(Line {
        loc,
        item: Item::Opt {
            key: key.to_string(),
            value: value.map(unquote),
        },
    });
    Ok(())
}

/// `kind`, `kind name`, `"kind"`, `kind "name"`.
fn split_block(inner: &str) -> Option<(String, Option<String>)> {
    if inner.is_empty() {
        return None;
    }
    let (kind, rest) = if let Some(r) = inner.strip_prefix('"') {
        let end = r.find('"')?;
        (&r[..end], &r[end + 1..])
    } else {
        match inner.find(char::is_whitespace) {
            Some(i) => (&inner[..i], &inner[i..]),
            None => (inner, ""),
        }
    };
    let rest = rest.trim();
    let name = if rest.is_empty() {
        None
    } else if let Some(q) = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .filter(|q| !q.contains('"'))
    {
        Some(q.to_string())
    } else {
        Some(rest.to_string())
    };
    if kind.is_empty() {
        return None;
    }
    Some((kind.to_string(), name))
}

/// Config::General's `key <<EOF` / `key = <<EOF`.
fn heredoc(t: &str) -> bool {
    let (_, v) = split_option(t);
    v.is_some_and(|v| v.starts_with("<<") && !v[2..].trim().is_empty() && !v.ends_with('>'))
}

/// Split at the first blank run or `=` (Config::General: `split /\s*=\s*|\s+/, $_, 2`).
pub fn split_option(t: &str) -> (&str, Option<&str>) {
    let Some(i) = t.find(|c: char| c.is_whitespace() || c == '=') else {
        return (t, None);
    };
    let key = &t[..i];
    let rest = t[i..].trim_start();
    let rest = if let Some(r) = rest.strip_prefix('=') {
        r.trim_start()
    } else {
        rest
    };
    // Note: `key=` with nothing after leaves an empty value, like Config::General.
    (
        key,
        if rest.is_empty() && !t[i..].contains('=') {
            None
        } else {
            Some(rest)
        },
    )
}

/// A value wholly in double quotes loses them; backslash escapes of `$ \ " #` unescape.
fn unquote(v: &str) -> String {
    let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    };
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&n) = chars.peek() {
                if matches!(n, '$' | '\\' | '"' | '#') {
                    out.push(n);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Vec<(usize, Item)> {
        lex(text, Path::new("/nonexistent/t.conf"))
            .unwrap()
            .into_iter()
            .map(|l| (l.loc.line, l.item))
            .collect()
    }
    fn opt(k: &str, v: Option<&str>) -> Item {
        Item::Opt {
            key: k.into(),
            value: v.map(Into::into),
        }
    }

    #[test]
    fn options_comments_quotes_continuations() {
        let got = items(
            "# comment\n\
             \n\
             default-driver iscsi # trailing\n\
             key = value with spaces\n\
             k2=v2\n\
             vendor_id \"My Co\"\n\
             scsi_sn a\\#b\n\
             bare\n\
             long one \\\n   two \\\n three\n\
             <target iqn.x>\n\
             </target>\n\
             <backing-store \"/a b\">\n\
             <direct-store /x/>\n",
        );
        assert_eq!(
            got,
            vec![
                (3, opt("default-driver", Some("iscsi"))),
                (4, opt("key", Some("value with spaces"))),
                (5, opt("k2", Some("v2"))),
                (6, opt("vendor_id", Some("My Co"))),
                (7, opt("scsi_sn", Some("a#b"))),
                (8, opt("bare", None)),
                (9, opt("long", Some("one two three"))),
                (
                    12,
                    Item::Open {
                        kind: "target".into(),
                        name: Some("iqn.x".into())
                    }
                ),
                (
                    13,
                    Item::Close {
                        kind: "target".into()
                    }
                ),
                (
                    14,
                    Item::Open {
                        kind: "backing-store".into(),
                        name: Some("/a b".into())
                    }
                ),
                (
                    15,
                    Item::Open {
                        kind: "direct-store".into(),
                        name: Some("/x".into())
                    }
                ),
                (
                    15,
                    Item::Close {
                        kind: "direct-store".into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn split_like_config_general() {
        assert_eq!(split_option("a b c"), ("a", Some("b c")));
        assert_eq!(split_option("a = b"), ("a", Some("b")));
        assert_eq!(split_option("a=b=c"), ("a", Some("b=c")));
        assert_eq!(split_option("a b=c"), ("a", Some("b=c")));
        assert_eq!(split_option("a"), ("a", None));
        assert_eq!(split_option("a ="), ("a", Some("")));
    }

    #[test]
    fn heredoc_and_bad_lines_are_errors() {
        let e = lex("vendor_id <<EOF\nx\nEOF\n", Path::new("/t.conf"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/t.conf:1: vendor_id: here-documents (<<EOF) are not supported in targets.conf"
        );
        let e = lex("<target iqn.x\n", Path::new("/t.conf"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/t.conf:1: <target: a block start must end with '>' on the same line"
        );
        let e = lex("a \\\n", Path::new("/t.conf")).unwrap_err().to_string();
        assert_eq!(
            e,
            "/t.conf:1: a: line continues (ends in \\) past the end of the file"
        );
    }

    #[test]
    fn include_keyword() {
        assert_eq!(
            include_of("include /a/*.conf"),
            Some((false, "/a/*.conf".into()))
        );
        assert_eq!(
            include_of("  INCLUDE \"/a b.conf\""),
            Some((false, "/a b.conf".into()))
        );
        assert_eq!(include_of("includeoptional x"), Some((true, "x".into())));
        assert_eq!(include_of("included x"), None);
        assert_eq!(include_of("include"), None);
    }
}
