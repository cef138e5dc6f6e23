//! The console (docs/design.md section 9) as an operator uses it: in headless Chromium driven over
//! WebDriver (chromium and chromium-driver, Debian packages; `make test` installs them), and its
//! API and access rules over plain HTTP. Also: slow clients cannot hold `serve` open.

use e2e::{binary, data_dir, zofhook, Serve};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A chromedriver on a free 127.0.0.1 port, killed when dropped.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver on a port it picks itself (`--port=0`; it prints "… started successfully on port
/// N."), so no port is chosen here and handed over for another process to take in between.
fn driver() -> Driver {
    let mut child = Command::new("chromedriver")
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian package chromium-driver; make test installs it)");
    let port = announced(&mut child, "started successfully on port ")
        .trim_end_matches('.')
        .parse()
        .expect("chromedriver's port");
    Driver(child, port)
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,860"]}),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a headless Chromium session")
}

/// Polls a JavaScript expression in the page until it is true (the page updates itself).
async fn wait_until(client: &Client, what: &str, expression: &str) {
    let started = Instant::now();
    loop {
        let value = client
            .execute(&format!("return Boolean({expression});"), vec![])
            .await
            .unwrap();
        if value == Value::Bool(true) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: `{expression}` stayed false"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The page re-renders parts of itself on live updates, so an element found just before a
/// re-render is stale by the time it is used (WebDriver's stale element reference): each of these
/// finds it again and retries, rather than hoping no update lands in between.
async fn on_element<T, F, Fut>(client: &Client, css: &str, act: F) -> T
where
    F: Fn(fantoccini::elements::Element) -> Fut,
    Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
{
    let started = Instant::now();
    loop {
        let element = client.find(Locator::Css(css)).await;
        let result = match element {
            Ok(element) => act(element).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(value) => return value,
            Err(e) if e.is_stale_element_reference() || e.is_no_such_element() => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "{css}: still {e} after 20 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{css}: {e}"),
        }
    }
}

async fn click(client: &Client, css: &str) {
    on_element(client, css, |e| async move { e.click().await.map(|_| ()) }).await
}

async fn text(client: &Client, css: &str) -> String {
    on_element(client, css, |e| async move { e.text().await }).await
}

async fn select(client: &Client, css: &str, value: &str) {
    on_element(
        client,
        css,
        |e| async move { e.select_by_value(value).await },
    )
    .await
}

/// The status code `request` gets.
async fn code(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

fn row(id: &str, part: &str) -> String {
    format!("document.querySelector('#events tr[data-id=\"{id}\"] {part}')")
}

fn save(name: &str, png: &[u8]) {
    let dir = e2e::root().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_events_live_opens_details_replays_and_filters() {
    let driver = driver();
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let serve = Serve::start(&["--data-dir", d], &[], &[]);
    let base = serve.url.trim_end_matches("/webhook").to_string();
    let client = browser(&driver).await;
    client.goto(&format!("{base}/")).await.unwrap();
    wait_until(
        &client,
        "the page loaded",
        "document.querySelector('#live').textContent.startsWith('live')",
    )
    .await;

    // Events sent while the page is open appear and turn `processed` without a reload.
    for id in ["evt_console_2", "evt_console_1"] {
        let (code, _, err) = zofhook(&["--data-dir", d, "send", "--id", id], &[]);
        assert_eq!(code, 0, "{err}");
    }
    let status = row("evt_console_1", ".status");
    wait_until(
        &client,
        "the event appeared, processed",
        &format!("{status} && {status}.textContent === 'processed'"),
    )
    .await;
    save("console-list.png", &client.screenshot().await.unwrap());

    // Its detail: the record, the outcome, the body pretty-printed.
    click(&client, "#events tr[data-id=\"evt_console_1\"]").await;
    wait_until(
        &client,
        "the detail opened",
        "document.querySelector('#detail h2')?.textContent === 'evt_console_1'",
    )
    .await;
    let body = text(&client, "#body").await;
    assert!(body.contains("\"id\": \"evt_console_1\""), "{body}");
    assert!(client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("event=evt_console_1"));
    save("console-detail.png", &client.screenshot().await.unwrap());

    // Replay: processed again, and the page shows it.
    click(&client, "#replay").await;
    wait_until(
        &client,
        "the replay shows",
        &format!(
            "{}?.textContent.includes('↻1')",
            row("evt_console_1", "td:last-child")
        ),
    )
    .await;
    wait_until(
        &client,
        "processed again",
        &format!("{status}.textContent === 'processed'"),
    )
    .await;
    let (_, out, _) = zofhook(
        &["--data-dir", d, "events", "show", "evt_console_1", "--json"],
        &[],
    );
    let record: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (record["status"].as_str(), record["replays"].as_u64()),
        (Some("processed"), Some(1))
    );

    // Filters: by status, kept in the address.
    select(&client, "#status", "failed").await;
    wait_until(
        &client,
        "no failed events",
        "!document.querySelector('#empty').hidden",
    )
    .await;
    assert!(client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("status=failed"));
    select(&client, "#status", "processed").await;
    wait_until(
        &client,
        "the processed events",
        &format!(
            "{} && {}",
            row("evt_console_1", ".status"),
            row("evt_console_2", ".status")
        ),
    )
    .await;
    // Keyboard: j moves the selection.
    client.execute("document.activeElement.blur(); document.dispatchEvent(new KeyboardEvent('keydown', {key: 'j'}));", vec![]).await.unwrap();
    wait_until(
        &client,
        "j selected a row",
        "document.querySelector('#events tr.selected') !== null",
    )
    .await;
    client.close().await.unwrap();
}

/// `zofhook serve` on every address (0.0.0.0; the test talks to it on 127.0.0.1 only).
struct Public(Child, u16);

impl Drop for Public {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `child`'s stdout up to the line that holds `marker`, then keeps draining it in a thread
/// (so the child never blocks on a full pipe); the text after the marker up to the next `/`.
/// A listener bound on port 0 by the child itself: no port is chosen here and handed over.
fn announced(child: &mut Child, marker: &str) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let found = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.split(marker).nth(1) {
                    break rest.split('/').next().unwrap_or_default().to_string();
                }
                seen.push(line);
            }
            _ => panic!("the process ended without printing {marker:?}: {seen:?}"),
        }
    };
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    found
}

