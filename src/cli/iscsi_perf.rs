//! `hydra iscsi-perf [-i NAME] [-m IN_FLIGHT] [-b BLOCKS] [-t SECS] [-r] [-w [--fua]]
//! [--verify] [--fill] [--mrdsl BYTES] [--max-burst BYTES] URL` — a drop-in for libiscsi's
//! iscsi-perf driving hydra's initiator library: keeps `-m` commands of `-b` blocks in
//! flight for `-t` seconds (sequential, or random with `-r`; reads, or writes with `-w`),
//! prints one progress line per second and, last, `iops average N (M MB/s)` as iscsi-perf
//! does.
//!
//! It does the work libiscsi's iscsi-perf (utils/iscsi-perf.c) does, so that the two can be
//! compared: the same LBAs (sequential from 0, wrapping at the end; random is any block,
//! not aligned to the transfer size; the transfer at the end of the LUN is cut short), the
//! same login offer (libiscsi's lib/init.c: MaxRecvDataSegmentLength, MaxBurstLength and
//! FirstBurstLength 256 KiB, InitialR2T=No, ImmediateData=Yes, HeaderDigest None,CRC32C), and the same average: commands completed when the time is up,
//! divided by the time (the ones still in flight then are drained, not counted).
//!
//! `--verify` checks data: every block carries its own LBA (see [`stamp`]). With `-w` each
//! write is read back and compared; without, every block read must carry its stamp (the LUN
//! was filled by `--fill` or by an earlier `-w --verify` over all of it). A mismatch names
//! the first wrong block's LBA and fails the run.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
        long: "fua",
        value: false,
    },
    Spec {
        short: ' ',
        long: "verify",
        value: false,
    },
    Spec {
        short: ' ',
        long: "fill",
        value: false,
    },
    Spec {
        short: ' ',
        long: "mrdsl",
        value: true,
    },
    Spec {
        short: ' ',
        long: "max-burst",
        value: true,
    },
    Spec {
        short: 'h',
        long: "help",
        value: false,
    },
];

