//! `imgsim dupes`: groups of duplicate and near-duplicate images in an index.
//!
//! Read every row of a model's table; rows with the same content hash are one image for the
//! search (exact copies, found without a vector); `neighbours` finds every pair of images at
//! or above the threshold (exact up to 20,000 images, an in-memory inverted file past that);
//! `groups` turns the pairs into groups where every member is linked to every other (no
//! chains); `keeper` picks the image to keep by the user's rule; `bursts` tells shots taken
//! seconds apart (EXIF) from copies of one shot. RAW files beside a rendered
//! file of the same name (`IMG_1.CR2` + `IMG_1.JPG`) are a pair of their own kind, found by
//! name on disk: they are one shot, not a duplicate to remove.
//!
//! Finding groups changes no file. `apply` acts on a report only when asked (`--apply`),
//! writing every change to a journal first (`journal`), so that `dupes undo` puts it back.
//! The library draws nothing.

pub mod apply;
pub mod bursts;
pub mod calibrate;
pub mod groups;
pub mod ignored;
pub mod journal;
pub mod keeper;
pub mod neighbours;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::progress::Progress;
use crate::store::{ModelTable, Row};
pub use keeper::Keep;
pub use neighbours::Method;

/// Extensions of camera RAW files (compared in lower case).
pub const RAW_EXTENSIONS: [&str; 12] = [
    "cr2", "cr3", "nef", "nrw", "arw", "raf", "orf", "dng", "rw2", "pef", "srw", "x3f",
];
/// Extensions of files rendered from a RAW (a camera's JPEG, a phone's HEIC, an export).
const RENDERED_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "heic", "heif", "tif", "tiff", "png"];

/// What a group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Every member has the same bytes (content hash).
    Exact,
    /// Members look alike at or above the threshold (re-encoded, resized, cropped, edited).
    Near,
    /// Members look alike, and EXIF says they are shots taken seconds apart by one camera:
    /// each a photo of its own, kept all.
    Burst,
    /// A RAW file and the file rendered from it (same folder and name): one shot, kept both.
    RawJpeg,
}

impl Kind {
    /// Whether the group's extra members are proposed for removal.
    pub fn removable(self) -> bool {
        matches!(self, Kind::Exact | Kind::Near)
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Exact => "exact copies",
            Kind::Near => "near duplicates",
            Kind::Burst => "burst (shots seconds apart)",
            Kind::RawJpeg => "RAW + rendered",
        }
    }
}

/// One image of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The row's path key.
    pub path: String,
    /// Cosine similarity to the keeper (1 for the keeper and exact copies; `None` for a RAW
    /// file that is not indexed).
    pub score: Option<f32>,
    pub width: u32,
    pub height: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: String,
    /// The one to keep (the first member).
    pub keep: bool,
    /// Whether the row is in the index (a RAW partner found on disk may not be).
    pub indexed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub kind: Kind,
    /// The keeper first, then the others by score (best first), then path.
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Rows read from the table.
    pub rows: usize,
    /// Distinct contents among them (rows with the same hash count once).
    pub images: usize,
    /// Pairs of distinct contents at or above the threshold.
    pub pairs: usize,
    pub method: Method,
    pub threshold: f32,
    pub groups: Vec<Group>,
}

/// Finds the groups of one table: `Dupes::new(&table, 0.9).keep(Keep::Oldest).execute(..)`.
pub struct Dupes<'t, 's> {
    table: &'t ModelTable<'s>,
    threshold: f32,
    min_group: usize,
    keep: Keep,
    method: Option<Method>,
    raw_pairs: bool,
    within: Vec<String>,
    apart: HashSet<(String, String)>,
    bursts: bool,
}

impl<'t, 's> Dupes<'t, 's> {
    /// Pairs at or above the cosine `threshold` are linked.
    pub fn new(table: &'t ModelTable<'s>, threshold: f32) -> Self {
        Self {
            table,
            threshold,
            min_group: 2,
            keep: Keep::Best,
            method: None,
            raw_pairs: true,
            within: Vec::new(),
            apart: HashSet::new(),
            bursts: true,
        }
    }

    /// Groups with fewer members are not reported (at least 2).
    pub fn min_group(mut self, n: usize) -> Self {
        self.min_group = n.max(2);
        self
    }

    pub fn keep(mut self, keep: Keep) -> Self {
        self.keep = keep;
        self
    }

    /// How pairs are found (default: exact up to 20,000 images, lists past that).
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Whether near-duplicate groups are checked for bursts in their members' EXIF (default:
    /// yes; it reads the EXIF of grouped images only).
    pub fn bursts(mut self, on: bool) -> Self {
        self.bursts = on;
        self
    }

    /// Whether RAW + rendered pairs are looked for on disk (default: yes).
    pub fn raw_pairs(mut self, on: bool) -> Self {
        self.raw_pairs = on;
        self
    }

    /// Images the user said are not duplicates of each other are never linked.
    pub fn ignoring(mut self, ignored: &ignored::Ignored) -> Self {
        self.apart = ignored.pairs();
        self
    }

