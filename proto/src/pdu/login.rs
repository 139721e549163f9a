//! Login Request (RFC 7143 §11.12) and Login Response (§11.13).

use super::Repr;
use crate::bhs::{get_u16, get_u32, put_u16, put_u32, Opcode, BHS_LEN};
use crate::{Error, Result};

/// Largest data segment either end accepts in a Login PDU (RFC 7143 §13.12: the
/// default MaxRecvDataSegmentLength, in force until the login has negotiated another).
pub const LOGIN_MAX_DATA: usize = 8192;

/// Login stages (§11.12.3): CSG/NSG values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoginStage {
    Security = 0,
    Operational = 1,
    FullFeature = 3,
}

impl LoginStage {
    fn from_bits(v: u8) -> Result<LoginStage> {
        match v & 3 {
            0 => Ok(LoginStage::Security),
            1 => Ok(LoginStage::Operational),
            3 => Ok(LoginStage::FullFeature),
            _ => Err(Error::malformed(
                "login stage",
                "stage 2 is reserved (RFC 7143 §11.12.3)",
            )),
        }
    }
}

/// Login status class and detail (§11.13.5), as a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginStatus(pub u8, pub u8);

impl LoginStatus {
    pub const SUCCESS: LoginStatus = LoginStatus(0, 0);
    pub const INITIATOR_ERROR: LoginStatus = LoginStatus(2, 0);
    pub const AUTH_FAILURE: LoginStatus = LoginStatus(2, 1);
    pub const AUTHORIZATION_FAILURE: LoginStatus = LoginStatus(2, 2);
    pub const NOT_FOUND: LoginStatus = LoginStatus(2, 3);
    pub const TARGET_REMOVED: LoginStatus = LoginStatus(2, 4);
    pub const UNSUPPORTED_VERSION: LoginStatus = LoginStatus(2, 5);
    pub const TOO_MANY_CONNECTIONS: LoginStatus = LoginStatus(2, 6);
    pub const MISSING_PARAMETER: LoginStatus = LoginStatus(2, 7);
    pub const CANT_INCLUDE_IN_SESSION: LoginStatus = LoginStatus(2, 8);
    pub const SESSION_TYPE_NOT_SUPPORTED: LoginStatus = LoginStatus(2, 9);
    pub const SESSION_DOES_NOT_EXIST: LoginStatus = LoginStatus(2, 0x0a);
    pub const INVALID_DURING_LOGIN: LoginStatus = LoginStatus(2, 0x0b);
    pub const TARGET_ERROR: LoginStatus = LoginStatus(3, 0);
    pub const SERVICE_UNAVAILABLE: LoginStatus = LoginStatus(3, 1);
    pub const OUT_OF_RESOURCES: LoginStatus = LoginStatus(3, 2);
}

/// Login Request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    /// T: the initiator wants to move to `nsg`.
    pub transit: bool,
    /// C: the text is continued in the next PDU.
    pub cont: bool,
    pub csg: LoginStage,
    pub nsg: LoginStage,
    pub version_max: u8,
    pub version_min: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl Repr for LoginRequest {
    const OPCODE: Opcode = Opcode::LoginRequest;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        let transit = b[1] & 0x80 != 0;
        let mut isid = [0u8; 6];
        isid.copy_from_slice(&b[8..14]);
        Ok(LoginRequest {
            transit,
            cont: b[1] & 0x40 != 0,
            csg: LoginStage::from_bits(b[1] >> 2)?,
            // NSG is reserved (and often 0) when T is clear.
            nsg: if transit {
                LoginStage::from_bits(b[1])?
            } else {
                LoginStage::Security
            },
            version_max: b[2],
            version_min: b[3],
            isid,
            tsih: get_u16(b, 14),
            itt: get_u32(b, 16),
            cid: get_u16(b, 20),
            cmd_sn: get_u32(b, 24),
            exp_stat_sn: get_u32(b, 28),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = (self.transit as u8) << 7
            | (self.cont as u8) << 6
            | (self.csg as u8) << 2
            | if self.transit { self.nsg as u8 } else { 0 };
        b[2] = self.version_max;
        b[3] = self.version_min;
        b[8..14].copy_from_slice(&self.isid);
        put_u16(b, 14, self.tsih);
        put_u32(b, 16, self.itt);
        put_u16(b, 20, self.cid);
        put_u32(b, 24, self.cmd_sn);
        put_u32(b, 28, self.exp_stat_sn);
    }
    /// Login requests always carry the I bit (§11.12).
    fn immediate(&self) -> bool {
        true
    }
}

/// Login Response header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResponse {
    pub transit: bool,
    pub cont: bool,
    pub csg: LoginStage,
    pub nsg: LoginStage,
    pub version_max: u8,
    pub version_active: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub status: LoginStatus,
}

impl Repr for LoginResponse {
    const OPCODE: Opcode = Opcode::LoginResponse;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        let transit = b[1] & 0x80 != 0;
        let mut isid = [0u8; 6];
        isid.copy_from_slice(&b[8..14]);
        Ok(LoginResponse {
            transit,
            cont: b[1] & 0x40 != 0,
            csg: LoginStage::from_bits(b[1] >> 2)?,
            nsg: if transit {
                LoginStage::from_bits(b[1])?
            } else {
                LoginStage::Security
            },
            version_max: b[2],
            version_active: b[3],
            isid,
            tsih: get_u16(b, 14),
            itt: get_u32(b, 16),
            stat_sn: get_u32(b, 24),
            exp_cmd_sn: get_u32(b, 28),
            max_cmd_sn: get_u32(b, 32),
            status: LoginStatus(b[36], b[37]),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = (self.transit as u8) << 7
            | (self.cont as u8) << 6
            | (self.csg as u8) << 2
            | if self.transit { self.nsg as u8 } else { 0 };
        b[2] = self.version_max;
        b[3] = self.version_active;
        b[8..14].copy_from_slice(&self.isid);
        put_u16(b, 14, self.tsih);
        put_u32(b, 16, self.itt);
        put_u32(b, 24, self.stat_sn);
        put_u32(b, 28, self.exp_cmd_sn);
        put_u32(b, 32, self.max_cmd_sn);
        b[36] = self.status.0;
        b[37] = self.status.1;
    }
}
