//! `cmdscope serve` as a child process against an emulator, and the bot's side of its API.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cmdscope::emulator::RunningEmulator;

use super::TOKEN;
use super::process::BIN;

/// The API key the helpers start `serve` with.
pub const KEY: &str = "test-api-key";

pub struct Serve {
    pub child: Child,
    pub url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve` with a config file and a plugin folder (and `extra` arguments).
pub fn serve(running: &RunningEmulator, config: &Path, plugins: &Path, extra: &[&str]) -> Serve {
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--plugins",
        plugins.to_str().unwrap(),
        "--no-compiled-cache",
    ];
    args.extend_from_slice(extra);
    serve_with(running, &args)
}

/// `serve` with `args` besides the emulator, the token and a free port; answers once it
/// listens.
pub fn serve_with(running: &RunningEmulator, args: &[&str]) -> Serve {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args([
            "--token",
            TOKEN,
            "--api-url",
            &running.url(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(args)
        .env("CMDSCOPE_API_KEY", KEY)
        .env(
            "CMDSCOPE_LOG",
            std::env::var("CMDSCOPE_TEST_SHOW_SERVE").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "serve exited");
        if let Some(rest) = line.strip_prefix("cmdscope serving on ") {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
        }
    };
    // CMDSCOPE_TEST_SHOW_SERVE=LEVEL shows what the workers log, for a failing test.
    let show = std::env::var_os("CMDSCOPE_TEST_SHOW_SERVE").is_some();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if show {
                eprintln!("serve: {line}");
            }
        }
    });
    Serve { child, url }
}

pub async fn wait_healthy(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            return;
        }
        assert_eq!(status, 503, "not yet applied");
        assert!(Instant::now() < deadline, "never healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn post(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    key: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = client.post(format!("{url}{path}"));
    match key {
        Some(k) => request.bearer_auth(k),
        None => request,
    }
}
