//! The multipathd commands on `<run dir>/multipathd.sock` ([`crate::control`]), as the
//! node daemon answers them (multipathd.8 "Commands"; `multipathd/cli_handlers.c`).
//!
//! `show …` is printed here with [`crate::show`] over snapshots taken inside each map's
//! task; `multipath -ll` gets the snapshots and prints them itself. Path names are
//! hydra's `s{sid}l{lun}` or H:C:T:L `{sid}:0:0:{lun}`; map names an alias, a WWID or
//! the kernel device's name.

use std::collections::HashSet;

use hydra_proto::scsi::pr::{OutParams, PrType};

use super::maps::{path_name, Node};
use crate::control::{pr_response, pr_status, PrAnswer, Request, Response};
use crate::driver::path_id;
use crate::show::{self, DaemonFacts, DeviceFacts, PathFacts as ShowPathFacts, PathSnapshot};

fn fail(message: impl Into<String>) -> Response {
    Response::Error {
        code: 1,
        message: message.into(),
    }
}

fn text(r: std::result::Result<String, String>) -> Response {
    match r {
        Ok(t) => Response::Text(t + "\n"),
        Err(e) => fail(e),
    }
}

fn ok_or(r: std::result::Result<(), impl ToString>) -> Response {
    match r {
        Ok(()) => Response::Ok,
        Err(e) => fail(e.to_string()),
    }
}

impl Node {
    /// Answer one multipathd request.
    pub async fn handle(&self, req: Request) -> Response {
        match req {
            Request::Show(s) => {
                let st = self.state().await;
                let maps = match self.snapshots(&st, None).await {
                    Ok(m) => m,
                    Err(e) => return fail(e),
                };
                let daemon = DaemonFacts {
                    config: crate::config::print::print_config(&st.config),
                    orphans: self.orphans(&maps),
                };
                Response::shown(show::answer(&s, &maps, &daemon))
            }
            Request::Snapshots { map } => {
                let st = self.state().await;
                match self.snapshots(&st, map.as_deref()).await {
                    Ok(m) => Response::Snapshots(m),
                    Err(e) => fail(e),
                }
            }
            Request::Reconfigure => ok_or(self.reconfigure().await),
            Request::FailPath { path } => {
                let st = self.state().await;
                match st.find_path(&path) {
                    Some((m, id)) => ok_or(m.handle.fail_path(id).await),
                    None => fail(format!("{path}: no such path")),
                }
            }
            Request::ReinstatePath { path } => {
                let st = self.state().await;
                match st.find_path(&path) {
                    Some((m, id)) => ok_or(m.handle.reinstate_path(id).await),
                    None => fail(format!("{path}: no such path")),
                }
            }
            Request::SwitchGroup { map, group } => {
                let st = self.state().await;
                match st.find(&map) {
                    Some(m) => ok_or(m.handle.switch_group(group).await),
                    None => fail(format!("{map}: no such map")),
                }
            }
            Request::DisableQueueing { map } => self.queueing(map.as_deref(), false).await,
            Request::RestoreQueueing { map } => self.queueing(map.as_deref(), true).await,
            Request::AddMap { map } => ok_or(self.add_map(&map).await),
            Request::DelMap { map } => self.flush_maps(Some(&map)).await,
            Request::Flush { map } => self.flush_maps(map.as_deref()).await,
            Request::PrIn { map, action } => {
                let st = self.state().await;
                let Some(m) = st.find(&map) else {
                    return Response::Error {
                        code: pr_status::DMMP_ERROR,
                        message: format!("{map}: no such map"),
                    };
                };
                match m.handle.pr_in(action.action()).await {
                    Ok(Ok(answer)) => Response::Pr(PrAnswer::from(&answer)),
                    Ok(Err(o)) => pr_response(&o),
                    Err(e) => Response::Error {
                        code: pr_status::OTHER,
                        message: e.to_string(),
                    },
                }
            }
            Request::PrOut(p) => {
                let st = self.state().await;
                let Some(m) = st.find(&p.map) else {
                    return Response::Error {
                        code: pr_status::DMMP_ERROR,
                        message: format!("{}: no such map", p.map),
                    };
                };
                let params = OutParams {
                    key: p.key,
                    sa_key: p.sa_key,
                    aptpl: p.aptpl,
                    ..OutParams::default()
                };
                let rtype = PrType::from(p.prout_type);
                match m.handle.pr_out(p.action.action(), rtype, params).await {
                    Ok(o) => pr_response(&o),
                    Err(e) => Response::Error {
                        code: pr_status::OTHER,
                        message: e.to_string(),
                    },
                }
            }
            Request::Shutdown => {
                self.request_shutdown();
                Response::Ok
            }
            Request::EditWwid { dev, add } => text(self.edit_wwid(&dev, add).await),
            Request::ResetWwids => text(self.reset_wwids().await),
        }
    }

