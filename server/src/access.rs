//! Who may do what: one guard in front of every route.
//!
//! A workbench is opened by learners who browse elsewhere in the same browser, and served by
//! teachers to a whole room, so every request is hostile until checked (docs/security.md):
//!
//! 1. **Host.** The `Host` header must name this server: an IP literal, `localhost`, the
//!    machine's own name, or a name the operator listed (`PIPEBOOK_PUBLIC_NAMES`). A web page
//!    whose own host name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name and is
//!    refused.
//! 2. **Who.** Bound to anything but loopback, or when `PIPEBOOK_TOKEN` is set, every request but
//!    `/api/health` needs a token: `Authorization: Bearer …`, or the cookie the browser got by
//!    opening the printed link (`/?token=…`). The operator's token may change things; the viewer's
//!    (`PIPEBOOK_VIEWER_TOKEN`, or generated) may only look.
//! 3. **Same origin.** A request that changes state must come from the workbench's own page (its
//!    `Origin` or `Sec-Fetch-Site` says so, or it comes from a non-browser client that sends
//!    neither) and carry `Content-Type: application/json` — which a cross-site form or "simple"
//!    `fetch` cannot send without a CORS preflight that this server never grants. The API refuses
//!    every cross-site browser request, reads included.
//! 4. **Size and time.** Bodies over [`MAX_JSON_BODY`] are refused before they are read (uploads
//!    have their own limit), and every request but the live feeds and uploads ends after
//!    [`REQUEST_TIMEOUT`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use app::api::Role;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use rand::Rng;

use crate::error::ApiError;
use crate::secret::Secret;

/// Largest request body the API reads (a stage config is well under 1 KiB).
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// Longest any request may take, except the live feeds and uploads, which stream. The slowest
/// ordinary request is a trace (10 s waiting for the next review, then a 20 s bounded scan).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);
/// The one route that takes a body other than JSON: a dataset upload (JSON lines).
const UPLOAD_PREFIX: &str = "/api/datasets/";
const UPLOAD_CONTENT_TYPE: &str = "application/x-ndjson";
/// Routes whose responses stream for as long as the client stays.
const STREAMING_ROUTES: [&str; 1] = ["/api/events"];
/// Answers without a token, so a load balancer or a test harness can ask whether the server is up.
const HEALTH_ROUTE: &str = "/api/health";

/// A secret that grants a role. Never printed by `Debug` (a [`Secret`]); compared in constant
/// time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(Secret);

impl Token {
    /// 192 random bits, hex-encoded (48 characters), as Jupyter's tokens are.
    pub fn generate() -> Self {
        let bytes: [u8; 24] = rand::rng().random();
        Self(Secret::new(
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        ))
    }

