//! The multipathd control protocol: what `hydra multipathd`, `hydra multipath` and
//! `hydra mpathpersist` ask the node daemon on `<iscsid run dir>/multipathd.sock`, over
//! [`hydra_daemon::control`] (one versioned JSON line each way).
//!
//! multipath-tools sends its commands as text (`"show paths"`) on an abstract socket
//! and answers text (`multipathd.8`, `libmpathcmd`); hydra parses the command in the
//! CLI ([`Request::parse_command`]) so that a typo is refused before anything is sent,
//! and the daemon answers typed data. `show …` answers are text printed by the daemon
//! with [`crate::show`] (the daemon has the maps); `multipath -ll` asks for
//! [`Response::Snapshots`] and prints them itself, because its verbosity and `-l`/`-ll`
//! are the CLI's business.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::show::MapSnapshot;

/// The socket's file name in the iscsid run directory.
pub const SOCKET: &str = "multipathd.sock";

/// `<run dir>/multipathd.sock`.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(SOCKET)
}

/// The protocol, for [`hydra_daemon::control::serve`] and [`hydra_daemon::control::call`].
pub struct Multipathd;

impl hydra_daemon::control::Protocol for Multipathd {
    type Request = Request;
    type Response = Response;
    const VERSION: u32 = 1;
    const DAEMON: &'static str = "hydra multipathd";
    fn refusal(why: String) -> Response {
        Response::Error {
            code: 1,
            message: why,
        }
    }
}

/// One command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// `show …`: answered with [`Response::Text`] (see [`crate::show::answer`]).
    Show(Show),
    /// `reconfigure`: reread the configuration, re-evaluate every path; also
    /// `multipath -r` (reload maps, refresh partitions).
    Reconfigure,
    /// `fail path P` (P: the path's dev name `s1l0` or its H:C:T:L).
    FailPath { path: String },
    /// `reinstate path P`.
    ReinstatePath { path: String },
    /// `switchgroup map M group N` (N from 1).
    SwitchGroup { map: String, group: usize },
    /// `disablequeueing map M` / `disablequeueing maps` (None).
    DisableQueueing { map: Option<String> },
    /// `restorequeueing map M` / `restorequeueing maps` (None).
    RestoreQueueing { map: Option<String> },
    /// `add map M` (M: alias or WWID): build the map for that WWID from the paths
    /// the node has, even if blacklisted by find_multipaths.
    AddMap { map: String },
    /// `del map M`: flush one map (multipathd's `remove map`).
    DelMap { map: String },
    /// `multipath -f M` (Some) / `multipath -F` (None): flush the map(s) if unused.
    Flush { map: Option<String> },
    /// `multipath -ll` / `-l` (`map`: only that one, by alias, WWID or device).
    Snapshots { map: Option<String> },
    /// mpathpersist `--in`.
    PrIn { map: String, action: PrInAction },
    /// mpathpersist `--out`.
    PrOut(PrOut),
    /// `shutdown`: stop the daemon (as SIGTERM does).
    Shutdown,
}

/// The `show` commands (multipathd.8 "Commands").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Show {
    /// `show paths [format F]`.
    Paths { format: Option<String> },
    /// `show maps [format F]`.
    Maps { format: Option<String> },
    /// `show maps status`.
    MapsStatus,
    /// `show maps stats`.
    MapsStats,
    /// `show topology` / `show maps topology` (None), `show map M topology` (Some).
    Topology { map: Option<String> },
    /// `show status`.
    Status,
    /// `show config`.
    Config,
    /// `show wildcards`.
    Wildcards,
}

/// PERSISTENT RESERVE IN service actions (SPC-4 §6.15.1) as mpathpersist names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrInAction {
    /// `-k`, `--read-keys`.
    ReadKeys,
    /// `-r`, `--read-reservation`.
    ReadReservation,
    /// `-c`, `--report-capabilities`.
    ReportCapabilities,
    /// `-s`, `--read-full-status`.
    ReadFullStatus,
}

/// PERSISTENT RESERVE OUT service actions (SPC-4 §6.16.2) mpathpersist sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrOutAction {
    /// `-G`, `--register`: to every path (each I_T nexus), as mpathpersist does.
    Register,
    /// `-I`, `--register-ignore`: to every path.
    RegisterIgnore,
    /// `-R`, `--reserve`.
    Reserve,
    /// `-L`, `--release`.
    Release,
    /// `-C`, `--clear`.
    Clear,
    /// `-P`, `--preempt`.
    Preempt,
    /// `-A`, `--preempt-abort`.
    PreemptAbort,
}

/// One PERSISTENT RESERVE OUT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrOut {
    pub map: String,
    pub action: PrOutAction,
    /// `--param-rk`: RESERVATION KEY.
    pub key: u64,
    /// `--param-sark`: SERVICE ACTION RESERVATION KEY.
    pub sa_key: u64,
    /// `--prout-type`: the reservation type (SPC-4 Table 168; 0 when unused).
    pub prout_type: u8,
    /// `--param-aptpl`.
    pub aptpl: bool,
}

/// A daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Printed as is (multipathd's text answers).
    Text(String),
    /// For `multipath -ll`/`-l`.
    Snapshots(Vec<MapSnapshot>),
    /// For mpathpersist.
    Pr(PrAnswer),
    /// multipathd's `ok`.
    Ok,
    /// multipathd's `fail` with why. `code` is the exit status the CLI uses: 1 for
    /// multipathd and multipath, mpathpersist's `MPATH_PR_*` status for PR commands
    /// (see [`pr_status`]).
    Error { code: i32, message: String },
}

