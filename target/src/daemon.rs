//! `hydra tgtd`: portals, the control socket, the optional `--conf` file, and a clean
//! stop on SIGTERM/SIGINT or `tgtadm --mode sys --op delete`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};

use crate::admin::{self, Context};
use crate::control::{ApplyMode, Envelope, Response, PROTOCOL_VERSION};
use crate::iscsi::conn::ConnOpts;
use crate::registry::{Portal, Registry};
use crate::shards::Shards;
use crate::{control, Error, Result};

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
    ctl: UnixListener,
    sock: PathBuf,
    pid_file: PathBuf,
    conn: Arc<ConnOpts>,
    conn_threads: usize,
    io_threads: usize,
}

/// Bind and serve until told to stop.
pub async fn run(opts: DaemonOpts) -> Result<()> {
    bind(opts).await?.serve().await
}

/// Bind every portal, load `--conf`, bind the control socket. Errors come back before
/// anything is served, so a daemon that starts is a daemon that works.
pub async fn bind(opts: DaemonOpts) -> Result<Bound> {
    let registry = Arc::new(Registry::default());
    let _ = registry.state_dir.set(opts.state_dir.clone());
    let ctx = Arc::new(Context::default());
    let mut listeners = Vec::new();
    for (i, addr) in opts.portals.iter().enumerate() {
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
    // After the portals: `portal-group` lines name them.
    if let Some(conf) = &opts.conf {
        let log = admin::handle(
            &registry,
            &ctx,
            control::Request::ApplyConfig {
                path: conf.clone(),
                mode: ApplyMode::Execute,
                pretend: false,
            },
        )?;
        for l in log.lines() {
            tracing::info!("{l}");
        }
    }
    std::fs::create_dir_all(&opts.run_dir)
        .map_err(|e| Error::io(format!("run directory {}", opts.run_dir.display()), e))?;
    let sock = control::socket_path(&opts.run_dir, opts.control_port);
    if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
        return Err(Error::Admin(format!(
            "another hydra tgtd already serves control port {} ({})",
            opts.control_port,
            sock.display()
        )));
    }
    let _ = std::fs::remove_file(&sock);
    let ctl = UnixListener::bind(&sock)
        .map_err(|e| Error::io(format!("control socket {}", sock.display()), e))?;
    let pid_file = opts.run_dir.join(format!("tgtd.{}.pid", opts.control_port));
    let _ = std::fs::write(&pid_file, format!("{}\n", std::process::id()));

    Ok(Bound {
        registry,
        ctx,
        listeners,
        ctl,
        sock,
        pid_file,
        conn: Arc::new(opts.conn.clone()),
        conn_threads: opts.conn_threads,
        io_threads: opts.io_threads,
    })
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
            sock,
            pid_file,
            conn: copts,
            conn_threads,
            io_threads,
        } = self;
        let conn_threads = match conn_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let shards = Shards::start(conn_threads, io_threads, registry.clone(), copts)?;
        let (acc_tx, mut acc_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for l in listeners {
            let acc_tx = acc_tx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match l.accept().await {
                        Ok((s, _)) => {
                            let _ = acc_tx.send(s);
                        }
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!("accept: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
            }));
        }
        tasks.push(tokio::spawn(serve_control(
            ctl,
            registry.clone(),
            ctx.clone(),
        )));

        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Error::io("SIGTERM handler", e))?;
        loop {
            tokio::select! {
                Some(s) = acc_rx.recv() => shards.dispatch(s),
                _ = term.recv() => break tracing::info!("SIGTERM: closing sessions"),
                _ = tokio::signal::ctrl_c() => break tracing::info!("SIGINT: closing sessions"),
                _ = ctx.shutdown.notified() => break tracing::info!("stop requested over the control socket"),
            }
        }
        for t in &tasks {
            t.abort();
        }
        registry.stop_sessions(None);
        // Give connections a moment to flush and close.
        for _ in 0..50 {
            if registry.sessions(None).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let _ = tokio::task::spawn_blocking(move || shards.join()).await;
        let _ = std::fs::remove_file(&sock);
        let _ = std::fs::remove_file(&pid_file);
        Ok(())
    }
}

/// Serve admin requests until the listener is dropped. `shutdown` is signalled on
/// `SysDelete`.
async fn serve_control(listener: UnixListener, registry: Arc<Registry>, ctx: Arc<Context>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let reg = registry.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let resp = match serde_json::from_str::<Envelope>(&line) {
                    Ok(env) if env.version == PROTOCOL_VERSION => {
                        let reg = reg.clone();
                        let ctx = ctx.clone();
                        // Admin work opens files and may fsync: keep it off the runtime.
                        match tokio::task::spawn_blocking(move || admin::handle(&reg, &ctx, env.request)).await {
                            Ok(Ok(text)) => Response { version: PROTOCOL_VERSION, ok: true, text },
                            Ok(Err(e)) => Response { version: PROTOCOL_VERSION, ok: false, text: e.to_string() },
                            Err(e) => Response { version: PROTOCOL_VERSION, ok: false, text: format!("internal error: {e}") },
                        }
                    }
                    Ok(env) => Response {
                        version: PROTOCOL_VERSION,
                        ok: false,
                        text: format!("control protocol version {} not supported (daemon speaks {PROTOCOL_VERSION})", env.version),
                    },
                    Err(e) => Response { version: PROTOCOL_VERSION, ok: false, text: format!("bad request: {e}") },
                };
                let mut out = serde_json::to_string(&resp).expect("serialize");
                out.push('\n');
                if w.write_all(out.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}
