//! `imgsim serve`: the local web page. The library's `serve` answers; this layer reads the
//! flags, says where the page is (and warns when it is reachable from other machines), and
//! stops on Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use imgsim::serve::{Serve, Started, DEFAULT_BIND};

use super::common::{print_json, DbArgs};
use super::Outcome;

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on. The default answers only this machine; another address
    /// (0.0.0.0:8417 for every network) lets other machines in: give it a --token.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_BIND)]
    pub bind: SocketAddr,
    /// Open the page in the desktop's browser once it is up.
    #[arg(long)]
    pub open: bool,
    /// Every request must carry this token (for access from other machines); `--token` alone
    /// makes a random one. The address printed at start carries it.
    #[arg(long, value_name = "TOKEN", num_args = 0..=1, default_missing_value = "")]
    pub token: Option<String>,
    /// The thumbnail cache (beside the database) never grows past this many megabytes.
    #[arg(long, value_name = "MB", default_value_t = 512)]
    pub thumbs_max_mb: u64,
    /// Delete the cached thumbnails and exit.
    #[arg(long)]
    pub clear_thumbs: bool,
    /// Weights for a table indexed with --model-dir (needed to search with a new picture).
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Say where the page is as one JSON line on stdout.
    #[arg(long)]
    pub json: bool,
}

impl ServeArgs {
    /// The server these flags describe, for `serve` and `watch --serve`.
    pub fn server(&self, db_dir: &std::path::Path) -> Serve {
        let token = self.token.as_ref().map(|t| {
            if t.is_empty() {
                imgsim::serve::guard::new_token()
            } else {
                t.clone()
            }
        });
        Serve::new(db_dir)
            .bind(self.bind)
            .access_token(token)
            .thumbs_max_bytes(self.thumbs_max_mb.saturating_mul(1 << 20))
            .model_dir(self.model_dir.clone())
    }

    /// What a started server prints.
    pub fn announce(&self, started: &Started) {
        if self.json {
            print_json(&serde_json::json!({
                "type": "serving",
                "url": started.url,
                "addr": started.addr.to_string(),
            }));
        } else {
            eprintln!("imgsim: serving the page at {}", started.url);
        }
        if started.exposed {
            eprintln!(
                "imgsim: warning: {} is reachable from other machines{}",
                started.addr,
                if self.token.is_some() {
                    ""
                } else {
                    ", and no --token is set: anyone who can reach it sees your photos"
                }
            );
        }
        if self.open {
            if let Err(e) = imgsim::serve::open_on_desktop(&started.url) {
                eprintln!(
                    "imgsim: could not open a browser ({e}); open {} yourself",
                    started.url
                );
            }
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<Outcome> {
    let db_dir = args.db.dir()?;
    anyhow::ensure!(
        db_dir.is_dir(),
        "no index at {}: run `imgsim index DIR` first (or name the database with --db)",
        db_dir.display()
    );
    if args.clear_thumbs {
        let thumbs = imgsim::serve::thumbs::Thumbs::open(&db_dir, u64::MAX);
        let freed = thumbs.clear();
        eprintln!(
            "imgsim: {} of thumbnails deleted",
            super::common::human_bytes(freed)
        );
        return Ok(Outcome::Done);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }
    args.server(&db_dir)
        .execute(&stop, |started| args.announce(started))?;
    eprintln!("imgsim: stopped");
    Ok(Outcome::Done)
}
