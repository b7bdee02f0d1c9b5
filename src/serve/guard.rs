//! Who may ask what: the rules every request passes before a handler sees it. Pure functions
//! of the request's headers and the server's settings, unit-tested here.
//!
//! The page serves a user's private photos from their own machine, so the threats are other
//! web pages in the same browser (a cross-site request, or DNS rebinding: a hostile name that
//! resolves to 127.0.0.1 and reaches the server with the attacker's `Host`) and, when bound
//! beyond loopback, other machines. Hence: the `Host` must be the address the server was
//! started on; a request that changes something must carry the session's token (written into
//! the page it served, which another origin cannot read) and come from the same origin; with
//! `--token`, every request must carry that token (as a header, or the cookie the first visit
//! with `?token=` sets). No CORS header is ever sent.

/// The server's side of the rules.
#[derive(Debug, Clone)]
pub struct Rules {
    /// `Host` values accepted: the bound `host:port`, and for loopback `localhost:port`,
    /// `127.0.0.1:port` and `[::1]:port`.
    pub hosts: Vec<String>,
    /// Written into the served page; mutating requests echo it in `x-imgsim-token`.
    pub session_token: String,
    /// `--token`: needed by every request.
    pub access_token: Option<String>,
}

/// The cookie that carries `--token` after a first visit with `?token=`.
pub const ACCESS_COOKIE: &str = "imgsim_token";
/// The header that carries the session token on mutating requests.
pub const SESSION_HEADER: &str = "x-imgsim-token";

/// What a request shows of itself.
#[derive(Debug, Default, Clone)]
pub struct Asking<'a> {
    pub method: &'a str,
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    /// `Sec-Fetch-Site`, which browsers set on every request.
    pub fetch_site: Option<&'a str>,
    pub session_token: Option<&'a str>,
    /// From `Authorization: Bearer`, the cookie, or `?token=`.
    pub access_token: Option<&'a str>,
}

/// Why a request is refused (the HTTP status and the reason, said in the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
}

impl Rules {
    /// The `Host` values for a server bound to `host:port`.
    pub fn hosts_for(addr: &std::net::SocketAddr) -> Vec<String> {
        let port = addr.port();
        let mut hosts = vec![match addr {
            std::net::SocketAddr::V4(a) => format!("{}:{port}", a.ip()),
            std::net::SocketAddr::V6(a) => format!("[{}]:{port}", a.ip()),
        }];
        if addr.ip().is_loopback() {
            for h in ["localhost", "127.0.0.1", "[::1]"] {
                hosts.push(format!("{h}:{port}"));
            }
        }
        hosts.dedup();
        hosts
    }

    /// `Ok` when the request may go on.
    pub fn check(&self, asking: &Asking<'_>) -> Result<(), Refusal> {
        let host = asking.host.unwrap_or_default().to_ascii_lowercase();
        if !self.hosts.contains(&host) {
            return Err(Refusal {
                status: 421,
                reason: "this server answers only to the address it was started on (Host)",
            });
        }
        if let Some(token) = &self.access_token {
            if !asking
                .access_token
                .is_some_and(|t| constant_time_eq(t, token))
            {
                return Err(Refusal {
                    status: 401,
                    reason: "this server needs its token (open the address printed by `imgsim serve --token`)",
                });
            }
        }
        let mutating = !matches!(asking.method, "GET" | "HEAD");
        if asking.fetch_site.is_some_and(|s| s == "cross-site") && mutating {
            return Err(Refusal {
                status: 403,
                reason: "a request from another site",
            });
        }
        if mutating {
            let same_origin = asking.origin.is_none_or(|o| {
                let o = o.to_ascii_lowercase();
                self.hosts.iter().any(|h| o == format!("http://{h}"))
            });
            if !same_origin {
                return Err(Refusal {
                    status: 403,
                    reason: "a request from another origin",
                });
            }
            if !asking
                .session_token
                .is_some_and(|t| constant_time_eq(t, &self.session_token))
            {
                return Err(Refusal {
                    status: 403,
                    reason: "a change needs the page's session token (reload the page)",
                });
            }
        }
        Ok(())
    }
}

/// Equality that takes as long whatever the first differing byte (a token is a secret).
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A fresh random token (128 bits, hex).
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom_fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// From the thread's generator (ChaCha, seeded by the operating system).
fn getrandom_fill(bytes: &mut [u8]) {
    rand::RngCore::fill_bytes(&mut rand::rng(), bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            hosts: Rules::hosts_for(&"127.0.0.1:8417".parse().unwrap()),
            session_token: "s3ss10n".into(),
            access_token: None,
        }
    }

    fn get(host: &str) -> Asking<'_> {
        Asking {
            method: "GET",
            host: Some(host),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_bound_address_is_a_host() {
        let r = rules();
        assert!(r.check(&get("127.0.0.1:8417")).is_ok());
        assert!(r.check(&get("localhost:8417")).is_ok());
        assert!(r.check(&get("LOCALHOST:8417")).is_ok());
        // DNS rebinding: a hostile name resolved to loopback.
        assert_eq!(r.check(&get("evil.example:8417")).unwrap_err().status, 421);
        assert_eq!(r.check(&get("127.0.0.1:9999")).unwrap_err().status, 421);
        assert_eq!(
            r.check(&Asking {
                method: "GET",
                ..Default::default()
            })
            .unwrap_err()
            .status,
            421
        );
        // Bound elsewhere: only that address.
        let lan = Rules::hosts_for(&"192.168.1.5:8417".parse().unwrap());
        assert_eq!(lan, ["192.168.1.5:8417"]);
    }

    #[test]
    fn a_change_needs_the_session_token_and_the_same_origin() {
        let r = rules();
        let post = |origin: Option<&'static str>, token: Option<&'static str>| Asking {
            method: "POST",
            host: Some("127.0.0.1:8417"),
            origin,
            session_token: token,
            ..Default::default()
        };
        assert!(r
            .check(&post(Some("http://127.0.0.1:8417"), Some("s3ss10n")))
            .is_ok());
        assert!(r.check(&post(None, Some("s3ss10n"))).is_ok());
        assert_eq!(
            r.check(&post(Some("http://127.0.0.1:8417"), None))
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(
            r.check(&post(Some("http://127.0.0.1:8417"), Some("wrong!!")))
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(
            r.check(&post(Some("https://evil.example"), Some("s3ss10n")))
                .unwrap_err()
                .status,
            403
        );
        let cross = Asking {
            fetch_site: Some("cross-site"),
            ..post(None, Some("s3ss10n"))
        };
        assert_eq!(r.check(&cross).unwrap_err().status, 403);
        // Reading needs no session token.
        assert!(r.check(&get("127.0.0.1:8417")).is_ok());
    }

    #[test]
    fn an_access_token_is_needed_by_every_request_when_set() {
        let r = Rules {
            access_token: Some("letmein".into()),
            ..rules()
        };
        assert_eq!(r.check(&get("127.0.0.1:8417")).unwrap_err().status, 401);
        let with = Asking {
            access_token: Some("letmein"),
            ..get("127.0.0.1:8417")
        };
        assert!(r.check(&with).is_ok());
        let wrong = Asking {
            access_token: Some("letmeout"),
            ..get("127.0.0.1:8417")
        };
        assert_eq!(r.check(&wrong).unwrap_err().status, 401);
    }

    #[test]
    fn tokens_are_fresh() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
