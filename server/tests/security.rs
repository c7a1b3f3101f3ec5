//! The attacker's view of a real workbench (docs/security.md): the whole router `pipebook serve`
//! runs — access guard, API and server-rendered notebook — over a real socket, against an engine
//! with a real embedded broker. Every refused request must leave the pipeline as it was.
//!
//! An "exposed" server is simulated: the guard is told the server is bound to 0.0.0.0 (so it
//! requires tokens), while the test listener itself binds 127.0.0.1 only.

mod common;

use std::sync::Arc;

use app::api::StageState;
use common::{TestEngine, high_sum, start_engine};
use pipebook::access::{Access, AccessSettings, Token};
use pipebook::stage::StageId;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Served {
    base: String,
    host: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the full router on 127.0.0.1; `exposed` makes the guard act as if bound to 0.0.0.0.
async fn serve(t: &TestEngine, exposed: bool, token: Option<&str>) -> (Served, Arc<Access>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let local = listener.local_addr().expect("addr");
    let bind = if exposed {
        std::net::SocketAddr::from(([0, 0, 0, 0], local.port()))
    } else {
        local
    };
    let mut settings = AccessSettings::local(bind);
    settings.operator_token = token.map(|t| Token::parse("PIPEBOOK_TOKEN", t).expect("token"));
    let access = Arc::new(Access::new(settings));
    let options = leptos::config::LeptosOptions::builder()
        .output_name("pipebook")
        .site_root(t.dir.path().join("site").display().to_string())
        .build();
    let router = pipebook::web::router(t.engine.clone(), access.clone(), options);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let served = Served {
        base: format!("http://{local}"),
        host: local.to_string(),
        task,
    };
    (served, access)
}

/// Every route that changes something, with a body its handler would accept.
fn mutating_routes() -> Vec<(String, Value)> {
    let mut routes = Vec::new();
    for stage in StageId::ALL.map(StageId::as_str) {
        for action in ["start", "stop", "pause", "resume", "crash", "restart"] {
            routes.push((format!("/api/stages/{stage}/{action}"), json!({})));
        }
    }
    let others = [
        ("/api/stages/sentiment/workers", json!({})),
        ("/api/stages/sentiment/workers/worker-1/kill", json!({})),
        ("/api/pipeline/start-all", json!({})),
        ("/api/pipeline/stop-all", json!({})),
        ("/api/lesson/reset", json!({})),
        ("/api/lesson/steps/stream/prediction", json!({"choice": 1})),
        ("/api/incidents/search-outage/start", json!({"seed": 1})),
        ("/api/incidents/hint", json!({})),
        ("/api/incidents/answer", json!({"choice": 0})),
        ("/api/faults/malformed", json!({"count": 10})),
        ("/api/faults/resend", json!({"count": 10})),
        ("/api/faults/search-outage", json!({"down": true})),
        ("/api/lab/delivery", json!({})),
        // Changes nothing, but costs CPU (or LLM calls): operators only, like the changes.
        (
            "/api/sentiment/compare",
            json!({"a": "lexicon", "b": "textblob"}),
        ),
        (
            "/api/kafka/groups/pipebook-sentiment/reset",
            json!({"to": "earliest", "dry_run": false}),
        ),
    ];
    routes.extend(
        others
            .into_iter()
            .map(|(path, body)| (path.to_owned(), body)),
    );
    routes
}

/// Routes that only read, each of which answers 200 to a caller allowed to read.
const READ_ROUTES: [&str; 12] = [
    "/",
    "/api/pipeline",
    "/api/sentiment",
    "/api/kafka/topics",
    "/api/kafka/groups",
    "/api/kafka/topics/reviews/messages?limit=1",
    "/api/aggregates",
    "/api/search/aggregations",
    "/api/lesson",
    "/api/lab/delivery",
    "/api/incidents",
    "/metrics",
];

/// What a refused request must not have changed: every stage, the broker and the topics.
async fn pipeline_state(t: &TestEngine) -> (Vec<(String, StageState)>, StageState, i64, bool) {
    let status = t.engine.pipeline_status();
    let stages = status
        .stages
        .iter()
        .map(|s| (s.id.clone(), s.state))
        .collect();
    let reviews = high_sum(&t.engine, "reviews").await;
    let outage = t.engine.subscribe().borrow().search.paused;
    (stages, status.kafka.state, reviews, outage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_and_non_json_requests_change_nothing() {
    let t = start_engine().await;
    let (served, _) = serve(&t, false, None).await;
    let http = reqwest::Client::new();
    let before = pipeline_state(&t).await;
    let mut refused = 0;
    for (path, body) in mutating_routes() {
        let url = format!("{}{path}", served.base);
        // A form or a "simple" fetch from another page: text/plain, no preflight.
        let plain = http
            .post(&url)
            .header("content-type", "text/plain")
            .body(body.to_string())
            .send()
            .await
            .expect("send");
        assert_eq!(plain.status(), StatusCode::FORBIDDEN, "text/plain {path}");
        let form = http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("count=10")
            .send()
            .await
            .expect("send");
        assert_eq!(form.status(), StatusCode::FORBIDDEN, "form {path}");
        // JSON from another origin (the browser would preflight; a non-browser client may not).
        let cross = http
            .post(&url)
            .header("origin", "http://evil.example")
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(cross.status(), StatusCode::FORBIDDEN, "cross-origin {path}");
        let error: Value = cross.json().await.expect("JSON error");
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.contains("cross-site")),
            "{error}"
        );
        let same_site = http
            .post(&url)
            .header("sec-fetch-site", "same-site")
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(
            same_site.status(),
            StatusCode::FORBIDDEN,
            "same-site {path}"
        );
        refused += 4;
    }
    // DNS rebinding: a page at evil.example whose name now points at 127.0.0.1.
    for path in ["/", "/api/pipeline", "/api/events"] {
        let rebound = http
            .get(format!("{}{path}", served.base))
            .header("host", "evil.example")
            .send()
            .await
            .expect("send");
        assert_eq!(rebound.status(), StatusCode::FORBIDDEN, "{path}");
        refused += 1;
    }
    let rebound_post = http
        .post(format!("{}/api/stages/broker/stop", served.base))
        .header(
            "host",
            format!(
                "evil.example:{}",
                served.host.rsplit(':').next().unwrap_or("")
            ),
        )
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(rebound_post.status(), StatusCode::FORBIDDEN);
    refused += 1;
    // A 50 MB JSON body is refused before it is read.
    let huge = format!(
        "{{\"rate\": 1, \"pad\": \"{}\"}}",
        "x".repeat(50 * 1024 * 1024)
    );
    let too_large = http
        .post(format!("{}/api/stages/streamer/start", served.base))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    refused += 1;
    assert_eq!(
        pipeline_state(&t).await,
        before,
        "a refused request changed the pipeline"
    );
    eprintln!("refused {refused} hostile requests; the pipeline is as it was");

    // The workbench's own page still works: same origin, JSON, an empty body means defaults.
    let own = http
        .post(format!("{}/api/stages/streamer/start", served.base))
        .header("origin", &served.base)
        .header("content-type", "application/json")
        .send()
        .await
        .expect("send");
    assert_eq!(own.status(), StatusCode::OK, "{:?}", own.text().await);
    let stopped = http
        .post(format!("{}/api/stages/streamer/stop", served.base))
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("send");
    assert_eq!(stopped.status(), StatusCode::OK);
    let page = http.get(&served.base).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    for header in [
        "x-frame-options",
        "content-security-policy",
        "referrer-policy",
    ] {
        assert!(page.headers().contains_key(header), "{header} missing");
    }
    t.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exposed_workbench_needs_its_token_and_viewers_only_look() {
    let t = start_engine().await;
    let (served, access) = serve(&t, true, None).await;
    let http = reqwest::Client::new();
    let (operator_link, viewer_link) = access.links().expect("tokens were generated");
    let token_of = |link: &str| link.rsplit("token=").next().unwrap_or_default().to_owned();
    let (operator, viewer) = (token_of(&operator_link), token_of(&viewer_link));
    let before = pipeline_state(&t).await;

    // Without a token: 401 everywhere but the health check.
    let mut unauthorised = 0;
    for path in READ_ROUTES
        .iter()
        .copied()
        .chain(["/api/events", "/api/session"])
    {
        let answer = http
            .get(format!("{}{path}", served.base))
            .send()
            .await
            .expect("send");
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "GET {path}");
        unauthorised += 1;
    }
    for (path, body) in mutating_routes() {
        let answer = http
            .post(format!("{}{path}", served.base))
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "POST {path}");
        let wrong = http
            .post(format!("{}{path}", served.base))
            .bearer_auth("not-the-token-0123456789")
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "POST {path}");
        unauthorised += 2;
    }
    let health = http
        .get(format!("{}/api/health", served.base))
        .send()
        .await
        .expect("send");
    assert_eq!(health.status(), StatusCode::OK);

    // The viewer: every read works, every change is refused.
    for path in READ_ROUTES.iter().copied().chain(["/api/session"]) {
        let answer = http
            .get(format!("{}{path}", served.base))
            .bearer_auth(&viewer)
            .send()
            .await
            .expect("send");
        assert_eq!(answer.status(), StatusCode::OK, "viewer GET {path}");
    }
    let session: Value = http
        .get(format!("{}/api/session", served.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        session,
        json!({"role": "viewer", "token_required": true, "exposed": true})
    );
    let mut forbidden = 0;
    for (path, body) in mutating_routes() {
        let answer = http
            .post(format!("{}{path}", served.base))
            .bearer_auth(&viewer)
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "viewer POST {path}");
        forbidden += 1;
    }
    assert_eq!(
        pipeline_state(&t).await,
        before,
        "a refused request changed the pipeline"
    );
    eprintln!(
        "{unauthorised} requests without a valid token got 401; {forbidden} viewer changes got 403"
    );

    // The viewer's page renders read-only, and the link is swapped for a cookie.
    let page = http
        .get(format!("{}/?token={viewer}", served.base))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a cookie for the viewer")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let html = page.text().await.expect("html");
    assert!(
        html.contains("data-role=\"viewer\""),
        "page not rendered for a viewer"
    );
    assert!(html.contains("viewer-banner"), "no read-only banner");
    let pair = cookie.split(';').next().unwrap_or_default().to_owned();
    let with_cookie = http
        .get(format!("{}/api/pipeline", served.base))
        .header("cookie", &pair)
        .send()
        .await
        .expect("send");
    assert_eq!(with_cookie.status(), StatusCode::OK);

    // The operator can change things.
    let started = http
        .post(format!("{}/api/stages/streamer/start", served.base))
        .bearer_auth(&operator)
        .json(&json!({"rate": 10}))
        .send()
        .await
        .expect("send");
    assert_eq!(started.status(), StatusCode::OK);
    let stopped = http
        .post(format!("{}/api/stages/streamer/stop", served.base))
        .bearer_auth(&operator)
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(stopped.status(), StatusCode::OK);
    t.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_set_on_loopback_is_required_too() {
    let t = start_engine().await;
    let token = "classroom-token-0123456789";
    let (served, _) = serve(&t, false, Some(token)).await;
    let http = reqwest::Client::new();
    let anonymous = http
        .get(format!("{}/api/pipeline", served.base))
        .send()
        .await
        .expect("send");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let page = http.get(&served.base).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
    assert!(page.text().await.expect("html").contains("token"));
    let with = http
        .get(format!("{}/api/pipeline", served.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    assert_eq!(with.status(), StatusCode::OK);
    t.engine.shutdown().await;
}
