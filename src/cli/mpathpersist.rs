//! `hydra mpathpersist` — multipath-tools' `mpathpersist` (mpathpersist.8): SCSI
//! persistent reservations on a multipath map. PR IN goes to one usable path; REGISTER
//! and REGISTER AND IGNORE EXISTING KEY to every path (each I_T nexus), the other PR OUT
//! actions to one path, as mpathpersist does. The node daemon (`hydra iscsid`) holds the
//! paths, so the command goes to its multipathd socket (`--run-dir`,
//! $HYDRA_ISCSID_RUN_DIR, default /run/hydra-iscsid). The device is `/dev/mapper/NAME`
//! or the map's name.
//!
//! Output and exit status as mpathpersist's: the PR IN data as it prints it, the
//! `MPATH_PR_*` status as the exit code (1 syntax error, 11 reservation conflict, ...).

use std::path::PathBuf;
use std::process::ExitCode;

use hydra_multipath::control::{
    pr_status, PrAnswer, PrInAction, PrOut, PrOutAction, Request, Response,
};
use hydra_multipath::show::persist;

use super::args::{parse, Parsed, Spec};

const fn flag(short: char, long: &'static str) -> Spec {
    Spec {
        short,
        long,
        value: false,
    }
}

const fn valued(short: char, long: &'static str) -> Spec {
    Spec {
        short,
        long,
        value: true,
    }
}

const SPECS: &[Spec] = &[
    valued('v', "verbose"),
    flag('C', "clear"),
    valued('d', "device"),
    flag('h', "help"),
    flag('H', "hex"),
    flag('i', "in"),
    flag('o', "out"),
    flag('Z', "param-aptpl"),
    valued('K', "param-rk"),
    valued('S', "param-sark"),
    flag('P', "preempt"),
    flag('A', "preempt-abort"),
    valued('T', "prout-type"),
    flag('s', "read-full-status"),
    flag('k', "read-keys"),
    flag('r', "read-reservation"),
    flag('G', "register"),
    flag('I', "register-ignore"),
    flag('L', "release"),
    flag('c', "report-capabilities"),
    flag('R', "reserve"),
    valued('X', "transport-id"),
    valued('l', "alloc-length"),
    valued('f', "batch-file"),
    valued(' ', "run-dir"),
];

const HELP: &str = "Usage: mpathpersist [OPTIONS] [DEVICE]
 Options:
    --verbose|-v level         verbosity level
    --clear|-C                 PR Out: Clear
    --device=DEVICE|-d DEVICE  query or change DEVICE
    --help|-h                  output this usage message
    --in|-i                    request PR In command
    --out|-o                   request PR Out command
    --param-aptpl|-Z           PR Out parameter 'APTPL'
    --param-rk=RK|-K RK        PR Out parameter reservation key (RK is in hex)
    --param-sark=SARK|-S SARK  PR Out parameter service action
                               reservation key (SARK is in hex)
    --preempt|-P               PR Out: Preempt
    --preempt-abort|-A         PR Out: Preempt and Abort
    --prout-type=TYPE|-T TYPE  PR Out command type
    --read-full-status|-s      PR In: Read Full Status
    --read-keys|-k             PR In: Read Keys
    --read-reservation|-r      PR In: Read Reservation
    --register|-G              PR Out: Register
    --register-ignore|-I       PR Out: Register and Ignore
    --release|-L               PR Out: Release
    --report-capabilities|-c   PR In: Report Capabilities
    --reserve|-R               PR Out: Reserve
    --run-dir D                the node daemon's run directory (hydra)
 Examples:
     mpathpersist --out --register --param-sark=123abc --prout-type=5 /dev/mapper/mpath9
     mpathpersist -i -k /dev/mapper/mpath9";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cmd {
    Help,
    In(Request),
    Out(Request),
}

/// A key in hex, as mpathpersist reads it (`%SCNx64`: an optional 0x).
fn hex_u64(v: &str, what: &str) -> Result<u64, String> {
    let t = v
        .strip_prefix("0x")
        .or_else(|| v.strip_prefix("0X"))
        .unwrap_or(v);
    u64::from_str_radix(t, 16).map_err(|_| format!("bad argument to '--{what}'"))
}

/// The map a device argument names: `/dev/mapper/NAME`, its loop device `/dev/loopN`,
/// or NAME.
fn map_name(dev: &str) -> Result<String, String> {
    let name = dev
        .strip_prefix("/dev/mapper/")
        .or_else(|| dev.strip_prefix("/dev/"))
        .unwrap_or(dev);
    if name.is_empty() || name.contains('/') {
        return Err(format!(
            "{dev}: not a multipath device (/dev/mapper/NAME or NAME)"
        ));
    }
    Ok(name.to_string())
}

