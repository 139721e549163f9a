//! What each directive means: where it may appear, how its value is checked, and for
//! the LUN-level ones, how it changes [`LunSettings`]. Value rules follow tgt 1.0.85 as
//! observed with Debian's tgtd (what `tgtadm` accepts), made stricter where tgt silently
//! ignores a mistake (tgt-admin ignores unknown directives and bad values; hydra refuses
//! them by name).

use crate::lun::{LunSettings, SenseFormat};

/// Where a directive is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Outside any block.
    Global,
    /// Inside `<target>` only.
    Target,
    /// Inside `<target>` (then for every LUN of it) or inside a store container.
    Lun,
    /// Global, target or container: `allow-in-use`.
    Anywhere,
    /// Target (with a single store) or container: `lun`.
    LunNumber,
}

pub const GLOBAL: &[&str] = &[
    "default-driver",
    "ignore-errors",
    "control-port",
    "incomingdiscoveryuser",
    "outgoingdiscoveryuser",
    "iSNSServerIP",
    "iSNSServerPort",
    "iSNSAccessControl",
    "iSNS",
    "portal-group",
];

pub const TARGET: &[&str] = &[
    "driver",
    "initiator-address",
    "initiator-name",
    "incominguser",
    "outgoinguser",
    "controller_tid",
    "state",
];

pub const LUN: &[&str] = &[
    "write-cache",
    "scsi_id",
    "scsi_sn",
    "vendor_id",
    "product_id",
    "product_rev",
    "sense_format",
    "removable",
    "online",
    "readonly",
    "path",
    "mode_page",
    "device-type",
    "bs-type",
    "bsopts",
    "bsoflags",
    "block-size",
    "params",
    "lbppbe",
    "la_lba",
    "optimal_xfer_gran",
    "optimal_xfer_len",
];

/// The iSCSI login keys tgt-admin passes to `tgtadm --mode target --op update` (its regex
/// is case-sensitive and anchored, so only this spelling counts).
pub const ISCSI_KEYS: &[&str] = &[
    "MaxRecvDataSegmentLength",
    "MaxXmitDataSegmentLength",
    "HeaderDigest",
    "DataDigest",
    "InitialR2T",
    "MaxOutstandingR2T",
    "ImmediateData",
    "FirstBurstLength",
    "MaxBurstLength",
    "DataPDUInOrder",
    "DataSequenceInOrder",
    "ErrorRecoveryLevel",
    "IFMarker",
    "OFMarker",
    "DefaultTime2Wait",
    "DefaultTime2Retain",
    "OFMarkInt",
    "IFMarkInt",
    "MaxConnections",
];

/// Directives that may be given more than once at one level.
pub const REPEATABLE: &[&str] = &[
    "initiator-address",
    "initiator-name",
    "incominguser",
    "incomingdiscoveryuser",
    "params",
    "mode_page",
    "portal-group",
];

/// Directives of which tgt-admin uses the first and warns about the others.
pub const FIRST_WINS: &[&str] = &["outgoinguser", "outgoingdiscoveryuser"];

/// Where `key` may appear; None for an unknown directive.
pub fn scope(key: &str) -> Option<Scope> {
    if GLOBAL.contains(&key) {
        Some(Scope::Global)
    } else if TARGET.contains(&key) || ISCSI_KEYS.contains(&key) {
        Some(Scope::Target)
    } else if LUN.contains(&key) {
        Some(Scope::Lun)
    } else if key == "allow-in-use" {
        Some(Scope::Anywhere)
    } else if key == "lun" {
        Some(Scope::LunNumber)
    } else {
        None
    }
}

/// "unknown directive" with a hint when only the case differs (tgt-admin ignores such a
/// line silently, so the setting never had an effect in tgt either).
pub fn unknown(key: &str) -> String {
    let all = GLOBAL
        .iter()
        .chain(TARGET)
        .chain(LUN)
        .chain(ISCSI_KEYS)
        .chain(["allow-in-use", "lun", "include"].iter());
    for k in all {
        if k.eq_ignore_ascii_case(key) || k.replace('-', "_") == key || k.replace('_', "-") == key {
            return format!("unknown directive (directive names are exact: did you mean {k}?)");
        }
    }
    "unknown directive".to_string()
}

