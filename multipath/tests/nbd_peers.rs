//! The NBD export against real clients: qemu-img, qemu-io, nbdinfo, nbdcopy and fio's
//! nbd engine (Debian qemu-utils, libnbd-bin, fio), over a unix socket, with a real
//! file behind the export. Outcomes are checked in the backing file itself.
//!
//! A few raw-socket clients at the end speak bytes written out by hand: the errors
//! that real clients never provoke (out of range, read-only writes, garbage, a stalled
//! handshake) and that must not disturb the others.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{run, stdout};
use std::sync::Arc;
use std::time::Duration;

use hydra_multipath::export::file::FileDevice;
use hydra_multipath::export::nbd::{bind_unix, NbdServer};
use hydra_multipath::export::BlockDevice;

const MIB: u64 = 1 << 20;

/// A server on a unix socket in a temporary directory and on TCP on loopback,
/// exporting `lun` (a 64 MiB file) and `ro` (the same file, read-only). Dropping it
/// stops the server (the runtime's tasks are dropped) and removes the directory.
struct Harness {
    dir: tempfile::TempDir,
    sock: PathBuf,
    /// The same exports on TCP, on loopback.
    tcp_port: u16,
    lun: PathBuf,
    rt: Option<tokio::runtime::Runtime>,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let lun = dir.path().join("lun.img");
        let sock = dir.path().join("nbd.sock");
        let rt = common::runtime();
        let server = NbdServer::new();
        let dev: Arc<dyn BlockDevice> = Arc::new(FileDevice::create(&lun, 64 * MIB).unwrap());
        server.add_export("lun", dev);
        let ro: Arc<dyn BlockDevice> = Arc::new(FileDevice::open(&lun, true).unwrap());
        server.add_export("ro", ro);
        let (listener, tcp) = {
            let _in_rt = rt.enter();
            let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            tcp.set_nonblocking(true).unwrap();
            (
                bind_unix(&sock).unwrap(),
                tokio::net::TcpListener::from_std(tcp).unwrap(),
            )
        };
        let tcp_port = tcp.local_addr().unwrap().port();
        rt.spawn(server.clone().serve_unix(listener));
        rt.spawn(server.serve_tcp(tcp));
        Harness {
            dir,
            sock,
            tcp_port,
            lun,
            rt: Some(rt),
        }
    }

    fn uri(&self, export: &str) -> String {
        format!("nbd+unix:///{export}?socket={}", self.sock.display())
    }

    fn lun_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.lun).unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// qemu-io prints its errors (a failed pattern check, an I/O error) on stdout and
/// still exits 0 for some of them: look for them.
fn qemu_io(h: &Harness, export: &str, cmds: &[&str]) -> String {
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", "raw"]);
    for c in cmds {
        cmd.args(["-c", c]);
    }
    cmd.arg(h.uri(export));
    let text = stdout(&run(&mut cmd));
    for bad in ["failed", "error", "Error"] {
        assert!(!text.contains(bad), "qemu-io {cmds:?}: {text}");
    }
    text
}

#[test]
fn tcp_on_loopback() {
    let h = Harness::new();
    let uri = format!("nbd://127.0.0.1:{}/lun", h.tcp_port);
    let out = stdout(&run(Command::new("qemu-io").args([
        "-f",
        "raw",
        "-c",
        "write -P 0x5c 1M 1M",
        "-c",
        "read -P 0x5c 1M 1M",
        &uri,
    ])));
    assert!(!out.contains("failed"), "{out}");
    assert!(h.lun_bytes()[1 << 20..2 << 20].iter().all(|&b| b == 0x5c));
}

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn qemu_img_and_nbdinfo_see_the_exports() {
    let h = Harness::new();
    let info = stdout(&run(Command::new("qemu-img").args([
        "info",
        "--output=json",
        &h.uri("lun"),
    ])));
    assert!(info.contains("\"virtual-size\": 67108864"), "{info}");

    let list = stdout(&run(Command::new("nbdinfo").args(["--list", &h.uri("")])));
    assert!(
        list.contains("export=\"lun\"") && list.contains("export=\"ro\""),
        "{list}"
    );

    let one = stdout(&run(Command::new("nbdinfo").arg(h.uri("lun"))));
    for want in [
        "export-size: 67108864",
        "is_read_only: false",
        "can_flush: true",
        "can_fua: true",
        "can_trim: true",
        "can_zero: true",
        "can_multi_conn: true",
        "block_size_minimum: 512",
        "block_size_preferred: 4096",
        "block_size_maximum: 33554432",
        "protocol: newstyle-fixed",
    ] {
        assert!(one.contains(want), "nbdinfo lacks {want:?}:\n{one}");
    }
    let ro = stdout(&run(Command::new("nbdinfo").arg(h.uri("ro"))));
    assert!(
        ro.contains("is_read_only: true") && ro.contains("can_trim: false"),
        "{ro}"
    );
}

