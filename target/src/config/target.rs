//! One `<target>` block into a [`TargetConfig`]: its options (access lists, accounts,
//! login keys, tid, state), then its stores, numbered as tgt-admin numbers them
//! (module doc of [`super`]), each checked on disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::directives::{self, KeyOutcome, Scope};
use super::structure::{kind_of, RawOpt, RawStore, RawTarget};
use super::{account, cfg_err, driver, once, warn, yes_no, Account, Accounts, Config};
use super::{Location, LunConfig, TargetConfig};
use crate::acl::{Acl, AddrPattern};
use crate::lun::LunSettings;
use crate::Result;

/// The largest LUN number hydra takes: SAM-5 flat space addressing (14 bits).
const MAX_LUN: u64 = 16383;

/// Build one target; the second field is the location of its `controller_tid`, if it
/// had one (tids are assigned across targets afterwards).
pub(super) fn build_target(
    t: RawTarget,
    cfg: &Config,
    accounts: &mut Accounts,
) -> Result<(TargetConfig, Option<Location>)> {
    let mut warnings = Vec::new();
    check_iqn(&t.iqn, &t.loc, &mut warnings)?;
    let mut o = TargetOpts::new(cfg.allow_in_use);
    for opt in &t.opts {
        o.read(opt, accounts, &mut warnings)?;
    }
    check_lun_level(&o, t.stores.len(), &mut warnings)?;
    check_bursts(&o.params, &t.loc)?;
    let mut stores = t
        .stores
        .iter()
        .map(read_store)
        .collect::<Result<Vec<_>>>()?;
    if let Some((n, opt)) = &o.target_lun {
        number_only_store(&mut stores[0], *n, opt)?;
    }
    check_store_paths(&t.stores)?;
    let reserved = reserved_luns(&stores)?;
    let mut luns = number_luns(&stores, &o, reserved, &mut warnings)?;
    warn_path_order(&stores, &luns, &mut warnings);
    luns.sort_by_key(|l| l.lun);
    let acl = Acl {
        addresses: if o.addresses.is_empty() {
            vec![AddrPattern::All]
        } else {
            o.addresses
        },
        names: o.names,
    };
    let (tid, tid_loc) = match o.controller_tid {
        Some((tid, loc)) => (tid, Some(loc)),
        None => (0, None),
    };
    Ok((
        TargetConfig {
            iqn: t.iqn,
            tid,
            luns,
            acl,
            incoming_users: o.incoming,
            outgoing_user: o.outgoing,
            params: o.params.into_iter().map(|(k, v, _)| (k, v)).collect(),
            allow_in_use: o.allow_in_use,
            offline: o.offline,
            location: t.loc,
            warnings,
        },
        tid_loc,
    ))
}

/// What the options of a `<target>` block say, read in file order.
struct TargetOpts<'a> {
    seen: HashMap<String, Location>,
    addresses: Vec<AddrPattern>,
    names: Vec<String>,
    incoming: Vec<Account>,
    outgoing: Option<Account>,
    /// Login keys kept, with where they were given.
    params: Vec<(String, String, Location)>,
    /// Login keys accepted but without effect (only the first counts either way).
    dropped_keys: Vec<String>,
    allow_in_use: bool,
    offline: bool,
    controller_tid: Option<(u32, Location)>,
    /// `lun N` at target level: the number of the target's only store.
    target_lun: Option<(u64, &'a RawOpt)>,
    /// LUN directives at target level: they apply to every LUN.
    lun_level: Vec<&'a RawOpt>,
}