/// yes/no flags (`ignore-errors`, `allow-in-use`).
pub fn yes_no(v: &str) -> Result<bool, String> {
    match v {
        "yes" | "Yes" | "YES" => Ok(true),
        "no" | "No" | "NO" => Ok(false),
        _ => Err(format!("'{v}' must be yes or no")),
    }
}

fn zero_one(v: &str) -> Result<bool, String> {
    match v {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("'{v}' must be 0 or 1")),
    }
}

pub fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    v: &str,
    min: T,
    max: T,
) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n >= min && n <= max && v.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("'{v}' must be a number from {min} to {max}")),
    }
}

/// An INQUIRY / VPD string: printable ASCII, cut to tgt's field length with a warning
/// (tgt cuts silently: `vendor_id MyCompany Inc.` becomes `MyCompan`).
fn inquiry_string(
    v: &str,
    max: usize,
    what: &str,
    warnings: &mut Vec<String>,
) -> Result<String, String> {
    if v.is_empty() {
        return Err("needs a value".into());
    }
    if !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!("'{v}' must be printable ASCII (SPC-4 §4.3.1)"));
    }
    if v.len() > max {
        let cut = v[..max].to_string();
        warnings.push(format!(
            "'{v}' is longer than the {max} characters of {what}: cut to '{cut}', as tgt does"
        ));
        return Ok(cut);
    }
    Ok(v.to_string())
}

/// tgt-admin's `write-cache off` becomes this `mode_page` (page 8, WCE=0).
pub const TGT_WRITE_CACHE_OFF_PAGE: &str =
    "8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0";

