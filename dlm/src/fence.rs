//! Running fence agents the way dlm_controld does (dlmsrc fence.c `run_agent`; dlm.md
//! §2.5 "Running an agent", §3.2): the agent is found by name on PATH (or given as a
//! path), run with no arguments, and given `key=value` lines on stdin: the device's and
//! the connect line's arguments, then `action=`, `node=<nodeid>` and `fail_time=<wall
//! clock seconds>`. Exit 0 is success; any other exit, death by a signal, or running
//! past the timeout is a failure (for `status`/`monitor`, exit 2 means "off").
//!
//! Unlike dlm_controld, which sends the agent's output to /dev/null, the first lines of
//! stdout and stderr are kept for the log. Each agent runs in a process group of its
//! own, so a timeout, or dropping the future (the victim rejoined cleanly), SIGKILLs
//! the agent and anything it started, and the agent is reaped.
//!
//! [`fence_node`] walks a [`FencePlan`] (from [`crate::config::Config::fence_plan`]):
//! steps in priority order, the agents of one step in parallel and all required. It
//! returns what succeeded or the last failure; retrying and choosing the fence actor
//! is the daemon's business.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::task::JoinSet;

use crate::config::{AgentCall, FencePlan};
use crate::error::{Error, Result};
use crate::membership::NodeId;

/// The fence-agents actions hydra asks for (FenceAgentAPI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Fence: power off, cut the port, preempt the reservation.
    Off,
    /// Unfence (a node for itself at startup) or power on.
    On,
    Reboot,
    /// 0 = on, 2 = off, anything else = error.
    Status,
    /// The device answers: 0 = ok, 2 = off.
    Monitor,
    /// Prints the agent's XML description.
    Metadata,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Off => "off",
            Action::On => "on",
            Action::Reboot => "reboot",
            Action::Status => "status",
            Action::Monitor => "monitor",
            Action::Metadata => "metadata",
        }
    }

    /// Actions whose exit status 2 is an answer ("off"), not a failure.
    fn reports_power(self) -> bool {
        matches!(self, Action::Status | Action::Monitor)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `status`/`monitor` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    On,
    Off,
}

/// A successful agent run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The agent as configured (name or path).
    pub agent: String,
    pub action: Action,
    pub pid: u32,
    /// For `status` and `monitor`: exit 0 is on, 2 is off. `None` for other actions.
    pub power: Option<Power>,
    /// The first non-empty lines of the agent's stdout and stderr, for the log.
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    pub elapsed: Duration,
}

/// A node fenced by one step of its plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fenced {
    /// Index of the step in the plan (0 = the first priority).
    pub step: usize,
    /// The devices of that step, in plan order, and their outcomes in the same order.
    pub devices: Vec<String>,
    pub outcomes: Vec<Outcome>,
}

/// Lines of each stream kept in an [`Outcome`], and characters kept of each line.
const KEPT_LINES: usize = 5;
const KEPT_LINE_CHARS: usize = 200;
/// Bytes of each stream held in memory; the rest is read and dropped, so an agent never
/// blocks on a full pipe.
const CAPTURE_BYTES: usize = 16 * 1024;
/// After the agent exits, how long its pipes may stay open (held by a process it left
/// behind) before hydra stops reading them.
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// After SIGKILL, how long to wait for the agent to die before leaving it to tokio's
/// reaper (a process in uninterruptible I/O dies only when the I/O returns).
const REAP_GRACE: Duration = Duration::from_secs(5);
/// Attempts to start an agent whose file is busy (ETXTBSY), 20 ms apart.
const SPAWN_TRIES: u32 = 50;
/// PATH when the daemon has none: where fence-agents and dlm_stonith are installed.
const DEFAULT_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// The agent's stdin: the arguments as `key=value` lines, then `action=`, `node=` and
/// `fail_time=`.
///
/// - `action=` comes after the arguments so it wins (agents take the last occurrence),
///   except for [`Action::Off`] when the arguments set `action=` themselves: dlm.conf
///   may say `action=reboot` on a device line (dlm_controld passes no action at all, so
///   the agent's default, usually reboot, applies there).
/// - `node=` is added unless the arguments have one (a `connect` line always does), as
///   dlm_controld's `fence_config_agent_args` does.
/// - `fail_time=` is passed when fencing (dlm_controld passes none when unfencing).
pub fn agent_stdin(
    args: &[(String, String)],
    action: Action,
    node: NodeId,
    fail_time: Option<u64>,
) -> String {
    let mut s = String::new();
    for (k, v) in args {
        s.push_str(&format!("{k}={v}\n"));
    }
    let has = |key: &str| args.iter().any(|(k, _)| k == key);
    if !(action == Action::Off && (has("action") || has("option"))) {
        s.push_str(&format!("action={action}\n"));
    }
    if !has("node") {
        s.push_str(&format!("node={node}\n"));
    }
    if let Some(t) = fail_time {
        s.push_str(&format!("fail_time={t}\n"));
    }
    s
}

