//! The node database in open-iscsi's layout (usr/idbm.c), under a root that defaults to
//! /etc/iscsi as on Debian:
//!
//! - `nodes/<target>/<ip>,<port>,<tpgt>/default` — one node record per target portal;
//! - `send_targets/<ip>,<port>/st_config` — the SendTargets discovery record, and next to
//!   it a symlink `<target>,<ip>,<port>,<tpgt>,default` to each node it found;
//! - `iscsid.conf` — the settings new records start with;
//! - `initiatorname.iscsi` — `InitiatorName=…`, generated on first use when missing.
//!
//! Files are replaced atomically (write a temporary file, fsync, rename), so a reader —
//! the daemon logging in — sees the old record or the new one, never half of one. Names
//! that come from the wire (target names, addresses) are checked before they become
//! path components: a target cannot make hydra write outside the database.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::discovery::Discovered;
use crate::record::{parse_iscsid_conf, Record, RecordType};
use crate::{Error, Result};

/// The only interface hydra has: the default TCP one.
pub const IFACE: &str = "default";

/// Where a node record lives: target name, portal, TPGT.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    pub target: String,
    pub address: String,
    pub port: u16,
    pub tpgt: u16,
}

impl NodeId {
    pub fn of(r: &Record) -> NodeId {
        NodeId {
            target: r.get("node.name").to_string(),
            address: r.get("node.conn[0].address").to_string(),
            port: r.get("node.conn[0].port").parse().unwrap_or(3260),
            tpgt: r.get("node.tpgt").parse().unwrap_or(1),
        }
    }
}

pub struct NodeDb {
    root: PathBuf,
}

fn db_err(what: impl std::fmt::Display) -> Error {
    Error::Db(what.to_string())
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::io(path.display().to_string(), e)
}

/// A target name usable as a directory name: RFC 3720 §3.2.6 names (iqn., eui., naa.)
/// never contain '/' or NUL, and none starts with '.'.
pub fn check_target_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 223
        || name.starts_with('.')
        || name.contains(['/', '\0', '\n'])
    {
        return Err(db_err(format!("invalid target name '{name}'")));
    }
    Ok(())
}

fn check_address(a: &str) -> Result<()> {
    a.parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| db_err(format!("invalid portal address '{a}'")))
}

/// Write `text` to `path` atomically.
fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().expect("file in a directory");
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("record")
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, e))?;
    f.write_all(text.as_bytes()).map_err(|e| io_err(&tmp, e))?;
    f.sync_all().map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

