//! `imgsim serve`: the page in a real browser (headless Chromium through ChromeDriver, from
//! Debian; `.ci/run` installs them), and the security rules over plain HTTP.
//!
//! With `IMGSIM_SCREENSHOTS=DIR`, the browser scenarios leave a screenshot of each view there
//! (the README's pictures). Where Chromium is missing the browser scenarios say so and pass,
//! unless `IMGSIM_REQUIRE_BROWSER=1` (set by `.ci/run`) makes that a failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use imgsim::bench::browser::{request, Browser, Reply};
use serde_json::{json, Value};

use crate::util::*;

/// A photo library indexed with phash: 16 coco photos in two folders, two of them also as
/// PNG, and an exact copy of one in `copies/`.
struct Library {
    dir: tempfile::TempDir,
    photos: PathBuf,
    db: PathBuf,
    /// A smaller, recompressed copy of `a/<first>`, outside the library: a query.
    query: PathBuf,
    first: String,
}

impl Library {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let photos = dir.path().join("photos");
        for folder in ["a", "b", "copies"] {
            std::fs::create_dir_all(photos.join(folder)).unwrap();
        }
        let mut coco_photos: Vec<PathBuf> = std::fs::read_dir(coco())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        coco_photos.sort();
        for (i, photo) in coco_photos.iter().take(16).enumerate() {
            let folder = if i < 8 { "a" } else { "b" };
            std::fs::copy(photo, photos.join(folder).join(photo.file_name().unwrap())).unwrap();
        }
        for photo in &coco_photos[16..18] {
            let name = Path::new(photo.file_name().unwrap()).with_extension("png");
            image::open(photo)
                .unwrap()
                .save(photos.join("b").join(name))
                .unwrap();
        }
        let first = coco_photos[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        std::fs::copy(&coco_photos[3], photos.join("copies/copy.jpg")).unwrap();
        let query = dir.path().join("query.jpg");
        let original = image::open(&coco_photos[0]).unwrap();
        original
            .resize(320, 320, image::imageops::FilterType::Triangle)
            .to_rgb8()
            .save(&query)
            .unwrap();
        let db = dir.path().join("db");
        let library = Self {
            dir,
            photos,
            db,
            query,
            first,
        };
        imgsim(&[
            "index",
            "--model",
            "phash",
            "--db",
            library.db.to_str().unwrap(),
            library.photos.to_str().unwrap(),
        ])
        .assert_exit(0);
        library
    }

    fn serve(&self, extra: &[&str]) -> Served {
        let data = self.dir.path().join("data");
        let mut child = Command::new(imgsim_binary())
            .args(["serve", "--json", "--bind", "127.0.0.1:0", "--db"])
            .arg(&self.db)
            .args(extra)
            // The trash of this test's own, never the user's.
            .env("XDG_DATA_HOME", &data)
            .env("HF_HUB_OFFLINE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let started: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: serve said {line:?}"));
        Served {
            child,
            addr: started["addr"].as_str().unwrap().to_string(),
            url: started["url"].as_str().unwrap().to_string(),
            trash: data.join("Trash/files"),
        }
    }
}

struct Served {
    child: Child,
    addr: String,
    url: String,
    trash: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn get(&self, target: &str) -> Reply {
        request(&self.addr, "GET", target, &[], b"").unwrap()
    }

    fn json(&self, target: &str) -> Value {
        let reply = self.get(target);
        assert_eq!(reply.status, 200, "{target}: {}", reply.text());
        serde_json::from_slice(&reply.body).unwrap()
    }

    /// The session token the page carries.
    fn session_token(&self) -> String {
        let page = self.get("/").text();
        let needle = "imgsim-session\" content=\"";
        let at = page.find(needle).unwrap() + needle.len();
        page[at..at + 32].to_string()
    }
}

