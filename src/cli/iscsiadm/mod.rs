//! `hydra iscsiadm` — open-iscsi's iscsiadm: its modes, options, output and exit codes.
//! Discovery and the node database work without the daemon, as open-iscsi's do; login,
//! logout and sessions ask `hydra iscsid` over its control socket. The database root is
//! $HYDRA_ISCSI_ROOT (default /etc/iscsi), the daemon's run directory
//! $HYDRA_ISCSID_RUN_DIR (default /run/hydra-iscsid).

mod discovery;
mod node;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;

use hydra_initiator::ipc::{Request, Response, SessionInfo};
use hydra_initiator::iscsid::{self, code};
use hydra_initiator::node_db::NodeDb;

use super::args::{parse, Parsed, Spec};

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
    Spec {
        short: 'W',
        long: "no_wait",
        value: false,
    },
    Spec {
        short: 'd',
        long: "debug",
        value: true,
    },
];

const HELP: &str = "usage: hydra iscsiadm -m discovery [-t st -p IP[:PORT] [-l]]
       hydra iscsiadm -m discoverydb [-t st -p IP[:PORT]] [--discover | -o new|delete|show|update [-n NAME -v VALUE]] [-S]
       hydra iscsiadm -m node [-T IQN] [-p IP[:PORT][,TPGT]] [-l | -u | -o new|delete|show|update [-n NAME -v VALUE]] [-S] [-P 1]
       hydra iscsiadm -m node -L all|manual|automatic | -U all|manual|automatic
       hydra iscsiadm -m session [-P 0..3] [-r SID [-u | -R]] [-R]
Records live under $HYDRA_ISCSI_ROOT (default /etc/iscsi); login, logout and sessions
need a running `hydra iscsid` (run directory $HYDRA_ISCSID_RUN_DIR, default /run/hydra-iscsid).";

/// Report an error as open-iscsi does (stderr, `iscsiadm: ` prefix) and exit with `code`.
fn fail(code: u8, msg: &str) -> Result<ExitCode, String> {
    eprintln!("iscsiadm: {msg}");
    Ok(ExitCode::from(code))
}

/// A daemon refusal, as open-iscsi reports one: what could not be done, the code and
/// its text, then the daemon's reason.
fn report_refusal(what: &str, c: u8, message: &str) {
    eprintln!("iscsiadm: Could not {what}.");
    eprintln!(
        "iscsiadm: initiator reported error ({c} - {})",
        code::text(c)
    );
    eprintln!("iscsiadm: {message}");
}

/// The database root and the daemon's run directory.
struct Ctx {
    db: NodeDb,
    run_dir: PathBuf,
}

impl Ctx {
    /// One request to the daemon; `Err` is the exit code, already reported.
    fn call(&self, req: &Request) -> Result<Response, u8> {
        match super::block_on(iscsid::call(&self.run_dir, req)) {
            Ok(r) => Ok(r),
            Err(e) => {
                eprintln!(
                    "iscsiadm: can not connect to iSCSI daemon ({})!",
                    e.raw_os_error().unwrap_or(0)
                );
                eprintln!(
                    "iscsiadm: is `hydra iscsid` running? (control socket {})",
                    self.run_dir.join(iscsid::SOCKET).display()
                );
                Err(code::ISCSID_NOTCONN)
            }
        }
    }

    /// The daemon's sessions; none when it is not running (then there are none).
    fn sessions(&self) -> Result<Vec<SessionInfo>, u8> {
        if !self.run_dir.join(iscsid::SOCKET).exists() {
            return Ok(Vec::new());
        }
        match self.call(&Request::Sessions)? {
            Response::Sessions { sessions } => Ok(sessions),
            Response::Error { code, message } => {
                eprintln!("iscsiadm: {message}");
                Err(code)
            }
        }
    }
}

/// `IP[:PORT][,TPGT]`, IPv6 as `[ADDR]:PORT`: (address, port, tpgt).
fn parse_portal(p: &str) -> Result<(String, Option<u16>, Option<u16>), String> {
    let (hp, tpgt) = match p.rsplit_once(',') {
        Some((hp, t)) => (
            hp,
            Some(
                t.parse()
                    .map_err(|_| format!("invalid tpgt in portal {p}"))?,
            ),
        ),
        None => (p, None),
    };
    let (host, port) = if let Some(rest) = hp.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("invalid portal {p}"))?;
        (h, after.strip_prefix(':'))
    } else {
        match hp.split_once(':') {
            Some((h, port)) => (h, Some(port)),
            None => (hp, None),
        }
    };
    let port = match port {
        Some(x) => Some(
            x.parse()
                .map_err(|_| format!("invalid port in portal {p}"))?,
        ),
        None => None,
    };
    if host.is_empty() {
        return Err(format!("invalid portal {p}"));
    }
    Ok((host.to_string(), port, tpgt))
}

pub fn main(args: Vec<String>) -> Result<ExitCode, String> {
    let p = match parse(&args, SPECS) {
        Ok(p) => p,
        Err(e) => return fail(code::INVAL, &e),
    };
    if p.has("help") {
        println!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(x) = p.positional.first() {
        return fail(code::INVAL, &format!("unexpected argument '{x}'"));
    }
    let ctx = Ctx {
        db: NodeDb::new(iscsid::default_root()),
        run_dir: iscsid::default_run_dir(),
    };
    match p.value("mode").unwrap_or("") {
        "discovery" => discovery::main(&ctx, &p, false),
        "discoverydb" => discovery::main(&ctx, &p, true),
        "node" => node::main(&ctx, &p),
        "session" => session::main(&ctx, &p),
        m @ ("iface" | "fw" | "host") => fail(
            code::INVAL,
            &format!("mode {m} is not supported: hydra has one software interface (default) and no HBAs or boot firmware"),
        ),
        "" => fail(code::INVAL, "no mode specified (-m)"),
        other => fail(code::INVAL, &format!("Invalid mode {other}")),
    }
}

/// `-P N` (0 when absent).
fn print_level(p: &Parsed) -> Result<u8, String> {
    match p.value("print") {
        None => Ok(0),
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| *n <= 3)
            .ok_or_else(|| format!("invalid print level {v} (0 to 3)")),
    }
}

/// "Connection refused" rather than Rust's "Connection refused (os error 111)".
fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_string()
}

#[cfg(test)]
mod tests {
    use super::parse_portal;

    #[test]
    fn portals() {
        assert_eq!(
            parse_portal("10.200.0.1").unwrap(),
            ("10.200.0.1".into(), None, None)
        );
        assert_eq!(
            parse_portal("10.200.0.1:3261,2").unwrap(),
            ("10.200.0.1".into(), Some(3261), Some(2))
        );
        assert_eq!(
            parse_portal("[::1]:3260").unwrap(),
            ("::1".into(), Some(3260), None)
        );
        assert!(parse_portal("10.200.0.1:x").is_err());
        assert!(parse_portal(":3260").is_err());
    }
}