/// Where `agent` is: a name is looked up on PATH (as `execlp` does), anything with a
/// `/` is taken as a path.
pub fn find_agent(agent: &str) -> Result<PathBuf, String> {
    find_agent_in(agent, std::env::var_os("PATH").as_deref())
}

fn find_agent_in(agent: &str, path_var: Option<&OsStr>) -> Result<PathBuf, String> {
    if agent.is_empty() {
        return Err("no agent named".into());
    }
    if agent.contains('/') {
        let p = Path::new(agent);
        return match std::fs::metadata(p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(p.into()),
            Ok(_) => Err(format!("agent {agent} is not an executable file")),
            Err(_) => Err(format!("agent {agent} not found")),
        };
    }
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    // An empty PATH entry means the current directory to execlp; a fence agent is
    // never run from wherever the daemon happens to be.
    for dir in std::env::split_paths(path_var).filter(|d| !d.as_os_str().is_empty()) {
        let candidate = dir.join(agent);
        if std::fs::metadata(&candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        {
            return Ok(candidate);
        }
    }
    Err(format!("agent {agent} not found on PATH"))
}

/// Runs one agent once. Success is exit 0 (or 2 for `status`/`monitor`); anything else
/// is an [`Error::Fence`] saying what happened, with the agent's first stderr line
/// (or stdout line) when it printed one.
pub async fn run_agent(
    agent: &str,
    args: &[(String, String)],
    action: Action,
    node: NodeId,
    fail_time: Option<u64>,
    timeout: Duration,
) -> Result<Outcome> {
    run(agent, args, action, node, fail_time, timeout)
        .await
        .map_err(|detail| Error::Fence { node, detail })
}

/// Fences `node` with `action=off`: each step of the plan in turn until one succeeds.
/// All agents of a step run at once and all must succeed. The error is the last
/// failure, naming its device.
pub async fn fence_node(
    plan: &FencePlan,
    node: NodeId,
    fail_time: u64,
    timeout: Duration,
) -> Result<Fenced> {
    let mut last = None;
    for (i, step) in plan.steps.iter().enumerate() {
        match run_step(step, Action::Off, node, Some(fail_time), timeout).await {
            Ok(outcomes) => {
                let devices = step.iter().map(|c| c.device.clone()).collect();
                return Ok(Fenced {
                    step: i,
                    devices,
                    outcomes,
                });
            }
            Err(detail) => last = Some(detail),
        }
    }
    let detail = last.unwrap_or_else(|| "no fence device configured".into());
    Err(Error::Fence { node, detail })
}

/// Unfences this node (`action=on` for itself, at startup): each call in order, stopping
/// at the first failure, as dlm_controld's `unfence_node` does.
pub async fn unfence(calls: &[AgentCall], node: NodeId, timeout: Duration) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for c in calls {
        match run(&c.agent, &c.args, Action::On, node, None, timeout).await {
            Ok(o) => outcomes.push(o),
            Err(d) => {
                return Err(Error::Fence {
                    node,
                    detail: format!("unfencing with device {}: {d}", c.device),
                })
            }
        }
    }
    Ok(outcomes)
}

/// One step: every call at once; the first failure in plan order is the step's error.
async fn run_step(
    step: &[AgentCall],
    action: Action,
    node: NodeId,
    fail_time: Option<u64>,
    timeout: Duration,
) -> Result<Vec<Outcome>, String> {
    let mut set = JoinSet::new();
    for (i, call) in step.iter().cloned().enumerate() {
        set.spawn(async move {
            let r = run(&call.agent, &call.args, action, node, fail_time, timeout).await;
            (i, r.map_err(|d| format!("device {}: {d}", call.device)))
        });
    }
    let mut results: Vec<Option<Result<Outcome, String>>> = (0..step.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.map_err(|e| format!("agent task failed: {e}"))?;
        results[i] = Some(r);
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("agent task lost".into())))
        .collect()
}

