//! A per-LUN byte-range lock: ordinary reads and writes take their range shared, the
//! commands that must be atomic against other I/O to the same blocks (COMPARE AND
//! WRITE, SBC-3 §5.2; ORWRITE; WRITE ATOMIC) take it exclusive. Commands on disjoint
//! ranges do not wait for each other.
//!
//! The LUN is cut into 1 MiB regions hashed onto 64 stripes, each a `RwLock`. A range
//! locks the stripes of the regions it covers, always in ascending stripe order, so two
//! lockers can never deadlock; an uncontended lock costs one atomic per stripe (one
//! for nearly every command). Two regions that share a stripe only make an exclusive
//! locker wait longer than needed, never less.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

const STRIPES: usize = 64;
const REGION_SHIFT: u32 = 20;

pub struct RangeLock {
    stripes: [RwLock<()>; STRIPES],
}

impl Default for RangeLock {
    fn default() -> Self {
        RangeLock {
            stripes: std::array::from_fn(|_| RwLock::new(())),
        }
    }
}

/// Held stripes, released when dropped. Nearly every command covers one or two 1 MiB
/// regions, so those are held inline (no allocation on the I/O path). The guards are
/// only ever dropped.
#[allow(dead_code)]
pub enum Held<G> {
    One(G),
    Two(G, G),
    Many(Vec<G>),
}

pub type RangeGuard<'a> = Held<Guard<'a>>;

/// One stripe's guard (only ever dropped).
#[allow(dead_code)]
pub enum Guard<'a> {
    Shared(RwLockReadGuard<'a, ()>),
    Exclusive(RwLockWriteGuard<'a, ()>),
}

/// Bit i set: stripe i is covered by `[off, off + len)`.
fn stripes_of(off: u64, len: u64) -> u64 {
    let first = off >> REGION_SHIFT;
    let last = off.saturating_add(len.max(1) - 1) >> REGION_SHIFT;
    if last - first >= STRIPES as u64 - 1 {
        return u64::MAX;
    }
    (first..=last).fold(0u64, |m, r| m | 1 << (r % STRIPES as u64))
}

/// Lock the stripes of `mask` in ascending order (the order every locker uses).
fn take<'a>(mask: u64, mut lock: impl FnMut(usize) -> Guard<'a>) -> RangeGuard<'a> {
    let mut m = mask;
    let mut next = std::iter::from_fn(move || {
        (m != 0).then(|| {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            i
        })
    });
    let a = lock(next.next().expect("a range covers at least one stripe"));
    let Some(b) = next.next() else {
        return Held::One(a);
    };
    let b = lock(b);
    let Some(c) = next.next() else {
        return Held::Two(a, b);
    };
    let mut v = vec![a, b, lock(c)];
    v.extend(next.map(lock));
    Held::Many(v)
}

impl RangeLock {
    /// Lock `[off, off + len)` for an ordinary read or write.
    pub fn shared(&self, off: u64, len: u64) -> RangeGuard<'_> {
        take(stripes_of(off, len), |i| {
            Guard::Shared(self.stripes[i].read().unwrap_or_else(|e| e.into_inner()))
        })
    }

    /// Lock `[off, off + len)` against every other command touching it.
    pub fn exclusive(&self, off: u64, len: u64) -> RangeGuard<'_> {
        take(stripes_of(off, len), |i| {
            Guard::Exclusive(self.stripes[i].write().unwrap_or_else(|e| e.into_inner()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn covered_stripes() {
        assert_eq!(stripes_of(0, 512), 1);
        assert_eq!(stripes_of((1 << 20) - 512, 1024), 0b11);
        assert_eq!(stripes_of(64 << 20, 4096), 1);
        assert_eq!(stripes_of(0, 64 << 20), u64::MAX);
        assert_eq!(stripes_of(u64::MAX - 10, 100), 1 << 63);
    }

    #[test]
    fn guards_held_inline_for_one_or_two_regions() {
        let l = RangeLock::default();
        assert!(matches!(l.shared(0, 4096), Held::One(_)));
        assert!(matches!(l.shared((1 << 20) - 512, 1024), Held::Two(..)));
        assert!(matches!(l.exclusive(0, 8 << 20), Held::Many(ref v) if v.len() == 8));
    }

    #[test]
    fn exclusive_waits_for_overlap_only() {
        let l = Arc::new(RangeLock::default());
        let held = l.shared(0, 4096);
        // A disjoint region takes its lock at once, even exclusively.
        drop(l.exclusive(8 << 20, 4096));
        let done = Arc::new(AtomicBool::new(false));
        let t = {
            let (l, done) = (l.clone(), done.clone());
            std::thread::spawn(move || {
                let _g = l.exclusive(512, 512);
                done.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !done.load(Ordering::SeqCst),
            "exclusive overlapped a shared holder"
        );
        drop(held);
        t.join().unwrap();
        assert!(done.load(Ordering::SeqCst));
    }
}
