//! The one error type of the cluster crate.

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a cluster operation. Each names what and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad options (fence-agents' `fail_usage`): names the option.
    #[error("{0}")]
    Usage(String),
    /// A device could not be reached or refused a command: names the device.
    #[error("{device}: {detail}")]
    Device { device: String, detail: String },
    /// corosync's configuration (through `corosync-cmapctl`) could not be read or does
    /// not have what the key derivation needs.
    #[error("corosync: {0}")]
    Corosync(String),
    /// The action ran but its result did not verify (fence_scsi's "Failed to verify").
    #[error("{0}")]
    Failed(String),
    /// `hydra mount` will not go on: another node holds the lock, no filesystem, no
    /// lock manager, this node is fenced. Says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// Files and processes.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn device(device: &str, detail: impl std::fmt::Display) -> Error {
        Error::Device {
            device: device.to_string(),
            detail: detail.to_string(),
        }
    }
}