    /// A configured token; refused when too short to resist guessing or not URL-safe.
    pub fn parse(variable: &'static str, raw: &str) -> Result<Self, AccessError> {
        let raw = raw.trim();
        if raw.len() < 16 || raw.len() > 256 {
            return Err(AccessError::Invalid {
                variable,
                message: format!("must be 16..=256 characters, got {}", raw.len()),
            });
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return Err(AccessError::Invalid {
                variable,
                message: "may contain only letters, digits and - . _ ~".to_owned(),
            });
        }
        Ok(Self(Secret::new(raw)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    fn matches(&self, presented: &str) -> bool {
        constant_time_eq::constant_time_eq(self.expose().as_bytes(), presented.as_bytes())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AccessError {
    #[error("{variable}: {message}")]
    Invalid {
        variable: &'static str,
        message: String,
    },
}

/// What the operator configured: where the server listens, tokens, extra host names.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// The address the server is bound to: loopback keeps it private to this machine.
    pub bind: SocketAddr,
    pub operator_token: Option<Token>,
    pub viewer_token: Option<Token>,
    /// Host names (without port) learners may use to reach the server, besides IP literals,
    /// `localhost` and this machine's own name.
    pub public_names: Vec<String>,
}

impl AccessSettings {
    /// Loopback, no tokens: what tests and `scripts/run` get.
    pub fn local(bind: SocketAddr) -> Self {
        Self {
            bind,
            operator_token: None,
            viewer_token: None,
            public_names: Vec::new(),
        }
    }
}

/// Parses `PIPEBOOK_PUBLIC_NAMES`: comma-separated host names such as `pipebook.school.lan`.
pub fn parse_public_names(raw: &str) -> Result<Vec<String>, AccessError> {
    raw.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            if is_host_name(name) {
                Ok(name.to_ascii_lowercase())
            } else {
                Err(AccessError::Invalid {
                    variable: "PIPEBOOK_PUBLIC_NAMES",
                    message: format!("not a host name: {name:?} (no ports, schemes or paths)"),
                })
            }
        })
        .collect()
}

/// The guard's state: the tokens in force and the host names that reach this server.
#[derive(Debug)]
pub struct Access {
    exposed: bool,
    operator: Option<Token>,
    viewer: Option<Token>,
    host_names: Vec<String>,
    cookie_name: String,
    port: u16,
}

impl Access {
    /// Tokens are required when the server is reachable from other machines, or when the
    /// operator set one; then a viewer token exists too (generated unless configured).
    pub fn new(settings: AccessSettings) -> Self {
        let exposed = !settings.bind.ip().is_loopback();
        let operator = match settings.operator_token {
            Some(token) => Some(token),
            None if exposed => Some(Token::generate()),
            None => None,
        };
        let viewer = match settings.viewer_token {
            Some(token) => Some(token),
            None if operator.is_some() => Some(Token::generate()),
            None => None,
        };
        let mut host_names = vec!["localhost".to_owned()];
        if let Some(own) = machine_name() {
            host_names.push(format!("{own}.local"));
            host_names.push(own);
        }
        host_names.extend(settings.public_names);
        let port = settings.bind.port();
        Self {
            exposed,
            operator,
            viewer,
            host_names,
            // Cookies ignore ports: two workbenches on one machine must not overwrite each
            // other's token.
            cookie_name: format!("pipebook_token_{port}"),
            port,
        }
    }

    pub fn token_required(&self) -> bool {
        self.operator.is_some()
    }

    pub fn exposed(&self) -> bool {
        self.exposed
    }

    /// The links to print at start (operator, viewer): with the machine's name when exposed, so
    /// learners' laptops can open them.
    pub fn links(&self) -> Option<(String, String)> {
        let port = self.port;
        let (operator, viewer) = (self.operator.as_ref()?, self.viewer.as_ref()?);
        let host = if self.exposed {
            self.host_names
                .last()
                .filter(|name| *name != "localhost")
                .cloned()
                .unwrap_or_else(|| "127.0.0.1".to_owned())
        } else {
            "127.0.0.1".to_owned()
        };
        let link = |token: &Token| format!("http://{host}:{port}/?token={}", token.expose());
        Some((link(operator), link(viewer)))
    }

    fn role_of(&self, presented: &str) -> Option<Role> {
        if self.operator.as_ref().is_some_and(|t| t.matches(presented)) {
            Some(Role::Operator)
        } else if self.viewer.as_ref().is_some_and(|t| t.matches(presented)) {
            Some(Role::Viewer)
        } else {
            None
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        // An IP literal cannot be re-pointed by DNS, so it is never a rebinding attack.
        name.parse::<IpAddr>().is_ok() || self.host_names.contains(&name)
    }

    fn set_cookie(&self, token: &str) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie_name
        ))
        .ok()
    }
}

/// This machine's host name, which a learner's browser may use to reach an exposed server
/// (Linux; elsewhere learners use the IP address or a name in `PIPEBOOK_PUBLIC_NAMES`).
fn machine_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    is_host_name(&name).then_some(name)
}

/// Letters, digits, `-` and `.`, as DNS names are: no ports, schemes or paths.
fn is_host_name(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `Host` without its port: `example.org:3000` → `example.org`, `[::1]:3000` → `::1`.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_owned();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
        _ => host,
    }
}

