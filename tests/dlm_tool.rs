//! `hydra dlm_tool` as an administrator runs it, against a real `hydra dlm_controld` on
//! one corosync node (a network namespace): join/ls/lockdump/leave with dlm_tool's
//! output, `lock -- COMMAND` holding the lock for exactly the command's life (a second
//! `lock -n` is refused while it runs, `-t` gives up, a plain `lock` waits and then runs),
//! the command's exit status passed through, and a short `bench` that reports pairs.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::dlm::{DlmDaemon, LIMIT};
use common::{hydra, run, text};

fn tool(run_dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(hydra());
    c.arg("dlm_tool").arg("--run-dir").arg(run_dir).args(args);
    c
}

fn ok(run_dir: &Path, args: &[&str]) -> String {
    let out = run(&mut tool(run_dir, args), LIMIT);
    assert!(out.status.success(), "dlm_tool {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

#[test]
fn admin_commands_and_flock_style_locking() {
    let cluster = Cluster::start(1);
    let conf = cluster.dir(1).join("dlm.conf");
    std::fs::write(&conf, "# one node\n").unwrap();
    let d = DlmDaemon::start(&cluster, 1, &conf);
    let rd = d.run_dir().to_path_buf();

    assert_eq!(
        ok(&rd, &["join", "web"]),
        "Joining lockspace \"web\"\ndone\n"
    );
    let ls = ok(&rd, &["ls"]);
    assert!(ls.contains("name          web\n"), "{ls}");

    // The command's status comes back; the lock is released after it.
    let out = run(
        &mut tool(&rd, &["lock", "web", "r", "--", "sh", "-c", "exit 3"]),
        LIMIT,
    );
    assert_eq!(status(&out), 3, "{}", text(&out));
    let out = run(
        &mut tool(&rd, &["lock", "web", "r", "--", "/nonexistent/cmd"]),
        LIMIT,
    );
    assert_eq!(status(&out), 127, "{}", text(&out));

    // A holder that runs until its marker file is removed.
    let marker = cluster.dir(1).join("holding");
    std::fs::write(&marker, "").unwrap();
    let script = format!("while [ -e {} ]; do sleep 0.05; done", marker.display());
    let mut holder = tool(
        &rd,
        &["lock", "-m", "EX", "web", "r", "--", "sh", "-c", &script],
    )
    .stdin(Stdio::null())
    .spawn()
    .unwrap();
    let start = Instant::now();
    while !ok(&rd, &["lockdump", "web"]).contains(" gr EX ") {
        assert!(start.elapsed() < LIMIT, "the holder never got EX");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = run(
        &mut tool(&rd, &["lock", "-n", "web", "r", "--", "true"]),
        LIMIT,
    );
    assert_eq!(status(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("EX on \"r\" in \"web\" is not free"),
        "{}",
        text(&out)
    );
    let out = run(
        &mut tool(
            &rd,
            &["lock", "-m", "pr", "-t", "0.3", "web", "r", "--", "true"],
        ),
        LIMIT,
    );
    assert_eq!(status(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("not granted within 0.3 s"),
        "{}",
        text(&out)
    );
    // A waiter: granted once the holder's command ends, not before.
    let done = cluster.dir(1).join("waiter-ran");
    let mut waiter = tool(
        &rd,
        &["lock", "web", "r", "--", "touch", done.to_str().unwrap()],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(!done.exists(), "the waiter ran while the holder held EX");
    std::fs::remove_file(&marker).unwrap();
    assert!(holder.wait().unwrap().success());
    assert!(waiter.wait().unwrap().success());
    assert!(done.exists());
    assert_eq!(ok(&rd, &["lockdump", "web"]), "", "every lock released");

    // A short benchmark reports what it did: a connection per client, three clients
    // sharing two connections, and the socket ceiling.
    let count = |line: &str, word: &str| -> u64 {
        line.split_whitespace()
            .skip_while(|w| *w != word)
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {word} in {line}"))
    };
    for (args, head) in [
        (&["-c", "2"][..], "clients 2 connections 2 mode EX "),
        (
            &["-c", "3", "--connections", "2"][..],
            "clients 3 connections 2 mode EX ",
        ),
    ] {
        let mut argv = vec!["bench"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["-d", "0.3", "web"]);
        let b = ok(&rd, &argv);
        assert!(count(&b, "pairs") > 0 && b.starts_with(head), "{b}");
    }
    let b = ok(&rd, &["bench", "--socket-ceiling", "-c", "3", "-d", "0.2"]);
    assert!(
        count(&b, "round_trips") > 0 && b.starts_with("socket_ceiling clients 3 "),
        "{b}"
    );

    assert_eq!(
        ok(&rd, &["leave", "web"]),
        "Leaving lockspace \"web\"\ndone\n"
    );
    assert!(!ok(&rd, &["ls"]).contains("web"));
    drop(d);
}

/// Without a daemon, every command says where it looked.
#[test]
fn no_daemon_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut tool(dir.path(), &["ls"]), LIMIT);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("hydra-dlm.sock"), "{said}");
    assert!(said.contains("is hydra dlm_controld running"), "{said}");
}
