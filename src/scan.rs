//! Finding image files: the images of a folder (`embed`, eval layouts), and the walk of a
//! photo library with its skip rules (hidden entries, tools' junk folders, `--exclude`, no
//! links), whole (`index`, a reconcile) or under some paths (the daemon's events).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File extensions imgsim reads, lower case.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "hif", "avif",
    "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "raf", "orf", "rw2", "dng", "pef",
    "srw", "3fr", "iiq", "erf", "kdc", "dcr", "mrw", "mos",
];

/// The camera RAW extensions among [`IMAGE_EXTENSIONS`] (RAW files read through `rawler`).
pub const RAW_EXTENSIONS: &[&str] = &[
    "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "raf", "orf", "rw2", "dng", "pef",
    "srw", "3fr", "iiq", "erf", "kdc", "dcr", "mrw", "mos",
];

/// Whether the walk takes this file: by its extension, or with `sniff` by its first bytes
/// (one read of 64 bytes per file of another name; a FIFO or device is never opened).
pub fn is_image_candidate(path: &Path, sniff: bool) -> bool {
    has_image_extension(path) || (sniff && crate::metadata::sniff_file(path).is_some())
}

/// True for a path with a camera RAW extension, in any letter case.
pub fn is_raw_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| RAW_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// True for a path with an image extension, in any letter case (`.JPG`, `.Jpeg`).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The image files directly inside `dir`, sorted by path.
pub fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        cause: source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && has_image_extension(p))
        .collect();
    files.sort();
    Ok(files)
}

