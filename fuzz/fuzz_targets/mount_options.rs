//! `hydra mount`'s `-o` parser and fstab parser: options or a usage error, never a
//! panic; what they return holds together (ro ⇔ MS_RDONLY, data never holds a hydra or
//! userspace-only option, fstab entries have absolute mount points and parse their
//! own options or fail naming their line). The state record and the LVB holder record
//! decode whatever bytes they are given, and what encodes decodes back.
#![no_main]
use hydra_cluster::mount::lock::Holder;
use hydra_cluster::mount::state::Record;
use hydra_cluster::mount::{fstab, options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match options::parse(&[&text]) {
        Ok(o) => {
            assert_eq!(o.read_only(), o.flags & libc_rdonly() != 0);
            // (A quoted value may hold commas: only unquoted data splits at them.)
            let plain = if o.data.contains('"') { "" } else { o.data.as_str() };
            for item in plain.split(',').filter(|s| !s.is_empty()) {
                let name = item.split('=').next().unwrap_or("");
                assert!(!matches!(name, "lockwait" | "nofence" | "x-hydra" | "defaults" | "noauto"));
                assert!(!name.starts_with("x-"));
            }
        }
        Err(e) => assert!(matches!(e, hydra_cluster::Error::Usage(_)), "{e:?}"),
    }
    match fstab::parse(&text) {
        Ok(entries) => {
            for e in entries {
                assert!(e.dir.is_absolute());
                if let Err(x) = e.mount_options() {
                    assert!(x.to_string().contains(&format!("fstab line {}", e.line)));
                }
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fstab line "), "{e}"),
    }
    if let Ok(r) = Record::decode(&text, "fuzz") {
        assert_eq!(Record::decode(&r.encode(), "fuzz").unwrap(), r);
    }
    if data.len() >= 32 {
        let b: [u8; 32] = data[..32].try_into().unwrap();
        if let Some(h) = Holder::decode(&b) {
            assert_eq!(Holder::decode(&h.encode()), Some(h));
        }
    }
});

/// MS_RDONLY (1 on Linux), without a libc dependency here.
fn libc_rdonly() -> u64 {
    1
}
