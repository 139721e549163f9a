//! Connection shards: every iSCSI connection lives its whole life on one thread.
//!
//! A work-stealing runtime moves a connection's task between worker threads whenever
//! another worker happens to poll the socket's readiness first. For a storage data path
//! that costs more than it gives: on the 2-core bench machine, 1 MiB sequential reads
//! swung between 1.5 and 3.9 GB/s from run to run depending on where the task landed,
//! and were steady at 4.3 GB/s with the task pinned. So each shard is a thread with its
//! own single-threaded runtime (and its own blocking pool for page-cache misses and
//! synchronous writes); the acceptor hands a new connection to the shard with the fewest
//! live connections, and it stays there. Many sessions still spread over all cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::iscsi::conn::{self, ConnOpts};
use crate::registry::Registry;
use crate::{Error, Result};

struct Shard {
    tx: mpsc::UnboundedSender<std::net::TcpStream>,
    live: Arc<AtomicUsize>,
    thread: JoinHandle<()>,
}

/// The connection threads of one daemon.
pub struct Shards {
    shards: Vec<Shard>,
}

impl Shards {
    /// Start `n` shard threads (at least one), each allowed `blocking` threads for disk
    /// I/O that would block.
    pub fn start(
        n: usize,
        blocking: usize,
        registry: Arc<Registry>,
        opts: Arc<ConnOpts>,
    ) -> Result<Shards> {
        let mut shards = Vec::new();
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(blocking.max(1))
                .thread_name(format!("hydra-io-{i}"))
                .build()
                .map_err(|e| Error::io("connection thread runtime", e))?;
            let (tx, rx) = mpsc::unbounded_channel();
            let live = Arc::new(AtomicUsize::new(0));
            let (reg, o, l) = (registry.clone(), opts.clone(), live.clone());
            let thread = std::thread::Builder::new()
                .name(format!("hydra-conn-{i}"))
                .spawn(move || rt.block_on(run_shard(rx, reg, o, l)))
                .map_err(|e| Error::io("connection thread", e))?;
            shards.push(Shard { tx, live, thread });
        }
        Ok(Shards { shards })
    }

    /// Hand a freshly accepted connection to the least busy shard.
    pub fn dispatch(&self, stream: TcpStream) {
        let shard = self
            .shards
            .iter()
            .min_by_key(|s| s.live.load(Ordering::Relaxed))
            .expect("at least one shard");
        match stream.into_std() {
            Ok(s) => {
                shard.live.fetch_add(1, Ordering::Relaxed);
                if shard.tx.send(s).is_err() {
                    shard.live.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!("accepted connection unusable: {e}"),
        }
    }

    /// Stop taking connections and wait for each shard to wind down (its sessions have
    /// been told to stop; they get a second to flush and close).
    pub fn join(self) {
        let threads: Vec<_> = self
            .shards
            .into_iter()
            .map(|s| {
                drop(s.tx);
                s.thread
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

async fn run_shard(
    mut rx: mpsc::UnboundedReceiver<std::net::TcpStream>,
    registry: Arc<Registry>,
    opts: Arc<ConnOpts>,
    live: Arc<AtomicUsize>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            s = rx.recv() => match s {
                Some(s) => match TcpStream::from_std(s) {
                    Ok(s) => {
                        let (reg, o, l) = (registry.clone(), opts.clone(), live.clone());
                        conns.spawn(async move {
                            conn::serve(s, reg, o).await;
                            l.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                    Err(e) => {
                        live.fetch_sub(1, Ordering::Relaxed);
                        tracing::warn!("accepted connection unusable: {e}");
                    }
                },
                None => break,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    let drain = async { while conns.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}
