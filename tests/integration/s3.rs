//! A database on object storage, against a real S3 server on loopback (moto's, from PyPI:
//! `.ci/run` installs it and names it in `IMGSIM_MOTO_SERVER`; no mock of LanceDB's client).
//! Every scenario has a server (and a bucket) of its own. Where no server is installed the
//! scenarios say so and pass, unless `IMGSIM_REQUIRE_S3=1` (set by `.ci/run`).
//!
//! A server that restarts is, to imgsim, a server whose connections drop and whose port
//! refuses for a while: a proxy between the two does that (`Proxy::down`), while the data
//! stays, as it does on a real server's disk.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

const BUCKET: &str = "photos";

struct S3Server {
    child: Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A moto server with an empty bucket, or `None` (the scenario is skipped) where none is
/// installed and CI did not ask for one.
fn s3_server() -> Option<S3Server> {
    let program = std::env::var("IMGSIM_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) if std::env::var_os("IMGSIM_REQUIRE_S3").is_none() => {
            eprintln!("SKIPPED: no S3 server ({program}: {e}); `.ci/run` installs one");
            return None;
        }
        Err(e) => panic!("{program}: {e}"),
    };
    let server = S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    wait_for("the S3 server", Duration::from_secs(30), || {
        http(port, "PUT", &format!("/{BUCKET}")).is_some_and(|status| status == 200)
    });
    Some(server)
}

/// The status of a bare request to the server (moto takes requests without signatures).
fn http(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply.split_whitespace().nth(1)?.parse().ok()
}

/// Forwards connections to the server; `down` drops them all and refuses new ones (as a
/// restarting server does) until `up`; `slow` holds every chunk it forwards (a slow link), so
/// that a fault lands in the middle of the work however fast the binary under test is (a
/// release build indexes these libraries in a fraction of a second).
struct Proxy {
    endpoint: String,
    up: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(to: &str) -> Proxy {
        let upstream = to.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (is_up, conns, delay) = (up.clone(), open.clone(), delay_ms.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !is_up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut list = conns.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let delay = delay.clone();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(delay.load(Ordering::SeqCst)));
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Proxy {
            endpoint,
            up,
            delay_ms,
            open,
        }
    }