    async fn queueing(&self, map: Option<&str>, on: bool) -> Response {
        let st = self.state().await;
        let maps: Vec<_> = match map {
            Some(n) => match st.find(n) {
                Some(m) => vec![m],
                None => return fail(format!("{n}: no such map")),
            },
            None => st.maps.values().collect(),
        };
        for m in maps {
            let r = if on {
                m.handle.restore_queueing().await
            } else {
                m.handle.disable_queueing().await
            };
            if let Err(e) = r {
                return fail(e.to_string());
            }
        }
        Response::Ok
    }

    /// `multipath -f M` / `-F`, `del map M`: unused maps go; the answer names those
    /// in use.
    async fn flush_maps(&self, map: Option<&str>) -> Response {
        let mut st = self.state().await;
        let wwids: Vec<String> = match map {
            Some(n) => match st.find(n) {
                Some(m) => vec![m.wwid.clone()],
                None => return fail(format!("{n}: no such map")),
            },
            None => st.maps.keys().cloned().collect(),
        };
        let mut refused = Vec::new();
        for w in wwids {
            match self.flush(&mut st, &w, false).await {
                Ok(notes) => {
                    for n in notes {
                        tracing::warn!("{n}");
                    }
                }
                Err(e) => refused.push(e),
            }
        }
        if refused.is_empty() {
            Response::Ok
        } else {
            fail(refused.join("\n"))
        }
    }

    /// Session LUNs no map uses, as `show paths` lists them (`orphan`).
    fn orphans(&self, maps: &[show::MapSnapshot]) -> Vec<PathSnapshot> {
        let used: HashSet<u64> = maps.iter().flat_map(|m| m.paths()).map(|p| p.id).collect();
        let mut out = Vec::new();
        for e in self.iscsid().registry().sessions() {
            for lun in e.luns() {
                let id = path_id(e.sid, lun.lun);
                // Only disks are paths (a controller LUN 0 has no sd device either).
                if lun.device_type != 0 || used.contains(&id.0) {
                    continue;
                }
                let facts = ShowPathFacts {
                    hcil: format!("{}:0:0:{}", e.sid, lun.lun),
                    dev: path_name(e.sid, lun.lun),
                    dev_t: None,
                    portal: format!("{}:{}", e.node.address, e.node.port),
                    sid: e.sid,
                    online: e.session.is_connected(),
                };
                let dev = DeviceFacts {
                    size: lun.blocks * u64::from(lun.block_size),
                    vendor: lun.vendor.clone(),
                    product: lun.model.clone(),
                    revision: lun.revision.clone(),
                    ..DeviceFacts::default()
                };
                let mut p =
                    PathSnapshot::orphan(id, lun.wwid.as_deref().unwrap_or(""), &facts, &dev);
                p.dev_state = if facts.online { "running" } else { "offline" }.into();
                p.target_name = e.node.target.clone();
                out.push(p);
            }
        }
        out
    }
}
