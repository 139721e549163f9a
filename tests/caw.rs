//! COMPARE AND WRITE under contention: eight sessions (distinct initiator ports) race a
//! COMPARE AND WRITE on the same block, round after round, against the real daemon.
//! Each round exactly one of them may win (the others get MISCOMPARE), and the block
//! afterwards is wholly the winner's data, never a mix.

mod common;

use std::sync::{Arc, Barrier, Mutex};

use common::client::Session;
use common::*;

const IQN: &str = "iqn.2026-11.org.hydra:caw";
const SESSIONS: usize = 8;
const ROUNDS: u32 = 40;
const BS: usize = 512;

/// The block after `round` was won by `who`: distinct in every byte position's mix, so a
/// block put together from two writes is recognisable.
fn pattern(round: u32, who: usize) -> Vec<u8> {
    (0..BS)
        .map(|i| (round as usize * 131 + who * 17 + i) as u8)
        .collect()
}

fn caw_cdb(lba: u64) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x89;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[13] = 1;
    c
}

#[test]
fn one_winner_per_round_and_no_torn_block() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n");
    let h = Hydra::start(&conf, |d| sparse(&d.join("a.img"), 16 << 20));
    let lba = 100u64;
    // Round 0 starts from a known block (written by the first session).
    let mut first = Session::login(
        h.port,
        IQN,
        "iqn.2026-11.org.hydra:caw-init",
        [0x40, 0, 0, 0, 0, 0],
    )
    .expect("login");
    let mut w = [0u8; 10];
    w[0] = 0x2a;
    w[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
    w[8] = 1;
    let r = first.command_past_ua(1, &w, &pattern(0, 0), 0).unwrap();
    assert_eq!(r.status, 0, "{r:?}");
    first.logout().unwrap();

    let start = Arc::new(Barrier::new(SESSIONS));
    let end = Arc::new(Barrier::new(SESSIONS));
    let winners: Arc<Mutex<Vec<Vec<usize>>>> =
        Arc::new(Mutex::new(vec![Vec::new(); ROUNDS as usize]));
    let threads: Vec<_> = (0..SESSIONS)
        .map(|me| {
            let (start, end, winners) = (start.clone(), end.clone(), winners.clone());
            let port = h.port;
            std::thread::spawn(move || {
                let name = format!("iqn.2026-11.org.hydra:caw-{me}");
                let mut s =
                    Session::login(port, IQN, &name, [0x40, 0, 0, 0, 1, me as u8]).expect("login");
                // Clear POWER ON / RESET first.
                s.command_past_ua(1, &[0, 0, 0, 0, 0, 0], &[], 0).unwrap();
                let mut prev_winner = 0;
                for round in 0..ROUNDS {
                    let mut data = pattern(round, prev_winner);
                    data.extend(pattern(round + 1, me));
                    start.wait();
                    let r = s.command(1, &caw_cdb(lba), &data, 0).unwrap();
                    match (r.status, r.sense_triplet()) {
                        (0, _) => winners.lock().unwrap()[round as usize].push(me),
                        (0x02, (0x0e, 0x1d, 0x00)) => {}
                        other => panic!("session {me} round {round}: unexpected {other:?}"),
                    }
                    end.wait();
                    let w = winners.lock().unwrap()[round as usize].clone();
                    assert_eq!(w.len(), 1, "round {round}: winners {w:?}");
                    prev_winner = w[0];
                    // Everyone has read the winner before the next round starts.
                    end.wait();
                }
                s.logout().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a racing session failed");
    }
    let winners = winners.lock().unwrap().clone();
    assert!(winners.iter().all(|w| w.len() == 1), "{winners:?}");

    // The block is exactly the last winner's data.
    let mut s = Session::login(
        h.port,
        IQN,
        "iqn.2026-11.org.hydra:caw-check",
        [0x40, 0, 0, 0, 2, 0],
    )
    .unwrap();
    let mut rd = [0u8; 10];
    rd[0] = 0x28;
    rd[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
    rd[8] = 1;
    let r = s.command_past_ua(1, &rd, &[], BS as u32).unwrap();
    assert_eq!(r.status, 0);
    let last = winners.last().unwrap()[0];
    assert_eq!(r.data, pattern(ROUNDS, last));
    // Different winners over the rounds: the race is real, not serialised by login order
    // (one session winning all 40 rounds of an 8-way race would mean the others never
    // got their command in first: the test would not be testing a race).
    let distinct: std::collections::BTreeSet<_> = winners.iter().map(|w| w[0]).collect();
    println!("winners over {ROUNDS} rounds: {distinct:?}");
    assert!(
        distinct.len() > 1,
        "one session won every round ({distinct:?}): the sessions did not race"
    );
    s.logout().unwrap();
}