fn mode_page_byte(s: &str) -> Option<u8> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u8::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Apply one LUN-level directive (or `tgtadm --params` key) to `s`; returns warnings.
/// The error text says what is wrong with the value (the caller adds where).
pub fn apply_lun(s: &mut LunSettings, key: &str, value: &str) -> Result<Vec<String>, String> {
    let mut w = Vec::new();
    let v = value.trim();
    if v.is_empty() && key != "params" {
        return Err("needs a value".into());
    }
    match key {
        "write-cache" => {
            s.write_cache = match v {
                "on" => true,
                "off" => false,
                _ => return Err(format!("'{v}' must be on or off")),
            }
        }
        "scsi_id" => s.scsi_id = Some(inquiry_string(v, 36, "a SCSI ID", &mut w)?),
        "scsi_sn" => s.scsi_sn = Some(inquiry_string(v, 36, "a serial number", &mut w)?),
        "vendor_id" => s.vendor_id = inquiry_string(v, 8, "the INQUIRY vendor", &mut w)?,
        "product_id" => s.product_id = inquiry_string(v, 16, "the INQUIRY product", &mut w)?,
        "product_rev" => s.product_rev = inquiry_string(v, 4, "the INQUIRY revision", &mut w)?,
        "sense_format" => {
            s.sense_format = match v {
                "0" => SenseFormat::Fixed,
                "1" => SenseFormat::Descriptor,
                _ => return Err(format!("'{v}' must be 0 (fixed) or 1 (descriptor)")),
            }
        }
        "removable" => s.removable = zero_one(v)?,
        "online" => s.online = zero_one(v)?,
        "readonly" => s.readonly = zero_one(v)?,
        "thin_provisioning" => s.thin_provisioning = zero_one(v)?,
        "rotation_rate" => s.rotation_rate = number::<u16>(v, 0, u16::MAX)?,
        "block-size" | "blocksize" => {
            s.block_size = match v {
                "512" => 512,
                "4096" => 4096,
                _ => return Err(format!("{v} is not a supported logical block size (512 or 4096)")),
            }
        }
        "bsoflags" => {
            let (mut direct, mut sync) = (false, false);
            for f in v.split(':') {
                match f.trim() {
                    "direct" => direct = true,
                    "sync" => sync = true,
                    other => return Err(format!("'{other}' is not a backing-store open flag (direct, sync, or direct:sync)")),
                }
            }
            s.o_direct = direct;
            s.o_sync = sync;
        }
        "device-type" => match v {
            "disk" => {}
            "cd" | "tape" | "ssc" | "changer" | "pt" | "osd" | "passthrough" => {
                return Err(format!("device-type {v} is not supported by hydra (only disk)"))
            }
            _ => return Err(format!("'{v}' is not a device type (tgt knows disk, cd, tape, changer, pt, osd; hydra only disk)")),
        },
        "bs-type" | "bstype" => match v {
            "rdwr" => {}
            "aio" => w.push("bs-type aio: hydra has one I/O path (page-cache reads inline, other I/O on a thread pool); the LUN uses it, as rdwr".into()),
            "rbd" | "glfs" | "sheepdog" | "sg" | "bsg" | "null" | "ssc" | "mmc" | "smc" => {
                return Err(format!("bs-type {v} is not supported by hydra (only rdwr; aio is taken as rdwr)"))
            }
            _ => return Err(format!("'{v}' is not a backing-store type (hydra: rdwr, or aio taken as rdwr)")),
        },
        "bsopts" => return Err("bsopts is not supported by hydra (it configures rbd/glfs backing stores; hydra serves files and block devices)".into()),
        "path" => return Err("path (loading removable media) is not supported by hydra (only disk LUNs, whose backing store is given by backing-store)".into()),
        "mode_page" => {
            // tgt: page:subpage:length:byte... Only the Caching page's WCE bit has a hydra
            // meaning (write-cache); every other page is refused by name.
            let f: Vec<&str> = v.split(':').collect();
            let page = f.first().and_then(|p| mode_page_byte(p));
            let sub = f.get(1).and_then(|p| mode_page_byte(p));
            match (page, sub) {
                (Some(8), Some(0)) => {
                    let flags = f.get(3).and_then(|b| mode_page_byte(b)).ok_or_else(|| format!("'{v}' is not page:subpage:length:bytes..."))?;
                    // SBC-3 §6.4.5: byte 2 of the Caching page, bit 2 = WCE.
                    s.write_cache = flags & 0x04 != 0;
                    if v != TGT_WRITE_CACHE_OFF_PAGE {
                        w.push(format!(
                            "mode_page 8 (Caching): hydra takes only its WCE bit (write cache {}); the other bytes are ignored",
                            if s.write_cache { "on" } else { "off" }
                        ));
                    }
                }
                (Some(p), Some(sp)) => {
                    return Err(format!("mode_page {p:#04x}/{sp:#04x} is not supported by hydra (only page 8's WCE bit; use write-cache)"))
                }
                _ => return Err(format!("'{v}' is not page:subpage:length:bytes...")),
            }
        }
        "lbppbe" | "la_lba" | "optimal_xfer_gran" | "optimal_xfer_len" => {
            let max: u32 = match key {
                "lbppbe" => 15,
                "la_lba" => 16383,
                _ => u32::MAX,
            };
            number::<u32>(v, 0, max)?;
            w.push(format!("{key} is accepted but has no effect in hydra (a geometry hint that tgt fills in for direct-store)"));
        }
        "params" => {
            // tgt-admin passes the value to `tgtadm --params` as is: k=v,k=v.
            for kv in v.split(',').map(str::trim).filter(|kv| !kv.is_empty()) {
                let (k, val) = kv.split_once('=').ok_or_else(|| format!("'{kv}' is not key=value"))?;
                match k.trim() {
                    "element_type" | "start_address" | "quantity" | "media_home" | "address" | "barcode" | "sides" | "tid" | "lun" => {
                        return Err(format!("params {k} is for media changers (device-type changer), which hydra does not support"))
                    }
                    "params" | "device-type" | "bs-type" | "bstype" | "bsopts" | "write-cache" | "block-size" | "blocksize" => {
                        return Err(format!("params {k}: not a tgtadm --params key"))
                    }
                    k if is_lun_param(k) => w.extend(apply_lun(s, k, val.trim()).map_err(|e| format!("params {k}: {e}"))?),
                    other => return Err(format!("params {other} is not supported by hydra (thin_provisioning, rotation_rate, or a LUN directive such as readonly)")),
                }
            }
        }
        other => return Err(format!("{other} is not a LUN directive")),
    }
    Ok(w)
}

/// Keys `tgtadm --mode logicalunit --params` takes (tgt `usr/spc.c` + `usr/sbc.c`).
fn is_lun_param(k: &str) -> bool {
    matches!(
        k,
        "scsi_id"
            | "scsi_sn"
            | "vendor_id"
            | "product_id"
            | "product_rev"
            | "sense_format"
            | "removable"
            | "online"
            | "readonly"
            | "path"
            | "mode_page"
            | "thin_provisioning"
            | "rotation_rate"
            | "lbppbe"
            | "la_lba"
            | "optimal_xfer_gran"
            | "optimal_xfer_len"
    )
}

