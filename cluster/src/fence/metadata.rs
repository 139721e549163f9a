//! `-o metadata`: the fence-agents XML description (dlm.md §3.2; fencing.py
//! `metadata()`, validated upstream against `lib/metadata.rng`), which pacemaker's
//! stonith-ng and `pcs stonith describe` read.

use super::options::TABLE;

const SHORTDESC: &str = "Fence agent for SCSI persistent reservation";
const LONGDESC: &str = "fence_scsi is an I/O fencing agent that uses SCSI-3 persistent \
reservations to control access to shared storage devices. These devices must support \
SCSI-3 persistent reservations (SPC-3 or greater) as well as the \"preempt-and-abort\" \
subcommand. The fence_scsi agent works by having each node in the cluster register a unique \
key with the SCSI device(s). Reservation key is generated from \"node id\" (default) or from \
\"node name hash\" (RECOMMENDED) by adjusting \"key_value\" option. Once registered, a single \
node will become the reservation holder by creating a \"write exclusive, registrants only\" \
reservation on the device(s). The result is that only registered nodes may write to the \
device(s). When a node failure occurs, the fence_scsi agent will remove the key belonging to \
the failed node from the device(s). The failed node will no longer be able to write to the \
device(s). A manual reboot is required. hydra's fence_scsi takes /dev/mapper maps of the \
hydra node daemon (every path of the map) and iSCSI URLs.";

/// XML-escape text and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// The document.
pub fn xml() -> String {
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" ?>\n");
    x.push_str(&format!(
        "<resource-agent name=\"fence_scsi\" shortdesc=\"{}\" >\n",
        esc(SHORTDESC)
    ));
    x.push_str(&format!("<longdesc>{}</longdesc>\n", esc(LONGDESC)));
    x.push_str("<vendor-url></vendor-url>\n<parameters>\n");
    for o in TABLE.iter().filter(|o| o.listed) {
        let mixed = match (o.short, o.value) {
            (Some(c), true) => format!("-{c}, --{}=[{}]", o.long, o.name),
            (Some(c), false) => format!("-{c}, --{}", o.long),
            (None, true) => format!("--{}=[{}]", o.long, o.name),
            (None, false) => format!("--{}", o.long),
        };
        let (ty, default) = match o.name {
            "action" => ("string", Some("off")),
            "key_value" => ("select", Some("id")),
            "delay" => ("second", Some("0")),
            "power_timeout" => ("second", Some("20")),
            "corosync_cmap_path" => ("string", Some("/usr/sbin/corosync-cmapctl")),
            _ if o.value => ("string", None),
            _ => ("boolean", None),
        };
        x.push_str(&format!(
            "\t<parameter name=\"{}\" unique=\"0\" required=\"{}\">\n",
            esc(o.name),
            (o.name == "action") as u8
        ));
        x.push_str(&format!("\t\t<getopt mixed=\"{}\" />\n", esc(&mixed)));
        if o.name == "key_value" {
            x.push_str("\t\t<content type=\"select\" default=\"id\"  >\n");
            x.push_str("\t\t\t<option value=\"id\" />\n\t\t\t<option value=\"hash\" />\n");
            x.push_str("\t\t</content>\n");
        } else {
            match default {
                Some(d) => x.push_str(&format!(
                    "\t\t<content type=\"{ty}\" default=\"{}\"  />\n",
                    esc(d)
                )),
                None => x.push_str(&format!("\t\t<content type=\"{ty}\"  />\n")),
            }
        }
        x.push_str(&format!(
            "\t\t<shortdesc lang=\"en\">{}</shortdesc>\n",
            esc(o.shortdesc)
        ));
        x.push_str("\t</parameter>\n");
        if o.name == "port" {
            // fencing.py lists the stdin synonym `plug` as a deprecated alias.
            x.push_str(
                "\t<parameter name=\"plug\" unique=\"0\" required=\"0\" obsoletes=\"port\">\n",
            );
            x.push_str(&format!("\t\t<getopt mixed=\"{}\" />\n", esc(&mixed)));
            x.push_str("\t\t<content type=\"string\"  />\n");
            x.push_str(&format!(
                "\t\t<shortdesc lang=\"en\">{}</shortdesc>\n\t</parameter>\n",
                esc(o.shortdesc)
            ));
        }
    }
    x.push_str("</parameters>\n<actions>\n");
    // fence_scsi: on_target (the node unfences itself) and force_on (automatic unfence).
    x.push_str("\t<action name=\"on\" on_target=\"1\" automatic=\"1\"/>\n");
    for a in [
        "off",
        "status",
        "list",
        "list-status",
        "monitor",
        "metadata",
        "validate-all",
    ] {
        x.push_str(&format!("\t<action name=\"{a}\" />\n"));
    }
    x.push_str("</actions>\n</resource-agent>\n");
    x
}

#[cfg(test)]
mod tests {
    #[test]
    fn metadata_is_xml() {
        let text = super::xml();
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "resource-agent");
        assert_eq!(root.attribute("name"), Some("fence_scsi"));
        let params: Vec<_> = root
            .descendants()
            .filter(|n| n.has_tag_name("parameter"))
            .map(|n| n.attribute("name").unwrap().to_string())
            .collect();
        for p in [
            "action",
            "port",
            "plug",
            "devices",
            "key",
            "key_value",
            "aptpl",
        ] {
            assert!(params.iter().any(|x| x == p), "{p} in {params:?}");
        }
        for p in root.descendants().filter(|n| n.has_tag_name("parameter")) {
            assert!(p.children().any(|c| c.has_tag_name("getopt")));
            assert!(p.children().any(|c| c.has_tag_name("content")));
            assert!(p.children().any(|c| c.has_tag_name("shortdesc")));
        }
        let on = root
            .descendants()
            .find(|n| n.has_tag_name("action") && n.attribute("name") == Some("on"))
            .unwrap();
        assert_eq!(on.attribute("on_target"), Some("1"));
    }
}
