//! Serial-number arithmetic (RFC 1982 with SERIAL_BITS = 32), which RFC 7143 §4.2.2.1
//! prescribes for CmdSN, StatSN, DataSN and R2TSN: they wrap, so `a < b` means "b is
//! ahead of a by less than 2^31", never plain integer comparison.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A 32-bit iSCSI sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sn(pub u32);

impl Sn {
    /// The next number (wrapping).
    pub fn next(self) -> Sn {
        Sn(self.0.wrapping_add(1))
    }
    /// `self` is within the window `[low, high]` in serial order (inclusive).
    pub fn in_window(self, low: Sn, high: Sn) -> bool {
        self >= low && self <= high
    }
}

impl PartialOrd for Sn {
    /// RFC 1982 §3.2: two numbers exactly 2^31 apart are not comparable.
    fn partial_cmp(&self, other: &Sn) -> Option<Ordering> {
        let d = self.0.wrapping_sub(other.0);
        match d {
            0 => Some(Ordering::Equal),
            0x8000_0000 => None,
            d if d < 0x8000_0000 => Some(Ordering::Greater),
            _ => Some(Ordering::Less),
        }
    }
}

impl Add<u32> for Sn {
    type Output = Sn;
    fn add(self, n: u32) -> Sn {
        Sn(self.0.wrapping_add(n))
    }
}

impl AddAssign<u32> for Sn {
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n);
    }
}

impl Sub for Sn {
    /// Distance from `other` forward to `self`, as a signed number.
    type Output = i32;
    fn sub(self, other: Sn) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
}

impl fmt::Debug for Sn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sn({})", self.0)
    }
}

impl fmt::Display for Sn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_around() {
        assert!(Sn(0) > Sn(u32::MAX));
        assert!(Sn(u32::MAX) < Sn(5));
        assert_eq!(Sn(u32::MAX).next(), Sn(0));
        assert_eq!(Sn(2) - Sn(u32::MAX), 3);
        assert!(Sn(1).in_window(Sn(u32::MAX - 1), Sn(3)));
        assert!(!Sn(4).in_window(Sn(u32::MAX - 1), Sn(3)));
    }

    #[test]
    fn half_range_is_incomparable() {
        assert_eq!(Sn(0).partial_cmp(&Sn(0x8000_0000)), None);
    }

    proptest! {
        #[test]
        fn ahead_by_small_step_is_greater(a: u32, n in 1u32..0x7fff_ffff) {
            prop_assert!(Sn(a) + n > Sn(a));
            prop_assert!(Sn(a) < Sn(a) + n);
            prop_assert_eq!((Sn(a) + n) - Sn(a), n as i32);
        }
    }
}
