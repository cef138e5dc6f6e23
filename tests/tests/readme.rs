//! The README and the documents in docs/ are executable: their shell blocks and their
//! `zofhook … <Placeholder> …` commands run here as written, through bash, with `zofhook` on the
//! PATH (the test build of the binary) in a fresh directory, and print what the documents say
//! they print. An edit that breaks a command, or changes what it prints without changing the
//! program, fails this test; so does a command moved to a document this test does not read.
//!
//! What cannot run here is named in `NOT_HERE` with the reason; a command in neither list fails.

use e2e::{binary, root};

/// The README, then every document in docs/, as one text: the commands they show.
fn documents() -> String {
    let mut text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut docs: Vec<_> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    for doc in docs {
        text.push('\n');
        text.push_str(&std::fs::read_to_string(doc).unwrap());
    }
    text
}
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Commands the README shows that this test does not run, and why.
const NOT_HERE: &[(&str, &str)] = &[
    ("make test", "it is the command that runs this test"),
    (
        "sam build --beta-features",
        "builds for AWS: `make package` runs it in CI",
    ),
    ("sam deploy --guided", "needs an AWS account"),
];

/// One command line of a README shell block, and the output lines documented under it.
#[derive(Debug)]
struct Step {
    command: String,
    expected: Vec<String>,
}

fn sh_blocks(readme: &str) -> Vec<Vec<Step>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<Step>> = None;
    for line in readme.lines() {
        match (&mut current, line.trim()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(steps), text) if text.starts_with('#') => {
                if let Some(step) = steps.last_mut() {
                    step.expected
                        .push(text.trim_start_matches('#').trim().to_string());
                }
            }
            (Some(steps), text) if !text.is_empty() => {
                // A trailing `  # comment` explains; it is not part of the command.
                let command = text.split("  #").next().unwrap_or(text).trim();
                steps.push(Step {
                    command: command.to_string(),
                    expected: Vec::new(),
                });
            }
            _ => {}
        }
    }
    blocks
}

/// `zofhook …` commands written inline with `<Placeholder>`s (the deploy and DLQ checks).
fn inline_commands(readme: &str) -> Vec<String> {
    readme
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| span.starts_with("zofhook ") && span.contains('<'))
        .map(str::to_string)
        .collect()
}

/// Whether `line` is what the README documents: `…` stands for anything.
fn matches(expected: &str, line: &str) -> bool {
    let mut rest = line;
    for (i, piece) in expected.split('…').enumerate() {
        if i == 0 {
            let Some(after) = rest.strip_prefix(piece) else {
                return false;
            };
            rest = after;
        } else {
            let Some(at) = rest.find(piece) else {
                return false;
            };
            rest = &rest[at + piece.len()..];
        }
    }
    expected.ends_with('…') || rest.is_empty()
}

/// A bash running `command` in `dir` with the test build's `zofhook` first on the PATH.
fn bash(dir: &std::path::Path, command: &str, env: &[(&str, String)]) -> Command {
    let bin = binary("zofhook");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("bash");
    c.args(["-c", command])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("ZOFHOOK_SECRET")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null());
    c
}

/// The README's first command and `cargo build --release` stand for the release binary; here
/// the test build of the same binary (with its feature `aws`) stands in: a release build takes
/// minutes, `make package` builds the release profile in CI, and `make first-run` times the
/// first command on a fresh clone.
fn as_run_here(command: &str) -> Option<String> {
    if let Some(args) = command.strip_prefix("cargo run --release -p zofhook -- ") {
        return Some(format!("zofhook {args}"));
    }
    if command.starts_with("cargo build --release -p zofhook && alias zofhook=")
        || command == AWS_BUILD
    {
        return None;
    }
    Some(command.to_string())
}

/// The README's build of zofhook with `--aws`.
const AWS_BUILD: &str = "cargo build --release -p zofhook --features aws";

/// A long-running `zofhook serve` started by a README line; killed when dropped.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The address the README's `serve` listens on by default.
const README_ADDRESS: &str = "127.0.0.1:3000";

/// Starts a serve line and checks the lines it prints against the README's. The README's
/// `serve` listens on 127.0.0.1:3000; here it listens on a port of its own choosing
/// (`ZOFHOOK_LISTEN=127.0.0.1:0`, the environment `serve --listen` reads), so no other process
/// can hold the port, and the documented lines are read with that address in place of :3000.
/// Returns the server and the address it announced.
fn start_serve(dir: &std::path::Path, step: &Step, env: &[(&str, String)]) -> (Background, String) {
    let mut env = env.to_vec();
    env.push(("ZOFHOOK_LISTEN", "127.0.0.1:0".to_string()));
    let mut child = bash(dir, &format!("exec {}", step.command), &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let serve = Background(child);
    let started = Instant::now();
    let listening = ["zofhook serve: listening on …".to_string()];
    let expected_lines = if step.expected.is_empty() {
        &listening[..]
    } else {
        &step.expected[..]
    };
    let mut address = String::new();
    for expected in expected_lines {
        let line = rx
            .recv_timeout(Duration::from_secs(60).saturating_sub(started.elapsed()))
            .unwrap_or_else(|_| panic!("`{}` did not print {expected:?}", step.command));
        if address.is_empty() {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                address = rest.split('/').next().unwrap_or_default().to_string();
            }
        }
        let expected = expected.replace(README_ADDRESS, &address);
        assert!(
            matches(&expected, &line),
            "`{}` printed {line:?}; the README says {expected:?}",
            step.command
        );
    }
    assert!(
        !address.is_empty(),
        "`{}` announced no address",
        step.command
    );
    (serve, address)
}

