//! A blocking handle on one hydra-initiator session, for integration tests that drive
//! commands libiscsi's tools do not send (COMPARE AND WRITE, PERSISTENT RESERVE) or keep
//! one session across admin changes, from plain threads. Each handle owns a
//! current-thread runtime; the session's connection task runs while a call waits.

#![allow(dead_code)]

use bytes::Bytes;
use hydra_initiator::login::LoginConfig;
use hydra_initiator::session::Command;
use hydra_proto::negotiate::LocalParams;

/// What a command came back with.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u8,
    /// Sense data, empty when none.
    pub sense: Vec<u8>,
    pub data: Vec<u8>,
}

impl Reply {
    /// (sense key, ASC, ASCQ), or zeros without sense data.
    pub fn sense_triplet(&self) -> (u8, u8, u8) {
        hydra_initiator::session::sense_key(&self.sense).unwrap_or((0, 0, 0))
    }
}

pub struct Session {
    rt: tokio::runtime::Runtime,
    s: Option<hydra_initiator::Session>,
}

impl Session {
    /// Log in to `target` on 127.0.0.1:`port` as initiator port `name` + `isid`.
    pub fn login(port: u16, target: &str, name: &str, isid: [u8; 6]) -> Result<Session, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let cfg = LoginConfig {
            initiator_name: name.into(),
            target_name: Some(target.into()),
            isid,
            tsih: 0,
            chap: None,
            params: LocalParams {
                max_recv_data_segment_length: 262_144,
                ..LocalParams::default()
            },
        };
        let addr = format!("127.0.0.1:{port}")
            .parse()
            .expect("loopback address");
        let s = rt
            .block_on(hydra_initiator::Session::login(addr, cfg))
            .map_err(|e| e.to_string())?;
        Ok(Session { rt, s: Some(s) })
    }

    /// Run one command on `lun`: `data_out` is written, up to `read_len` bytes read.
    pub fn command(
        &mut self,
        lun: u64,
        cdb: &[u8],
        data_out: &[u8],
        read_len: u32,
    ) -> Result<Reply, String> {
        let s = self.s.as_ref().expect("logged in");
        let cmd = Command {
            lun,
            cdb: cdb.to_vec(),
            data_out: Bytes::copy_from_slice(data_out),
            read_len,
        };
        let r = self
            .rt
            .block_on(s.execute(cmd))
            .map_err(|e| e.to_string())?;
        Ok(Reply {
            status: r.status,
            sense: r.sense,
            data: r.data.to_vec(),
        })
    }

    /// Run `cdb` until it does not return a unit attention (at most 8 times).
    pub fn command_past_ua(
        &mut self,
        lun: u64,
        cdb: &[u8],
        data_out: &[u8],
        read_len: u32,
    ) -> Result<Reply, String> {
        for _ in 0..8 {
            let r = self.command(lun, cdb, data_out, read_len)?;
            if !(r.status == 0x02 && r.sense_triplet().0 == 0x06) {
                return Ok(r);
            }
        }
        Err("unit attentions did not stop".into())
    }

    /// Send one command, give it `wait` to be answered, then drop the connection without
    /// waiting any longer (the initiator's sockets have SO_LINGER 0: an RST), as the
    /// initiator does with a connection it has given up on. Whether it was answered.
    pub fn send_then_reset(
        mut self,
        lun: u64,
        cdb: &[u8],
        data_out: &[u8],
        wait: std::time::Duration,
    ) -> bool {
        let s = self.s.take().expect("logged in");
        let cmd = Command {
            lun,
            cdb: cdb.to_vec(),
            data_out: Bytes::copy_from_slice(data_out),
            read_len: 0,
        };
        let answered = self
            .rt
            .block_on(async { tokio::time::timeout(wait, s.execute(cmd)).await.is_ok() });
        drop(s);
        // The connection's task and its socket go with the runtime.
        drop(self);
        answered
    }

    /// Log out cleanly.
    pub fn logout(mut self) -> Result<(), String> {
        let s = self.s.take().expect("logged in");
        self.rt.block_on(s.logout()).map_err(|e| e.to_string())
    }
}
