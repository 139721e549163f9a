//! A shared-storage cluster bed (issue 15 §3, "Takeover"): a storage host and N nodes
//! (N = 2 or 3) in network namespaces on this machine, as a small SAN with a cluster.
//!
//! - Three bridges per bed, no address on the machine's side: the cluster network
//!   `hsn-<pid>-<k>c` (10.200.C.0/24) and the storage networks `...a` and `...b`
//!   (10.200.C+1.0/24, 10.200.C+2.0/24), C = 200 + 3k: subnets 10.200.200-229, a range
//!   no other bed of this repository uses. A test process may make several beds (k).
//! - The storage host `hsn-<pid>-<k>-s`: `eth0` on net A and `eth1` on net B (address
//!   .100 on each), running `hydra tgtd` with one target, one LUN backed by a file of
//!   the bed's directory (in /var/tmp: on the machine's disk), portals on both storage
//!   networks.
//! - Node `i` (`hsn-<pid>-<k>-<i>`): `eth0` on net A and `eth1` on net B (10.200.X.i),
//!   `eth2` on the cluster network (10.200.C.i); IPv6 off, no default route. Its own
//!   mount namespace with tmpfs on /run (corosync's pid file) and /dev/shm (libqb's
//!   rings), held by a `sleep` process (tests/common/netns.rs). In it run corosync
//!   (corosync.conf from [`cluster::corosync_conf`]: token 1000 ms, `two_node: 1` when
//!   N == 2), the node daemon (`hydra iscsid` with its iSCSI root, run directory,
//!   multipath.conf and `--dev-dir` in the node's directory) logged in on both portals
//!   with the map `mpatha` over two active paths served as a kernel device
//!   (`<node dir>/dev/mapper/mpatha`, a loop device on a FUSE file), and `hydra
//!   dlm_controld` fencing through `hydra fence_scsi` on that map (see [`dlm_conf`]):
//!   every node unfences itself when its dlm_controld starts.
//!
//! [`SanBed::cut`] takes a node's cluster link down on the bridge side: corosync and the
//! DLM lose it, its storage paths stay up — the case storage fencing exists for.
//!
//! Dropping the bed tears everything down, also when the test panicked (then it prints
//! the tails of the daemons' logs first): the links back up, every filesystem mounted
//! in a node (unmounted in the node's namespace; lazily if that fails), the DLM daemons
//! (by pid), the node daemons (SIGTERM: they flush their maps, log out and release their
//! loop devices; SIGKILL after 20 s, then loop devices on the bed's files are detached),
//! the target, corosync, every other process of the namespaces, the veths, namespaces
//! and bridges. Processes get SIGKILL when the test thread dies, and a later run removes
//! what a killed test process left (names carry its pid).

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cluster::{corosync_conf, spawn_corosync};
use super::dlm::DlmDaemon;
use super::mpbed::{tail, Topology};
pub use super::netns::loop_devices;
use super::netns::{
    self, check_ifname, detach_loops, disable_ipv6, ip, is_stale, kill_netns_processes, quiet_ip,
    run_quiet, Holder,
};
use super::{hydra, run, spawn_hydra_tgtd, text};

/// The slots (`k`) of this test process's live beds, one bit each: a dropped bed's
/// names and networks are gone, so its slot serves the next bed (the fault run makes
/// one bed per seed, many more than ten).
static SLOTS: Mutex<u16> = Mutex::new(0);

/// The first subnet's third octet; a bed uses three from here on.
const FIRST_NET: u8 = 200;
/// 10.200.200.0/24 up to 10.200.229.0/24: ten beds of three networks.
const MAX_BEDS: u8 = 10;

/// Where beds keep their directories: on the machine's disk (/tmp may be a tmpfs), so
/// that the LUN's backing file is a file on a disk, as a storage host's would be.
const BED_ROOT: &str = "/var/tmp";

/// hydra tgtd's control port in the storage host.
const CONTROL_PORT: &str = "11";

/// The target's name.
pub const IQN: &str = "iqn.2026-12.org.hydra:san";

/// The LUN's size: room for an ext4 with a journal.
pub const LUN_SIZE: u64 = 256 << 20;

/// The map every node makes of the LUN.
pub const MAP: &str = "mpatha";

/// The fence delay on node 2's `connect` line, in seconds (see [`dlm_conf`]).
pub const NODE2_FENCE_DELAY: u32 = 5;

/// How long a daemon may take to start, a map to form, a membership to settle.
pub const SETTLE: Duration = Duration::from_secs(60);

/// What new node records start with: NOP-Out every second, 1 s to answer.
const ISCSID_CONF: &str = "\
node.startup = manual
node.conn[0].timeo.noop_out_interval = 1
node.conn[0].timeo.noop_out_timeout = 1
";

