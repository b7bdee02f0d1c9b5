//! `imgsim similar` and `imgsim search`: the indexed images nearest a query vector, narrowed
//! by a filter. Shared by the commands (working on the database directly) and the watch
//! daemon's query server. `similar`'s query is one image; `search`'s is a weighted sum of
//! words and images (`Terms`), normalised.

use crate::error::Result;
use crate::store::{Hit, ModelTable};

/// A search as the user asked for it.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// The query image's canonical path: if it is indexed, its stored vector is used and it is
    /// left out of the hits.
    pub path: &'a str,
    pub k: usize,
    /// tantivy query syntax over name, dir, ext and tag.
    pub filter: Option<&'a str>,
    pub min_score: Option<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    pub hits: Vec<Hit>,
    /// Rows in the table.
    pub indexed: usize,
    /// Whether the query's stored vector was used.
    pub query_indexed: bool,
}

/// Runs `query` on `table`; `embed` is called only when the query image is not indexed.
/// `filters_lock` serialises rebuilds of the filter index within one process.
pub fn similar(
    table: &ModelTable<'_>,
    query: &Query<'_>,
    embed: impl FnOnce() -> Result<Vec<f32>>,
    filters_lock: Option<&std::sync::Mutex<()>>,
) -> Result<Results> {
    let indexed = table.count()?;
    if indexed == 0 {
        return Ok(Results {
            hits: Vec::new(),
            indexed,
            query_indexed: false,
        });
    }
    let stored = table.row(query.path)?;
    let query_indexed = stored.is_some();
    let vector = match stored {
        Some(row) => row.vector,
        None => embed()?,
    };
    let hits = nearest(
        table,
        &vector,
        indexed,
        &Narrowing {
            k: query.k,
            filter: query.filter,
            min_score: query.min_score,
            exclude: &[query.path],
        },
        filters_lock,
    )?;
    Ok(Results {
        hits,
        indexed,
        query_indexed,
    })
}

/// What narrows a search by vector.
#[derive(Debug, Clone)]
pub struct Narrowing<'a> {
    pub k: usize,
    /// tantivy query syntax over name, dir, ext and tag.
    pub filter: Option<&'a str>,
    pub min_score: Option<f32>,
    /// Paths never returned (the query's own images).
    pub exclude: &'a [&'a str],
}

/// The `k` rows nearest `vector` (L2-normalised) that pass the narrowing, best first, in a
/// table of `indexed` rows (`ModelTable::count`, which the callers report too).
pub fn nearest(
    table: &ModelTable<'_>,
    vector: &[f32],
    indexed: usize,
    narrowing: &Narrowing<'_>,
    filters_lock: Option<&std::sync::Mutex<()>>,
) -> Result<Vec<Hit>> {
    // No search returns more rows than the table has (a `-k` of 2^64 - 1 is the table).
    let k = narrowing.k.min(indexed);
    if k == 0 {
        return Ok(Vec::new());
    }
    // The table excludes one path itself; more are fetched and dropped here.
    let (first, rest) = match narrowing.exclude.split_first() {
        Some((first, rest)) => (Some(*first), rest),
        None => (None, &[][..]),
    };
    let wanted = k.saturating_add(rest.len()).min(indexed);
    let mut hits = match narrowing.filter {
        None => table.nearest(vector, wanted, first)?,
        Some(filter) => {
            let allowed = {
                let _guard = filters_lock.map(|l| l.lock());
                table.filters()?.matching_paths(filter)?
            };
            table.nearest_among(vector, wanted, first, &allowed)?
        }
    };
    hits.retain(|h| !rest.contains(&h.path.as_str()));
    hits.truncate(k);
    if let Some(min) = narrowing.min_score {
        hits.retain(|h| h.score >= min);
    }
    Ok(hits)
}

/// One term of a `search` query as the user typed it: its words (or an image's path) and its
/// signed weight (`-` before it negates; `N:` in front scales it).
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub weight: f32,
    /// The command-line words of the term, in order (unquoted words run together).
    pub parts: Vec<String>,
}

impl Term {
    /// The term's text: its words joined by spaces.
    pub fn text(&self) -> String {
        self.parts.join(" ")
    }
}

/// Splits a query's words into terms: `+` and `-` (each a word of its own) separate terms,
/// words in between form one term (`a dog on a beach` is one text), and a leading `N:` sets a
/// term's weight (`2:golden retriever`, `0.5:./pool.jpg`), as rclip reads its queries.
pub fn parse_terms(words: &[String]) -> std::result::Result<Vec<Term>, String> {
    let mut terms: Vec<Term> = Vec::new();
    let mut sign = 1.0f32;
    let mut open: Option<Term> = None;
    for word in words {
        match word.as_str() {
            op @ ("+" | "-") => {
                let Some(term) = open.take() else {
                    return Err(if terms.is_empty() {
                        format!("the query starts with `{op}`: put a term before it")
                    } else {
                        format!("two operators in a row (`{op}` follows another)")
                    });
                };
                terms.push(term);
                sign = if op == "-" { -1.0 } else { 1.0 };
            }
            _ if word.trim().is_empty() => return Err("an empty term (\"\")".into()),
            _ => match &mut open {
                Some(term) => term.parts.push(word.clone()),
                None => {
                    let (weight, rest) = split_weight(word)?;
                    open = Some(Term {
                        weight: sign * weight,
                        parts: vec![rest.to_string()],
                    });
                }
            },
        }
    }
    match open {
        Some(term) => terms.push(term),
        None if terms.is_empty() => return Err("an empty query: give words or an image".into()),
        None => return Err("the query ends with an operator: put a term after it".into()),
    }
    Ok(terms)
}

