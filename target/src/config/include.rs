//! `include` expansion. tgt-admin's reader (Config::General with `-IncludeGlob
//! -IncludeDirectories`) accepts a file, a directory (its regular files in byte order) or
//! a glob (`*`, `?`, `[...]`, `{a,b}`, expanded by `bsd_glob`, sorted, regular files only;
//! no match is not an error). hydra does the same, with two differences:
//! - a relative path is taken relative to the directory of the file that includes it
//!   (tgt-admin uses its current directory, `/` under systemd);
//! - a directory include skips dot files (editor swap files), as a glob `*` does.

use std::path::{Component, Path, PathBuf};

/// The files `pattern` (written in `from`) names, in include order.
pub fn expand(pattern: &str, from: &Path, optional: bool) -> Result<Vec<PathBuf>, String> {
    let base = from.parent().unwrap_or(Path::new("/"));
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    if !has_magic(pattern) {
        return match std::fs::metadata(&full) {
            Ok(m) if m.is_dir() => dir_files(&full),
            Ok(_) => Ok(vec![full]),
            Err(_) if optional => Ok(Vec::new()),
            Err(e) => Err(format!("{}: {e}", full.display())),
        };
    }
    let mut out = Vec::new();
    for alt in expand_braces(&full.to_string_lossy())? {
        out.extend(glob(Path::new(&alt)));
    }
    out.sort();
    out.dedup();
    Ok(out.into_iter().filter(|p| p.is_file()).collect())
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

fn dir_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// `a{b,c}d` -> `abd`, `acd` (nested braces allowed).
fn expand_braces(s: &str) -> Result<Vec<String>, String> {
    let Some(open) = s.find('{') else {
        return Ok(vec![s.to_string()]);
    };
    let mut depth = 0;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, c) in s[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(open + i),
            _ => {}
        }
    }
    let close = close.ok_or_else(|| format!("unbalanced '{{' in {s}"))?;
    let mut parts = Vec::new();
    let mut start = open + 1;
    for c in commas.into_iter().chain(std::iter::once(close)) {
        parts.push(&s[start..c]);
        start = c + 1;
    }
    let mut out = Vec::new();
    for p in parts {
        out.extend(expand_braces(&format!(
            "{}{}{}",
            &s[..open],
            p,
            &s[close + 1..]
        ))?);
    }
    Ok(out)
}

/// Expand `*`, `?` and `[...]` in every component of a path.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![if pattern.is_absolute() {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    }];
    for comp in pattern.components() {
        let part = match comp {
            Component::RootDir | Component::Prefix(_) => continue,
            Component::CurDir => continue,
            Component::ParentDir => "..".to_string(),
            Component::Normal(s) => s.to_string_lossy().into_owned(),
        };
        let mut next = Vec::new();
        for dir in &found {
            if !has_magic(&part) {
                let p = dir.join(&part);
                if p.exists() {
                    next.push(p);
                }
                continue;
            }
            let here = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(rd) = std::fs::read_dir(here) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names {
                // A leading dot must be matched explicitly, as in the shell.
                let hidden = n.starts_with('.') && !part.starts_with('.');
                if !hidden && matches(part.as_bytes(), n.as_bytes()) {
                    next.push(dir.join(n));
                }
            }
        }
        found = next;
    }
    found
}

/// Shell wildcard match of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`/`[^x]`.
pub fn matches(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, len)) = class(&pat[p..], name[n]) {
                        if ok {
                            p += len;
                            n += 1;
                            continue;
                        }
                    } else if name[n] == b'[' {
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pat.len() && pat[p + 1] == name[n] => {
                    p += 2;
                    n += 1;
                    continue;
                }
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// A `[...]` class at the start of `pat`: (does `c` match, bytes used), or None when
/// the bracket is not closed (then it is a literal `[`).
fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(1), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < pat.len() {
        if pat[i] == b']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
            if pat[i] <= c && c <= pat[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if pat[i] == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches(b"*.conf", b"a.conf"));
        assert!(!matches(b"*.conf", b"a.conf.bak"));
        assert!(matches(b"a?c", b"abc") && !matches(b"a?c", b"ac"));
        assert!(matches(b"[ab]*", b"b1") && !matches(b"[ab]*", b"c1"));
        assert!(matches(b"[!ab]*", b"c1") && !matches(b"[^ab]*", b"a1"));
        assert!(matches(b"x[0-9]", b"x7") && !matches(b"x[0-9]", b"xa"));
        assert!(matches(b"*", b"") && matches(b"**a", b"a"));
        assert!(matches(b"a*b*c", b"aXbYbZc"));
        assert!(matches(b"[", b"["));
    }

    #[test]
    fn braces() {
        assert_eq!(
            expand_braces("/a/{x,y}.conf").unwrap(),
            vec!["/a/x.conf", "/a/y.conf"]
        );
        assert_eq!(expand_braces("{a,{b,c}}").unwrap(), vec!["a", "b", "c"]);
        assert!(expand_braces("{a").is_err());
    }

    #[test]
    fn files_dirs_globs() {
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("main.conf");
        std::fs::create_dir(d.path().join("conf.d")).unwrap();
        for f in ["b.conf", "a.conf", ".hidden.conf", "c.txt"] {
            std::fs::write(d.path().join("conf.d").join(f), "").unwrap();
        }
        std::fs::create_dir(d.path().join("conf.d/dir.conf")).unwrap();
        let got = expand("conf.d/*.conf", &conf, false).unwrap();
        assert_eq!(
            got,
            vec![
                d.path().join("conf.d/a.conf"),
                d.path().join("conf.d/b.conf")
            ]
        );
        let got = expand("conf.d", &conf, false).unwrap();
        assert_eq!(
            got,
            vec![
                d.path().join("conf.d/a.conf"),
                d.path().join("conf.d/b.conf"),
                d.path().join("conf.d/c.txt")
            ]
        );
        let got = expand("conf.?/{b,a}.conf", &conf, false).unwrap();
        assert_eq!(
            got,
            vec![
                d.path().join("conf.d/a.conf"),
                d.path().join("conf.d/b.conf")
            ]
        );
        assert!(expand("nothing-*.conf", &conf, false).unwrap().is_empty());
        assert!(expand("missing.conf", &conf, true).unwrap().is_empty());
        assert!(expand("missing.conf", &conf, false)
            .unwrap_err()
            .contains("missing.conf"));
    }
}
