//! The cluster name and nodelist, read as fence_scsi reads them: by running
//! `corosync-cmapctl totem.cluster_name` and `corosync-cmapctl nodelist` and parsing
//! their `key (type) = value` lines (cmap_keys(8)). Parsing is sans-IO.

use std::path::Path;
use std::time::Duration;

use crate::{Error, Result};

/// One `nodelist.node.<pos>` of the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeEntry {
    /// `<pos>`: what fence_scsi's `key_value=id` uses.
    pub position: u32,
    pub nodeid: Option<u32>,
    pub name: Option<String>,
    /// `ring0_addr`, `ring1_addr`, ... in ring order.
    pub addrs: Vec<String>,
}

impl NodeEntry {
    /// The name fence_scsi would be given for this node: `name`, else `ring0_addr`.
    pub fn plug(&self) -> Option<&str> {
        self.name
            .as_deref()
            .or(self.addrs.first().map(String::as_str))
    }
}

/// `key (type) = value` → (key, value).
fn line(l: &str) -> Option<(&str, &str)> {
    let (k, rest) = l.split_once(" (")?;
    let (_, v) = rest.split_once(") = ")?;
    Some((k.trim(), v.trim_end()))
}

/// `totem.cluster_name (str) = NAME`.
pub fn parse_cluster_name(out: &str) -> Option<String> {
    out.lines()
        .filter_map(line)
        .find(|(k, _)| *k == "totem.cluster_name")
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Every `nodelist.node.<pos>.*` key, grouped by position, in position order.
pub fn parse_nodelist(out: &str) -> Vec<NodeEntry> {
    let mut nodes: Vec<NodeEntry> = Vec::new();
    for (k, v) in out.lines().filter_map(line) {
        let Some(rest) = k.strip_prefix("nodelist.node.") else {
            continue;
        };
        let Some((pos, field)) = rest.split_once('.') else {
            continue;
        };
        let Ok(pos) = pos.parse::<u32>() else {
            continue;
        };
        let i = match nodes.iter().position(|n| n.position == pos) {
            Some(i) => i,
            None => {
                nodes.push(NodeEntry {
                    position: pos,
                    ..NodeEntry::default()
                });
                nodes.len() - 1
            }
        };
        let n = &mut nodes[i];
        match field {
            "nodeid" => n.nodeid = v.parse().ok(),
            "name" => n.name = Some(v.to_string()),
            f => {
                if let Some(r) = f.strip_prefix("ring").and_then(|r| r.strip_suffix("_addr")) {
                    if let Ok(r) = r.parse::<usize>() {
                        if n.addrs.len() <= r {
                            n.addrs.resize(r + 1, String::new());
                        }
                        n.addrs[r] = v.to_string();
                    }
                }
            }
        }
    }
    nodes.sort_by_key(|n| n.position);
    nodes
}

/// The node named `plug`: by `name` first, then by any ring address (fence_scsi
/// `get_node_id` tries `.name` then `.ring._addr`).
pub fn find_by_plug<'a>(nodes: &'a [NodeEntry], plug: &str) -> Option<&'a NodeEntry> {
    nodes
        .iter()
        .find(|n| n.name.as_deref() == Some(plug))
        .or_else(|| nodes.iter().find(|n| n.addrs.iter().any(|a| a == plug)))
}

/// The node with corosync node id `id` (dlm_controld's `node=`).
pub fn find_by_nodeid(nodes: &[NodeEntry], id: u32) -> Option<&NodeEntry> {
    nodes.iter().find(|n| n.nodeid == Some(id))
}

/// The cluster name and nodelist of the running corosync.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub cluster_name: String,
    pub nodes: Vec<NodeEntry>,
}

async fn cmapctl(path: &Path, arg: &str, timeout: Duration) -> Result<String> {
    let what = format!("{} {arg}", path.display());
    let run = tokio::process::Command::new(path)
        .arg(arg)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| Error::Corosync(format!("{what}: no answer in {} s", timeout.as_secs())))?
        .map_err(|e| Error::Corosync(format!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Corosync(format!(
            "{what}: {} ({})",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl ClusterInfo {
    /// Ask the local corosync through `corosync-cmapctl` at `path`.
    pub async fn read(path: &Path, timeout: Duration) -> Result<ClusterInfo> {
        let name = cmapctl(path, "totem.cluster_name", timeout).await?;
        let cluster_name = parse_cluster_name(&name).ok_or_else(|| {
            Error::Corosync("Failed: cannot get cluster name (totem.cluster_name)".into())
        })?;
        let nodes = parse_nodelist(&cmapctl(path, "nodelist", timeout).await?);
        Ok(ClusterInfo {
            cluster_name,
            nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODELIST: &str = "nodelist.local_node_pos (u32) = 1
nodelist.node.0.name (str) = alpha
nodelist.node.0.nodeid (u32) = 1
nodelist.node.0.ring0_addr (str) = 10.200.0.1
nodelist.node.1.name (str) = beta
nodelist.node.1.nodeid (u32) = 2
nodelist.node.1.ring0_addr (str) = 10.200.0.2
nodelist.node.1.ring1_addr (str) = 10.201.0.2
nodelist.node.2.nodeid (u32) = 7
nodelist.node.2.ring0_addr (str) = 10.200.0.7
";

    #[test]
    fn cmapctl_output() {
        assert_eq!(
            parse_cluster_name("totem.cluster_name (str) = hydra\n").as_deref(),
            Some("hydra")
        );
        assert_eq!(
            parse_cluster_name("Can't get key totem.cluster_name. Error CS_ERR_NOT_EXIST\n"),
            None
        );
        let n = parse_nodelist(NODELIST);
        assert_eq!(n.len(), 3);
        assert_eq!(n[1].addrs, ["10.200.0.2", "10.201.0.2"]);
        assert_eq!(find_by_plug(&n, "beta").unwrap().position, 1);
        assert_eq!(find_by_plug(&n, "10.201.0.2").unwrap().position, 1);
        assert_eq!(
            find_by_plug(&n, "10.200.0.7").unwrap().plug(),
            Some("10.200.0.7")
        );
        assert!(find_by_plug(&n, "gamma").is_none());
        assert_eq!(find_by_nodeid(&n, 7).unwrap().position, 2);
        assert_eq!(find_by_nodeid(&n, 2).unwrap().plug(), Some("beta"));
    }
}
