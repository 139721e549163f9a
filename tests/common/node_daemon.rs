//! `hydra iscsid -f` as a test's node daemon on this machine: its iSCSI root, run
//! directory, device directory and multipath.conf (and an empty-or-absent conf.d) all
//! in one test directory; SIGTERM on drop.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hydra_multipath::control::{self as mpc, Multipathd, Request, Response};

use super::{hydra, run, stop};

/// `iscsid -f` and the options that keep the daemon inside `dir`: `--root dir/iscsi`,
/// `--run-dir dir/run`, `--dev-dir dir/dev`, `--multipath-config dir/multipath.conf`
/// and `--multipath-config-dir dir/conf.d` (not the machine's /etc/multipath/conf.d).
pub fn iscsid_args<'c>(cmd: &'c mut Command, dir: &Path) -> &'c mut Command {
    cmd.args(["iscsid", "-f", "--root"])
        .arg(dir.join("iscsi"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--dev-dir")
        .arg(dir.join("dev"))
        .arg("--multipath-config")
        .arg(dir.join("multipath.conf"))
        .arg("--multipath-config-dir")
        .arg(dir.join("conf.d"))
}

/// `dir/multipath.conf` as the node tests write it: `user_friendly_names` and
/// `find_multipaths` yes, the bindings and wwids files under `dir/multipath/`, the
/// `defaults` lines `extra` (each "\tkeyword value\n") and `after` the section.
pub fn write_multipath_conf(dir: &Path, extra: &str, after: &str) {
    let mp = dir.join("multipath");
    std::fs::write(
        dir.join("multipath.conf"),
        format!(
            "defaults {{\n\tuser_friendly_names yes\n\tfind_multipaths yes\n{extra}\tbindings_file {}\n\twwids_file {}\n}}\n{after}",
            mp.join("bindings").display(),
            mp.join("wwids").display()
        ),
    )
    .unwrap();
}

/// `hydra iscsiadm ARGS` against the daemon of `dir` (not asserted).
pub fn adm(dir: &Path, args: &[&str]) -> Output {
    run(
        Command::new(hydra())
            .arg("iscsiadm")
            .args(args)
            .env("HYDRA_ISCSI_ROOT", dir.join("iscsi"))
            .env("HYDRA_ISCSID_RUN_DIR", dir.join("run")),
        Duration::from_secs(60),
    )
}

pub struct NodeDaemon {
    /// In a cell so that [`NodeDaemon::wait_for`] can check it is alive while its
    /// condition asks the daemon.
    pub child: RefCell<Option<Child>>,
    pub dir: PathBuf,
}

impl NodeDaemon {
    /// Start the daemon for `dir` (with `extra` options, e.g. `--no-kernel-devices`;
    /// its log in `dir/iscsid.log`) and wait for both its control sockets.
    pub fn start(dir: &Path, extra: &[&str]) -> NodeDaemon {
        let run_dir = dir.join("run");
        // A killed predecessor's sockets would make the wait below end at once.
        let _ = std::fs::remove_file(run_dir.join("iscsid.sock"));
        let _ = std::fs::remove_file(run_dir.join("multipathd.sock"));
        let log = std::fs::File::create(dir.join("iscsid.log")).unwrap();
        let child = iscsid_args(&mut Command::new(hydra()), dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = NodeDaemon {
            child: RefCell::new(Some(child)),
            dir: dir.to_owned(),
        };
        d.wait_for("control sockets", || {
            run_dir.join("iscsid.sock").exists() && run_dir.join("multipathd.sock").exists()
        });
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("iscsid.log")).unwrap_or_default()
    }

    /// Poll `cond` (a file appearing, a map forming: the daemon's work has no event a
    /// test can await) for at most 30 s; the daemon must stay alive meanwhile.
    pub fn wait_for(&self, what: &str, cond: impl Fn() -> bool) {
        let t = Instant::now();
        while !cond() {
            let exited = self.child.borrow_mut().as_mut().map(|c| c.try_wait());
            if let Some(Ok(Some(st))) = exited {
                panic!("iscsid exited ({st}) waiting for {what}:\n{}", self.log());
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One request over the multipathd control socket; a daemon that hangs fails the
    /// test instead of hanging it.
    pub fn ask(&self, req: Request) -> Response {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sock = mpc::socket_path(&self.dir.join("run"));
        rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(60),
                hydra_daemon::control::call::<Multipathd>(&sock, req),
            )
            .await
        })
        .unwrap_or_else(|_| panic!("multipathd did not answer in 60 s\n{}", self.log()))
        .unwrap_or_else(|e| panic!("multipathd socket: {e}\n{}", self.log()))
    }

    /// `hydra iscsiadm ARGS` against this daemon, which must succeed.
    pub fn adm(&self, args: &[&str]) -> Output {
        let o = adm(&self.dir, args);
        assert!(o.status.success(), "iscsiadm {args:?}: {}", super::text(&o));
        o
    }
}

impl Drop for NodeDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.get_mut().take() {
            stop(&mut c);
        }
    }
}
