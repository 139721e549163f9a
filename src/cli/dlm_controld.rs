//! `hydra dlm_controld` (being written).

use std::process::ExitCode;

pub fn main(_args: Vec<String>) -> Result<ExitCode, String> {
    Err("not built yet".into())
}