impl NodeDb {
    pub fn new(root: impl Into<PathBuf>) -> NodeDb {
        NodeDb { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `InitiatorName=` from initiatorname.iscsi; the file is generated when missing,
    /// as Debian's open-iscsi does on first start (lib/open-iscsi/startup-checks.sh).
    pub fn initiator_name(&self) -> Result<String> {
        let path = self.root.join("initiatorname.iscsi");
        match std::fs::read_to_string(&path) {
            Ok(t) => t
                .lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix("InitiatorName="))
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .ok_or_else(|| {
                    db_err(format!(
                        "{}: no InitiatorName= line (the file must name this initiator)",
                        path.display()
                    ))
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut r = [0u8; 6];
                getrandom::getrandom(&mut r).map_err(|e| db_err(format!("random: {e}")))?;
                let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
                let name = format!("iqn.2026-11.org.hydra:01:{hex}");
                let text = format!(
                    "## DO NOT EDIT OR REMOVE THIS FILE!\n## If you remove this file, the iSCSI daemon will not start.\n## If you change the InitiatorName, existing access control lists\n## may reject this initiator.  The InitiatorName must be unique\n## for each iSCSI initiator.  Do NOT duplicate iSCSI InitiatorNames.\n## (generated by hydra)\nInitiatorName={name}\n"
                );
                write_atomic(&path, &text, 0o600)?;
                Ok(name)
            }
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// The (node, discovery) records new ones start from: defaults and iscsid.conf.
    pub fn templates(&self) -> Result<(Record, Record)> {
        let path = self.root.join("iscsid.conf");
        match std::fs::read_to_string(&path) {
            Ok(t) => parse_iscsid_conf(&path.display().to_string(), &t).map_err(db_err),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((
                Record::new(RecordType::Node),
                Record::new(RecordType::Discovery),
            )),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn node_dir(&self, id: &NodeId) -> PathBuf {
        self.root
            .join("nodes")
            .join(&id.target)
            .join(format!("{},{},{}", id.address, id.port, id.tpgt))
    }

    fn read_record(path: &Path, ty: RecordType) -> Result<Record> {
        let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
        Record::parse(ty, &text).map_err(|e| db_err(format!("{}: {e}", path.display())))
    }

    /// The records under one target's directory (`nodes/<target>/`), if it exists.
    fn read_target(dir: &Path, out: &mut Vec<Record>) -> Result<()> {
        let Ok(portals) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        for p in portals {
            let file = p.map_err(|e| io_err(dir, e))?.path().join(IFACE);
            if file.is_file() {
                out.push(Self::read_record(&file, RecordType::Node)?);
            }
        }
        Ok(())
    }

    /// Every node record, sorted by target and portal.
    pub fn nodes(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        let nodes = self.root.join("nodes");
        let targets = match std::fs::read_dir(&nodes) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&nodes, e)),
        };
        for t in targets {
            Self::read_target(&t.map_err(|e| io_err(&nodes, e))?.path(), &mut out)?;
        }
        out.sort_by_key(NodeId::of);
        Ok(out)
    }

    /// Node records matching `-T target` and `-p address[:port]` (either may be absent).
    /// With a target, only that target's directory is read.
    pub fn find(
        &self,
        target: Option<&str>,
        portal: Option<(&str, Option<u16>)>,
    ) -> Result<Vec<Record>> {
        let mut found = match target {
            None => self.nodes()?,
            // A name that could not be a directory here has no records.
            Some(t) if check_target_name(t).is_err() => Vec::new(),
            Some(t) => {
                let mut v = Vec::new();
                Self::read_target(&self.root.join("nodes").join(t), &mut v)?;
                v.sort_by_key(NodeId::of);
                v
            }
        };
        found.retain(|r| {
            let id = NodeId::of(r);
            target.is_none_or(|t| id.target == t)
                && portal.is_none_or(|(a, p)| id.address == a && p.is_none_or(|p| p == id.port))
        });
        Ok(found)
    }

    pub fn save_node(&self, r: &Record) -> Result<()> {
        let id = NodeId::of(r);
        check_target_name(&id.target)?;
        check_address(&id.address)?;
        write_atomic(&self.node_dir(&id).join(IFACE), &r.to_file(), 0o600)
    }

    /// Remove a node record (and its discovery link, if any).
    pub fn delete_node(&self, r: &Record) -> Result<()> {
        let id = NodeId::of(r);
        let dir = self.node_dir(&id);
        std::fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        // The target's directory goes when its last portal does.
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        let d = r.get("node.discovery_address");
        if !d.is_empty() {
            let link = self
                .st_dir(d, r.get("node.discovery_port").parse().unwrap_or(3260))
                .join(link_name(&id));
            let _ = std::fs::remove_file(link);
        }
        Ok(())
    }

    fn st_dir(&self, address: &str, port: u16) -> PathBuf {
        self.root
            .join("send_targets")
            .join(format!("{address},{port}"))
    }

    /// Every SendTargets discovery record.
    pub fn discovery_records(&self) -> Result<Vec<Record>> {
        let dir = self.root.join("send_targets");
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&dir, e)),
        };
        for e in entries {
            let file = e.map_err(|e| io_err(&dir, e))?.path().join("st_config");
            if file.is_file() {
                out.push(Self::read_record(&file, RecordType::Discovery)?);
            }
        }
        out.sort_by_key(Record::portal);
        Ok(out)
    }

