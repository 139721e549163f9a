//! `-m discovery` and `-m discoverydb`: SendTargets discovery, which stores what it
//! finds as node records (the discovery record itself under send_targets/), and the
//! discovery records' own operations. Works without the daemon, as open-iscsi's does;
//! only `-l` (log in to what was found) needs it.

use std::process::ExitCode;
use std::time::Duration;

use hydra_initiator::discovery::send_targets;
use hydra_initiator::iscsid::code;
use hydra_initiator::record::{Record, SetError};
use hydra_initiator::Error;

use super::{fail, io_text, parse_portal, Ctx};
use crate::cli::args::Parsed;

pub fn main(ctx: &Ctx, p: &Parsed, db_mode: bool) -> Result<ExitCode, String> {
    match p.value("type") {
        Some("st" | "sendtargets") | None => {}
        Some(t @ ("isns" | "fw" | "slp")) => {
            return fail(
                code::INVAL,
                &format!("discovery type {t} is not supported (sendtargets only)"),
            )
        }
        Some(t) => return fail(code::INVAL, &format!("Invalid discovery type {t}")),
    }
    let Some(portal) = p.value("portal") else {
        if p.has("type") {
            return fail(code::INVAL, "portal not specified (-p IP[:PORT])");
        }
        return list(ctx);
    };
    let (address, port, _) = match parse_portal(portal) {
        Ok(x) => x,
        Err(e) => return fail(code::INVAL, &e),
    };
    let port = port.unwrap_or(3260);
    if address.parse::<std::net::IpAddr>().is_err() {
        return fail(
            code::INVAL,
            &format!("invalid portal address {address} (an IP address is needed)"),
        );
    }
    let ops = p.values("op");
    if db_mode && !ops.is_empty() && !p.has("discover") {
        return record_ops(ctx, p, &address, port, &ops);
    }
    if db_mode && !p.has("discover") {
        return fail(
            code::INVAL,
            "discoverydb: give --discover or -o new|delete|show|update",
        );
    }
    // Legacy -m discovery starts from iscsid.conf each time (open-iscsi overwrites the
    // record); -m discoverydb uses the stored record when there is one.
    let stored = if db_mode {
        ctx.db
            .discovery(&address, port)
            .map_err(|e| e.to_string())?
    } else {
        None
    };
    let disc = match stored {
        Some(r) => r,
        None => match ctx.db.new_discovery(&address, port) {
            Ok(r) => r,
            Err(e) => return fail(code::IDBM, &e.to_string()),
        },
    };
    discover(ctx, p, &disc, &address, port)
}

fn discover(
    ctx: &Ctx,
    p: &Parsed,
    disc: &Record,
    address: &str,
    port: u16,
) -> Result<ExitCode, String> {
    let name = match ctx.db.initiator_name() {
        Ok(n) => n,
        Err(e) => return fail(code::INVAL, &e.to_string()),
    };
    let at = std::net::SocketAddr::new(address.parse().expect("checked"), port);
    let timeout = Duration::from_secs(
        disc.get("discovery.sendtargets.timeo.login_timeout")
            .parse()
            .unwrap_or(15),
    );
    let found = super::super::block_on(send_targets(at, &name, disc.chap(), timeout));
    let targets = match found {
        Ok(t) => t,
        Err(Error::Io { source, .. }) => {
            eprintln!(
                "iscsiadm: cannot make connection to {address}: {}",
                io_text(&source)
            );
            return fail(
                code::TRANS,
                "Could not perform SendTargets discovery: encountered connection failure",
            );
        }
        Err(e @ (Error::LoginRefused(_) | Error::Auth(_))) => {
            eprintln!("iscsiadm: discovery login to {address}:{port} failed: {e}");
            return fail(
                code::LOGIN,
                "Could not perform SendTargets discovery: encountered iSCSI login failure",
            );
        }
        Err(e) => {
            eprintln!("iscsiadm: {e}");
            return fail(
                code::TRANS,
                "Could not perform SendTargets discovery: encountered connection failure",
            );
        }
    };
    let nonpersistent = p.values("op").contains(&"nonpersistent");
    if !nonpersistent {
        if let Err(e) = ctx.db.record_discovered(disc, &targets) {
            return fail(
                code::IDBM,
                &format!("could not store the discovered records: {e}"),
            );
        }
    }
    let mut found = Vec::new();
    for t in &targets {
        for po in &t.portals {
            println!(
                "{},{} {}",
                hydra_initiator::record::portal_text(&po.address, po.port),
                po.tpgt,
                t.name
            );
            found.push((t.name.clone(), po.address.clone(), po.port));
        }
    }
    if found.is_empty() {
        return fail(code::NO_OBJS_FOUND, "No portals found");
    }
    if p.has("login") {
        return super::node::login_all(ctx, &found);
    }
    Ok(ExitCode::SUCCESS)
}

/// `-m discovery` / `-m discoverydb` alone: the stored discovery records.
fn list(ctx: &Ctx) -> Result<ExitCode, String> {
    let recs = ctx.db.discovery_records().map_err(|e| e.to_string())?;
    if recs.is_empty() {
        return fail(code::NO_OBJS_FOUND, "No discovery found.");
    }
    for r in recs {
        println!("{} via sendtargets", r.portal());
    }
    Ok(ExitCode::SUCCESS)
}

fn record_ops(
    ctx: &Ctx,
    p: &Parsed,
    address: &str,
    port: u16,
    ops: &[&str],
) -> Result<ExitCode, String> {
    let stored = ctx.db.discovery(address, port).map_err(|e| e.to_string())?;
    for op in ops {
        match *op {
            "new" => {
                if stored.is_some() {
                    continue;
                }
                let r = match ctx.db.new_discovery(address, port) {
                    Ok(r) => r,
                    Err(e) => return fail(code::IDBM, &e.to_string()),
                };
                ctx.db.save_discovery(&r).map_err(|e| e.to_string())?;
                println!("New discovery record for [{address},{port}] added.");
            }
            "delete" => {
                if stored.is_none() {
                    return fail(
                        code::NO_OBJS_FOUND,
                        &format!("Discovery record [{address},{port}] not found."),
                    );
                }
                ctx.db
                    .delete_discovery(address, port)
                    .map_err(|e| e.to_string())?;
            }
            "show" => match &stored {
                Some(r) => print!("{}", r.display(p.has("show"))),
                None => {
                    return fail(
                        code::NO_OBJS_FOUND,
                        &format!("Discovery record [{address},{port}] not found."),
                    )
                }
            },
            "update" => {
                let Some(mut r) = stored.clone() else {
                    return fail(
                        code::NO_OBJS_FOUND,
                        &format!("Discovery record [{address},{port}] not found."),
                    );
                };
                let (Some(n), Some(v)) = (p.value("name"), p.value("value")) else {
                    return fail(
                        code::INVAL,
                        "update requires name and value (-n NAME -v VALUE)",
                    );
                };
                if let Err(e) = r.set(n, v) {
                    return update_refused(n, &e);
                }
                ctx.db.save_discovery(&r).map_err(|e| e.to_string())?;
            }
            other => return fail(code::INVAL, &format!("Invalid operation {other}")),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `-o update` refused: the setting and why, exit 7.
pub fn update_refused(name: &str, e: &SetError) -> Result<ExitCode, String> {
    fail(code::INVAL, &format!("Cannot modify {name}: {e}"))
}
