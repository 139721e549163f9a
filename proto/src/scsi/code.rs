//! `enum_with_unknown!`: a wire code as a Rust enum that keeps values the standard does not
//! define as `Unknown(u8)` instead of refusing them while parsing (smoltcp's
//! `enum_with_unknown`). Whoever acts on the value decides what an unknown one means —
//! for a target, usually INVALID FIELD IN CDB.

/// Define `pub enum $name { $variant, ..., Unknown(u8) }` with `From<u8>` and
/// `From<$name> for u8`. `mask` is applied to the byte before matching (the width of
/// the field on the wire).
macro_rules! enum_with_unknown {
    (
        $(#[$enum_meta:meta])*
        pub enum $name:ident(mask $mask:expr) {
            $( $(#[$m:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$enum_meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$m])* $variant, )+
            /// A value this code does not define (kept as it came, masked to the field).
            Unknown(u8),
        }
        impl From<u8> for $name {
            fn from(v: u8) -> $name {
                match v & $mask {
                    $( x if x == $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }
        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                match v {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other & $mask,
                }
            }
        }
    };
}

pub(crate) use enum_with_unknown;