    /// Only images under these folders (canonical paths) take part; none given: all.
    pub fn within(mut self, folders: &[PathBuf]) -> Self {
        self.within = folders
            .iter()
            .map(|f| crate::util::path_string(f))
            .collect();
        self
    }

    pub fn execute(self, progress: &mut dyn Progress, stop: &AtomicBool) -> Result<Report> {
        let mut rows = self.table.all_rows()?;
        if !self.within.is_empty() {
            rows.retain(|row| self.within.iter().any(|folder| is_under(&row.path, folder)));
        }
        // Path order: the same library gives the same answer, whatever order Lance returns.
        rows.sort_by(|a, b| a.path.cmp(&b.path));
        let dim = self.table.info.dim;

        // One vector per distinct content.
        let mut by_hash: HashMap<String, Vec<usize>> = HashMap::new();
        let mut contents: Vec<usize> = Vec::new(); // content -> its first row
        let mut vectors: Vec<f32> = Vec::new();
        for (i, row) in rows.iter_mut().enumerate() {
            let copies = by_hash.entry(row.hash.clone()).or_default();
            if copies.is_empty() && row.vector.len() == dim {
                contents.push(i);
                vectors.extend_from_slice(&row.vector);
            }
            copies.push(i);
            row.vector = Vec::new();
        }
        let content_of: HashMap<&str, usize> = contents
            .iter()
            .enumerate()
            .map(|(c, &i)| (rows[i].hash.as_str(), c))
            .collect();
        let method = self.method.unwrap_or(Method::for_size(contents.len()));
        let links = neighbours::pairs_at_least(
            &vectors,
            dim,
            self.threshold,
            Some(method),
            progress,
            stop,
        )?;
        let hash_of = |content: u32| rows[contents[content as usize]].hash.as_str();
        // A RAW and the JPEG of the same shot look alike by design: a pair of their own
        // kind (below), never duplicates to clean up.
        let mut apart = self.apart.clone();
        let hash_of_path: HashMap<&str, &str> = rows
            .iter()
            .map(|r| (r.path.as_str(), r.hash.as_str()))
            .collect();
        for row in &rows {
            if let Some(partner) = row.meta.pair.as_deref().and_then(|p| hash_of_path.get(p)) {
                apart.insert(ignored::ordered(&row.hash, partner));
            }
        }
        let links: Vec<groups::Link> = links
            .into_iter()
            .filter(|l| {
                apart.is_empty() || !apart.contains(&ignored::ordered(hash_of(l.a), hash_of(l.b)))
            })
            .collect();
        let cliques = groups::cliques(&links, 2);

        let vector_of = |content: usize| &vectors[content * dim..(content + 1) * dim];
        let mut found = Vec::new();
        let mut grouped: HashSet<usize> = HashSet::new();
        for clique in &cliques {
            let members: Vec<usize> = clique
                .iter()
                .flat_map(|&c| by_hash[&rows[contents[c as usize]].hash].iter().copied())
                .collect();
            grouped.extend(clique.iter().map(|&c| c as usize));
            found.push((Kind::Near, members));
        }
        for (c, &first) in contents.iter().enumerate() {
            let copies = &by_hash[&rows[first].hash];
            if copies.len() >= 2 && !grouped.contains(&c) {
                found.push((Kind::Exact, copies.clone()));
            }
        }
        // Rows whose vector could not be used (a wrong width) still group as exact copies.
        for copies in by_hash.values() {
            if copies.len() >= 2 && !content_of.contains_key(rows[copies[0]].hash.as_str()) {
                found.push((Kind::Exact, copies.clone()));
            }
        }

        let mut groups: Vec<Group> = found
            .into_iter()
            .filter(|(_, members)| members.len() >= self.min_group)
            .map(|(kind, members)| {
                let candidates: Vec<keeper::Candidate<'_>> =
                    members.iter().map(|&i| candidate(&rows[i])).collect();
                let keeper = self.keep.choose(&candidates).unwrap_or(0);
                let keeper_content = content_of.get(rows[members[keeper]].hash.as_str());
                let mut out: Vec<Member> = members
                    .iter()
                    .map(|&i| {
                        let row = &rows[i];
                        let score = match (keeper_content, content_of.get(row.hash.as_str())) {
                            (Some(&k), Some(&c)) => Some(dot(vector_of(k), vector_of(c))),
                            _ => (row.hash == rows[members[keeper]].hash).then_some(1.0),
                        };
                        member(row, score, i == members[keeper], true)
                    })
                    .collect();
                sort_members(&mut out);
                Group { kind, members: out }
            })
            .collect();
        if self.bursts {
            for group in groups.iter_mut().filter(|g| g.kind == Kind::Near) {
                let shots: Vec<_> = group
                    .members
                    .iter()
                    .map(|m| crate::metadata::shot(&crate::util::path_of(&m.path)))
                    .collect();
                if bursts::is_burst(&shots) {
                    group.kind = Kind::Burst;
                }
            }
        }
        if self.raw_pairs {
            groups.extend(raw_pairs(&rows));
        }
        groups.sort_by(|a, b| {
            a.kind
                .cmp(&b.kind)
                .then(b.members.len().cmp(&a.members.len()))
                .then_with(|| a.members[0].path.cmp(&b.members[0].path))
        });
        Ok(Report {
            rows: rows.len(),
            images: contents.len(),
            pairs: links.len(),
            method,
            threshold: self.threshold,
            groups,
        })
    }
}

