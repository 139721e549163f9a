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

pub use crate::persist::{
    pr_status, PrAnswer, PrCapabilities, PrInAction, PrOut, PrOutAction, PrRegistration,
    PrReservation,
};
use crate::show::MapSnapshot;
pub use crate::show::Show;

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
    /// `multipath -a DEV` (`add`) / `-w DEV`: DEV's WWID into / out of the wwids file;
    /// answered with multipath-tools' line as [`Response::Text`].
    EditWwid { dev: String, add: bool },
    /// `multipath -W`: the wwids file lists exactly the current maps' WWIDs.
    ResetWwids,
}

impl Request {
    /// A multipathd command, as typed after `multipathd` or in `multipathd -k"…"`
    /// (multipathd.8 "Commands"; its synonyms `list` for `show`, `multipaths` for
    /// `maps`, `multipath` for `map`, `remove` for `del`, `switch` for `switchgroup`).
    /// `Err` says what is wrong, for the CLI to print before sending anything.
    pub fn parse_command(words: &[&str]) -> Result<Request, String> {
        let norm: Vec<&str> = words
            .iter()
            .map(|w| match *w {
                "list" => "show",
                "multipaths" => "maps",
                "multipath" => "map",
                "remove" => "del",
                "switch" => "switchgroup",
                w => w,
            })
            .collect();
        let bad = || {
            Err(format!(
                "unknown command '{}'; commands:\n{}",
                words.join(" "),
                COMMANDS
            ))
        };
        let arg = |i: usize, what: &str| -> Result<String, String> {
            words
                .get(i)
                .map(|s| s.to_string())
                .ok_or_else(|| format!("'{}' needs {what}", words.join(" ")))
        };
        let done = |n: usize, r: Request| -> Result<Request, String> {
            match words.get(n) {
                None => Ok(r),
                Some(extra) => Err(format!(
                    "unexpected '{extra}' after '{}'",
                    words[..n].join(" ")
                )),
            }
        };
        let show = |s: Show, n: usize| done(n, Request::Show(s));
        match norm.as_slice() {
            ["show", "paths"] => show(Show::Paths { format: None }, 2),
            ["show", "paths", "format", ..] => show(
                Show::Paths {
                    format: Some(arg(3, "a format")?),
                },
                4,
            ),
            ["show", "paths", "raw", "format", ..] => show(
                Show::PathsRaw {
                    format: arg(4, "a format")?,
                },
                5,
            ),
            ["show", "maps", "raw", "format", ..] => show(
                Show::MapsRaw {
                    format: arg(4, "a format")?,
                },
                5,
            ),
            ["show", "maps"] => show(Show::Maps { format: None }, 2),
            ["show", "maps", "format", ..] => show(
                Show::Maps {
                    format: Some(arg(3, "a format")?),
                },
                4,
            ),
            ["show", "maps", "status", ..] => show(Show::MapsStatus, 3),
            ["show", "maps", "stats", ..] => show(Show::MapsStats, 3),
            ["show", "maps", "topology", ..] | ["show", "topology", ..] => {
                show(Show::Topology { map: None }, norm.len().min(3))
            }
            ["show", "map", m, "topology", ..] => show(
                Show::Topology {
                    map: Some(m.to_string()),
                },
                4,
            ),
            ["show", "status", ..] => show(Show::Status, 2),
            ["show", "config", ..] => show(Show::Config, 2),
            ["show", "wildcards", ..] => show(Show::Wildcards, 2),
            ["reconfigure", ..] => done(1, Request::Reconfigure),
            ["fail", "path", ..] => done(
                3,
                Request::FailPath {
                    path: arg(2, "a path")?,
                },
            ),
            ["reinstate", "path", ..] => done(
                3,
                Request::ReinstatePath {
                    path: arg(2, "a path")?,
                },
            ),
            ["switchgroup", "map", _, "group", ..] => {
                let group = arg(4, "a group number")?;
                let group = group
                    .parse::<usize>()
                    .ok()
                    .filter(|g| *g >= 1)
                    .ok_or_else(|| {
                        format!("invalid group number '{group}' (groups count from 1)")
                    })?;
                done(
                    5,
                    Request::SwitchGroup {
                        map: words[2].to_string(),
                        group,
                    },
                )
            }
            ["disablequeueing", "maps", ..] => done(2, Request::DisableQueueing { map: None }),
            ["disablequeueing", "map", ..] => done(
                3,
                Request::DisableQueueing {
                    map: Some(arg(2, "a map")?),
                },
            ),
            ["restorequeueing", "maps", ..] => done(2, Request::RestoreQueueing { map: None }),
            ["restorequeueing", "map", ..] => done(
                3,
                Request::RestoreQueueing {
                    map: Some(arg(2, "a map")?),
                },
            ),
            ["add", "map", ..] => done(
                3,
                Request::AddMap {
                    map: arg(2, "a map")?,
                },
            ),
            ["del", "map", ..] => done(
                3,
                Request::DelMap {
                    map: arg(2, "a map")?,
                },
            ),
            ["del", "maps", ..] => done(2, Request::Flush { map: None }),
            ["shutdown", ..] => done(1, Request::Shutdown),
            _ => bad(),
        }
    }
}