impl<'a> TargetOpts<'a> {
    fn new(allow_in_use: bool) -> TargetOpts<'a> {
        TargetOpts {
            seen: HashMap::new(),
            addresses: Vec::new(),
            names: Vec::new(),
            incoming: Vec::new(),
            outgoing: None,
            params: Vec::new(),
            dropped_keys: Vec::new(),
            allow_in_use,
            offline: false,
            controller_tid: None,
            target_lun: None,
            lun_level: Vec::new(),
        }
    }

    /// One option of the block.
    fn read(
        &mut self,
        o: &'a RawOpt,
        accounts: &mut Accounts,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        let k = o.key.as_str();
        check_scope(o, None)?;
        once(&mut self.seen, o)?;
        if directives::ISCSI_KEYS.contains(&k) {
            return self.login_key(o, warnings);
        }
        match k {
            "driver" => {
                driver(o)?;
            }
            "initiator-address" => {
                let p = AddrPattern::parse(&o.value).map_err(|d| cfg_err(&o.loc, k, d))?;
                if self.addresses.contains(&p) {
                    warnings.push(warn(&o.loc, k, format!("{} is given twice", o.value)));
                } else {
                    self.addresses.push(p);
                }
            }
            "initiator-name" => self.initiator_name(o, warnings)?,
            "incominguser" | "outgoinguser" => self.account(o, accounts, warnings)?,
            "controller_tid" => {
                let tid = directives::number::<u32>(&o.value, 1, i32::MAX as u32)
                    .map_err(|d| cfg_err(&o.loc, k, d))?;
                self.controller_tid = Some((tid, o.loc.clone()));
            }
            "state" => {
                self.offline = match o.value.as_str() {
                    "offline" => true,
                    "ready" => false,
                    v => {
                        return Err(cfg_err(
                            &o.loc,
                            k,
                            format!("'{v}' must be ready or offline"),
                        ))
                    }
                }
            }
            "allow-in-use" => self.allow_in_use |= yes_no(o)?,
            "lun" => self.target_lun = Some((lun_number(o)?, o)),
            // LUN-level at target level: checked once the block is read (a target may
            // have no LUN).
            _ => self.lun_level.push(o),
        }
        Ok(())
    }

    /// `incominguser` (each user once) or `outgoinguser` (the first counts, as in
    /// tgt-admin).
    fn account(
        &mut self,
        o: &RawOpt,
        accounts: &mut Accounts,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        let a = account(o)?;
        accounts.check(&a, o, warnings)?;
        if o.key == "outgoinguser" {
            if self.outgoing.is_some() {
                warnings.push(warn(
                    &o.loc,
                    &o.key,
                    "only one is allowed: the first one is used (as tgt-admin does)",
                ));
            } else {
                self.outgoing = Some(a);
            }
        } else if self.incoming.iter().any(|x| x.user == a.user) {
            return Err(cfg_err(
                &o.loc,
                &o.key,
                format!("user {} is given twice", a.user),
            ));
        } else {
            self.incoming.push(a);
        }
        Ok(())
    }

    /// An iSCSI login key: the first of each counts, as in tgt-admin.
    fn login_key(&mut self, o: &RawOpt, warnings: &mut Vec<String>) -> Result<()> {
        let k = o.key.as_str();
        if self.params.iter().any(|(pk, _, _)| pk == k) || self.dropped_keys.iter().any(|d| d == k)
        {
            warnings.push(warn(
                &o.loc,
                k,
                "only one is allowed: the first one is used (as tgt-admin does)",
            ));
            return Ok(());
        }
        match directives::iscsi_key(k, &o.value).map_err(|d| cfg_err(&o.loc, k, d))? {
            KeyOutcome::Keep(v) => self.params.push((k.to_string(), v, o.loc.clone())),
            KeyOutcome::Drop(w) => {
                self.dropped_keys.push(k.to_string());
                if let Some(w) = w {
                    warnings.push(warn(&o.loc, k, w));
                }
            }
        }
        Ok(())
    }

    fn initiator_name(&mut self, o: &RawOpt, warnings: &mut Vec<String>) -> Result<()> {
        let n = o.value.as_str();
        if n.split_whitespace().count() != 1 || n.chars().any(|c| c.is_control()) {
            return Err(cfg_err(
                &o.loc,
                &o.key,
                format!("'{n}' is not one initiator name"),
            ));
        }
        if self.names.iter().any(|x| x.eq_ignore_ascii_case(n)) {
            warnings.push(warn(
                &o.loc,
                &o.key,
                format!("{n} is given twice (iSCSI names are case-insensitive)"),
            ));
        } else {
            self.names.push(n.to_string());
        }
        Ok(())
    }
}