/// The browser, or `None` (said) where Chromium is not installed and not required.
fn browser() -> Option<Browser> {
    match Browser::start(1280, 900) {
        Ok(b) => Some(b),
        Err(e) if std::env::var_os("IMGSIM_REQUIRE_BROWSER").is_none() => {
            eprintln!("SKIPPED: no browser for the page's tests: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn screenshot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("IMGSIM_SCREENSHOTS") {
        // Every picture on screen decoded first.
        browser
            .wait_for(
                "the pictures on screen",
                "return [...document.querySelectorAll('img')]
                   .filter(i => !i.hidden && i.getBoundingClientRect().top < innerHeight && i.getBoundingClientRect().width > 0)
                   .every(i => i.complete && i.naturalWidth > 0);",
                LIMIT,
            )
            .unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let png = browser.screenshot().unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

const LIMIT: Duration = Duration::from_secs(60);

/// The text of the first element matching `css`.
fn text_of(browser: &Browser, css: &str) -> String {
    let text = browser
        .run(
            "return document.querySelector(arguments[0]).textContent;",
            json!([css]),
        )
        .unwrap();
    text.as_str().unwrap_or_default().to_string()
}

/// The names on the cards, once the search that is running has finished.
fn card_names(browser: &Browser) -> Vec<String> {
    browser
        .wait_for(
            "the results",
            "return document.body.dataset.ready === '1';",
            LIMIT,
        )
        .unwrap();
    let names = browser
        .run(
            "return [...document.querySelectorAll('#results .card')].map(c => c.dataset.name);",
            json!([]),
        )
        .unwrap();
    serde_json::from_value(names).unwrap()
}

/// Starts a search by the page's own controls and waits for its answer.
fn search_and_wait(browser: &Browser, start: impl FnOnce()) -> Vec<String> {
    browser
        .run("document.body.dataset.ready = '0';", json!([]))
        .unwrap();
    start();
    card_names(browser)
}

#[test]
fn the_page_searches_browses_and_narrows_in_a_real_browser() {
    let library = Library::new();
    let served = library.serve(&[]);
    let Some(browser) = browser() else {
        return;
    };
    browser.goto(&served.url).unwrap();
    let all = card_names(&browser);
    assert_eq!(all.len(), 19, "{all:?}");

    // Thumbnails render: every card on the first screen shows a decoded picture.
    let loaded = browser
        .wait_for(
            "the first screen's thumbnails",
            "const imgs = [...document.querySelectorAll('#results img')].slice(0, 8);
             return imgs.length === 8 && imgs.every(i => i.complete && i.naturalWidth > 0);",
            LIMIT,
        )
        .unwrap();
    assert_eq!(loaded, json!(true));
    screenshot(&browser, "browse");

    // A picture from outside the library (smaller, recompressed) finds its original first.
    let hits = search_and_wait(&browser, || {
        browser
            .type_into("#file", library.query.to_str().unwrap())
            .unwrap()
    });
    assert_eq!(hits.first(), Some(&library.first), "{hits:?}");
    let score: f64 = browser
        .run(
            "return Number(document.querySelector('#results .card .score').textContent);",
            json!([]),
        )
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(score > 0.8, "{score}");
    screenshot(&browser, "search");

    // A filter narrows the results: only the PNGs.
    let pngs = search_and_wait(&browser, || {
        browser.type_into("#where", "ext:png").unwrap();
        browser.click("#go").unwrap();
    });
    assert_eq!(pngs.len(), 2, "{pngs:?}");
    assert!(pngs.iter().all(|n| n.ends_with(".png")), "{pngs:?}");

    // A chip narrows too: a folder's.
    let folder_b = search_and_wait(&browser, || {
        browser.click("#clear").unwrap();
    });
    assert_eq!(folder_b.len(), 19);
    let in_b = search_and_wait(&browser, || {
        browser.click("#chips [data-term='dir:b']").unwrap();
    });
    assert_eq!(in_b.len(), 10, "{in_b:?}");

    // The large view, with its metadata, and "more like this" from it.
    browser.click("#results .card").unwrap();
    browser
        .wait_for(
            "the large picture",
            "const i = document.querySelector('#large-image'); return document.querySelector('#large').open && i.complete && i.naturalWidth > 0;",
            LIMIT,
        )
        .unwrap();
    let meta = text_of(&browser, "#large-meta");
    assert!(
        meta.contains("640 × 480") && meta.contains("Format"),
        "{meta}"
    );
    screenshot(&browser, "large");
    let like = search_and_wait(&browser, || browser.click("#large-similar").unwrap());
    assert_eq!(
        like.len(),
        9,
        "the filter stays, the image itself is left out: {like:?}"
    );

    // The status view.
    browser.click("[data-view='status']").unwrap();
    let status = browser
        .wait_for(
            "the status",
            "return document.querySelector('#status').textContent;",
            LIMIT,
        )
        .unwrap();
    assert!(status.as_str().unwrap().contains("19 images"), "{status}");
    screenshot(&browser, "status");
}

#[test]
fn words_search_on_the_page_ranks_as_imgsim_search_does() {
    // A CLIP table (the tiny test model, which has a text tower and CLIP's real tokenizer).
    let library = Library::new();
    let tiny = model_dir("tiny-clip");
    let db = library.dir.path().join("db-clip");
    let (db_arg, tiny_arg) = (db.to_str().unwrap(), tiny.to_str().unwrap());
    imgsim(&[
        "index",
        "--model-dir",
        tiny_arg,
        "--db",
        db_arg,
        library.photos.to_str().unwrap(),
    ])
    .assert_exit(0);
    let words = "a zebra in the grass";
    let cli: Vec<String> = imgsim(&[
        "search",
        words,
        "--model-dir",
        tiny_arg,
        "--db",
        db_arg,
        "--json",
        "-k",
        "5",
    ])
    .json_lines::<Value>()
    .into_iter()
    .filter(|l| l["type"] == "hit")
    .map(|l| {
        let path = l["path"].as_str().unwrap().to_string();
        path.rsplit('/').next().unwrap().to_string()
    })
    .collect();
    assert_eq!(cli.len(), 5, "{cli:?}");

    // The same photos, served from the CLIP database (the library's folder lives as long).
    let clip_library = Library { db, ..library };
    let served = clip_library.serve(&["--model-dir", tiny_arg]);
    let Some(browser) = browser() else {
        return;
    };
    browser.goto(&served.url).unwrap();
    card_names(&browser);
    let shown = browser
        .run(
            "return !document.querySelector('#words').hidden;",
            json!([]),
        )
        .unwrap();
    assert_eq!(shown, json!(true), "a model with a text tower offers words");
    let hits = search_and_wait(&browser, || {
        browser.type_into("#words", words).unwrap();
        browser.click("#go").unwrap();
    });
    assert_eq!(hits[..5], cli[..], "the page ranks as `imgsim search` does");
    let summary = text_of(&browser, "#summary");
    assert!(summary.contains("nearest the words"), "{summary}");
}

#[test]
fn a_duplicate_group_is_resolved_and_undone_in_a_real_browser() {
    let library = Library::new();
    let served = library.serve(&[]);
    let Some(browser) = browser() else {
        return;
    };
    let copy = library.photos.join("copies/copy.jpg");
    let coco_original = std::fs::read_dir(library.photos.join("a"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read(p).unwrap() == std::fs::read(&copy).unwrap())
        .unwrap();
    browser.goto(&served.url).unwrap();
    card_names(&browser);
    browser.click("[data-view='dupes']").unwrap();
    browser
        .wait_for(
            "the duplicate groups",
            "return document.querySelectorAll('.group').length > 0 && [...document.querySelectorAll('.group img')].every(i => i.complete && i.naturalWidth > 0);",
            LIMIT,
        )
        .unwrap();
    let label = text_of(&browser, ".group h3");
    assert!(label.starts_with("exact copies"), "{label}");
    screenshot(&browser, "dupes");

    // Keep the other one than suggested, then move the rest to the trash (after the
    // confirmation)...
    let suggested = text_of(&browser, ".member.keep .path");
    browser.click(".member:not(.keep) .choose").unwrap();
    let chosen = text_of(&browser, ".member.keep .path");
    assert_ne!(suggested, chosen);
    browser.click(".group .trash").unwrap();
    browser.accept_dialog().unwrap();
    browser
        .wait_for(
            "the group to be resolved",
            "return document.querySelector('.group.done') !== null;",
            LIMIT,
        )
        .unwrap();
    let left = [copy.exists(), coco_original.exists()];
    assert_eq!(
        left.iter().filter(|x| **x).count(),
        1,
        "one of the two is kept"
    );
    let kept = if copy.exists() { &copy } else { &coco_original };
    assert_eq!(kept.display().to_string(), chosen, "the one chosen is kept");
    let trashed = std::fs::read_dir(&served.trash).unwrap().count();
    assert_eq!(trashed, 1, "the other is in the trash");

    // ...and undo it.
    browser.click("#undo").unwrap();
    // The page says so once the server has put the file back (polling the disk instead can
    // catch the trash crate's empty placeholder just before its rename).
    browser
        .wait_for(
            "the undo",
            "return document.querySelector('#toast').textContent.includes('put back');",
            LIMIT,
        )
        .unwrap();
    assert!(copy.exists() && coco_original.exists());
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&coco_original).unwrap()
    );
}

#[test]
fn the_server_refuses_foreign_hosts_changes_without_the_token_and_paths() {
    let library = Library::new();
    let served = library.serve(&[]);
    let addr = served.addr.clone();
    let token = served.session_token();

    // DNS rebinding: a foreign Host is refused on every route.
    for target in ["/", "/api/status", "/api/rows"] {
        let reply = request(&addr, "GET", target, &[("Host", "evil.example")], b"").unwrap();
        assert_eq!(reply.status, 421, "{target}");
    }
    assert_eq!(served.get("/api/status").status, 200);

    // A change needs the page's token, from the page's origin.
    let undo = |headers: &[(&str, &str)]| {
        request(&addr, "POST", "/api/dupes/undo", headers, b"")
            .unwrap()
            .status
    };
    assert_eq!(undo(&[]), 403);
    assert_eq!(
        undo(&[("x-imgsim-token", "0123456789abcdef0123456789abcdef")]),
        403
    );
    let origin = format!("http://{addr}");
    assert_eq!(
        undo(&[
            ("x-imgsim-token", &token),
            ("Origin", "http://evil.example")
        ]),
        403
    );
    assert_eq!(
        undo(&[("x-imgsim-token", &token), ("Sec-Fetch-Site", "cross-site")]),
        403
    );
    assert_eq!(
        undo(&[("x-imgsim-token", &token), ("Origin", &origin)]),
        200
    );
    let clear = request(&addr, "POST", "/api/thumbs/clear", &[], b"").unwrap();
    assert_eq!(clear.status, 403);

    // No CORS, ever: a cross-origin script cannot read an answer.
    let reply = request(
        &addr,
        "GET",
        "/api/rows",
        &[("Origin", "http://evil.example")],
        b"",
    )
    .unwrap();
    assert!(reply.header("access-control-allow-origin").is_none());
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));

    // Only indexed images, by row id: paths and traversal find nothing.
    let secret = library.dir.path().join("secret.jpg");
    std::fs::copy(coco().join(&library.first), &secret).unwrap();
    for target in [
        format!("/api/thumb?model=phash&id={}", secret.display()),
        "/api/thumb?model=phash&id=../../../../etc/passwd".to_string(),
        "/api/thumb?model=phash&id=%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_string(),
        "/../../../../etc/passwd".to_string(),
        "/api/row?model=phash&id=0000000000000000".to_string(),
    ] {
        let reply = served.get(&target);
        assert!(
            reply.status == 404 || reply.status == 400,
            "{target}: {} {}",
            reply.status,
            reply.text()
        );
        assert!(!reply.text().contains("root:"), "{target}");
        assert_ne!(reply.header("content-type"), Some("image/jpeg"), "{target}");
    }
    // An indexed image's thumbnail is served, upright and small, with a long cache life.
    let rows = served.json("/api/rows?model=phash&limit=1");
    let id = rows["items"][0]["id"].as_str().unwrap();
    let thumb = served.get(&format!("/api/thumb?model=phash&id={id}&size=320"));
    assert_eq!(thumb.status, 200);
    assert!(thumb.header("cache-control").unwrap().contains("immutable"));
    let picture = image::load_from_memory(&thumb.body).unwrap();
    assert!(picture.width().max(picture.height()) <= 320);
    assert!(library.db.join("thumbs").read_dir().unwrap().count() > 0);
}

#[test]
fn a_token_guards_every_request_and_other_addresses_are_warned_about() {
    let library = Library::new();
    let served = library.serve(&["--token", "letmein"]);
    assert!(served.url.ends_with("/?token=letmein"), "{}", served.url);
    let addr = served.addr.clone();
    assert_eq!(served.get("/").status, 401);
    assert_eq!(served.get("/api/rows").status, 401);
    let first = served.get("/?token=letmein");
    assert_eq!(first.status, 200);
    let cookie = first.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let with_cookie = request(
        &addr,
        "GET",
        "/api/rows",
        &[("Cookie", "imgsim_token=letmein")],
        b"",
    )
    .unwrap();
    assert_eq!(with_cookie.status, 200);
    let bearer = request(
        &addr,
        "GET",
        "/api/rows",
        &[("Authorization", "Bearer letmein")],
        b"",
    )
    .unwrap();
    assert_eq!(bearer.status, 200);
    drop(served);

    // Bound to every network: a warning, louder without a token.
    let mut child = Command::new(imgsim_binary())
        .args(["serve", "--bind", "0.0.0.0:0", "--db"])
        .arg(&library.db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    for _ in 0..2 {
        err.read_line(&mut said).unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(said.contains("reachable from other machines"), "{said}");
    assert!(said.contains("no --token"), "{said}");
}

#[test]
fn serve_without_an_index_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = imgsim(&["serve", "--db", dir.path().join("none").to_str().unwrap()]);
    out.assert_exit(2);
    out.assert_stderr_has("run `imgsim index DIR` first");
}

#[test]
fn serve_stops_cleanly_on_a_signal() {
    let library = Library::new();
    let mut served = library.serve(&[]);
    // A request first, so the store and the thumbnails are in use.
    assert_eq!(served.get("/api/rows").status, 200);
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(served.child.id() as i32, libc::SIGTERM) };
    let mut stderr = String::new();
    std::io::Read::read_to_string(served.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let status = served.child.wait().unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
}
