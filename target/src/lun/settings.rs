//! Per-LUN settings, as targets.conf and `tgtadm --mode logicalunit` express them. The
//! defaults are tgt's (targets.conf(5), tgt `usr/spc.c spc_lu_init`), so a config written
//! for tgt produces the same identity (and so the same WWIDs) under hydra.

use std::path::PathBuf;

/// Fixed (SPC-4 §4.5.3) or descriptor (§4.5.2) sense data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SenseFormat {
    #[default]
    Fixed,
    Descriptor,
}

/// Everything that describes one LUN besides its number and backing path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunSettings {
    /// Backing file or block device.
    pub path: PathBuf,
    /// `write-cache on|off`: on = WCE set, data made durable on SYNCHRONIZE CACHE / FUA;
    /// off = every write durable before its status. tgt default: on.
    pub write_cache: bool,
    /// `scsi_id` (<= 36 chars); None = `IET     %04x%04x` of tid/lun.
    pub scsi_id: Option<String>,
    /// `scsi_sn` (<= 36 chars); None = `beaf<tid><lun>` (decimal).
    pub scsi_sn: Option<String>,
    /// `vendor_id` (<= 8), default `IET`.
    pub vendor_id: String,
    /// `product_id` (<= 16), default `VIRTUAL-DISK`.
    pub product_id: String,
    /// `product_rev` (<= 4), default `0001`.
    pub product_rev: String,
    /// `sense_format 0|1`.
    pub sense_format: SenseFormat,
    /// `removable 0|1` (RMB bit).
    pub removable: bool,
    /// `online 0|1`: an offline disk answers NOT READY.
    pub online: bool,
    /// `readonly 0|1`: writes get DATA PROTECT / WRITE PROTECTED.
    pub readonly: bool,
    /// `bsoflags direct`: open with O_DIRECT.
    pub o_direct: bool,
    /// `bsoflags sync`: open with O_SYNC.
    pub o_sync: bool,
    /// `block-size 512|4096` (logical block size in bytes).
    pub block_size: u32,
    /// `params thin_provisioning=1`.
    pub thin_provisioning: bool,
    /// `params rotation_rate=N` (VPD 0xB1; 1 = non-rotating medium).
    pub rotation_rate: u16,
}

impl LunSettings {
    /// tgt's defaults for a disk LUN backed by `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LunSettings {
            path: path.into(),
            write_cache: true,
            scsi_id: None,
            scsi_sn: None,
            vendor_id: "IET".into(),
            product_id: "VIRTUAL-DISK".into(),
            product_rev: "0001".into(),
            sense_format: SenseFormat::Fixed,
            removable: false,
            online: true,
            readonly: false,
            o_direct: false,
            o_sync: false,
            block_size: 512,
            thin_provisioning: false,
            rotation_rate: 0,
        }
    }
}
