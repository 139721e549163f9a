//! Lock and unlock flags with libdlm's values (libdlm.h, include/uapi/linux/dlmconstants.h)
//! and the kernel's argument checks (fs/dlm/lock.c `set_lock_args`, `set_unlock_args`,
//! `validate_lock_args`), plus the statuses a completion carries.

use crate::mode::Mode;

/// `LKF_*` bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u32);

impl Flags {
    pub const NOQUEUE: u32 = 0x0000_0001;
    pub const CANCEL: u32 = 0x0000_0002;
    pub const CONVERT: u32 = 0x0000_0004;
    pub const VALBLK: u32 = 0x0000_0008;
    pub const QUECVT: u32 = 0x0000_0010;
    pub const IVVALBLK: u32 = 0x0000_0020;
    pub const CONVDEADLK: u32 = 0x0000_0040;
    pub const PERSISTENT: u32 = 0x0000_0080;
    pub const NODLCKWT: u32 = 0x0000_0100;
    pub const NODLCKBLK: u32 = 0x0000_0200;
    pub const EXPEDITE: u32 = 0x0000_0400;
    pub const NOQUEUEBAST: u32 = 0x0000_0800;
    pub const HEADQUE: u32 = 0x0000_1000;
    pub const NOORDER: u32 = 0x0000_2000;
    pub const ORPHAN: u32 = 0x0000_4000;
    pub const ALTPR: u32 = 0x0000_8000;
    pub const ALTCW: u32 = 0x0001_0000;
    pub const FORCEUNLOCK: u32 = 0x0002_0000;
    pub const TIMEOUT: u32 = 0x0004_0000;

    /// Every flag a lock request may carry (TIMEOUT is deprecated and reserved in the
    /// kernel's uapi: refused).
    const LOCK_ALL: u32 = Self::NOQUEUE
        | Self::CONVERT
        | Self::VALBLK
        | Self::QUECVT
        | Self::IVVALBLK
        | Self::CONVDEADLK
        | Self::PERSISTENT
        | Self::NODLCKWT
        | Self::NODLCKBLK
        | Self::EXPEDITE
        | Self::NOQUEUEBAST
        | Self::HEADQUE
        | Self::NOORDER
        | Self::ORPHAN
        | Self::ALTPR
        | Self::ALTCW;
    /// `set_unlock_args`: anything else is EINVAL.
    const UNLOCK_ALL: u32 = Self::CANCEL | Self::VALBLK | Self::IVVALBLK | Self::FORCEUNLOCK;

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    /// The flags' names, `|`-separated, for logs and dumps.
    pub fn names(self) -> String {
        const NAMES: [(u32, &str); 19] = [
            (Flags::NOQUEUE, "NOQUEUE"),
            (Flags::CANCEL, "CANCEL"),
            (Flags::CONVERT, "CONVERT"),
            (Flags::VALBLK, "VALBLK"),
            (Flags::QUECVT, "QUECVT"),
            (Flags::IVVALBLK, "IVVALBLK"),
            (Flags::CONVDEADLK, "CONVDEADLK"),
            (Flags::PERSISTENT, "PERSISTENT"),
            (Flags::NODLCKWT, "NODLCKWT"),
            (Flags::NODLCKBLK, "NODLCKBLK"),
            (Flags::EXPEDITE, "EXPEDITE"),
            (Flags::NOQUEUEBAST, "NOQUEUEBAST"),
            (Flags::HEADQUE, "HEADQUE"),
            (Flags::NOORDER, "NOORDER"),
            (Flags::ORPHAN, "ORPHAN"),
            (Flags::ALTPR, "ALTPR"),
            (Flags::ALTCW, "ALTCW"),
            (Flags::FORCEUNLOCK, "FORCEUNLOCK"),
            (Flags::TIMEOUT, "TIMEOUT"),
        ];
        let v: Vec<&str> = NAMES
            .iter()
            .filter(|(b, _)| self.has(*b))
            .map(|(_, n)| *n)
            .collect();
        v.join("|")
    }

    /// `set_lock_args`: the checks that need no lock state. `Err` carries the reason
    /// for the EINVAL (the kernel only logs it; hydra tells the client).
    pub fn check_lock(self, mode: Mode, name_len: usize) -> Result<(), &'static str> {
        let has = |b| self.has(b);
        if self.0 & !Self::LOCK_ALL != 0 {
            return Err(if has(Self::CANCEL) {
                "CANCEL is an unlock flag"
            } else if has(Self::FORCEUNLOCK) {
                "FORCEUNLOCK is an unlock flag"
            } else if has(Self::TIMEOUT) {
                "TIMEOUT is deprecated and not supported"
            } else {
                "unknown flag bits"
            });
        }
        if !has(Self::CONVERT) && name_len > crate::RESNAME_MAXLEN {
            return Err("resource name longer than 64 bytes");
        }
        if !has(Self::CONVERT) && name_len == 0 {
            return Err("empty resource name");
        }
        if has(Self::QUECVT) && !has(Self::CONVERT) {
            return Err("QUECVT without CONVERT");
        }
        if has(Self::CONVDEADLK) && !has(Self::CONVERT) {
            return Err("CONVDEADLK without CONVERT");
        }
        if has(Self::CONVDEADLK) && has(Self::NOQUEUE) {
            return Err("CONVDEADLK with NOQUEUE");
        }
        if has(Self::EXPEDITE) {
            if has(Self::CONVERT) {
                return Err("EXPEDITE with CONVERT");
            }
            if has(Self::QUECVT) {
                return Err("EXPEDITE with QUECVT");
            }
            if has(Self::NOQUEUE) {
                return Err("EXPEDITE with NOQUEUE");
            }
            if mode != Mode::NL {
                return Err("EXPEDITE is only for NL requests");
            }
        }
        if has(Self::ORPHAN) && has(Self::CONVERT) {
            return Err("ORPHAN with CONVERT");
        }
        Ok(())
    }

    /// `set_unlock_args`.
    pub fn check_unlock(self) -> Result<(), &'static str> {
        if self.0 & !Self::UNLOCK_ALL != 0 {
            return Err("unlock takes only CANCEL, VALBLK, IVVALBLK, FORCEUNLOCK");
        }
        if self.has(Self::CANCEL) && self.has(Self::FORCEUNLOCK) {
            return Err("CANCEL with FORCEUNLOCK");
        }
        Ok(())
    }
}

