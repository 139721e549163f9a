//! The tokio driver of one iSCSI connection: one task that reads PDUs, runs the login
//! machine and then the session, executes page-cache hits inline, sends everything else
//! to the blocking pool, and writes responses with vectored writes. Batching falls out of
//! the loop's shape: all complete PDUs in the receive buffer are handled before one flush.

use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hydra_proto::negotiate::SessionType;
use hydra_proto::pdu::{LoginRequest, Pdu, Repr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::framing::{consume, try_frame, Digests, FrameError, OutQueue};
use super::login::{LoginEnv, Step, TargetLogin, LOGIN_MAX_DATA};
use super::session::{Fatal, Session};
use crate::lun::ScsiOutcome;
use crate::nexus::ItNexus;
use crate::registry::Registry;

/// Per-daemon connection settings.
#[derive(Debug, Clone)]
pub struct ConnOpts {
    /// Commands in flight per session (tgt's MaxQueueCmd, default 128).
    pub queue_depth: u32,
    /// Target-initiated NOP-In every this often; zero = off (tgt's nop_interval).
    pub nop_interval: Duration,
    /// Unanswered pings before the connection is dropped (tgt's nop_count).
    pub nop_count: u32,
    /// A login that takes longer is dropped (a flood of half-open logins costs nothing).
    pub login_timeout: Duration,
}

impl Default for ConnOpts {
    fn default() -> Self {
        ConnOpts {
            queue_depth: 128,
            nop_interval: Duration::ZERO,
            nop_count: 3,
            login_timeout: Duration::from_secs(15),
        }
    }
}

/// Serve one accepted connection until it closes. Never panics on peer input; every
/// reason to close is logged with the peer's address.
pub async fn serve(stream: TcpStream, registry: Arc<Registry>, opts: Arc<ConnOpts>) {
    let peer = match stream.peer_addr() {
        Ok(p) => p,
        Err(_) => return,
    };
    let _ = stream.set_nodelay(true);
    let mut c = Conn {
        stream,
        rbuf: BytesMut::with_capacity(64 * 1024),
        peer,
    };
    match c.run(registry, opts).await {
        Ok(()) => tracing::debug!("{peer}: connection closed"),
        Err(why) => tracing::info!("{peer}: connection closed: {why}"),
    }
}

struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    peer: std::net::SocketAddr,
}