/// Target-level LUN directives are checked even without a LUN; `lun` at target level
/// needs exactly one store.
fn check_lun_level(o: &TargetOpts, stores: usize, warnings: &mut Vec<String>) -> Result<()> {
    let mut probe = LunSettings::new("/");
    apply_opts(&mut probe, &o.lun_level, Some(warnings))?;
    if let Some(b) = o.lun_level.iter().find(|o| o.key == "block-size") {
        warnings.push(warn(&b.loc, "block-size", "at target level tgt-admin ignores it (its LUNs get 512); hydra applies it to every LUN of the target"));
    }
    if let (Some((_, lun)), true) = (&o.target_lun, stores != 1) {
        return Err(cfg_err(
            &lun.loc,
            "lun",
            format!(
                "at target level, lun numbers the target's only store, but this target has {stores}: give `lun` inside each <backing-store> container"
            ),
        ));
    }
    Ok(())
}

/// FirstBurstLength <= MaxBurstLength (RFC 7143 §13.14), with the RFC defaults.
fn check_bursts(params: &[(String, String, Location)], target: &Location) -> Result<()> {
    let get = |key: &str, d: u32| {
        params
            .iter()
            .find(|p| p.0 == key)
            .map(|p| p.1.parse::<u32>().unwrap_or(d))
            .unwrap_or(d)
    };
    let (first, max) = (
        get("FirstBurstLength", 65_536),
        get("MaxBurstLength", 262_144),
    );
    if first > max {
        let loc = params
            .iter()
            .find(|p| p.0 == "FirstBurstLength" || p.0 == "MaxBurstLength")
            .map(|p| p.2.clone())
            .unwrap_or(target.clone());
        return Err(cfg_err(
            &loc,
            "FirstBurstLength",
            format!("{first} exceeds MaxBurstLength {max} (RFC 7143 §13.14)"),
        ));
    }
    Ok(())
}

/// A directive inside a `<target>` block, or inside the store container `store` of one:
/// known, not global, and in a container not target-level.
fn check_scope(o: &RawOpt, store: Option<&RawStore>) -> Result<()> {
    let k = o.key.as_str();
    match (directives::scope(k), store) {
        (None, _) => Err(cfg_err(&o.loc, k, directives::unknown(k))),
        (Some(Scope::Global), _) => Err(cfg_err(
            &o.loc,
            k,
            "is a global directive: it goes outside <target> blocks".into(),
        )),
        (Some(Scope::Target), Some(s)) => Err(cfg_err(
            &o.loc,
            k,
            format!(
                "is a target-level directive: it cannot be inside <{}>",
                kind_of(s)
            ),
        )),
        _ => Ok(()),
    }
}

/// One store with its container's options.
struct Store<'a> {
    raw: &'a RawStore,
    /// `lun N` in the container (or at target level for the only store).
    lun: Option<u64>,
    lun_loc: Option<Location>,
    opts: Vec<&'a RawOpt>,
    allow_in_use: bool,
}

/// A store's container options; their values are checked now, so that errors come in
/// file order.
fn read_store(s: &RawStore) -> Result<Store<'_>> {
    let mut seen = HashMap::new();
    let mut st = Store {
        raw: s,
        lun: None,
        lun_loc: None,
        opts: Vec::new(),
        allow_in_use: false,
    };
    for o in &s.opts {
        let k = o.key.as_str();
        check_scope(o, Some(s))?;
        once(&mut seen, o)?;
        match k {
            "lun" => {
                st.lun = Some(lun_number(o)?);
                st.lun_loc = Some(o.loc.clone());
            }
            "allow-in-use" => st.allow_in_use = yes_no(o)?,
            _ => st.opts.push(o),
        }
    }
    apply_opts(&mut LunSettings::new("/"), &st.opts, None)?;
    Ok(st)
}

/// `lun N` at target level numbers the only store; its container may not say otherwise.
fn number_only_store(st: &mut Store, n: u64, o: &RawOpt) -> Result<()> {
    if let Some(m) = st.lun.filter(|m| *m != n) {
        return Err(cfg_err(
            &o.loc,
            "lun",
            format!("says {n} but the store's container says {m}"),
        ));
    }
    st.lun = Some(n);
    st.lun_loc = Some(o.loc.clone());
    Ok(())
}

