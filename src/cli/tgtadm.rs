//! `hydra tgtadm --lld iscsi --mode M --op O ...` — tgtadm's runtime operations, sent to
//! the daemon's control socket.

use std::path::PathBuf;
use std::process::ExitCode;

use hydra_target::control::{self, Request};

use super::args::{parse, Parsed, Spec};

const SPECS: &[Spec] = &[
    Spec {
        short: 'L',
        long: "lld",
        value: true,
    },
    Spec {
        short: 'm',
        long: "mode",
        value: true,
    },
    Spec {
        short: 'o',
        long: "op",
        value: true,
    },
    Spec {
        short: 't',
        long: "tid",
        value: true,
    },
    Spec {
        short: 'T',
        long: "targetname",
        value: true,
    },
    Spec {
        short: 'l',
        long: "lun",
        value: true,
    },
    Spec {
        short: 'b',
        long: "backing-store",
        value: true,
    },
    Spec {
        short: 'E',
        long: "bstype",
        value: true,
    },
    Spec {
        short: 'S',
        long: "bsopts",
        value: true,
    },
    Spec {
        short: 'f',
        long: "bsoflags",
        value: true,
    },
    Spec {
        short: 'y',
        long: "blocksize",
        value: true,
    },
    Spec {
        short: 'Y',
        long: "device-type",
        value: true,
    },
    Spec {
        short: 'I',
        long: "initiator-address",
        value: true,
    },
    Spec {
        short: 'Q',
        long: "initiator-name",
        value: true,
    },
    Spec {
        short: 'u',
        long: "user",
        value: true,
    },
    Spec {
        short: 'p',
        long: "password",
        value: true,
    },
    Spec {
        short: 'O',
        long: "outgoing",
        value: false,
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
        short: 'P',
        long: "params",
        value: true,
    },
    Spec {
        short: ' ',
        long: "param",
        value: true,
    },
    Spec {
        short: 'F',
        long: "force",
        value: false,
    },
    Spec {
        short: 's',
        long: "sid",
        value: true,
    },
    Spec {
        short: 'c',
        long: "cid",
        value: true,
    },
    Spec {
        short: 'C',
        long: "control-port",
        value: true,
    },
    Spec {
        short: ' ',
        long: "run-dir",
        value: true,
    },
    Spec {
        short: 'h',
        long: "help",
        value: false,
    },
];

const HELP: &str = "usage: hydra tgtadm [-C N] --lld iscsi --mode MODE --op OP [options]
  --mode target       --op new --tid T --targetname IQN | delete --tid T [--force] | show
                      | bind/unbind --tid T (--initiator-address A | --initiator-name IQN)
                      | update --tid T --name KEY --value V   (login keys, state)
  --mode logicalunit  --op new --tid T --lun L --backing-store PATH [--bstype rdwr] [--bsoflags direct|sync]
                      [--blocksize 512|4096] [--device-type disk] [--params k=v,...] | delete --tid T --lun L
                      | update --tid T --lun L   (re-read the backing size after it grew)
  --mode account      --op new --user U --password P | delete --user U | show
                      | bind/unbind [--tid T] --user U [--outgoing]   (no --tid: discovery CHAP)
  --mode portal       --op show | update --param tpgt=N,state=S   (ALUA state of portal group N:
                      active/optimized, active/non-optimized, standby, unavailable)
  --mode session|connection --op show [--tid T] | --mode connection --op delete --tid T --sid S
  --mode sys          --op show | update --name State --value ready|offline | delete";

fn need<'a>(p: &'a Parsed, k: &str) -> Result<&'a str, String> {
    p.value(k)
        .ok_or_else(|| format!("--{k} is required for this operation"))
}

fn num<T: std::str::FromStr>(p: &Parsed, k: &str) -> Result<T, String> {
    let v = need(p, k)?;
    v.parse()
        .map_err(|_| format!("--{k} {v}: not a valid number"))
}

fn opt_num<T: std::str::FromStr>(p: &Parsed, k: &str) -> Result<Option<T>, String> {
    p.value(k).map(|_| num(p, k)).transpose()
}

fn lun_params(p: &Parsed) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for (opt, key) in [
        ("bstype", "bs-type"),
        ("bsoflags", "bsoflags"),
        ("blocksize", "block-size"),
        ("device-type", "device-type"),
        ("bsopts", "bsopts"),
    ] {
        if let Some(x) = p.value(opt) {
            v.push((key.to_string(), x.to_string()));
        }
    }
    for params in p.values("params") {
        for kv in params.split(',').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some((k, x)) => v.push((k.to_string(), x.to_string())),
                None => v.push((kv.to_string(), String::new())),
            }
        }
    }
    v
}