#[test]
fn qemu_io_write_read_fua_flush_discard_zero() {
    let h = Harness::new();
    qemu_io(
        &h,
        "lun",
        &[
            "write -P 0xab 0 4M",
            "write -f -P 0xcd 4M 1M",
            "flush",
            "read -P 0xab 0 4M",
            "read -P 0xcd 4M 1M",
        ],
    );
    let raw = h.lun_bytes();
    assert!(raw[..4 << 20].iter().all(|&b| b == 0xab));
    assert!(raw[4 << 20..5 << 20].iter().all(|&b| b == 0xcd));
    assert!(raw[5 << 20..].iter().all(|&b| b == 0));

    // write -z without -u: NBD_CMD_WRITE_ZEROES with NO_HOLE, the range stays allocated.
    let before = allocated(&h.lun);
    qemu_io(
        &h,
        "lun",
        &["write -z 0 1M", "read -P 0 0 1M", "read -P 0xab 1M 1M"],
    );
    assert!(h.lun_bytes()[..1 << 20].iter().all(|&b| b == 0));
    assert_eq!(allocated(&h.lun), before, "NO_HOLE zeroing deallocated");

    // write -z -u: may unmap, the file gets a hole; discard (TRIM) punches one too.
    qemu_io(&h, "lun", &["write -z -u 1M 1M", "read -P 0 1M 1M"]);
    let after_zero = allocated(&h.lun);
    assert!(after_zero <= before - MIB, "{after_zero} vs {before}");
    qemu_io(&h, "lun", &["discard 2M 1M", "read -P 0xab 3M 1M"]);
    assert!(allocated(&h.lun) <= after_zero - MIB);
    let raw = h.lun_bytes();
    assert!(raw[1 << 20..2 << 20].iter().all(|&b| b == 0));
    assert!(raw[3 << 20..4 << 20].iter().all(|&b| b == 0xab));

    // The read-only export refuses writes (qemu checks the READ_ONLY flag itself).
    let out = Command::new("qemu-io")
        .args(["-f", "raw", "-c", "write -P 1 0 4k", &h.uri("ro")])
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("read-only") || text.contains("Permission denied"),
        "{text}"
    );
    assert!(
        h.lun_bytes()[..4096].iter().all(|&b| b == 0),
        "the ro export wrote"
    );
}

fn random_file(path: &Path, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut data)
        .unwrap();
    // Leave zero runs so that converters may skip or zero them.
    for chunk in data.chunks_mut(3 << 20).skip(1).step_by(2) {
        chunk[..1 << 20].fill(0);
    }
    std::fs::write(path, &data).unwrap();
    data
}

#[test]
fn qemu_img_convert_compare_and_nbdcopy() {
    let h = Harness::new();
    let src = h.dir.path().join("src.img");
    let data = random_file(&src, 64 << 20);
    // -W: out-of-order writes, -m 16: sixteen coroutines, so many requests in flight.
    run(Command::new("qemu-img")
        .args(["convert", "-n", "-W", "-m", "16", "-f", "raw", "-O", "raw"])
        .arg(&src)
        .arg(h.uri("lun")));
    run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "raw"])
        .arg(&src)
        .arg(h.uri("lun")));
    assert!(
        h.lun_bytes() == data,
        "the backing file differs from the source"
    );

    // nbdcopy opens several connections (CAN_MULTI_CONN) with many requests each.
    let back = h.dir.path().join("back.img");
    std::fs::write(&back, []).unwrap();
    run(Command::new("nbdcopy")
        .args(["--connections=4", "--requests=32"])
        .arg(h.uri("lun"))
        .arg(&back));
    assert!(
        std::fs::read(&back).unwrap() == data,
        "nbdcopy read back other bytes"
    );
    // And the other way, over a changed source.
    let data2 = random_file(&src, 64 << 20);
    run(Command::new("nbdcopy")
        .args(["--connections=4", "--requests=32", "--flush"])
        .arg(&src)
        .arg(h.uri("lun")));
    assert!(h.lun_bytes() == data2, "nbdcopy wrote other bytes");
}

