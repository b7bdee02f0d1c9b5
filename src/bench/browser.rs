//! A real browser for `imgsim bench serve` and the page's tests: headless Chromium driven
//! through ChromeDriver's WebDriver protocol (JSON over HTTP), and the small HTTP/1.1 client
//! that speaks to it and to `imgsim serve`. Both from Debian (`chromium`,
//! `chromium-driver`); nothing is downloaded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request (`Connection: close`) to `addr` (host:port) and reads the answer.
/// `headers` may override `Host`.
pub fn request(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    // Read what the answer's length says (some servers keep the connection open anyway).
    let mut raw = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        if let Some(total) = complete_length(&raw) {
            raw.truncate(total);
            break;
        }
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buffer[..n]);
    }
    parse_reply(&raw)
        .ok_or_else(|| std::io::Error::other(format!("a malformed HTTP answer from {addr}")))
}

/// The length of the whole answer once `raw` holds all of it (by its Content-Length, or the
/// last chunk); `None` while more must be read.
fn complete_length(raw: &[u8]) -> Option<usize> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    if let Some(length) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return (raw.len() >= end + length).then_some(end + length);
    }
    if head.contains("transfer-encoding: chunked") {
        let body = &raw[end..];
        return body
            .windows(5)
            .position(|w| w == b"0\r\n\r\n")
            .filter(|&at| at == 0 || body[at - 2..at] == *b"\r\n")
            .map(|at| end + at + 5);
    }
    None
}

fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = unchunk(&body)?;
    }
    Some(Reply {
        status,
        headers,
        body,
    })
}

fn unchunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// A headless Chromium session. Ends (and its driver with it) when dropped.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

fn found(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium; an error says what is missing.
    pub fn start(width: u32, height: u32) -> Result<Self, String> {
        let driver_path = found(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
            .ok_or("chromedriver is not installed (Debian: apt install chromium-driver)")?;
        let chromium = found(&["/usr/bin/chromium", "/usr/bin/chromium-browser"])
            .ok_or("chromium is not installed (Debian: apt install chromium)")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", driver_path.display()))?;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut browser = Browser {
            driver,
            addr: format!("127.0.0.1:{port}"),
            session: String::new(),
            _profile: profile,
        };
        let started = Instant::now();
        while browser.call("GET", "/status", None).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                return Err("chromedriver did not start within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The flags a sandboxed root process needs, and none of Chromium's own network use.
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            format!("--user-data-dir={}", browser._profile.path().display()),
            format!("--window-size={width},{height}"),
        ]);
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let answer = browser.call("POST", "/session", Some(&capabilities))?;
        browser.session = answer["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session: {answer}"))?
            .to_string();
        Ok(browser)
    }

    /// One WebDriver command; its `value`.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers = [("Content-Type", "application/json")];
        let reply = request(&self.addr, method, path, &headers, body.as_bytes())
            .map_err(|e| format!("chromedriver: {e}"))?;
        let value: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| format!("chromedriver answered {}: {e}", reply.status))?;
        if reply.status != 200 {
            return Err(format!("chromedriver: {} {}", reply.status, value["value"]));
        }
        Ok(value.get("value").cloned().unwrap_or(value))
    }

    fn session_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.session_call("POST", "/url", Some(&json!({ "url": url })))
            .map(|_| ())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn run(&self, script: &str, args: Value) -> Result<Value, String> {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// Runs `script`, which calls `arguments[arguments.length - 1](value)` when done.
    pub fn run_async(&self, script: &str, args: Value) -> Result<Value, String> {
        self.session_call(
            "POST",
            "/execute/async",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// Waits until `script` returns something truthy; returns it.
    pub fn wait_for(&self, what: &str, script: &str, limit: Duration) -> Result<Value, String> {
        let started = Instant::now();
        loop {
            let value = self.run(script, json!([]))?;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return Ok(value);
            }
            if started.elapsed() > limit {
                return Err(format!("timed out waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The WebDriver id of the first element matching `css`.
    pub fn find(&self, css: &str) -> Result<String, String> {
        let v = self.session_call(
            "POST",
            "/element",
            Some(&json!({ "using": "css selector", "value": css })),
        )?;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("no element {css}"))
    }

    pub fn click(&self, css: &str) -> Result<(), String> {
        let id = self.find(css)?;
        self.session_call("POST", &format!("/element/{id}/click"), Some(&json!({})))
            .map(|_| ())
    }

    /// Types `text` into an element (for a file input: a file's path, which uploads it).
    pub fn type_into(&self, css: &str, text: &str) -> Result<(), String> {
        let id = self.find(css)?;
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            Some(&json!({ "text": text })),
        )
        .map(|_| ())
    }

    /// Accepts the page's `confirm()` dialog.
    pub fn accept_dialog(&self) -> Result<(), String> {
        self.session_call("POST", "/alert/accept", Some(&json!({})))
            .map(|_| ())
    }

    /// The page as a PNG.
    pub fn screenshot(&self) -> Result<Vec<u8>, String> {
        use base64::Engine;
        let v = self.session_call("GET", "/screenshot", None)?;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| e.to_string())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed_whole_or_chunked() {
        let plain =
            parse_reply(b"HTTP/1.1 421 Misdirected\r\nContent-Length: 2\r\nX-A: b\r\n\r\nno")
                .unwrap();
        assert_eq!((plain.status, plain.text().as_str()), (421, "no"));
        assert_eq!(plain.header("x-a"), Some("b"));
        let chunked =
            parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!(chunked.text(), "abcde");
        assert!(parse_reply(b"garbage").is_none());
        // Complete once the announced length is there, not before.
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab".to_vec();
        assert_eq!(complete_length(&head), None);
        assert_eq!(
            complete_length(&[head.as_slice(), b"cde"].concat()),
            Some(head.len() + 3)
        );
        let chunks = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(complete_length(chunks), Some(chunks.len()));
        assert_eq!(complete_length(&chunks[..chunks.len() - 2]), None);
    }
}