    fn slow(&self, per_chunk: Duration) {
        self.delay_ms
            .store(per_chunk.as_millis() as u64, Ordering::SeqCst);
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `imgsim` with the database at `s3://photos/<name>` on `endpoint`, credentials and endpoint
/// from the environment as a user would set them, and a cache folder of its own.
struct Remote {
    imgsim: Imgsim,
    db: String,
    _cache: tempfile::TempDir,
}

impl Remote {
    fn new(endpoint: &str, name: &str) -> Remote {
        Self::with_cache(endpoint, name, tempfile::tempdir().unwrap())
    }

    /// Another machine: the same database, another cache folder.
    fn with_cache(endpoint: &str, name: &str, cache: tempfile::TempDir) -> Remote {
        let imgsim = Imgsim::new()
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ALLOW_HTTP", "true")
            .env("IMGSIM_CACHE", cache.path().to_str().unwrap());
        Remote {
            imgsim,
            db: format!("s3://{BUCKET}/{name}"),
            _cache: cache,
        }
    }

    fn env(mut self, key: &str, value: &str) -> Remote {
        self.imgsim = self.imgsim.env(key, value);
        self
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--db", &self.db]);
        self.imgsim.run(&all)
    }

    fn spawn(&self, args: &[&str]) -> Child {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--db", &self.db]);
        self.imgsim
            .command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `index ROOT -m phash [EXTRA...] --json`: its summary line.
    fn index(&self, root: &str, extra: &[&str]) -> Value {
        let mut args = vec!["index", root, "-m", "phash"];
        args.extend(extra);
        args.push("--json");
        index_line(&self.run(&args))
    }

    /// The path of the best hit of `similar QUERY -m phash`.
    fn top_hit(&self, query: &Path) -> String {
        let query = query.to_str().unwrap();
        let out = self.run(&["similar", query, "-m", "phash", "-k", "2", "--json"]);
        out.assert_exit(0);
        let hits: Vec<Value> = out.json_lines();
        hits[0]["path"].as_str().unwrap().to_string()
    }

    /// The model lines of `status --json`.
    fn images(&self) -> u64 {
        let out = self.run(&["status", "--json"]);
        out.assert_exit(0);
        let lines: Vec<Value> = out.json_lines();
        lines
            .iter()
            .filter(|l| l["type"] == "model")
            .map(|l| l["images"].as_u64().unwrap())
            .sum()
    }
}

/// `n` COCO photos in a folder of their own.
fn library(dir: &Path, n: usize) -> PathBuf {
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let mut names: Vec<PathBuf> = std::fs::read_dir(coco())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    names.sort();
    for from in names.iter().take(n) {
        std::fs::copy(from, photos.join(from.file_name().unwrap())).unwrap();
    }
    photos.canonicalize().unwrap()
}

fn index_line(out: &Run) -> Value {
    out.assert_exit(0);
    let lines: Vec<Value> = out.json_lines();
    assert_eq!(lines.len(), 1, "{}", out.stderr());
    lines.into_iter().next().unwrap()
}

#[test]
fn a_database_on_s3_takes_every_command() {
    let Some(server) = s3_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let photos = library(dir.path(), 8);
    let remote = Remote::new(&server.endpoint, "library");
    let root = photos.to_str().unwrap();

    // Nothing there yet: said plainly, naming the address.
    remote
        .run(&["status"])
        .assert_exit(2)
        .assert_stderr_has("s3://photos/library: no index here yet");

    let first = remote.index(root, &[]);
    assert_eq!(first["added"], 8);
    assert_eq!(first["db"], "s3://photos/library");
    let again = remote.index(root, &[]);
    assert_eq!(
        (again["added"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(8))
    );
    assert_eq!(remote.images(), 8);
    let status = remote.run(&["status"]);
    status.assert_exit(0);
    assert!(
        status.stdout().contains("index: s3://photos/library"),
        "{}",
        status.stdout()
    );

    let query = photos.join("000000000009.jpg");
    let query = query.to_str().unwrap();
    let out = remote.run(&["similar", query, "-m", "phash", "-k", "3", "--json"]);
    out.assert_exit(0);
    let hits = out
        .stdout()
        .lines()
        .filter(|l| l.contains(r#""type":"hit""#))
        .count();
    assert_eq!(hits, 3, "{}", out.stdout());

    remote
        .run(&["tag", "add", query, "-t", "beach"])
        .assert_exit(0);
    let tagged = remote.run(&[
        "similar",
        query,
        "-m",
        "phash",
        "--where",
        "tag:beach",
        "--json",
    ]);
    tagged.assert_exit(1); // The only image tagged is the query itself.
    let listed = remote.run(&["tag", "ls", query, "--json"]);
    listed.assert_exit(0);
    assert!(listed.stdout().contains("beach"), "{}", listed.stdout());
    remote.run(&["optimize"]).assert_exit(0);
    assert_eq!(remote.images(), 8);

    // Another machine (another cache folder) sees the same rows and tags, and its filter
    // index is built from the table.
    let other = Remote::new(&server.endpoint, "library");
    assert_eq!(other.images(), 8);
    let listed = other.run(&["tag", "ls", query, "--json"]);
    assert!(listed.stdout().contains("beach"), "{}", listed.stdout());
    let out = other.run(&[
        "similar",
        query,
        "-m",
        "phash",
        "--where",
        "ext:jpg -tag:beach",
        "--json",
    ]);
    out.assert_exit(0);

    // A deleted file leaves the table on the next index.
    std::fs::remove_file(photos.join("000000000025.jpg")).unwrap();
    let after = other.index(root, &[]);
    assert_eq!(after["removed"], 1);
    assert_eq!(remote.images(), 7);
}

/// Three machines index one library together, one shard each, at the same moment.
#[test]
fn three_shards_at_once_index_every_file_exactly_once() {
    let Some(server) = s3_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let photos = library(dir.path(), 30);
    let root = photos.to_str().unwrap();
    let machines: Vec<Remote> = (0..3)
        .map(|_| Remote::new(&server.endpoint, "shared"))
        .collect();
    let children: Vec<Child> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let shard = format!("{}/3", i + 1);
            m.spawn(&["index", root, "-m", "phash", "--shard", &shard, "--json"])
        })
        .collect();
    let mut added = 0;
    for child in children {
        let run = Run::from(child.wait_with_output().unwrap());
        added += index_line(&run)["added"].as_u64().unwrap();
    }
    assert_eq!(added, 30);
    assert_eq!(machines[0].images(), 30);
    // A whole pass afterwards finds every file indexed once: nothing to add or remove.
    let whole = machines[1].index(root, &[]);
    assert_eq!(
        (
            whole["added"].as_u64(),
            whole["removed"].as_u64(),
            whole["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(30))
    );
}

/// A shard whose process dies half-way is run again and the table converges.
#[test]
fn a_shard_killed_half_way_and_run_again_converges() {
    let Some(server) = s3_server() else { return };
    let proxy = Proxy::start(&server.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let photos = library(dir.path(), 60);
    let root = photos.to_str().unwrap();
    let machine = Remote::new(&proxy.endpoint, "killed");
    let shard = |i: u32| format!("{i}/2");
    proxy.slow(Duration::from_millis(100));
    let mut child = machine.spawn(&["index", root, "-m", "phash", "--shard", &shard(1)]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the shard ended before it was killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    proxy.slow(Duration::ZERO);
    let rest = machine.index(root, &["--shard", &shard(2)]);
    let again = machine.index(root, &["--shard", &shard(1)]);
    let shard_two = rest["added"].as_u64().unwrap();
    let shard_one = again["added"].as_u64().unwrap() + again["unchanged"].as_u64().unwrap();
    assert_eq!(shard_one + shard_two, 60);
    assert_eq!(machine.images(), 60);
    let whole = machine.index(root, &[]);
    assert_eq!(
        (whole["added"].as_u64(), whole["unchanged"].as_u64()),
        (Some(0), Some(60))
    );
}

/// The server goes away while `index` writes: a clear error naming the database (after the
/// object store's retries, shortened here), then the same command finishes the work.
#[test]
fn a_server_that_goes_away_mid_write_is_a_clear_error_and_a_retry_finishes() {
    let Some(server) = s3_server() else { return };
    let proxy = Proxy::start(&server.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let photos = library(dir.path(), 40);
    let root = photos.to_str().unwrap();
    let machine = Remote::new(&proxy.endpoint, "restarted")
        .env("OBJECT_STORE_CLIENT_MAX_RETRIES", "2")
        .env("OBJECT_STORE_CLIENT_RETRY_TIMEOUT", "3");
    // A first table, so that the outage falls on writes of rows.
    let first = machine.index(root, &["--shard", "1/4"]);
    let kept = first["added"].as_u64().unwrap();
    assert!(kept > 0);

    proxy.slow(Duration::from_millis(50));
    let child = machine.spawn(&["index", root, "-m", "phash"]);
    std::thread::sleep(Duration::from_millis(300));
    proxy.down();
    proxy.slow(Duration::ZERO);
    let failed = Run::from(child.wait_with_output().unwrap());
    proxy.up();
    failed
        .assert_exit(2)
        .assert_stderr_has("s3://photos/restarted");
    assert!(!failed.stderr().contains(".rs:"), "{}", failed.stderr());

    // Nothing written before is lost, and a retry finishes.
    assert!(machine.images() >= kept);
    let retried = machine.index(root, &[]);
    assert_eq!(retried["images"], 40, "{retried}");
    assert_eq!(machine.images(), 40);
}

/// Two machines mount one library at different places: with the same root alias they share
/// its rows (the second finds every file indexed); a machine without the alias still finds
/// the rows, named by the alias.
#[test]
fn machines_that_mount_the_library_at_different_places_share_its_rows() {
    let Some(server) = s3_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let here = library(&dir.path().join("here"), 6);
    // The same files elsewhere, as another machine's mount shows them (same times).
    let there = dir.path().join("there/photos");
    std::fs::create_dir_all(&there).unwrap();
    for entry in std::fs::read_dir(&here).unwrap() {
        let from = entry.unwrap().path();
        let to = there.join(from.file_name().unwrap());
        std::fs::copy(&from, &to).unwrap();
        let modified = std::fs::metadata(&from).unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(&to)
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }
    let there = there.canonicalize().unwrap();
    let alias = |root: &Path| format!("library={}", root.display());
    let first = Remote::new(&server.endpoint, "aliased").env("IMGSIM_ROOT_ALIAS", &alias(&here));
    let second = Remote::new(&server.endpoint, "aliased").env("IMGSIM_ROOT_ALIAS", &alias(&there));

    let indexed = first.index(here.to_str().unwrap(), &[]);
    assert_eq!(indexed["added"], 6);
    let shared = second.index(there.to_str().unwrap(), &[]);
    assert_eq!(
        (shared["added"].as_u64(), shared["unchanged"].as_u64()),
        (Some(0), Some(6))
    );

    // Each machine sees its own paths.
    let query = there.join("000000000009.jpg");
    let hit = second.top_hit(&query);
    assert!(hit.starts_with(there.to_str().unwrap()), "{hit}");

    // Without the alias: the rows, named by it.
    let bare = Remote::new(&server.endpoint, "aliased");
    let hit = bare.top_hit(&query);
    assert!(hit.starts_with("library:/0000"), "{hit}");
}
