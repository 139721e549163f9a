//! A connection the initiator resets (it gave up on it: a NOP-Out unanswered, a path
//! declared dead) must not have its commands run afterwards. The multipath layer sends
//! them again on another path at once, and newer writes to the same blocks may follow;
//! a stale WRITE the target read out of the dead connection's receive buffer later would
//! land over them. The fault run lost a record this way (seed 31, round 6: a 1 s cut of
//! both of node 2's paths; the target wrote a response on the reset connection 57 ms
//! after the RST, and one block went back to its older contents).
//!
//! Deterministic here: hydra tgtd is stopped (SIGSTOP) while a WRITE reaches its socket
//! and the initiator resets the connection, so the WRITE and the RST wait in the
//! target's receive queue together; the block is then written with newer data, as
//! through another path; the target continues (SIGCONT) and must drop the WRITE.

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::client::Session;
use common::*;

const IQN: &str = "iqn.2026-12.org.hydra:reset";

fn write10(lba: u32, blocks: u16) -> [u8; 10] {
    let l = lba.to_be_bytes();
    let b = blocks.to_be_bytes();
    [0x2a, 0, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
}

/// SIGCONT on drop, so that a failing test never leaves the target stopped.
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        signal(pid, "STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

#[test]
fn a_reset_connections_write_never_runs_after_the_reset() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/lun.img\n</target>\n");
    let h = Hydra::start(&conf, |d: &Path| sparse(&d.join("lun.img"), 16 << 20));
    let img = h.dir.path().join("lun.img");
    let pid = h.child.id();
    let mut s = Session::login(
        h.port,
        IQN,
        "iqn.2026-12.org.hydra:reset-client",
        [0x40, 0, 0, 0, 0, 9],
    )
    .unwrap();
    // The session works: a first WRITE of block 8 lands.
    let first = vec![0x11u8; 512];
    let w = s.command_past_ua(1, &write10(8, 1), &first, 0).unwrap();
    assert_eq!(w.status, 0, "sense {:?}", w.sense_triplet());
    let file = std::fs::File::open(&img).unwrap();
    let mut block = vec![0u8; 512];
    file.read_exact_at(&mut block, 8 * 512).unwrap();
    assert_eq!(block, first);

    // The target stopped: the stale WRITE and the RST reach its socket, unread.
    let stopped = Stopped::new(pid);
    let stale = vec![0x5au8; 512];
    let answered = s.send_then_reset(1, &write10(8, 1), &stale, Duration::from_millis(300));
    assert!(!answered, "a stopped target answered");
    // Newer data in the block, as written through another path meanwhile.
    let newer = vec![0xc3u8; 512];
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .write_all_at(&newer, 8 * 512)
        .unwrap();
    drop(stopped);

    // The target notices the reset connection and ends it (its log says so); the block
    // keeps the newer data, however long we look.
    let t = Instant::now();
    let log = h.dir.path().join("tgtd.log");
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("connection reset") || text.contains("reset by peer") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the target did not end the reset connection:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    file.read_exact_at(&mut block, 8 * 512).unwrap();
    assert!(
        block == newer,
        "the reset connection's WRITE ran after the reset, over newer data (the block \
         holds {:#04x}s, the newer data is {:#04x}s)",
        block[0],
        newer[0]
    );
}
