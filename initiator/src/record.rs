//! open-iscsi's records: the node record (one target portal as the initiator will log in
//! to it) and the SendTargets discovery record, as `key = value` settings with
//! open-iscsi's names, order, defaults and file format (`# BEGIN RECORD 2.1.8` …
//! `# END RECORD`; usr/idbm.c, usr/idbm_fields.h). iscsid.conf supplies the values a new
//! record starts with; `iscsiadm -o update` changes one; the daemon reads the record at
//! every login, so a change takes effect on the next login.
//!
//! Every value is checked when it is set — from a file, from iscsid.conf or from the
//! command line — so a record on disk is always one the initiator can log in with.

use std::time::Duration;

use hydra_proto::negotiate::LocalParams;

use crate::conn::Timeouts;
use crate::login::Chap;

/// The version open-iscsi writes in record headers; hydra's records follow its layout.
pub const RECORD_VERSION: &str = "2.1.8";

/// What values a field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// A secret: printed as `********` unless asked for.
    Secret,
    Int(i64, i64),
    YesNo,
    OneOf(&'static [&'static str]),
    /// An iSCSI key validated by the negotiation code (digests, lengths).
    Iscsi(&'static str),
    /// Part of the record's identity: set when the record is made, never updated.
    Id,
    /// A numeric part of the identity (TPGT, port).
    IdNum,
}

struct Field {
    name: &'static str,
    default: &'static str,
    kind: Kind,
}

const fn f(name: &'static str, default: &'static str, kind: Kind) -> Field {
    Field {
        name,
        default,
        kind,
    }
}

const STARTUP: Kind = Kind::OneOf(&["manual", "automatic", "onboot"]);
const AUTH: Kind = Kind::OneOf(&["None", "CHAP"]);
const SECS: Kind = Kind::Int(0, 86_400);

