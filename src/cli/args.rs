//! A tiny getopt: short and long options, `--opt value`, `--opt=value`, `-ovalue`, as the
//! tgt tools accept them. Unknown options are errors that name the option.

/// One option the tool knows: short letter (or ' '), long name, takes a value.
pub struct Spec {
    pub short: char,
    pub long: &'static str,
    pub value: bool,
}

/// Parsed options in order, plus positional arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    pub opts: Vec<(&'static str, Option<String>)>,
    pub positional: Vec<String>,
}

impl Parsed {
    /// The last value given for `long`.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(k, _)| *k == long)
            .and_then(|(_, v)| v.as_deref())
    }
    /// Every value given for `long`, in order.
    pub fn values(&self, long: &str) -> Vec<&str> {
        self.opts
            .iter()
            .filter(|(k, _)| *k == long)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }
    /// Whether the flag `long` was given.
    pub fn has(&self, long: &str) -> bool {
        self.opts.iter().any(|(k, _)| *k == long)
    }
}

/// Parse `args` against `specs`.
pub fn parse(args: &[String], specs: &[Spec]) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            p.positional.extend(args[i..].iter().cloned());
            break;
        }
        let (spec, inline) = if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let s = specs
                .iter()
                .find(|s| s.long == name)
                .ok_or_else(|| format!("unrecognized option '--{name}'"))?;
            (s, inline)
        } else if a.len() >= 2
            && a.starts_with('-')
            && !a[1..].starts_with(|c: char| c.is_ascii_digit())
        {
            let c = a[1..].chars().next().expect("non-empty");
            let s = specs
                .iter()
                .find(|s| s.short == c)
                .ok_or_else(|| format!("invalid option -- '{c}'"))?;
            let rest = &a[1 + c.len_utf8()..];
            (s, (!rest.is_empty()).then(|| rest.to_string()))
        } else {
            p.positional.push(a.clone());
            continue;
        };
        let value = if spec.value {
            match inline {
                Some(v) => Some(v),
                None => {
                    let v = args
                        .get(i)
                        .cloned()
                        .ok_or_else(|| format!("option '--{}' requires an argument", spec.long))?;
                    i += 1;
                    Some(v)
                }
            }
        } else {
            None
        };
        p.opts.push((spec.long, value));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &[Spec] = &[
        Spec {
            short: 'm',
            long: "mode",
            value: true,
        },
        Spec {
            short: 'f',
            long: "force",
            value: false,
        },
    ];

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn forms() {
        let p = parse(&v(&["-m", "target", "--mode=sys", "-mlun", "-f", "pos"]), S).unwrap();
        assert_eq!(p.values("mode"), vec!["target", "sys", "lun"]);
        assert!(p.has("force"));
        assert_eq!(p.positional, vec!["pos"]);
        assert_eq!(
            parse(&v(&["--bogus"]), S).unwrap_err(),
            "unrecognized option '--bogus'"
        );
        assert_eq!(
            parse(&v(&["--mode"]), S).unwrap_err(),
            "option '--mode' requires an argument"
        );
    }
}