/// mpathpersist's exit statuses (`libmpathpersist/mpath_persist.h`, `MPATH_PR_*`).
pub mod pr_status {
    pub const SUCCESS: i32 = 0;
    pub const SYNTAX_ERROR: i32 = 1;
    pub const SENSE_NOT_READY: i32 = 2;
    pub const SENSE_MEDIUM_ERROR: i32 = 3;
    pub const SENSE_HARDWARE_ERROR: i32 = 4;
    pub const ILLEGAL_REQ: i32 = 5;
    pub const SENSE_UNIT_ATTENTION: i32 = 6;
    pub const SENSE_INVALID_OP: i32 = 7;
    pub const SENSE_ABORTED_COMMAND: i32 = 8;
    pub const NO_SENSE: i32 = 9;
    pub const SENSE_MALFORMED: i32 = 10;
    pub const RESERV_CONFLICT: i32 = 11;
    pub const FILE_ERROR: i32 = 12;
    pub const DMMP_ERROR: i32 = 13;
    pub const THREAD_ERROR: i32 = 14;
    pub const OTHER: i32 = 15;
}

/// A PR answer, as plain data (the parameter data of SPC-4 §6.15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrAnswer {
    /// PR OUT done (on every path it went to).
    Done,
    Keys {
        generation: u32,
        keys: Vec<u64>,
    },
    Reservation {
        generation: u32,
        reservation: Option<PrReservation>,
    },
    Capabilities(PrCapabilities),
    FullStatus {
        generation: u32,
        descriptors: Vec<PrRegistration>,
    },
}

/// READ RESERVATION's descriptor (SPC-4 §6.15.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrReservation {
    pub key: u64,
    pub scope: u8,
    /// TYPE (SPC-4 Table 168).
    pub rtype: u8,
}

/// REPORT CAPABILITIES (SPC-4 §6.15.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrCapabilities {
    pub crh: bool,
    pub sip_c: bool,
    pub atp_c: bool,
    pub ptpl_c: bool,
    pub allow_commands: u8,
    pub ptpl_a: bool,
    /// PERSISTENT RESERVATION TYPE MASK, when TMV is set.
    pub type_mask: Option<u16>,
}

/// One READ FULL STATUS descriptor (SPC-4 §6.15.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrRegistration {
    pub key: u64,
    pub all_tg_pt: bool,
    /// R_HOLDER: the reservation type it holds (SPC-4 Table 168).
    pub holder: Option<u8>,
    pub relative_target_port: u16,
    /// The iSCSI name of the initiator port.
    pub name: String,
    /// Its ISID, as 12 hex digits (None: format 00b, every ISID).
    pub isid: Option<String>,
}

mod pr_convert {
    use super::*;
    use hydra_proto::scsi::pr;

    impl From<&pr::ReadKeys> for PrAnswer {
        fn from(k: &pr::ReadKeys) -> PrAnswer {
            PrAnswer::Keys {
                generation: k.generation,
                keys: k.keys.clone(),
            }
        }
    }

    impl From<&pr::ReadReservation> for PrAnswer {
        fn from(r: &pr::ReadReservation) -> PrAnswer {
            PrAnswer::Reservation {
                generation: r.generation,
                reservation: r.reservation.map(|d| PrReservation {
                    key: d.key,
                    scope: d.scope,
                    rtype: u8::from(d.rtype),
                }),
            }
        }
    }

    impl From<&pr::ReportCapabilities> for PrAnswer {
        fn from(c: &pr::ReportCapabilities) -> PrAnswer {
            PrAnswer::Capabilities(PrCapabilities {
                crh: c.crh,
                sip_c: c.sip_c,
                atp_c: c.atp_c,
                ptpl_c: c.ptpl_c,
                allow_commands: c.allow_commands,
                ptpl_a: c.ptpl_a,
                type_mask: c.type_mask,
            })
        }
    }

    impl From<&pr::FullStatus> for PrAnswer {
        fn from(s: &pr::FullStatus) -> PrAnswer {
            PrAnswer::FullStatus {
                generation: s.generation,
                descriptors: s
                    .descriptors
                    .iter()
                    .map(|d| PrRegistration {
                        key: d.key,
                        all_tg_pt: d.all_tg_pt,
                        holder: d.holder.map(u8::from),
                        relative_target_port: d.relative_target_port,
                        name: d.transport_id.name.clone(),
                        isid: d
                            .transport_id
                            .isid
                            .map(|i| i.iter().map(|b| format!("{b:02x}")).collect()),
                    })
                    .collect(),
            }
        }
    }

    impl PrOutAction {
        /// The SPC-4 service action.
        pub fn action(self) -> pr::OutAction {
            match self {
                PrOutAction::Register => pr::OutAction::Register,
                PrOutAction::RegisterIgnore => pr::OutAction::RegisterAndIgnoreExistingKey,
                PrOutAction::Reserve => pr::OutAction::Reserve,
                PrOutAction::Release => pr::OutAction::Release,
                PrOutAction::Clear => pr::OutAction::Clear,
                PrOutAction::Preempt => pr::OutAction::Preempt,
                PrOutAction::PreemptAbort => pr::OutAction::PreemptAndAbort,
            }
        }
    }

    impl PrInAction {
        /// The SPC-4 service action.
        pub fn action(self) -> pr::InAction {
            match self {
                PrInAction::ReadKeys => pr::InAction::ReadKeys,
                PrInAction::ReadReservation => pr::InAction::ReadReservation,
                PrInAction::ReportCapabilities => pr::InAction::ReportCapabilities,
                PrInAction::ReadFullStatus => pr::InAction::ReadFullStatus,
            }
        }
    }
}
