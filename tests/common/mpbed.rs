//! A multipath bed (DESIGN.md "Test beds"; issue 14 "Network namespaces"): a storage host
//! and a node host joined by two independent networks, as the two subnets of the classic
//! setup.
//!
//! - Two bridges `hmp-<pid>-<k>a` and `hmp-<pid>-<k>b` with no address on the machine's
//!   side, for the networks 10.200.A.0/24 and 10.200.B.0/24 (A = 140 + 2k, B = A + 1: a
//!   range the other beds of this repository do not use).
//! - Host 1, the storage host (`hmp-<pid>-<k>-s`), and host 2, the node host
//!   (`hmp-<pid>-<k>-n`): each a network namespace with `eth0` on bridge a (10.200.A.h)
//!   and `eth1` on bridge b (10.200.B.h), IPv6 off, no default route; and a private mount
//!   namespace with a tmpfs on /run (Debian's tgtd keeps its lock file there), held by a
//!   `sleep` process. Every program of a host runs in both namespaces (nsenter).
//! - The storage host runs the target: `hydra tgtd` with one portal per network (both
//!   answering SendTargets), or Debian's tgtd with the same two portals.
//! - The node host runs `hydra iscsid` (the node daemon: sessions, maps, devices) with its
//!   iSCSI root, run directory, multipath.conf (and an empty conf.d), bindings and wwids
//!   files and its device
//!   directory (`--dev-dir`: `mapper/mpatha`, `disk/by-id/...`) all in the host's
//!   directory, and its FUSE mounts in the host's mount namespace. A filesystem a test
//!   mounts lives in that namespace too; the test reads and writes it through
//!   `/proc/<holder>/root/...` ([`Bed::node_path`]).
//!
//! A link is cut silently ([`Bed::cut`]) by taking the storage host's veth end in the
//! bridge down on the machine's side: no RST, no FIN, the node's own link stays up.
//!
//! Dropping the bed tears everything down in order, also when the test panicked (then
//! it prints the daemons' logs first): the test's mounts in the node host, the node
//! daemon (SIGTERM: it flushes its maps and logs out; SIGKILL after 20 s), loop devices
//! left attached to its FUSE files, the target, every other process in the namespaces,
//! the veths, namespaces and bridges. Processes get SIGKILL if the test thread dies, and
//! a later run removes what a killed test process left (names carry its pid).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::netns::{
    self, check_ifname, detach_loops, disable_ipv6, ip, is_stale, kill_netns_processes, quiet_ip,
    run_quiet, Holder,
};
use super::{hydra, run, spawn_hydra_tgtd, text};

/// Beds made by this test process so far (their `k`).
static BEDS: AtomicU8 = AtomicU8::new(0);

/// hydra tgtd's (and Debian tgtd's) control port in the storage host.
const CONTROL_PORT: &str = "11";

/// How long a daemon may take to start, a map to form, a path to change state.
pub const SETTLE: Duration = Duration::from_secs(60);

/// The two networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    A,
    B,
}

impl Link {
    pub const BOTH: [Link; 2] = [Link::A, Link::B];

    fn index(self) -> usize {
        match self {
            Link::A => 0,
            Link::B => 1,
        }
    }

    pub fn other(self) -> Link {
        match self {
            Link::A => Link::B,
            Link::B => Link::A,
        }
    }
}

/// The bed's two hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Storage,
    Node,
}

impl Host {
    fn index(self) -> usize {
        match self {
            Host::Storage => 0,
            Host::Node => 1,
        }
    }
}

struct NsHost {
    netns: String,
    /// The machine-side ends of the host's veths, in link order.
    veths: Vec<String>,
    dir: PathBuf,
    holder: Option<Holder>,
}

