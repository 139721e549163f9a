//! `blacklist` and `blacklist_exceptions` (multipath-tools 0.9.4,
//! `libmultipath/blacklist.c`).
//!
//! Every rule is a POSIX extended regular expression, case-sensitive and not anchored
//! (it matches anywhere unless it says `^`/`$`); a value that starts with `!` matches
//! what the rest does not match, `\!` is a literal `!`. A path is checked criterion by
//! criterion in multipath-tools' order — udev property, device node, vendor/product,
//! protocol, WWID — and the first criterion that decides wins; within a criterion an
//! exception beats a blacklist entry.
//!
//! The expressions are compiled with the `regex` crate. For the question asked here
//! (does it match anywhere?) it agrees with glibc's `regcomp(REG_EXTENDED)` on the ERE
//! syntax, with these differences, all reported as errors naming the line:
//! - GNU extensions `\<`, `\>`, `\``, `\'` are refused (use `\b`);
//! - an escaped ordinary character that has a meaning in `regex` (`\d`, `\s`, `\w`) is a
//!   class there and a literal letter in glibc's ERE;
//! - a `{` that does not start a valid interval is a literal in glibc and an error here;
//! - back-references (`\1`, not part of ERE) are refused.

use regex::Regex;

/// Compiles one expression (without the leading `!`).
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    let (_, body) = split_invert(pattern);
    super::regex_cache::regex(body).map_err(|e| {
        let text = e.to_string();
        // The regex crate's message spans several lines with a caret diagram; keep the
        // last line, which says what is wrong.
        let last = text.lines().last().unwrap_or("").trim();
        format!(
            "not a regular expression: {}",
            last.trim_start_matches("error: ")
        )
    })
}

fn split_invert(s: &str) -> (bool, &str) {
    if let Some(rest) = s.strip_prefix('!') {
        (true, rest)
    } else if s.starts_with("\\!") {
        (false, &s[1..])
    } else {
        (false, s)
    }
}

/// Where a rule comes from (printed by `multipath -v3` / `show blacklist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOrigin {
    Config,
    Default,
}

/// One regular-expression rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// As written, with its `!` if any.
    pub text: String,
    pub origin: RuleOrigin,
    invert: bool,
    regex: Regex,
}

impl Rule {
    pub(crate) fn new(text: &str, origin: RuleOrigin) -> Result<Rule, String> {
        let regex = compile(text)?;
        Ok(Rule {
            text: text.to_string(),
            origin,
            invert: split_invert(text).0,
            regex,
        })
    }

    pub fn matches(&self, s: &str) -> bool {
        self.regex.is_match(s) != self.invert
    }
}

/// A `device { vendor product }` rule; a missing side matches everything.
#[derive(Debug, Clone)]
pub struct DeviceRule {
    pub vendor: Option<Rule>,
    pub product: Option<Rule>,
    pub origin: RuleOrigin,
}

impl DeviceRule {
    fn matches(&self, vendor: &str, product: &str) -> bool {
        if self.vendor.is_none() && self.product.is_none() {
            return false;
        }
        let ok = |rule: &Option<Rule>, s: &str| match rule {
            Some(r) => r.matches(s),
            None => true,
        };
        ok(&self.vendor, vendor) && ok(&self.product, product)
    }
}

/// The rules of one section (`blacklist` or `blacklist_exceptions`).
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub devnode: Vec<Rule>,
    pub wwid: Vec<Rule>,
    pub property: Vec<Rule>,
    pub protocol: Vec<Rule>,
    pub device: Vec<DeviceRule>,
}

