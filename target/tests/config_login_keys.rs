//! The iSCSI keys a targets.conf keeps in `TargetConfig::params` are exactly what the
//! login layer's `LocalParams::set_key` takes (the daemon applies them with it).

use std::path::Path;

use hydra_proto::negotiate::LocalParams;
use hydra_target::config;

#[test]
fn kept_keys_are_accepted_by_the_login_layer() {
    let d = tempfile::tempdir().unwrap();
    let text = "<target iqn.2026-11.org.hydra:keys>
    MaxRecvDataSegmentLength 262144
    MaxXmitDataSegmentLength 262144
    HeaderDigest CRC32C,None
    DataDigest None,CRC32C
    InitialR2T No
    MaxOutstandingR2T 4
    ImmediateData No
    FirstBurstLength 131072
    MaxBurstLength 1048576
    DataPDUInOrder Yes
    DataSequenceInOrder Yes
    ErrorRecoveryLevel 0
    IFMarker No
    OFMarker No
    DefaultTime2Wait 5
    DefaultTime2Retain 30
    OFMarkInt 2048
    IFMarkInt 1-65535
    MaxConnections 2
</target>
";
    let c = config::parse_str(text, &Path::new(d.path()).join("targets.conf")).unwrap();
    let t = &c.targets[0];
    assert_eq!(t.params.len(), 14, "{:?}", t.params);
    let mut p = LocalParams::default();
    for (k, v) in &t.params {
        p.set_key(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
    }
    assert_eq!(p.max_recv_data_segment_length, 262_144);
    assert_eq!(p.max_burst_length, 1_048_576);
    assert!(!p.initial_r2t && !p.immediate_data);
}
