//! `hydra iscsi-perf [-i NAME] [-m IN_FLIGHT] [-b BLOCKS] [-t SECS] [-r] [-w] URL` — a
//! drop-in for libiscsi's iscsi-perf driving hydra's initiator library: keeps `-m`
//! commands of `-b` blocks in flight for `-t` seconds (sequential, or random with `-r`;
//! reads, or writes with `-w`), prints one progress line per second and, last, `iops
//! average N (M MB/s)` as iscsi-perf does. `--verify` (with `-w`) reads every write back
//! and compares it.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hydra_initiator::login::{Chap, LoginConfig};
use hydra_initiator::url::IscsiUrl;
use hydra_initiator::Session;
use hydra_proto::negotiate::LocalParams;

use super::args::{parse, Spec};

const SPECS: &[Spec] = &[
    Spec {
        short: 'i',
        long: "initiator-name",
        value: true,
    },
    Spec {
        short: 'm',
        long: "max",
        value: true,
    },
    Spec {
        short: 'b',
        long: "blocks",
        value: true,
    },
    Spec {
        short: 't',
        long: "timeout",
        value: true,
    },
    Spec {
        short: 'r',
        long: "random",
        value: false,
    },
    Spec {
        short: 'w',
        long: "write",
        value: false,
    },
    Spec {
        short: ' ',
        long: "verify",
        value: false,
    },
    Spec {
        short: 'h',
        long: "help",
        value: false,
    },
];

const HELP: &str = "usage: hydra iscsi-perf [-i INITIATOR-NAME] [-m IN-FLIGHT] [-b BLOCKS-PER-IO] [-t SECONDS] [-r] [-w [--verify]] iscsi://[user[%password]@]host[:port]/target-iqn/lun
  -m  commands in flight (default 32)      -b  blocks per command (default 8)
  -t  seconds to run (default 10)          -r  random LBAs (default sequential)
  -w  write instead of read (destroys the LUN's data)
  --verify  with -w: every block written carries its own LBA in a pattern and is read
            back and compared; a mismatch stops the run with an error";

/// The --verify pattern of the transfer at `lba`: each 8-byte word holds the LBA of its
/// block and its offset, so misplaced, stale or torn data is recognised.
fn pattern(lba: u64, blocks: u32, bs: u32) -> Bytes {
    let mut v = Vec::with_capacity((blocks * bs) as usize);
    for b in 0..blocks as u64 {
        for w in 0..(bs / 8) as u64 {
            v.extend_from_slice(&((lba + b) << 16 | w).to_le_bytes());
        }
    }
    Bytes::from(v)
}

/// MB/s as iscsi-perf counts them (MiB).
fn mib(ops: u64, bytes_per_op: u32) -> u64 {
    (ops * bytes_per_op as u64) >> 20
}

fn num<T: std::str::FromStr>(p: &super::args::Parsed, k: &str, default: T) -> Result<T, String> {
    match p.value(k) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{k} {v}: not a valid number")),
    }
}