/// The node record, in open-iscsi's order (usr/idbm.c idbm_recinfo_node).
const NODE: &[Field] = &[
    f("node.name", "", Kind::Id),
    f("node.tpgt", "1", Kind::IdNum),
    f("node.startup", "manual", STARTUP),
    f("node.leading_login", "No", Kind::YesNo),
    f("iface.iscsi_ifacename", "default", Kind::Id),
    f("iface.net_ifacename", "", Kind::Text),
    f("iface.ipaddress", "", Kind::Text),
    f("iface.hwaddress", "", Kind::Text),
    f("iface.transport_name", "tcp", Kind::OneOf(&["tcp"])),
    f("iface.initiatorname", "", Kind::Text),
    f("node.discovery_address", "", Kind::Text),
    f("node.discovery_port", "0", Kind::Int(0, 65_535)),
    f(
        "node.discovery_type",
        "static",
        Kind::OneOf(&["static", "send_targets"]),
    ),
    f(
        "node.session.initial_cmdsn",
        "0",
        Kind::Int(0, u32::MAX as i64),
    ),
    f(
        "node.session.initial_login_retry_max",
        "8",
        Kind::Int(0, 1000),
    ),
    f(
        "node.session.xmit_thread_priority",
        "-20",
        Kind::Int(-20, 19),
    ),
    f("node.session.cmds_max", "128", Kind::Int(2, 2048)),
    f("node.session.queue_depth", "32", Kind::Int(1, 1024)),
    f("node.session.nr_sessions", "1", Kind::Int(1, 1)),
    f("node.session.auth.authmethod", "None", AUTH),
    f("node.session.auth.username", "", Kind::Text),
    f("node.session.auth.password", "", Kind::Secret),
    f("node.session.auth.username_in", "", Kind::Text),
    f("node.session.auth.password_in", "", Kind::Secret),
    f("node.session.auth.chap_algs", "MD5", Kind::Text),
    f("node.session.timeo.replacement_timeout", "120", SECS),
    f("node.session.err_timeo.abort_timeout", "15", SECS),
    f("node.session.err_timeo.lu_reset_timeout", "30", SECS),
    f("node.session.err_timeo.tgt_reset_timeout", "30", SECS),
    f("node.session.err_timeo.host_reset_timeout", "60", SECS),
    f("node.session.iscsi.FastAbort", "Yes", Kind::YesNo),
    f(
        "node.session.iscsi.InitialR2T",
        "No",
        Kind::Iscsi("InitialR2T"),
    ),
    f(
        "node.session.iscsi.ImmediateData",
        "Yes",
        Kind::Iscsi("ImmediateData"),
    ),
    f(
        "node.session.iscsi.FirstBurstLength",
        "262144",
        Kind::Iscsi("FirstBurstLength"),
    ),
    f(
        "node.session.iscsi.MaxBurstLength",
        "16776192",
        Kind::Iscsi("MaxBurstLength"),
    ),
    f(
        "node.session.iscsi.DefaultTime2Retain",
        "0",
        Kind::Iscsi("DefaultTime2Retain"),
    ),
    f(
        "node.session.iscsi.DefaultTime2Wait",
        "2",
        Kind::Iscsi("DefaultTime2Wait"),
    ),
    f("node.session.iscsi.MaxConnections", "1", Kind::Int(1, 1)),
    f(
        "node.session.iscsi.MaxOutstandingR2T",
        "1",
        Kind::Iscsi("MaxOutstandingR2T"),
    ),
    // hydra's initiator runs ErrorRecoveryLevel 0, as open-iscsi does.
    f("node.session.iscsi.ERL", "0", Kind::Int(0, 0)),
    f(
        "node.session.scan",
        "auto",
        Kind::OneOf(&["auto", "manual"]),
    ),
    f("node.session.reopen_max", "0", Kind::Int(0, 1_000_000)),
    f("node.conn[0].address", "", Kind::Id),
    f("node.conn[0].port", "3260", Kind::IdNum),
    f("node.conn[0].startup", "manual", STARTUP),
    f(
        "node.conn[0].tcp.window_size",
        "524288",
        Kind::Int(0, 1 << 30),
    ),
    f("node.conn[0].tcp.type_of_service", "0", Kind::Int(0, 255)),
    f("node.conn[0].timeo.logout_timeout", "15", SECS),
    f(
        "node.conn[0].timeo.login_timeout",
        "15",
        Kind::Int(1, 86_400),
    ),
    f("node.conn[0].timeo.auth_timeout", "45", SECS),
    f("node.conn[0].timeo.noop_out_interval", "5", SECS),
    f("node.conn[0].timeo.noop_out_timeout", "5", SECS),
    f(
        "node.conn[0].iscsi.MaxXmitDataSegmentLength",
        "0",
        Kind::Int(0, (1 << 24) - 1),
    ),
    f(
        "node.conn[0].iscsi.MaxRecvDataSegmentLength",
        "262144",
        Kind::Iscsi("MaxRecvDataSegmentLength"),
    ),
    f(
        "node.conn[0].iscsi.HeaderDigest",
        "None",
        Kind::Iscsi("HeaderDigest"),
    ),
    f(
        "node.conn[0].iscsi.DataDigest",
        "None",
        Kind::Iscsi("DataDigest"),
    ),
    f("node.conn[0].iscsi.IFMarker", "No", Kind::OneOf(&["No"])),
    f("node.conn[0].iscsi.OFMarker", "No", Kind::OneOf(&["No"])),
];

/// The SendTargets discovery record (usr/idbm.c idbm_recinfo_discovery).
const DISCOVERY: &[Field] = &[
    f("discovery.startup", "manual", STARTUP),
    f("discovery.type", "sendtargets", Kind::Id),
    f("discovery.sendtargets.address", "", Kind::Id),
    f("discovery.sendtargets.port", "3260", Kind::IdNum),
    f("discovery.sendtargets.auth.authmethod", "None", AUTH),
    f("discovery.sendtargets.auth.username", "", Kind::Text),
    f("discovery.sendtargets.auth.password", "", Kind::Secret),
    f("discovery.sendtargets.auth.username_in", "", Kind::Text),
    f("discovery.sendtargets.auth.password_in", "", Kind::Secret),
    f(
        "discovery.sendtargets.timeo.login_timeout",
        "15",
        Kind::Int(1, 86_400),
    ),
    f(
        "discovery.sendtargets.use_discoveryd",
        "No",
        Kind::OneOf(&["No"]),
    ),
    f("discovery.sendtargets.discoveryd_poll_inverval", "30", SECS),
    f("discovery.sendtargets.reopen_max", "5", Kind::Int(0, 1000)),
    f("discovery.sendtargets.timeo.auth_timeout", "45", SECS),
    f("discovery.sendtargets.timeo.active_timeout", "30", SECS),
    f(
        "discovery.sendtargets.iscsi.MaxRecvDataSegmentLength",
        "32768",
        Kind::Iscsi("MaxRecvDataSegmentLength"),
    ),
];

