//! The six lock modes and the kernel's three mode tables (fs/dlm/lock.c:
//! `__dlm_compat_matrix`, `__quecvt_compat_matrix`, `dlm_lvb_operations`).

use std::fmt;

/// A lock mode, with libdlm's numbering (LKM_NLMODE = 0 … LKM_EXMODE = 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// Null: holds the resource (and its cached master) with no access.
    NL = 0,
    /// Concurrent read.
    CR = 1,
    /// Concurrent write.
    CW = 2,
    /// Protected read.
    PR = 3,
    /// Protected write.
    PW = 4,
    /// Exclusive.
    EX = 5,
}

pub const MODES: [Mode; 6] = [Mode::NL, Mode::CR, Mode::CW, Mode::PR, Mode::PW, Mode::EX];

/// `__dlm_compat_matrix` without its UN and PD padding rows: symmetric.
const COMPAT: [[bool; 6]; 6] = [
    // NL    CR     CW     PR     PW     EX
    [true, true, true, true, true, true],      // NL
    [true, true, true, true, true, false],     // CR
    [true, true, true, false, false, false],   // CW
    [true, true, false, true, false, false],   // PR
    [true, true, false, false, false, false],  // PW
    [true, false, false, false, false, false], // EX
];

/// `__quecvt_compat_matrix`: the conversions that may carry QUECVT (up-conversions and
/// the middle conversion PR→CW).
const QUECVT: [[bool; 6]; 6] = [
    [false, true, true, true, true, true],
    [false, false, true, true, true, true],
    [false, false, false, true, true, true],
    [false, false, true, false, true, true],
    [false, false, false, false, false, true],
    [false, false, false, false, false, false],
];

/// What a grant or conversion does with the lock value block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LvbOp {
    /// Copy the resource's value block to the caller.
    Read,
    /// Write the caller's value block into the resource.
    Write,
    /// Leave it alone.
    None,
}

impl Mode {
    pub fn from_u8(v: u8) -> Option<Mode> {
        MODES.get(v as usize).copied()
    }

    /// Whether a lock granted in `self` lets one in `other` be granted.
    pub fn compatible(self, other: Mode) -> bool {
        COMPAT[self as usize][other as usize]
    }

    /// Whether a conversion from `self` to `to` may be queued with QUECVT.
    pub fn quecvt_allowed(self, to: Mode) -> bool {
        QUECVT[self as usize][to as usize]
    }

    /// A conversion to `to` that never waits: every mode compatible with `self` is
    /// compatible with `to` (EX→PR, PW→CR, …; not the middle conversions PR↔CW).
    pub fn is_down_conversion(self, to: Mode) -> bool {
        to < self && !matches!((self, to), (Mode::PR, Mode::CW))
    }

    /// `dlm_lvb_operations[from][to]`; `from` is `None` for a new request.
    pub fn lvb_op(from: Option<Mode>, to: Mode) -> LvbOp {
        match from {
            None => LvbOp::Read,
            Some(Mode::PW) if to == Mode::EX => LvbOp::Read,
            Some(from @ (Mode::PW | Mode::EX)) if to <= from || from == Mode::EX => LvbOp::Write,
            Some(from) if to >= from => LvbOp::Read,
            Some(_) => LvbOp::None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::NL => "NL",
            Mode::CR => "CR",
            Mode::CW => "CW",
            Mode::PR => "PR",
            Mode::PW => "PW",
            Mode::EX => "EX",
        }
    }

    /// Parse a mode name as dlm_tool takes it (`-m ex`, `PR`, …).
    pub fn parse(s: &str) -> Option<Mode> {
        MODES
            .iter()
            .copied()
            .find(|m| m.name().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Mode::*;

    #[test]
    fn compat_matrix_is_the_kernels_and_symmetric() {
        // Row by row from fs/dlm/lock.c (1 = compatible), NL..EX.
        let kernel = [
            [1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1, 0],
            [1, 1, 1, 0, 0, 0],
            [1, 1, 0, 1, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 0, 0, 0, 0, 0],
        ];
        for a in MODES {
            for b in MODES {
                assert_eq!(
                    a.compatible(b),
                    kernel[a as usize][b as usize] == 1,
                    "{a} {b}"
                );
                assert_eq!(a.compatible(b), b.compatible(a));
            }
        }
    }

    #[test]
    fn lvb_operations_match_the_kernel_table() {
        // dlm_lvb_operations rows NL..EX (1 read, 0 write, -1 nothing).
        let kernel = [
            [1, 1, 1, 1, 1, 1],
            [-1, 1, 1, 1, 1, 1],
            [-1, -1, 1, 1, 1, 1],
            [-1, -1, -1, 1, 1, 1],
            [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0],
        ];
        for a in MODES {
            for b in MODES {
                let want = match kernel[a as usize][b as usize] {
                    1 => LvbOp::Read,
                    0 => LvbOp::Write,
                    _ => LvbOp::None,
                };
                assert_eq!(Mode::lvb_op(Some(a), b), want, "{a}->{b}");
            }
            assert_eq!(Mode::lvb_op(None, a), LvbOp::Read);
        }
    }

    #[test]
    fn quecvt_only_up_and_pr_to_cw() {
        assert!(NL.quecvt_allowed(EX) && PR.quecvt_allowed(CW) && PW.quecvt_allowed(EX));
        assert!(!CW.quecvt_allowed(CR) && !EX.quecvt_allowed(EX) && !CW.quecvt_allowed(CW));
        assert!(CW.quecvt_allowed(PR));
    }

    #[test]
    fn down_conversions_never_conflict_more() {
        for a in MODES {
            for b in MODES {
                if a.is_down_conversion(b) {
                    for c in MODES {
                        assert!(!a.compatible(c) || b.compatible(c), "{a}->{b} vs {c}");
                    }
                }
            }
        }
        assert!(!PR.is_down_conversion(CW) && !CW.is_down_conversion(PR));
    }
}
