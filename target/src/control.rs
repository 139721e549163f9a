//! The control socket: how `hydra tgtadm` and `hydra tgt-admin` talk to a running
//! `hydra tgtd`. One unix socket per control port (`<run dir>/socket.<port>`, as tgt's
//! `/var/run/tgtd/socket.<port>`), one JSON request per line, one JSON response per line.
//! The protocol carries a version so that a newer CLI refuses an older daemon clearly.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::{Error, Result};

/// Bumped whenever a request or response changes shape.
pub const PROTOCOL_VERSION: u32 = 1;

/// Default run directory: kept apart from tgt's /var/run/tgtd so both daemons can run on
/// one machine (the benchmark does).
pub const DEFAULT_RUN_DIR: &str = "/run/hydra-tgtd";

/// The socket path of control port `port` under `run_dir`.
pub fn socket_path(run_dir: &Path, port: u16) -> PathBuf {
    run_dir.join(format!("socket.{port}"))
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
    pub version: u32,
    pub ok: bool,
    pub text: String,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) version: u32,
    pub(crate) request: Request,
}

/// Send one request to the daemon on `port` and wait for its answer.
pub async fn call(run_dir: &Path, port: u16, request: Request) -> Result<Response> {
    let path = socket_path(run_dir, port);
    let stream = UnixStream::connect(&path).await.map_err(|e| {
        Error::io(
            format!(
                "can't connect to hydra tgtd on control port {port} ({})",
                path.display()
            ),
            e,
        )
    })?;
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_string(&Envelope {
        version: PROTOCOL_VERSION,
        request,
    })
    .expect("serialize");
    line.push('\n');
    w.write_all(line.as_bytes())
        .await
        .map_err(|e| Error::io("control socket write", e))?;
    let mut lines = BufReader::new(r).lines();
    let answer = lines
        .next_line()
        .await
        .map_err(|e| Error::io("control socket read", e))?
        .ok_or_else(|| {
            Error::Admin("hydra tgtd closed the control socket without answering".into())
        })?;
    serde_json::from_str(&answer)
        .map_err(|e| Error::Admin(format!("bad answer from hydra tgtd: {e}")))
}
