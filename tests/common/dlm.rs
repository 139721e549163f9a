//! `hydra dlm_controld -f` on a host of a [`Cluster`]: started in the host's namespaces
//! with its run directory in the host's own directory (so the test reaches its socket
//! and pid file by path), its output kept in a file and shown when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::hydra;

/// A daemon start, a join's first recovery: seconds at most.
pub const LIMIT: Duration = Duration::from_secs(30);

pub struct DlmDaemon {
    child: Child,
    out: PathBuf,
    run: PathBuf,
}

impl DlmDaemon {
    /// Start the daemon on host `i` with `conf`; returns once its socket takes
    /// connections (the file appears at bind(2), a moment before listen(2)).
    pub fn start(cluster: &Cluster, i: usize, conf: &Path) -> DlmDaemon {
        Self::spawn(cluster.command(i, hydra()), cluster.dir(i), conf)
    }

    /// Start the daemon with `cmd` (`hydra`, in the host's namespaces), its run
    /// directory and output in `dir`, with `conf`; returns once its socket takes
    /// connections.
    pub fn spawn(mut cmd: std::process::Command, dir: &Path, conf: &Path) -> DlmDaemon {
        let run = dir.join("run");
        let out = dir.join("dlm_controld.out");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out)
            .unwrap();
        let child = cmd
            .args(["dlm_controld", "-f", "--run-dir"])
            .arg(&run)
            .arg("--config")
            .arg(conf)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut d = DlmDaemon { child, out, run };
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(d.socket()).is_err()
            || !d.run.join("dlm_controld.pid").exists()
        {
            if let Some(st) = d.child.try_wait().unwrap() {
                panic!(
                    "dlm_controld exited ({st}) during start-up:\n{}",
                    d.output()
                );
            }
            assert!(start.elapsed() < LIMIT, "no socket:\n{}", d.output());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn socket(&self) -> PathBuf {
        self.run.join("hydra-dlm.sock")
    }

    pub fn run_dir(&self) -> &Path {
        &self.run
    }

    pub fn pid_file(&self) -> PathBuf {
        self.run.join("dlm_controld.pid")
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Whether the process still runs (a fence agent may have killed it).
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The daemon's pid (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the process to end (killed by a fence agent, or exiting); its status.
    pub fn wait_gone(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(start.elapsed() < limit, "still running:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DlmDaemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- dlm_controld output ({}) ---\n{}",
                self.out.display(),
                self.output()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
