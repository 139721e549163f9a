//! A `bsoflags direct` LUN through hydra tgtd: its reads and writes are done on the
//! shard's blocking pool, never on the connection's thread (RWF_NOWAIT does not keep an
//! O_DIRECT read off the device, so an inline try would wait for the disk with the network
//! stalled), and the data is right both ways.

mod common;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::client::Session;
use common::*;

const IQN: &str = "iqn.2026-11.org.hydra:direct";

/// Threads of the blocking pools (tokio names them after the shard: `hydra-io-N`).
fn io_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.starts_with("hydra-io"))
        .count()
}

fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let l = lba.to_be_bytes();
    let b = blocks.to_be_bytes();
    [op, 0, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn direct_lun_io_runs_on_the_blocking_pool() {
    // Not in the default temporary directory: tmpfs refuses O_DIRECT before Linux 6.6.
    let store = tempfile::tempdir_in("/var/tmp").unwrap();
    let img = store.path().join("direct.img");
    {
        let mut f = std::fs::File::create(&img).unwrap();
        f.write_all(&pattern(1, 1 << 20)).unwrap();
        f.sync_all().unwrap();
    }
    let conf = format!(
        "<target {IQN}>\n    <backing-store {}>\n        bsoflags direct\n    </backing-store>\n</target>\n",
        img.display()
    );
    let h = Hydra::start(&conf, |_: &Path| {});
    let pid = h.child.id();
    let mut s = Session::login(
        h.port,
        IQN,
        "iqn.2026-11.org.hydra:direct-client",
        [0x40, 0, 0, 0, 0, 7],
    )
    .unwrap();
    assert_eq!(io_threads(pid), 0, "nothing has blocked yet");

    // READ(10) of 4 KiB at LBA 8: the file's bytes, read by a blocking-pool thread.
    let r = s.command_past_ua(1, &rw10(0x28, 8, 8), &[], 4096).unwrap();
    assert_eq!(r.status, 0, "sense {:?}", r.sense_triplet());
    assert_eq!(r.data, pattern(1, 1 << 20)[4096..8192]);
    assert!(
        io_threads(pid) >= 1,
        "the O_DIRECT read was served on the connection's thread"
    );

    // WRITE(10) of 3 blocks at LBA 21 (not 4 KiB-aligned in the file), then read back
    // over iSCSI and from the file itself.
    let new = pattern(9, 1536);
    let w = s.command(1, &rw10(0x2a, 21, 3), &new, 0).unwrap();
    assert_eq!(w.status, 0, "sense {:?}", w.sense_triplet());
    let r = s.command(1, &rw10(0x28, 16, 16), &[], 8192).unwrap();
    assert_eq!(r.status, 0, "sense {:?}", r.sense_triplet());
    let mut want = pattern(1, 1 << 20)[8192..16384].to_vec();
    want[2560..4096].copy_from_slice(&new);
    assert_eq!(r.data, want);
    let mut on_disk = vec![0u8; 8192];
    std::fs::File::open(&img)
        .unwrap()
        .read_exact_at(&mut on_disk, 8192)
        .unwrap();
    assert_eq!(on_disk, want);

    s.logout().unwrap();
    assert!(
        !h.log().contains("ERROR"),
        "hydra tgtd logged an error:\n{}",
        h.log()
    );
}