pub struct Bed {
    name: String,
    nets: [u8; 2],
    bridges: Vec<String>,
    hosts: Vec<NsHost>,
    target: Option<Child>,
    target_is_hydra: bool,
    node: Option<Child>,
    /// Mount points in the node host, innermost last.
    mounts: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

impl Bed {
    /// The networks, the two hosts and their directories; no daemon yet.
    pub fn new() -> Bed {
        require_root_and_tools();
        sweep_stale();
        let k = BEDS.fetch_add(1, Ordering::Relaxed);
        // Interface names have at most 15 characters: `hmp-<7-digit pid>-<k>sa`, so `k`
        // is one base-36 digit.
        const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        assert!(
            (k as usize) < DIGITS.len(),
            "at most 36 beds per test process"
        );
        let name = format!("hmp-{}-{}", std::process::id(), DIGITS[k as usize] as char);
        let a = 140 + 2 * k;
        let mut bed = Bed {
            dir: tempfile::Builder::new()
                .prefix(&format!("{name}-"))
                .tempdir()
                .expect("temp dir"),
            name,
            nets: [a, a + 1],
            bridges: Vec::new(),
            hosts: Vec::new(),
            target: None,
            target_is_hydra: false,
            node: None,
            mounts: Vec::new(),
        };
        // Each step records what it made before the next can fail, so that Drop removes
        // a half-built bed too.
        for l in ["a", "b"] {
            let br = format!("{}{l}", bed.name);
            check_ifname(&br);
            ip(&format!("link add {br} type bridge"));
            bed.bridges.push(br.clone());
            disable_ipv6(&br);
            ip(&format!("link set {br} up"));
        }
        for (h, tag) in [(1u8, "s"), (2u8, "n")] {
            let netns = format!("{}-{tag}", bed.name);
            let dir = bed.dir.path().join(match tag {
                "s" => "storage",
                _ => "node",
            });
            std::fs::create_dir(&dir).expect("host dir");
            if tag == "n" {
                // The node's iSCSI root, run directory and device directory.
                for d in ["iscsi", "run", "dev", "conf.d"] {
                    std::fs::create_dir(dir.join(d)).expect("node dir");
                }
            }
            ip(&format!("netns add {netns}"));
            bed.hosts.push(NsHost {
                netns: netns.clone(),
                veths: Vec::new(),
                dir,
                holder: None,
            });
            ip(&format!(
                "netns exec {netns} sysctl -q -w \
                 net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
            ));
            for (i, l) in ["a", "b"].iter().enumerate() {
                let veth = format!("{}{tag}{l}", bed.name);
                check_ifname(&veth);
                let eth = format!("eth{i}");
                ip(&format!(
                    "link add {veth} type veth peer name {eth} netns {netns}"
                ));
                bed.hosts.last_mut().unwrap().veths.push(veth.clone());
                disable_ipv6(&veth);
                ip(&format!("link set {veth} master {}{l} up", bed.name));
                let addr = Ipv4Addr::new(10, 200, bed.nets[i], h);
                ip(&format!("-n {netns} addr add {addr}/24 dev {eth}"));
                ip(&format!("-n {netns} link set {eth} up"));
            }
            let holder = Holder::start(&netns, "mount -t tmpfs -o mode=0755,size=16m hmp-run /run");
            bed.hosts.last_mut().unwrap().holder = Some(holder);
        }
        bed
    }

    /// `hmp-<pid>-<k>`, the prefix of every name of this bed.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bed's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A host's directory.
    pub fn host_dir(&self, h: Host) -> &Path {
        &self.hosts[h.index()].dir
    }