/// Which schema a record follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    Node,
    Discovery,
}

impl RecordType {
    fn fields(self) -> &'static [Field] {
        match self {
            RecordType::Node => NODE,
            RecordType::Discovery => DISCOVERY,
        }
    }
}

/// Why a setting was refused; the caller adds where it came from (file:line, `-n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    UnknownName,
    /// Part of the record's identity (`node.name`, the portal, …).
    Identity,
    Invalid(String),
}

impl std::fmt::Display for SetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetError::UnknownName => write!(f, "unknown setting"),
            SetError::Identity => write!(
                f,
                "it identifies the record and cannot be changed (make a new record)"
            ),
            SetError::Invalid(why) => write!(f, "{why}"),
        }
    }
}

/// One record: a value for every field of its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    ty: RecordType,
    values: Vec<String>,
}

impl Record {
    /// A record with open-iscsi's compiled-in defaults.
    pub fn new(ty: RecordType) -> Record {
        Record {
            ty,
            values: ty.fields().iter().map(|f| f.default.to_string()).collect(),
        }
    }

    /// A node record for `target` at `address:port` (TPGT `tpgt`), starting from
    /// `template` (defaults with iscsid.conf applied).
    pub fn node(template: &Record, target: &str, address: &str, port: u16, tpgt: u16) -> Record {
        let mut r = template.clone();
        r.put("node.name", target);
        r.put("node.tpgt", &tpgt.to_string());
        r.put("node.conn[0].address", address);
        r.put("node.conn[0].port", &port.to_string());
        r
    }

    pub fn record_type(&self) -> RecordType {
        self.ty
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.ty.fields().iter().position(|f| f.name == name)
    }

    /// A field's value ("" when empty); panics on a name outside the schema, which is
    /// a bug in hydra, not bad input.
    pub fn get(&self, name: &str) -> &str {
        let i = self
            .index(name)
            .unwrap_or_else(|| panic!("{name} is not a field of {:?} records", self.ty));
        &self.values[i]
    }

    /// Set an identity field (no validation beyond the caller's).
    fn put(&mut self, name: &str, value: &str) {
        let i = self.index(name).expect("schema field");
        self.values[i] = value.to_string();
    }

