//! `-m session`: the daemon's sessions in open-iscsi's layouts (usr/session_info.c: the
//! flat line, and the `-P 1..3` tree with TAB indentation), `-r SID -u` (log out),
//! `-R` (rescan LUNs). hydra has no kernel SCSI devices: at `-P 3` each LUN is listed
//! with the WWID the multipath layer keys it by, where open-iscsi names an sd device.

use std::process::ExitCode;

use hydra_initiator::ipc::{Request, Response, SessionInfo};
use hydra_initiator::iscsid::code;
use hydra_initiator::record::portal_text;

use super::{fail, print_level, report_refusal, Ctx};
use crate::cli::args::Parsed;

pub fn main(ctx: &Ctx, p: &Parsed) -> Result<ExitCode, String> {
    let level = match print_level(p) {
        Ok(l) => l,
        Err(e) => return fail(code::INVAL, &e),
    };
    let sid = match p.value("sid").map(|s| s.parse::<u32>()).transpose() {
        Ok(s) => s,
        Err(_) => return fail(code::INVAL, "invalid session id (-r SID)"),
    };
    let sessions = match ctx.sessions() {
        Ok(s) => s,
        Err(c) => return Ok(ExitCode::from(c)),
    };
    let chosen: Vec<&SessionInfo> = sessions
        .iter()
        .filter(|s| sid.is_none_or(|n| n == s.sid))
        .collect();
    if chosen.is_empty() {
        return match sid {
            Some(n) => fail(
                code::SESS_NOT_FOUND,
                &format!("Could not get session info for sid {n}"),
            ),
            None => fail(code::NO_OBJS_FOUND, "No active sessions."),
        };
    }
    if p.has("logout") {
        if sid.is_none() {
            return fail(
                code::INVAL,
                "logout in session mode needs a session id (-r SID)",
            );
        }
        let sids: Vec<_> = chosen.iter().map(|s| s.sid).collect();
        return logout(ctx, &sessions, &sids);
    }
    if p.has("rescan") {
        return rescan(ctx, &chosen);
    }
    if level == 0 {
        for s in &chosen {
            println!(
                "tcp: [{}] {},{} {} (non-flash)",
                s.sid,
                portal_text(&s.address, s.port),
                s.tpgt,
                s.target
            );
        }
    } else {
        print!("{}", tree(&chosen, level, p.has("show")));
    }
    Ok(ExitCode::SUCCESS)
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

fn or_empty(s: &str) -> &str {
    if s.is_empty() {
        "<empty>"
    } else {
        s
    }
}

/// The `-P 1..3` tree (session_info_print_tree).
pub fn tree(sessions: &[&SessionInfo], level: u8, secrets: bool) -> String {
    let mut o = String::new();
    let mut line = |s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    if level >= 3 {
        line("iSCSI Transport Class version 2.0-870".into());
        line(format!("version hydra-{}", env!("CARGO_PKG_VERSION")));
    }
    let mut last_target = "";
    for s in sessions {
        if s.target != last_target {
            line(format!("Target: {} (non-flash)", s.target));
            last_target = &s.target;
        }
        let portal = format!("{},{}", portal_text(&s.address, s.port), s.tpgt);
        line(format!("\tCurrent Portal: {portal}"));
        line(format!("\tPersistent Portal: {portal}"));
        line("\t\t**********".into());
        line("\t\tInterface:".into());
        line("\t\t**********".into());
        line(format!("\t\tIface Name: {}", s.iface));
        line("\t\tIface Transport: tcp".into());
        line(format!("\t\tIface Initiatorname: {}", s.initiator_name));
        line(format!(
            "\t\tIface IPaddress: {}",
            or_empty(&s.local_address)
        ));
        line("\t\tIface HWaddress: default".into());
        line("\t\tIface Netdev: default".into());
        line(format!("\t\tSID: {}", s.sid));
        let (conn, sess) = if s.logged_in {
            ("LOGGED IN", "LOGGED_IN")
        } else {
            ("TRANSPORT WAIT", "FAILED")
        };
        line(format!("\t\tiSCSI Connection State: {conn}"));
        line(format!("\t\tiSCSI Session State: {sess}"));
        line(format!(
            "\t\tInternal iscsid Session State: {}",
            if s.logged_in { "NO CHANGE" } else { "REOPEN" }
        ));
        if level < 2 {
            continue;
        }
        line("\t\t*********".into());
        line("\t\tTimeouts:".into());
        line("\t\t*********".into());
        line(format!("\t\tRecovery Timeout: {}", s.recovery_timeout));
        line(format!("\t\tTarget Reset Timeout: {}", s.tgt_reset_timeout));
        line(format!("\t\tLUN Reset Timeout: {}", s.lu_reset_timeout));
        line(format!("\t\tAbort Timeout: {}", s.abort_timeout));
        line("\t\t*****".into());
        line("\t\tCHAP:".into());
        line("\t\t*****".into());
        let secret = |v: &str| {
            if secrets {
                or_empty(v).to_string()
            } else {
                "********".to_string()
            }
        };
        line(format!("\t\tusername: {}", or_empty(&s.username)));
        line(format!("\t\tpassword: {}", secret(&s.password)));
        line(format!("\t\tusername_in: {}", or_empty(&s.username_in)));
        // open-iscsi 2.1.8 labels the incoming password "password:" when it shows it
        // (usr/session_info.c:421), "password_in:" when it masks it (:417).
        let label = if secrets { "password" } else { "password_in" };
        line(format!("\t\t{label}: {}", secret(&s.password_in)));
        let n = &s.negotiated;
        line("\t\t************************".into());
        line("\t\tNegotiated iSCSI params:".into());
        line("\t\t************************".into());
        let digest = |on: bool| if on { "CRC32C" } else { "None" };
        line(format!("\t\tHeaderDigest: {}", digest(n.header_digest)));
        line(format!("\t\tDataDigest: {}", digest(n.data_digest)));
        line(format!(
            "\t\tMaxRecvDataSegmentLength: {}",
            n.max_recv_data_segment_length
        ));
        line(format!(
            "\t\tMaxXmitDataSegmentLength: {}",
            n.max_xmit_data_segment_length
        ));
        line(format!("\t\tFirstBurstLength: {}", n.first_burst_length));
        line(format!("\t\tMaxBurstLength: {}", n.max_burst_length));
        line(format!("\t\tImmediateData: {}", yes_no(n.immediate_data)));
        line(format!("\t\tInitialR2T: {}", yes_no(n.initial_r2t)));
        line(format!("\t\tMaxOutstandingR2T: {}", n.max_outstanding_r2t));
        if level < 3 {
            continue;
        }
        line("\t\t************************".into());
        line("\t\tAttached SCSI devices:".into());
        line("\t\t************************".into());
        // hydra numbers its per-session "hosts" by sid.
        line(format!("\t\tHost Number: {}\tState: running", s.sid));
        for l in &s.luns {
            line(format!("\t\tscsi{} Channel 00 Id 0 Lun: {}", s.sid, l.lun));
            let kind = if l.device_type == 0 { "disk" } else { "device" };
            line(format!(
                "\t\t\tAttached hydra {kind} {} {} wwid {}\t\tState: running",
                l.vendor,
                l.model,
                l.wwid.as_deref().unwrap_or("<none>")
            ));
        }
    }
    o
}

/// Log out `sids` (messages as open-iscsi's; first error's code).
pub fn logout(ctx: &Ctx, sessions: &[SessionInfo], sids: &[u32]) -> Result<ExitCode, String> {
    let named = |sid: u32| {
        sessions
            .iter()
            .find(|s| s.sid == sid)
            .map(|s| {
                format!(
                    "[sid: {sid}, target: {}, portal: {},{}]",
                    s.target, s.address, s.port
                )
            })
            .unwrap_or_else(|| format!("[sid: {sid}]"))
    };
    for sid in sids {
        println!("Logging out of session {}", named(*sid));
    }
    let mut first_err = None;
    for sid in sids {
        match ctx.call(&Request::Logout { sid: *sid }) {
            Err(c) => return Ok(ExitCode::from(c)),
            Ok(Response::Sessions { .. }) => println!("Logout of {} successful.", named(*sid)),
            Ok(Response::Error { code: c, message }) => {
                report_refusal(&format!("logout of {}", named(*sid)), c, &message);
                first_err.get_or_insert(c);
            }
        }
    }
    match first_err {
        None => Ok(ExitCode::SUCCESS),
        Some(c) => fail(c, "Could not logout of all requested sessions"),
    }
}

fn rescan(ctx: &Ctx, chosen: &[&SessionInfo]) -> Result<ExitCode, String> {
    for s in chosen {
        println!(
            "Rescanning session [sid: {}, target: {}, portal: {},{}]",
            s.sid, s.target, s.address, s.port
        );
        match ctx.call(&Request::Rescan { sid: s.sid }) {
            Err(c) => return Ok(ExitCode::from(c)),
            Ok(Response::Sessions { .. }) => {}
            Ok(Response::Error { code: c, message }) => return fail(c, &message),
        }
    }
    Ok(ExitCode::SUCCESS)
}
