//! The control protocol: what `hydra tgtadm` and `hydra tgt-admin` say to a running
//! `hydra tgtd`. One unix socket per control port (`<run dir>/socket.<port>`, as tgt's
//! `/var/run/tgtd/socket.<port>`), one versioned JSON request and response per line
//! ([`hydra_daemon::control`]), so that a newer CLI refuses an older daemon clearly. The
//! daemon serves it ([`crate::daemon`]) by handing each request to [`crate::admin`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Default run directory: kept apart from tgt's /var/run/tgtd so both daemons can run on
/// one machine (the benchmark does).
pub const DEFAULT_RUN_DIR: &str = "/run/hydra-tgtd";

/// The socket path of control port `port` under `run_dir`.
pub fn socket_path(run_dir: &Path, port: u16) -> PathBuf {
    run_dir.join(format!("socket.{port}"))
}

/// The pid file of the daemon on control port `port` under `run_dir`.
pub fn pid_path(run_dir: &Path, port: u16) -> PathBuf {
    run_dir.join(format!("tgtd.{port}.pid"))
}

/// hydra tgtd's control protocol.
pub struct Tgtd;

impl hydra_daemon::control::Protocol for Tgtd {
    type Request = Request;
    type Response = Response;
    /// 2: the version moved from the request and response into the line's envelope.
    const VERSION: u32 = 2;
    const DAEMON: &'static str = "hydra tgtd";

    fn refusal(why: String) -> Response {
        Response {
            ok: false,
            text: why,
        }
    }
}

/// One admin request (tgtadm's `--mode M --op O` and tgt-admin's file operations).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// tgt-admin -e/--update/--delete/--offline/--ready over a config file.
    ApplyConfig {
        path: PathBuf,
        mode: ApplyMode,
        pretend: bool,
    },
    TargetNew {
        tid: u32,
        iqn: String,
    },
    TargetDelete {
        tid: u32,
        force: bool,
    },
    TargetShow,
    TargetBind {
        tid: u32,
        address: Option<String>,
        name: Option<String>,
    },
    TargetUnbind {
        tid: u32,
        address: Option<String>,
        name: Option<String>,
    },
    /// `--mode target --op update --name K --value V` (login keys, `state`).
    TargetUpdate {
        tid: u32,
        name: String,
        value: String,
    },
    LunNew {
        tid: u32,
        lun: u64,
        path: PathBuf,
        params: Vec<(String, String)>,
    },
    LunDelete {
        tid: u32,
        lun: u64,
    },
    /// Re-read the backing size and the like (`--mode logicalunit --op update`).
    LunUpdate {
        tid: u32,
        lun: u64,
        params: Vec<(String, String)>,
    },
    AccountNew {
        user: String,
        password: String,
    },
    AccountDelete {
        user: String,
    },
    AccountBind {
        tid: Option<u32>,
        user: String,
        outgoing: bool,
    },
    AccountUnbind {
        tid: Option<u32>,
        user: String,
        outgoing: bool,
    },
    AccountShow,
    PortalShow,
    /// ALUA access state of one portal group (hydra's; tgt has no ALUA).
    PortalUpdate {
        tpgt: u16,
        state: String,
    },
    SessionShow {
        tid: Option<u32>,
    },
    ConnectionDelete {
        tid: u32,
        sid: u64,
    },
    SysShow,
    SysUpdate {
        name: String,
        value: String,
    },
    /// Stop the daemon (`--mode sys --op delete`).
    SysDelete,
}

/// What tgt-admin was asked to do with a config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ApplyMode {
    /// `-e`: add the targets of the file that are not there yet.
    Execute,
    /// `--update <tid|ALL>`: re-create changed targets (only idle ones unless forced),
    /// add new ones; with ALL, remove targets the file no longer has.
    Update {
        tid: Option<u32>,
        force: bool,
    },
    /// `--delete <tid|ALL>`.
    Delete {
        tid: Option<u32>,
        force: bool,
    },
    /// `--offline <tid|ALL>` / `--ready <tid|ALL>`.
    Offline {
        tid: Option<u32>,
    },
    Ready {
        tid: Option<u32>,
    },
}

/// The answer: ok with text to print, or an error message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    pub text: String,
}

/// Send one request to the daemon on control port `port` and wait for its answer.
pub async fn call(run_dir: &Path, port: u16, request: Request) -> Result<Response> {
    let path = socket_path(run_dir, port);
    hydra_daemon::control::call::<Tgtd>(&path, request)
        .await
        .map_err(|e| match e {
            hydra_daemon::Error::Connect { source, .. } => Error::io(
                format!(
                    "can't connect to hydra tgtd on control port {port} ({})",
                    path.display()
                ),
                source,
            ),
            other => Error::Daemon(other),
        })
}
