//! `multipath -a DEV`, `-w DEV` and `-W`: the node daemon edits its wwids file
//! (`wwids_file`), because it holds the file's state and the names DEV may be
//! (multipath-tools' `main.c`, `CMD_ADD_WWID`, `CMD_REMOVE_WWID`, `CMD_RESET_WWIDS`;
//! the answers are its words). As in multipath-tools the file only decides what
//! `find_multipaths` lets become a map at the next evaluation (`multipath`,
//! `multipathd reconfigure`, a login); an existing map stays when its WWID is removed.

use std::path::PathBuf;

use super::maps::{names_path, Node, State};
use crate::wwids::Wwids;

impl Node {
    /// `-a` (`add`) or `-w`: DEV is a path (`s1l0`, H:C:T:L, also one that no map
    /// uses), a map (alias, WWID, kernel device, `/dev/mapper/…`), an alias of the
    /// bindings file or of a `multipaths` entry, or else a WWID as written
    /// (multipath-tools' `get_refwwid` takes a name it cannot resolve as a WWID too).
    pub(super) async fn edit_wwid(&self, dev: &str, add: bool) -> Result<String, String> {
        let mut st = self.state().await;
        let wwid = self.wwid_of(&st, dev);
        let answer = if add {
            st.wwids
                .add(&wwid)
                .map_err(|e| format!("failed adding '{wwid}' to wwids file: {e}"))?;
            format!("wwid '{wwid}' added")
        } else if st.wwids.remove(&wwid) {
            format!("wwid '{wwid}' removed")
        } else {
            return Ok(format!("wwid '{wwid}' not in wwids file"));
        };
        save(&mut st)?;
        Ok(answer)
    }

    /// `-W`: the file lists exactly the WWIDs of the maps there are now.
    pub(super) async fn reset_wwids(&self) -> Result<String, String> {
        let mut st = self.state().await;
        let current: Vec<String> = st.maps.keys().cloned().collect();
        st.wwids
            .replace(current.iter().map(String::as_str))
            .map_err(|e| format!("could not reset wwids: {e}"))?;
        save(&mut st).map_err(|e| format!("could not reset wwids: {e}"))?;
        Ok("successfully reset wwids".to_string())
    }

    fn wwid_of(&self, st: &State, dev: &str) -> String {
        if let Some(m) = st.find(dev) {
            return m.wwid.clone();
        }
        // Every session LUN, mapped or not.
        for e in self.iscsid().registry().sessions() {
            for lun in e.luns() {
                if let (true, Some(w)) = (names_path(dev, e.sid, lun.lun), lun.wwid) {
                    return w;
                }
            }
        }
        st.wwid_of_alias(dev).to_string()
    }
}

/// Write the file; when that fails, what is in memory goes back to what the file says,
/// so that the daemon never acts on a list nobody could read after a restart.
fn save(st: &mut State) -> Result<(), String> {
    let path = PathBuf::from(&st.globals.wwids_file);
    let Err(e) = st.wwids.save(&path) else {
        return Ok(());
    };
    if let Ok((on_disk, _)) = Wwids::load(&path) {
        st.wwids = on_disk;
    }
    Err(e.to_string())
}
