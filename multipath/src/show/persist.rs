//! What `mpathpersist --in` prints for each PERSISTENT RESERVE IN answer
//! (multipath-tools `mpathpersist/main.c`, `mpath_print_buf_read*`), and the lines it
//! prints when a PERSISTENT RESERVE OUT fails.

use crate::persist::{pr_status, PrAnswer, PrCapabilities, PrRegistration};

/// mpathpersist's names of the reservation types (SPC-4 Table 168), by TYPE.
fn type_name(t: u8) -> String {
    match t {
        1 => "Write Exclusive".into(),
        3 => "Exclusive Access".into(),
        5 => "Write Exclusive, registrants only".into(),
        6 => "Exclusive Access, registrants only".into(),
        7 => "Write Exclusive, all registrants".into(),
        8 => "Exclusive Access, all registrants".into(),
        t if t < 10 => format!("obsolete [{t}]"),
        t => format!("obsolete [{t:#x}]"),
    }
}

fn scope(scope: u8) -> String {
    if scope == 0 {
        "LU_SCOPE".into()
    } else {
        scope.to_string()
    }
}

/// The text for a PR IN answer (None for [`PrAnswer::Done`], which prints nothing).
pub fn pr_in(answer: &PrAnswer) -> Option<String> {
    let mut o = String::new();
    match answer {
        PrAnswer::Done => return None,
        PrAnswer::Keys { generation, keys } => {
            o.push_str(&format!("  PR generation=0x{generation:x}, "));
            match keys.len() {
                0 => o.push_str("\t0 registered reservation key.\n"),
                1 => o.push_str("\t1 registered reservation key follows:\n"),
                n => o.push_str(&format!("\t{n} registered reservation keys follow:\n")),
            }
            for k in keys {
                o.push_str(&format!("    0x{k:x}\n"));
            }
        }
        PrAnswer::Reservation {
            generation,
            reservation: None,
        } => o.push_str(&format!(
            "  PR generation=0x{generation:x}, there is NO reservation held \n"
        )),
        PrAnswer::Reservation {
            generation,
            reservation: Some(r),
        } => {
            o.push_str(&format!(
                "  PR generation=0x{generation:x}, Reservation follows:\n"
            ));
            o.push_str(&format!("   Key = 0x{:x}\n", r.key));
            if r.scope == 0 {
                o.push_str(&format!(
                    "  scope = LU_SCOPE, type = {}\n",
                    type_name(r.rtype)
                ));
            } else {
                o.push_str(&format!(
                    "  scope = {}, type = {}\n",
                    r.scope,
                    type_name(r.rtype)
                ));
            }
        }
        PrAnswer::Capabilities(c) => capabilities(&mut o, c),
        PrAnswer::FullStatus {
            generation,
            descriptors,
        } => {
            o.push_str(&format!("  PR generation=0x{generation:x} \n"));
            for d in descriptors {
                registration(&mut o, d);
            }
        }
    }
    Some(o)
}

fn capabilities(o: &mut String, c: &PrCapabilities) {
    let b = |v: bool| v as u8;
    o.push_str("Report capabilities response:\n");
    o.push_str(&format!(
        "  Compatible Reservation Handling(CRH): {}\n",
        b(c.crh)
    ));
    o.push_str(&format!(
        "  Specify Initiator Ports Capable(SIP_C): {}\n",
        b(c.sip_c)
    ));
    o.push_str(&format!(
        "  All Target Ports Capable(ATP_C): {}\n",
        b(c.atp_c)
    ));
    o.push_str(&format!(
        "  Persist Through Power Loss Capable(PTPL_C): {}\n",
        b(c.ptpl_c)
    ));
    o.push_str(&format!(
        "  Type Mask Valid(TMV): {}\n",
        b(c.type_mask.is_some())
    ));
    o.push_str(&format!("  Allow Commands: {}\n", b(c.allow_commands != 0)));
    o.push_str(&format!(
        "  Persist Through Power Loss Active(PTPL_A): {}\n",
        b(c.ptpl_a)
    ));
    if let Some(mask) = c.type_mask {
        // mpathpersist holds the mask's two bytes little-endian and prints each bit's
        // masked value (SPC-4 §6.15.4: byte 4 has WR_EX_AR 0x80 … WR_EX 0x02, byte 5
        // EX_AC_AR 0x01).
        let m = mask.swap_bytes();
        o.push_str("    Support indicated in Type mask:\n");
        for (t, bit) in [
            (7, 0x80),
            (6, 0x40),
            (5, 0x20),
            (3, 0x8),
            (1, 0x2),
            (8, 0x100),
        ] {
            o.push_str(&format!("      {}: {}\n", type_name(t), m & bit));
        }
    }
}

