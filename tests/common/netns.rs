//! What the namespace beds ([`super::cluster`], [`super::mpbed`], [`super::sanbed`])
//! share: the `ip` calls that build and tear down bridges, veths and network namespaces,
//! the [`Holder`] of a host's namespaces (and running programs in them), and the sweep
//! of what a killed test process left (namespaces, links, loop devices).
//! Every name a bed makes starts with its prefix and the test process's pid
//! (`<prefix><pid>-...`), which is how a later run knows what is stale.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{run, text};

/// How long a namespace holder may take to start.
const HOLDER_START: Duration = Duration::from_secs(60);

/// A command whose process gets SIGKILL when the thread that spawned it dies
/// (prctl(2) PR_SET_PDEATHSIG, kept across exec): a killed test leaves no daemon.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// How long [`Holder::exec`] lets a program run.
const EXEC_LIMIT: Duration = Duration::from_secs(60);

/// A host's namespaces, held by a `sleep` process: inside the network namespace `netns`,
/// a mount namespace of its own (private, so nothing propagates back). Programs run in
/// them through nsenter. Dropping it kills the holder.
pub struct Holder(Child);

impl Holder {
    /// The holder, once the shell commands `mounts` (tmpfs on /run, ...) have run in
    /// its new mount namespace.
    pub fn start(netns: &str, mounts: &str) -> Holder {
        Holder(start_holder(netns, mounts))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// The host's network namespace as a path for setns(2).
    pub fn netns_path(&self) -> String {
        format!("/proc/{}/ns/net", self.pid())
    }

    /// A path in the host's mount namespace, as this process can open it.
    pub fn path(&self, p: impl AsRef<Path>) -> PathBuf {
        let p = p.as_ref();
        let rel = p.strip_prefix("/").unwrap_or(p);
        PathBuf::from(format!("/proc/{}/root", self.pid())).join(rel)
    }

    /// The host's mount table (mounts(5)).
    pub fn mount_table(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/mounts", self.pid())).unwrap_or_default()
    }

    /// A command that runs `program` in the host's network and mount namespaces. It gets
    /// SIGKILL if the test thread dies.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = command("nsenter");
        cmd.arg(format!("--target={}", self.pid()))
            .args(["--net", "--mount", "--"])
            .arg(program);
        cmd
    }

    /// Run a program in the host to completion (at most [`EXEC_LIMIT`]).
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args[0]);
        cmd.args(&args[1..]);
        run(&mut cmd, EXEC_LIMIT)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `sleep` that holds a host's namespaces (see [`Holder`]), started once `mounts`
