//! Argument parsing for each classic tool hydra stands in for.

mod args;
mod daemonize;
mod tgt_admin;
mod tgtadm;
mod tgtd;

use std::process::ExitCode;

/// The tool names hydra answers to (as subcommands and as argv[0]).
pub const TOOLS: &[&str] = &["tgtd", "tgtadm", "tgt-admin"];

pub const USAGE: &str = "usage: hydra <command> [options]

commands (each also runs when hydra is invoked through a symlink of that name):
  tgtd       the iSCSI target daemon (tgtd's options)
  tgtadm     runtime target administration over the control socket (tgtadm's options)
  tgt-admin  apply /etc/tgt/targets.conf to a running daemon (tgt-admin's options)

run 'hydra <command> --help' for a command's options";

/// Run one tool with its arguments (argv[0] already removed).
pub fn run(tool: &str, args: Vec<String>) -> ExitCode {
    let r = match tool {
        "tgtd" => tgtd::main(args),
        "tgtadm" => tgtadm::main(args),
        "tgt-admin" => tgt_admin::main(args),
        _ => unreachable!("TOOLS lists every tool"),
    };
    match r {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("{tool}: {msg}");
            ExitCode::from(22) // tgtadm exits with errno values; EINVAL for usage errors
        }
    }
}

/// A current-thread runtime for the short-lived admin tools.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Log to stderr, level from RUST_LOG (default info).
pub fn init_logging(foreground: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(foreground)
        .init();
}
