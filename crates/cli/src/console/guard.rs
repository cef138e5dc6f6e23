//! The console's guard: who may use it ([`Access`]), under which Host names ([`Hosts`]), from
//! which origin a state change may come ([`same_origin`]), and the headers that keep it from
//! being framed or sniffed (docs/design.md section 9).

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// The cookie that carries the console token after a `?token=` visit.
const COOKIE: &str = "zofhook_console";

/// Who may use the console.
#[derive(Clone, Debug)]
pub enum Access {
    /// Loopback and no token: anyone who can reach 127.0.0.1.
    Open,
    /// This token, as a bearer token or the cookie.
    Token(Arc<str>),
    /// Off: a non-loopback address and no token.
    Off,
}

impl Access {
    /// The rule of docs/design.md section 9 for a server listening on `addr`.
    pub fn for_listener(addr: SocketAddr, token: Option<&str>) -> Access {
        match token.filter(|t| !t.is_empty()) {
            Some(token) => Access::Token(Arc::from(token)),
            None if addr.ip().is_loopback() => Access::Open,
            None => Access::Off,
        }
    }
}

/// The Host names the console answers: `127.0.0.1`, `localhost` and `[::1]` and the address it
/// listens on, each with its port; and the `--allowed-host` names (a reverse proxy's), with any
/// port. Anything else is a page that a DNS rebinding pointed at us.
#[derive(Clone, Debug)]
pub struct Hosts {
    port: u16,
    listen: Option<String>,
    allowed: Arc<[String]>,
}

impl Hosts {
    pub fn new(addr: SocketAddr, allowed: &[String]) -> Hosts {
        let listen = (!addr.ip().is_unspecified()).then(|| match addr.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        });
        Hosts {
            port: addr.port(),
            listen,
            allowed: allowed
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    /// Whether a request with this `Host` may see the console.
    pub fn admits(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let (name, port) = match host.strip_prefix('[') {
            Some(rest) => match rest.split_once(']') {
                Some((ip, rest)) => (format!("[{ip}]"), rest.strip_prefix(':')),
                None => return false,
            },
            None => match host.split_once(':') {
                Some((name, port)) => (name.to_string(), Some(port)),
                None => (host.clone(), None),
            },
        };
        let port = match port.map(str::parse::<u16>) {
            None => None,
            Some(Ok(port)) => Some(port),
            Some(Err(_)) => return false,
        };
        if self.allowed.iter().any(|a| *a == name || *a == host) {
            return true;
        }
        let ours = matches!(name.as_str(), "127.0.0.1" | "localhost" | "[::1]")
            || self.listen.as_deref() == Some(name.as_str());
        ours && port.unwrap_or(80) == self.port
    }
}

/// Whether a state-changing request comes from the console's own page: its `Origin` is the
/// console's (`http://` or `https://` and the Host it was sent to); with no `Origin`,
/// `Sec-Fetch-Site` says `same-origin`, or is absent too (curl, scripts: no browser sent it).
pub fn same_origin(headers: &HeaderMap, host: &str) -> Result<(), &'static str> {
    let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    match text(header::ORIGIN) {
        Some(origin) => {
            let origin = origin.to_ascii_lowercase();
            let host = host.to_ascii_lowercase();
            let own = ["http://", "https://"]
                .iter()
                .any(|scheme| origin.strip_prefix(scheme) == Some(host.as_str()));
            if own {
                Ok(())
            } else {
                Err("a state-changing request must come from the console's own origin")
            }
        }
        None => match text(http::HeaderName::from_static("sec-fetch-site")) {
            None | Some("same-origin") => Ok(()),
            Some(_) => Err("a state-changing request must come from the console's own page"),
        },
    }
}

/// Sent with every console response, the page and the API alike.
pub const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

/// The page's Content-Security-Policy: nothing but its own inline script and style (by their
/// SHA-256), fetches to itself, and no framing.
fn content_security_policy() -> &'static str {
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| {
        let page = include_str!("assets/index.html");
        let hash = |open: &str, close: &str| {
            use base64::Engine;
            use sha2::Digest;
            let inner = page
                .split_once(open)
                .and_then(|(_, rest)| rest.split_once(close))
                .map_or("", |(inner, _)| inner);
            let digest = sha2::Sha256::digest(inner.as_bytes());
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        };
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash("<script>", "</script>"),
            hash("<style>", "</style>")
        )
    })
}

/// What the guard in front of the console checks: who may use it, and under which names.
#[derive(Clone, Debug)]
pub struct Guard {
    pub access: Access,
    pub hosts: Hosts,
}

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    pub(super) token: Option<String>,
}