/// The bed's networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// corosync and the DLM.
    Cluster,
    /// Storage network A (each node's `eth0`).
    A,
    /// Storage network B (each node's `eth1`).
    B,
}

impl Net {
    fn index(self) -> usize {
        match self {
            Net::Cluster => 0,
            Net::A => 1,
            Net::B => 2,
        }
    }

    fn tag(self) -> char {
        match self {
            Net::Cluster => 'c',
            Net::A => 'a',
            Net::B => 'b',
        }
    }
}

struct NsHost {
    netns: String,
    /// The machine-side ends of the host's veths, with their network.
    veths: Vec<(Net, String)>,
    dir: PathBuf,
    holder: Option<Holder>,
}

/// What runs on a node.
#[derive(Default)]
struct NodeProcs {
    /// In a cell, as `dlm`: a test restarts it through a shared bed.
    corosync: RefCell<Option<Child>>,
    iscsid: Option<Child>,
    /// In a cell: a test restarts it while it lends the bed out.
    dlm: RefCell<Option<DlmDaemon>>,
}

pub struct SanBed {
    /// `hsn-<pid>-<k>`: the prefix of every name of the bed.
    name: String,
    /// `k`, its bit in [`SLOTS`].
    slot: u8,
    /// Third octets of the cluster network, net A, net B.
    nets: [u8; 3],
    bridges: Vec<String>,
    /// The storage host first, then node 1, 2, ...
    hosts: Vec<NsHost>,
    target: Option<Child>,
    /// Node `i`'s processes at `i - 1`.
    nodes: Vec<NodeProcs>,
    dir: tempfile::TempDir,
}

impl SanBed {
    /// The whole bed with `n` nodes: target, corosync membership of all `n`, every node
    /// daemon with `mpatha` over two active paths, every dlm_controld started and its
    /// node unfenced (its key in its store file).
    pub fn start(n: usize) -> SanBed {
        let mut bed = SanBed::new(n);
        bed.start_target();
        for i in 1..=n {
            bed.start_corosync(i);
        }
        for i in 1..=n {
            bed.wait_members(i, n);
        }
        for i in 1..=n {
            bed.start_node_daemon(i);
        }
        for i in 1..=n {
            bed.login(i);
        }
        for i in 1..=n {
            bed.wait_map(i);
        }
        for i in 1..=n {
            bed.start_dlm(i);
        }
        for i in 1..=n {
            bed.wait_unfenced(i);
        }
        bed
    }

    /// The networks and hosts, no daemon yet.
    pub fn new(n: usize) -> SanBed {
        assert!((2..=3).contains(&n), "2 or 3 nodes");
        require_root_and_tools();
        sweep_stale();
        let k = {
            let mut used = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
            let k = (0..MAX_BEDS)
                .find(|k| *used & (1 << k) == 0)
                .unwrap_or_else(|| panic!("at most {MAX_BEDS} beds at once per test process"));
            *used |= 1 << k;
            k
        };
        // Interface names have at most 15 characters: `hsn-<7-digit pid>-<k>1c`.
        let name = format!("hsn-{}-{k}", std::process::id());
        let c = FIRST_NET + 3 * k;
        let mut bed = SanBed {
            dir: tempfile::Builder::new()
                .prefix(&format!("{name}-"))
                .tempdir_in(BED_ROOT)
                .expect("temp dir"),
            name,
            slot: k,
            nets: [c, c + 1, c + 2],
            bridges: Vec::new(),
            hosts: Vec::new(),
            target: None,
            nodes: (0..n).map(|_| NodeProcs::default()).collect(),
        };
        // Each step records what it made before the next can fail, so that Drop removes
        // a half-built bed too.
        for net in [Net::Cluster, Net::A, Net::B] {
            let br = format!("{}{}", bed.name, net.tag());
            check_ifname(&br);
            ip(&format!("link add {br} type bridge"));
            bed.bridges.push(br.clone());
            disable_ipv6(&br);
            ip(&format!("link set {br} up"));
        }
        bed.add_host('s', "storage", &[Net::A, Net::B], 100);
        for i in 1..=n {
            let tag = char::from_digit(i as u32, 10).expect("one digit");
            bed.add_host(
                tag,
                &format!("node{i}"),
                &[Net::A, Net::B, Net::Cluster],
                i as u8,
            );
            let dir = bed.node_dir(i).to_path_buf();
            for d in ["iscsi", "run", "dev", "conf.d", "dlm", "mnt"] {
                std::fs::create_dir(dir.join(d)).expect("node dir");
            }
        }
        std::fs::create_dir(bed.dir().join("bin")).expect("bin dir");
        // The agent as fence-agents install it: a file named fence_scsi.
        std::os::unix::fs::symlink(hydra(), bed.fence_scsi()).expect("fence_scsi link");
        bed
    }

