//! The filesystem's lock in the DLM, and the holder record in its value block.
//!
//! Lockspace `hydra_mount`, resource = the filesystem UUID; EX for a read-write mount,
//! PR for a read-only one (PR locks share, EX excludes both: one writer, or any number
//! of readers). The request is PERSISTENT: when `hydra mount` exits, the daemon keeps
//! the granted lock as an orphan of this node (libdlm's `LKF_PERSISTENT`, the kernel's
//! `dlm_user_purge`), and `hydra umount` adopts it back (`LKF_ORPHAN`, same name and
//! mode) to unlock it. The lockspace stays joined after its last client goes (hydra
//! dlm_controld leaves a lockspace only when asked), so the orphan lives until then, or
//! until the node leaves the cluster (the other nodes then recover the lock away, after
//! fencing it).
//!
//! Holder naming: a read-write holder converts EX→EX with VALBLK right after the grant,
//! which writes a 32-byte [`Holder`] record into the resource's value block
//! (`dlm_lvb_operations`: EX→EX writes). A refused requester reads it with an NL lock
//! and VALBLK (NL is granted whatever is held) and names the node. `hydra umount`
//! unlocks an EX lock with a zeroed value block, so a record is there only while its
//! writer holds the lock; read-only holders cannot write the block (PR does not), so a
//! refusal by PR holders says "read-only by other nodes".

use std::path::{Path, PathBuf};
use std::time::Duration;

use hydra_dlm::api::Query;
use hydra_dlm::client::{self, describe, Client, Lock};
use hydra_dlm::flags::{Flags, Status, SBF_VALNOTVALID};
use hydra_dlm::mode::Mode;
use hydra_dlm::resource::{Lvb, LVB_LEN};

use super::options::LockWait;
use crate::{Error, Result};

/// The lockspace of hydra mount's locks.
pub const LOCKSPACE: &str = "hydra_mount";

const MAGIC: &[u8; 4] = b"hmnt";
const VERSION: u8 = 1;
const NAME_AT: usize = 12;
/// Bytes of the node name kept in the record.
pub const NAME_LEN: usize = LVB_LEN - NAME_AT;

/// Who holds a filesystem: the value block record `magic "hmnt", version, mode, 2
/// zero bytes, corosync nodeid (big-endian u32), node name (20 bytes, NUL padded)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub nodeid: u32,
    pub mode: Mode,
    pub name: String,
}

impl Holder {
    pub fn encode(&self) -> Lvb {
        let mut b = [0u8; LVB_LEN];
        b[..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[5] = self.mode as u8;
        b[8..12].copy_from_slice(&self.nodeid.to_be_bytes());
        // Cut at a character boundary so that the record stays UTF-8.
        let mut n = self.name.len().min(NAME_LEN);
        while !self.name.is_char_boundary(n) {
            n -= 1;
        }
        b[NAME_AT..NAME_AT + n].copy_from_slice(&self.name.as_bytes()[..n]);
        b
    }

    /// The record, or None when the block holds none (zeros: no read-write holder
    /// wrote one, or it unlocked).
    pub fn decode(b: &Lvb) -> Option<Holder> {
        if &b[..4] != MAGIC || b[4] != VERSION {
            return None;
        }
        let mode = Mode::from_u8(b[5])?;
        let nodeid = u32::from_be_bytes(b[8..12].try_into().expect("4 bytes"));
        let name = &b[NAME_AT..];
        let end = name.iter().position(|c| *c == 0).unwrap_or(name.len());
        // Bytes that are not UTF-8 become U+FFFD (3 bytes each): cut what that makes
        // to what a record holds, so that a decoded holder encodes to the same record.
        let mut name = String::from_utf8_lossy(&name[..end]).into_owned();
        let mut n = name.len().min(NAME_LEN);
        while !name.is_char_boundary(n) {
            n -= 1;
        }
        name.truncate(n);
        Some(Holder { nodeid, mode, name })
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {}", self.nodeid)?;
        if !self.name.is_empty() {
            write!(f, " ({})", self.name)?;
        }
        Ok(())
    }
}

/// The outcome of a lock request.
pub enum Acquired {
    Granted(Lock),
    /// NOQUEUE and not free: the holder record, if one is there.
    Busy(Option<Holder>),
    /// lockwait=SECS ran out; the request was cancelled.
    TimedOut(Duration, Option<Holder>),
}

/// SIGINT, SIGTERM and SIGHUP, caught from the start of `hydra mount`: while it queues
/// for the lock they cancel the request (nothing is left held); once the lock is
/// granted they no longer end the process, so that it is never killed between the
/// grant and its record or mount (a PERSISTENT lock left without either would stay
/// held with nothing to release it).
pub struct Interrupt {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Interrupt {
    pub fn catch() -> Result<Interrupt> {
        use tokio::signal::unix::{signal, SignalKind};
        let s = |k| signal(k).map_err(|e| Error::io("installing a signal handler", e));
        Ok(Interrupt {
            int: s(SignalKind::interrupt())?,
            term: s(SignalKind::terminate())?,
            hup: s(SignalKind::hangup())?,
        })
    }