/// What a path looks like to the blacklist. hydra's paths are iSCSI LUNs of its own
/// sessions: they have no kernel device node and no udev properties, so the caller
/// passes None there and those criteria decide nothing (as in multipath-tools when the
/// value is unknown).
#[derive(Debug, Clone, Copy, Default)]
pub struct PathFacts<'a> {
    pub devnode: Option<&'a str>,
    /// INQUIRY vendor and product (both needed for the device criterion).
    pub vendor: Option<&'a str>,
    pub product: Option<&'a str>,
    /// e.g. "scsi:iscsi".
    pub protocol: Option<&'a str>,
    pub wwid: Option<&'a str>,
    /// udev property names, and the uid_attribute the WWID comes from.
    pub properties: Option<&'a [&'a str]>,
    pub uid_attribute: Option<&'a str>,
}

/// Which criterion decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criterion {
    Property,
    Devnode,
    Device,
    Protocol,
    Wwid,
}

impl Criterion {
    /// The words multipath-tools logs (`log_filter`).
    pub fn as_str(self) -> &'static str {
        match self {
            Criterion::Property => "udev property",
            Criterion::Devnode => "device node name",
            Criterion::Device => "vendor/product",
            Criterion::Protocol => "protocol",
            Criterion::Wwid => "wwid",
        }
    }
}

/// The outcome for one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No rule applies: the path is used.
    Nothing,
    /// An exception matched: the path is used whatever later criteria say.
    Whitelisted(Criterion),
    Blacklisted(Criterion),
    /// The path has udev properties but none matches the property exceptions
    /// ("blacklisted, udev property missing").
    PropertyMissing,
}

impl Verdict {
    pub fn is_blacklisted(self) -> bool {
        matches!(self, Verdict::Blacklisted(_) | Verdict::PropertyMissing)
    }
}

/// One criterion: an exception beats a blacklist entry; None if neither matches.
fn decide<R>(
    black: &[R],
    except: &[R],
    matches: impl Fn(&R) -> bool,
    criterion: Criterion,
) -> Option<Verdict> {
    if except.iter().any(&matches) {
        Some(Verdict::Whitelisted(criterion))
    } else if black.iter().any(&matches) {
        Some(Verdict::Blacklisted(criterion))
    } else {
        None
    }
}

/// A matcher of rules against one string.
fn rule(v: &str) -> impl Fn(&Rule) -> bool + '_ {
    move |r| r.matches(v)
}

/// `filter_path`: property, devnode, device, protocol, wwid; the first criterion that
/// decides (either way) ends the check.
pub fn filter(black: &Rules, except: &Rules, p: &PathFacts<'_>) -> Verdict {
    if let Some(props) = p.properties {
        // The property check is the other way round: a path must carry a property that
        // matches an exception; but only if its uid_attribute is among its properties
        // (otherwise udev just failed to read the device).
        let check_missing = p.uid_attribute.is_some_and(|u| !u.is_empty());
        let mut seen = false;
        for env in props {
            if check_missing && Some(*env) == p.uid_attribute {
                seen = true;
            }
            if except.property.iter().any(|r| r.matches(env)) {
                return Verdict::Whitelisted(Criterion::Property);
            }
            if black.property.iter().any(|r| r.matches(env)) {
                return Verdict::Blacklisted(Criterion::Property);
            }
        }
        if check_missing && seen {
            return Verdict::PropertyMissing;
        }
    }
    let devnode = p
        .devnode
        .and_then(|v| decide(&black.devnode, &except.devnode, rule(v), Criterion::Devnode));
    let device = || match (p.vendor, p.product) {
        (Some(vendor), Some(product)) => decide(
            &black.device,
            &except.device,
            |r: &DeviceRule| r.matches(vendor, product),
            Criterion::Device,
        ),
        _ => None,
    };
    let protocol = || {
        p.protocol.and_then(|v| {
            decide(
                &black.protocol,
                &except.protocol,
                rule(v),
                Criterion::Protocol,
            )
        })
    };
    let wwid = || {
        p.wwid
            .and_then(|v| decide(&black.wwid, &except.wwid, rule(v), Criterion::Wwid))
    };
    devnode
        .or_else(device)
        .or_else(protocol)
        .or_else(wwid)
        .unwrap_or(Verdict::Nothing)
}