#[test]
fn fio_nbd_engine_random_writes_verified() {
    let h = Harness::new();
    let out = run(Command::new("fio").args([
        "--name=verify",
        "--ioengine=nbd",
        &format!("--uri={}", h.uri("lun")),
        "--rw=randwrite",
        "--bs=4k",
        "--iodepth=32",
        "--size=16M",
        "--verify=crc32c",
        "--do_verify=1",
        "--verify_fatal=1",
        // No verify state file in the working directory (fio writes one by default).
        "--verify_state_save=0",
        "--output-format=terse",
    ]));
    // terse v3: field 5 is the error number.
    let terse = stdout(&out);
    let fields: Vec<&str> = terse.trim().split(';').collect();
    assert_eq!(fields.get(4), Some(&"0"), "fio error: {terse}");
    // fio wrote its verify headers through the export into the file.
    assert!(h.lun_bytes()[..16 << 20].iter().any(|&b| b != 0));
}

/// A raw client: the handshake up to transmission with `NBD_OPT_GO`.
fn raw_go(h: &Harness, export: &str) -> UnixStream {
    let mut s = UnixStream::connect(&h.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut greeting = [0u8; 18];
    s.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"NBDMAGICIHAVEOPT\x00\x03");
    s.write_all(&3u32.to_be_bytes()).unwrap(); // FIXED_NEWSTYLE | NO_ZEROES
    let mut opt = b"IHAVEOPT\x00\x00\x00\x07".to_vec();
    opt.extend_from_slice(&(4 + export.len() as u32 + 2).to_be_bytes());
    opt.extend_from_slice(&(export.len() as u32).to_be_bytes());
    opt.extend_from_slice(export.as_bytes());
    opt.extend_from_slice(&[0, 0]);
    s.write_all(&opt).unwrap();
    // Replies until ACK (type 1).
    loop {
        let mut hdr = [0u8; 20];
        s.read_exact(&mut hdr).unwrap();
        let ty = u32::from_be_bytes(hdr[12..16].try_into().unwrap());
        let len = u32::from_be_bytes(hdr[16..20].try_into().unwrap());
        let mut data = vec![0; len as usize];
        s.read_exact(&mut data).unwrap();
        assert!(
            ty < 1 << 31,
            "GO refused: {}",
            String::from_utf8_lossy(&data)
        );
        if ty == 1 {
            return s;
        }
    }
}

fn request(command: u16, flags: u16, cookie: u64, offset: u64, len: u32) -> Vec<u8> {
    let mut r = 0x2560_9513u32.to_be_bytes().to_vec();
    r.extend_from_slice(&flags.to_be_bytes());
    r.extend_from_slice(&command.to_be_bytes());
    r.extend_from_slice(&cookie.to_be_bytes());
    r.extend_from_slice(&offset.to_be_bytes());
    r.extend_from_slice(&len.to_be_bytes());
    r
}

/// Read one simple reply: (error, cookie).
fn reply(s: &mut UnixStream) -> (u32, u64) {
    let mut r = [0u8; 16];
    s.read_exact(&mut r).unwrap();
    assert_eq!(&r[..4], &0x6744_6698u32.to_be_bytes());
    (
        u32::from_be_bytes(r[4..8].try_into().unwrap()),
        u64::from_be_bytes(r[8..16].try_into().unwrap()),
    )
}

