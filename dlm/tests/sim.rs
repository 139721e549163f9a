//! Deterministic simulation of the lock manager (see dlm/src/sim.rs): many seeds, each a
//! cluster of cores with random clients, partitions, crashes, restarts and fencing.
//! `HYDRA_SIM_SEEDS=N` sets how many seeds (default 1000), `HYDRA_SIM_SEED=S` replays one.

use hydra_dlm_core::sim::{Params, Sim};

fn run(seed: u64, params: Params) {
    let mut sim = Sim::new(seed, params);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            panic!("{e}\nreplay: HYDRA_SIM_SEED={seed} cargo test -p hydra-dlm --test sim")
        }
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            // A core panicked: show what led there too.
            let log = sim.tail_log();
            panic!("{msg}\n{log}\nreplay: HYDRA_SIM_SEED={seed} cargo test -p hydra-dlm --test sim")
        }
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("HYDRA_SIM_SEED") {
        return vec![s.parse().expect("HYDRA_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("HYDRA_SIM_SEEDS")
        .ok()
        .map(|s| s.parse().expect("HYDRA_SIM_SEEDS is a number"))
        .unwrap_or(1000);
    // Zero seeds would pass having checked nothing.
    assert!(n > 0, "HYDRA_SIM_SEEDS=0 runs no seed: give at least 1");
    (1..=n).collect()
}

#[test]
fn seeds_with_faults_keep_every_invariant() {
    for seed in seeds() {
        let nodes = 3 + (seed % 3) as u32;
        run(
            seed,
            Params {
                nodes,
                ..Params::default()
            },
        );
    }
}

#[test]
fn without_faults_every_lock_call_completes() {
    for seed in seeds() {
        run(
            seed,
            Params {
                faults: false,
                steps: 300,
                ..Params::default()
            },
        );
    }
}