/// A JSON file that `dupes` keeps in the database folder (`file`): its value, or the default
/// when there is none yet; an unreadable one is an error that ends with `what_to_do`.
fn load_json<T: Default + serde::de::DeserializeOwned>(
    db_dir: &Path,
    file: &str,
    what_to_do: &str,
) -> Result<T> {
    let path = db_dir.join(file);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| crate::Error::Dataset {
            path,
            reason: format!("unreadable ({e}); {what_to_do}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(cause) => Err(crate::Error::Io { path, cause }),
    }
}

/// Writes `value` to `file` in the database folder, atomically.
fn save_json<T: Serialize>(db_dir: &Path, file: &str, value: &T) -> Result<()> {
    let path = db_dir.join(file);
    let bytes = serde_json::to_vec_pretty(value).expect("serialisable");
    crate::util::write_atomic(&path, &bytes).map_err(|cause| crate::Error::Io { path, cause })
}

fn candidate(row: &Row) -> keeper::Candidate<'_> {
    keeper::Candidate {
        path: &row.path,
        width: row.width,
        height: row.height,
        size: row.size,
        time_ns: row.mtime_ns,
    }
}

fn member(row: &Row, score: Option<f32>, keep: bool, indexed: bool) -> Member {
    Member {
        path: row.path.clone(),
        score: score.map(|s| s.min(1.0)),
        width: row.width,
        height: row.height,
        size: row.size,
        mtime_ns: row.mtime_ns,
        hash: row.hash.clone(),
        keep,
        indexed,
    }
}

fn sort_members(members: &mut [Member]) {
    members.sort_by(|a, b| {
        b.keep
            .cmp(&a.keep)
            .then(
                b.score
                    .unwrap_or(f32::NEG_INFINITY)
                    .total_cmp(&a.score.unwrap_or(f32::NEG_INFINITY)),
            )
            .then_with(|| a.path.cmp(&b.path))
    });
}

/// Whether the path key `path` is `folder` or inside it.
fn is_under(path: &str, folder: &str) -> bool {
    path == folder
        || path
            .strip_prefix(folder)
            .is_some_and(|rest| folder.ends_with('/') || rest.starts_with('/'))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The lower-case extension and the stem of a path's file name.
fn stem_and_extension(path: &Path) -> Option<(String, String)> {
    let stem = path.file_stem()?.to_string_lossy().to_lowercase();
    let ext = path.extension()?.to_string_lossy().to_lowercase();
    Some((stem, ext))
}

/// Each indexed rendered file with a RAW file of the same name in its folder (in any case):
/// one group per shot, the rendered file first. Each folder is listed once.
fn raw_pairs(rows: &[Row]) -> Vec<Group> {
    let mut by_folder: BTreeMap<PathBuf, Vec<&Row>> = BTreeMap::new();
    for row in rows {
        let path = crate::util::path_of(&row.path);
        if let Some((_, ext)) = stem_and_extension(&path) {
            if RENDERED_EXTENSIONS.contains(&ext.as_str()) {
                if let Some(folder) = path.parent() {
                    by_folder.entry(folder.to_path_buf()).or_default().push(row);
                }
            }
        }
    }
    let indexed: HashMap<&str, &Row> = rows.iter().map(|r| (r.path.as_str(), r)).collect();
    let mut groups = Vec::new();
    for (folder, rendered) in by_folder {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue; // gone or unreadable: nothing to pair
        };
        let mut raws: HashMap<String, Vec<PathBuf>> = HashMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if let Some((stem, ext)) = stem_and_extension(&path) {
                if RAW_EXTENSIONS.contains(&ext.as_str())
                    && entry.file_type().is_ok_and(|t| t.is_file())
                {
                    raws.entry(stem).or_default().push(path);
                }
            }
        }
        for row in rendered {
            let path = crate::util::path_of(&row.path);
            let Some((stem, _)) = stem_and_extension(&path) else {
                continue;
            };
            let Some(partners) = raws.get(&stem) else {
                continue;
            };
            let mut members = vec![member(row, Some(1.0), true, true)];
            for raw in partners {
                let key = crate::util::path_string(raw);
                members.push(match indexed.get(key.as_str()) {
                    Some(raw_row) => member(raw_row, None, false, true),
                    None => {
                        let meta = std::fs::metadata(raw).ok();
                        Member {
                            path: key,
                            score: None,
                            width: 0,
                            height: 0,
                            size: meta.as_ref().map_or(0, |m| m.len()),
                            mtime_ns: meta
                                .and_then(|m| m.modified().ok())
                                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                                .map_or(0, |d| d.as_nanos() as i64),
                            hash: String::new(),
                            keep: false,
                            indexed: false,
                        }
                    }
                });
            }
            groups.push(Group {
                kind: Kind::RawJpeg,
                members,
            });
        }
    }
    groups
}