/// Status-block flags (`sb_flags`).
pub const SBF_DEMOTED: u8 = 0x01;
pub const SBF_VALNOTVALID: u8 = 0x02;
pub const SBF_ALTMODE: u8 = 0x04;

/// The status of a completion (`sb_status`), libdlm's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Granted (request or conversion).
    Granted,
    /// NOQUEUE and not grantable.
    Again,
    /// Conversion deadlock: the conversion was cancelled, the lock kept its mode.
    Deadlock,
    /// A cancel completed.
    Cancel,
    /// An unlock completed (the success status of an unlock).
    Unlock,
}

impl Status {
    /// `sb_status` as libdlm reports it (negative errno or DLM_E*).
    pub fn code(self) -> i32 {
        match self {
            Status::Granted => 0,
            Status::Again => -libc_errno::EAGAIN,
            Status::Deadlock => -libc_errno::EDEADLK,
            Status::Cancel => -0x10001,
            Status::Unlock => -0x10002,
        }
    }

    pub fn from_code(c: i32) -> Option<Status> {
        [
            Status::Granted,
            Status::Again,
            Status::Deadlock,
            Status::Cancel,
            Status::Unlock,
        ]
        .into_iter()
        .find(|s| s.code() == c)
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Granted => "granted",
            Status::Again => "EAGAIN",
            Status::Deadlock => "EDEADLK",
            Status::Cancel => "ECANCEL",
            Status::Unlock => "EUNLOCK",
        }
    }
}

/// The errno values used here (Linux numbering), without a libc dependency in the core.
pub mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const EAGAIN: i32 = 11;
    pub const EBUSY: i32 = 16;
    pub const EINVAL: i32 = 22;
    pub const EDEADLK: i32 = 35;
    pub const ENOTCONN: i32 = 107;
    pub const ESHUTDOWN: i32 = 108;
    pub const EINPROGRESS: i32 = 115;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(f: u32, m: Mode) -> Result<(), &'static str> {
        Flags(f).check_lock(m, 8)
    }

    #[test]
    fn lock_argument_checks_follow_set_lock_args() {
        assert!(lock(0, Mode::EX).is_ok());
        assert!(lock(Flags::CANCEL, Mode::EX).is_err());
        assert!(lock(Flags::QUECVT, Mode::EX).is_err());
        assert!(lock(Flags::QUECVT | Flags::CONVERT, Mode::EX).is_ok());
        assert!(lock(Flags::CONVDEADLK, Mode::EX).is_err());
        assert!(lock(
            Flags::CONVDEADLK | Flags::CONVERT | Flags::NOQUEUE,
            Mode::EX
        )
        .is_err());
        assert!(lock(Flags::EXPEDITE, Mode::NL).is_ok());
        assert!(lock(Flags::EXPEDITE, Mode::CR).is_err());
        assert!(lock(Flags::EXPEDITE | Flags::NOQUEUE, Mode::NL).is_err());
        assert!(lock(Flags::EXPEDITE | Flags::CONVERT, Mode::NL).is_err());
        assert!(lock(Flags::TIMEOUT, Mode::NL).is_err());
        assert!(
            lock(Flags::NODLCKBLK, Mode::NL).is_ok(),
            "accepted and ignored"
        );
        assert!(Flags(0).check_lock(Mode::EX, 65).is_err());
        assert!(Flags(0).check_lock(Mode::EX, 64).is_ok());
        assert!(
            Flags(Flags::CONVERT).check_lock(Mode::EX, 65).is_ok(),
            "name ignored"
        );
    }

    #[test]
    fn unlock_argument_checks_follow_set_unlock_args() {
        assert!(Flags(Flags::VALBLK | Flags::IVVALBLK)
            .check_unlock()
            .is_ok());
        assert!(Flags(Flags::CANCEL | Flags::FORCEUNLOCK)
            .check_unlock()
            .is_err());
        assert!(Flags(Flags::NOQUEUE).check_unlock().is_err());
    }

    #[test]
    fn status_codes_are_libdlms() {
        assert_eq!(Status::Unlock.code(), -0x10002);
        assert_eq!(Status::Cancel.code(), -0x10001);
        assert_eq!(Status::Again.code(), -11);
        for s in [
            Status::Granted,
            Status::Again,
            Status::Deadlock,
            Status::Cancel,
            Status::Unlock,
        ] {
            assert_eq!(Status::from_code(s.code()), Some(s));
        }
    }
}