/// The same path twice in one target is an error.
fn check_store_paths(stores: &[RawStore]) -> Result<()> {
    for (i, s) in stores.iter().enumerate() {
        if let Some(first) = stores[..i].iter().find(|o| o.path == s.path) {
            return Err(cfg_err(
                &s.loc,
                kind_of(s),
                format!(
                    "{} is already a store of this target (at {})",
                    s.path, first.loc
                ),
            ));
        }
    }
    Ok(())
}

/// The explicit LUN numbers, which must be distinct.
fn reserved_luns(stores: &[Store]) -> Result<HashMap<u64, Location>> {
    let mut reserved: HashMap<u64, Location> = HashMap::new();
    for st in stores {
        if let (Some(n), Some(loc)) = (st.lun, &st.lun_loc) {
            if let Some(first) = reserved.get(&n) {
                return Err(cfg_err(
                    loc,
                    "lun",
                    format!("LUN {n} is already taken (at {first})"),
                ));
            }
            reserved.insert(n, loc.clone());
        }
    }
    Ok(reserved)
}

/// Every store as a LUN, in tgt-admin's order (backing stores by path, then direct
/// stores by path): an explicit number is kept, the others take the smallest free one.
fn number_luns(
    stores: &[Store],
    o: &TargetOpts,
    reserved: HashMap<u64, Location>,
    warnings: &mut Vec<String>,
) -> Result<Vec<LunConfig>> {
    let mut order: Vec<usize> = (0..stores.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (stores[a].raw, stores[b].raw);
        (x.direct, x.path.as_bytes()).cmp(&(y.direct, y.path.as_bytes()))
    });
    let mut used: Vec<u64> = reserved.keys().copied().collect();
    let mut luns = Vec::new();
    for &i in &order {
        let st = &stores[i];
        let n = match st.lun {
            Some(n) => n,
            None => {
                let n = (1..=MAX_LUN).find(|n| !used.contains(n)).ok_or_else(|| {
                    cfg_err(
                        &st.raw.loc,
                        kind_of(st.raw),
                        format!("no LUN number left (1..{MAX_LUN})"),
                    )
                })?;
                used.push(n);
                n
            }
        };
        luns.push(lun_config(st, n, o, warnings)?);
    }
    Ok(luns)
}

/// One LUN's settings: target-level LUN directives, then the container's, which win;
/// the backing store checked on disk.
fn lun_config(st: &Store, n: u64, o: &TargetOpts, warnings: &mut Vec<String>) -> Result<LunConfig> {
    let dir = kind_of(st.raw);
    let path = resolve(&st.raw.path, &st.raw.loc.file);
    let mut settings = LunSettings::new(path);
    apply_opts(&mut settings, &o.lun_level, None)?;
    apply_opts(&mut settings, &st.opts, Some(warnings))?;
    let allow_in_use = o.allow_in_use || st.allow_in_use;
    check_backing(&settings.path, allow_in_use, &st.raw.loc, dir)?;
    if st.raw.direct {
        warnings.push(warn(
            &st.raw.loc,
            dir,
            "hydra does not copy the device's INQUIRY data (vendor, product, revision, serial) as tgt-admin does with sg_inq: the LUN gets tgt's defaults unless vendor_id, product_id, product_rev, scsi_sn are given",
        ));
    }
    Ok(LunConfig {
        lun: n,
        settings,
        direct_store: st.raw.direct,
        allow_in_use,
        location: st.raw.loc.clone(),
    })
}

/// Tell when path order (tgt-admin's) differs from file order for auto-numbered stores.
fn warn_path_order(stores: &[Store], luns: &[LunConfig], warnings: &mut Vec<String>) {
    for direct in [false, true] {
        let auto: Vec<&Store> = stores
            .iter()
            .filter(|s| s.raw.direct == direct && s.lun.is_none())
            .collect();
        let mut sorted = auto.clone();
        sorted.sort_by(|a, b| a.raw.path.as_bytes().cmp(b.raw.path.as_bytes()));
        if auto
            .iter()
            .zip(&sorted)
            .all(|(a, b)| a.raw.path == b.raw.path)
        {
            continue;
        }
        let list: Vec<String> = luns
            .iter()
            .filter(|l| {
                l.direct_store == direct
                    && sorted
                        .iter()
                        .any(|s| resolve(&s.raw.path, &s.raw.loc.file) == l.settings.path)
            })
            .map(|l| format!("LUN {} = {}", l.lun, l.settings.path.display()))
            .collect();
        warnings.push(warn(
            &sorted[0].raw.loc,
            kind_of(sorted[0].raw),
            format!(
                "LUNs are numbered in path order, as tgt-admin does (not in file order): {}",
                list.join(", ")
            ),
        ));
    }
}