async fn run(
    agent: &str,
    args: &[(String, String)],
    action: Action,
    node: NodeId,
    fail_time: Option<u64>,
    timeout: Duration,
) -> Result<Outcome, String> {
    let path = find_agent(agent)?;
    let input = agent_stdin(args, action, node, fail_time);
    let mut cmd = Command::new(&path);
    cmd.arg0(agent)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // An agent must not outlive a daemon that is killed (kill_on_drop and the group
    // kill need the daemon to run): one left behind fenced a healthy node after the
    // node's new daemon had unfenced it (fault-injection run, seed 3; a delay= sleep
    // was still running). PR_SET_PDEATHSIG fires when the spawning thread ends, and the
    // daemon spawns on its runtime thread, which lives as long as the process.
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = spawn(&mut cmd)
        .await
        .map_err(|e| format!("agent {agent} could not be started: {e}"))?;
    let pid = child.id().unwrap_or(0);
    // Declared after `child`, so it is dropped first: a cancelled run kills the group
    // while the agent is still unreaped (its pid, and so the group id, not reusable).
    let mut group = GroupKill::new(pid);

    let stdout = Capture::start(child.stdout.take());
    let stderr = Capture::start(child.stderr.take());
    if let Some(mut stdin) = child.stdin.take() {
        // A task of its own, so waiting never depends on the agent reading its input.
        // An agent may exit without reading it: EPIPE is not a failure.
        tokio::spawn(async move {
            let _ = stdin.write_all(input.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
    }

    let waited = tokio::time::timeout(timeout, child.wait()).await;
    let status = match waited {
        Ok(Ok(status)) => {
            group.disarm();
            status
        }
        Ok(Err(e)) => {
            group.kill();
            return Err(format!(
                "agent {agent} (pid {pid}): waiting for it failed: {e}"
            ));
        }
        Err(_) => {
            group.kill();
            let reaped = tokio::time::timeout(REAP_GRACE, child.wait()).await.is_ok();
            group.disarm();
            let _ = (stdout.finish().await, stderr.finish().await);
            let tail = if reaped { "" } else { " (not yet reaped)" };
            return Err(format!(
                "agent {agent} timed out after {}, killed{tail}",
                human(timeout)
            ));
        }
    };
    let stdout = stdout.finish().await;
    let stderr = stderr.finish().await;
    judge(
        agent,
        action,
        pid,
        status,
        stdout,
        stderr,
        started.elapsed(),
    )
}

/// Starts the agent. exec fails with ETXTBSY while any process holds the file open for
/// writing: a package upgrade replacing the agent, or a just-written agent whose write
/// descriptor a concurrent fork inherited for the moment before its exec. Both pass.
async fn spawn(cmd: &mut Command) -> std::io::Result<tokio::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < SPAWN_TRIES => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r => return r,
        }
    }
}

fn judge(
    agent: &str,
    action: Action,
    pid: u32,
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: Vec<String>,
    elapsed: Duration,
) -> Result<Outcome, String> {
    let power = match status.code() {
        Some(0) => action.reports_power().then_some(Power::On),
        Some(2) if action.reports_power() => Some(Power::Off),
        code => {
            let said = match stderr.first().or(stdout.first()) {
                Some(line) => format!(": {line}"),
                None => " (no output)".into(),
            };
            return Err(match code {
                Some(c) => format!("agent {agent} exited {c}{said}"),
                None => format!(
                    "agent {agent} killed by signal {}{said}",
                    status.signal().unwrap_or(0)
                ),
            });
        }
    };
    Ok(Outcome {
        agent: agent.into(),
        action,
        pid,
        power,
        stdout,
        stderr,
        elapsed,
    })
}

