//! SendTargets discovery (RFC 7143 §12.3, Appendix C): a discovery session, one Text
//! Request `SendTargets=All` (continued while the target sets C), then Logout. The
//! answer lists each target with its portals (`TargetAddress=ip:port,tpgt`); a target
//! without TargetAddress is reachable at the portal asked.

use std::net::SocketAddr;
use std::time::Duration;

use hydra_proto::framing::{encode, Digests};
use hydra_proto::negotiate::LocalParams;
use hydra_proto::pdu::{LogoutRequest, Pdu, Repr, TextRequest, RESERVED_TAG};
use hydra_proto::send_targets::{TargetAddress, TargetRecord};
use hydra_proto::text;
use tokio::io::AsyncWriteExt;

use crate::conn::{connect, read_frame};
use crate::login::{Chap, LoginConfig};
use crate::{Error, Result};

/// One portal of a target: address as the target wrote it (`ip` or `[ipv6]`), port and
/// portal group tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    pub address: String,
    pub port: u16,
    pub tpgt: u16,
}

/// A discovered target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub name: String,
    pub portals: Vec<Portal>,
}

/// Parse the SendTargets answer (key=value pairs in order), with the defaults of the
/// portal `at` that was asked: its port where an address has none, tag 1 where the
/// target gave none, and `at` itself for a target without any address (§12.3).
pub fn parse_send_targets(keys: &[(String, String)], at: SocketAddr) -> Result<Vec<Discovered>> {
    let records = TargetRecord::parse_all(keys)?;
    Ok(records
        .into_iter()
        .map(|r| {
            let addresses = if r.addresses.is_empty() {
                vec![TargetAddress::of(at, 1)]
            } else {
                r.addresses
            };
            Discovered {
                name: r.name,
                portals: addresses
                    .into_iter()
                    .map(|a| Portal {
                        address: a.host,
                        port: a.port.unwrap_or(at.port()),
                        tpgt: a.tpgt.unwrap_or(1),
                    })
                    .collect(),
            }
        })
        .collect())
}

/// Discover the targets behind portal `at`.
pub async fn send_targets(
    at: SocketAddr,
    initiator_name: &str,
    chap: Option<Chap>,
    timeout: Duration,
) -> Result<Vec<Discovered>> {
    let mut isid = [0x40, 0, 0, 0, 0, 0];
    getrandom::getrandom(&mut isid[2..]).map_err(|e| Error::Auth(format!("random: {e}")))?;
    let cfg = LoginConfig {
        initiator_name: initiator_name.to_string(),
        target_name: None,
        isid,
        tsih: 0,
        chap,
        params: LocalParams {
            max_recv_data_segment_length: 65_536,
            ..LocalParams::default()
        },
    };
    let (mut stream, mut buf, est) = connect(at, &cfg, timeout).await?;
    let digests = Digests {
        header: est.params.header_digest,
        data: est.params.data_digest,
    };
    let work = async {
        let mut keys_data: Vec<u8> = Vec::new();
        let mut offer = Vec::new();
        text::emit(&[("SendTargets", "All")], &mut offer);
        let mut ttt = RESERVED_TAG;
        let mut exp_stat_sn = est.exp_stat_sn;
        let mut cmd_sn = est.exp_cmd_sn;
        for _ in 0..1024 {
            let req = TextRequest {
                immediate: true,
                final_: true,
                cont: false,
                lun: 0,
                itt: 1,
                ttt,
                cmd_sn,
                exp_stat_sn,
            };
            stream
                .write_all(&encode(&req.emit(offer.len()), &offer, digests))
                .await
                .map_err(|e| Error::io("write", e))?;
            offer.clear();
            let f = read_frame(&mut stream, &mut buf, digests, 1 << 20).await?;
            let Pdu::TextResponse(r) = Pdu::parse(&f.bhs)? else {
                return Err(Error::Protocol(
                    "expected a Text Response to SendTargets".into(),
                ));
            };
            exp_stat_sn = r.stat_sn.wrapping_add(1);
            cmd_sn = r.exp_cmd_sn;
            keys_data.extend_from_slice(&f.data);
            if !r.cont {
                let keys = text::parse_repeated(&keys_data)?;
                let found = parse_send_targets(&keys, at)?;
                let bye = LogoutRequest {
                    immediate: true,
                    reason: 0,
                    itt: 2,
                    cid: 0,
                    cmd_sn,
                    exp_stat_sn,
                };
                let _ = stream.write_all(&encode(&bye.emit(0), &[], digests)).await;
                return Ok(found);
            }
            ttt = r.ttt;
        }
        Err(Error::Protocol("SendTargets answer never ended".into()))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| Error::Protocol(format!("SendTargets to {at} timed out")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_parsing() {
        let at: SocketAddr = "10.200.0.1:3260".parse().unwrap();
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        let keys = vec![
            kv("TargetName", "iqn.x:a"),
            kv("TargetAddress", "10.200.1.1:3260,1"),
            kv("TargetAddress", "[fd00::1]:3261,2"),
            kv("TargetName", "iqn.x:b"),
        ];
        let d = parse_send_targets(&keys, at).unwrap();
        assert_eq!(
            d[0].portals[1],
            Portal {
                address: "[fd00::1]".into(),
                port: 3261,
                tpgt: 2
            }
        );
        assert_eq!(
            d[1].portals,
            vec![Portal {
                address: "10.200.0.1".into(),
                port: 3260,
                tpgt: 1
            }]
        );
        assert!(parse_send_targets(&[kv("TargetAddress", "1.2.3.4:1,1")], at).is_err());
        assert!(parse_send_targets(
            &[kv("TargetName", "a"), kv("TargetAddress", "1.2.3.4:x,1")],
            at
        )
        .is_err());
    }
}