const HELP: &str = "usage: hydra iscsi-perf [-i INITIATOR-NAME] [-m IN-FLIGHT] [-b BLOCKS-PER-IO] [-t SECONDS] [-r] [-w [--fua]] [--verify] [--fill] [--mrdsl BYTES] [--max-burst BYTES] iscsi://[user[%password]@]host[:port]/target-iqn/lun
  -m  commands in flight (default 32)      -b  blocks per command (default 8)
  -t  seconds to run (default 10)          -r  random LBAs (any block, as libiscsi's iscsi-perf)
  -w  write instead of read (destroys the LUN's data)
  --fua     with -w: set FUA on every write (the target makes each one durable)
  --verify  every block carries its own LBA: with -w each write is read back and compared;
            without -w every block read must carry its LBA (fill the LUN first, --fill);
            a mismatch stops the run with an error naming the LBA
  --fill    before the run, write the --verify pattern over the whole LUN (destroys its data)
  --mrdsl   MaxRecvDataSegmentLength offered (default 262144, libiscsi's)
  --max-burst  MaxBurstLength offered (default 262144, libiscsi's)";

/// The --verify pattern of `blocks` blocks from `lba`: each 8-byte word holds the LBA of
/// its block shifted left 16 bits, plus the word's index in the block (little endian), so
/// misplaced, stale or torn data is recognised.
fn stamp(lba: u64, blocks: u32, bs: u32) -> Bytes {
    let mut v = Vec::with_capacity((blocks * bs) as usize);
    for b in 0..blocks as u64 {
        for w in 0..(bs / 8) as u64 {
            v.extend_from_slice(&((lba + b) << 16 | w).to_le_bytes());
        }
    }
    Bytes::from(v)
}

/// The LBA of the first block of `data` (read from `lba`) that does not carry its stamp.
fn first_wrong_block(lba: u64, data: &[u8], bs: u32) -> Option<u64> {
    data.chunks(bs as usize)
        .zip(lba..)
        .find(|(block, at)| *block != stamp(*at, 1, bs).as_ref())
        .map(|(_, at)| at)
}

/// MB/s as iscsi-perf counts them (MiB of the nominal transfer size).
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
        fua: p.has("fua"),
        verify: p.has("verify"),
        fill: p.has("fill"),
        mrdsl: num(&p, "mrdsl", LIBISCSI_OFFER)?,
        max_burst: num(&p, "max-burst", LIBISCSI_OFFER)?,
    };
    if job.in_flight == 0 || job.blocks == 0 {
        return Err("-m and -b must be at least 1".into());
    }
    if job.fua && !job.write {
        return Err("--fua is a write flag: use it with -w".into());
    }
    // RFC 7143 §13.12, §13.13: both are 512 to 2^24 - 1.
    for (k, v) in [("mrdsl", job.mrdsl), ("max-burst", job.max_burst)] {
        if !(512..=16_777_215).contains(&v) {
            return Err(format!("--{k} {v}: out of RFC 7143's range 512..16777215"));
        }
    }
    // Big read buffers come and go per command: keep them in the heap (see there).
    super::keep_io_buffers();
    super::block_on(run(job))
}

/// What libiscsi offers for MaxRecvDataSegmentLength, MaxBurstLength and FirstBurstLength
/// (lib/init.c, iscsi_create_context), and so what this tool offers unless asked.
const LIBISCSI_OFFER: u32 = 262_144;

/// One run, as the options asked for it.
struct Job {
    url: IscsiUrl,
    name: String,
    in_flight: usize,
    blocks: u32,
    secs: u64,
    random: bool,
    write: bool,
    fua: bool,
    verify: bool,
    fill: bool,
    mrdsl: u32,
    max_burst: u32,
}

/// What every worker shares.
struct Shared {
    s: Session,
    lun: u64,
    capacity: u64,
    bs: u32,
    blocks: u32,
    write: bool,
    fua: bool,
    verify: bool,
    /// Commands started (sequential runs take their LBA from it).
    next: AtomicU64,
    /// Commands completed.
    done: AtomicU64,
    stop: AtomicBool,
    /// The first failure, which ends the run.
    failure: Mutex<Option<String>>,
}

impl Shared {
    /// Transfers per pass over the LUN (the last one may be short).
    fn per_pass(&self) -> u64 {
        self.capacity.div_ceil(self.blocks as u64)
    }

    /// The `k`-th sequential transfer: from block 0 up, wrapping at the end.
    fn sequential(&self, k: u64) -> (u64, u32) {
        self.at((k % self.per_pass()) * self.blocks as u64)
    }

    /// The transfer from `lba`, cut short at the end of the LUN as libiscsi's is.
    fn at(&self, lba: u64) -> (u64, u32) {
        (lba, (self.capacity - lba).min(self.blocks as u64) as u32)
    }

    fn fail(&self, why: String) {
        self.failure.lock().unwrap().get_or_insert(why);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// One command of the run: a write (stamped with --verify, then read back) or a read.
    async fn one(&self, lba: u64, n: u32) -> Result<(), String> {
        if self.write {
            let data = if self.verify {
                stamp(lba, n, self.bs)
            } else {
                Bytes::from(vec![0xa5u8; (n * self.bs) as usize])
            };
            self.write(lba, n, data).await?;
            if !self.verify {
                return Ok(());
            }
        }
        let back = self
            .s
            .read16(self.lun, lba, n, self.bs)
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|f| format!("{f:?}")))
            .map_err(|e| format!("READ(16) of {n} blocks at LBA {lba}: {e}"))?;
        match self
            .verify
            .then(|| first_wrong_block(lba, &back, self.bs))
            .flatten()
        {
            Some(bad) => Err(format!(
                "verify failed: the block at LBA {bad} does not hold its LBA stamp{}",
                if self.write {
                    " right after it was written"
                } else {
                    " (was the LUN filled with --fill?)"
                }
            )),
            None => Ok(()),
        }
    }

    async fn write(&self, lba: u64, n: u32, data: Bytes) -> Result<(), String> {
        self.s
            .write16(self.lun, lba, data, self.bs, self.fua)
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|f| format!("{f:?}")))
            .map_err(|e| format!("WRITE(16) of {n} blocks at LBA {lba}: {e}"))
    }
}