    /// Set one field from outside (a file, iscsid.conf, `-o update`), checking the value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), SetError> {
        let i = self.index(name).ok_or(SetError::UnknownName)?;
        let field = &self.ty.fields()[i];
        // An empty value means the default: files leave empty values out (as
        // open-iscsi's do), so that is what reading the record back gives.
        let value = match value.trim() {
            "" => field.default,
            v => v,
        };
        check(field.kind, value)?;
        if matches!(field.kind, Kind::Id | Kind::IdNum) {
            return Err(SetError::Identity);
        }
        self.values[i] = value.to_string();
        Ok(())
    }

    /// Parse a record file (`key = value` lines; `#` comments). Errors name the line.
    pub fn parse(ty: RecordType, text: &str) -> Result<Record, String> {
        let mut r = Record::new(ty);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("line {}: expected 'name = value'", n + 1));
            };
            let (k, v) = (k.trim(), v.trim());
            let i = r
                .index(k)
                .ok_or_else(|| format!("line {}: {k}: unknown setting", n + 1))?;
            let v = if v.is_empty() {
                ty.fields()[i].default
            } else {
                v
            };
            check(ty.fields()[i].kind, v).map_err(|e| format!("line {}: {k}: {e}", n + 1))?;
            r.values[i] = v.to_string();
        }
        Ok(r)
    }

    /// The file form: empty values are left out, as open-iscsi writes them.
    pub fn to_file(&self) -> String {
        let mut s = format!("# BEGIN RECORD {RECORD_VERSION}\n");
        for (f, v) in self.ty.fields().iter().zip(&self.values) {
            if !v.is_empty() {
                s.push_str(&format!("{} = {v}\n", f.name));
            }
        }
        s.push_str("# END RECORD\n");
        s
    }

    /// The `-o show` form: every field, `<empty>` for empty ones, secrets masked unless
    /// `show_secrets` (`-S`).
    pub fn display(&self, show_secrets: bool) -> String {
        let mut s = format!("# BEGIN RECORD {RECORD_VERSION}\n");
        for (f, v) in self.ty.fields().iter().zip(&self.values) {
            let shown = if v.is_empty() {
                "<empty>"
            } else if f.kind == Kind::Secret && !show_secrets {
                "********"
            } else {
                v
            };
            s.push_str(&format!("{} = {shown}\n", f.name));
        }
        s.push_str("# END RECORD\n");
        s
    }

    fn num(&self, name: &str) -> u64 {
        self.get(name).parse().unwrap_or(0)
    }

    fn secs(&self, name: &str) -> Duration {
        Duration::from_secs(self.num(name))
    }

    /// The login parameters this node record asks for.
    pub fn local_params(&self) -> LocalParams {
        let mut p = LocalParams::default();
        for f in NODE {
            if let Kind::Iscsi(key) = f.kind {
                // Checked when set, so this cannot fail.
                let _ = p.set_key(key, self.get(f.name));
            }
        }
        p
    }

    /// CHAP settings (`node.session.auth.*`), when authmethod is CHAP.
    pub fn chap(&self) -> Option<Chap> {
        let prefix = match self.ty {
            RecordType::Node => "node.session.auth",
            RecordType::Discovery => "discovery.sendtargets.auth",
        };
        let a = |k: &str| self.get(&format!("{prefix}.{k}")).to_string();
        (a("authmethod") == "CHAP").then(|| Chap {
            user: a("username"),
            secret: a("password"),
            mutual: (!a("username_in").is_empty()).then(|| (a("username_in"), a("password_in"))),
        })
    }

    /// The session's timeouts (node records).
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            replacement: self.secs("node.session.timeo.replacement_timeout"),
            noop_interval: self.secs("node.conn[0].timeo.noop_out_interval"),
            noop_timeout: self.secs("node.conn[0].timeo.noop_out_timeout"),
            login: self.secs("node.conn[0].timeo.login_timeout"),
            abort: self.secs("node.session.err_timeo.abort_timeout"),
            lu_reset: self.secs("node.session.err_timeo.lu_reset_timeout"),
            // The SCSI command timeout is the disk's, not the node record's (Linux sd).
            ..Timeouts::default()
        }
    }

    /// The portal as `address:port` for connecting (IPv6 bracketed).
    pub fn portal(&self) -> String {
        let (a, p) = match self.ty {
            RecordType::Node => (
                self.get("node.conn[0].address"),
                self.get("node.conn[0].port"),
            ),
            RecordType::Discovery => (
                self.get("discovery.sendtargets.address"),
                self.get("discovery.sendtargets.port"),
            ),
        };
        portal_text(a, p.parse().unwrap_or(3260))
    }
}

/// `ip:port`, with the address bracketed when it is not IPv4-looking (open-iscsi's
/// `strchr(addr, '.')` test in idbm_print_node_flat).
pub fn portal_text(address: &str, port: u16) -> String {
    if address.contains('.') || address.starts_with('[') {
        format!("{address}:{port}")
    } else {
        format!("[{address}]:{port}")
    }
}

fn check(kind: Kind, v: &str) -> Result<(), SetError> {
    let bad = |why: String| Err(SetError::Invalid(why));
    match kind {
        Kind::Text | Kind::Secret => {
            if v.contains(['\n', '\0']) {
                return bad("values are one line".into());
            }
            Ok(())
        }
        Kind::Id => {
            if v.is_empty() || v.contains(['\n', '\0']) {
                return bad("needs a one-line value".into());
            }
            Ok(())
        }
        Kind::IdNum => match v.parse::<u16>() {
            Ok(_) => Ok(()),
            Err(_) => bad(format!("'{v}' is not a number from 0 to 65535")),
        },
        Kind::Int(lo, hi) => match v.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(()),
            _ => bad(format!("'{v}' is not a number from {lo} to {hi}")),
        },
        Kind::YesNo => match v {
            "Yes" | "No" => Ok(()),
            _ => bad(format!("'{v}' is not Yes or No")),
        },
        Kind::OneOf(allowed) => {
            if allowed.contains(&v) {
                Ok(())
            } else {
                bad(format!("'{v}' is not one of {}", allowed.join(", ")))
            }
        }
        Kind::Iscsi(key) => LocalParams::default()
            .set_key(key, v)
            .map_err(|e| SetError::Invalid(e.to_string())),
    }
}

