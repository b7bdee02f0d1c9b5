//! From linked pairs to groups, without chains.
//!
//! Merging every linked pair transitively (union-find, as Immich and czkawka do) lets a group
//! grow along a chain: A looks like B, B like C, ... and the first and last images share
//! nothing. Here a group is a clique: every member is linked to every other member (each pair
//! at or above the threshold). Groups are grown greedily: the image with the most links (then
//! the highest total score, then the lowest index, so that the result does not depend on the
//! order pairs were found) starts a group, and its neighbours join it best score first as
//! long as each is linked to all members so far. An image belongs to at most one group.

use std::collections::{HashMap, HashSet};

/// A pair of items (indices) whose similarity is at or above the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    pub a: u32,
    pub b: u32,
    pub score: f32,
}

/// The groups of at least `min_size` items formed from `links` (see the module docs), each
/// sorted by index, in the order they were formed (most linked first).
pub fn cliques(links: &[Link], min_size: usize) -> Vec<Vec<u32>> {
    let mut neighbours: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
    let mut linked: HashSet<(u32, u32)> = HashSet::with_capacity(links.len());
    for link in links.iter().filter(|l| l.a != l.b) {
        let key = (link.a.min(link.b), link.a.max(link.b));
        if !linked.insert(key) {
            continue;
        }
        neighbours
            .entry(link.a)
            .or_default()
            .push((link.b, link.score));
        neighbours
            .entry(link.b)
            .or_default()
            .push((link.a, link.score));
    }
    let is_linked = |x: u32, y: u32| linked.contains(&(x.min(y), x.max(y)));
    for list in neighbours.values_mut() {
        list.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
    }
    let mut starts: Vec<(u32, usize, f32)> = neighbours
        .iter()
        .map(|(&item, list)| (item, list.len(), list.iter().map(|(_, s)| s).sum()))
        .collect();
    starts.sort_by(|x, y| y.1.cmp(&x.1).then(y.2.total_cmp(&x.2)).then(x.0.cmp(&y.0)));

    let mut taken: HashSet<u32> = HashSet::new();
    let mut groups = Vec::new();
    for (start, _, _) in starts {
        if taken.contains(&start) {
            continue;
        }
        let mut members = vec![start];
        for &(candidate, _) in &neighbours[&start] {
            if !taken.contains(&candidate) && members.iter().all(|&m| is_linked(m, candidate)) {
                members.push(candidate);
            }
        }
        if members.len() < 2 {
            continue;
        }
        taken.extend(members.iter().copied());
        if members.len() >= min_size {
            members.sort_unstable();
            groups.push(members);
        }
    }
    groups
}

/// Pairwise precision and recall of `groups` against the pairs that truly are duplicates:
/// every two members of a group are a pair `dupes` claims.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairQuality {
    /// Pairs inside the groups.
    pub claimed: usize,
    /// Of them, true.
    pub correct: usize,
    /// True pairs in all.
    pub truth: usize,
    pub precision: f64,
    pub recall: f64,
}

/// Scores `groups` against `truth` (pairs as (smaller, larger) item).
pub fn pair_quality(groups: &[Vec<u32>], truth: &HashSet<(u32, u32)>) -> PairQuality {
    let mut claimed = 0;
    let mut correct = 0;
    for group in groups {
        for (i, &a) in group.iter().enumerate() {
            for &b in &group[i + 1..] {
                claimed += 1;
                correct += usize::from(truth.contains(&(a.min(b), a.max(b))));
            }
        }
    }
    let share = |n: usize, of: usize| if of == 0 { 1.0 } else { n as f64 / of as f64 };
    PairQuality {
        claimed,
        correct,
        truth: truth.len(),
        precision: share(correct, claimed),
        recall: share(correct, truth.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(a: u32, b: u32, score: f32) -> Link {
        Link { a, b, score }
    }

    #[test]
    fn a_chain_is_not_one_group() {
        // 0 ~ 1 ~ 2, and 0 and 2 unrelated: 1 goes with its closer neighbour only.
        let groups = cliques(&[link(0, 1, 0.95), link(1, 2, 0.97)], 2);
        assert_eq!(groups, vec![vec![1, 2]]);
        // A long chain falls into pairs, never one group.
        let chain: Vec<Link> = (0..10).map(|i| link(i, i + 1, 0.95)).collect();
        let groups = cliques(&chain, 2);
        assert!(groups.iter().all(|g| g.len() == 2), "{groups:?}");
        assert_eq!(groups.len(), 5);
    }

    #[test]
    fn every_member_is_linked_to_every_other() {
        // A triangle plus a fourth item linked to two of its three.
        let links = [
            link(0, 1, 0.99),
            link(0, 2, 0.98),
            link(1, 2, 0.97),
            link(3, 0, 0.96),
            link(3, 1, 0.96),
        ];
        let groups = cliques(&links, 2);
        assert_eq!(groups[0], vec![0, 1, 2]);
        for group in &groups {
            for &a in group {
                for &b in group {
                    assert!(
                        a == b
                            || links
                                .iter()
                                .any(|l| (l.a, l.b) == (a, b) || (l.b, l.a) == (a, b))
                    );
                }
            }
        }
        // 3 is left alone: its neighbours are taken.
        assert_eq!(groups.len(), 1);
    }

    #[test]
    fn the_result_does_not_depend_on_the_order_of_the_pairs() {
        let mut links = vec![
            link(5, 6, 0.93),
            link(6, 7, 0.94),
            link(5, 7, 0.92),
            link(1, 2, 0.99),
            link(2, 3, 0.99),
            link(7, 8, 0.91),
        ];
        let first = cliques(&links, 2);
        links.reverse();
        for l in &mut links {
            std::mem::swap(&mut l.a, &mut l.b);
        }
        assert_eq!(cliques(&links, 2), first);
        assert_eq!(first, vec![vec![5, 6, 7], vec![1, 2]]);
    }

    #[test]
    fn pair_quality_counts_every_pair_inside_a_group() {
        // Truth: 1-2, 1-3, 2-3 (three copies of one photo) and 7-8.
        let truth: HashSet<(u32, u32)> = [(1, 2), (1, 3), (2, 3), (7, 8)].into();
        // One right group of three (3 pairs), one wrong pair.
        let q = pair_quality(&[vec![1, 2, 3], vec![4, 8]], &truth);
        assert_eq!((q.claimed, q.correct, q.truth), (4, 3, 4));
        assert_eq!((q.precision, q.recall), (0.75, 0.75));
        let none = pair_quality(&[], &truth);
        assert_eq!((none.precision, none.recall), (1.0, 0.0));
    }

    #[test]
    fn repeated_pairs_self_links_and_small_groups() {
        let links = [link(1, 1, 1.0), link(1, 2, 0.9), link(2, 1, 0.9)];
        assert_eq!(cliques(&links, 2), vec![vec![1, 2]]);
        assert!(cliques(&links, 3).is_empty());
        assert!(cliques(&[], 2).is_empty());
    }
}