fn lun_number(o: &RawOpt) -> Result<u64> {
    match directives::number::<u64>(&o.value, 0, MAX_LUN) {
        Ok(0) => Err(cfg_err(
            &o.loc,
            "lun",
            "LUN 0 is the target's controller (tgt creates it in every target): use 1 or more"
                .into(),
        )),
        Ok(n) => Ok(n),
        Err(d) => Err(cfg_err(&o.loc, "lun", d)),
    }
}

fn check_iqn(iqn: &str, loc: &Location, warnings: &mut Vec<String>) -> Result<()> {
    if iqn.len() > 223 {
        return Err(cfg_err(
            loc,
            "<target>",
            format!("{iqn}: an iSCSI name is at most 223 bytes (RFC 7143 §4.2.7.1)"),
        ));
    }
    if let Some(c) = iqn.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(cfg_err(
            loc,
            "<target>",
            format!("'{iqn}': {c:?} cannot be part of an iSCSI name"),
        ));
    }
    let lower = iqn.to_ascii_lowercase();
    if !(lower.starts_with("iqn.") || lower.starts_with("eui.") || lower.starts_with("naa.")) {
        warnings.push(warn(
            loc,
            "<target>",
            format!(
                "{iqn} is not an iqn./eui./naa. name (RFC 7143 §4.2.7); initiators may refuse it"
            ),
        ));
    } else if let Some(c) = iqn
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-')))
    {
        warnings.push(warn(loc, "<target>", format!("{iqn}: {c:?} is not allowed in iSCSI names (RFC 3722: letters, digits, '.', ':', '-')")));
    }
    Ok(())
}

fn apply_opts(
    s: &mut LunSettings,
    opts: &[&RawOpt],
    warnings: Option<&mut Vec<String>>,
) -> Result<()> {
    let mut sink = Vec::new();
    let warnings = warnings.unwrap_or(&mut sink);
    for o in opts {
        let w =
            directives::apply_lun(s, &o.key, &o.value).map_err(|d| cfg_err(&o.loc, &o.key, d))?;
        warnings.extend(w.into_iter().map(|w| warn(&o.loc, &o.key, w)));
    }
    Ok(())
}

/// A relative backing path is relative to the directory of the file naming it.
fn resolve(path: &str, named_in: &Path) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        named_in.parent().unwrap_or(Path::new("")).join(p)
    }
}

/// The backing store exists, is a file or a block device, and (unless allowed) is not
/// held by the system.
fn check_backing(path: &Path, allow_in_use: bool, loc: &Location, dir: &str) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let md = std::fs::metadata(path).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::NotFound {
            " does not exist".to_string()
        } else {
            format!(": {e}")
        };
        cfg_err(loc, dir, format!("{}{what}", path.display()))
    })?;
    let ft = md.file_type();
    if ft.is_dir() {
        return Err(cfg_err(
            loc,
            dir,
            format!(
                "{} is a directory (a LUN needs a file or a block device)",
                path.display()
            ),
        ));
    }
    if !ft.is_file() && !ft.is_block_device() {
        return Err(cfg_err(
            loc,
            dir,
            format!(
                "{} is neither a regular file nor a block device",
                path.display()
            ),
        ));
    }
    if ft.is_block_device() && !allow_in_use {
        use std::os::unix::fs::OpenOptionsExt;
        // tgt-admin's check: an O_EXCL open of a block device fails with EBUSY while it
        // is mounted, used as swap or part of a RAID/LVM/dm device.
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(path)
        {
            if e.raw_os_error() == Some(libc::EBUSY) {
                return Err(cfg_err(
                    loc,
                    dir,
                    format!("{} is in use by the system (mounted, swap, RAID or LVM member?): add `allow-in-use yes` to export it anyway", path.display()),
                ));
            }
        }
    }
    Ok(())
}
