//! Whether a watched root is there. A root that vanished (an unmounted drive, a renamed
//! folder) keeps its rows until it is back; so does one that turned into an empty folder with
//! another identity (device and inode), which is what an unmounted drive's mount point looks
//! like. The identities the daemon has seen are kept in `<db>/watch-roots.json`.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A folder's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
}

/// What a look at a root found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Not there, or not a folder.
    Missing,
    Folder {
        id: Identity,
        empty: bool,
    },
}

/// The verdict on a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Present,
    /// Present, with an identity not seen before: remember it.
    PresentFirstSeen(Identity),
    Absent,
}

/// The rule: a folder with the known identity is the root; an empty folder with another
/// identity is a bare mount point (absent); any other folder is the root, newly seen.
pub fn judge(known: Option<Identity>, look: Look) -> Presence {
    match look {
        Look::Missing => Presence::Absent,
        Look::Folder { id, .. } if known == Some(id) => Presence::Present,
        Look::Folder { empty: true, .. } if known.is_some() => Presence::Absent,
        Look::Folder { id, .. } => Presence::PresentFirstSeen(id),
    }
}

/// Looks at a root on disk.
pub fn look(root: &Path) -> Look {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Look::Folder {
            id: identity(&meta),
            empty: std::fs::read_dir(root).map_or(true, |mut d| d.next().is_none()),
        },
        _ => Look::Missing,
    }
}

/// The identity of whatever is at `path` now (`None`: nothing).
pub fn identity_of(path: &Path) -> Option<Identity> {
    std::fs::metadata(path).ok().map(|meta| identity(&meta))
}

fn identity(meta: &std::fs::Metadata) -> Identity {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Identity { dev: 0, ino: 0 }
    }
}

const IDENTITIES: &str = "watch-roots.json";

/// The identities recorded in the database folder (none if the file is missing or unreadable:
/// every root is then newly seen).
pub fn load_identities(db_dir: &Path) -> HashMap<String, Identity> {
    std::fs::read_to_string(db_dir.join(IDENTITIES))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

pub fn save_identities(
    db_dir: &Path,
    identities: &HashMap<String, Identity>,
) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(identities).expect("serialisable");
    crate::util::write_atomic(&db_dir.join(IDENTITIES), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Identity = Identity { dev: 1, ino: 10 };
    const B: Identity = Identity { dev: 2, ino: 99 };

    #[test]
    fn an_empty_stranger_where_a_root_was_is_a_mount_point() {
        let folder = |id, empty| Look::Folder { id, empty };
        assert_eq!(judge(Some(A), folder(A, false)), Presence::Present);
        assert_eq!(judge(Some(A), folder(A, true)), Presence::Present);
        assert_eq!(judge(Some(A), folder(B, true)), Presence::Absent);
        assert_eq!(
            judge(Some(A), folder(B, false)),
            Presence::PresentFirstSeen(B)
        );
        assert_eq!(judge(None, folder(B, true)), Presence::PresentFirstSeen(B));
        assert_eq!(judge(Some(A), Look::Missing), Presence::Absent);
        assert_eq!(judge(None, Look::Missing), Presence::Absent);
    }

    #[test]
    fn identities_are_kept_in_the_database_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_identities(dir.path()).is_empty());
        let mut ids = HashMap::new();
        ids.insert("/photos".to_string(), A);
        save_identities(dir.path(), &ids).unwrap();
        assert_eq!(load_identities(dir.path()), ids);
        assert!(matches!(
            look(dir.path()),
            Look::Folder { empty: false, .. }
        ));
        assert_eq!(look(&dir.path().join("nope")), Look::Missing);
    }
}