/// The exit status a README command must have: 0, except a `zofhook send` whose documented answer
/// is not a 2xx, which exits 1 (as `zofhook send --help` says).
fn expected_exit(step: &Step) -> i32 {
    let status = step
        .expected
        .first()
        .and_then(|line| line.split(' ').next())
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(code) if step.command.starts_with("zofhook send") && !(200..300).contains(&code) => 1,
        _ => 0,
    }
}

fn run_block(steps: &[Step], env: &[(&str, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut background = Vec::new();
    let mut served: Option<String> = None;
    for step in steps {
        if NOT_HERE.iter().any(|(c, _)| *c == step.command) {
            continue;
        }
        let Some(command) = as_run_here(&step.command) else {
            continue;
        };
        let step = Step {
            command,
            expected: step.expected.clone(),
        };
        if step.command.starts_with("zofhook serve") {
            let (serve, address) = start_serve(dir.path(), &step, env);
            background.push(serve);
            served = Some(address);
            continue;
        }
        let out = bash(dir.path(), &step.command, env).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            out.status.code(),
            Some(expected_exit(&step)),
            "`{}` exited {}: {stdout}{stderr}",
            step.command,
            out.status
        );
        assert!(
            lines.len() >= step.expected.len(),
            "`{}` printed {lines:?}; the README says {:?}\n{stderr}",
            step.command,
            step.expected
        );
        for (expected, line) in step.expected.iter().zip(&lines) {
            let expected = match &served {
                Some(address) => expected.replace(README_ADDRESS, address),
                None => expected.clone(),
            };
            assert!(
                matches(&expected, line),
                "`{}` printed {line:?}; the README says {expected:?}",
                step.command
            );
        }
    }
}

#[test]
fn every_readme_command_is_run_here_or_says_why_not() {
    let readme = documents();
    let blocks = sh_blocks(&readme);
    assert!(blocks.len() >= 2, "the README lost its command blocks");
    for step in blocks.iter().flatten() {
        let known = step.command.starts_with("zofhook ")
            || step
                .command
                .starts_with("cargo run --release -p zofhook -- ")
            || step
                .command
                .starts_with("cargo build --release -p zofhook && alias zofhook=")
            || step.command == AWS_BUILD
            || NOT_HERE.iter().any(|(c, _)| *c == step.command);
        assert!(known, "no test runs the README's `{}`", step.command);
    }
    assert!(inline_commands(&readme).len() >= 3);
}

/// The first block's `serve` and the two-minute tour, on the embedded store with defaults (each
/// `serve` on a port of its own instead of the README's 3000; see `start_serve`).
#[test]
fn the_readme_blocks_run_and_print_what_they_say() {
    let readme = documents();
    for block in sh_blocks(&readme) {
        // A block with `<Placeholder>`s is the deployed stack's: run against the emulator below.
        if !block.iter().any(|s| s.command.contains('<')) {
            run_block(&block, &[]);
        }
    }
}

/// The README's block for the deployed stack from a laptop: `listen` and `register`, against the
/// emulator (a `serve --aws` stands in for the stack) and a fake Zof API, with the placeholders
/// replaced. `listen` runs in the background; for each event line the README shows, an event is
/// sent to the stack and the line `listen` prints for it is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_listen_and_register_block_runs_against_the_emulator() {
    use serde_json::json;
    let readme = documents();
    let blocks: Vec<Vec<Step>> = sh_blocks(&readme)
        .into_iter()
        .filter(|b| b.iter().any(|s| s.command.contains('<')))
        .collect();
    assert_eq!(blocks.len(), 1, "{blocks:#?}");
    let sdk = e2e::sdk().await;
    let (_, table) = e2e::create_table(&sdk).await;
    let (_, queue_url) = e2e::create_queue(&sdk).await;
    let secret = "whsec_cmVhZG1lLXN0YWNrLXNlY3JldA==";
    let stored = json!({"current": secret, "previous": ""}).to_string();
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let arn = e2e::create_secret(&sm, "readme-register", &stored).await;
    let env = e2e::aws_env();
    let dir = e2e::data_dir();
    let d = dir.to_str().unwrap();
    let aws = ["--aws", "--table-name", &table, "--queue-url", &queue_url];
    let global = [&["--data-dir", d, "--secret", secret][..], &aws[..]].concat();
    let stack = e2e::Serve::start(&global, &[], &env);
    let zof = e2e::fake::Fake::default();
    let new_secret = "whsec_cmVhZG1lLW5ldy1zZWNyZXQtZnJvbS16b2Y=";
    zof.script(
        "/v1/webhooks",
        vec![],
        e2e::fake::answer(201, json!({"id": "wh_readme", "secret": new_secret})),
    );
    let zof_api = zof.start().await;
    // The handler the README forwards to.
    let handler = e2e::fake::Fake::default();
    handler.script("/hook", vec![], e2e::fake::answer(200, json!({})));
    let hook = format!("{}/hook", handler.start().await);
    let here = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for step in &blocks[0] {
        let command = step
            .command
            .replace("<LedgerTableName>", &table)
            .replace("<ZofApiBaseUrl>", &zof_api)
            .replace("<ZofApiToken>", "tok_readme")
            .replace("<WebhookUrl>", &stack.url)
            .replace("<WebhookSecretArn>", &arn)
            .replace("http://127.0.0.1:4000/hook", &hook);
        assert!(!command.contains('<'), "an unknown placeholder: {command}");
        // `listen` signs with a local secret of its own.
        let mut env = env.clone();
        env.push((
            "ZOFHOOK_SECRET",
            "whsec_bG9jYWwtcmVhZG1lLWhhbmRsZXI=".to_string(),
        ));
        if command.contains(" listen ") {
            let mut child = bash(here.path(), &format!("exec {command}"), &env)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let _listen = Background(child);
            let (tx, lines) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    let _ = tx.send(line);
                }
            });
            for (i, expected) in step.expected.iter().enumerate() {
                let expected = expected.replace("http://127.0.0.1:4000/hook", &hook);
                if i > 0 {
                    let id = format!("evt_readme_{i}");
                    let body = e2e::event(&id, "org_a", "run_1");
                    let client = reqwest::Client::new();
                    let (status, _) = e2e::load::post(&client, &stack.url, secret, &body).await;
                    assert_eq!(status, 200);
                }
                let line = lines
                    .recv_timeout(Duration::from_secs(90))
                    .unwrap_or_else(|_| panic!("`{command}` did not print {expected:?}"));
                assert!(
                    matches(&expected, &line),
                    "`{command}` printed {line:?}; the README says {expected:?}"
                );
            }
        } else {
            let out = bash(here.path(), &command, &env).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "`{command}` failed: {stdout}{stderr}");
            let lines: Vec<&str> = stdout.lines().collect();
            assert_eq!(lines.len(), step.expected.len(), "`{command}`: {stdout}");
            // The README's comment lines lose their indent.
            for (expected, line) in step.expected.iter().zip(&lines) {
                assert!(
                    matches(expected, line.trim_start()),
                    "`{command}` printed {line:?}; the README says {expected:?}"
                );
            }
        }
        ran += 1;
    }
    assert_eq!(ran, 2);
    assert_eq!(zof.seen("/v1/webhooks").len(), 1);
}