/// In front of every console route: the Host, then the origin of a state change, then the
/// access rule; and the security headers on whatever is answered.
pub(super) async fn guard(
    State(guard): State<Arc<Guard>>,
    query: Query<TokenQuery>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let mut response = checked(&guard, query, &headers, request, next).await;
    let answer = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        answer.insert(name, http::HeaderValue::from_static(value));
    }
    if let Ok(policy) = http::HeaderValue::from_str(content_security_policy()) {
        answer.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

async fn checked(
    guard: &Guard,
    Query(query): Query<TokenQuery>,
    headers: &HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if !guard.hosts.admits(host) {
        return forbidden(
            "this Host is not one the console is served under (give --allowed-host for a proxy)",
        );
    }
    let safe = matches!(
        *request.method(),
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    );
    if !safe {
        if let Err(why) = same_origin(headers, host) {
            return forbidden(why);
        }
    }
    let token = match &guard.access {
        Access::Open => return next.run(request).await,
        Access::Off => {
            return unauthorized(
                "the console is off: give --console-token to use it on this address",
            )
        }
        Access::Token(token) => token.clone(),
    };
    let presented = bearer(headers).or_else(|| cookie(headers));
    if presented.is_some_and(|p| same(p.as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    // Once on the page: `?token=` becomes the cookie, and the token leaves the address bar.
    if request.uri().path() == "/" {
        if let Some(given) = query.token.filter(|t| same(t.as_bytes(), token.as_bytes())) {
            let mut response = Redirect::to("/").into_response();
            let cookie = format!("{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/");
            if let Ok(value) = cookie.parse() {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            return response;
        }
    }
    unauthorized("a console token is needed (Authorization: Bearer, or ?token= on the page)")
}

fn forbidden(why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"error": "forbidden", "detail": why}).to_string(),
    )
        .into_response()
}

fn unauthorized(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"error": "unauthorized", "detail": why}).to_string(),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Constant-time equality of two tokens (their lengths are not secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_rule() {
        let loopback: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let public: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        assert!(matches!(Access::for_listener(loopback, None), Access::Open));
        assert!(matches!(Access::for_listener(public, None), Access::Off));
        assert!(matches!(
            Access::for_listener(public, Some("")),
            Access::Off
        ));
        assert!(matches!(
            Access::for_listener(public, Some("t")),
            Access::Token(_)
        ));
        assert!(matches!(
            Access::for_listener(loopback, Some("t")),
            Access::Token(_)
        ));
    }

    #[test]
    fn the_host_rule() {
        let hosts = Hosts::new("127.0.0.1:3000".parse().unwrap(), &["Proxy.Example".into()]);
        for ok in [
            "127.0.0.1:3000",
            "localhost:3000",
            "LOCALHOST:3000",
            "[::1]:3000",
            "proxy.example",
            "proxy.example:8443",
        ] {
            assert!(hosts.admits(ok), "{ok}");
        }
        for refused in [
            "evil.example:3000",
            "attacker.test",
            "127.0.0.1:3001",
            "localhost",
            "127.0.0.1.evil.example:3000",
            "localhost.evil.example:3000",
            "[::1",
            "127.0.0.1:x",
            "",
        ] {
            assert!(!hosts.admits(refused), "{refused}");
        }
        let public = Hosts::new("10.1.2.3:8080".parse().unwrap(), &[]);
        assert!(public.admits("10.1.2.3:8080"));
        assert!(!public.admits("10.1.2.4:8080"));
        let any = Hosts::new("0.0.0.0:8080".parse().unwrap(), &[]);
        assert!(!any.admits("0.0.0.0:8080"));
        assert!(any.admits("localhost:8080"));
    }

    #[test]
    fn the_origin_rule() {
        let with = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.insert(*name, value.parse().unwrap());
            }
            same_origin(&h, "127.0.0.1:3000")
        };
        assert!(with(&[]).is_ok());
        assert!(with(&[("origin", "http://127.0.0.1:3000")]).is_ok());
        assert!(with(&[("sec-fetch-site", "same-origin")]).is_ok());
        assert!(with(&[("origin", "http://127.0.0.1:3001")]).is_err());
        assert!(with(&[("origin", "http://evil.example")]).is_err());
        assert!(with(&[("origin", "null")]).is_err());
        assert!(with(&[("sec-fetch-site", "cross-site")]).is_err());
        assert!(with(&[("sec-fetch-site", "same-site")]).is_err());
        assert!(with(&[("sec-fetch-site", "none")]).is_err());
    }

    #[test]
    fn the_policy_names_the_page_script_and_style_by_hash() {
        let policy = content_security_policy();
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(policy.matches("'sha256-").count(), 2, "{policy}");
        // The hash of nothing would mean the page lost its script or style.
        assert!(
            !policy.contains("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
            "{policy}"
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; zofhook_console=tok; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h), Some("tok"));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
    }
}
