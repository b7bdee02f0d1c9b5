//! `imgsim search`: the indexed images nearest a query of words, pictures, or both
//! (`"beach" + ./sunset.jpg - "people"`). Words go through CLIP's text tower (loaded only
//! when a term has words); pictures through the image tower, or their stored vectors when
//! they are indexed.

use std::path::{Path, PathBuf};

use imgsim::models::TextModel;
use imgsim::search::{Narrowing, Term};
use imgsim::store::Store;
use imgsim::util::path_string;
use serde::{Deserialize, Serialize};

use super::common::{
    at_least_one, cosine, embed_one, not_indexed, print_json, print_path_line, DbArgs, JsonPath,
    ModelArgs,
};
use super::Outcome;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    imgsim search \"a dog on a beach\"\n  \
    imgsim search \"beach\" + ./sunset.jpg - \"people\"\n  \
    imgsim search \"2:golden retriever\" + ./pool.jpg --where 'tag:2023'\n\n\
    Each term is words, an image file, or the path of an indexed image; `+` and `-` (words of \
    their own) add and subtract terms, `N:` in front of a term weights it. The weighted sum of \
    the terms' normalised embeddings is normalised and searched. Words need a model with a \
    text tower (CLIP).")]
pub struct SearchArgs {
    /// The query: terms separated by `+` or `-`.
    #[arg(value_name = "QUERY", required = true, num_args = 1..)]
    query: Vec<String>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    db: DbArgs,
    /// How many images to show (at least 1).
    #[arg(short = 'k', long, default_value_t = 20, value_parser = at_least_one)]
    k: usize,
    /// Only hits with at least this cosine similarity, from -1 to 1.
    #[arg(long, value_name = "S", allow_negative_numbers = true, value_parser = cosine)]
    min_score: Option<f32>,
    /// Only images matching this filter, in tantivy's query syntax over the fields name,
    /// dir, ext, tag, taken (dates: 2023, 2023-06, [2023-06-01 TO 2023-08-31], >=2024-01-15),
    /// camera, lens, format, iso, focal, has (gps, camera, lens, date, pair) and
    /// near:LAT,LON,KM: e.g. 'name:beach* AND tag:2023 -ext:png', 'taken:2023 AND has:gps'.
    #[arg(long = "where", value_name = "FILTER")]
    filter: Option<String>,
    /// One JSON line per hit, then a summary line.
    #[arg(long)]
    json: bool,
    /// Work on the database directly even when a watch daemon could answer (with its
    /// models, and text towers once loaded, in memory).
    #[arg(long)]
    no_daemon: bool,
}

/// `imgsim search --json` lines.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SearchLine {
    Hit {
        rank: usize,
        score: f32,
        #[serde(flatten)]
        path: JsonPath,
    },
    Summary {
        terms: Vec<TermLine>,
        model: String,
        hits: usize,
        indexed: usize,
        /// Whether the watch daemon answered.
        by_daemon: bool,
    },
}

/// How one term was read.
#[derive(Debug, Serialize, Deserialize)]
pub struct TermLine {
    pub weight: f32,
    /// `text`, `image` (embedded now) or `indexed` (its stored vector).
    pub kind: String,
    pub term: String,
}

/// A term once the filesystem and the index have said what it is.
enum Kind {
    Text(String),
    /// An image file on disk; its canonical key.
    Image(PathBuf, String),
    /// A path that is not a file here: its absolute form, which must be indexed.
    Indexed(String),
}

