//! Which image of a group to keep: a rule the user names, the rest as tie-breaks.
//!
//! The default keeps the most information: most pixels, then the largest file (less
//! compression), then the oldest (the original, before copies were made), then the shortest
//! path, then the first path in byte order, so that every group has exactly one keeper and
//! the same library always gives the same answer.

use std::cmp::Ordering;

/// What the rule needs to know of an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    pub path: &'a str,
    pub width: u32,
    pub height: u32,
    pub size: u64,
    /// Nanoseconds since the Unix epoch (the date taken when known, else the file's time).
    pub time_ns: i64,
}

/// `--keep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    /// Most pixels, then largest file, then oldest, then shortest path.
    Best,
    /// The largest file first.
    Largest,
    Newest,
    Oldest,
    /// Images under this folder (or path prefix) first.
    PathPrefix(String),
}

impl std::str::FromStr for Keep {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text {
            "best" => Keep::Best,
            "largest" => Keep::Largest,
            "newest" => Keep::Newest,
            "oldest" => Keep::Oldest,
            _ => match text.strip_prefix("path:") {
                Some(prefix) if !prefix.is_empty() => Keep::PathPrefix(prefix.to_string()),
                _ => {
                    return Err(format!(
                        "'{text}' is not a rule: best, largest, newest, oldest or path:PREFIX"
                    ))
                }
            },
        })
    }
}

/// The text `--keep` takes (what the daemon is sent).
impl std::fmt::Display for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keep::Best => f.write_str("best"),
            Keep::Largest => f.write_str("largest"),
            Keep::Newest => f.write_str("newest"),
            Keep::Oldest => f.write_str("oldest"),
            Keep::PathPrefix(prefix) => write!(f, "path:{prefix}"),
        }
    }
}

impl Keep {
    /// `Less` when `a` is the better keeper.
    pub fn compare(&self, a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
        let pixels = |c: &Candidate<'_>| u64::from(c.width) * u64::from(c.height);
        let first = match self {
            Keep::Best => Ordering::Equal,
            Keep::Largest => b.size.cmp(&a.size),
            Keep::Newest => b.time_ns.cmp(&a.time_ns),
            Keep::Oldest => a.time_ns.cmp(&b.time_ns),
            Keep::PathPrefix(prefix) => {
                let under = |c: &Candidate<'_>| under(c.path, prefix);
                under(b).cmp(&under(a))
            }
        };
        first
            .then_with(|| pixels(b).cmp(&pixels(a)))
            .then_with(|| b.size.cmp(&a.size))
            .then_with(|| a.time_ns.cmp(&b.time_ns))
            .then_with(|| a.path.len().cmp(&b.path.len()))
            .then_with(|| a.path.cmp(b.path))
    }

    /// The index of the keeper among `candidates` (none when empty).
    pub fn choose(&self, candidates: &[Candidate<'_>]) -> Option<usize> {
        (0..candidates.len()).min_by(|&x, &y| self.compare(&candidates[x], &candidates[y]))
    }
}

/// Whether `path` is `prefix` or lies under it as a folder; a prefix that does not end at a
/// separator also matches names that start with it (`/photos/2023` matches
/// `/photos/2023-trip/a.jpg`), as a user typing a prefix expects.
fn under(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(path: &str, width: u32, height: u32, size: u64, time_ns: i64) -> Candidate<'_> {
        Candidate {
            path,
            width,
            height,
            size,
            time_ns,
        }
    }

    #[test]
    fn the_default_keeps_pixels_then_bytes_then_age_then_the_short_path() {
        let keep = Keep::Best;
        let small = c("/p/a.jpg", 100, 100, 9_000, 1);
        let big = c("/p/b.jpg", 200, 200, 5_000, 9);
        assert_eq!(keep.choose(&[small.clone(), big.clone()]), Some(1));
        let heavier = c("/p/c.jpg", 200, 200, 6_000, 9);
        assert_eq!(keep.choose(&[big.clone(), heavier.clone()]), Some(1));
        let older = c("/p/d.jpg", 200, 200, 6_000, 2);
        assert_eq!(keep.choose(&[heavier.clone(), older.clone()]), Some(1));
        let other = c("/p/e/x.jpg", 200, 200, 6_000, 2);
        let longest = c("/p/elsewhere/x.jpg", 200, 200, 6_000, 2);
        assert_eq!(keep.choose(&[longest, other, older]), Some(2));
        // Equal in all but the name: the first in byte order, whatever the input order.
        let x = c("/p/x.jpg", 1, 1, 1, 1);
        let y = c("/p/y.jpg", 1, 1, 1, 1);
        assert_eq!(keep.choose(&[y.clone(), x.clone()]), Some(1));
        assert_eq!(keep.choose(&[x, y]), Some(0));
        assert_eq!(keep.choose(&[]), None);
    }

    #[test]
    fn a_named_rule_comes_first_and_the_default_breaks_its_ties() {
        let a = c("/old/a.jpg", 100, 100, 10, 1);
        let b = c("/new/b.jpg", 400, 400, 99, 5);
        assert_eq!(Keep::Oldest.choose(&[b.clone(), a.clone()]), Some(1));
        assert_eq!(Keep::Newest.choose(&[a.clone(), b.clone()]), Some(1));
        assert_eq!(Keep::Largest.choose(&[a.clone(), b.clone()]), Some(1));
        let keep_old: Keep = "path:/old".parse().unwrap();
        assert_eq!(keep_old.choose(&[b.clone(), a.clone()]), Some(1));
        // Both under the prefix: the default decides.
        let a2 = c("/old/z.jpg", 800, 800, 10, 1);
        assert_eq!(keep_old.choose(&[a.clone(), a2]), Some(1));
    }

    #[test]
    fn rules_parse_with_clear_refusals() {
        assert_eq!("largest".parse::<Keep>(), Ok(Keep::Largest));
        assert!("path:".parse::<Keep>().unwrap_err().contains("path:PREFIX"));
        assert!("biggest".parse::<Keep>().unwrap_err().contains("'biggest'"));
    }
}
