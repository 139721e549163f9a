//! `-m node`: the node records (list, show, new, delete, update) and logging them in
//! and out through the daemon (`-l`, `-u`, `-L`, `-U`), with open-iscsi's messages.

use std::process::ExitCode;

use hydra_initiator::ipc::{Request, Response};
use hydra_initiator::iscsid::code;
use hydra_initiator::node_db::{check_target_name, NodeId, IFACE};
use hydra_initiator::record::{portal_text, Record};

use super::{fail, parse_portal, print_level, report_refusal, Ctx};
use crate::cli::args::Parsed;

/// `[iface: default, target: T, portal: A,P]`, as open-iscsi names a node in messages.
fn node_text(target: &str, address: &str, port: u16) -> String {
    format!("[iface: {IFACE}, target: {target}, portal: {address},{port}]")
}

pub fn main(ctx: &Ctx, p: &Parsed) -> Result<ExitCode, String> {
    let target = p.value("targetname");
    let portal = match p.value("portal").map(parse_portal).transpose() {
        Ok(x) => x,
        Err(e) => return fail(code::INVAL, &e),
    };
    if let Some(which) = p.value("loginall") {
        return login_matching(ctx, which);
    }
    if let Some(which) = p.value("logoutall") {
        return logout_matching(ctx, which);
    }
    if p.values("op").contains(&"new") {
        let (Some(t), Some((a, port, tpgt))) = (target, &portal) else {
            return fail(
                code::INVAL,
                "-o new needs -T targetname and -p ip:port[,tpgt]",
            );
        };
        return new_record(ctx, t, a, port.unwrap_or(3260), tpgt.unwrap_or(1));
    }
    let records = ctx
        .db
        .find(
            target,
            portal.as_ref().map(|(a, port, _)| (a.as_str(), *port)),
        )
        .map_err(|e| e.to_string())?;
    if records.is_empty() {
        return fail(code::NO_OBJS_FOUND, "No records found");
    }
    if p.has("login") {
        let nodes: Vec<_> = records
            .iter()
            .map(|r| {
                let id = NodeId::of(r);
                (id.target, id.address, id.port)
            })
            .collect();
        return login_all(ctx, &nodes);
    }
    if p.has("logout") {
        return logout_records(ctx, &records);
    }
    match p.value("op") {
        Some("delete") => {
            // A record in use is logged out first, as open-iscsi does.
            if logout_records(ctx, &records)? != ExitCode::SUCCESS {
                return Ok(ExitCode::from(code::LOGOUT));
            }
            for r in &records {
                ctx.db.delete_node(r).map_err(|e| e.to_string())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("update") => {
            let (Some(n), Some(v)) = (p.value("name"), p.value("value")) else {
                return fail(
                    code::INVAL,
                    "update requires name and value (-n NAME -v VALUE)",
                );
            };
            let mut changed = Vec::new();
            for r in &records {
                let mut r = r.clone();
                if let Err(e) = r.set(n, v) {
                    return super::discovery::update_refused(n, &e);
                }
                changed.push(r);
            }
            // All or nothing: every record was checked before any is written.
            for r in &changed {
                ctx.db.save_node(r).map_err(|e| e.to_string())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("show") => {
            show(&records, p.has("show"));
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => fail(code::INVAL, &format!("Invalid operation {other}")),
        None if target.is_some() || portal.is_some() => {
            show(&records, p.has("show"));
            Ok(ExitCode::SUCCESS)
        }
        None => {
            match print_level(p) {
                Ok(0) => {
                    for r in &records {
                        let id = NodeId::of(r);
                        println!(
                            "{},{} {}",
                            portal_text(&id.address, id.port),
                            id.tpgt,
                            id.target
                        );
                    }
                }
                Ok(_) => tree(&records),
                Err(e) => return fail(code::INVAL, &e),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show(records: &[Record], secrets: bool) {
    for r in records {
        print!("{}", r.display(secrets));
    }
}

/// `-P 1`: targets, their portals, the interface (README §7.2 of open-iscsi).
fn tree(records: &[Record]) {
    let mut last = String::new();
    for r in records {
        let id = NodeId::of(r);
        if id.target != last {
            println!("Target: {}", id.target);
            last = id.target.clone();
        }
        println!(
            "\tPortal: {},{}",
            portal_text(&id.address, id.port),
            id.tpgt
        );
        println!("\t\tIface Name: {IFACE}");
    }
}

fn new_record(
    ctx: &Ctx,
    target: &str,
    address: &str,
    port: u16,
    tpgt: u16,
) -> Result<ExitCode, String> {
    if let Err(e) = check_target_name(target) {
        return fail(code::INVAL, &e.to_string());
    }
    if address.parse::<std::net::IpAddr>().is_err() {
        return fail(code::INVAL, &format!("invalid portal address {address}"));
    }
    let (template, _) = match ctx.db.templates() {
        Ok(t) => t,
        Err(e) => return fail(code::IDBM, &e.to_string()),
    };
    let r = Record::node(&template, target, address, port, tpgt);
    if let Err(e) = ctx.db.save_node(&r) {
        return fail(code::IDBM, &e.to_string());
    }
    println!(
        "New iSCSI node [tcp:[hw=,ip=,net_if=,iscsi_if={IFACE}] {address},{port},{tpgt} {target}] added"
    );
    Ok(ExitCode::SUCCESS)
}

/// Log in to each (target, address, port): the "Logging in to" lines first, then each
/// result, then the first error's code — open-iscsi's order and exit status.
pub fn login_all(ctx: &Ctx, nodes: &[(String, String, u16)]) -> Result<ExitCode, String> {
    for (t, a, port) in nodes {
        println!("Logging in to {}", node_text(t, a, *port));
    }
    let mut first_err: Option<u8> = None;
    for (t, a, port) in nodes {
        let req = Request::Login {
            target: t.clone(),
            address: a.clone(),
            port: *port,
        };
        let r = match ctx.call(&req) {
            Ok(r) => r,
            Err(c) => return Ok(ExitCode::from(c)),
        };
        match r {
            Response::Sessions { .. } => {
                println!("Login to {} successful.", node_text(t, a, *port))
            }
            Response::Error { code: c, message } if c == code::SESS_EXISTS => {
                eprintln!("iscsiadm: {message}");
                first_err.get_or_insert(c);
            }
            Response::Error { code: c, message } => {
                report_refusal(&format!("login to {}", node_text(t, a, *port)), c, &message);
                first_err.get_or_insert(c);
            }
        }
    }
    match first_err {
        None => Ok(ExitCode::SUCCESS),
        Some(c) if c == code::SESS_EXISTS => Ok(ExitCode::from(c)),
        Some(c) => fail(c, "Could not log into all portals"),
    }
}

/// Log out the sessions of these records (none logged in: exit 21, as open-iscsi).
fn logout_records(ctx: &Ctx, records: &[Record]) -> Result<ExitCode, String> {
    let sessions = match ctx.sessions() {
        Ok(s) => s,
        Err(c) => return Ok(ExitCode::from(c)),
    };
    let sids: Vec<_> = sessions
        .iter()
        .filter(|s| {
            records.iter().any(|r| {
                let id = NodeId::of(r);
                id.target == s.target && id.address == s.address && id.port == s.port
            })
        })
        .map(|s| s.sid)
        .collect();
    if sids.is_empty() {
        return fail(code::NO_OBJS_FOUND, "No matching sessions found");
    }
    super::session::logout(ctx, &sessions, &sids)
}

fn startup_matches(r: &Record, which: &str) -> bool {
    which == "all" || r.get("node.startup") == which
}

/// `-L all|manual|automatic|onboot`.
fn login_matching(ctx: &Ctx, which: &str) -> Result<ExitCode, String> {
    if !matches!(which, "all" | "manual" | "automatic" | "onboot") {
        return fail(code::INVAL, &format!("Invalid loginall option {which}"));
    }
    let records = ctx.db.nodes().map_err(|e| e.to_string())?;
    let nodes: Vec<_> = records
        .iter()
        .filter(|r| startup_matches(r, which))
        .map(|r| {
            let id = NodeId::of(r);
            (id.target, id.address, id.port)
        })
        .collect();
    if nodes.is_empty() {
        return fail(code::NO_OBJS_FOUND, "No records found");
    }
    login_all(ctx, &nodes)
}

/// `-U all|manual|automatic` (onboot sessions are never logged out this way).
fn logout_matching(ctx: &Ctx, which: &str) -> Result<ExitCode, String> {
    if !matches!(which, "all" | "manual" | "automatic") {
        return fail(code::INVAL, &format!("Invalid logoutall option {which}"));
    }
    let records = ctx.db.nodes().map_err(|e| e.to_string())?;
    let chosen: Vec<_> = records
        .into_iter()
        .filter(|r| startup_matches(r, which) && r.get("node.startup") != "onboot")
        .collect();
    if which == "all" {
        // Sessions whose record was deleted meanwhile go too.
        let sessions = match ctx.sessions() {
            Ok(s) => s,
            Err(c) => return Ok(ExitCode::from(c)),
        };
        if sessions.is_empty() {
            return fail(code::NO_OBJS_FOUND, "No matching sessions found");
        }
        let sids: Vec<_> = sessions.iter().map(|s| s.sid).collect();
        return super::session::logout(ctx, &sessions, &sids);
    }
    logout_records(ctx, &chosen)
}