/// The actions of `table` whose long option was given.
fn chosen<A: Copy>(p: &Parsed, table: &[(&str, A)]) -> Vec<A> {
    table
        .iter()
        .filter(|(l, _)| p.has(l))
        .map(|&(_, a)| a)
        .collect()
}

pub(super) fn parse_args(args: &[String]) -> Result<(Cmd, Option<PathBuf>), String> {
    if args.is_empty() {
        return Err("No parameter used".into());
    }
    let p = parse(args, SPECS)?;
    let run_dir = p.value("run-dir").map(PathBuf::from);
    if p.has("help") {
        return Ok((Cmd::Help, run_dir));
    }
    for unsupported in ["transport-id", "batch-file", "hex"] {
        if p.has(unsupported) {
            return Err(format!(
                "--{unsupported} is not supported by hydra mpathpersist"
            ));
        }
    }
    // Accepted and checked, but with no effect here.
    for number in ["verbose", "alloc-length"] {
        if let Some(v) = p.value(number) {
            v.parse::<u32>()
                .map_err(|_| format!("bad argument to '--{number}'"))?;
        }
    }
    let ins: Vec<PrInAction> = chosen(
        &p,
        &[
            ("read-keys", PrInAction::ReadKeys),
            ("read-reservation", PrInAction::ReadReservation),
            ("report-capabilities", PrInAction::ReportCapabilities),
            ("read-full-status", PrInAction::ReadFullStatus),
        ],
    );
    let outs: Vec<PrOutAction> = chosen(
        &p,
        &[
            ("register", PrOutAction::Register),
            ("register-ignore", PrOutAction::RegisterIgnore),
            ("reserve", PrOutAction::Reserve),
            ("release", PrOutAction::Release),
            ("clear", PrOutAction::Clear),
            ("preempt", PrOutAction::Preempt),
            ("preempt-abort", PrOutAction::PreemptAbort),
        ],
    );
    let device = match (p.value("device"), p.positional.as_slice()) {
        (Some(d), []) => Some(d.to_string()),
        (None, [d]) => Some(d.clone()),
        (None, []) => None,
        (Some(_), [extra, ..]) | (None, [_, extra, ..]) => {
            return Err(format!("Unexpected extra argument: {extra}"))
        }
    };
    let (pr_in, pr_out) = (p.has("in"), p.has("out"));
    if pr_in == pr_out {
        return Err("choose either '--in' or '--out'".into());
    }
    let map = |d: Option<String>| -> Result<String, String> {
        map_name(&d.ok_or("No device name given")?)
    };
    if pr_in {
        if !outs.is_empty() {
            return Err(
                "When a service action for Persistent Reserve Out is chosen the '--out' option must be given"
                    .into(),
            );
        }
        let action = match ins.as_slice() {
            [] => return Err("No service action given for Persistent Reserve IN".into()),
            [a] => *a,
            _ => return Err("Too many service actions given; choose one only".into()),
        };
        let map = map(device)?;
        return Ok((Cmd::In(Request::PrIn { map, action }), run_dir));
    }
    let [action] = outs.as_slice() else {
        return Err(
            "For Persistent Reserve Out only one appropriate service action must be chosen".into(),
        );
    };
    if !ins.is_empty() {
        return Err(
            "For Persistent Reserve Out only one appropriate service action must be chosen".into(),
        );
    }
    let key = p
        .value("param-rk")
        .map_or(Ok(0), |v| hex_u64(v, "param-rk"))?;
    let sa_key = p
        .value("param-sark")
        .map_or(Ok(0), |v| hex_u64(v, "param-sark"))?;
    let prout_type = match p.value("prout-type") {
        None => 0,
        Some(v) => u8::from_str_radix(v.trim_start_matches("0x"), 16)
            .ok()
            .filter(|t| *t <= 0xf)
            .ok_or("bad argument to '--prout-type'")?,
    };
    let map = map(device)?;
    Ok((
        Cmd::Out(Request::PrOut(PrOut {
            map,
            action: *action,
            key,
            sa_key,
            prout_type,
            aptpl: p.has("param-aptpl"),
        })),
        run_dir,
    ))
}

fn needs_type(a: PrOutAction) -> bool {
    matches!(
        a,
        PrOutAction::Reserve
            | PrOutAction::Release
            | PrOutAction::Preempt
            | PrOutAction::PreemptAbort
    )
}

