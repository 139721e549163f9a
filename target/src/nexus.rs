//! The I_T nexus: who is talking to us, through which target port (SAM-5 §4.7, SPC-4
//! §5.13.1). Unit attentions, RESERVE(6) and persistent reservations are all kept per
//! I_T nexus, and an I_T nexus is the *initiator port* (initiator name + ISID, RFC 7143
//! §4.4.1) times the *target port* (target name + portal group tag) — not the session.
//! That way a re-login of the same initiator port finds its registrations again.

use std::fmt;

/// Identifies one I_T nexus. Cheap to clone, hashable, printable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItNexus {
    /// iSCSI initiator name (InitiatorName key), e.g. `iqn.1994-05.com.redhat:node1`.
    pub initiator: String,
    /// Initiator session ID, the 6 bytes from the Login PDU.
    pub isid: [u8; 6],
    /// Relative target port identifier: hydra uses the portal group tag (>= 1).
    pub target_port: u16,
}

impl ItNexus {
    /// The SCSI initiator port name, `<name>,i,0x<isid hex>` (RFC 7143 §4.4.1 / SPC-4
    /// TransportID format 01b).
    pub fn initiator_port_name(&self) -> String {
        let mut s = format!("{},i,0x", self.initiator);
        for b in self.isid {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl fmt::Display for ItNexus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (tpgt {})",
            self.initiator_port_name(),
            self.target_port
        )
    }
}