/// "5 s" for whole seconds, "500 ms" otherwise.
fn human(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// SIGKILLs the agent's process group when armed: on timeout, and on drop (the run was
/// cancelled). Disarmed once the agent has been reaped.
struct GroupKill {
    pgid: Option<i32>,
}

impl GroupKill {
    fn new(pid: u32) -> Self {
        // pid 0 would make kill(2) signal hydra's own group: never arm with it.
        GroupKill {
            pgid: i32::try_from(pid).ok().filter(|&p| p > 0),
        }
    }

    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: kill(2) takes two integers and touches no memory of this process.
            // -pgid names the agent's own group (process_group(0) at spawn, pgid > 0),
            // which cannot have been reused: the agent is not reaped while armed.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads one of the agent's output pipes in a task, keeping the first bytes.
struct Capture {
    kept: Arc<Mutex<Vec<u8>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Capture {
    fn start<R: AsyncRead + Unpin + Send + 'static>(pipe: Option<R>) -> Capture {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let task = pipe.map(|mut pipe| {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                    let mut k = kept.lock().unwrap_or_else(|p| p.into_inner());
                    let room = CAPTURE_BYTES.saturating_sub(k.len());
                    k.extend_from_slice(&buf[..n.min(room)]);
                }
            })
        });
        Capture { kept, task }
    }

    /// Waits for the pipe to close (at most [`DRAIN_GRACE`]) and returns the first lines.
    async fn finish(mut self) -> Vec<String> {
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(DRAIN_GRACE, &mut task).await.is_err() {
                task.abort();
            }
        }
        let bytes = std::mem::take(&mut *self.kept.lock().unwrap_or_else(|p| p.into_inner()));
        first_lines(&bytes)
    }
}