/// Why a request is refused: the API's one error type, so an API caller gets the same
/// `{"error": …}` body as from any handler; a page gets the message as a small HTML page.
type Refusal = ApiError;

fn respond(refusal: Refusal, api: bool) -> Response {
    if api {
        return refusal.into_response();
    }
    let page = format!(
        "<!DOCTYPE html><html lang=\"en\"><meta charset=\"utf-8\"><title>Pipebook</title>\
         <body style=\"font-family:system-ui;max-width:40rem;margin:3rem auto\">\
         <h1>Pipebook</h1><p>{}</p></body></html>",
        html_escape(&refusal.message)
    );
    (refusal.status, Html(page)).into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The token a request presents, and whether it came in the URL (to be swapped for a cookie).
fn presented_token(access: &Access, headers: &HeaderMap, uri: &Uri) -> Option<(String, bool)> {
    if let Some(bearer) =
        header_str(headers, header::AUTHORIZATION).and_then(|value| value.strip_prefix("Bearer "))
    {
        return Some((bearer.trim().to_owned(), false));
    }
    if let Some(token) = uri.query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "token")
            .map(|(_, value)| value.into_owned())
    }) {
        return Some((token, true));
    }
    let cookies = headers.get_all(header::COOKIE);
    cookies
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == access.cookie_name)
        .map(|(_, value)| (value.to_owned(), false))
}

/// Whether a browser says the request comes from a page of another origin (or site).
fn cross_origin(headers: &HeaderMap) -> Option<String> {
    let host = header_str(headers, header::HOST).unwrap_or_default();
    if let Some(origin) = header_str(headers, header::ORIGIN) {
        let same = url::Url::parse(origin).ok().is_some_and(|url| {
            let port = url.port_or_known_default();
            let authority = match (url.host_str(), port) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                _ => return false,
            };
            let default_port = if url.scheme() == "https" { 443 } else { 80 };
            let host_with_port = if host.contains(':') && !host.ends_with(']') {
                host.to_ascii_lowercase()
            } else {
                format!("{}:{default_port}", host.to_ascii_lowercase())
            };
            authority == host_with_port
        });
        return (!same).then(|| format!("Origin {origin:?} is not this workbench"));
    }
    match header_str(headers, header::HeaderName::from_static("sec-fetch-site")) {
        None | Some("same-origin") | Some("none") => None,
        Some(site) => Some(format!("Sec-Fetch-Site: {site}")),
    }
}

/// Whether the body's media type is the one this route takes.
fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    header_str(headers, header::CONTENT_TYPE)
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(expected))
}

/// Every request passes here first (see the module comment for the rules, in order).
pub async fn guard(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let api = path.starts_with("/api/");
    match check(&access, &request, api, &path) {
        Err(refusal) => with_safety_headers(respond(refusal, api)),
        Ok((role, cookie)) => {
            let mut request = request;
            request.extensions_mut().insert(role);
            let streaming = STREAMING_ROUTES.contains(&path.as_str())
                || (path.starts_with(UPLOAD_PREFIX) && request.method() == Method::PUT);
            let mut response = if streaming {
                next.run(request).await
            } else {
                match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => respond(
                        Refusal::new(
                            StatusCode::GATEWAY_TIMEOUT,
                            format!(
                                "the request took longer than {} s and was stopped",
                                REQUEST_TIMEOUT.as_secs()
                            ),
                        ),
                        api,
                    ),
                }
            };
            if let Some(cookie) = cookie {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            with_safety_headers(response)
        }
    }
}