fn registration(o: &mut String, d: &PrRegistration) {
    o.push_str(&format!("   Key = 0x{:x}\n", d.key));
    if d.all_tg_pt {
        o.push_str("      All target ports bit set\n");
    } else {
        o.push_str("      All target ports bit clear\n");
        o.push_str(&format!(
            "      Relative port address: 0x{:x}\n",
            d.relative_target_port
        ));
    }
    match d.holder {
        Some(t) => {
            o.push_str("      << Reservation holder >>\n");
            o.push_str(&format!(
                "      scope: {},  type: {}\n",
                scope(0),
                type_name(t)
            ));
        }
        None => o.push_str("      not reservation holder\n"),
    }
    match &d.isid {
        None => o.push_str(&format!("   iSCSI name: {}\n", d.name)),
        Some(isid) => o.push_str(&format!(
            "   iSCSI world wide unique port id: {},i,0x{isid}\n",
            d.name
        )),
    }
}

/// What mpathpersist prints on stdout when a PR OUT fails with `status`.
pub fn pr_out_failed(status: i32) -> String {
    let mut o = String::new();
    match status {
        pr_status::SENSE_UNIT_ATTENTION => {
            o.push_str("persistent reserve out: scsi status: Unit Attention\n")
        }
        pr_status::RESERV_CONFLICT => {
            o.push_str("persistent reserve out: scsi status: Reservation Conflict\n")
        }
        _ => {}
    }
    o.push_str("PR out: command failed\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::PrReservation;

    #[test]
    fn read_keys_and_reservation() {
        let k = PrAnswer::Keys {
            generation: 4,
            keys: vec![0x123abc, 0x123abc],
        };
        assert_eq!(
            pr_in(&k).unwrap(),
            "  PR generation=0x4, \t2 registered reservation keys follow:\n    0x123abc\n    0x123abc\n"
        );
        let none = PrAnswer::Keys {
            generation: 0,
            keys: vec![],
        };
        assert_eq!(
            pr_in(&none).unwrap(),
            "  PR generation=0x0, \t0 registered reservation key.\n"
        );
        let r = PrAnswer::Reservation {
            generation: 5,
            reservation: Some(PrReservation {
                key: 0x123abc,
                scope: 0,
                rtype: 5,
            }),
        };
        assert_eq!(
            pr_in(&r).unwrap(),
            "  PR generation=0x5, Reservation follows:\n   Key = 0x123abc\n  scope = LU_SCOPE, type = Write Exclusive, registrants only\n"
        );
        let no = PrAnswer::Reservation {
            generation: 5,
            reservation: None,
        };
        assert_eq!(
            pr_in(&no).unwrap(),
            "  PR generation=0x5, there is NO reservation held \n"
        );
    }

    #[test]
    fn full_status_two_nexuses() {
        let reg = |isid: &str, holder| PrRegistration {
            key: 0xabc,
            all_tg_pt: false,
            holder,
            relative_target_port: 1,
            name: "iqn.2026-01.org.hydra:node1".into(),
            isid: Some(isid.into()),
        };
        let s = PrAnswer::FullStatus {
            generation: 2,
            descriptors: vec![reg("400001370000", Some(5)), reg("400001370001", None)],
        };
        assert_eq!(
            pr_in(&s).unwrap(),
            "  PR generation=0x2 \n\
             \x20  Key = 0xabc\n\
             \x20     All target ports bit clear\n\
             \x20     Relative port address: 0x1\n\
             \x20     << Reservation holder >>\n\
             \x20     scope: LU_SCOPE,  type: Write Exclusive, registrants only\n\
             \x20  iSCSI world wide unique port id: iqn.2026-01.org.hydra:node1,i,0x400001370000\n\
             \x20  Key = 0xabc\n\
             \x20     All target ports bit clear\n\
             \x20     Relative port address: 0x1\n\
             \x20     not reservation holder\n\
             \x20  iSCSI world wide unique port id: iqn.2026-01.org.hydra:node1,i,0x400001370001\n"
        );
    }

    #[test]
    fn capabilities_and_failures() {
        let c = PrAnswer::Capabilities(PrCapabilities {
            crh: true,
            sip_c: false,
            atp_c: true,
            ptpl_c: true,
            allow_commands: 1,
            ptpl_a: false,
            // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX | EX_AC_AR (SPC-4 §6.15.4).
            type_mask: Some(0xea01),
        });
        let text = pr_in(&c).unwrap();
        assert!(text.starts_with(
            "Report capabilities response:\n  Compatible Reservation Handling(CRH): 1\n"
        ));
        assert!(
            text.contains("      Write Exclusive, all registrants: 128\n"),
            "{text}"
        );
        assert!(
            text.contains("      Exclusive Access, all registrants: 256\n"),
            "{text}"
        );
        assert!(text.contains("      Write Exclusive: 2\n"), "{text}");
        assert_eq!(pr_in(&PrAnswer::Done), None);
        assert_eq!(
            pr_out_failed(pr_status::RESERV_CONFLICT),
            "persistent reserve out: scsi status: Reservation Conflict\nPR out: command failed\n"
        );
    }
}