/// The commands [`Request::parse_command`] takes, for help texts.
pub const COMMANDS: &str = "  show|list paths [raw] [format $format]
  show|list maps|multipaths [raw] [format $format]
  show|list maps|multipaths status|stats|topology
  show|list topology
  show|list map|multipath $map topology
  show|list status|config|wildcards
  reconfigure
  fail path $path
  reinstate path $path
  switch|switchgroup map $map group $group
  disablequeueing|restorequeueing maps|map $map
  add map $map
  remove|del map $map
  remove|del maps
  shutdown";

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

impl Response {
    /// A `show` command's answer ([`crate::show::answer`]): its text, or multipathd's
    /// `fail` (exit status 1) with why.
    pub fn shown(r: Result<String, String>) -> Response {
        match r {
            Ok(text) => Response::Text(text),
            Err(message) => Response::Error { code: 1, message },
        }
    }
}

pub use pr_convert::{pr_response, pr_status_of};

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

    impl From<&crate::driver::PrIn> for PrAnswer {
        /// The driver's decoded PR IN answer. READ RESERVATION's generation does not
        /// come through the driver (its `PrIn::Reservation` keeps only the
        /// descriptor), so it reads 0.
        fn from(a: &crate::driver::PrIn) -> PrAnswer {
            use crate::driver::PrIn;
            match a {
                PrIn::Keys(k) => k.into(),
                PrIn::Reservation(r) => PrAnswer::Reservation {
                    generation: 0,
                    reservation: r.map(|d| PrReservation {
                        key: d.key,
                        scope: d.scope,
                        rtype: u8::from(d.rtype),
                    }),
                },
                PrIn::Capabilities(c) => c.into(),
                PrIn::FullStatus(f) => f.into(),
            }
        }
    }

    /// mpathpersist's status for a PR command's outcome (libmpathpersist
    /// `mpath_translate_response`: RESERVATION CONFLICT, then CHECK CONDITION by sense
    /// key).
    pub fn pr_status_of(outcome: &crate::driver::PrOutcome) -> i32 {
        use crate::driver::PrOutcome;
        match outcome {
            PrOutcome::Good => pr_status::SUCCESS,
            PrOutcome::ReservationConflict => pr_status::RESERV_CONFLICT,
            PrOutcome::Failed { sense: None, .. } => pr_status::OTHER,
            PrOutcome::Failed {
                sense: Some((key, _, _)),
                ..
            } => match key {
                0x0 => pr_status::NO_SENSE,
                0x1 => pr_status::SUCCESS,
                0x2 => pr_status::SENSE_NOT_READY,
                0x3 => pr_status::SENSE_MEDIUM_ERROR,
                0x4 | 0x7 => pr_status::SENSE_HARDWARE_ERROR,
                0x5 => pr_status::ILLEGAL_REQ,
                0x6 => pr_status::SENSE_UNIT_ATTENTION,
                0xb => pr_status::SENSE_ABORTED_COMMAND,
                _ => pr_status::OTHER,
            },
        }
    }

    /// The answer to a PR OUT (or a PR IN that ended without data) from its outcome:
    /// [`PrAnswer::Done`] on success, else an error carrying mpathpersist's status.
    pub fn pr_response(outcome: &crate::driver::PrOutcome) -> Response {
        match pr_status_of(outcome) {
            pr_status::SUCCESS => Response::Pr(PrAnswer::Done),
            code => Response::Error {
                code,
                message: format!("persistent reservation command failed: {outcome:?}"),
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::show::{self, DaemonFacts, MapSnapshot};
    use hydra_daemon::control;
    use hydra_daemon::Shutdown;
    use std::time::Duration;

    fn parse(s: &str) -> Result<Request, String> {
        Request::parse_command(&s.split_whitespace().collect::<Vec<_>>())
    }

    #[test]
    fn pr_outcomes_as_mpathpersist_statuses() {
        use crate::driver::PrOutcome;
        assert_eq!(pr_response(&PrOutcome::Good), Response::Pr(PrAnswer::Done));
        let conflict = pr_response(&PrOutcome::ReservationConflict);
        assert!(
            matches!(conflict, Response::Error { code: 11, .. }),
            "{conflict:?}"
        );
        let illegal = PrOutcome::Failed {
            status: 2,
            sense: Some((5, 0x26, 0)),
        };
        assert_eq!(pr_status_of(&illegal), pr_status::ILLEGAL_REQ);
        let ua = PrOutcome::Failed {
            status: 2,
            sense: Some((6, 0x29, 0)),
        };
        assert_eq!(pr_status_of(&ua), pr_status::SENSE_UNIT_ATTENTION);
    }

    #[test]
    fn commands_parse_with_synonyms() {
        assert_eq!(
            parse("show paths"),
            Ok(Request::Show(Show::Paths { format: None }))
        );
        assert_eq!(
            Request::parse_command(&["list", "paths", "format", "%w %d"]),
            Ok(Request::Show(Show::Paths {
                format: Some("%w %d".into())
            }))
        );
        assert_eq!(
            parse("list multipaths"),
            Ok(Request::Show(Show::Maps { format: None }))
        );
        assert_eq!(parse("show topology"), parse("show maps topology"));
        assert_eq!(
            Request::parse_command(&["show", "maps", "raw", "format", "%n %w"]),
            Ok(Request::Show(Show::MapsRaw {
                format: "%n %w".into()
            }))
        );
        assert_eq!(
            parse("show multipath mpatha topology"),
            Ok(Request::Show(Show::Topology {
                map: Some("mpatha".into())
            }))
        );
        assert_eq!(
            parse("switch map mpatha group 2"),
            Ok(Request::SwitchGroup {
                map: "mpatha".into(),
                group: 2
            })
        );
        assert_eq!(parse("remove maps"), Ok(Request::Flush { map: None }));
        assert_eq!(
            parse("fail path s1l0"),
            Ok(Request::FailPath {
                path: "s1l0".into()
            })
        );
        assert_eq!(
            parse("switchgroup map m group 0").unwrap_err(),
            "invalid group number '0' (groups count from 1)"
        );
        assert_eq!(parse("fail path").unwrap_err(), "'fail path' needs a path");
        assert_eq!(
            parse("reconfigure now").unwrap_err(),
            "unexpected 'now' after 'reconfigure'"
        );
        assert!(parse("format disk")
            .unwrap_err()
            .starts_with("unknown command 'format disk'; commands:\n  show|list paths [raw]"));
    }

    /// The protocol over a real socket, with a tiny daemon that answers `show` from one
    /// snapshot and `multipath -ll`'s request with the snapshots themselves.
    #[tokio::test]
    async fn round_trip_over_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path());
        let shutdown = Shutdown::new();
        let listener = control::bind(&path, Some(0o600)).unwrap();
        let snap: MapSnapshot = serde_json::from_str(SNAPSHOT).unwrap();
        let maps = vec![snap.clone()];
        let server = tokio::spawn(control::serve::<Multipathd, _, _>(
            listener,
            shutdown.subscribe(),
            move |req: Request| {
                let maps = maps.clone();
                async move {
                    match req {
                        Request::Show(s) => {
                            Response::shown(show::answer(&s, &maps, &DaemonFacts::default()))
                        }
                        Request::Snapshots { .. } => Response::Snapshots(maps),
                        Request::PrIn { .. } => Response::Pr(PrAnswer::Keys {
                            generation: 3,
                            keys: vec![0x123abc],
                        }),
                        Request::Reconfigure => Response::Ok,
                        _ => Response::Error {
                            code: 1,
                            message: "not here".into(),
                        },
                    }
                }
            },
        ));
        let call = |r| control::call::<Multipathd>(&path, r);
        assert_eq!(
            call(Request::Show(Show::Maps { format: None }))
                .await
                .unwrap(),
            Response::Text("name   sysfs uuid\nmpatha loop3 3600\n".into())
        );
        assert_eq!(
            call(Request::Snapshots { map: None }).await.unwrap(),
            Response::Snapshots(vec![snap])
        );
        assert_eq!(
            call(Request::PrIn {
                map: "mpatha".into(),
                action: PrInAction::ReadKeys
            })
            .await
            .unwrap(),
            Response::Pr(PrAnswer::Keys {
                generation: 3,
                keys: vec![0x123abc]
            })
        );
        assert_eq!(call(Request::Reconfigure).await.unwrap(), Response::Ok);
        assert_eq!(
            call(Request::Shutdown).await.unwrap(),
            Response::Error {
                code: 1,
                message: "not here".into()
            }
        );
        assert!(shutdown.drain(Duration::from_secs(5)).await);
        server.await.unwrap();
    }

    const SNAPSHOT: &str = r#"{"name":"mpatha","wwid":"3600","sysfs":"loop3","dev_t":"7:3",
        "size":1073741824,"vendor":"IET","product":"VIRTUAL-DISK","revision":"0001",
        "features":"0","hwhandler":"0","write_protect":false,"failback":"-",
        "queueing":"off","queued":0,"pending":0,
        "stats":{"path_faults":1,"switch_group":0,"queue_timeouts":0},
        "groups":[{"selector":"service-time 0","prio":1,"status":"active","paths":[
          {"id":4294967297,"wwid":"3600","multipath":"mpatha","size":1073741824,
           "hcil":"1:0:0:1","dev":"s1l1","dev_t":"7:3","dm_state":"active",
           "checker":"ready","dev_state":"running","prio":1,"next_check":"XX........ 2/10",
           "vpr":"IET,VIRTUAL-DISK,0001","serial":"beaf11","target_name":"iqn.t",
           "portal":"10.200.1.1:3260","tpg":null,"sid":1,"failed_because":null,
           "in_flight":0}]}]}"#;
}
