//! `hydra`: one binary, one subcommand per classic tool. Invoked through a symlink named
//! after a tool (`tgtd -> hydra`), it behaves as that tool. This file and `cli/` only
//! parse arguments and call the libraries.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    let argv0 = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    let tool = if cli::TOOLS.contains(&argv0.as_str()) {
        args.remove(0);
        argv0
    } else {
        args.remove(0);
        match args.first() {
            Some(t) if cli::TOOLS.contains(&t.as_str()) => args.remove(0),
            Some(h) if h == "-h" || h == "--help" || h == "help" => {
                println!("{}", cli::USAGE);
                return ExitCode::SUCCESS;
            }
            Some(other) => {
                eprintln!("hydra: unknown command '{other}'\n\n{}", cli::USAGE);
                return ExitCode::from(2);
            }
            None => {
                eprintln!("{}", cli::USAGE);
                return ExitCode::from(2);
            }
        }
    };
    cli::run(&tool, args)
}