/// Translate the options into one control request.
fn request(p: &Parsed) -> Result<Request, String> {
    if let Some(lld) = p.value("lld") {
        if lld != "iscsi" {
            return Err(format!("--lld {lld}: hydra only has the iscsi driver"));
        }
    }
    let mode = need(p, "mode")?;
    let op = need(p, "op")?;
    let tid = || num::<u32>(p, "tid");
    Ok(match (mode, op) {
        ("target", "new") => Request::TargetNew { tid: tid()?, iqn: need(p, "targetname")?.to_string() },
        ("target", "delete") => Request::TargetDelete { tid: tid()?, force: p.has("force") },
        ("target", "show") => Request::TargetShow,
        ("target", "bind") | ("target", "unbind") => {
            let address = p.value("initiator-address").map(str::to_string);
            let name = p.value("initiator-name").map(str::to_string);
            if address.is_none() && name.is_none() {
                return Err("--initiator-address or --initiator-name is required".into());
            }
            if op == "bind" {
                Request::TargetBind { tid: tid()?, address, name }
            } else {
                Request::TargetUnbind { tid: tid()?, address, name }
            }
        }
        ("target", "update") => Request::TargetUpdate {
            tid: tid()?,
            name: need(p, "name")?.to_string(),
            value: need(p, "value")?.to_string(),
        },
        ("logicalunit", "new") => Request::LunNew {
            tid: tid()?,
            lun: num(p, "lun")?,
            path: absolute(need(p, "backing-store")?)?,
            params: lun_params(p),
        },
        ("logicalunit", "delete") => Request::LunDelete { tid: tid()?, lun: num(p, "lun")? },
        ("logicalunit", "update") => Request::LunUpdate { tid: tid()?, lun: num(p, "lun")?, params: lun_params(p) },
        ("account", "new") => Request::AccountNew {
            user: need(p, "user")?.to_string(),
            password: need(p, "password")?.to_string(),
        },
        ("account", "delete") => Request::AccountDelete { user: need(p, "user")?.to_string() },
        ("account", "bind") => Request::AccountBind {
            tid: opt_num(p, "tid")?,
            user: need(p, "user")?.to_string(),
            outgoing: p.has("outgoing"),
        },
        ("account", "unbind") => Request::AccountUnbind {
            tid: opt_num(p, "tid")?,
            user: need(p, "user")?.to_string(),
            outgoing: p.has("outgoing"),
        },
        ("account", "show") => Request::AccountShow,
        ("portal", "show") => Request::PortalShow,
        ("portal", "update") => {
            let mut tpgt = None;
            let mut state = None;
            for kv in p.values("param").into_iter().chain(p.values("params")).flat_map(|v| v.split(',')) {
                match kv.split_once('=') {
                    Some(("tpgt", v)) => tpgt = Some(v.parse::<u16>().map_err(|_| format!("--param tpgt={v}: not a portal group tag"))?),
                    Some(("state", v)) => state = Some(v.to_string()),
                    _ => return Err(format!("--param {kv}: expected tpgt=N,state=STATE")),
                }
            }
            match (tpgt, state) {
                (Some(tpgt), Some(state)) => Request::PortalUpdate { tpgt, state },
                _ => return Err("--mode portal --op update needs --param tpgt=N,state=active/optimized|active/non-optimized|standby|unavailable".into()),
            }
        }
        ("portal", "new") | ("portal", "delete") => {
            return Err("portals are set when the daemon starts (hydra tgtd --iscsi portal=IP:PORT); runtime portal changes are not supported yet".into())
        }
        ("session", "show") | ("connection", "show") | ("conn", "show") => Request::SessionShow { tid: opt_num(p, "tid")? },
        ("connection", "delete") | ("conn", "delete") => Request::ConnectionDelete { tid: tid()?, sid: num(p, "sid")? },
        ("sys", "show") | ("system", "show") => Request::SysShow,
        ("sys", "update") | ("system", "update") => Request::SysUpdate {
            name: need(p, "name")?.to_string(),
            value: need(p, "value")?.to_string(),
        },
        ("sys", "delete") | ("system", "delete") => Request::SysDelete,
        (m, "stat") => return Err(format!("--mode {m} --op stat: statistics are not implemented yet")),
        (m, o) => return Err(format!("--mode {m} --op {o}: unknown mode/operation (see --help)")),
    })
}

fn absolute(p: &str) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{p}: {e}"))
}

pub fn main(args: Vec<String>) -> Result<ExitCode, String> {
    let p = parse(&args, SPECS)?;
    if p.has("help") {
        println!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let req = request(&p)?;
    let port: u16 = opt_num(&p, "control-port")?.unwrap_or(0);
    let run_dir = p
        .value("run-dir")
        .map(PathBuf::from)
        .unwrap_or_else(hydra_target::admin::default_run_dir);
    let resp = super::block_on(control::call(&run_dir, port, req)).map_err(|e| e.to_string())?;
    if resp.ok {
        print!("{}", resp.text);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("tgtadm: {}", resp.text);
        Ok(ExitCode::from(22))
    }
}
