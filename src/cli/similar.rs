//! `imgsim similar`: the indexed images most like a picture, through the watch daemon when one
//! runs (its models are loaded already), else on the database directly.

use std::path::{Path, PathBuf};

use imgsim::search::Query;
use imgsim::store::Store;
use imgsim::util::path_string;
use serde::{Deserialize, Serialize};

use super::common::{
    at_least_one, canonical, cosine, embed_one, not_indexed, print_json, print_path_line, DbArgs,
    JsonPath, ModelArgs,
};
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct SimilarArgs {
    /// An image file (indexed or not). An indexed file's stored vector is reused.
    #[arg(value_name = "QUERY")]
    query: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    db: DbArgs,
    /// How many images to show (at least 1).
    #[arg(short = 'k', long, default_value_t = 10, value_parser = at_least_one)]
    k: usize,
    /// Only hits with at least this cosine similarity, from -1 to 1 (e.g. 0.8).
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
    /// models already loaded).
    #[arg(long)]
    no_daemon: bool,
}

/// `imgsim similar --json` lines.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SimilarLine {
    Hit {
        rank: usize,
        score: f32,
        #[serde(flatten)]
        path: JsonPath,
    },
    Summary {
        query: String,
        model: String,
        hits: usize,
        indexed: usize,
        /// Whether the query's stored vector was used (it is indexed).
        query_indexed: bool,
    },
}

pub fn run(args: SimilarArgs) -> anyhow::Result<Outcome> {
    let db_dir = args.db.dir()?;
    let canonical = canonical(&args.query)?;
    let query_path = path_string(&canonical);
    if !args.no_daemon {
        if let Some(outcome) = similar_by_daemon(&args, &db_dir, &canonical, &query_path)? {
            return Ok(outcome);
        }
    }
    let store = Store::open(&db_dir, false)?;
    // A registry model that no table holds is said before its weights are looked for.
    if let (None, Ok(source)) = (&args.model.model_dir, args.model.source()) {
        let name = source.label();
        if !store.tables()?.iter().any(|t| t.model == name) {
            return Err(not_indexed(&name, args.model.precision, &db_dir, &store));
        }
    }
    let embedder = args.model.embedder(None)?;
    let model = embedder.model();
    let Some(table) = store.table(&model.id)? else {
        return Err(not_indexed(
            &model.name,
            args.model.precision,
            &db_dir,
            &store,
        ));
    };
    let query = Query {
        path: &query_path,
        k: args.k,
        filter: args.filter.as_deref(),
        min_score: args.min_score,
    };
    let results =
        imgsim::search::similar(&table, &query, || embed_one(&embedder, &canonical), None)?;
    let hits: Vec<(String, f32)> = results
        .hits
        .into_iter()
        .map(|h| (h.path, h.score))
        .collect();
    Ok(print_hits(
        &args,
        &db_dir,
        &model.name,
        &query_path,
        &hits,
        results.indexed,
        results.query_indexed,
    ))
}

/// The daemon's answer, if a daemon runs on this database and holds the model. The query's
/// bytes are read here and sent: the daemon never opens a file for a client.
#[cfg(unix)]
fn similar_by_daemon(
    args: &SimilarArgs,
    db_dir: &Path,
    canonical: &Path,
    query_path: &str,
) -> anyhow::Result<Option<Outcome>> {
    use imgsim::watch::socket::{self, Request, Response, SimilarRequest};
    let image =
        imgsim::decode::read_image_file(canonical).map_err(|error| imgsim::Error::Decode {
            path: canonical.to_path_buf(),
            error,
        })?;
    let model_dir = args
        .model
        .model_dir
        .as_deref()
        .map(super::common::canonical)
        .transpose()?;
    let request = Request::Similar(SimilarRequest {
        model: args.model.model.clone(),
        model_dir,
        query_path: query_path.to_string(),
        k: args.k,
        filter: args.filter.clone(),
        min_score: args.min_score,
        image_bytes: image.len() as u64,
        precision: args.model.precision,
    });
    match socket::ask(db_dir, &request, &image)? {
        None | Some(Response::NotLoaded { .. }) => Ok(None),
        Some(Response::Hits {
            model,
            hits,
            indexed,
            query_indexed,
        }) => {
            let hits: Vec<(String, f32)> = hits.into_iter().map(|h| (h.path, h.score)).collect();
            Ok(Some(print_hits(
                args,
                db_dir,
                &model,
                query_path,
                &hits,
                indexed,
                query_indexed,
            )))
        }
        Some(Response::Error { message }) => anyhow::bail!("{message}"),
        Some(other) => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    }
}

#[cfg(not(unix))]
fn similar_by_daemon(
    _: &SimilarArgs,
    _: &Path,
    _: &Path,
    _: &str,
) -> anyhow::Result<Option<Outcome>> {
    Ok(None)
}

fn print_hits(
    args: &SimilarArgs,
    db_dir: &Path,
    model: &str,
    query_path: &str,
    hits: &[(String, f32)],
    indexed: usize,
    query_indexed: bool,
) -> Outcome {
    if indexed == 0 {
        eprintln!("imgsim: the {model} index in {} is empty", db_dir.display());
        return Outcome::NothingFound;
    }
    for (i, (path, score)) in hits.iter().enumerate() {
        if args.json {
            print_json(&SimilarLine::Hit {
                rank: i + 1,
                score: *score,
                path: JsonPath::of_key(path),
            });
        } else {
            print_path_line(&format!("{:>3}  {:.4}  ", i + 1, score), path, "");
        }
    }
    if args.json {
        print_json(&SimilarLine::Summary {
            query: imgsim::util::display_key(query_path),
            model: model.to_string(),
            hits: hits.len(),
            indexed,
            query_indexed,
        });
    }
    if hits.is_empty() {
        Outcome::NothingFound
    } else {
        Outcome::Done
    }
}