/// The checks, in order; on success the caller's role and a cookie to set, if any.
fn check(
    access: &Access,
    request: &Request<Body>,
    api: bool,
    path: &str,
) -> Result<(Role, Option<HeaderValue>), Refusal> {
    let headers = request.headers();
    let host = header_str(headers, header::HOST).unwrap_or_default();
    if !access.host_allowed(host) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!(
                "Host {host:?} is not a name of this workbench; an operator can add it to \
                 PIPEBOOK_PUBLIC_NAMES"
            ),
        ));
    }
    if api && let Some(why) = cross_origin(headers) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!("cross-site requests are refused ({why})"),
        ));
    }
    let upload = path.starts_with(UPLOAD_PREFIX) && request.method() == Method::PUT;
    let too_large = header_str(headers, header::CONTENT_LENGTH)
        .and_then(|length| length.parse::<u64>().ok())
        .is_some_and(|length| length > MAX_JSON_BODY as u64);
    if too_large && !upload {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request bodies are limited to {MAX_JSON_BODY} bytes"),
        ));
    }
    let (role, cookie) = authenticate(access, headers, request.uri(), request.method(), api, path)?;
    if is_mutating(request.method()) {
        if role == Role::Viewer {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "this is a read-only viewer link: only the operator can change the pipeline",
            ));
        }
        let expected = if upload {
            UPLOAD_CONTENT_TYPE
        } else {
            "application/json"
        };
        if !content_type_is(headers, expected) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!("requests that change state must be sent with Content-Type: {expected}"),
            ));
        }
    }
    Ok((role, cookie))
}

fn authenticate(
    access: &Access,
    headers: &HeaderMap,
    uri: &Uri,
    method: &Method,
    api: bool,
    path: &str,
) -> Result<(Role, Option<HeaderValue>), Refusal> {
    let presented = presented_token(access, headers, uri)
        // A token in the URL is taken only when a person opens a page: API URLs end up in logs.
        .filter(|(_, in_url)| !in_url || (!api && *method == Method::GET));
    let Some((token, in_url)) = presented else {
        if !access.token_required() || path == HEALTH_ROUTE {
            return Ok((Role::Operator, None));
        }
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "this workbench needs a token: open the link it printed at start \
             (…/?token=…), or send Authorization: Bearer <token>",
        ));
    };
    match access.role_of(&token) {
        Some(role) => {
            let cookie = in_url.then(|| access.set_cookie(&token)).flatten();
            Ok((role, cookie))
        }
        // On loopback without an operator token, a stale or wrong token changes nothing.
        None if !access.token_required() => Ok((Role::Operator, None)),
        None if path == HEALTH_ROUTE => Ok((Role::Operator, None)),
        None => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "the token is not valid for this workbench (it changes at every start unless \
             PIPEBOOK_TOKEN is set)",
        )),
    }
}

