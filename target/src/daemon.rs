//! `hydra tgtd`: portals, the control socket, the optional `--conf` file, and a clean
//! stop on SIGTERM/SIGINT or `tgtadm --mode sys --op delete`. Run directory, pid file,
//! control socket and the draining stop are [`hydra_daemon`]'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hydra_daemon::{control as ctl, PidFile, Shutdown, Signals, Stop};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::admin::{self, Context};
use crate::control::{self, ApplyMode, Request, Response, Tgtd};
use crate::iscsi::conn::ConnOpts;
use crate::registry::{Portal, Registry};
use crate::shards::Shards;
use crate::{Error, Result};

/// How long the acceptors and control clients get to finish what they are doing once
/// the daemon stops (an admin request in progress completes and is answered).
const DRAIN: Duration = Duration::from_secs(5);

/// Everything `hydra tgtd` is started with.
#[derive(Debug, Clone)]
pub struct DaemonOpts {
    pub portals: Vec<SocketAddr>,
    pub control_port: u16,
    pub conf: Option<PathBuf>,
    pub run_dir: PathBuf,
    /// Where state that outlives the daemon is kept (APTPL reservations).
    pub state_dir: PathBuf,
    pub conn: ConnOpts,
    /// Connection threads ([`crate::shards`]); 0 = one per available core.
    pub conn_threads: usize,
    /// Threads per connection thread for disk I/O that would block (tgt's nr_iothreads).
    pub io_threads: usize,
}

/// A daemon whose portals and control socket are bound, ready to serve.
pub struct Bound {
    registry: Arc<Registry>,
    ctx: Arc<Context>,
    listeners: Vec<TcpListener>,
    ctl: ctl::Listener,
    signals: Signals,
    conn: Arc<ConnOpts>,
    conn_threads: usize,
    io_threads: usize,
    /// Last, so that it is removed after the socket.
    _pid_file: PidFile,
}

/// Bind and serve until told to stop.
pub async fn run(opts: DaemonOpts) -> Result<()> {
    bind(opts).await?.serve().await
}

/// Lock the pid file, bind every portal, load `--conf`, bind the control socket. Errors
/// come back before anything is served, so a daemon that starts is a daemon that works.
pub async fn bind(opts: DaemonOpts) -> Result<Bound> {
    let port = opts.control_port;
    let sock = control::socket_path(&opts.run_dir, port);
    hydra_daemon::run_dir::create(&opts.run_dir)?;
    let pid_file = PidFile::acquire(&control::pid_path(&opts.run_dir, port), "hydra tgtd")
        .map_err(|e| match e {
            hydra_daemon::Error::AlreadyRunning { .. } => Error::Admin(format!(
                "another hydra tgtd already serves control port {port} ({})",
                sock.display()
            )),
            e => e.into(),
        })?;
    let signals = Signals::new()?;
    let registry = Arc::new(Registry::default());
    let _ = registry.state_dir.set(opts.state_dir.clone());
    let ctx = Arc::new(Context::default());
    let listeners = bind_portals(&registry, &opts.portals).await?;
    // After the portals: `portal-group` lines name them.
    if let Some(conf) = &opts.conf {
        let log = admin::handle(
            &registry,
            &ctx,
            Request::ApplyConfig {
                path: conf.clone(),
                mode: ApplyMode::Execute,
                pretend: false,
            },
        )?;
        for l in log.lines() {
            tracing::info!("{l}");
        }
    }
    let ctl = ctl::bind(&sock, None)?;
    Ok(Bound {
        registry,
        ctx,
        listeners,
        ctl,
        signals,
        conn: Arc::new(opts.conn.clone()),
        conn_threads: opts.conn_threads,
        io_threads: opts.io_threads,
        _pid_file: pid_file,
    })
}

/// Listen on every portal; portal `i` is portal group `i + 1` until a `portal-group`
/// line regroups them.
async fn bind_portals(registry: &Registry, addrs: &[SocketAddr]) -> Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(format!("can't listen on portal {addr}"), e))?;
        let bound = l.local_addr().map_err(|e| Error::io("portal address", e))?;
        registry.portals.write().expect("lock").push(Portal {
            addr: bound,
            tpgt: (i + 1) as u16,
        });
        tracing::info!("iSCSI portal {bound} (tpgt {})", i + 1);
        listeners.push(l);
    }
    Ok(listeners)
}

impl Bound {
    /// The portals actually bound (port 0 resolved).
    pub fn portals(&self) -> Vec<SocketAddr> {
        self.registry
            .portals
            .read()
            .expect("lock")
            .iter()
            .map(|p| p.addr)
            .collect()
    }

    /// Serve until SIGTERM/SIGINT or a stop request; then close every session.
    pub async fn serve(self) -> Result<()> {
        let Bound {
            registry,
            ctx,
            listeners,
            ctl,
            mut signals,
            conn: copts,
            conn_threads,
            io_threads,
            _pid_file,
        } = self;
        let conn_threads = match conn_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let shards = Shards::start(conn_threads, io_threads, registry.clone(), copts)?;
        let shutdown = Shutdown::new();
        let (acc_tx, mut acc_rx) = mpsc::unbounded_channel();
        for l in listeners {
            tokio::spawn(accept(l, acc_tx.clone(), shutdown.subscribe()));
        }
        drop(acc_tx);
        let (reg, c) = (registry.clone(), ctx.clone());
        tokio::spawn(ctl::serve::<Tgtd, _, _>(
            ctl,
            shutdown.subscribe(),
            move |req| answer(reg.clone(), c.clone(), req),
        ));
        loop {
            tokio::select! {
                Some(s) = acc_rx.recv() => shards.dispatch(s),
                sig = signals.recv() => break tracing::info!("{sig}: closing sessions"),
                _ = ctx.shutdown.notified() => break tracing::info!("stop requested over the control socket"),
            }
        }
        if !shutdown.drain(DRAIN).await {
            tracing::warn!("control clients still busy after {DRAIN:?}; stopping anyway");
        }
        registry.stop_sessions(None);
        // Each shard gives its connections a moment to flush and close.
        let _ = tokio::task::spawn_blocking(move || shards.join()).await;
        Ok(())
    }
}

/// One portal's acceptor: hands connections to the daemon's loop until the stop.
async fn accept(l: TcpListener, to: mpsc::UnboundedSender<TcpStream>, mut stop: Stop) {
    loop {
        let accepted = tokio::select! {
            a = l.accept() => a,
            _ = stop.recv() => return,
        };
        match accepted {
            Ok((s, _)) => {
                let _ = to.send(s);
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One control request, carried out by [`admin::handle`] off the runtime: admin work
/// opens files and may fsync.
async fn answer(registry: Arc<Registry>, ctx: Arc<Context>, req: Request) -> Response {
    let done = tokio::task::spawn_blocking(move || admin::handle(&registry, &ctx, req)).await;
    match done {
        Ok(Ok(text)) => Response { ok: true, text },
        Ok(Err(e)) => Response {
            ok: false,
            text: e.to_string(),
        },
        Err(e) => Response {
            ok: false,
            text: format!("internal error: {e}"),
        },
    }
}
