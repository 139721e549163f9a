//! `hydra iscsiadm` — open-iscsi's iscsiadm command line. So far: SendTargets discovery
//! (`-m discovery -t st -p IP[:PORT]`, `-m discoverydb -t st -p IP[:PORT] --discover`),
//! which, as in open-iscsi, works without the daemon; it prints open-iscsi's
//! `ip:port,tpgt target` lines and exits with open-iscsi's codes (4 connection failure,
//! 5 login failure, 7 invalid parameter, 21 no portals). Node records, login/logout and
//! sessions need `hydra iscsid` (not written yet) and are refused by name.

use std::process::ExitCode;
use std::time::Duration;

use hydra_initiator::discovery::send_targets;
use hydra_initiator::Error;

use super::args::{parse, Spec};

const SPECS: &[Spec] = &[
    Spec {
        short: 'm',
        long: "mode",
        value: true,
    },
    Spec {
        short: 't',
        long: "type",
        value: true,
    },
    Spec {
        short: 'p',
        long: "portal",
        value: true,
    },
    Spec {
        short: 'D',
        long: "discover",
        value: false,
    },
    Spec {
        short: 'I',
        long: "interface",
        value: true,
    },
    Spec {
        short: 'o',
        long: "op",
        value: true,
    },
    Spec {
        short: 'P',
        long: "print",
        value: true,
    },
    Spec {
        short: 'T',
        long: "targetname",
        value: true,
    },
    Spec {
        short: 'l',
        long: "login",
        value: false,
    },
    Spec {
        short: 'u',
        long: "logout",
        value: false,
    },
    Spec {
        short: 'L',
        long: "loginall",
        value: true,
    },
    Spec {
        short: 'U',
        long: "logoutall",
        value: true,
    },
    Spec {
        short: 'n',
        long: "name",
        value: true,
    },
    Spec {
        short: 'v',
        long: "value",
        value: true,
    },
    Spec {
        short: 'r',
        long: "sid",
        value: true,
    },
    Spec {
        short: 'R',
        long: "rescan",
        value: false,
    },
    Spec {
        short: 'S',
        long: "show",
        value: false,
    },
    Spec {
        short: 'h',
        long: "help",
        value: false,
    },
];

const HELP: &str = "usage: hydra iscsiadm -m discovery -t st|sendtargets -p IP[:PORT]
       hydra iscsiadm -m discoverydb -t st|sendtargets -p IP[:PORT] --discover
The initiator name is read from $HYDRA_ISCSI_ROOT/initiatorname.iscsi (default /etc/iscsi).";

/// open-iscsi's exit codes (include/iscsi_err.h).
const ERR_TRANS: u8 = 4;
const ERR_LOGIN: u8 = 5;
const ERR_INVAL: u8 = 7;
const ERR_NO_OBJS_FOUND: u8 = 21;

fn fail(code: u8, msg: &str) -> Result<ExitCode, String> {
    eprintln!("iscsiadm: {msg}");
    Ok(ExitCode::from(code))
}

/// `InitiatorName=` from initiatorname.iscsi, or a name for this host.
fn initiator_name() -> String {
    let root = std::env::var("HYDRA_ISCSI_ROOT").unwrap_or_else(|_| "/etc/iscsi".into());
    std::fs::read_to_string(format!("{root}/initiatorname.iscsi"))
        .ok()
        .and_then(|t| {
            t.lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix("InitiatorName=").map(str::to_string))
        })
        .unwrap_or_else(|| "iqn.2026-11.org.hydra:initiator".into())
}

pub fn main(args: Vec<String>) -> Result<ExitCode, String> {
    let p = match parse(&args, SPECS) {
        Ok(p) => p,
        Err(e) => return fail(ERR_INVAL, &e),
    };
    if p.has("help") {
        println!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let mode = p.value("mode").unwrap_or("");
    match mode {
        "discovery" | "discoverydb" => {}
        "node" | "session" | "iface" | "fw" | "host" => {
            return fail(
                ERR_INVAL,
                &format!("mode {mode}: needs hydra iscsid, which hydra does not have yet"),
            )
        }
        "" => return fail(ERR_INVAL, "no mode specified (-m)"),
        other => return fail(ERR_INVAL, &format!("Invalid mode {other}")),
    }
    if mode == "discoverydb" && !p.has("discover") {
        return fail(
            ERR_INVAL,
            "discoverydb records are not kept by hydra yet: use --discover",
        );
    }
    if let Some(op) = p.value("op") {
        return fail(
            ERR_INVAL,
            &format!("-o {op}: discovery records are not kept by hydra yet"),
        );
    }
    match p.value("type") {
        Some("st" | "sendtargets") => {}
        Some(t) => {
            return fail(
                ERR_INVAL,
                &format!("discovery type {t} is not supported (sendtargets only)"),
            )
        }
        None => return fail(ERR_INVAL, "discovery type not specified (-t st)"),
    }
    let Some(portal) = p.value("portal") else {
        return fail(ERR_INVAL, "portal not specified (-p IP[:PORT])");
    };
    let url = format!("iscsi://{portal}/x/0");
    let Ok(u) = hydra_initiator::url::IscsiUrl::parse(&url) else {
        return fail(ERR_INVAL, &format!("invalid portal {portal}"));
    };
    let Ok(addr) = u.addr() else {
        return fail(ERR_INVAL, &format!("cannot resolve host name {}", u.host));
    };
    let name = initiator_name();
    let found = super::block_on(send_targets(addr, &name, None, Duration::from_secs(15)));
    match found {
        Ok(targets) => {
            let mut any = false;
            for t in &targets {
                for po in &t.portals {
                    println!("{}:{},{} {}", po.address, po.port, po.tpgt, t.name);
                    any = true;
                }
            }
            if !any {
                return fail(ERR_NO_OBJS_FOUND, "No portals found");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Io { source, .. }) => {
            eprintln!(
                "iscsiadm: cannot make connection to {}: {}",
                u.host,
                io_text(&source)
            );
            fail(
                ERR_TRANS,
                "Could not perform SendTargets discovery: encountered connection failure",
            )
        }
        Err(e @ (Error::LoginRefused(_) | Error::Auth(_))) => {
            eprintln!("iscsiadm: discovery login to {portal} failed: {e}");
            fail(
                ERR_LOGIN,
                "Could not perform SendTargets discovery: encountered iSCSI login failure",
            )
        }
        Err(e) => {
            eprintln!("iscsiadm: {e}");
            fail(
                ERR_TRANS,
                "Could not perform SendTargets discovery: encountered connection failure",
            )
        }
    }
}

/// "Connection refused" rather than Rust's "Connection refused (os error 111)".
fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_string()
}
