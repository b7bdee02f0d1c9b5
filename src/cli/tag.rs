//! `imgsim tag`: tags belong to files, so they are set in every model's table that holds the
//! file, and searched with `--where 'tag:...'`.

use std::path::{Path, PathBuf};

use imgsim::store::Store;
use imgsim::util::path_string;
use serde::{Deserialize, Serialize};

use super::common::{canonical, lock_for_writing, print_json, print_path_line, DbArgs, JsonPath};
use super::Outcome;

#[derive(clap::Subcommand, Debug)]
pub enum TagCommand {
    /// Add tags to indexed images.
    Add(TagArgs),
    /// Remove tags from indexed images.
    Rm(TagArgs),
    /// Show the tags of indexed images.
    Ls {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct TagArgs {
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// A tag (repeatable).
    #[arg(long = "tag", short = 't', required = true, value_name = "TAG")]
    tags: Vec<String>,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TagLine {
    #[serde(flatten)]
    pub path: JsonPath,
    pub tags: Vec<String>,
}

/// Tags belong to files, so they are set in every model's table that holds the file.
pub fn run(command: TagCommand) -> anyhow::Result<Outcome> {
    match command {
        TagCommand::Add(args) => change_tags(args, true),
        TagCommand::Rm(args) => change_tags(args, false),
        TagCommand::Ls { paths, db, json } => {
            let store = Store::open(&db.dir()?, false)?;
            let mut missing = 0;
            for path in &paths {
                let key = canonical_string(path)?;
                let mut tags: Vec<String> = Vec::new();
                let mut found = false;
                for info in store.tables()? {
                    if let Some(row) = store
                        .table(&info.model_id)?
                        .and_then(|t| t.row(&key).ok().flatten())
                    {
                        found = true;
                        for tag in row.tags {
                            if !tags.contains(&tag) {
                                tags.push(tag);
                            }
                        }
                    }
                }
                if !found {
                    missing += 1;
                    eprintln!("imgsim: {}: not indexed", path.display());
                    continue;
                }
                if json {
                    print_json(&TagLine {
                        path: JsonPath::of_key(&key),
                        tags,
                    });
                } else {
                    print_path_line("", &key, &format!("\t{}", tags.join(", ")));
                }
            }
            Ok(if missing > 0 {
                Outcome::SomeFailed
            } else {
                Outcome::Done
            })
        }
    }
}

fn canonical_string(path: &Path) -> anyhow::Result<String> {
    Ok(path_string(&canonical(path)?))
}

fn change_tags(args: TagArgs, add: bool) -> anyhow::Result<Outcome> {
    let db_dir = args.db.dir()?;
    let store = Store::open(&db_dir, false)?;
    let _lock = lock_for_writing(&db_dir, "imgsim tag")?;
    let keys: Vec<String> = args
        .paths
        .iter()
        .map(|p| canonical_string(p))
        .collect::<anyhow::Result<_>>()?;
    let mut seen = std::collections::HashSet::new();
    for info in store.tables()? {
        let Some(table) = store.table(&info.model_id)? else {
            continue;
        };
        let mut changed = Vec::new();
        for key in &keys {
            if let Some(mut row) = table.row(key)? {
                seen.insert(key.clone());
                for tag in &args.tags {
                    let has = row.tags.contains(tag);
                    if add && !has {
                        row.tags.push(tag.clone());
                    } else if !add && has {
                        row.tags.retain(|t| t != tag);
                    }
                }
                changed.push(row);
            }
        }
        table.upsert(&changed)?;
        table.filters()?;
    }
    let missing: Vec<&String> = keys.iter().filter(|k| !seen.contains(*k)).collect();
    for key in &missing {
        eprintln!("imgsim: {key}: not indexed, so not tagged");
    }
    Ok(if missing.is_empty() {
        Outcome::Done
    } else {
        Outcome::SomeFailed
    })
}
