//! `imgsim bench serve`: how soon the page shows the first screen of results, measured in a
//! real browser (headless Chromium through ChromeDriver) against `imgsim serve` on an indexed
//! library: from the query to every thumbnail on the first screen decoded. Each query runs
//! twice: once to fill the thumbnail cache (reported as "cold"), once measured with the
//! thumbnails cached (the goal: 300 ms).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use imgsim::bench::browser::Browser;
use imgsim::bench::percentile;
use imgsim::serve::Serve;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::json;

use super::common::{print_json, DbArgs};
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct ServeBenchArgs {
    /// Queries to time, each "more like this" on a random indexed photo, half of them with
    /// --where as well.
    #[arg(long, default_value_t = 20)]
    queries: usize,
    /// A filter for half of the queries.
    #[arg(long = "where", value_name = "FILTER", default_value = "ext:jpg")]
    filter: String,
    /// The model whose table is searched (default: the first).
    #[arg(long)]
    model: Option<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    db: DbArgs,
    /// One JSON line with the figures.
    #[arg(long)]
    json: bool,
}

/// Times one search from the page's own code: the query, then every thumbnail on the first
/// screen loaded. Returns milliseconds.
const TIMED_SEARCH: &str = r#"
const [id, where, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const idle = () => state.loading
  ? new Promise(r => setTimeout(() => idle().then(r), 20)) : Promise.resolve();
idle().then(() => {
document.querySelector('#where').value = where;
state.mode = 'row'; state.id = id;
const t0 = performance.now();
return runSearch().then(() => {
  const onScreen = [...document.querySelectorAll('#results img')]
    .filter(i => i.getBoundingClientRect().top < innerHeight);
  Promise.all(onScreen.map(i => i.complete && i.naturalWidth > 0 ? 1
      : new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })))
    .then(() => done([performance.now() - t0, onScreen.length]));
});
});
"#;

pub fn run(args: ServeBenchArgs) -> anyhow::Result<Outcome> {
    let db_dir = args.db.dir()?;
    let store = imgsim::store::Store::open(&db_dir, false)?;
    let tables = store.tables()?;
    let info = match &args.model {
        Some(m) => tables.iter().find(|t| &t.model == m),
        None => tables.first(),
    }
    .ok_or_else(|| anyhow::anyhow!("no such index in {}", db_dir.display()))?
    .clone();
    let table = store
        .table(&info.model_id)?
        .ok_or_else(|| anyhow::anyhow!("the {} table is missing", info.model))?;
    let mut paths = table.paths()?;
    let rows = paths.len();
    anyhow::ensure!(rows > 0, "the {} index is empty", info.model);
    drop(table);
    drop(store);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    paths.shuffle(&mut rng);
    paths.truncate(args.queries.max(1));

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let server = {
        let (stop, db_dir) = (stop.clone(), db_dir.clone());
        std::thread::spawn(move || {
            Serve::new(&db_dir)
                .bind("127.0.0.1:0".parse().expect("an address"))
                .execute(&stop, |started| {
                    let _ = tx.send(started.url.clone());
                })
        })
    };
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| anyhow::anyhow!("the server did not start"))?;
    let result = measure(&args, &url, &info.model, &paths);
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    let (mut cold, mut warm, shown) = result?;
    cold.sort_by(f64::total_cmp);
    warm.sort_by(f64::total_cmp);
    // p50, p90 and the slowest, in milliseconds.
    let spread = |v: &[f64]| [0.5, 0.9, 1.0].map(|q| percentile(v, q));
    let (cold, warm) = (spread(&cold), spread(&warm));
    if args.json {
        let ms = |[p50, p90, max]: [f64; 3]| json!({"p50": p50, "p90": p90, "max": max});
        print_json(&json!({
            "type": "serve_bench",
            "model": info.model,
            "rows": rows,
            "queries": paths.len(),
            "first_screen_thumbnails": shown,
            "cold_ms": ms(cold),
            "cached_ms": ms(warm),
        }));
    } else {
        println!(
            "serve: {} queries on {rows} {} rows, first screen = {shown} thumbnails (1280x900)",
            paths.len(),
            info.model
        );
        for (label, [p50, p90, max]) in [
            ("thumbnails made on demand:", cold),
            ("thumbnails cached:        ", warm),
        ] {
            println!("  {label} p50 {p50:.0} ms, p90 {p90:.0} ms, max {max:.0} ms");
        }
    }
    Ok(Outcome::Done)
}

/// (cold times, cached times, thumbnails on the first screen) in milliseconds.
fn measure(
    args: &ServeBenchArgs,
    url: &str,
    model: &str,
    paths: &[String],
) -> anyhow::Result<(Vec<f64>, Vec<f64>, usize)> {
    let browser = Browser::start(1280, 900).map_err(|e| anyhow::anyhow!(e))?;
    browser.goto(url).map_err(|e| anyhow::anyhow!(e))?;
    browser
        .wait_for(
            "the page",
            "return document.body.dataset.ready === '1';",
            Duration::from_secs(120),
        )
        .map_err(|e| anyhow::anyhow!(e))?;
    browser
        .run(
            "document.body.dataset.ready = '0'; const s = document.querySelector('#model'); s.value = arguments[0]; s.dispatchEvent(new Event('change'));",
            json!([model]),
        )
        .map_err(|e| anyhow::anyhow!(e))?;
    browser
        .wait_for(
            "the first page of the model",
            "return document.body.dataset.ready === '1';",
            Duration::from_secs(120),
        )
        .map_err(|e| anyhow::anyhow!(e))?;
    let (mut cold, mut warm, mut shown) = (Vec::new(), Vec::new(), 0);
    for round in 0..2 {
        for (i, path) in paths.iter().enumerate() {
            let id = imgsim::serve::row_id(path);
            let filter = if i % 2 == 1 { args.filter.as_str() } else { "" };
            let answer = browser
                .run_async(TIMED_SEARCH, json!([id, filter]))
                .map_err(|e| anyhow::anyhow!(e))?;
            let ms = answer[0].as_f64().unwrap_or(f64::NAN);
            shown = shown.max(answer[1].as_u64().unwrap_or(0) as usize);
            if round == 0 { &mut cold } else { &mut warm }.push(ms);
        }
    }
    Ok((cold, warm, shown))
}