pub fn run(args: SearchArgs) -> anyhow::Result<Outcome> {
    let terms = imgsim::search::parse_terms(&args.query)
        .map_err(|reason| anyhow::anyhow!("query {:?}: {reason}", args.query.join(" ")))?;
    let kinds = terms
        .iter()
        .map(classify)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let db_dir = args.db.dir()?;
    if !args.no_daemon {
        if let Some(found) = search_by_daemon(&args, &db_dir, &terms, &kinds)? {
            return Ok(print(&args, &db_dir, &terms, found));
        }
    }
    let store = Store::open(&db_dir, false)?;
    let source = args.model.source()?;
    let device = super::common::select_device(args.model.device)?;

    // The text tower first when there are words: it names the table without the image tower.
    let text_model = if kinds.iter().any(|k| matches!(k, Kind::Text(_))) {
        Some(TextModel::load(&source, &device)?)
    } else {
        None
    };
    let mut embedder = None;
    let (model_name, model_id) = match &text_model {
        Some(m) => (
            m.name.clone(),
            format!("{}{}", m.id, args.model.precision.id_suffix()),
        ),
        None => {
            let e = args.model.embedder(None)?;
            let names = (e.model().name.clone(), e.model().id.clone());
            embedder = Some(e);
            names
        }
    };
    let Some(table) = store.table(&model_id)? else {
        return Err(not_indexed(
            &model_name,
            args.model.precision,
            &db_dir,
            &store,
        ));
    };

    let mut weighted = Vec::new();
    let mut read_as = Vec::new();
    let mut exclude = Vec::new();
    for (term, kind) in terms.iter().zip(&kinds) {
        let (vector, kind_name) = match kind {
            Kind::Text(text) => {
                let model = text_model.as_ref().expect("loaded for text terms");
                (model.embed(text)?, "text")
            }
            Kind::Indexed(key) => {
                exclude.push(key.clone());
                let row = table.row(key)?;
                let row = row.ok_or_else(|| imgsim::Error::UnknownPath { path: key.clone() })?;
                (row.vector, "indexed")
            }
            Kind::Image(path, key) => {
                exclude.push(key.clone());
                match table.row(key)? {
                    Some(row) => (row.vector, "indexed"),
                    None => {
                        if embedder.is_none() {
                            embedder = Some(args.model.embedder(None)?);
                        }
                        let e = embedder.as_ref().expect("just loaded");
                        if e.model().id != model_id {
                            anyhow::bail!(
                                "{} embeds into another table than the text tower's",
                                e.model().name
                            );
                        }
                        (embed_one(e, path)?, "image")
                    }
                }
            }
        };
        read_as.push(kind_name.to_string());
        weighted.push((term.weight, vector));
    }
    let vector = imgsim::search::combine(&weighted).ok_or(imgsim::Error::TermsCancel)?;
    let exclude: Vec<&str> = exclude.iter().map(String::as_str).collect();
    let indexed = table.count()?;
    let hits = imgsim::search::nearest(
        &table,
        &vector,
        indexed,
        &Narrowing {
            k: args.k,
            filter: args.filter.as_deref(),
            min_score: args.min_score,
            exclude: &exclude,
        },
        None,
    )?;
    let found = Found {
        model: model_name,
        hits: hits.into_iter().map(|h| (h.path, h.score)).collect(),
        indexed,
        kinds: read_as,
        by_daemon: false,
    };
    Ok(print(&args, &db_dir, &terms, found))
}

/// A search's answer, from the daemon or from the database.
struct Found {
    model: String,
    hits: Vec<(String, f32)>,
    indexed: usize,
    /// How each term was read: `text`, `indexed` or `image`.
    kinds: Vec<String>,
    by_daemon: bool,
}