    /// One host: a namespace, a veth per network (`eth0`, `eth1`, ... in `nets` order)
    /// with address `10.200.X.host`, the holder of its mount namespace.
    fn add_host(&mut self, tag: char, dir: &str, nets: &[Net], host: u8) {
        let netns = format!("{}-{tag}", self.name);
        let dir = self.dir.path().join(dir);
        std::fs::create_dir(&dir).expect("host dir");
        ip(&format!("netns add {netns}"));
        self.hosts.push(NsHost {
            netns: netns.clone(),
            veths: Vec::new(),
            dir,
            holder: None,
        });
        // IPv6 off before the links exist, so that they never get link-local addresses.
        ip(&format!(
            "netns exec {netns} sysctl -q -w \
             net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
        ));
        for (e, net) in nets.iter().enumerate() {
            let veth = format!("{}{tag}{}", self.name, net.tag());
            check_ifname(&veth);
            ip(&format!(
                "link add {veth} type veth peer name eth{e} netns {netns}"
            ));
            self.hosts
                .last_mut()
                .expect("just pushed")
                .veths
                .push((*net, veth.clone()));
            disable_ipv6(&veth);
            ip(&format!(
                "link set {veth} master {}{} up",
                self.name,
                net.tag()
            ));
            let addr = Ipv4Addr::new(10, 200, self.nets[net.index()], host);
            ip(&format!("-n {netns} addr add {addr}/24 dev eth{e}"));
            ip(&format!("-n {netns} link set eth{e} up"));
        }
        let holder = Holder::start(
            &netns,
            "mount -t tmpfs -o mode=0755,size=16m hsn-run /run && \
             mount -t tmpfs -o mode=1777,size=64m hsn-shm /dev/shm",
        );
        self.hosts.last_mut().expect("just pushed").holder = Some(holder);
    }

    // ---- names, places ----

    /// `hsn-<pid>-<k>`, the prefix of every link and namespace of this bed.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bed's temporary directory (the backing file, every host's directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How many nodes.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`'s directory (1-based).
    pub fn node_dir(&self, i: usize) -> &Path {
        &self.host(i).dir
    }

    /// The storage host's directory.
    pub fn storage_dir(&self) -> &Path {
        &self.hosts[0].dir
    }

    /// The LUN's backing file, on the machine's disk.
    pub fn backing_file(&self) -> PathBuf {
        self.storage_dir().join("lun.img")
    }

    /// `<bed>/bin/fence_scsi`, a symlink to hydra.
    pub fn fence_scsi(&self) -> PathBuf {
        self.dir().join("bin/fence_scsi")
    }

    /// Node `i`'s fence_scsi store (`PATH.key`, `PATH.dev`).
    pub fn store_path(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("fence_scsi")
    }

    /// Node `i`'s node daemon's run directory.
    pub fn run_dir(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("run")
    }

    /// Node `i`'s device directory (`--dev-dir`).
    pub fn dev_dir(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("dev")
    }

    /// Node `i`'s `mapper/mpatha` (a symlink to its loop device).
    pub fn map_dev(&self, i: usize) -> PathBuf {
        self.dev_dir(i).join("mapper").join(MAP)
    }

    /// Node `i`'s mount point for the shared filesystem.
    pub fn mnt(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("mnt")
    }

    /// Node `i`'s dlm_controld run directory (its socket).
    pub fn dlm_run_dir(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("dlm/run")
    }

    /// Node `i`'s dlm.conf.
    pub fn dlm_conf_path(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("dlm.conf")
    }

    /// The corosync cluster name (the bed's name): fence_scsi's keys derive from it.
    pub fn cluster_name(&self) -> &str {
        &self.name
    }

