//! The one error type of the wire crate. Every variant says what was being parsed and why
//! it was refused, so a daemon can log it and map it to a Reject reason, a login status or
//! sense data in one place (in the crate that owns the connection).

/// A fault found while parsing, negotiating or authenticating. These are always the
/// peer's fault or an unsupported feature: the wire crate does no I/O of its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than the structure needs ("incomplete" in a stream is not an error:
    /// framing reports it separately).
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A field holds a value the spec forbids.
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    /// Valid on the wire, but not something hydra implements.
    #[error("unsupported {what}: {detail}")]
    Unsupported { what: &'static str, detail: String },
    /// A login/text key negotiation failure (RFC 7143 §6.2, §13).
    #[error("negotiation of {key}: {detail}")]
    Negotiation { key: String, detail: String },
    /// CHAP or another authentication step failed (RFC 7143 §12.1).
    #[error("authentication: {0}")]
    Auth(String),
    /// A message that does not fit the current state (names what was expected).
    #[error("unexpected {got}, expected {expected}")]
    Unexpected { expected: &'static str, got: String },
}

impl Error {
    /// Shorthand for [`Error::Malformed`].
    pub fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Malformed {
            what,
            detail: detail.into(),
        }
    }
    /// Shorthand for [`Error::Truncated`].
    pub fn truncated(what: &'static str, need: usize, have: usize) -> Self {
        Error::Truncated { what, need, have }
    }
}

/// Result with the wire crate's error.
pub type Result<T, E = Error> = core::result::Result<T, E>;