    /// The next signal's name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// A connection to this node's dlm_controld. Every call but a lockwait has a time limit:
/// a lock manager stuck in recovery makes a step fail saying so, never hang.
pub struct Dlm {
    client: Client,
    timeout: Duration,
    sock: PathBuf,
}

impl Dlm {
    /// Connect to the daemon of `run_dir`; refuses "the lock manager is not running".
    pub async fn connect(run_dir: &Path, timeout: Duration) -> Result<Dlm> {
        let sock = client::socket_path(run_dir);
        if !sock.exists() {
            return Err(Error::Refused(format!(
                "the lock manager is not running: no socket at {} (start hydra dlm_controld, or give --dlm-run-dir)",
                sock.display()
            )));
        }
        let c = tokio::time::timeout(timeout, Client::connect(&sock))
            .await
            .map_err(|_| {
                Error::Refused(format!(
                    "the lock manager did not take the connection at {} in {} s",
                    sock.display(),
                    timeout.as_secs_f64()
                ))
            })?
            .map_err(|e| Error::Refused(format!("the lock manager is not running: {e}")))?;
        Ok(Dlm {
            client: c,
            timeout,
            sock,
        })
    }

    /// `fut` within the time limit; `what` names the step.
    async fn step<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = std::result::Result<T, hydra_dlm::api::Errno>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(Error::Failed(format!(
                "the lock manager ({}) did not answer {what} in {} s (is it stuck in recovery?)",
                self.sock.display(),
                self.timeout.as_secs_f64()
            ))),
            Ok(Err(e)) => Err(Error::Failed(format!("{what}: {}", describe(&e)))),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// Join `hydra_mount` (returns at once when joined).
    pub async fn join(&self) -> Result<()> {
        self.step(
            &format!("joining lockspace {LOCKSPACE}"),
            self.client.join(LOCKSPACE),
        )
        .await
    }

    /// This node's corosync node id (`dlm_tool status -v`'s `our_nodeid`).
    pub async fn our_nodeid(&self) -> Result<u32> {
        let text = self
            .step(
                "a status query",
                self.client.query(Query::Status { verbose: true }),
            )
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix("our_nodeid "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| Error::Failed(format!("no our_nodeid in the daemon's status: {text}")))
    }