/// The image files under `dir`, recursively, sorted by path. Hidden files and folders are
/// skipped and links are not followed (so a link loop cannot trap the walk).
pub fn images_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let walk = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walk {
        let entry = entry.map_err(|e| Error::Io {
            path: e.path().unwrap_or(dir).to_path_buf(),
            cause: e.into(),
        })?;
        if entry.file_type().is_file() && has_image_extension(entry.path()) {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

/// Folders that hold no photos of the user's, only tools' leftovers.
const JUNK_DIRS: &[&str] = &[
    "@eaDir",
    "node_modules",
    "#recycle",
    "$RECYCLE.BIN",
    "System Volume Information",
    "lost+found",
];

/// An image file found by [`walk_library`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
}

/// The image files under `roots`, with size and modification time. Hidden files and folders,
/// the usual junk (`@eaDir`, `node_modules`, ...) and paths matching `exclude` are skipped.
/// Links are not followed: nothing outside the roots is read, and a link loop cannot trap the
/// walk. Folders that cannot be read are returned as errors beside the files.
/// With `sniff`, files of other names are taken when their first bytes are an image.
pub fn walk_library(
    roots: &[PathBuf],
    exclude: &globset::GlobSet,
    sniff: bool,
) -> (Vec<Found>, Vec<Error>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for root in roots {
        let walk = walkdir::WalkDir::new(root).into_iter().filter_entry(|e| {
            e.depth() == 0 || !is_skipped(e.path(), e.file_type().is_dir(), exclude)
        });
        for entry in walk {
            let entry = match entry {
                Ok(entry) => entry,
                // A folder deleted while the walk was in it: gone, as if walked a moment later.
                // (A root that is not there is an error: its rows must not look deleted.)
                Err(e) if e.depth() > 0 && vanished(&e) => continue,
                Err(e) => {
                    errors.push(Error::Io {
                        path: e.path().unwrap_or(root).to_path_buf(),
                        cause: e.into(),
                    });
                    continue;
                }
            };
            if !entry.file_type().is_file() || !is_image_candidate(entry.path(), sniff) {
                continue;
            }
            match entry.metadata() {
                Ok(meta) => found.push(Found {
                    path: entry.into_path(),
                    size: meta.len(),
                    mtime_ns: mtime_ns(&meta),
                }),
                // Deleted between the listing of its folder and this look at it: gone.
                Err(e) if vanished(&e) => continue,
                Err(e) => errors.push(Error::Io {
                    path: entry.path().to_path_buf(),
                    cause: e.into(),
                }),
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found.dedup_by(|a, b| a.path == b.path); // overlapping roots
    (found, errors)
}

/// Whether a walk's error says the file or folder was deleted after its folder was listed.
fn vanished(error: &walkdir::Error) -> bool {
    error
        .io_error()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// Whether the walk leaves this entry out: hidden (`.name`, which also covers `._*` and
/// editors' `.~lock` files), a junk folder, or a match of `exclude`.
fn is_skipped(path: &Path, is_dir: bool, exclude: &globset::GlobSet) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.starts_with('.')
        || (is_dir && JUNK_DIRS.contains(&name.as_ref()))
        || exclude.is_match(path)
}

/// Whether the walk of `root` leaves `path` out: it, or a folder between the root and it, is
/// hidden, a junk folder or excluded. (The path itself counts as a file here; a folder that is
/// junk is caught by [`walk_library`] when it is walked.)
pub fn walk_skips(root: &Path, path: &Path, exclude: &globset::GlobSet) -> bool {
    path.ancestors()
        .take_while(|a| *a != root)
        .enumerate()
        .any(|(i, a)| is_skipped(a, i > 0, exclude))
}

/// Like [`walk_library`], for some paths under the roots only (what file-system events
/// named): a folder is walked, a file is taken if it is an image the full walk would take, and
/// a path that no longer exists yields nothing. Paths outside every root, or inside a folder
/// the walk skips, yield nothing either.
pub fn walk_paths(
    roots: &[PathBuf],
    paths: &[PathBuf],
    exclude: &globset::GlobSet,
    sniff: bool,
) -> (Vec<Found>, Vec<Error>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let Some(root) = roots.iter().find(|r| path.starts_with(r)) else {
            continue;
        };
        if walk_skips(root, path, exclude) {
            continue;
        }
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                errors.push(Error::Io {
                    path: path.clone(),
                    cause: source,
                });
                continue;
            }
        };
        if meta.is_dir() {
            if is_skipped(path, true, exclude) && path != root {
                continue;
            }
            let (mut f, mut e) = walk_library(std::slice::from_ref(path), exclude, sniff);
            found.append(&mut f);
            errors.append(&mut e);
        } else if meta.is_file() && is_image_candidate(path, sniff) {
            found.push(Found {
                path: path.clone(),
                size: meta.len(),
                mtime_ns: mtime_ns(&meta),
            });
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found.dedup_by(|a, b| a.path == b.path);
    (found, errors)
}

/// Modification time in nanoseconds since the Unix epoch (0 where the platform has none).
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_match_in_any_case() {
        assert!(has_image_extension(Path::new("a/B.JPG")));
        assert!(has_image_extension(Path::new("x.Jpeg")));
        assert!(!has_image_extension(Path::new("notes.txt")));
        assert!(!has_image_extension(Path::new("jpg")));
    }

    #[test]
    fn the_recursive_walk_skips_hidden_entries() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "a.jpg",
            "sub/b.PNG",
            ".hidden/c.jpg",
            "sub/.d.jpg",
            "sub/e.txt",
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
        let found: Vec<PathBuf> = images_under(dir.path())
            .unwrap()
            .into_iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(found, [PathBuf::from("a.jpg"), PathBuf::from("sub/b.PNG")]);
    }

    #[test]
    fn the_library_walk_skips_junk_excludes_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("photos");
        for file in [
            "a.JPG",
            "@eaDir/a.jpg",
            "node_modules/x.png",
            "sub/._a.jpg",
            "raw/skip.jpg",
            "sub/b.webp",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"xy").unwrap();
        }
        std::fs::write(dir.path().join("outside.jpg"), b"x").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path(), root.join("loop")).unwrap();
            std::os::unix::fs::symlink(dir.path().join("outside.jpg"), root.join("l.jpg")).unwrap();
        }
        let mut exclude = globset::GlobSetBuilder::new();
        exclude.add(globset::Glob::new("**/raw").unwrap());
        let (found, errors) = walk_library(
            std::slice::from_ref(&root),
            &exclude.build().unwrap(),
            false,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<PathBuf> = found
            .iter()
            .map(|f| f.path.strip_prefix(&root).unwrap().to_path_buf())
            .collect();
        assert_eq!(names, [PathBuf::from("a.JPG"), PathBuf::from("sub/b.webp")]);
        assert_eq!(found[0].size, 2);
    }

    #[test]
    fn the_scoped_walk_takes_what_the_full_walk_would_under_those_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("photos");
        for file in [
            "a.jpg",
            "new/b.png",
            "new/.c.jpg",
            ".hidden/d.jpg",
            "x.part",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"xy").unwrap();
        }
        let paths = [
            root.join("a.jpg"),
            root.join("new"),
            root.join(".hidden/d.jpg"),
            root.join("x.part"),
            root.join("gone.jpg"),
            dir.path().join("outside.jpg"),
        ];
        let none = globset::GlobSet::empty();
        let (found, errors) = walk_paths(std::slice::from_ref(&root), &paths, &none, false);
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<PathBuf> = found
            .iter()
            .map(|f| f.path.strip_prefix(&root).unwrap().to_path_buf())
            .collect();
        assert_eq!(names, [PathBuf::from("a.jpg"), PathBuf::from("new/b.png")]);
    }
}