fn print(args: &SearchArgs, db_dir: &Path, terms: &[Term], found: Found) -> Outcome {
    if found.indexed == 0 {
        eprintln!(
            "imgsim: the {} index in {} is empty",
            found.model,
            db_dir.display()
        );
        return Outcome::NothingFound;
    }
    for (i, (path, score)) in found.hits.iter().enumerate() {
        if args.json {
            print_json(&SearchLine::Hit {
                rank: i + 1,
                score: *score,
                path: JsonPath::of_key(path),
            });
        } else {
            print_path_line(&format!("{:>3}  {:.4}  ", i + 1, score), path, "");
        }
    }
    if args.json {
        let lines = terms
            .iter()
            .zip(&found.kinds)
            .map(|(t, kind)| TermLine {
                weight: t.weight,
                kind: kind.clone(),
                term: t.text(),
            })
            .collect();
        print_json(&SearchLine::Summary {
            terms: lines,
            model: found.model,
            hits: found.hits.len(),
            indexed: found.indexed,
            by_daemon: found.by_daemon,
        });
    }
    if found.hits.is_empty() {
        Outcome::NothingFound
    } else {
        Outcome::Done
    }
}

/// The daemon's answer, if a daemon runs on this database and watches the model. Pictures'
/// bytes are read here and sent: the daemon never opens a file for a client.
#[cfg(unix)]
fn search_by_daemon(
    args: &SearchArgs,
    db_dir: &Path,
    terms: &[Term],
    kinds: &[Kind],
) -> anyhow::Result<Option<Found>> {
    use imgsim::watch::socket::{self, Request, Response, SearchRequest, TermSource, WireTerm};
    let mut images = Vec::new();
    let mut wire = Vec::new();
    for (term, kind) in terms.iter().zip(kinds) {
        let source = match kind {
            Kind::Text(text) => TermSource::Text { text: text.clone() },
            Kind::Indexed(key) => TermSource::Indexed { path: key.clone() },
            Kind::Image(path, key) => {
                let bytes = imgsim::decode::read_image_file(path).map_err(|error| {
                    imgsim::Error::Decode {
                        path: path.clone(),
                        error,
                    }
                })?;
                images.extend_from_slice(&bytes);
                TermSource::Image {
                    path: key.clone(),
                    bytes: bytes.len() as u64,
                }
            }
        };
        wire.push(WireTerm {
            weight: term.weight,
            source,
        });
    }
    let model_dir = args
        .model
        .model_dir
        .as_deref()
        .map(super::common::canonical)
        .transpose()?;
    let request = Request::Search(SearchRequest {
        model: args.model.model.clone(),
        model_dir,
        terms: wire,
        k: args.k,
        filter: args.filter.clone(),
        min_score: args.min_score,
        precision: args.model.precision,
    });
    match socket::ask(db_dir, &request, &images)? {
        None | Some(Response::NotLoaded { .. }) => Ok(None),
        Some(Response::Found {
            model,
            hits,
            indexed,
            kinds,
        }) => Ok(Some(Found {
            model,
            hits: hits.into_iter().map(|h| (h.path, h.score)).collect(),
            indexed,
            kinds,
            by_daemon: true,
        })),
        Some(Response::Error { message }) => anyhow::bail!("{message}"),
        Some(other) => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    }
}

#[cfg(not(unix))]
fn search_by_daemon(
    _: &SearchArgs,
    _: &Path,
    _: &[Term],
    _: &[Kind],
) -> anyhow::Result<Option<Found>> {
    Ok(None)
}

/// Words, an image file, or an indexed path. A term that looks like a path (a `/`, or an
/// image file's extension) but is not a file here must be an indexed path; it is never words.
fn classify(term: &Term) -> anyhow::Result<Kind> {
    let text = term.text();
    let path = Path::new(&text);
    if path.is_file() {
        let canonical = super::common::canonical(path)?;
        let key = path_string(&canonical);
        return Ok(Kind::Image(canonical, key));
    }
    if term.parts.len() > 1 {
        if let Some(file) = term.parts.iter().find(|p| Path::new(p).is_file()) {
            anyhow::bail!(
                "{file:?} is an image but stands in the words {text:?}: put `+` or `-` between \
                 an image and other terms"
            );
        }
    }
    if text.contains('/') || imgsim::scan::has_image_extension(path) {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        return Ok(Kind::Indexed(path_string(&absolute)));
    }
    Ok(Kind::Text(text))
}