pub fn main(args: Vec<String>) -> Result<ExitCode, String> {
    let p = parse(&args, SPECS)?;
    if p.has("help") {
        println!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let [url] = p.positional.as_slice() else {
        return Err(format!("one iSCSI URL is needed\n{HELP}"));
    };
    let job = Job {
        url: IscsiUrl::parse(url).map_err(|e| e.to_string())?,
        name: p
            .value("initiator-name")
            .unwrap_or("iqn.2026-11.org.hydra:iscsi-perf")
            .to_string(),
        in_flight: num(&p, "max", 32)?,
        blocks: num(&p, "blocks", 8)?,
        secs: num(&p, "timeout", 10)?,
        random: p.has("random"),
        write: p.has("write"),
        verify: p.has("verify"),
    };
    if job.in_flight == 0 || job.blocks == 0 {
        return Err("-m and -b must be at least 1".into());
    }
    if job.verify && !job.write {
        return Err("--verify checks what this run writes: use it with -w".into());
    }
    // Big read buffers come and go per command: keep them in the heap (see there).
    super::keep_io_buffers();
    super::block_on(run(job))
}

/// One run, as the options asked for it.
struct Job {
    url: IscsiUrl,
    name: String,
    in_flight: usize,
    blocks: u32,
    secs: u64,
    random: bool,
    write: bool,
    verify: bool,
}

async fn run(job: Job) -> Result<ExitCode, String> {
    let Job {
        url,
        name,
        in_flight,
        blocks,
        secs,
        random,
        write,
        verify,
    } = job;
    let mut isid = [0x40, 0, 0, 0, 0, 0];
    getrandom::getrandom(&mut isid[2..]).map_err(|e| e.to_string())?;
    let cfg = LoginConfig {
        initiator_name: name,
        target_name: Some(url.target.clone()),
        isid,
        tsih: 0,
        chap: url.user.clone().map(|user| Chap {
            user,
            secret: url.password.clone().unwrap_or_default(),
            mutual: None,
        }),
        params: LocalParams {
            // 1 MiB PDUs: a 1 MiB read arrives in one Data-In and is not copied.
            max_recv_data_segment_length: 1 << 20,
            // open-iscsi's value: the largest multiple of 512 below the 2^24-1 limit
            // of RFC 7143 §13.13 (16 MiB itself is out of range and gets Reject).
            max_burst_length: 16_776_192,
            first_burst_length: 262_144,
            ..LocalParams::default()
        },
    };
    let addr = url.addr().map_err(|e| e.to_string())?;
    let s = Arc::new(Session::login(addr, cfg).await.map_err(|e| e.to_string())?);
    let lun = url.lun;
    if let Err(f) = s.test_unit_ready(lun).await.map_err(|e| e.to_string())? {
        return Err(format!("LUN {lun} is not ready: {f:?}"));
    }
    let (capacity, bs) = s
        .read_capacity(lun)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|f| format!("READ CAPACITY failed: {f:?}"))?;
    if capacity < blocks as u64 {
        return Err(format!("the LUN has only {capacity} blocks"));
    }
    println!(
        "performing {} {} with {in_flight} parallel requests",
        if random { "RANDOM" } else { "SEQUENTIAL" },
        if write { "WRITE" } else { "READ" }
    );
    println!(
        "FIXED transfer size of {blocks} blocks ({} byte)",
        blocks * bs
    );
    println!("will run for {secs} seconds.\n");
    let done = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicBool::new(false));
    let miscompare = Arc::new(AtomicU64::new(u64::MAX));
    let payload = Bytes::from(vec![0xa5u8; (blocks * bs) as usize]);
    let slots = capacity / blocks as u64;
    let start = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|w| {
            let (s, done, next, stop, failed, payload, miscompare) = (
                s.clone(),
                done.clone(),
                next.clone(),
                stop.clone(),
                failed.clone(),
                payload.clone(),
                miscompare.clone(),
            );
            tokio::spawn(async move {
                let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (w as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    let slot = if random {
                        // xorshift64*: cheap, good enough to spread LBAs.
                        x ^= x >> 12;
                        x ^= x << 25;
                        x ^= x >> 27;
                        x.wrapping_mul(0x2545_f491_4f6c_dd1d) % slots
                    } else {
                        next.fetch_add(1, Ordering::Relaxed) % slots
                    };
                    let lba = slot * blocks as u64;
                    let ok = if write && verify {
                        let data = pattern(lba, blocks, bs);
                        let wrote = matches!(
                            s.write16(lun, lba, data.clone(), bs, false).await,
                            Ok(Ok(()))
                        );
                        match s.read16(lun, lba, blocks, bs).await {
                            Ok(Ok(back)) if wrote && back != data => {
                                miscompare.fetch_min(lba, Ordering::Relaxed);
                                false
                            }
                            Ok(Ok(_)) => wrote,
                            _ => false,
                        }
                    } else if write {
                        matches!(
                            s.write16(lun, lba, payload.clone(), bs, false).await,
                            Ok(Ok(()))
                        )
                    } else {
                        matches!(s.read16(lun, lba, blocks, bs).await, Ok(Ok(_)))
                    };
                    if !ok {
                        failed.store(true, Ordering::Relaxed);
                        stop.store(true, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut last = 0;
    for second in 1..=secs {
        tokio::time::sleep_until((start + Duration::from_secs(second)).into()).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = done.load(Ordering::Relaxed);
        let iops = now - last;
        last = now;
        let avg = now / second;
        println!(
            "{:02}:{:02}:{:02} - iops current {iops} ({} MB/s), iops average {avg} ({} MB/s)",
            (secs - second) / 3600,
            (secs - second) / 60 % 60,
            (secs - second) % 60,
            mib(iops, blocks * bs),
            mib(avg, blocks * bs),
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let total = done.load(Ordering::Relaxed);
    let iops = (total as f64 / elapsed) as u64;
    let bad = miscompare.load(Ordering::Relaxed);
    if bad != u64::MAX {
        return Err(format!(
            "verify failed: the {blocks} blocks at LBA {bad} read back differ from what was written"
        ));
    }
    if failed.load(Ordering::Relaxed) {
        return Err("a command failed; stopping".into());
    }
    println!("iops average {iops} ({} MB/s)", mib(iops, blocks * bs));
    if let Ok(s) = Arc::try_unwrap(s) {
        let _ = s.logout().await;
    }
    Ok(ExitCode::SUCCESS)
}