    /// Request `mode` on `uuid` (PERSISTENT; NOQUEUE unless `wait`). A signal while
    /// queued cancels the request.
    pub async fn acquire(
        &self,
        uuid: &str,
        mode: Mode,
        wait: Option<LockWait>,
        intr: &mut Interrupt,
    ) -> Result<Acquired> {
        let what = format!("the {mode} request on {uuid}");
        let mut flags = Flags::PERSISTENT;
        if wait.is_none() {
            flags |= Flags::NOQUEUE;
        }
        let request = self
            .client
            .lock(LOCKSPACE, uuid.as_bytes(), mode, Flags(flags), None, None);
        let Some(wait) = wait else {
            // NOQUEUE: the answer comes at once, unless the lock manager is stuck.
            let mut lock = self.step(&what, request).await?;
            let first = self.step(&what, lock.completion()).await?;
            return match first.status {
                Status::Granted => Ok(Acquired::Granted(lock)),
                Status::Again => Ok(Acquired::Busy(self.read_holder(uuid).await?)),
                s => Err(Error::Failed(format!("{what}: not granted ({})", s.name()))),
            };
        };
        // Queued: the deadline (or none) covers the request's acceptance too, which a
        // lock manager in recovery holds back until the recovery is done.
        let (limit, end) = match wait {
            LockWait::Forever => (Duration::ZERO, None),
            LockWait::For(t) => (t, Some(tokio::time::Instant::now() + t)),
        };
        let deadline = async {
            match end {
                Some(end) => tokio::time::sleep_until(end).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let interrupted = |s: &str| {
            Err(Error::Refused(format!(
                "{s} while waiting for {what}: cancelled, nothing is held"
            )))
        };
        // Dropped before the daemon's answer, the request is released when it comes
        // (and with the connection when this process exits).
        let mut lock = tokio::select! {
            r = request => r.map_err(|e| Error::Failed(format!("{what}: {}", describe(&e))))?,
            _ = &mut deadline => return Ok(Acquired::TimedOut(limit, None)),
            s = intr.recv() => return interrupted(s),
        };
        let waited = tokio::select! {
            c = lock.completion() => Ok(c),
            _ = &mut deadline => Err(None),
            s = intr.recv() => Err(Some(s)),
        };
        let first = match waited {
            Ok(c) => c.map_err(|e| Error::Failed(format!("{what}: {}", describe(&e))))?,
            Err(signal) => {
                // Cancel; a grant that won the race still counts at the deadline, and
                // is given back after a signal.
                self.step(&format!("cancelling {what}"), lock.cancel())
                    .await?;
                let c = self.step(&what, lock.completion()).await?;
                if let Some(s) = signal {
                    if c.granted() {
                        self.release(lock).await?;
                    }
                    return interrupted(s);
                }
                c
            }
        };
        match first.status {
            Status::Granted => Ok(Acquired::Granted(lock)),
            Status::Cancel => Ok(Acquired::TimedOut(limit, self.read_holder(uuid).await?)),
            s => Err(Error::Failed(format!("{what}: not granted ({})", s.name()))),
        }
    }

    /// Write this node's record into the value block (EX→EX with VALBLK).
    pub async fn write_holder(&self, lock: &mut Lock, h: &Holder) -> Result<()> {
        let what = "writing the holder record (EX→EX with VALBLK)";
        self.step(
            what,
            lock.convert(Mode::EX, Flags(Flags::VALBLK), Some(h.encode())),
        )
        .await?;
        let c = self.step(what, lock.completion()).await?;
        if !c.granted() {
            return Err(Error::Failed(format!("{what}: {}", c.status.name())));
        }
        Ok(())
    }

    /// The holder record, read through an NL lock with VALBLK.
    pub async fn read_holder(&self, uuid: &str) -> Result<Option<Holder>> {
        let what = format!("reading the holder of {uuid} (NL with VALBLK)");
        let (mut lock, c) = self
            .step(
                &what,
                self.client.lock_wait(
                    LOCKSPACE,
                    uuid.as_bytes(),
                    Mode::NL,
                    Flags(Flags::VALBLK),
                    None,
                    None,
                ),
            )
            .await?;
        let holder = c
            .lvb
            .filter(|_| c.sbflags & SBF_VALNOTVALID == 0)
            .and_then(|b| Holder::decode(&b));
        if c.granted() {
            self.step(&what, lock.unlock_wait(None)).await?;
        }
        Ok(holder)
    }

    /// Unlock (an EX lock clears the record: its value block is zeroed).
    pub async fn release(&self, mut lock: Lock) -> Result<()> {
        let what = format!(
            "unlocking {} on {}",
            lock.mode().map_or("the lock", Mode::name),
            String::from_utf8_lossy(lock.name())
        );
        let lvb = (lock.mode() == Some(Mode::EX)).then_some([0u8; LVB_LEN]);
        self.step(&what, lock.unlock_wait(lvb)).await?;
        Ok(())
    }

    /// Adopt this node's orphan `mode` lock on `uuid`; None when there is no such orphan.
    pub async fn adopt(&self, uuid: &str, mode: Mode) -> Result<Option<Lock>> {
        let what = format!("adopting the orphan {mode} lock on {uuid}");
        let r = tokio::time::timeout(
            self.timeout,
            self.client.lock_wait(
                LOCKSPACE,
                uuid.as_bytes(),
                mode,
                Flags(Flags::ORPHAN),
                None,
                None,
            ),
        )
        .await;
        match r {
            Err(_) => Err(Error::Failed(format!(
                "the lock manager ({}) did not answer {what} in {} s (is it stuck in recovery?)",
                self.sock.display(),
                self.timeout.as_secs_f64()
            ))),
            Ok(Err(e)) if e.code == hydra_dlm::flags::libc_errno::ENOENT => Ok(None),
            Ok(Err(e)) => Err(Error::Failed(format!("{what}: {}", describe(&e)))),
            Ok(Ok((lock, c))) if c.granted() => Ok(Some(lock)),
            Ok(Ok((_, c))) => Err(Error::Failed(format!("{what}: {}", c.status.name()))),
        }
    }

    /// How long each step may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_record_round_trip() {
        let h = Holder {
            nodeid: 0x0102_0304,
            mode: Mode::EX,
            name: "node-one".into(),
        };
        let b = h.encode();
        assert_eq!(&b[..12], b"hmnt\x01\x05\0\0\x01\x02\x03\x04");
        assert_eq!(&b[12..20], b"node-one");
        assert!(b[20..].iter().all(|c| *c == 0));
        assert_eq!(Holder::decode(&b), Some(h));
        assert_eq!(
            Holder {
                nodeid: 2,
                mode: Mode::PR,
                name: String::new()
            }
            .to_string(),
            "node 2"
        );
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let h = Holder {
            nodeid: 1,
            mode: Mode::EX,
            name: "a-very-long-node-nameé-and-more".into(),
        };
        let d = Holder::decode(&h.encode()).unwrap();
        assert_eq!(d.name, "a-very-long-node-nam");
        let h = Holder {
            name: "ééééééééééé".into(), // 22 bytes: the 11th é does not fit
            ..h
        };
        assert_eq!(Holder::decode(&h.encode()).unwrap().name, "éééééééééé");
        assert_eq!(h.to_string(), "node 1 (ééééééééééé)");
    }

    #[test]
    fn no_record_in_zeros_or_foreign_blocks() {
        assert_eq!(Holder::decode(&[0; LVB_LEN]), None);
        let mut b = Holder {
            nodeid: 1,
            mode: Mode::EX,
            name: "x".into(),
        }
        .encode();
        b[4] = 9;
        assert_eq!(Holder::decode(&b), None);
        let mut b = [0xffu8; LVB_LEN];
        b[..4].copy_from_slice(b"hmnt");
        b[4] = 1;
        assert_eq!(Holder::decode(&b), None, "mode 0xff");
    }
}