/// `2:golden retriever` -> (2, "golden retriever"); a word without a numeric prefix has
/// weight 1 (`12:30` is a weight of 12 on "30", as in rclip: quote around it differently).
fn split_weight(word: &str) -> std::result::Result<(f32, &str), String> {
    let Some((number, rest)) = word.split_once(':') else {
        return Ok((1.0, word));
    };
    let numeric = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !numeric {
        return Ok((1.0, word));
    }
    let weight: f32 = number
        .parse()
        .map_err(|_| format!("`{number}:` is not a weight (a number like 2 or 0.5)"))?;
    if rest.trim().is_empty() {
        return Err(format!("`{word}` has a weight but no term after it"));
    }
    if weight == 0.0 {
        return Err(format!("`{word}`: a weight of 0 leaves the term out"));
    }
    Ok((weight, rest))
}

/// `sum(weight_i * v_i)` of L2-normalised vectors, L2-normalised again; `None` when the terms
/// cancel out (nothing is left to search for).
pub fn combine(weighted: &[(f32, Vec<f32>)]) -> Option<Vec<f32>> {
    let dim = weighted.first()?.1.len();
    let mut sum = vec![0f32; dim];
    for (w, v) in weighted {
        sum.iter_mut().zip(v).for_each(|(s, x)| *s += w * x);
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm < 1e-6 {
        return None;
    }
    sum.iter_mut().for_each(|x| *x /= norm);
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    fn term(weight: f32, parts: &[&str]) -> Term {
        Term {
            weight,
            parts: words(parts),
        }
    }

    #[test]
    fn operators_separate_terms_and_words_between_them_are_one_text() {
        let terms = parse_terms(&words(&[
            "beach",
            "+",
            "./sunset.jpg",
            "-",
            "people",
            "walking",
        ]))
        .unwrap();
        assert_eq!(
            terms,
            vec![
                term(1.0, &["beach"]),
                term(1.0, &["./sunset.jpg"]),
                term(-1.0, &["people", "walking"]),
            ]
        );
        assert_eq!(terms[2].text(), "people walking");
        let one = parse_terms(&words(&["a dog on a beach"])).unwrap();
        assert_eq!(one, vec![term(1.0, &["a dog on a beach"])]);
    }

    #[test]
    fn a_numeric_prefix_weights_a_term_and_the_sign_applies_to_it() {
        let terms = parse_terms(&words(&["2:golden retriever", "-", "0.5:fruit"])).unwrap();
        assert_eq!(
            terms,
            vec![term(2.0, &["golden retriever"]), term(-0.5, &["fruit"])]
        );
        // Not a number: the colon is part of the words.
        let url = parse_terms(&words(&["note: a cat"])).unwrap();
        assert_eq!(url, vec![term(1.0, &["note: a cat"])]);
    }

    #[test]
    fn malformed_queries_are_refused_with_a_reason() {
        for (query, says) in [
            (&[][..], "empty query"),
            (&["+", "dog"][..], "starts with"),
            (&["dog", "-"][..], "ends with"),
            (&["dog", "+", "-", "cat"][..], "two operators"),
            (&["  "][..], "empty term"),
            (&["2:"][..], "no term"),
            (&["0:dog"][..], "weight of 0"),
            (&["1.2.3:dog"][..], "not a weight"),
        ] {
            let err = parse_terms(&words(query)).unwrap_err();
            assert!(err.contains(says), "{query:?}: {err}");
        }
    }

    #[test]
    fn combined_vectors_are_normalised_and_opposites_cancel() {
        let x = vec![1.0, 0.0];
        let y = vec![0.0, 1.0];
        let v = combine(&[(1.0, x.clone()), (1.0, y.clone())]).unwrap();
        assert!((v[0] - v[1]).abs() < 1e-6 && (v[0] - 0.5f32.sqrt()).abs() < 1e-6);
        let w = combine(&[(3.0, x.clone()), (-1.0, y)]).unwrap();
        assert!((w[0] * w[0] + w[1] * w[1] - 1.0).abs() < 1e-6 && w[1] < 0.0);
        assert_eq!(combine(&[(1.0, x.clone()), (-1.0, x)]), None);
        assert_eq!(combine(&[]), None);
    }
}