/// The deploy check, the time index upgrade's `migrate` and the DLQ redrive, against the
/// emulator: a `serve --aws` stands in for the deployed stack, and the placeholders become its
/// table, queues, URL and secret.
#[tokio::test]
async fn the_readme_deploy_and_redrive_commands_run_against_the_emulator() {
    let readme = documents();
    let sdk = e2e::sdk().await;
    let (_, table) = e2e::create_table(&sdk).await;
    let (_, queue_url) = e2e::create_queue(&sdk).await;
    let (_, dlq_url) = e2e::create_queue(&sdk).await;
    let secret = "readme-deploy-check";
    let env = e2e::aws_env();
    let dir = e2e::data_dir();
    let stack = e2e::Serve::start(
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "--secret",
            secret,
            "--aws",
            "--table-name",
            &table,
            "--queue-url",
            &queue_url,
        ],
        &[],
        &env,
    );
    let here = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for command in inline_commands(&readme) {
        let command = command
            .replace("<WebhookSecret>", secret)
            .replace("<WebhookUrl>", &stack.url)
            .replace("<LedgerTableName>", &table)
            .replace("<QueueUrl>", &queue_url)
            .replace("<DeadLetterQueueUrl>", &dlq_url);
        assert!(!command.contains('<'), "an unknown placeholder: {command}");
        let started = Instant::now();
        loop {
            let out = bash(here.path(), &command, &env).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "`{command}` failed: {stdout}{stderr}");
            // The README says the check shows the event `processed`, and `migrate` how many
            // records it moved.
            assert!(
                !command.ends_with(" migrate") || stdout.contains("record(s) their key"),
                "`{command}`: {stdout}"
            );
            let done = !command.contains("events show") || stdout.contains("processed");
            if done {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "`{command}`: {stdout}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        ran += 1;
    }
    assert_eq!(ran, 4);
}

#[test]
fn the_matcher_takes_ellipses_as_anything() {
    assert!(matches(
        "secret (new, kept in x): whsec_…",
        "secret (new, kept in x): whsec_abc"
    ));
    assert!(!matches(
        "200 {\"status\":\"accepted\"}",
        "409 {\"error\":\"conflict\"}"
    ));
    assert!(!matches("a…c", "abd"));
}