pub fn main(args: Vec<String>) -> Result<ExitCode, String> {
    let (cmd, run_dir) = match parse_args(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}\n{HELP}");
            return Ok(status(pr_status::SYNTAX_ERROR));
        }
    };
    let run_dir = super::multipath::run_dir(run_dir.as_deref());
    match cmd {
        Cmd::Help => {
            eprintln!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::In(req) => match super::multipath::call(&run_dir, req) {
            Ok(Response::Pr(answer)) => {
                if let Some(text) = persist::pr_in(&answer) {
                    print!("{text}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Ok(Response::Error { code, message }) => {
                eprintln!("{message}");
                eprintln!("Persistent Reserve IN command failed");
                Ok(status(code))
            }
            r => Ok(no_answer(r)),
        },
        Cmd::Out(req) => {
            if let Request::PrOut(o) = &req {
                if needs_type(o.action) && o.prout_type == 0 {
                    eprintln!("Warning: --prout-type probably needs to be given");
                }
            }
            match super::multipath::call(&run_dir, req) {
                Ok(Response::Pr(PrAnswer::Done)) | Ok(Response::Ok) => Ok(ExitCode::SUCCESS),
                Ok(Response::Error { code, message }) => {
                    eprintln!("{message}");
                    print!("{}", persist::pr_out_failed(code));
                    Ok(status(code))
                }
                r => Ok(no_answer(r)),
            }
        }
    }
}

/// mpathpersist's exit status `s` (MPATH_PR_* codes, 0 to 255).
fn status(s: i32) -> ExitCode {
    ExitCode::from(s.clamp(0, 255) as u8)
}

/// The exit status when the daemon answered neither with the command's answer nor
/// with its refusal: an unexpected answer, or none (no daemon, socket error).
fn no_answer(r: Result<Response, String>) -> ExitCode {
    match r {
        Err(e) => {
            eprintln!("{e}");
            status(pr_status::DMMP_ERROR)
        }
        Ok(other) => {
            eprintln!("unexpected answer {other:?}");
            status(pr_status::OTHER)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Cmd, String> {
        parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map(|(c, _)| c)
    }

    #[test]
    fn in_and_out() {
        assert_eq!(
            p(&["-i", "-k", "/dev/mapper/mpath9"]).unwrap(),
            Cmd::In(Request::PrIn {
                map: "mpath9".into(),
                action: PrInAction::ReadKeys
            })
        );
        assert_eq!(
            p(&["--in", "--read-full-status", "--device=mpatha"]).unwrap(),
            Cmd::In(Request::PrIn {
                map: "mpatha".into(),
                action: PrInAction::ReadFullStatus
            })
        );
        assert_eq!(
            p(&[
                "--out",
                "--register",
                "--param-sark=123abc",
                "--prout-type=5",
                "/dev/mapper/mpath9"
            ])
            .unwrap(),
            Cmd::Out(Request::PrOut(PrOut {
                map: "mpath9".into(),
                action: PrOutAction::Register,
                key: 0,
                sa_key: 0x123abc,
                prout_type: 5,
                aptpl: false
            }))
        );
        assert_eq!(
            p(&["-o", "-A", "-K", "0x1", "-S", "2", "-T", "6", "-Z", "mpathb"]).unwrap(),
            Cmd::Out(Request::PrOut(PrOut {
                map: "mpathb".into(),
                action: PrOutAction::PreemptAbort,
                key: 1,
                sa_key: 2,
                prout_type: 6,
                aptpl: true
            }))
        );
    }

    #[test]
    fn syntax_errors_as_mpathpersist_words_them() {
        assert_eq!(p(&[]).unwrap_err(), "No parameter used");
        assert_eq!(
            p(&["-k", "m"]).unwrap_err(),
            "choose either '--in' or '--out'"
        );
        assert_eq!(
            p(&["-i", "-o", "-k", "m"]).unwrap_err(),
            "choose either '--in' or '--out'"
        );
        assert_eq!(
            p(&["-i", "m"]).unwrap_err(),
            "No service action given for Persistent Reserve IN"
        );
        assert_eq!(
            p(&["-i", "-k", "-r", "m"]).unwrap_err(),
            "Too many service actions given; choose one only"
        );
        assert!(p(&["-i", "-G", "m"])
            .unwrap_err()
            .starts_with("When a service action"));
        assert!(p(&["-o", "-G", "-R", "m"])
            .unwrap_err()
            .starts_with("For Persistent Reserve Out"));
        assert_eq!(p(&["-i", "-k"]).unwrap_err(), "No device name given");
        assert_eq!(
            p(&["-i", "-k", "/tmp/x"]).unwrap_err(),
            "/tmp/x: not a multipath device (/dev/mapper/NAME or NAME)"
        );
        assert_eq!(
            p(&["-o", "-G", "-S", "xyz", "m"]).unwrap_err(),
            "bad argument to '--param-sark'"
        );
        assert_eq!(
            p(&["-o", "-R", "-T", "99", "m"]).unwrap_err(),
            "bad argument to '--prout-type'"
        );
        assert_eq!(
            p(&["-i", "-k", "a", "b"]).unwrap_err(),
            "Unexpected extra argument: b"
        );
        assert_eq!(
            p(&["--bogus"]).unwrap_err(),
            "unrecognized option '--bogus'"
        );
        assert_eq!(
            p(&["-i", "-k", "-X", "iqn.x", "m"]).unwrap_err(),
            "--transport-id is not supported by hydra mpathpersist"
        );
    }
}