impl Conn {
    async fn read_more(&mut self) -> Result<(), String> {
        match self.stream.read_buf(&mut self.rbuf).await {
            Ok(0) => Err("peer closed the connection".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    async fn flush(&mut self, out: &mut OutQueue) -> Result<(), String> {
        let chunks = out.take();
        write_all_vectored(&mut self.stream, chunks)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    async fn run(&mut self, registry: Arc<Registry>, opts: Arc<ConnOpts>) -> Result<(), String> {
        let local = self.stream.local_addr().map_err(|e| e.to_string())?;
        let tpgt = registry.tpgt_for(local);
        let mut random = [0u8; 33];
        getrandom::getrandom(&mut random).map_err(|e| format!("random: {e}"))?;
        let mut login = TargetLogin::new(LoginEnv {
            registry: registry.clone(),
            peer: self.peer,
            tpgt,
            random,
            queue_depth: opts.queue_depth,
        });
        let mut out = OutQueue::default();
        let est = tokio::time::timeout(opts.login_timeout, async {
            loop {
                let frame = loop {
                    match try_frame(&mut self.rbuf, Digests::default(), LOGIN_MAX_DATA) {
                        Ok(Some(f)) => break f,
                        Ok(None) => self.read_more().await?,
                        Err(e) => return Err(format!("during login: {e}")),
                    }
                };
                let req = match Pdu::parse(&frame.bhs) {
                    Ok(Pdu::LoginRequest(r)) => r,
                    Ok(other) => {
                        return Err(format!("{:?} before login completed", other.opcode()))
                    }
                    Err(e) => return Err(format!("during login: {e}")),
                };
                match login.handle(&req, &frame.data) {
                    Step::Continue(r) => {
                        out.push(
                            &r.hdr.emit(r.data.len()),
                            Bytes::from(r.data),
                            Digests::default(),
                        );
                        self.flush(&mut out).await?;
                    }
                    Step::FullFeature(r, est) => {
                        out.push(
                            &r.hdr.emit(r.data.len()),
                            Bytes::from(r.data),
                            Digests::default(),
                        );
                        self.flush(&mut out).await?;
                        return Ok((est, req));
                    }
                    Step::Failed(r, why) => {
                        out.push(
                            &r.hdr.emit(r.data.len()),
                            Bytes::from(r.data),
                            Digests::default(),
                        );
                        self.flush(&mut out).await?;
                        return Err(format!("login refused: {why}"));
                    }
                }
            }
        })
        .await
        .map_err(|_| "login timed out".to_string())??;
        let (est, _req): (Box<super::login::Established>, LoginRequest) = est;

        let nexus = Arc::new(ItNexus {
            initiator: est.initiator_name.clone(),
            isid: est.isid,
            target_port: tpgt,
        });
        let session_type = est.session_type;
        let target = est.target.clone();
        let (entry, mut stop) = registry.add_session(
            est.tsih,
            target.as_ref().map(|t| t.tid).unwrap_or(0),
            (*nexus).clone(),
            est.initiator_alias.clone(),
            self.peer,
            est.cid,
        );
        let luns: Vec<_> = target
            .as_ref()
            .map(|t| t.luns.read().expect("lock").values().cloned().collect())
            .unwrap_or_default();
        if session_type == SessionType::Normal {
            for l in &luns {
                l.nexus_added(&nexus);
            }
            tracing::info!(
                "{}: session tsih {} of {} logged in to {}",
                self.peer,
                est.tsih,
                nexus,
                target.as_ref().map(|t| t.iqn.as_str()).unwrap_or("")
            );
        }
        let mut s = Session::new(
            registry.clone(),
            target,
            session_type,
            est.params.clone(),
            nexus.clone(),
            self.peer,
            local,
            est.stat_sn,
            est.exp_cmd_sn,
            opts.queue_depth,
        );
        let result = self.full_feature(&mut s, &mut stop, &opts).await;
        registry.remove_session(entry.id);
        if session_type == SessionType::Normal {
            for l in &luns {
                l.nexus_removed(&nexus);
            }
        }
        result
    }

    async fn full_feature(
        &mut self,
        s: &mut Session,
        stop: &mut tokio::sync::watch::Receiver<bool>,
        opts: &ConnOpts,
    ) -> Result<(), String> {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(u32, ScsiOutcome)>();
        let max_data = s.params.max_recv_data_segment_length as usize;
        let nop_on = !opts.nop_interval.is_zero();
        let mut nop = tokio::time::interval(if nop_on {
            opts.nop_interval
        } else {
            Duration::from_secs(3600)
        });
        nop.tick().await;
        let mut missed = 0u32;
        // Set when this connection ends: a command still waiting for a blocking-pool
        // thread then never runs (see `Ended`).
        let ended = Ended::default();
        loop {
            // Handle every whole PDU already received, then flush once.
            loop {
                match try_frame(&mut self.rbuf, s.digests, max_data) {
                    Ok(Some(f)) => match s.handle(f) {
                        Ok(()) => {}
                        Err(Fatal::Logout) => {
                            let mut out = std::mem::take(&mut s.out);
                            self.flush(&mut out).await?;
                            return Ok(());
                        }
                        Err(Fatal::Protocol(why)) => return Err(format!("protocol error: {why}")),
                    },
                    Ok(None) => break,
                    Err(FrameError::DataDigest { bhs, itt }) => {
                        // RFC 7143 §7.8: reject the damaged PDU; at ERL 0 the command it
                        // belongs to cannot be recovered, so the connection ends.
                        tracing::warn!("{}: data digest error, ITT 0x{itt:08x}", self.peer);
                        let _ = bhs;
                        return Err("data digest error".into());
                    }
                    Err(e) => return Err(e.to_string()),
                }
                if s.out.queued_bytes() > 4 << 20 {
                    let mut out = std::mem::take(&mut s.out);
                    self.flush(&mut out).await?;
                }
            }
            for job in s.take_jobs() {
                let tx = done_tx.clone();
                let ended = ended.0.clone();
                tokio::task::spawn_blocking(move || {
                    if ended.load(Ordering::Acquire) {
                        return;
                    }
                    let out = job.run();
                    let _ = tx.send((job.itt, out));
                });
            }
            if !s.out.is_empty() {
                let mut out = std::mem::take(&mut s.out);
                self.flush(&mut out).await?;
            }
            tokio::select! {
                r = self.stream.read_buf(&mut self.rbuf) => match r {
                    Ok(0) => return Err("peer closed the connection".into()),
                    Ok(_) => {
                        missed = 0;
                        // A reset connection still reads out what arrived before the
                        // RST. Those commands belong to a connection the initiator has
                        // given up on, and it may already have sent them again on
                        // another path, followed by newer writes to the same blocks: run
                        // now, a stale WRITE would land over them. RFC 7143 §7.1 (ERL
                        // 0): a failed connection's tasks are terminated, not run.
                        if let Ok(Some(e)) = self.stream.take_error() {
                            return Err(format!(
                                "connection reset ({e}); the commands received after the \
                                 last batch are dropped"
                            ));
                        }
                    }
                    Err(e) => return Err(format!("read: {e}")),
                },
                Some((itt, o)) = done_rx.recv() => {
                    s.complete(itt, o);
                    while let Ok((itt, o)) = done_rx.try_recv() {
                        s.complete(itt, o);
                    }
                }
                _ = stop.changed() => return Err("session stopped by the target (reinstatement or admin)".into()),
                _ = nop.tick(), if nop_on => {
                    if !s.ping() {
                        missed += 1;
                        if missed >= opts.nop_count {
                            return Err(format!("no answer to {missed} NOP-In pings"));
                        }
                    }
                }
            }
        }
    }
}

/// Set when a connection's full-feature phase ends, however it ends: its commands that
/// have not started on the blocking pool are dropped (a connection that failed has its
/// tasks terminated, RFC 7143 §7.1; nobody would read their answers).
#[derive(Default)]
struct Ended(Arc<AtomicBool>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Write every chunk, in order, with as few syscalls as the socket allows.
async fn write_all_vectored(stream: &mut TcpStream, mut chunks: Vec<Bytes>) -> std::io::Result<()> {
    let mut first = 0;
    while first < chunks.len() {
        let n = {
            let slices: Vec<IoSlice<'_>> = chunks[first..]
                .iter()
                .take(512)
                .map(|c| IoSlice::new(c))
                .collect();
            stream.write_vectored(&slices).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        consume(&mut chunks, &mut first, n);
    }
    Ok(())
}
