//! fence_scsi's stdin (`name=value` lines) and flags: the parsers return options or a
//! usage error, never panic; what they return holds together (devices split, a key
//! that parses is never 0). corosync-cmapctl output parsing never panics either.
#![no_main]
use hydra_cluster::fence::{cmap, parse_args, parse_stdin, Key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_stdin(&text) {
        Ok(o) => {
            assert!(o
                .devices
                .iter()
                .all(|d| !d.is_empty() && !d.contains(',') && !d.contains(char::is_whitespace)));
            if let Some(k) = &o.key {
                if let Ok(k) = Key::parse(k) {
                    assert_ne!(k.0, 0);
                    assert_eq!(Key::parse(&k.to_string()).unwrap(), k);
                }
            }
        }
        Err(e) => assert!(matches!(e, hydra_cluster::Error::Usage(_)), "{e:?}"),
    }
    let args: Vec<&str> = text.split_whitespace().collect();
    if let Err(e) = parse_args(&args) {
        assert!(matches!(e, hydra_cluster::Error::Usage(_)), "{e:?}");
    }
    let nodes = cmap::parse_nodelist(&text);
    for n in &nodes {
        let _ = cmap::find_by_plug(&nodes, n.plug().unwrap_or(""));
    }
    let _ = cmap::parse_cluster_name(&text);
});
