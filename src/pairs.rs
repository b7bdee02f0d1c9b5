//! RAW + rendered pairs: a camera that writes RAW and JPEG (or HEIC) writes two files of one
//! shot, `IMG_4032.CR2` and `IMG_4032.JPG`, side by side. Their rows are linked (each row's
//! `pair` names the other file), so that `dupes` treats them as one shot in two forms, never
//! as duplicates to clean up, and scripts can tell them apart.
//!
//! The rule ([`pairs_in_folder`]) is pure: same folder, same file stem in any letter case,
//! one a camera RAW and the other not, taken within [`SAME_SHOT`] of each other. Where a RAW
//! has several candidates, the nearest in time wins (then the first by path).

use std::collections::HashMap;

use crate::metadata::Meta;
use crate::util::path_of;

/// The longest gap between the times two files of one shot say they were taken.
pub const SAME_SHOT_NS: i64 = 2_000_000_000;

/// One file of a folder as the rule sees it.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub path: &'a str,
    pub meta: &'a Meta,
}

/// The partner of each file of one folder that has one (both directions).
pub fn pairs_in_folder(entries: &[Entry<'_>]) -> HashMap<String, String> {
    let mut by_stem: HashMap<String, (Vec<&Entry>, Vec<&Entry>)> = HashMap::new();
    for entry in entries {
        let path = path_of(entry.path);
        let Some(stem) = path.file_stem() else {
            continue;
        };
        let (raws, rendered) = by_stem
            .entry(stem.to_string_lossy().to_lowercase())
            .or_default();
        if crate::scan::is_raw_extension(&path) {
            raws.push(entry);
        } else {
            rendered.push(entry);
        }
    }
    let mut pairs = HashMap::new();
    for (_, (mut raws, mut rendered)) in by_stem {
        raws.sort_by_key(|e| e.path);
        rendered.sort_by_key(|e| e.path);
        for raw in raws {
            let Some(raw_taken) = raw.meta.taken else {
                continue;
            };
            let nearest = rendered
                .iter()
                .filter(|r| !pairs.contains_key(r.path))
                .filter_map(|r| {
                    let gap = (r.meta.taken?.local_ns - raw_taken.local_ns).abs();
                    (gap <= SAME_SHOT_NS).then_some((gap, *r))
                })
                .min_by_key(|(gap, r)| (*gap, r.path));
            if let Some((_, partner)) = nearest {
                pairs.insert(raw.path.to_string(), partner.path.to_string());
                pairs.insert(partner.path.to_string(), raw.path.to_string());
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Taken, TakenFrom};

    fn meta(seconds: i64) -> Meta {
        Meta {
            format: Some("x".into()),
            taken: Some(Taken {
                local_ns: seconds * 1_000_000_000,
                offset_min: None,
                source: TakenFrom::Exif,
            }),
            ..Meta::default()
        }
    }

    #[test]
    fn a_raw_and_its_rendered_file_of_one_shot_are_a_pair() {
        let (at_0, at_1, at_3, none) = (meta(100), meta(101), meta(103), Meta::default());
        let entries = [
            Entry {
                path: "/p/IMG_1.CR2",
                meta: &at_0,
            },
            Entry {
                path: "/p/img_1.jpg",
                meta: &at_1,
            },
            // Same name, taken 3 s later: another shot (a camera's counter wrapped).
            Entry {
                path: "/p/IMG_2.NEF",
                meta: &at_0,
            },
            Entry {
                path: "/p/IMG_2.JPG",
                meta: &at_3,
            },
            // Two rendered files: the nearer in time.
            Entry {
                path: "/p/IMG_3.dng",
                meta: &at_0,
            },
            Entry {
                path: "/p/IMG_3.heic",
                meta: &at_1,
            },
            Entry {
                path: "/p/IMG_3.jpg",
                meta: &at_0,
            },
            // No date: no pair.
            Entry {
                path: "/p/IMG_4.ARW",
                meta: &none,
            },
            Entry {
                path: "/p/IMG_4.jpg",
                meta: &at_0,
            },
            // Two JPEGs of one name are no pair.
            Entry {
                path: "/p/a.jpg",
                meta: &at_0,
            },
            Entry {
                path: "/p/a.jpeg",
                meta: &at_0,
            },
        ];
        let pairs = pairs_in_folder(&entries);
        assert_eq!(
            pairs.get("/p/IMG_1.CR2").map(String::as_str),
            Some("/p/img_1.jpg")
        );
        assert_eq!(
            pairs.get("/p/img_1.jpg").map(String::as_str),
            Some("/p/IMG_1.CR2")
        );
        assert!(!pairs.contains_key("/p/IMG_2.NEF"));
        assert_eq!(
            pairs.get("/p/IMG_3.dng").map(String::as_str),
            Some("/p/IMG_3.jpg")
        );
        assert!(!pairs.contains_key("/p/IMG_3.heic"));
        assert!(!pairs.contains_key("/p/IMG_4.ARW"));
        assert!(!pairs.contains_key("/p/a.jpg"));
        assert_eq!(pairs.len(), 4);
    }
}