    /// The storage host's address on a network.
    pub fn storage_addr(&self, l: Link) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.nets[l.index()], 1)
    }

    /// The node host's address on a network.
    pub fn node_addr(&self, l: Link) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.nets[l.index()], 2)
    }

    /// `10.200.X.1:3260`: the target's portal on a network.
    pub fn portal(&self, l: Link) -> String {
        format!("{}:3260", self.storage_addr(l))
    }

    /// The network a portal address (`10.200.X.1:3260`, with or without `,tag`) is on.
    pub fn link_of(&self, portal: &str) -> Option<Link> {
        Link::BOTH.into_iter().find(|l| {
            portal.starts_with(&format!("{}:", self.storage_addr(*l)))
                || portal.starts_with(&format!("{},", self.storage_addr(*l)))
        })
    }

    /// A host's network namespace as a path for setns(2) (`cluster::enter_net`).
    pub fn netns_path(&self, h: Host) -> String {
        self.holder(h).netns_path()
    }

    fn holder(&self, h: Host) -> &Holder {
        self.hosts[h.index()].holder.as_ref().expect("host is up")
    }

    /// A path in the node host's mount namespace, as this process can open it.
    pub fn node_path(&self, p: impl AsRef<Path>) -> PathBuf {
        self.holder(Host::Node).path(p)
    }

    /// A command that runs `program` in a host's network and mount namespaces.
    pub fn command(&self, h: Host, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.holder(h).command(program)
    }

    /// Run a program in a host to completion (at most 60 s).
    pub fn exec(&self, h: Host, args: &[&str]) -> Output {
        self.holder(h).exec(args)
    }

    /// As [`Bed::exec`], and it must succeed; its stdout.
    pub fn exec_ok(&self, h: Host, args: &[&str]) -> String {
        let o = self.exec(h, args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Cut a network silently: the storage host's veth end in the bridge goes down on
    /// the machine's side. Neither end sends anything.
    pub fn cut(&self, l: Link) {
        ip(&format!(
            "link set {} down",
            self.hosts[Host::Storage.index()].veths[l.index()]
        ));
    }

    /// Restore a network cut by [`Bed::cut`].
    pub fn heal(&self, l: Link) {
        ip(&format!(
            "link set {} up",
            self.hosts[Host::Storage.index()].veths[l.index()]
        ));
    }

    /// Bytes the bridge has handed to the storage host on a network (the node's
    /// requests and write data), from the machine-side veth's tx counter.
    pub fn bytes_to_storage(&self, l: Link) -> u64 {
        let veth = &self.hosts[Host::Storage.index()].veths[l.index()];
        let p = format!("/sys/class/net/{veth}/statistics/tx_bytes");
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .trim()
            .parse()
            .expect("a byte count")
    }

    // ---- the storage host ----

    /// Start hydra tgtd in the storage host with one portal per network. `conf` is a
    /// targets.conf in which `@DIR@` is the storage host's directory and `@A@`/`@B@`
    /// are the two portals (`IP:PORT`, for `portal-group` lines); `prepare` runs on the
    /// directory first (backing files).
    pub fn start_hydra_tgtd(&mut self, conf: &str, prepare: impl FnOnce(&Path)) {
        let dir = self.host_dir(Host::Storage).to_path_buf();
        prepare(&dir);
        let text = conf
            .replace("@DIR@", dir.to_str().expect("UTF-8 path"))
            .replace("@A@", &self.portal(Link::A))
            .replace("@B@", &self.portal(Link::B));
        std::fs::write(dir.join("targets.conf"), text).expect("targets.conf");
        let log = std::fs::File::create(dir.join("target.log")).expect("target.log");
        let iscsi = format!(
            "portal={},portal={}",
            self.portal(Link::A),
            self.portal(Link::B)
        );
        let child = spawn_hydra_tgtd(
            self.command(Host::Storage, hydra()),
            &iscsi,
            CONTROL_PORT,
            &dir,
            log,
        );
        self.target = Some(child);
        self.target_is_hydra = true;
        // The portals listen before --conf is loaded; the control socket comes last.
        let sock = dir.join("run").join(format!("socket.{CONTROL_PORT}"));
        self.wait_for(
            "hydra tgtd's control socket",
            || sock.exists(),
            Duration::from_secs(30),
        );
    }

    /// `hydra tgtadm ARGS` against the storage host's hydra tgtd.
    pub fn hydra_tgtadm(&self, args: &[&str]) -> Output {
        let dir = self.host_dir(Host::Storage);
        run(
            Command::new(hydra())
                .args(["tgtadm", "-C", CONTROL_PORT, "--run-dir"])
                .arg(dir.join("run"))
                .args(args),
            Duration::from_secs(30),
        )
    }

    /// Start Debian's tgtd in the storage host with portals on both networks and `img`
    /// as LUN 1 of tid 1 `iqn`, open to every initiator.
    pub fn start_debian_tgtd(&mut self, iqn: &str, img: &Path) {
        assert!(
            super::Tgtd::available(),
            "Debian's tgtd is missing: run scripts/setup.sh"
        );
        let dir = self.host_dir(Host::Storage).to_path_buf();
        let log = std::fs::File::create(dir.join("target.log")).expect("target.log");
        let child = self
            .command(Host::Storage, "/usr/sbin/tgtd")
            .args([
                "-f",
                "--iscsi",
                &format!("portal={}", self.portal(Link::A)),
                "-C",
                CONTROL_PORT,
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn tgtd");
        self.target = Some(child);
        self.target_is_hydra = false;
        // The control socket appears a moment after start.
        self.wait_for(
            "Debian tgtd's control socket",
            || {
                self.debian_tgtadm(&["--mode", "sys", "--op", "show"])
                    .status
                    .success()
            },
            Duration::from_secs(30),
        );
        let portal_b = format!("portal={}", self.portal(Link::B));
        let mut calls: Vec<Vec<String>> = vec![["--mode", "portal", "--op", "new", "--param"]
            .iter()
            .map(|s| s.to_string())
            .chain([portal_b])
            .collect()];
        calls.extend(super::one_lun_target(iqn, img));
        for args in calls {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = self.debian_tgtadm(&args);
            assert!(o.status.success(), "tgtadm {args:?}: {}", text(&o));
        }
    }

    /// Debian's `tgtadm --lld iscsi ARGS` in the storage host (its control socket is
    /// an abstract socket of the host's network namespace).
    pub fn debian_tgtadm(&self, args: &[&str]) -> Output {
        let mut a = vec!["tgtadm", "-C", CONTROL_PORT, "--lld", "iscsi"];
        a.extend_from_slice(args);
        self.exec(Host::Storage, &a)
    }

    // ---- the node host ----

    /// The node host's file for `name` (iscsi root, run dir, multipath.conf, ...).
    pub fn node_file(&self, name: &str) -> PathBuf {
        self.host_dir(Host::Node).join(name)
    }

    /// The node daemon's device directory (`--dev-dir`): `dev("mapper/mpatha")`.
    pub fn dev(&self, rel: &str) -> PathBuf {
        self.node_file("dev").join(rel)
    }

    /// Start `hydra iscsid` in the node host. `iscsid_conf` is the iSCSI root's
    /// iscsid.conf (what new node records start with); `multipath_conf` is its
    /// multipath.conf, in which `@DIR@` is the node host's directory (for
    /// `bindings_file`, `wwids_file`).
    pub fn start_node(&mut self, iscsid_conf: &str, multipath_conf: &str) {
        let dir = self.host_dir(Host::Node).to_path_buf();
        std::fs::write(dir.join("iscsi/iscsid.conf"), iscsid_conf).expect("iscsid.conf");
        std::fs::write(
            dir.join("multipath.conf"),
            multipath_conf.replace("@DIR@", dir.to_str().expect("UTF-8 path")),
        )
        .expect("multipath.conf");
        let log = std::fs::File::create(dir.join("iscsid.log")).expect("iscsid.log");
        let mut cmd = self.command(Host::Node, hydra());
        let child = super::node_daemon::iscsid_args(&mut cmd, &dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn hydra iscsid");
        self.node = Some(child);
        let sock = dir.join("run/iscsid.sock");
        self.wait_for(
            "hydra iscsid's control socket",
            || sock.exists(),
            Duration::from_secs(30),
        );
    }

    /// Whether the node daemon is still running.
    pub fn node_running(&mut self) -> bool {
        self.node
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// A hydra CLI (`iscsiadm`, `multipath`, `multipathd`, `mpathpersist`) in the node
    /// host, aimed at the node daemon's root and run directory.
    pub fn node_tool(&self, tool: &str, args: &[&str]) -> Output {
        let dir = self.host_dir(Host::Node);
        run(
            self.command(Host::Node, hydra())
                .arg(tool)
                .args(args)
                .env("HYDRA_ISCSI_ROOT", dir.join("iscsi"))
                .env("HYDRA_ISCSID_RUN_DIR", dir.join("run")),
            Duration::from_secs(60),
        )
    }

    /// As [`Bed::node_tool`], and it must exit 0; its stdout.
    pub fn node_tool_ok(&self, tool: &str, args: &[&str]) -> String {
        let o = self.node_tool(tool, args);
        assert!(
            o.status.success(),
            "hydra {tool} {args:?}: {}\n--- iscsid log (tail) ---\n{}",
            text(&o),
            tail(&self.node_log(), 30)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Discovery (SendTargets) through each network's portal, then a login to every
    /// record: one session per portal. Returns the sessions' sid → network.
    pub fn discover_and_login(&self) -> Vec<(u32, Link)> {
        for l in Link::BOTH {
            let out = self.node_tool_ok(
                "iscsiadm",
                &["-m", "discovery", "-t", "st", "-p", &self.portal(l)],
            );
            assert!(out.contains(&self.portal(l)), "discovery via {l:?}: {out}");
        }
        let out = self.node_tool_ok("iscsiadm", &["-m", "node", "-L", "all"]);
        assert!(out.contains("successful"), "{out}");
        let sessions = self.sessions();
        assert_eq!(sessions.len(), 2, "one session per portal: {sessions:?}");
        assert_ne!(sessions[0].1, sessions[1].1, "{sessions:?}");
        sessions
    }

    /// `iscsiadm -m session`: each session's sid and network.
    pub fn sessions(&self) -> Vec<(u32, Link)> {
        let out = self.node_tool_ok("iscsiadm", &["-m", "session"]);
        // "tcp: [1] 10.200.140.1:3260,1 iqn... (non-flash)"
        out.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace().skip(1);
                let sid = w.next()?.trim_matches(['[', ']']).parse().ok()?;
                let link = self.link_of(w.next()?)?;
                Some((sid, link))
            })
            .collect()
    }

    /// `multipath -ll`, parsed.
    pub fn topology(&self) -> Topology {
        let out = self.node_tool("multipath", &["-ll"]);
        Topology::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// Wait until `multipath -ll` shows a map `alias` for which `f` holds; the map.
    pub fn wait_map(&self, alias: &str, what: &str, f: impl Fn(&MapView) -> bool) -> MapView {
        let start = Instant::now();
        loop {
            let t = self.topology();
            if let Some(m) = t.map(alias) {
                if f(m) {
                    return m.clone();
                }
            }
            if start.elapsed() > SETTLE {
                let o = self.node_tool("multipath", &["-ll"]);
                panic!(
                    "map {alias}: not {what} within {SETTLE:?}; multipath -ll says:\n{}\n\
                     --- iscsid log (tail) ---\n{}",
                    text(&o),
                    tail(&self.node_log(), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Wait until the map shows `n` paths, every one `active ready`.
    pub fn wait_all_active(&self, alias: &str, n: usize) -> MapView {
        self.wait_map(alias, &format!("{n} paths active ready"), |m| {
            let paths = m.paths();
            paths.len() == n && paths.iter().all(|p| p.is_active_ready())
        })
    }

    /// Wait until the map shows session `sid`'s path failed and every other path
    /// active.
    pub fn wait_path_failed(&self, alias: &str, sid: u32) -> MapView {
        self.wait_map(alias, &format!("path of sid {sid} failed"), |m| {
            m.paths().iter().all(|p| {
                if p.sid() == Some(sid) {
                    p.dm_state == "failed"
                } else {
                    p.is_active_ready()
                }
            })
        })
    }

    /// The device a `/dev`-style symlink of the node daemon names (`/dev/loop3`).
    pub fn resolve(&self, rel: &str) -> PathBuf {
        let link = self.dev(rel);
        let start = Instant::now();
        loop {
            if let Ok(p) = std::fs::canonicalize(&link) {
                if p.starts_with("/dev/") {
                    return p;
                }
            }
            if start.elapsed() > SETTLE {
                panic!(
                    "{} does not name a device: {:?}\n--- iscsid log (tail) ---\n{}",
                    link.display(),
                    std::fs::read_link(&link),
                    tail(&self.node_log(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Mount `dev` on `dir` (made in the node host's directory) in the node host.
    pub fn mount(&mut self, dev: &Path, dir: &Path) {
        std::fs::create_dir_all(dir).expect("mount point");
        let o = self.exec(
            Host::Node,
            &[
                "mount",
                dev.to_str().expect("UTF-8"),
                dir.to_str().expect("UTF-8"),
            ],
        );
        assert!(o.status.success(), "mount {}: {}", dev.display(), text(&o));
        self.mounts.push(dir.to_path_buf());
    }

    /// Unmount the last mount of `dir` in the node host.
    pub fn umount(&mut self, dir: &Path) {
        let o = self.exec(Host::Node, &["umount", dir.to_str().expect("UTF-8")]);
        assert!(o.status.success(), "umount {}: {}", dir.display(), text(&o));
        if let Some(i) = self.mounts.iter().rposition(|m| m == dir) {
            self.mounts.remove(i);
        }
    }

    /// The node daemon's log so far.
    pub fn node_log(&self) -> String {
        std::fs::read_to_string(self.node_file("iscsid.log")).unwrap_or_default()
    }

    /// The target's log so far.
    pub fn target_log(&self) -> String {
        std::fs::read_to_string(self.host_dir(Host::Storage).join("target.log")).unwrap_or_default()
    }

    /// Poll `f` every 50 ms until it holds; panic after `limit` (or when a daemon died).
    pub fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool, limit: Duration) {
        let start = Instant::now();
        while !f() {
            if start.elapsed() > limit {
                panic!(
                    "{what}: not within {limit:?}\n--- target log (tail) ---\n{}\n\
                     --- iscsid log (tail) ---\n{}",
                    tail(&self.target_log(), 20),
                    tail(&self.node_log(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the node daemon now (SIGTERM: it flushes its maps and logs out), after
    /// unmounting the test's filesystems. Whether it exited within 20 s.
    pub fn stop_node(&mut self) -> bool {
        while let Some(m) = self.mounts.pop() {
            let m = m.to_str().unwrap_or_default().to_string();
            if !self.exec_quiet(Host::Node, &["umount", &m]) {
                eprintln!("cleanup: detaching {m} lazily");
                self.exec_quiet(Host::Node, &["umount", "-l", &m]);
            }
        }
        let Some(mut child) = self.node.take() else {
            return true;
        };
        super::signal(child.id(), "TERM");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if child.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("cleanup: hydra iscsid did not exit within 20 s of SIGTERM; SIGKILL");
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Run a program in a host for cleanup: never panics (also not on a hang: killed
    /// after 20 s); whether it succeeded.
    fn exec_quiet(&self, h: Host, args: &[&str]) -> bool {
        let mut cmd = self.command(h, args[0]);
        cmd.args(&args[1..]);
        run_quiet(&mut cmd, &format!("{args:?}"))
    }

    fn print_logs(&self) {
        eprintln!(
            "--- {} target log (tail) ---\n{}",
            self.name,
            tail(&self.target_log(), 40)
        );
        eprintln!(
            "--- {} iscsid log (tail) ---\n{}",
            self.name,
            tail(&self.node_log(), 80)
        );
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        // The links back, so that the daemon can log out and flush cleanly.
        for v in self.hosts.iter().flat_map(|h| &h.veths) {
            quiet_ip(&format!("link set {v} up"));
        }
        if !self.hosts.is_empty() && self.hosts.iter().all(|h| h.holder.is_some()) {
            self.stop_node();
        }
        // Loop devices the daemon left attached to its FUSE files.
        detach_loops(|back| back.starts_with(self.dir.path().to_str().unwrap_or("-")));
        if let Some(mut t) = self.target.take() {
            if self.target_is_hydra {
                super::stop(&mut t);
            } else {
                // Debian's tgtd ignores SIGTERM while it has targets.
                let _ = t.kill();
                let _ = t.wait();
            }
        }
        for host in &mut self.hosts {
            host.holder.take();
            kill_netns_processes(&host.netns);
            for v in &host.veths {
                quiet_ip(&format!("link del {v}"));
            }
            quiet_ip(&format!("netns del {}", host.netns));
        }
        for br in &self.bridges {
            quiet_ip(&format!("link del {br}"));
        }
    }
}

// ---- `multipath -ll`, parsed ----

/// What `multipath -ll` shows (reference §2.3).
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub maps: Vec<MapView>,
}

#[derive(Debug, Clone, Default)]
pub struct MapView {
    /// The map line as printed.
    pub line: String,
    pub alias: String,
    /// The WWID in brackets, or the alias when the map is named by its WWID.
    pub wwid: String,
    /// The serving device column (`dm-0` in multipath-tools, hydra's `loop3`).
    pub dev: String,
    /// `VENDOR,PRODUCT`.
    pub vendor_product: String,
    /// The `size=... features=... hwhandler=... wp=...` line.
    pub props: String,
    pub groups: Vec<GroupView>,
}

#[derive(Debug, Clone, Default)]
pub struct GroupView {
    pub policy: String,
    pub prio: String,
    pub status: String,
    pub paths: Vec<PathView>,
}

#[derive(Debug, Clone, Default)]
pub struct PathView {
    /// `host:channel:id:lun` (hydra: `sid:0:0:lun`).
    pub hctl: String,
    pub dev: String,
    pub devt: String,
    /// `active` / `failed` / `undef`.
    pub dm_state: String,
    /// `ready` / `faulty` / `ghost` / ... / `undef`.
    pub checker: String,
    /// `running` / `offline`.
    pub online: String,
}

impl PathView {
    /// The session id (hydra prints H:C:T:L as `sid:0:0:lun`).
    pub fn sid(&self) -> Option<u32> {
        self.hctl.split(':').next()?.parse().ok()
    }

    pub fn is_active_ready(&self) -> bool {
        self.dm_state == "active" && self.checker == "ready"
    }
}

impl MapView {
    pub fn paths(&self) -> Vec<&PathView> {
        self.groups.iter().flat_map(|g| &g.paths).collect()
    }

    /// The group holding session `sid`'s path.
    pub fn group_of(&self, sid: u32) -> Option<&GroupView> {
        self.groups
            .iter()
            .find(|g| g.paths.iter().any(|p| p.sid() == Some(sid)))
    }

    /// The path of session `sid`.
    pub fn path_of(&self, sid: u32) -> Option<&PathView> {
        self.paths().into_iter().find(|p| p.sid() == Some(sid))
    }
}

fn is_hctl(w: &str) -> bool {
    let parts: Vec<&str> = w.split(':').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '#'))
}

/// `key='value with blanks'` or `key=value` from a line.
fn field(line: &str, key: &str) -> String {
    let Some(i) = line.find(&format!("{key}=")) else {
        return String::new();
    };
    let rest = &line[i + key.len() + 1..];
    if let Some(q) = rest.strip_prefix('\'') {
        q.split('\'').next().unwrap_or_default().to_string()
    } else {
        rest.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

impl Topology {
    pub fn parse(out: &str) -> Topology {
        let mut maps: Vec<MapView> = Vec::new();
        for raw in out.lines() {
            // Bold on a tty: ESC[1m ... ESC[0m.
            let line = raw.replace("\x1b[1m", "").replace("\x1b[0m", "");
            let trimmed = line.trim_start_matches(['|', '`', '-', '+', ' ']);
            if line.starts_with("size=") {
                if let Some(m) = maps.last_mut() {
                    m.props = line.clone();
                }
            } else if trimmed.starts_with("policy=") {
                if let Some(m) = maps.last_mut() {
                    m.groups.push(GroupView {
                        policy: field(trimmed, "policy"),
                        prio: field(trimmed, "prio"),
                        status: field(trimmed, "status"),
                        paths: Vec::new(),
                    });
                }
            } else if trimmed.split_whitespace().next().is_some_and(is_hctl) {
                let w: Vec<&str> = trimmed.split_whitespace().collect();
                let get = |i: usize| w.get(i).copied().unwrap_or_default().to_string();
                let p = PathView {
                    hctl: get(0),
                    dev: get(1),
                    devt: get(2),
                    dm_state: get(3),
                    checker: get(4),
                    online: get(5),
                };
                if let Some(g) = maps.last_mut().and_then(|m| m.groups.last_mut()) {
                    g.paths.push(p);
                }
            } else if !line.starts_with([' ', '|', '`']) && !line.trim().is_empty() {
                // "[create: ]alias (wwid) dev VENDOR,PRODUCT" or "wwid dev VENDOR,PRODUCT".
                let body = line.split_once(": ").map(|(_, b)| b).unwrap_or(&line);
                let w: Vec<&str> = body.split_whitespace().collect();
                let alias = w.first().copied().unwrap_or_default().to_string();
                let (wwid, rest) = match w.get(1) {
                    Some(x) if x.starts_with('(') => {
                        (x.trim_matches(['(', ')']).to_string(), &w[2.min(w.len())..])
                    }
                    _ => (alias.clone(), &w[1.min(w.len())..]),
                };
                maps.push(MapView {
                    line: line.clone(),
                    alias,
                    wwid,
                    dev: rest.first().copied().unwrap_or_default().to_string(),
                    vendor_product: rest.get(1..).map(|r| r.join(" ")).unwrap_or_default(),
                    ..MapView::default()
                });
            }
        }
        Topology { maps }
    }

    pub fn map(&self, alias: &str) -> Option<&MapView> {
        self.maps.iter().find(|m| m.alias == alias)
    }
}

// ---- helpers ----

/// The last `n` lines of a text.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn require_root_and_tools() {
    netns::require_root_and_tools(
        &[
            "ip",
            "nsenter",
            "unshare",
            "losetup",
            "mkfs.ext4",
            "sfdisk",
            "mount",
        ],
        "scripts/setup.sh installs it",
        "multipath beds make namespaces and need root",
    );
}

/// Remove what beds of test processes that no longer exist left behind.
fn sweep_stale() {
    let tmp = std::env::temp_dir();
    detach_loops(|back| {
        back.strip_prefix(tmp.to_str().unwrap_or("/tmp"))
            .map(|r| r.trim_start_matches('/'))
            .is_some_and(|r| is_stale("hmp-", r))
    });
    netns::sweep_stale("hmp-");
}
