//! Shared helpers for the integration tests: start `hydra tgtd` (and Debian's tgtd) on
//! loopback ports of their own, in a temporary directory, and stop them by pid when the
//! test ends — also when it fails (Drop).
#![allow(dead_code)]

pub mod client;
pub mod cluster;
pub mod dlm;
pub mod mpbed;
pub mod netns;
pub mod node_daemon;
pub mod sanbed;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The hydra binary cargo built for these tests.
pub fn hydra() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hydra"))
}

/// A free loopback TCP port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A command, run to completion with a time limit. Its output is read while it runs:
/// a child that writes more than a pipe holds (64 KiB) would otherwise block on the
/// write and never finish (the long fault run's debugfs reading the records file).
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let (status, late) = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break (st, false);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break (child.wait().expect("wait"), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    if late {
        panic!(
            "{:?} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
            cmd,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

/// Output as text (stdout then stderr).
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn wait_port(port: u16, child: &mut Child, what: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("{what} exited during start-up: {st}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `hydra tgtd -f` with its own port, control port and run directory.
pub struct Hydra {
    pub child: Child,
    /// The first portal's port (`ports[0]`).
    pub port: u16,
    /// Every portal's port, in `--iscsi` order (tags 1, 2, ... unless `portal-group`
    /// lines regroup them).
    pub ports: Vec<u16>,
    pub control_port: u16,
    pub dir: tempfile::TempDir,
    /// The `--iscsi` argument.
    iscsi: String,
}

impl Hydra {
    /// Start with `conf` (targets.conf text; `@DIR@` is replaced by the temp dir) after
    /// `prepare` ran on the temp dir (e.g. to create backing files).
    pub fn start(conf: &str, prepare: impl FnOnce(&Path)) -> Hydra {
        Self::start_with(conf, &[], prepare)
    }

    /// Start with extra `--iscsi` parameters (e.g. "nop_interval=1").
    pub fn start_with(conf: &str, iscsi_extra: &[&str], prepare: impl FnOnce(&Path)) -> Hydra {
        Self::start_portals(conf, 1, iscsi_extra, prepare)
    }

    /// Start with `n` loopback portals; `@PORT1@`, `@PORT2@`, ... in `conf` are their
    /// ports.
    pub fn start_portals(
        conf: &str,
        n: usize,
        iscsi_extra: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> Hydra {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < n {
            let p = free_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let port = ports[0];
        let control_port = 10_000 + (port % 50_000);
        let conf_path = dir.path().join("targets.conf");
        let mut text = conf.replace("@DIR@", dir.path().to_str().unwrap());
        for (i, p) in ports.iter().enumerate() {
            text = text.replace(&format!("@PORT{}@", i + 1), &p.to_string());
        }
        std::fs::write(&conf_path, text).unwrap();
        let mut iscsi = ports
            .iter()
            .map(|p| format!("portal=127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        for e in iscsi_extra {
            iscsi.push(',');
            iscsi.push_str(e);
        }
        // The daemon is spawned by `spawn`, which needs the rest of the struct: start
        // with a placeholder child and reap it.
        let mut h = Hydra {
            child: Command::new("true").spawn().expect("spawn true"),
            port,
            ports,
            control_port,
            dir,
            iscsi,
        };
        let daemon = h.spawn();
        let _ = std::mem::replace(&mut h.child, daemon).wait();
        h
    }

    fn spawn(&self) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tgtd.log"))
            .unwrap();
        let mut child = spawn_hydra_tgtd(
            Command::new(hydra()),
            &self.iscsi,
            &self.control_port.to_string(),
            self.dir.path(),
            log,
        );
        for p in &self.ports {
            wait_port(*p, &mut child, "hydra tgtd");
        }
        // The portals listen before --conf is loaded; the control socket comes last.
        let sock = self
            .dir
            .path()
            .join("run")
            .join(format!("socket.{}", self.control_port));
        let start = Instant::now();
        while !sock.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "hydra tgtd made no control socket {}",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        child
    }

    /// `kill -9` the daemon (no clean shutdown at all) and start it again with the same
    /// ports, configuration and state directory.
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = self.spawn();
    }

    /// A sparse file of `size` bytes in the temp dir (create before `start` by path).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `iscsi://127.0.0.1:PORT/IQN/LUN`
    pub fn url(&self, iqn: &str, lun: u32) -> String {
        format!("iscsi://127.0.0.1:{}/{iqn}/{lun}", self.port)
    }

    /// The URL of a LUN through portal `i` (0-based).
    pub fn url_via(&self, i: usize, iqn: &str, lun: u32) -> String {
        format!("iscsi://127.0.0.1:{}/{iqn}/{lun}", self.ports[i])
    }

    /// Run `hydra <tool> <args>` against this daemon's control port.
    pub fn admin(&self, tool: &str, args: &[&str]) -> Output {
        let cp = self.control_port.to_string();
        let mut c = Command::new(hydra());
        c.arg(tool)
            .args(["-C", &cp, "--run-dir"])
            .arg(self.dir.path().join("run"))
            .args(args);
        run(&mut c, Duration::from_secs(30))
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tgtd.log")).unwrap_or_default()
    }

    /// `kill -STOP` the daemon: its sockets stay open but nothing is answered. It is
    /// resumed when the guard is dropped — also when the test fails, so that this
    /// struct's own Drop can still stop it cleanly.
    pub fn freeze(&self) -> Frozen {
        freeze(self.child.id())
    }
}

/// `kill -STOP` a process and wait until every thread of it has stopped: kill(2)
/// returns before a thread running on another CPU has taken the signal.
pub fn freeze(pid: u32) -> Frozen {
    signal(pid, "STOP");
    let frozen = Frozen { pid };
    let start = Instant::now();
    while !all_threads_stopped(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "process {pid} did not stop"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    frozen
}

/// Whether every thread of `pid` is in state T (stopped), from /proc/PID/task/*/stat.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // "tid (comm) S ...": the state follows the last ')'.
        stat.rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('T'))
            .unwrap_or(true)
    })
}

/// A daemon stopped by [`Hydra::freeze`]; `kill -CONT` on drop.
pub struct Frozen {
    pid: u32,
}

impl Frozen {
    /// Resume the daemon now.
    pub fn thaw(self) {}
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(self.pid, "CONT");
    }
}

/// `kill -s NAME pid`.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args(["-s", name])
        .arg(pid.to_string())
        .status();
}

impl Drop for Hydra {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Stop a daemon we started: SIGTERM first (a clean close), SIGKILL if it is still there
/// after 10 s.
pub fn stop(child: &mut Child) {
    signal(child.id(), "TERM");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Debian's tgtd on a loopback port, configured with tgtadm; killed by pid on drop.
pub struct Tgtd {
    pub child: Child,
    pub port: u16,
    pub control_port: u16,
}

impl Tgtd {
    /// Whether Debian's tgtd is installed (scripts/setup.sh installs it).
    pub fn available() -> bool {
        Path::new("/usr/sbin/tgtd").exists()
    }

    /// Start it (on a machine without it the test fails, saying how to install it).
    pub fn start() -> Tgtd {
        assert!(
            Self::available(),
            "Debian's tgtd is missing: run scripts/setup.sh"
        );
        let port = free_port();
        // tgtd refuses control ports of 32768 and above (exit 34).
        let control_port = 20_000 + (port % 10_000);
        let mut child = Command::new("/usr/sbin/tgtd")
            .args([
                "-f",
                "--iscsi",
                &format!("portal=127.0.0.1:{port}"),
                "-C",
                &control_port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tgtd");
        wait_port(port, &mut child, "tgtd");
        // tgtd listens on its portal before its control socket takes connections; a
        // tgtadm sent in between fails ("failed to send request hdr … not connected").
        let socket = format!("/var/run/tgtd/socket.{control_port}");
        let t = std::time::Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "tgtd made no control socket {socket}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Tgtd {
            child,
            port,
            control_port,
        }
    }

    /// tgtd serving a sparse file of `size` bytes as LUN 1 of tid 1 `iqn`; the returned
    /// directory holds the file.
    pub fn with_disk(iqn: &str, size: u64) -> (Tgtd, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        sparse(&img, size);
        let t = Tgtd::start();
        t.add_target(iqn, &img);
        (t, dir)
    }

    /// tid 1 named `iqn` with `img` as LUN 1, open to every initiator.
    pub fn add_target(&self, iqn: &str, img: &Path) {
        for args in one_lun_target(iqn, img) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.tgtadm(&args);
        }
    }

    pub fn tgtadm(&self, args: &[&str]) {
        let o = run(
            Command::new("tgtadm")
                .args(["-C", &self.control_port.to_string(), "--lld", "iscsi"])
                .args(args),
            Duration::from_secs(20),
        );
        assert!(o.status.success(), "tgtadm {args:?}: {}", text(&o));
    }

    /// Apply a targets.conf with Debian's tgt-admin.
    pub fn tgt_admin_execute(&self, conf: &Path) {
        let o = run(
            Command::new("tgt-admin")
                .args(["-C", &self.control_port.to_string(), "-e", "-c"])
                .arg(conf),
            Duration::from_secs(30),
        );
        assert!(o.status.success(), "tgt-admin -e: {}", text(&o));
    }

    pub fn url(&self, iqn: &str, lun: u32) -> String {
        format!("iscsi://127.0.0.1:{}/{iqn}/{lun}", self.port)
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tgt-admin's three tgtadm calls (their arguments after `--lld iscsi`) for tid 1
/// named `iqn` with `img` as LUN 1, open to every initiator.
pub fn one_lun_target(iqn: &str, img: &Path) -> [Vec<String>; 3] {
    let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let img = img.to_str().expect("UTF-8 path");
    [
        words(&format!("--mode target --op new --tid 1 -T {iqn}")),
        words("--mode logicalunit --op new --tid 1 --lun 1 -b")
            .into_iter()
            .chain([img.to_string()])
            .collect(),
        words("--mode target --op bind --tid 1 -I ALL"),
    ]
}

/// A sparse file.
pub fn sparse(path: &Path, size: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
}

/// Start `hydra tgtd` in the foreground through `cmd` (a command for the hydra binary,
/// e.g. in a namespace host): portals `iscsi` (tgtd's `--iscsi portal=...` value),
/// control port `control`, its run and state directories and targets.conf in `dir`,
/// its log (info) to `log`.
pub fn spawn_hydra_tgtd(
    mut cmd: Command,
    iscsi: &str,
    control: &str,
    dir: &Path,
    log: std::fs::File,
) -> Child {
    cmd.args(["tgtd", "-f", "--iscsi", iscsi, "-C", control])
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--conf")
        .arg(dir.join("targets.conf"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn hydra tgtd")
}