    /// The discovery record for a portal, if one is stored.
    pub fn discovery(&self, address: &str, port: u16) -> Result<Option<Record>> {
        let file = self.st_dir(address, port).join("st_config");
        if file.is_file() {
            Self::read_record(&file, RecordType::Discovery).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn save_discovery(&self, r: &Record) -> Result<()> {
        let address = r.get("discovery.sendtargets.address");
        check_address(address)?;
        let port = r.get("discovery.sendtargets.port").parse().unwrap_or(3260);
        write_atomic(
            &self.st_dir(address, port).join("st_config"),
            &r.to_file(),
            0o600,
        )
    }

    /// A new discovery record for a portal, from the iscsid.conf template.
    pub fn new_discovery(&self, address: &str, port: u16) -> Result<Record> {
        check_address(address)?;
        let (_, template) = self.templates()?;
        let text = format!(
            "{}discovery.sendtargets.address = {address}\ndiscovery.sendtargets.port = {port}\n",
            template.to_file()
        );
        Record::parse(RecordType::Discovery, &text).map_err(db_err)
    }

    /// Delete a discovery record and the node records found through it
    /// (`-m discoverydb -o delete`, as open-iscsi does).
    pub fn delete_discovery(&self, address: &str, port: u16) -> Result<Vec<Record>> {
        let gone: Vec<Record> = self
            .nodes()?
            .into_iter()
            .filter(|r| {
                r.get("node.discovery_address") == address
                    && r.get("node.discovery_port") == port.to_string()
            })
            .collect();
        for r in &gone {
            self.delete_node(r)?;
        }
        let dir = self.st_dir(address, port);
        std::fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        Ok(gone)
    }

    /// Store what a SendTargets discovery through `disc` found: new portals get records
    /// from the iscsid.conf template; records already there keep their settings (unlike
    /// open-iscsi's legacy mode, a rediscovery does not undo `-o update`); records this
    /// portal reported before and no longer does are deleted. Returns the records found.
    pub fn record_discovered(&self, disc: &Record, found: &[Discovered]) -> Result<Vec<Record>> {
        let address = disc.get("discovery.sendtargets.address").to_string();
        let port: u16 = disc
            .get("discovery.sendtargets.port")
            .parse()
            .unwrap_or(3260);
        for t in found {
            check_target_name(&t.name)?;
            for p in &t.portals {
                check_address(&p.address)?;
            }
        }
        self.save_discovery(disc)?;
        let (template, _) = self.templates()?;
        let existing = self.nodes()?;
        let mut out = Vec::new();
        for t in found {
            for p in &t.portals {
                let id = NodeId {
                    target: t.name.clone(),
                    address: p.address.clone(),
                    port: p.port,
                    tpgt: p.tpgt,
                };
                let r = match existing.iter().find(|r| NodeId::of(r) == id) {
                    Some(r) => r.clone(),
                    None => {
                        let mut r = Record::node(&template, &t.name, &p.address, p.port, p.tpgt);
                        r.set("node.discovery_address", &address).map_err(db_err)?;
                        r.set("node.discovery_port", &port.to_string())
                            .map_err(db_err)?;
                        r.set("node.discovery_type", "send_targets")
                            .map_err(db_err)?;
                        self.save_node(&r)?;
                        r
                    }
                };
                let link = self.st_dir(&address, port).join(link_name(&id));
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(self.node_dir(&id), &link)
                    .map_err(|e| io_err(&link, e))?;
                out.push(r);
            }
        }
        for r in existing {
            let from_here = r.get("node.discovery_address") == address
                && r.get("node.discovery_port") == port.to_string();
            if from_here && !out.iter().any(|o| NodeId::of(o) == NodeId::of(&r)) {
                self.delete_node(&r)?;
            }
        }
        Ok(out)
    }
}

/// `<target>,<ip>,<port>,<tpgt>,<iface>`: the link name open-iscsi uses in send_targets/.
fn link_name(id: &NodeId) -> String {
    format!(
        "{},{},{},{},{IFACE}",
        id.target, id.address, id.port, id.tpgt
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Portal;

    fn found(name: &str, ports: &[u16]) -> Discovered {
        Discovered {
            name: name.into(),
            portals: ports
                .iter()
                .map(|p| Portal {
                    address: "10.200.0.1".into(),
                    port: *p,
                    tpgt: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn discovery_creates_keeps_and_prunes_records() {
        let dir = std::env::temp_dir().join(format!("hydra-nodedb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = NodeDb::new(&dir);
        let disc = db.new_discovery("10.200.0.1", 3260).unwrap();
        let got = db
            .record_discovered(&disc, &[found("iqn.x:a", &[3260, 3261])])
            .unwrap();
        assert_eq!(got.len(), 2);
        assert!(dir
            .join("nodes/iqn.x:a/10.200.0.1,3261,1/default")
            .is_file());
        assert!(dir
            .join("send_targets/10.200.0.1,3260/iqn.x:a,10.200.0.1,3260,1,default")
            .is_symlink());
        // A setting changed by hand survives rediscovery; a vanished portal is pruned.
        let mut r = db
            .find(Some("iqn.x:a"), Some(("10.200.0.1", Some(3260))))
            .unwrap()
            .remove(0);
        r.set("node.startup", "automatic").unwrap();
        db.save_node(&r).unwrap();
        db.record_discovered(&disc, &[found("iqn.x:a", &[3260])])
            .unwrap();
        let all = db.nodes().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].get("node.startup"), "automatic");
        assert_eq!(db.delete_discovery("10.200.0.1", 3260).unwrap().len(), 1);
        assert!(db.nodes().unwrap().is_empty());
        // A target name that would escape the database is refused.
        assert!(db
            .record_discovered(&disc, &[found("../../etc", &[3260])])
            .is_err());
        assert!(!dir.join("etc").exists());
        let name = db.initiator_name().unwrap();
        assert!(name.starts_with("iqn.2026-11.org.hydra:01:"));
        assert_eq!(db.initiator_name().unwrap(), name);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