/// Keeps one command in flight until the run stops: random LBAs from its own generator,
/// sequential ones from the shared counter.
async fn worker(w: Arc<Shared>, seed: u64, random: bool) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed;
    while !w.stop.load(Ordering::Relaxed) {
        let (lba, n) = if random {
            // xorshift64*: cheap, good enough to spread LBAs; like libiscsi's
            // `rand() % num_blocks`, any block may start a transfer.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            w.at(x.wrapping_mul(0x2545_f491_4f6c_dd1d) % w.capacity)
        } else {
            w.sequential(w.next.fetch_add(1, Ordering::Relaxed))
        };
        if let Err(e) = w.one(lba, n).await {
            w.fail(e);
        }
        w.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Writes the --verify stamp over the whole LUN, `in_flight` commands at a time.
async fn fill(w: &Arc<Shared>, in_flight: usize) -> Result<(), String> {
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let w = w.clone();
            tokio::spawn(async move {
                loop {
                    let k = w.next.fetch_add(1, Ordering::Relaxed);
                    if k >= w.per_pass() || w.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let (lba, n) = w.sequential(k);
                    if let Err(e) = w.write(lba, n, stamp(lba, n, w.bs)).await {
                        w.fail(format!("--fill: {e}"));
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    w.next.store(0, Ordering::Relaxed);
    match w.failure.lock().unwrap().take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn run(job: Job) -> Result<ExitCode, String> {
    let mut isid = [0x40, 0, 0, 0, 0, 0];
    getrandom::getrandom(&mut isid[2..]).map_err(|e| e.to_string())?;
    let url = &job.url;
    let cfg = LoginConfig {
        initiator_name: job.name.clone(),
        target_name: Some(url.target.clone()),
        isid,
        tsih: 0,
        chap: url.user.clone().map(|user| Chap {
            user,
            secret: url.password.clone().unwrap_or_default(),
            mutual: None,
        }),
        params: LocalParams {
            max_recv_data_segment_length: job.mrdsl,
            max_burst_length: job.max_burst,
            first_burst_length: LIBISCSI_OFFER.min(job.max_burst),
            // libiscsi wants unsolicited data too (lib/init.c: want_initial_r2t = No).
            initial_r2t: false,
            ..LocalParams::default()
        },
    };
    let addr = url.addr().map_err(|e| e.to_string())?;
    let s = Session::login(addr, cfg).await.map_err(|e| e.to_string())?;
    // What the login settled, so that a comparison can say what it compared.
    let n = &s.established.params;
    let yes = |b: bool| if b { "Yes" } else { "No" };
    println!(
        "negotiated: MaxRecvDataSegmentLength={} target's MaxRecvDataSegmentLength={} \
         FirstBurstLength={} MaxBurstLength={} InitialR2T={} ImmediateData={} MaxOutstandingR2T={}",
        n.max_recv_data_segment_length,
        n.max_xmit_data_segment_length,
        n.first_burst_length,
        n.max_burst_length,
        yes(n.initial_r2t),
        yes(n.immediate_data),
        n.max_outstanding_r2t,
    );
    let lun = url.lun;
    if let Err(f) = s.test_unit_ready(lun).await.map_err(|e| e.to_string())? {
        return Err(format!("LUN {lun} is not ready: {f:?}"));
    }
    let (capacity, bs) = s
        .read_capacity(lun)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|f| format!("READ CAPACITY failed: {f:?}"))?;
    let Job {
        in_flight,
        blocks,
        secs,
        random,
        write,
        ..
    } = job;
    if capacity < blocks as u64 {
        return Err(format!("the LUN has only {capacity} blocks"));
    }
    let w = Arc::new(Shared {
        s,
        lun,
        capacity,
        bs,
        blocks,
        write,
        fua: job.fua,
        verify: job.verify,
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
    });
    if job.fill {
        println!("filling {capacity} blocks with the --verify pattern");
        fill(&w, in_flight).await?;
    }
    println!(
        "performing {} {}{} with {in_flight} parallel requests",
        if random { "RANDOM" } else { "SEQUENTIAL" },
        if write { "WRITE" } else { "READ" },
        if job.fua { " (FUA)" } else { "" },
    );
    println!(
        "FIXED transfer size of {blocks} blocks ({} byte)",
        blocks * bs
    );
    println!("will run for {secs} seconds.\n");
    let start = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|i| tokio::spawn(worker(w.clone(), i as u64 + 1, random)))
        .collect();
    let mut last = 0;
    let mut counted = None;
    for second in 1..=secs {
        tokio::time::sleep_until((start + Duration::from_secs(second)).into()).await;
        if w.stop.load(Ordering::Relaxed) {
            break;
        }
        let now = w.done.load(Ordering::Relaxed);
        if second == secs {
            // libiscsi's average: what completed when the time was up, over that time.
            counted = Some((now, start.elapsed().as_secs_f64()));
            w.stop.store(true, Ordering::Relaxed);
        }
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
    w.stop.store(true, Ordering::Relaxed);
    for t in workers {
        let _ = t.await;
    }
    if let Some(e) = w.failure.lock().unwrap().take() {
        return Err(e);
    }
    let (total, elapsed) = counted.unwrap_or_else(|| {
        (
            w.done.load(Ordering::Relaxed),
            start.elapsed().as_secs_f64(),
        )
    });
    let iops = (total as f64 / elapsed.max(f64::EPSILON)) as u64;
    println!("iops average {iops} ({} MB/s)", mib(iops, blocks * bs));
    if let Ok(w) = Arc::try_unwrap(w) {
        let _ = w.s.logout().await;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_names_the_wrong_block() {
        let mut d = stamp(100, 4, 512).to_vec();
        assert_eq!(first_wrong_block(100, &d, 512), None);
        // A block that holds its neighbour's data (misplaced write) is caught.
        d.copy_within(512..1024, 1024);
        assert_eq!(first_wrong_block(100, &d, 512), Some(102));
        // So is a block read from the wrong place.
        assert_eq!(first_wrong_block(101, &stamp(100, 1, 512), 512), Some(101));
    }
}