/// What becomes of one iSCSI key given in a target.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Keep it in `TargetConfig::params` under this value.
    Keep(String),
    /// Valid but without effect in hydra: drop it, with this warning if any.
    Drop(Option<String>),
}

/// Check an iSCSI login key from targets.conf (RFC 7143 §13; ranges as tgt's `param.c`
/// accepts them). Values are case-sensitive (RFC 7143 §6.1), as in tgt.
pub fn iscsi_key(key: &str, v: &str) -> Result<KeyOutcome, String> {
    const SEG: (u32, u32) = (512, 16_777_215);
    let keep = |v: &str| Ok(KeyOutcome::Keep(v.to_string()));
    match key {
        "MaxRecvDataSegmentLength" | "FirstBurstLength" | "MaxBurstLength" => {
            number::<u32>(v, SEG.0, SEG.1)?;
            keep(v)
        }
        "MaxXmitDataSegmentLength" => {
            number::<u32>(v, SEG.0, SEG.1)?;
            Ok(KeyOutcome::Drop(Some(
                "MaxXmitDataSegmentLength (a tgt-only key) is ignored: hydra sends Data-In PDUs up to the initiator's MaxRecvDataSegmentLength".into(),
            )))
        }
        "HeaderDigest" | "DataDigest" => {
            let mut seen = Vec::new();
            for d in v.split(',') {
                if d != "None" && d != "CRC32C" {
                    return Err(format!(
                        "'{d}' is not a digest (CRC32C or None, comma-separated, exact case)"
                    ));
                }
                if seen.contains(&d) {
                    return Err(format!("'{v}' names {d} twice"));
                }
                seen.push(d);
            }
            keep(v)
        }
        "InitialR2T" | "ImmediateData" | "DataPDUInOrder" | "DataSequenceInOrder" => match v {
            "Yes" | "No" => keep(v),
            _ => Err(format!("'{v}' must be Yes or No (exact case)")),
        },
        "MaxOutstandingR2T" | "MaxConnections" => {
            number::<u32>(v, 1, 65535)?;
            keep(v)
        }
        "DefaultTime2Wait" | "DefaultTime2Retain" => {
            number::<u32>(v, 0, 3600)?;
            keep(v)
        }
        "ErrorRecoveryLevel" => match number::<u32>(v, 0, 2)? {
            0 => keep(v),
            n => Err(format!(
                "ErrorRecoveryLevel {n} is not supported by hydra (only 0)"
            )),
        },
        "IFMarker" | "OFMarker" => match v {
            "No" => Ok(KeyOutcome::Drop(None)),
            "Yes" => Err(format!(
                "{key} Yes is not supported by hydra (markers were removed by RFC 7143)"
            )),
            _ => Err(format!("'{v}' must be Yes or No (exact case)")),
        },
        "OFMarkInt" | "IFMarkInt" => {
            let ok = v == "Reject"
                || match v.split_once('-') {
                    Some((a, b)) => {
                        number::<u32>(a, 1, 65535).is_ok() && number::<u32>(b, 1, 65535).is_ok()
                    }
                    None => number::<u32>(v, 1, 65535).is_ok(),
                };
            if !ok {
                return Err(format!(
                    "'{v}' must be Reject, N or N-M with 1 <= N <= 65535"
                ));
            }
            Ok(KeyOutcome::Drop(Some(format!(
                "{key} is ignored: hydra does not use markers (RFC 7143 removed them)"
            ))))
        }
        _ => Err("unknown iSCSI key".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lun(key: &str, v: &str) -> Result<(LunSettings, Vec<String>), String> {
        let mut s = LunSettings::new("/x");
        apply_lun(&mut s, key, v).map(|w| (s, w))
    }

    #[test]
    fn lun_directives() {
        assert!(!lun("write-cache", "off").unwrap().0.write_cache);
        assert!(lun("write-cache", "maybe").is_err());
        assert_eq!(lun("block-size", "4096").unwrap().0.block_size, 4096);
        assert_eq!(
            lun("block-size", "1000").unwrap_err(),
            "1000 is not a supported logical block size (512 or 4096)"
        );
        assert_eq!(
            lun("block-size", "1024").unwrap_err(),
            "1024 is not a supported logical block size (512 or 4096)"
        );
        let (s, w) = lun("vendor_id", "MyCompany Inc.").unwrap();
        assert_eq!(s.vendor_id, "MyCompan");
        assert_eq!(w.len(), 1);
        assert_eq!(lun("scsi_id", "x").unwrap().0.scsi_id.as_deref(), Some("x"));
        assert!(lun("scsi_id", "é").is_err());
        assert_eq!(
            lun("sense_format", "1").unwrap().0.sense_format,
            SenseFormat::Descriptor
        );
        assert!(lun("readonly", "2").is_err());
        let s = lun("bsoflags", "sync:direct").unwrap().0;
        assert!(s.o_sync && s.o_direct);
        assert!(lun("bsoflags", "nocache").is_err());
        assert_eq!(
            lun("device-type", "tape").unwrap_err(),
            "device-type tape is not supported by hydra (only disk)"
        );
        assert_eq!(
            lun("bs-type", "rbd").unwrap_err(),
            "bs-type rbd is not supported by hydra (only rdwr; aio is taken as rdwr)"
        );
        assert_eq!(lun("bs-type", "aio").unwrap().1.len(), 1);
        let s = lun("params", "thin_provisioning=1, rotation_rate=1")
            .unwrap()
            .0;
        assert!(s.thin_provisioning && s.rotation_rate == 1);
        assert_eq!(lun("params", "foo=1").unwrap_err(), "params foo is not supported by hydra (thin_provisioning, rotation_rate, or a LUN directive such as readonly)");
        assert!(lun("params", "readonly=1").unwrap().0.readonly);
        assert!(lun("params", "element_type=2")
            .unwrap_err()
            .contains("media changers"));
        assert!(
            !lun("mode_page", TGT_WRITE_CACHE_OFF_PAGE)
                .unwrap()
                .0
                .write_cache
        );
        assert!(lun("mode_page", TGT_WRITE_CACHE_OFF_PAGE)
            .unwrap()
            .1
            .is_empty());
        assert!(lun("mode_page", "0x1c:0:10:0")
            .unwrap_err()
            .contains("0x1c"));
        assert!(lun("lbppbe", "3").unwrap().1[0].contains("no effect"));
        assert!(lun("lbppbe", "99").is_err());
        assert!(lun("bsopts", "conf=/etc/ceph/ceph.conf")
            .unwrap_err()
            .starts_with("bsopts is not supported by hydra"));
    }

    #[test]
    fn iscsi_keys() {
        use KeyOutcome::*;
        assert_eq!(
            iscsi_key("MaxRecvDataSegmentLength", "65536"),
            Ok(Keep("65536".into()))
        );
        assert!(iscsi_key("MaxRecvDataSegmentLength", "100").is_err());
        assert!(iscsi_key("MaxRecvDataSegmentLength", "16777216").is_err());
        assert_eq!(
            iscsi_key("HeaderDigest", "CRC32C,None"),
            Ok(Keep("CRC32C,None".into()))
        );
        assert!(iscsi_key("HeaderDigest", "crc32c").is_err());
        assert!(iscsi_key("InitialR2T", "no").is_err());
        assert_eq!(
            iscsi_key("ErrorRecoveryLevel", "2").unwrap_err(),
            "ErrorRecoveryLevel 2 is not supported by hydra (only 0)"
        );
        assert!(iscsi_key("ErrorRecoveryLevel", "3").is_err());
        assert_eq!(iscsi_key("IFMarker", "No"), Ok(Drop(None)));
        assert!(iscsi_key("OFMarker", "Yes").is_err());
        assert!(matches!(
            iscsi_key("OFMarkInt", "Reject"),
            Ok(Drop(Some(_)))
        ));
        assert!(matches!(
            iscsi_key("OFMarkInt", "1-65535"),
            Ok(Drop(Some(_)))
        ));
        assert!(iscsi_key("DefaultTime2Wait", "3601").is_err());
        assert!(iscsi_key("MaxConnections", "0").is_err());
        assert!(iscsi_key("MaxOutstandingR2T", "+1").is_err());
    }

    #[test]
    fn scopes_and_hints() {
        assert_eq!(scope("block-size"), Some(Scope::Lun));
        assert_eq!(scope("MaxBurstLength"), Some(Scope::Target));
        assert_eq!(scope("maxburstlength"), None);
        assert_eq!(
            unknown("maxburstlength"),
            "unknown directive (directive names are exact: did you mean MaxBurstLength?)"
        );
        assert_eq!(
            unknown("block_size"),
            "unknown directive (directive names are exact: did you mean block-size?)"
        );
        assert_eq!(unknown("frobnicate"), "unknown directive");
    }
}