    /// Node `i`'s cluster address (its corosync ring0 address, its fence_scsi plug).
    pub fn cluster_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.nets[Net::Cluster.index()], i as u8)
    }

    /// `10.200.X.100:3260`: the target's portal on a storage network.
    pub fn portal(&self, net: Net) -> String {
        assert!(net != Net::Cluster, "no portal on the cluster network");
        format!("10.200.{}.100:3260", self.nets[net.index()])
    }

    /// Node `i`'s initiator name.
    pub fn initiator_name(&self, i: usize) -> String {
        format!("iqn.2026-12.org.hydra:{}-node{i}", self.name)
    }

    /// A path in node `i`'s mount namespace, as this process can open it.
    pub fn node_path(&self, i: usize, p: impl AsRef<Path>) -> PathBuf {
        self.holder(i).path(p)
    }

    fn host(&self, i: usize) -> &NsHost {
        assert!((1..=self.nodes.len()).contains(&i), "no node {i}");
        &self.hosts[i]
    }

    fn holder(&self, h: usize) -> &Holder {
        self.hosts[h].holder.as_ref().expect("host is up")
    }

    // ---- running things in a host ----

    /// A command that runs `program` in node `i`'s network and mount namespaces (0: the
    /// storage host). It gets SIGKILL if the test thread dies.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.holder(i).command(program)
    }

    /// Run a program in node `i` (0: the storage host) to completion (at most 60 s).
    pub fn exec(&self, i: usize, args: &[&str]) -> Output {
        self.holder(i).exec(args)
    }

    /// As [`SanBed::exec`], and it must succeed; its stdout.
    pub fn exec_ok(&self, i: usize, args: &[&str]) -> String {
        let o = self.exec(i, args);
        assert!(o.status.success(), "node {i}: {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `hydra TOOL ARGS` in node `i`, aimed at its node daemon (iscsiadm, multipath,
    /// mpathpersist, ...).
    pub fn node_tool(&self, i: usize, tool: &str, args: &[&str]) -> Output {
        let dir = self.node_dir(i);
        run(
            self.command(i, hydra())
                .arg(tool)
                .args(args)
                .env("HYDRA_ISCSI_ROOT", dir.join("iscsi"))
                .env("HYDRA_ISCSID_RUN_DIR", dir.join("run")),
            Duration::from_secs(60),
        )
    }

    /// As [`SanBed::node_tool`], and it must exit 0; its stdout.
    pub fn node_tool_ok(&self, i: usize, tool: &str, args: &[&str]) -> String {
        let o = self.node_tool(i, tool, args);
        assert!(
            o.status.success(),
            "node {i}: hydra {tool} {args:?}: {}\n--- iscsid log (tail) ---\n{}",
            text(&o),
            tail(&self.node_log(i), 30)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `hydra fence_scsi ARGS` in node `i` as that node (its store, its node daemon's
    /// map).
    pub fn fence_agent(&self, i: usize, args: &[&str]) -> Output {
        let mut c = self.command(i, self.fence_scsi());
        c.arg("--store-path")
            .arg(self.store_path(i))
            .arg("--run-dir")
            .arg(self.run_dir(i))
            .arg("--dev-dir")
            .arg(self.dev_dir(i))
            .args(["-d", &format!("/dev/mapper/{MAP}")])
            .args(args);
        run(&mut c, Duration::from_secs(120))
    }

    /// `hydra dlm_tool ARGS` in node `i` against its dlm_controld.
    pub fn dlm_tool(&self, i: usize, args: &[&str]) -> Output {
        let mut c = self.command(i, hydra());
        c.arg("dlm_tool")
            .arg("--run-dir")
            .arg(self.dlm_run_dir(i))
            .args(args);
        run(&mut c, Duration::from_secs(60))
    }

    // ---- the cluster network ----

    /// Cut node `i` off the cluster network (its link goes down on the bridge side);
    /// its storage links stay up.
    pub fn cut(&self, i: usize) {
        ip(&format!("link set {} down", self.veth(i, Net::Cluster)));
    }

    /// Put node `i` back on the cluster network.
    pub fn heal(&self, i: usize) {
        ip(&format!("link set {} up", self.veth(i, Net::Cluster)));
    }

    /// Take node `i`'s link on `net` down or up on the bridge side (a storage path cut
    /// and healed, for nets A and B).
    pub fn set_link(&self, i: usize, net: Net, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&format!("link set {} {state}", self.veth(i, net)));
    }

    fn veth(&self, i: usize, net: Net) -> &str {
        self.host(i)
            .veths
            .iter()
            .find(|(n, _)| *n == net)
            .map(|(_, v)| v.as_str())
            .expect("a veth on that network")
    }

    // ---- the storage host ----

    /// hydra tgtd in the storage host: one target, the LUN backed by `lun.img` (a sparse
    /// file of [`LUN_SIZE`] on the machine's disk), portals on both storage networks.
    pub fn start_target(&mut self) {
        let dir = self.storage_dir().to_path_buf();
        let img = self.backing_file();
        super::sparse(&img, LUN_SIZE);
        self.spawn_target(&dir, &img);
    }

    /// Start hydra tgtd again on the LUN it has (after [`SanBed::kill_target`]): the
    /// backing file and the state directory (APTPL reservations) as they are.
    pub fn restart_target(&mut self) {
        let dir = self.storage_dir().to_path_buf();
        let img = self.backing_file();
        self.spawn_target(&dir, &img);
    }

    /// SIGKILL hydra tgtd (as a crash).
    pub fn kill_target(&mut self) {
        if let Some(mut t) = self.target.take() {
            let _ = t.kill();
            let _ = t.wait();
        }
    }

    /// Whether hydra tgtd runs (it was started and has not exited).
    pub fn target_running(&mut self) -> bool {
        running(&mut self.target)
    }

    fn spawn_target(&mut self, dir: &Path, img: &Path) {
        std::fs::write(
            dir.join("targets.conf"),
            format!(
                "<target {IQN}>\n    backing-store {}\n</target>\n",
                img.display()
            ),
        )
        .expect("targets.conf");
        let log = append(&dir.join("target.log"));
        let iscsi = format!(
            "portal={},portal={}",
            self.portal(Net::A),
            self.portal(Net::B)
        );
        let child = spawn_hydra_tgtd(self.command(0, hydra()), &iscsi, CONTROL_PORT, dir, log);
        self.target = Some(child);
        // The portals listen before --conf is loaded; the control socket comes last.
        let sock = dir.join("run").join(format!("socket.{CONTROL_PORT}"));
        self.wait_for("hydra tgtd's control socket", || sock.exists());
    }

    /// The target's log so far.
    pub fn target_log(&self) -> String {
        std::fs::read_to_string(self.storage_dir().join("target.log")).unwrap_or_default()
    }

    // ---- corosync ----

    /// Node `i`'s corosync.conf and corosync.
    pub fn start_corosync(&self, i: usize) {
        let dir = self.node_dir(i).to_path_buf();
        let addrs: Vec<Ipv4Addr> = (1..=self.nodes()).map(|n| self.cluster_addr(n)).collect();
        let conf = corosync_conf(&self.name, &addrs, &dir, self.nodes() == 2);
        std::fs::write(dir.join("corosync.conf"), conf).expect("corosync.conf");
        if let Some(mut c) = self.nodes[i - 1].corosync.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A killed corosync leaves its libqb IPC rings in /dev/shm (a reboot empties
        // it); over many restarts they fill the host's tmpfs and the next corosync
        // cannot serve IPC ("shm connection FAILED: No space left on device"). libqb 2
        // keeps each connection's rings in a directory, /dev/shm/qb-<server>-<client>-…/.
        self.exec_quiet(i, &["sh", "-c", "rm -rf /dev/shm/qb-*"]);
        let child = spawn_corosync(self.command(i, "corosync"), &dir);
        *self.nodes[i - 1].corosync.borrow_mut() = Some(child);
    }

    /// Whether node `i`'s corosync process is still running (not exited, not a zombie).
    pub fn corosync_running(&self, i: usize) -> bool {
        let cell = self.nodes[i - 1].corosync.borrow();
        let Some(c) = cell.as_ref() else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{}/stat", c.id()))
            .ok()
            .and_then(|st| st.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
            .unwrap_or(false)
    }

    /// Wait until node `i`'s corosync sees `count` nodes.
    pub fn wait_members(&self, i: usize, count: usize) {
        let start = Instant::now();
        loop {
            let out = self.exec(i, &["corosync-quorumtool", "-s"]);
            let status = text(&out);
            let nodes = status
                .lines()
                .find_map(|l| l.trim().strip_prefix("Nodes:"))
                .and_then(|n| n.trim().parse::<usize>().ok());
            if nodes == Some(count) {
                return;
            }
            assert!(
                start.elapsed() < SETTLE,
                "node {i}: corosync did not reach {count} members; corosync-quorumtool -s:\n{status}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // ---- the node daemon ----

    /// Node `i`'s `hydra iscsid`, its files in the node's directory; returns once its
    /// control sockets are there.
    pub fn start_node_daemon(&mut self, i: usize) {
        let dir = self.node_dir(i).to_path_buf();
        std::fs::write(dir.join("iscsi/iscsid.conf"), ISCSID_CONF).expect("iscsid.conf");
        std::fs::write(
            dir.join("iscsi/initiatorname.iscsi"),
            format!("InitiatorName={}\n", self.initiator_name(i)),
        )
        .expect("initiatorname.iscsi");
        // Every path multipathed, checked every second. A RESERVATION CONFLICT is not a
        // path failure: with `no_path_retry queue` a fenced node's write that the daemon
        // retried or queued would hang, which the takeover test would catch.
        std::fs::write(
            dir.join("multipath.conf"),
            format!(
                "defaults {{\n    user_friendly_names yes\n    find_multipaths no\n    \
                 polling_interval 1\n    no_path_retry queue\n    \
                 bindings_file \"{d}/bindings\"\n    wwids_file \"{d}/wwids\"\n}}\n",
                d = dir.display()
            ),
        )
        .expect("multipath.conf");
        let (a, b) = (dir.join("run/iscsid.sock"), dir.join("run/multipathd.sock"));
        // A killed predecessor's sockets would make the wait below end at once.
        let _ = std::fs::remove_file(&a);
        let _ = std::fs::remove_file(&b);
        let log = append(&dir.join("iscsid.log"));
        let mut cmd = self.command(i, hydra());
        let child = super::node_daemon::iscsid_args(&mut cmd, &dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn hydra iscsid");
        self.nodes[i - 1].iscsid = Some(child);
        self.wait_for(&format!("node {i}: iscsid's control sockets"), || {
            a.exists() && b.exists()
        });
    }

    /// Discovery through both portals and a login to every record: one session each.
    pub fn login(&self, i: usize) {
        for net in [Net::A, Net::B] {
            let out = self.node_tool_ok(
                i,
                "iscsiadm",
                &["-m", "discovery", "-t", "st", "-p", &self.portal(net)],
            );
            assert!(
                out.contains(&self.portal(net)),
                "node {i}: discovery: {out}"
            );
        }
        let out = self.node_tool_ok(i, "iscsiadm", &["-m", "node", "-L", "all"]);
        assert!(out.contains("successful"), "node {i}: login: {out}");
    }

    /// Wait until node `i`'s map has two active paths and its kernel device exists;
    /// the device (`/dev/loopN`).
    pub fn wait_map(&self, i: usize) -> PathBuf {
        self.wait_for(&format!("node {i}: {MAP} with two active paths"), || {
            let out = self.node_tool(i, "multipath", &["-ll"]);
            let t = Topology::parse(&String::from_utf8_lossy(&out.stdout));
            t.map(MAP).is_some_and(|m| {
                let p = m.paths();
                p.len() == 2 && p.iter().all(|p| p.is_active_ready())
            })
        });
        let link = self.map_dev(i);
        let mut dev = PathBuf::new();
        self.wait_for(
            &format!("node {i}: {} names a device", link.display()),
            || match std::fs::canonicalize(&link) {
                Ok(p) if p.starts_with("/dev/") => {
                    dev = p;
                    true
                }
                _ => false,
            },
        );
        dev
    }

    /// Node `i`'s node daemon log so far.
    pub fn node_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.node_dir(i).join("iscsid.log")).unwrap_or_default()
    }

    /// Stop node `i`'s node daemon (SIGTERM: it flushes its maps, logs out, releases
    /// its loop device; SIGKILL after 20 s). Whether it exited on SIGTERM.
    pub fn stop_node_daemon(&mut self, i: usize) -> bool {
        let Some(mut child) = self.nodes[i - 1].iscsid.take() else {
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
        eprintln!("cleanup: node {i}: hydra iscsid did not exit within 20 s of SIGTERM; SIGKILL");
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// SIGKILL node `i`'s node daemon (as a crash): its map's kernel device fails, its
    /// FUSE file's mount is left dead and its loop device attached.
    pub fn kill_node_daemon(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i - 1].iscsid.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether node `i`'s node daemon runs.
    pub fn node_daemon_running(&mut self, i: usize) -> bool {
        running(&mut self.nodes[i - 1].iscsid)
    }

    /// SIGKILL node `i`'s corosync (as a crash).
    pub fn kill_corosync(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i - 1].corosync.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether node `i`'s dlm_controld runs.
    pub fn dlm_running(&self, i: usize) -> bool {
        self.nodes[i - 1]
            .dlm
            .borrow_mut()
            .as_mut()
            .is_some_and(DlmDaemon::running)
    }

    // ---- the DLM ----

    /// Node `i`'s dlm_controld with [`dlm_conf`]; returns once its socket answers.
    pub fn start_dlm(&self, i: usize) {
        std::fs::write(self.dlm_conf_path(i), dlm_conf(self, i)).expect("dlm.conf");
        self.restart_dlm(i);
    }

    /// Start node `i`'s dlm_controld again (killing it first if it runs) with the
    /// dlm.conf it has now.
    pub fn restart_dlm(&self, i: usize) {
        self.kill_dlm(i);
        let conf = self.dlm_conf_path(i);
        let d = DlmDaemon::spawn(
            self.command(i, hydra()),
            &self.node_dir(i).join("dlm"),
            &conf,
        );
        *self.nodes[i - 1].dlm.borrow_mut() = Some(d);
    }

    /// Stop node `i`'s dlm_controld (SIGKILL: as a crashed daemon; its client
    /// connections and lock state are gone).
    pub fn kill_dlm(&self, i: usize) {
        self.nodes[i - 1].dlm.borrow_mut().take();
    }

    /// Node `i`'s dlm_controld output so far.
    pub fn dlm_output(&self, i: usize) -> String {
        std::fs::read_to_string(self.node_dir(i).join("dlm/dlm_controld.out")).unwrap_or_default()
    }

    /// Node `i`'s dlm_controld's pid.
    pub fn dlm_pid(&self, i: usize) -> Option<u32> {
        self.nodes[i - 1].dlm.borrow().as_ref().map(DlmDaemon::pid)
    }

    /// Wait until node `i` unfenced itself: its key in its store file (the agent writes
    /// it before registering) and `fence_scsi -o status` says ON.
    pub fn wait_unfenced(&self, i: usize) {
        let file = self.store_path(i).with_extension("key");
        self.wait_for(&format!("node {i}: unfenced by dlm_controld"), || {
            file.exists() && self.fence_agent(i, &["-o", "status"]).status.code() == Some(0)
        });
    }

    // ---- filesystems ----

    /// Filesystems mounted in node `i` on a directory of the bed, innermost last
    /// (`/proc/<holder>/mounts`), with their types.
    pub fn mounts(&self, i: usize) -> Vec<(PathBuf, String)> {
        let Some(h) = self.hosts.get(i).and_then(|h| h.holder.as_ref()) else {
            return Vec::new();
        };
        let table = h.mount_table();
        let root = self.dir().to_str().unwrap_or("-").to_string();
        table
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let (_, at, fstype) = (w.next()?, w.next()?, w.next()?);
                // mounts(5) escapes blanks as \040; the bed's paths have none.
                at.starts_with(&root)
                    .then(|| (PathBuf::from(at), fstype.to_string()))
            })
            .collect()
    }

    /// Unmount every filesystem of node `i` on the bed's directories except the node
    /// daemon's FUSE exports (its stop takes them down with their loop devices);
    /// lazily when a plain umount fails. For cleanup: never panics.
    pub fn unmount_all(&self, i: usize) {
        for (at, fstype) in self.mounts(i).into_iter().rev() {
            if fstype.starts_with("fuse") {
                continue;
            }
            let at = at.to_str().unwrap_or_default().to_string();
            if !self.exec_quiet(i, &["umount", &at]) {
                eprintln!("cleanup: node {i}: detaching {at} lazily");
                self.exec_quiet(i, &["umount", "-l", &at]);
            }
        }
    }

    /// Poll `f` every 50 ms until it holds; panic after [`SETTLE`].
    pub fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < SETTLE, "{what}: not within {SETTLE:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run a program in a host for cleanup: never panics (also not on a hang: killed
    /// after 20 s); whether it succeeded.
    fn exec_quiet(&self, i: usize, args: &[&str]) -> bool {
        let mut cmd = self.command(i, args[0]);
        cmd.args(&args[1..]);
        run_quiet(&mut cmd, &format!("node {i}: {args:?}"))
    }

    /// The tails of every daemon's log, for a failing test.
    pub fn print_logs(&self) {
        eprintln!(
            "--- {} storage: target log (tail) ---\n{}",
            self.name,
            tail(&self.target_log(), 30)
        );
        for i in 1..=self.nodes() {
            eprintln!(
                "--- node {i}: iscsid log (tail) ---\n{}",
                tail(&self.node_log(i), 40)
            );
            eprintln!(
                "--- node {i}: dlm_controld output (tail) ---\n{}",
                tail(&self.dlm_output(i), 60)
            );
            let log =
                std::fs::read_to_string(self.node_dir(i).join("corosync.log")).unwrap_or_default();
            eprintln!("--- node {i}: corosync log (tail) ---\n{}", tail(&log, 20));
        }
    }
}

impl Drop for SanBed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        // The links back, so that the node daemons can log out and flush cleanly.
        for v in self.hosts.iter().flat_map(|h| &h.veths) {
            quiet_ip(&format!("link set {} up", v.1));
        }
        let up = self.hosts.len() == self.nodes.len() + 1
            && self.hosts.iter().all(|h| h.holder.is_some());
        if up {
            for i in 1..=self.nodes() {
                self.unmount_all(i);
            }
        }
        for n in &mut self.nodes {
            // DlmDaemon's drop: SIGKILL by pid (its own output is shown on a panic).
            n.dlm.get_mut().take();
        }
        for i in 1..=self.nodes() {
            if self.nodes[i - 1].iscsid.is_some() {
                self.stop_node_daemon(i);
            }
        }
        // Loop devices a killed node daemon left attached to its FUSE files.
        detach_loops(|back| back.starts_with(self.dir.path().to_str().unwrap_or("-")));
        if let Some(mut t) = self.target.take() {
            super::stop(&mut t);
        }
        for n in &mut self.nodes {
            if let Some(mut c) = n.corosync.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for host in &mut self.hosts {
            host.holder.take();
            kill_netns_processes(&host.netns);
            // Deleting one end of a veth deletes the pair.
            for (_, v) in &host.veths {
                quiet_ip(&format!("link del {v}"));
            }
            quiet_ip(&format!("netns del {}", host.netns));
        }
        for br in &self.bridges {
            quiet_ip(&format!("link del {br}"));
        }
        let mut used = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
        *used &= !(1 << self.slot);
    }
}

/// A log file opened for appending (a restarted daemon goes on in its predecessor's).
fn append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether a started process still runs.
fn running(c: &mut Option<Child>) -> bool {
    c.as_mut()
        .is_some_and(|c| c.try_wait().ok().flatten().is_none())
}

/// Node `i`'s dlm.conf (dlm.conf(5)): fencing through `hydra fence_scsi` on the node's
/// own map (every path of it), each node connected with its node id, and unfencing at
/// start-up (`unfence scsi`: the daemon runs the agent with `action=on` for its own node
/// before it takes part, which registers the node's key and reserves WERO).
///
/// With two nodes and `two_node: 1` both halves of a split stay quorate and both fence:
/// a fence race, which the node that fences first wins (its PREEMPT AND ABORT removes
/// the other's key, and the loser's agent cannot remove a key with a key it no longer
/// has registered). `delay=` on node 2's connect line makes the fencing *of* node 2 wait
/// [`NODE2_FENCE_DELAY`] s before it starts (fence_scsi's `delay`, run before `off`), so
/// node 2 wins every race: pacemaker's `pcmk_delay_base` on one node's fence device, the
/// usual two-node setup. In the takeover the cut node is node 1: node 2 fences it at
/// once.
///
/// `post_join_delay=10` (default 30): a node back on the ring has that long to say
/// Hello before it is fenced; a node still gone is fenced at once regardless.
pub fn dlm_conf(bed: &SanBed, i: usize) -> String {
    let mut conf = format!(
        "post_join_delay=10\n\ndevice scsi {agent} devices=/dev/mapper/{MAP} dev_dir={dev} run_dir={run} store_path={store}\n",
        agent = bed.fence_scsi().display(),
        dev = bed.dev_dir(i).display(),
        run = bed.run_dir(i).display(),
        store = bed.store_path(i).display(),
    );
    for n in 1..=bed.nodes() {
        if n == 2 && bed.nodes() == 2 {
            conf.push_str(&format!(
                "connect scsi node={n} delay={NODE2_FENCE_DELAY}\n"
            ));
        } else {
            conf.push_str(&format!("connect scsi node={n}\n"));
        }
    }
    conf.push_str("unfence scsi\n");
    conf
}

fn require_root_and_tools() {
    netns::require_root_and_tools(
        &[
            "corosync",
            "corosync-quorumtool",
            "ip",
            "nsenter",
            "unshare",
            "losetup",
            "mkfs.ext4",
            "fsck.ext4",
            "mount",
        ],
        "scripts/setup.sh installs it",
        "the shared-storage bed makes namespaces and need root",
    );
}

/// Remove what beds of test processes that no longer exist left behind: loop devices
/// on their files, their directories, namespaces and links.
fn sweep_stale() {
    detach_loops(|back| {
        back.strip_prefix(BED_ROOT)
            .map(|r| r.trim_start_matches('/'))
            .is_some_and(|r| is_stale("hsn-", r))
    });
    for entry in std::fs::read_dir(BED_ROOT).into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| is_stale("hsn-", n))
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    netns::sweep_stale("hsn-");
}

/// No link or namespace of the bed's name, no loop device on its files, no mount on its
/// directories, the directory gone.
pub fn check_nothing_left(name: &str, dir: &Path) {
    let links = text(&run(
        Command::new("ip").args(["-o", "link", "show"]),
        Duration::from_secs(10),
    ));
    assert!(!links.contains(name), "links of {name} left:\n{links}");
    let ns = text(&run(
        Command::new("ip").args(["netns", "list"]),
        Duration::from_secs(10),
    ));
    assert!(!ns.contains(name), "namespaces of {name} left:\n{ns}");
    let d = dir.to_str().expect("utf-8 path");
    let loops: Vec<_> = loop_devices()
        .into_iter()
        .filter(|(_, b)| b.starts_with(d))
        .collect();
    assert!(loops.is_empty(), "loop devices left: {loops:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(d), "mounts left:\n{mounts}");
    assert!(!dir.exists(), "{d} left");
}