/// iscsid.conf: the settings every new record starts with. Lines are `name = value`;
/// `iscsid.*` settings belong to the daemon and are skipped here. An unknown or invalid
/// setting is an error naming `file:line` — nothing of a bad file is used.
pub fn parse_iscsid_conf(file: &str, text: &str) -> Result<(Record, Record), String> {
    let mut node = Record::new(RecordType::Node);
    let mut disc = Record::new(RecordType::Discovery);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("{file}:{}: expected 'name = value'", n + 1));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.starts_with("iscsid.") {
            continue;
        }
        let r = if k.starts_with("discovery.") {
            &mut disc
        } else {
            &mut node
        };
        r.set(k, v)
            .map_err(|e| format!("{file}:{}: {k}: {e}", n + 1))?;
    }
    Ok((node, disc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_omits_empty_values() {
        let t = Record::new(RecordType::Node);
        let mut r = Record::node(&t, "iqn.x:a", "10.200.0.1", 3260, 2);
        r.set("node.session.auth.authmethod", "CHAP").unwrap();
        r.set("node.session.auth.password", "s3cret").unwrap();
        let text = r.to_file();
        assert!(text.starts_with("# BEGIN RECORD 2.1.8\nnode.name = iqn.x:a\nnode.tpgt = 2\n"));
        assert!(!text.contains("node.session.auth.username ="));
        assert_eq!(Record::parse(RecordType::Node, &text).unwrap(), r);
        let shown = r.display(false);
        assert!(shown.contains("node.session.auth.username = <empty>\n"));
        assert!(shown.contains("node.session.auth.password = ********\n"));
        assert!(r
            .display(true)
            .contains("node.session.auth.password = s3cret\n"));
    }

    #[test]
    fn values_are_checked() {
        let mut r = Record::new(RecordType::Node);
        assert_eq!(r.set("node.bogus", "1"), Err(SetError::UnknownName));
        assert_eq!(r.set("node.name", "iqn.y:b"), Err(SetError::Identity));
        assert!(matches!(
            r.set("node.startup", "sometimes"),
            Err(SetError::Invalid(_))
        ));
        assert!(r
            .set("node.conn[0].iscsi.MaxRecvDataSegmentLength", "100")
            .is_err());
        r.set("node.conn[0].iscsi.HeaderDigest", "CRC32C").unwrap();
        assert!(r.local_params().header_digest == vec![hydra_proto::negotiate::Digest::Crc32c]);
        let e = Record::parse(RecordType::Node, "node.startup = maybe\n").unwrap_err();
        assert!(e.starts_with("line 1: node.startup:"), "{e}");
    }

    #[test]
    fn iscsid_conf_sets_defaults_and_names_bad_lines() {
        let (node, disc) = parse_iscsid_conf(
            "iscsid.conf",
            "iscsid.startup = /bin/true\nnode.startup = automatic\n# c\ndiscovery.sendtargets.auth.authmethod = CHAP\n",
        )
        .unwrap();
        assert_eq!(node.get("node.startup"), "automatic");
        assert_eq!(disc.get("discovery.sendtargets.auth.authmethod"), "CHAP");
        let e = parse_iscsid_conf(
            "/x/iscsid.conf",
            "\nnode.session.timeo.replacement_timeout = -5\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("/x/iscsid.conf:2: node.session.timeo.replacement_timeout:"),
            "{e}"
        );
    }

    #[test]
    fn portal_text_brackets_ipv6() {
        assert_eq!(portal_text("10.200.0.1", 3260), "10.200.0.1:3260");
        assert_eq!(portal_text("::1", 3260), "[::1]:3260");
    }
}
