//! APTPL (SPC-4 §5.13.4): the persistent reservation state of a LUN survives power loss
//! — here, a daemon crash or restart. The state is one JSON file per LUN in the daemon's
//! state directory, replaced atomically (temporary file, fsync, rename, fsync of the
//! directory) before the PERSISTENT RESERVE OUT that changed it completes. With APTPL
//! off the file is removed.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use super::State;

/// The state saved in `file`, or empty when there is none. A file that cannot be read
/// or parsed is reported (naming it) and ignored: the LUN starts without reservations
/// rather than not at all.
pub fn load(file: &Path) -> State {
    match fs::read(file) {
        Ok(b) => match serde_json::from_slice::<State>(&b) {
            Ok(s)
                if s.reservation
                    .as_ref()
                    .is_none_or(|r| r.holder < s.registrants.len()) =>
            {
                s
            }
            Ok(_) => {
                tracing::error!(
                    "{}: reservation holder out of range; ignored",
                    file.display()
                );
                State::default()
            }
            Err(e) => {
                tracing::error!(
                    "{}: not a saved reservation state ({e}); ignored",
                    file.display()
                );
                State::default()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => {
            tracing::error!(
                "{}: {e}; starting without saved reservations",
                file.display()
            );
            State::default()
        }
    }
}

/// Make `s` the saved state of `file` (or remove the file when APTPL is off).
pub fn store(file: &Path, s: &State) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    if !s.aptpl {
        return match fs::remove_file(file) {
            Ok(()) => File::open(dir)?.sync_all(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
    }
    fs::create_dir_all(dir)?;
    let tmp = file.with_extension("json.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, file)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::super::{Registrant, Reservation};
    use super::*;
    use hydra_proto::scsi::pr::PrType;

    #[test]
    fn saved_state_comes_back_and_aptpl_off_removes_it() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("pr/iqn.x/1.json");
        let s = State {
            generation: 7,
            registrants: vec![Registrant {
                initiator: "iqn.2026-11.org.hydra:a".into(),
                isid: Some([0x40, 0, 0, 0, 0, 1]),
                port: 2,
                all_tg_pt: false,
                key: 0xabcd,
            }],
            reservation: Some(Reservation {
                holder: 0,
                rtype: PrType::WriteExclusiveRegistrantsOnly,
            }),
            aptpl: true,
        };
        store(&f, &s).unwrap();
        // The type is saved as its SPC-4 code, as files written before it was typed.
        let saved = fs::read_to_string(&f).unwrap();
        assert!(saved.contains(r#""rtype": 5"#), "{saved}");
        assert_eq!(load(&f), s);
        store(&f, &State::default()).unwrap();
        assert!(!f.exists());
        assert_eq!(load(&f), State::default());
    }

    #[test]
    fn corrupt_files_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("1.json");
        fs::write(&f, b"{ not json").unwrap();
        assert_eq!(load(&f), State::default());
        fs::write(&f, br#"{"generation":1,"registrants":[],"reservation":{"holder":3,"rtype":1},"aptpl":true}"#).unwrap();
        assert_eq!(load(&f), State::default());
    }
}