/// True once the server closed the connection.
fn closed(s: &mut UnixStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

#[test]
fn bad_requests_get_errors_and_bad_clients_harm_nobody() {
    let h = Harness::new();
    let mut good = raw_go(&h, "lun");

    // A client stuck in the handshake and one that sends garbage: the good client
    // goes on while they exist, and the garbage one is closed.
    let _stalled = UnixStream::connect(&h.sock).unwrap();
    let mut garbage = raw_go(&h, "lun");
    garbage.write_all(&[0x5a; 64]).unwrap();
    assert!(closed(&mut garbage), "garbage kept the connection open");
    let mut huge = raw_go(&h, "lun");
    huge.write_all(&request(1, 0, 9, 0, 64 << 20)).unwrap();
    assert!(closed(&mut huge), "a 64 MiB WRITE kept the connection open");

    // Beyond the end: EINVAL for a read, ENOSPC for a write (its payload is consumed:
    // the next request still parses), EINVAL for a misaligned read, then a good read.
    good.write_all(&request(0, 0, 1, 64 * MIB, 512)).unwrap();
    assert_eq!(reply(&mut good), (22, 1));
    let mut w = request(1, 0, 2, 64 * MIB - 512, 1024);
    w.extend_from_slice(&[7; 1024]);
    good.write_all(&w).unwrap();
    assert_eq!(reply(&mut good), (28, 2));
    good.write_all(&request(0, 0, 3, 100, 512)).unwrap();
    assert_eq!(reply(&mut good), (22, 3));
    good.write_all(&request(0, 0, 4, u64::MAX - 100, 4096))
        .unwrap();
    assert_eq!(reply(&mut good), (22, 4));
    good.write_all(&request(7, 0, 5, 0, 512)).unwrap();
    assert_eq!(
        reply(&mut good),
        (22, 5),
        "BLOCK_STATUS without structured replies"
    );

    // Several requests in one write, answered (in any order) by cookie.
    let mut batch = Vec::new();
    let mut w = request(1, 1, 10, 8192, 4096);
    w.extend_from_slice(&[0x42; 4096]);
    batch.extend_from_slice(&w);
    batch.extend_from_slice(&request(3, 0, 11, 0, 0));
    batch.extend_from_slice(&request(6, 2, 12, 16384, 8192));
    good.write_all(&batch).unwrap();
    let mut cookies: Vec<u64> = (0..3)
        .map(|_| reply(&mut good))
        .inspect(|r| assert_eq!(r.0, 0))
        .map(|r| r.1)
        .collect();
    cookies.sort();
    assert_eq!(cookies, [10, 11, 12]);
    good.write_all(&request(0, 0, 13, 8192, 4096)).unwrap();
    assert_eq!(reply(&mut good), (0, 13));
    let mut data = [0u8; 4096];
    good.read_exact(&mut data).unwrap();
    assert!(data.iter().all(|&b| b == 0x42));
    assert!(h.lun_bytes()[8192..12288].iter().all(|&b| b == 0x42));

    // Writes to the read-only export: EPERM, and nothing lands.
    let mut ro = raw_go(&h, "ro");
    let mut w = request(1, 0, 20, 0, 512);
    w.extend_from_slice(&[9; 512]);
    ro.write_all(&w).unwrap();
    assert_eq!(reply(&mut ro), (1, 20));
    ro.write_all(&request(4, 0, 21, 0, 512)).unwrap();
    assert_eq!(reply(&mut ro), (1, 21));
    assert!(h.lun_bytes()[..512].iter().all(|&b| b == 0));

    // Soft disconnect: the server closes after answering what was in flight.
    good.write_all(&request(3, 0, 30, 0, 0)).unwrap();
    good.write_all(&request(2, 0, 31, 0, 0)).unwrap();
    assert_eq!(reply(&mut good), (0, 30));
    assert!(closed(&mut good));

    // A real client still works with the stalled one hanging on.
    qemu_io(&h, "lun", &["read -P 0x42 8k 4k"]);
}

#[test]
fn negotiation_errors_and_abort() {
    let h = Harness::new();
    let mut s = UnixStream::connect(&h.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut greeting = [0u8; 18];
    s.read_exact(&mut greeting).unwrap();
    s.write_all(&1u32.to_be_bytes()).unwrap(); // FIXED_NEWSTYLE, zeroes wanted
    let opt = |code: u32, data: &[u8]| {
        let mut o = b"IHAVEOPT".to_vec();
        o.extend_from_slice(&code.to_be_bytes());
        o.extend_from_slice(&(data.len() as u32).to_be_bytes());
        o.extend_from_slice(data);
        o
    };
    let opt_reply = |s: &mut UnixStream| {
        let mut hdr = [0u8; 20];
        s.read_exact(&mut hdr).unwrap();
        assert_eq!(&hdr[..8], &0x0003_e889_0455_65a9u64.to_be_bytes());
        let len = u32::from_be_bytes(hdr[16..20].try_into().unwrap());
        let mut data = vec![0; len as usize];
        s.read_exact(&mut data).unwrap();
        (
            u32::from_be_bytes(hdr[8..12].try_into().unwrap()),
            u32::from_be_bytes(hdr[12..16].try_into().unwrap()),
            data,
        )
    };
    s.write_all(&opt(8, b"")).unwrap();
    assert_eq!(
        opt_reply(&mut s).1,
        (1 << 31) + 1,
        "STRUCTURED_REPLY refused"
    );
    s.write_all(&opt(7, b"\x00\x00\x00\x04nope\x00\x00"))
        .unwrap();
    let (code, ty, msg) = opt_reply(&mut s);
    assert_eq!((code, ty), (7, (1 << 31) + 6));
    assert!(String::from_utf8_lossy(&msg).contains("nope"));
    s.write_all(&opt(6, b"\x00\x00\x00\x03lun\x00\x00"))
        .unwrap();
    assert_eq!(opt_reply(&mut s).1, 3, "INFO answers NBD_REP_INFO");
    // The second INFO reply and the ACK.
    assert_eq!(opt_reply(&mut s).1, 3);
    assert_eq!(opt_reply(&mut s).1, 1);
    s.write_all(&opt(2, b"")).unwrap();
    assert_eq!(opt_reply(&mut s), (2, 1, vec![]));
    assert!(closed(&mut s));

    // EXPORT_NAME without NO_ZEROES: size, flags, 124 zeros; an unknown name closes.
    let mut s = UnixStream::connect(&h.sock).unwrap();
    s.read_exact(&mut greeting).unwrap();
    s.write_all(&1u32.to_be_bytes()).unwrap();
    s.write_all(&opt(1, b"lun")).unwrap();
    let mut answer = [0xffu8; 134];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(&answer[..8], &(64 * MIB).to_be_bytes());
    assert_eq!(&answer[8..10], &0x016du16.to_be_bytes());
    assert!(answer[10..].iter().all(|&b| b == 0));
    let mut s = UnixStream::connect(&h.sock).unwrap();
    s.read_exact(&mut greeting).unwrap();
    s.write_all(&1u32.to_be_bytes()).unwrap();
    s.write_all(&opt(1, b"nope")).unwrap();
    assert!(closed(&mut s));
}

/// The kernel route of DESIGN.md (Data paths → Export), end to end through this NBD
/// server: nbdfuse (libnbd-bin) serves the export as a FUSE file in a private mount
/// namespace, a loop device with direct I/O attaches it, sfdisk writes a partition
/// table, `partx -a` adds the partition (this machine's kernel has no partition-table
/// parsers, CONFIG_MSDOS_PARTITION and CONFIG_EFI_PARTITION are off, so `losetup -P`
/// alone never makes loopNp1: userspace adds it with BLKPG, as kpartx does for dm
/// maps), mkfs.ext4, mount, write, drop caches, read back. The script's trap unmounts
/// and detaches on every exit; the test then checks no loop device is left on its file.
#[test]
fn kernel_route_nbdfuse_loop_partition_ext4() {
    let h = Harness::new();
    let script = r#"
set -eu
D=$1; URI=$2
LOOP=
cleanup() {
    set +e
    mountpoint -q "$D/fs" && umount "$D/fs"
    if [ -n "$LOOP" ]; then partx -d "$LOOP" 2>/dev/null; losetup -d "$LOOP"; fi
    mountpoint -q "$D/mnt" && umount "$D/mnt"
    wait
}
trap cleanup EXIT
mkdir -p "$D/mnt" "$D/fs"
nbdfuse "$D/mnt/lun" "$URI" &
for i in $(seq 100); do [ -e "$D/mnt/lun" ] && break; sleep 0.1; done
[ -e "$D/mnt/lun" ] || { echo "nbdfuse did not mount"; exit 1; }
LOOP=$(losetup --direct-io=on -P -f --show "$D/mnt/lun")
echo "loop=$LOOP"
losetup -l -n -O DIO "$LOOP" | grep -q 1 || { echo "no direct I/O on $LOOP"; exit 1; }
printf 'label: dos\n,,L\n' | sfdisk -q "$LOOP"
partx -a "$LOOP"
mkfs.ext4 -q "${LOOP}p1"
mount "${LOOP}p1" "$D/fs"
head -c 24M /dev/urandom > "$D/data"
cp "$D/data" "$D/fs/data"
sync
echo 3 > /proc/sys/vm/drop_caches
cmp "$D/data" "$D/fs/data"
echo readback-ok
"#;
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(h.dir.path())
        .arg(h.uri("lun"))
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let loops = stdout(&run(Command::new("losetup").args(["-a"])));
    assert!(
        !loops.contains(&*h.dir.path().to_string_lossy()),
        "a loop device was left behind: {loops}"
    );
    assert!(
        out.status.success() && text.contains("readback-ok"),
        "{text}"
    );
    // The partition table went through loop, FUSE and NBD into the backing file.
    let raw = h.lun_bytes();
    assert_eq!(
        &raw[510..512],
        &[0x55, 0xaa],
        "no MBR signature in the backing file"
    );
    assert_eq!(raw[446 + 4], 0x83, "partition 1 is not type 83 (Linux)");
}