fn first_lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .take(KEPT_LINES)
        .map(|l| l.chars().take(KEPT_LINE_CHARS).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FENCE_TEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/fence_test");
    const T: Duration = Duration::from_secs(10);

    /// A fresh scratch directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hydra-fence-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes an executable sh script.
    fn script(dir: &Path, name: &str, body: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn args(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn test_call(device: &str, log: &Path, extra: &[(&str, &str)]) -> AgentCall {
        let mut a = args(&[("log", log.to_str().unwrap())]);
        a.extend(args(extra));
        AgentCall {
            device: device.into(),
            agent: FENCE_TEST.into(),
            args: a,
        }
    }

    fn log_lines(log: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.lines().map(String::from).collect()
    }

    /// Alive = has a /proc entry that is not a zombie.
    fn alive(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => false,
            Ok(stat) => {
                stat.rsplit(')')
                    .next()
                    .and_then(|s| s.split_whitespace().next())
                    != Some("Z")
            }
        }
    }

    /// A SIGKILLed process is gone once the kernel next schedules it.
    async fn dies_soon(pid: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        !alive(pid)
    }

    fn read_pid(path: &Path) -> u32 {
        for _ in 0..200 {
            if let Ok(s) = std::fs::read_to_string(path) {
                if let Ok(pid) = s.trim().parse() {
                    return pid;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no pid in {}", path.display());
    }

    #[test]
    fn stdin_is_args_then_action_node_fail_time() {
        let connect = args(&[("ipaddr", "1.1.1.1"), ("node", "2"), ("port", "2")]);
        assert_eq!(
            agent_stdin(&connect, Action::Off, 2, Some(1_700_000_000)),
            "ipaddr=1.1.1.1\nnode=2\nport=2\naction=off\nfail_time=1700000000\n"
        );
        // fence_all: no node= among the args, so it is added; no fail_time when unfencing.
        assert_eq!(agent_stdin(&[], Action::On, 3, None), "action=on\nnode=3\n");
        // A device line's action=reboot stands for fencing, but not for other actions.
        let reboot = args(&[("action", "reboot")]);
        assert_eq!(
            agent_stdin(&reboot, Action::Off, 1, Some(5)),
            "action=reboot\nnode=1\nfail_time=5\n"
        );
        assert_eq!(
            agent_stdin(&reboot, Action::Status, 1, None),
            "action=reboot\naction=status\nnode=1\n"
        );
    }

    #[test]
    fn agents_are_found_on_path_or_by_path() {
        let dir = scratch("path");
        let agent = script(&dir, "fence_here", "exit 0");
        std::fs::write(dir.join("fence_noexec"), "#!/bin/sh\n").unwrap();
        let path = format!("/nonexistent::{}", dir.display());
        let path = Some(OsStr::new(&path));
        assert_eq!(find_agent_in("fence_here", path), Ok(PathBuf::from(&agent)));
        assert_eq!(
            find_agent_in("fence_noexec", path),
            Err("agent fence_noexec not found on PATH".into())
        );
        assert_eq!(find_agent_in(&agent, None), Ok(PathBuf::from(&agent)));
        let noexec = dir.join("fence_noexec");
        let noexec = noexec.to_str().unwrap();
        assert_eq!(
            find_agent_in(noexec, None),
            Err(format!("agent {noexec} is not an executable file"))
        );
        assert_eq!(
            find_agent_in("/nonexistent/fence_x", None),
            Err("agent /nonexistent/fence_x not found".into())
        );
        assert!(find_agent_in("sh", None).is_ok(), "default PATH has sh");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn agent_gets_exactly_the_expected_stdin() {
        let dir = scratch("stdin");
        let copy = dir.join("stdin");
        let agent = script(&dir, "fence_copy", &format!("cat > {}", copy.display()));
        let a = args(&[
            ("ipaddr", "10.0.0.9"),
            ("login", "admin"),
            ("node", "2"),
            ("port", "7"),
        ]);
        let out = run_agent(&agent, &a, Action::Off, 2, Some(1_700_000_123), T)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            "ipaddr=10.0.0.9\nlogin=admin\nnode=2\nport=7\naction=off\nfail_time=1700000123\n"
        );
        assert_eq!((out.action, out.power), (Action::Off, None));

        // And fence_test's log line, as the daemon's tests will read it.
        let log = dir.join("log");
        let call = test_call("t", &log, &[("node", "2"), ("port", "7")]);
        let out = run_agent(&call.agent, &call.args, Action::Off, 2, Some(99), T)
            .await
            .unwrap();
        assert_eq!(log_lines(&log), ["action=off node=2 fail_time=99 port=7"]);
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
        assert!(out.pid > 0 && !alive(out.pid));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn exit_1_is_a_failure_with_the_stderr_line() {
        let dir = scratch("exit1");
        let log = dir.join("log");
        let call = test_call("t", &log, &[("fail", "1")]);
        let err = run_agent(&call.agent, &call.args, Action::Off, 4, Some(1), T)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Fence { node: 4, .. }));
        assert_eq!(
            err.to_string(),
            format!("fencing node 4: agent {FENCE_TEST} exited 1: fence_test: failing as asked (fail=1)")
        );
        let quiet = script(&dir, "fence_quiet", "exit 3");
        let err = run_agent(&quiet, &[], Action::Off, 4, Some(1), T)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("fencing node 4: agent {quiet} exited 3 (no output)")
        );
        let loud = script(
            &dir,
            "fence_loud",
            "echo 'Failed: Unable to connect'; echo; exit 1",
        );
        let err = run_agent(&loud, &[], Action::Off, 4, Some(1), T)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("fencing node 4: agent {loud} exited 1: Failed: Unable to connect")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn death_by_signal_is_a_failure() {
        let dir = scratch("signal");
        let agent = script(&dir, "fence_die", "echo dying >&2; kill -9 $$");
        let err = run_agent(&agent, &[], Action::Off, 1, Some(1), T)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("fencing node 1: agent {agent} killed by signal 9: dying")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn status_exit_2_means_off() {
        let dir = scratch("status");
        let pidfile = dir.join("node.pid");
        std::fs::write(&pidfile, format!("{}\n", std::process::id())).unwrap();
        let on = args(&[("pidfile", pidfile.to_str().unwrap())]);
        let out = run_agent(FENCE_TEST, &on, Action::Status, 1, None, T)
            .await
            .unwrap();
        assert_eq!(out.power, Some(Power::On));
        assert_eq!(out.stdout, ["Status: ON"]);
        std::fs::write(&pidfile, "999999999\n").unwrap();
        let out = run_agent(FENCE_TEST, &on, Action::Status, 1, None, T)
            .await
            .unwrap();
        assert_eq!(out.power, Some(Power::Off));
        assert_eq!(out.stdout, ["Status: OFF"]);
        // Exit 2 is an answer only for status and monitor.
        let two = script(&dir, "fence_two", "exit 2");
        let err = run_agent(&two, &[], Action::Off, 1, Some(1), T)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("fencing node 1: agent {two} exited 2 (no output)")
        );
        assert_eq!(
            run_agent(&two, &[], Action::Monitor, 1, None, T)
                .await
                .unwrap()
                .power,
            Some(Power::Off)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_hanging_agent_is_killed_with_its_children_and_reaped() {
        let dir = scratch("hang");
        let (agent_pid, sleep_pid) = (dir.join("agent.pid"), dir.join("sleep.pid"));
        let body = format!(
            "echo $$ > {}\nsleep 60 &\necho $! > {}\nwait",
            agent_pid.display(),
            sleep_pid.display()
        );
        let agent = script(&dir, "fence_hang", &body);
        let started = Instant::now();
        let err = run_agent(
            &agent,
            &[],
            Action::Off,
            5,
            Some(1),
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("fencing node 5: agent {agent} timed out after 500 ms, killed")
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let (agent_pid, sleep_pid) = (read_pid(&agent_pid), read_pid(&sleep_pid));
        // Reaped by us: not even a zombie is left.
        assert!(
            !Path::new(&format!("/proc/{agent_pid}")).exists(),
            "agent {agent_pid} left behind"
        );
        // Its child got the group's SIGKILL (it dies when next scheduled; init reaps it).
        assert!(dies_soon(sleep_pid).await, "sleep {sleep_pid} left running");

        // fence_test's own sleep= hangs the same way.
        let call = test_call("t", &dir.join("log"), &[("sleep", "60")]);
        let err = run_agent(
            &call.agent,
            &call.args,
            Action::Off,
            5,
            Some(1),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().ends_with("timed out after 1 s, killed"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn dropping_a_run_kills_the_agent_and_its_children() {
        let dir = scratch("drop");
        let (agent_pid, sleep_pid) = (dir.join("agent.pid"), dir.join("sleep.pid"));
        let body = format!(
            "echo $$ > {}\nsleep 60 &\necho $! > {}\nwait",
            agent_pid.display(),
            sleep_pid.display()
        );
        let agent = script(&dir, "fence_hang", &body);
        let run = run_agent(
            &agent,
            &[],
            Action::Off,
            5,
            Some(1),
            Duration::from_secs(60),
        );
        // The daemon drops the run when the victim rejoins cleanly (dlm.md 2.5).
        assert!(tokio::time::timeout(Duration::from_millis(300), run)
            .await
            .is_err());
        let (agent_pid, sleep_pid) = (read_pid(&agent_pid), read_pid(&sleep_pid));
        assert!(
            dies_soon(agent_pid).await,
            "agent {agent_pid} survived the dropped run"
        );
        assert!(
            dies_soon(sleep_pid).await,
            "its child {sleep_pid} survived the dropped run"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn an_agent_not_on_path_is_a_failure() {
        let err = run_agent("fence_hydra_no_such_agent", &[], Action::Off, 1, Some(1), T)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "fencing node 1: agent fence_hydra_no_such_agent not found on PATH"
        );
    }

    #[tokio::test]
    async fn a_failing_device_falls_back_to_the_next_priority() {
        let dir = scratch("fallback");
        let log = dir.join("log");
        let plan = FencePlan {
            steps: vec![
                vec![test_call("ipmi", &log, &[("dev", "ipmi"), ("fail", "1")])],
                vec![test_call("switch", &log, &[("dev", "switch")])],
            ],
            is_default: false,
        };
        let fenced = fence_node(&plan, 3, 1234, T).await.unwrap();
        assert_eq!(
            (fenced.step, fenced.devices.clone()),
            (1, vec!["switch".to_string()])
        );
        assert_eq!(fenced.outcomes.len(), 1);
        assert_eq!(
            log_lines(&log),
            [
                "action=off node=3 fail_time=1234 dev=ipmi fail=1",
                "action=off node=3 fail_time=1234 dev=switch"
            ]
        );

        // Every device failing: the last failure, naming its device.
        let plan = FencePlan {
            steps: vec![
                vec![test_call("a", &log, &[("fail", "1")])],
                vec![AgentCall {
                    device: "b".into(),
                    agent: "fence_hydra_no_such_agent".into(),
                    args: vec![],
                }],
            ],
            is_default: false,
        };
        let err = fence_node(&plan, 3, 1234, T).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "fencing node 3: device b: agent fence_hydra_no_such_agent not found on PATH"
        );
        let empty = FencePlan {
            steps: vec![],
            is_default: false,
        };
        let err = fence_node(&empty, 3, 1, T).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "fencing node 3: no fence device configured"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn parallel_devices_must_all_succeed() {
        let dir = scratch("parallel");
        let log = dir.join("log");
        let both = FencePlan {
            steps: vec![vec![
                test_call("pdu:1", &log, &[("dev", "pdu1"), ("sleep", "1")]),
                test_call("pdu:2", &log, &[("dev", "pdu2"), ("sleep", "1")]),
            ]],
            is_default: false,
        };
        let started = Instant::now();
        let fenced = fence_node(&both, 2, 7, T).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(1900),
            "not in parallel: {:?}",
            started.elapsed()
        );
        assert_eq!(
            (fenced.step, fenced.devices.clone()),
            (0, vec!["pdu:1".to_string(), "pdu:2".to_string()])
        );
        assert_eq!(fenced.outcomes.len(), 2);

        std::fs::remove_file(&log).unwrap();
        let one_fails = FencePlan {
            steps: vec![
                vec![
                    test_call("pdu:1", &log, &[("dev", "pdu1")]),
                    test_call("pdu:2", &log, &[("dev", "pdu2"), ("fail", "1")]),
                ],
                vec![test_call("scsi", &log, &[("dev", "scsi")])],
            ],
            is_default: false,
        };
        let fenced = fence_node(&one_fails, 2, 7, T).await.unwrap();
        assert_eq!(
            (fenced.step, fenced.devices.clone()),
            (1, vec!["scsi".to_string()])
        );
        let mut lines = log_lines(&log);
        lines[..2].sort();
        assert_eq!(
            lines,
            [
                "action=off node=2 fail_time=7 dev=pdu1",
                "action=off node=2 fail_time=7 dev=pdu2 fail=1",
                "action=off node=2 fail_time=7 dev=scsi"
            ]
        );
        let only_parallel = FencePlan {
            steps: one_fails.steps[..1].to_vec(),
            is_default: false,
        };
        let err = fence_node(&only_parallel, 2, 7, T).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("fencing node 2: device pdu:2: agent {FENCE_TEST} exited 1: fence_test: failing as asked (fail=1)")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn fencing_kills_the_victim_through_its_pidfile() {
        let dir = scratch("victim");
        let mut victim = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pidfile = dir.join("node2.pid");
        std::fs::write(&pidfile, format!("{}\n", victim.id())).unwrap();
        let cfg = crate::config::Config::parse(
            Path::new("dlm.conf"),
            &format!(
                "device t {FENCE_TEST} log={}\nconnect t node=2 pidfile={}\n",
                dir.join("log").display(),
                pidfile.display()
            ),
        )
        .unwrap();
        let fenced = fence_node(&cfg.fence_plan(2), 2, 42, T).await.unwrap();
        assert_eq!(fenced.outcomes[0].stdout, ["Success: Powered OFF"]);
        assert_eq!(victim.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert_eq!(
            log_lines(&dir.join("log")),
            [format!(
                "action=off node=2 fail_time=42 pidfile={}",
                pidfile.display()
            )]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn unfencing_runs_action_on_for_this_node() {
        let dir = scratch("unfence");
        let log = dir.join("log");
        let text = format!(
            "device a {FENCE_TEST} log={l} dev=a\nconnect a node=3\nunfence a\n\n\
             device b {FENCE_TEST} log={l} dev=b\nconnect b node=3\nunfence b\n",
            l = log.display()
        );
        let cfg = crate::config::Config::parse(Path::new("dlm.conf"), &text).unwrap();
        let outcomes = unfence(&cfg.unfence_plan(3), 3, T).await.unwrap();
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes.iter().all(|o| o.action == Action::On));
        assert_eq!(
            log_lines(&log),
            [
                "action=on node=3 fail_time= dev=a",
                "action=on node=3 fail_time= dev=b"
            ]
        );

        let failing = vec![
            test_call("a", &log, &[("fail", "1")]),
            test_call("b", &log, &[]),
        ];
        let err = unfence(&failing, 3, T).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("fencing node 3: unfencing with device a: agent {FENCE_TEST} exited 1: fence_test: failing as asked (fail=1)")
        );
        assert_eq!(log_lines(&log).len(), 3, "stops at the first failure");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