/// Headers every response carries: no framing by other sites (clickjacking the operator's
/// buttons), no MIME sniffing, and no Referer that could carry a token elsewhere.
fn with_safety_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(bind: &str, operator: Option<&str>) -> Access {
        Access::new(AccessSettings {
            bind: bind.parse().expect("addr"),
            operator_token: operator.map(|t| Token::parse("PIPEBOOK_TOKEN", t).expect("token")),
            viewer_token: None,
            public_names: vec!["pipebook.school.lan".into()],
        })
    }

    fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).expect("request")
    }

    fn outcome(access: &Access, request: &Request<Body>) -> Result<Role, StatusCode> {
        let path = request.uri().path().to_owned();
        check(access, request, path.starts_with("/api/"), &path)
            .map(|(role, _)| role)
            .map_err(|refusal| refusal.status)
    }

    const HOST: (&str, &str) = ("host", "127.0.0.1:3000");
    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn loopback_without_a_token_is_the_operator() {
        let a = access("127.0.0.1:3000", None);
        assert!(!a.token_required());
        let req = request(Method::POST, "/api/stages/streamer/start", &[HOST, JSON]);
        assert_eq!(outcome(&a, &req), Ok(Role::Operator));
    }

    #[test]
    fn exposed_servers_generate_both_tokens_and_print_links() {
        let a = access("0.0.0.0:3000", None);
        assert!(a.token_required() && a.exposed());
        let (operator, viewer) = a.links().expect("links");
        assert!(operator.contains("/?token=") && viewer.contains("/?token="));
        assert_ne!(operator, viewer);
        let req = request(Method::GET, "/api/pipeline", &[HOST]);
        assert_eq!(outcome(&a, &req), Err(StatusCode::UNAUTHORIZED));
        let health = request(Method::GET, "/api/health", &[HOST]);
        assert_eq!(outcome(&a, &health), Ok(Role::Operator));
    }

    #[test]
    fn tokens_grant_roles_by_header_cookie_or_page_link() {
        let token = "operator-token-0123456789";
        let a = access("127.0.0.1:3000", Some(token));
        let viewer = a.viewer.clone().expect("viewer token generated");
        let bearer = format!("Bearer {token}");
        let req = request(
            Method::GET,
            "/api/pipeline",
            &[HOST, ("authorization", &bearer)],
        );
        assert_eq!(outcome(&a, &req), Ok(Role::Operator));
        let cookie = format!("other=1; pipebook_token_3000={}", viewer.expose());
        let req = request(Method::GET, "/api/pipeline", &[HOST, ("cookie", &cookie)]);
        assert_eq!(outcome(&a, &req), Ok(Role::Viewer));
        let page = request(Method::GET, &format!("/?token={token}"), &[HOST]);
        let (role, cookie) = check(&a, &page, false, "/")
            .map_err(|r| r.status)
            .expect("page");
        assert_eq!(role, Role::Operator);
        let cookie = cookie.expect("a cookie replaces the link's token");
        let cookie = cookie.to_str().expect("ascii");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        // The API does not take tokens in its URLs.
        let api = request(
            Method::GET,
            &format!("/api/pipeline?token={token}"),
            &[HOST],
        );
        assert_eq!(outcome(&a, &api), Err(StatusCode::UNAUTHORIZED));
        let wrong = request(
            Method::GET,
            "/api/pipeline",
            &[HOST, ("authorization", "Bearer nope")],
        );
        assert_eq!(outcome(&a, &wrong), Err(StatusCode::UNAUTHORIZED));
    }

    #[test]
    fn viewers_may_look_but_not_change() {
        let a = access("127.0.0.1:3000", Some("operator-token-0123456789"));
        let viewer = format!("Bearer {}", a.viewer.as_ref().expect("viewer").expose());
        let look = request(
            Method::GET,
            "/api/kafka/topics",
            &[HOST, ("authorization", &viewer)],
        );
        assert_eq!(outcome(&a, &look), Ok(Role::Viewer));
        let change = request(
            Method::POST,
            "/api/stages/broker/stop",
            &[HOST, JSON, ("authorization", &viewer)],
        );
        assert_eq!(outcome(&a, &change), Err(StatusCode::FORBIDDEN));
    }

    #[test]
    fn state_changes_need_json_and_the_same_origin() {
        let a = access("127.0.0.1:3000", None);
        let path = "/api/stages/broker/stop";
        let plain = request(Method::POST, path, &[HOST, ("content-type", "text/plain")]);
        assert_eq!(outcome(&a, &plain), Err(StatusCode::FORBIDDEN));
        let none = request(Method::POST, path, &[HOST]);
        assert_eq!(outcome(&a, &none), Err(StatusCode::FORBIDDEN));
        let form = request(
            Method::POST,
            path,
            &[HOST, ("content-type", "application/x-www-form-urlencoded")],
        );
        assert_eq!(outcome(&a, &form), Err(StatusCode::FORBIDDEN));
        let evil = request(
            Method::POST,
            path,
            &[HOST, JSON, ("origin", "http://evil.example")],
        );
        assert_eq!(outcome(&a, &evil), Err(StatusCode::FORBIDDEN));
        let other_port = request(
            Method::POST,
            path,
            &[HOST, JSON, ("origin", "http://127.0.0.1:8080")],
        );
        assert_eq!(outcome(&a, &other_port), Err(StatusCode::FORBIDDEN));
        let null = request(Method::POST, path, &[HOST, JSON, ("origin", "null")]);
        assert_eq!(outcome(&a, &null), Err(StatusCode::FORBIDDEN));
        let site = request(
            Method::POST,
            path,
            &[HOST, JSON, ("sec-fetch-site", "same-site")],
        );
        assert_eq!(outcome(&a, &site), Err(StatusCode::FORBIDDEN));
        let own = request(
            Method::POST,
            path,
            &[HOST, JSON, ("origin", "http://127.0.0.1:3000")],
        );
        assert_eq!(outcome(&a, &own), Ok(Role::Operator));
        let json_utf8 = request(
            Method::POST,
            path,
            &[HOST, ("content-type", "Application/JSON; charset=utf-8")],
        );
        assert_eq!(outcome(&a, &json_utf8), Ok(Role::Operator));
        // Reads from another site are refused too (they could only cost the server work).
        let read = request(
            Method::GET,
            "/api/trace/next",
            &[HOST, ("sec-fetch-site", "cross-site")],
        );
        assert_eq!(outcome(&a, &read), Err(StatusCode::FORBIDDEN));
    }

    #[test]
    fn uploads_take_json_lines_only_on_their_route() {
        let a = access("127.0.0.1:3000", None);
        let ndjson = ("content-type", "application/x-ndjson");
        let upload = request(Method::PUT, "/api/datasets/mine.jsonl", &[HOST, ndjson]);
        assert_eq!(outcome(&a, &upload), Ok(Role::Operator));
        let elsewhere = request(Method::POST, "/api/stages/streamer/start", &[HOST, ndjson]);
        assert_eq!(outcome(&a, &elsewhere), Err(StatusCode::FORBIDDEN));
        let huge = request(
            Method::PUT,
            "/api/datasets/big.jsonl",
            &[HOST, ndjson, ("content-length", "50000000")],
        );
        assert_eq!(
            outcome(&a, &huge),
            Ok(Role::Operator),
            "uploads have their own limit"
        );
        let huge_json = request(
            Method::POST,
            "/api/stages/streamer/start",
            &[HOST, JSON, ("content-length", "50000000")],
        );
        assert_eq!(outcome(&a, &huge_json), Err(StatusCode::PAYLOAD_TOO_LARGE));
    }

    #[test]
    fn foreign_host_names_are_refused() {
        let a = access("0.0.0.0:3000", Some("operator-token-0123456789"));
        for host in [
            "evil.example",
            "evil.example:3000",
            "localhost.evil.example",
        ] {
            let req = request(Method::GET, "/", &[("host", host)]);
            assert_eq!(outcome(&a, &req), Err(StatusCode::FORBIDDEN), "{host}");
        }
        let auth = ("authorization", "Bearer operator-token-0123456789");
        for host in [
            "localhost:3000",
            "[::1]:3000",
            "192.168.1.20:3000",
            "PipeBook.School.lan",
        ] {
            let req = request(Method::GET, "/api/pipeline", &[("host", host), auth]);
            assert_eq!(outcome(&a, &req), Ok(Role::Operator), "{host}");
        }
    }

    #[test]
    fn configured_tokens_and_names_are_checked() {
        assert!(Token::parse("PIPEBOOK_TOKEN", "short").is_err());
        let err =
            Token::parse("PIPEBOOK_VIEWER_TOKEN", "has spaces in it, 12345").expect_err("spaces");
        assert!(
            err.to_string().starts_with("PIPEBOOK_VIEWER_TOKEN"),
            "{err}"
        );
        assert_eq!(
            parse_public_names(" a.lan, B-2 ,").expect("names"),
            ["a.lan", "b-2"]
        );
        let err = parse_public_names("http://a.lan").expect_err("scheme");
        assert!(
            err.to_string().starts_with("PIPEBOOK_PUBLIC_NAMES"),
            "{err}"
        );
        assert_eq!(format!("{:?}", Token::generate()), "Token(Secret(***))");
    }
}
