//! Round-trip and golden-byte tests for every PDU Repr.

use super::*;
use proptest::prelude::*;

proptest! {
    /// Whatever 48 bytes arrive, a header that parses re-emits to bytes that parse to the
    /// same Repr (emit is the inverse of parse on everything parse accepts).
    #[test]
    fn parse_emit_parse_is_identity(mut b in proptest::collection::vec(any::<u8>(), 48), dlen in 0usize..(1 << 24)) {
        // Keep to defined opcodes so most inputs exercise a Repr.
        const OPS: [u8; 18] = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10, 0x20, 0x21,
                               0x22, 0x23, 0x24, 0x25, 0x26, 0x31, 0x32, 0x3f];
        b[0] = (b[0] & 0x40) | OPS[b[0] as usize % OPS.len()];
        if let Ok(pdu) = Pdu::parse(&b) {
            let again = Pdu::parse(&pdu.emit(dlen)).expect("emitted header parses");
            prop_assert_eq!(&again, &pdu);
            prop_assert_eq!(Bhs::new_unchecked(&pdu.emit(dlen)[..]).data_len(), dlen);
        }
    }
}

#[test]
fn golden_scsi_response_with_underflow() {
    let r = ScsiResponse {
        underflow: true,
        status: 0x02,
        itt: 0x0102_0304,
        stat_sn: 7,
        exp_cmd_sn: 8,
        max_cmd_sn: 135,
        residual: 512,
        ..Default::default()
    };
    let b = r.emit(20);
    let mut want = [0u8; 48];
    want[0] = 0x21;
    want[1] = 0x82;
    want[3] = 0x02;
    want[5..8].copy_from_slice(&[0, 0, 20]);
    want[16..20].copy_from_slice(&[1, 2, 3, 4]);
    want[24..28].copy_from_slice(&7u32.to_be_bytes());
    want[28..32].copy_from_slice(&8u32.to_be_bytes());
    want[32..36].copy_from_slice(&135u32.to_be_bytes());
    want[44..48].copy_from_slice(&512u32.to_be_bytes());
    assert_eq!(b, want);
}

#[test]
fn golden_login_request_from_open_iscsi() {
    // A first Login Request as open-iscsi sends it: I bit, T=1, CSG=0 NSG=1, ISID
    // 00023d000001, CID 0, CmdSN 1.
    let mut b = [0u8; 48];
    b[0] = 0x43;
    b[1] = 0x81;
    b[8..14].copy_from_slice(&[0x00, 0x02, 0x3d, 0x00, 0x00, 0x01]);
    b[24..28].copy_from_slice(&1u32.to_be_bytes());
    let Pdu::LoginRequest(l) = Pdu::parse(&b).unwrap() else {
        panic!("not a login")
    };
    assert!(l.transit && !l.cont);
    assert_eq!(
        (l.csg, l.nsg),
        (LoginStage::Security, LoginStage::Operational)
    );
    assert_eq!(l.isid, [0x00, 0x02, 0x3d, 0x00, 0x00, 0x01]);
    assert_eq!(l.cmd_sn, 1);
    assert_eq!(l.emit(0), b);
}

#[test]
fn reserved_stage_and_unknown_opcode_are_errors() {
    let mut b = [0u8; 48];
    b[0] = 0x03;
    b[1] = 0x88; // CSG=2
    assert!(matches!(Pdu::parse(&b), Err(Error::Malformed { .. })));
    b[0] = 0x1c;
    assert!(matches!(Pdu::parse(&b), Err(Error::Unsupported { .. })));
}

#[test]
fn data_in_status_bit() {
    let d = DataIn {
        final_: true,
        status: Some(0),
        residual: 3,
        underflow: true,
        ..Default::default()
    };
    let b = d.emit(4096);
    assert_eq!(b[1], 0x83);
    let Pdu::DataIn(back) = Pdu::parse(&b).unwrap() else {
        panic!()
    };
    assert_eq!(back, d);
}