fn serve_public(dir: &std::path::Path, extra: &[&str]) -> Public {
    let mut child = Command::new(binary("zofhook"))
        .args(["--data-dir", dir.to_str().unwrap(), "serve", "--listen"])
        .arg("0.0.0.0:0")
        .args(extra)
        .env_remove("ZOFHOOK_CONSOLE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = announced(&mut child, "listening on http://");
    let port = addr.rsplit(':').next().unwrap().parse().unwrap();
    Public(child, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_console_needs_its_token_and_keeps_it_in_a_strict_cookie() {
    let dir = data_dir();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // No token configured: the console is off, the webhook and health check are not.
    let off = serve_public(&dir, &[]);
    let base = format!("http://127.0.0.1:{}", off.1);
    for path in ["/", "/api/events", "/api/events/x"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    assert_eq!(code(http.get(format!("{base}/healthz"))).await, 200);
    let r = http
        .post(format!("{base}/webhook"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "the webhook answers for itself");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_signature");
    drop(off);

    // With a token: bearer, or once as ?token= then the cookie.
    let token = "console-token-3f9a";
    let on = serve_public(&dir, &["--console-token", token]);
    let base = format!("http://127.0.0.1:{}", on.1);
    assert_eq!(code(http.get(format!("{base}/api/events"))).await, 401);
    assert_eq!(
        code(
            http.get(format!("{base}/api/events"))
                .bearer_auth("console-token-3f9b")
        )
        .await,
        401
    );
    assert_eq!(
        code(http.get(format!("{base}/api/events")).bearer_auth(token)).await,
        200
    );
    let visit = http
        .get(format!("{base}/?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(visit.status().as_u16(), 303);
    assert_eq!(visit.headers()["location"], "/");
    let cookie = visit.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let jar = cookie.split(';').next().unwrap().to_string();
    let page = http
        .get(format!("{base}/"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    // Replay and redrive are POSTs only.
    assert_eq!(
        code(
            http.get(format!("{base}/api/events/x/replay"))
                .bearer_auth(token)
        )
        .await,
        405
    );
    assert_eq!(
        code(http.get(format!("{base}/api/redrive")).bearer_auth(token)).await,
        405
    );

    // And in a real browser: without the token a 401, with it once the page and its list.
    let driver = driver();
    let client = browser(&driver).await;
    client.goto(&format!("{base}/")).await.unwrap();
    let text = client
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("unauthorized"), "{text}");
    client
        .goto(&format!("{base}/?token={token}"))
        .await
        .unwrap();
    wait_until(
        &client,
        "the page loaded with the cookie",
        "document.querySelector('#live')?.textContent.startsWith('live')",
    )
    .await;
    assert!(!client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("token"));
    client.close().await.unwrap();
}

/// In Chromium: a page served from another port of localhost tries a `no-cors` fetch and then a
/// form POST to the console's replay. Both are refused (403), and the event is not replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_local_port_cannot_replay_through_the_browser() {
    let driver = driver();
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let serve = Serve::start(&["--data-dir", d], &[], &[]);
    let (status, _, err) = zofhook(&["--data-dir", d, "send", "--id", "evt_csrf"], &[]);
    assert_eq!(status, 0, "{err}");
    let base = serve.url.trim_end_matches("/webhook").to_string();
    let target = format!("{base}/api/events/evt_csrf/replay");
    let attack = format!(
        r#"<!doctype html><title>attack</title>
<form id="f" method="POST" action="{target}"><input name="x" value="1"></form>
<script>
fetch("{target}", {{ method: "POST", mode: "no-cors", body: "x=1" }})
  .then(() => {{ document.title = "fetched"; }}, () => {{ document.title = "fetch refused"; }})
  .finally(() => document.getElementById("f").submit());
</script>"#
    );
    let page = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let attack = attack.clone();
            async move { axum::response::Html(attack) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, page).await });
    let client = browser(&driver).await;
    client.goto(&evil).await.unwrap();
    // The form's POST navigates the tab to the console's answer.
    wait_until(
        &client,
        "the form POST was answered",
        "location.href.endsWith('/replay') && document.body.textContent.includes('forbidden')",
    )
    .await;
    client.close().await.unwrap();
    let event: Value = reqwest::get(format!("{base}/api/events/evt_csrf"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(event["replays"], json!(0), "{event}");
    let refused = serve.stderr();
    assert!(!refused.contains("replayed"), "{refused}");
}

/// The attacks of a web page on the console of a default `zofhook serve` on loopback: a page
/// whose name is rebound to 127.0.0.1 (any Host but the console's own gets 403, reads
/// included), a cross-site form POST, a `no-cors` fetch (`Origin: null`) and a POST from
/// another localhost port (403, nothing replayed or redriven), and framing (refused by the
/// headers). The console's own requests still work, and so do scripts (no Origin at all).
#[tokio::test]
async fn the_console_refuses_rebound_hosts_cross_site_posts_and_framing() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let serve = Serve::start(
        &["--data-dir", d],
        &["--allowed-host", "proxy.example"],
        &[],
    );
    let (status, _, err) = zofhook(&["--data-dir", d, "send", "--id", "evt_guarded"], &[]);
    assert_eq!(status, 0, "{err}");
    let base = serve.url.trim_end_matches("/webhook").to_string();
    let port = base.rsplit(':').next().unwrap().to_string();
    let own = format!("127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let replays = || async {
        let event: Value = http
            .get(format!("{base}/api/events/evt_guarded"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        event["replays"].as_u64().unwrap_or(0)
    };
    // DNS rebinding: the attacker's name, resolved to 127.0.0.1.
    for host in [
        format!("evil.example:{port}"),
        "attacker.test".to_string(),
        format!("localhost.evil.example:{port}"),
    ] {
        for path in ["/", "/api/events", "/api/events/evt_guarded"] {
            let response = http
                .get(format!("{base}{path}"))
                .header("host", &host)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 403, "{host} {path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "forbidden", "{body}");
            assert!(!body.to_string().contains("evt_guarded"), "{body}");
        }
    }
    // The names it is served under, and the proxy's.
    for host in [
        own.clone(),
        format!("localhost:{port}"),
        "proxy.example".into(),
    ] {
        let response = http
            .get(format!("{base}/api/events"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{host}");
    }
    // The webhook and the health check answer any Host.
    let health = http
        .get(format!("{base}/healthz"))
        .header("host", "anything.example")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // State changes from anywhere but the console's own page.
    let attacks: Vec<Vec<(&str, String)>> = vec![
        vec![
            ("origin", "http://evil.example".into()),
            ("sec-fetch-site", "cross-site".into()),
            ("content-type", "application/x-www-form-urlencoded".into()),
        ],
        vec![
            ("origin", "null".into()),
            ("sec-fetch-site", "cross-site".into()),
        ],
        vec![
            (
                "origin",
                format!("http://127.0.0.1:{}", port.parse::<u32>().unwrap() + 1),
            ),
            ("sec-fetch-site", "same-site".into()),
        ],
        vec![("sec-fetch-site", "cross-site".into())],
    ];
    for headers in &attacks {
        for path in ["/api/events/evt_guarded/replay", "/api/redrive"] {
            let mut request = http.post(format!("{base}{path}")).body("x=1");
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 403, "{path} {headers:?}");
        }
    }
    assert_eq!(replays().await, 0, "an attack replayed the event");
    // Framing and sniffing, on the page and the API.
    for path in ["/", "/api/events"] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert!(
            header("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
    // The console's own page, and a script.
    let own_page = http
        .post(format!("{base}/api/events/evt_guarded/replay"))
        .header("origin", format!("http://{own}"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(own_page.status().as_u16(), 200);
    assert_eq!(replays().await, 1);
    let script = http
        .post(format!("{base}/api/redrive"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_the_page_or_the_api() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let serve = Serve::start(&["--data-dir", d], &[], &[]);
    let secret = std::fs::read_to_string(dir.join("secret")).unwrap();
    let (code, _, _) = zofhook(&["--data-dir", d, "send", "--id", "evt_secretless"], &[]);
    assert_eq!(code, 0);
    let base = serve.url.trim_end_matches("/webhook").to_string();
    let http = reqwest::Client::new();
    let mut everything = String::new();
    for path in ["/", "/api/events", "/api/events/evt_secretless"] {
        everything.push_str(
            &http
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    everything.push_str(
        &http
            .post(format!("{base}/api/events/evt_secretless/replay"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(everything.contains("evt_secretless"));
    // Bad input gets a clear error, never a 500.
    for (path, status, error) in [
        ("/api/events?cursor=zzz", 400, "bad_cursor"),
        ("/api/events?status=done", 400, "bad_selection"),
        ("/api/events?since=yesterday", 400, "bad_selection"),
        ("/api/events/evt_nobody", 404, "not_found"),
    ] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{path}");
    }
    let response = http
        .post(format!("{base}/api/events/evt_nobody/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["not_found"], json!(["evt_nobody"]));
    assert!(
        !everything.contains(secret.trim()),
        "the webhook secret leaked"
    );
    assert!(
        !everything.contains(&secret.trim()["whsec_".len()..]),
        "the webhook secret leaked"
    );
}

/// The defaults: a client has 10 s to send its request (`--read-timeout-ms`), and at most 1,024
/// connections are open at once (`--max-connections`); more wait in the listen backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_deliveries_still_get_through_at_defaults() {
    const CAP: usize = 1024;
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let serve = Serve::start(&["--data-dir", d], &[], &[]);
    let addr = serve
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/webhook")
        .to_string();
    // 76 more clients than the cap: 30 send headers and one byte of a 100-byte body, the rest
    // nothing at all.
    let mut slow = Vec::new();
    for i in 0..CAP + 76 {
        // Taken before the connect: the server's clock for this connection starts after it.
        let connecting = Instant::now();
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        if i < 30 {
            s.write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{").unwrap();
        }
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        slow.push((connecting, s));
    }
    // Health and a signed delivery get through: once the slow ones lose their slots, the
    // backlog (the 76 and these) is taken in.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let base = format!("http://{addr}");
    assert_eq!(code(http.get(format!("{base}/healthz"))).await, 200);
    let secret = std::fs::read_to_string(dir.join("secret")).unwrap();
    let body = e2e::event("evt_after_slow", "org_a", "run_1");
    let delivered = http
        .post(format!("{base}/webhook"))
        .header("zof-signature", e2e::signature(secret.trim(), &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(delivered.status().as_u16(), 200);
    // Every slow connection was closed by the server (a 408, or nothing, then end of stream),
    // and none before its 10 s: a connection's clock starts when it is taken in, which is at or
    // after this test began its connect, and this test sees the close at or after it happened.
    tokio::task::spawn_blocking(move || {
        for (i, (connected, mut s)) in slow.into_iter().enumerate() {
            let mut rest = Vec::new();
            let read = s.read_to_end(&mut rest);
            assert!(read.is_ok(), "slow client {i} was never cut off: {read:?}");
            let text = String::from_utf8_lossy(&rest);
            assert!(
                text.is_empty() || text.starts_with("HTTP/1.1 408"),
                "{text}"
            );
            assert!(
                connected.elapsed() >= Duration::from_secs(10),
                "slow client {i} cut off after {:?}, before the 10 s default",
                connected.elapsed()
            );
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn zofhook_aws_console_lists_replays_and_redrives_against_the_emulator() {
    use zofhook_core::ledger::Ledger;
    let sdk = e2e::sdk().await;
    let (client, table) = e2e::create_table(&sdk).await;
    let (sqs, queue_url) = e2e::create_queue(&sdk).await;
    let (_, dlq_url) = e2e::create_queue(&sdk).await;
    let ledger = zofhook_core::ledger::dynamodb::DynamoLedger::new(client, table.clone());
    let body = String::from_utf8(e2e::event("evt_aws_console", "org_a", "run_1")).unwrap();
    let now = zofhook_core::now_ms();
    let record = e2e::failed_record("evt_aws_console", &body, "run_1", "down");
    ledger.begin(&record, now).await.unwrap();
    let mut console = Command::new(binary("zofhook"))
        .args([
            "--aws",
            "--table-name",
            &table,
            "--queue-url",
            &queue_url,
            "--dlq-url",
            &dlq_url,
        ])
        .args(["console", "--listen", "127.0.0.1:0"])
        .envs(e2e::aws_env())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let listen = announced(&mut console, "zofhook console: http://");
    let base = format!("http://{listen}");
    let http = reqwest::Client::new();
    let page: Value = http
        .get(format!("{base}/api/events?status=failed&since=1h"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"][0]["id"], "evt_aws_console", "{page}");
    assert_eq!(page["next"], Value::Null);
    let detail: Value = http
        .get(format!("{base}/api/events/evt_aws_console"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["body"], body);
    let replayed = http
        .post(format!("{base}/api/events/evt_aws_console/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status().as_u16(), 200);
    let sent = e2e::drain(&sqs, &queue_url).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body().unwrap(), body);
    let redriven: Value = http
        .post(format!("{base}/api/redrive"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(redriven, json!({"moved": 0}));
    let _ = console.kill();
    let _ = console.wait();
}