/// ran; a holder that exits first fails the test with what it printed.
fn start_holder(netns: &str, mounts: &str) -> Child {
    let mut holder = command("ip")
        .args(["netns", "exec", netns])
        .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("{mounts} && exec sleep infinity"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the namespace holder");
    // It is ready once the shell has become `sleep`, i.e. after the mounts.
    let start = Instant::now();
    loop {
        if let Some(status) = holder.try_wait().expect("wait") {
            let err = holder
                .wait_with_output()
                .map(|o| text(&o))
                .unwrap_or_default();
            panic!("{netns}: the namespace holder exited ({status}): {err}");
        }
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", holder.id()));
        if comm.map(|c| c.trim() == "sleep").unwrap_or(false) {
            return holder;
        }
        assert!(
            start.elapsed() < HOLDER_START,
            "{netns}: the namespace holder did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every one of `tools` is on PATH (else: `<tool> is not installed: <hint>`), and the
/// test runs as root (else: `not_root`).
pub fn require_root_and_tools(tools: &[&str], hint: &str, not_root: &str) {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(found, "{tool} is not installed: {hint}");
    }
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    assert!(euid == 0, "{not_root}");
}

/// Delete the temporary directories, namespaces and links named `<prefix><pid>-...` of
/// test processes that no longer exist (a test killed before its Drop ran).
pub fn sweep_stale(prefix: &str) {
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| is_stale(prefix, n))
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let netns = text(&run(
        Command::new("ip").args(["netns", "list"]),
        Duration::from_secs(10),
    ));
    for name in netns.lines().filter_map(|l| l.split_whitespace().next()) {
        if is_stale(prefix, name) {
            kill_netns_processes(name);
            quiet_ip(&format!("netns del {name}"));
        }
    }
    let links = text(&run(
        Command::new("ip").args(["-o", "link", "show"]),
        Duration::from_secs(10),
    ));
    for line in links.lines() {
        // "7: hyd-123-0v1@if2: <BROADCAST,..."
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        if is_stale(prefix, name) {
            quiet_ip(&format!("link del {name}"));
        }
    }
}

/// `<prefix><pid>-...` of a process that is gone.
pub fn is_stale(prefix: &str, name: &str) -> bool {
    let Some(pid) = name
        .strip_prefix(prefix)
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
    else {
        return false;
    };
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// SIGKILL to every process in the network namespace `netns` (`ip netns pids`).
pub fn kill_netns_processes(netns: &str) {
    let out = Command::new("ip").args(["netns", "pids", netns]).output();
    let pids = out.map(|o| text(&o)).unwrap_or_default();
    for pid in pids
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        // SAFETY: kill(2) with a pid read from the namespace; no memory involved.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

pub fn disable_ipv6(ifname: &str) {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    // Without IPv6 in the kernel there is nothing to disable.
    if Path::new(&path).exists() {
        std::fs::write(&path, "1").unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

/// Interface names have at most 15 characters (IFNAMSIZ).
pub fn check_ifname(name: &str) {
    assert!(name.len() <= 15, "interface name {name} is too long");
}

/// `ip ARGS` (words split on blanks; none of the beds' names has one).
pub fn ip(args: &str) {
    let out = run(
        Command::new("ip").args(args.split_whitespace()),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "ip {args}: {}", text(&out));
}

/// `ip` for cleanup: failures are reported, never a panic inside Drop.
pub fn quiet_ip(args: &str) {
    match Command::new("ip").args(args.split_whitespace()).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!("cleanup: ip {args}: {}", text(&out).trim()),
        Err(e) => eprintln!("cleanup: ip {args}: {e}"),
    }
}

/// Run `cmd` for cleanup (`what` names it in messages): never panics, also not on a
/// hang (killed after 20 s); whether it succeeded.
pub fn run_quiet(cmd: &mut Command, what: &str) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                if !st.success() {
                    let err = child
                        .wait_with_output()
                        .map(|o| text(&o))
                        .unwrap_or_default();
                    eprintln!("cleanup: {what}: {st}: {}", err.trim());
                }
                return st.success();
            }
            Ok(None) if start.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                eprintln!("cleanup: {what} hangs; killed");
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// Detach loop devices whose backing file `stale` selects (the path as attached).
pub fn detach_loops(stale: impl Fn(&str) -> bool) {
    for (dev, back) in loop_devices() {
        if stale(&back) {
            eprintln!("cleanup: detaching {dev} (backing file {back})");
            detach_loop(&dev);
        }
    }
}

/// Remove loop device `dev`'s partitions and detach it (the kernel marks one still in
/// use autoclear); a failure is printed, never a panic.
pub fn detach_loop(dev: &str) {
    let _ = Command::new("partx").args(["-d", dev]).output();
    match Command::new("losetup").args(["-d", dev]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!("cleanup: losetup -d {dev}: {}", text(&o).trim()),
        Err(e) => eprintln!("cleanup: losetup -d {dev}: {e}"),
    }
}

/// Every attached loop device with its backing file.
pub fn loop_devices() -> Vec<(String, String)> {
    loop_list("BACK-FILE")
}

/// Every attached loop device with the MAJ:MIN of its backing file's filesystem (for a
/// FUSE file: that one mount, whatever its path reads from here).
pub fn loops_by_devno() -> Vec<(String, String)> {
    loop_list("BACK-MAJ:MIN")
}

/// `losetup --list`'s NAME and `column`, a pair per device.
fn loop_list(column: &str) -> Vec<(String, String)> {
    let Ok(out) = Command::new("losetup")
        .args(["--list", "--noheadings", "--output"])
        .arg(format!("NAME,{column}"))
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (dev, rest) = l.trim().split_once(char::is_whitespace)?;
            Some((dev.to_string(), rest.trim().to_string()))
        })
        .collect()
}
