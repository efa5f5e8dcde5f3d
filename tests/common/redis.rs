//! A real redis-server for tests: `CMDSCOPE_TEST_REDIS_URL`'s (set by `.ci/run`), or one
//! started on a free port. Without either, a test fails when `CI` or `CMDSCOPE_REQUIRE_REDIS`
//! is set and is skipped (saying so) otherwise.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server child process, stopped on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
    args: Vec<String>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port with `extra` arguments; `None` if there is none.
    pub fn start(extra: &[&str]) -> Option<RedisServer> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = spawn(&args)?;
        let server = RedisServer { child, port, args };
        server.wait_ready();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (`kill -9`); `resume` starts it again on the same port.
    pub fn stop(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn resume(&mut self) {
        self.child = spawn(&self.args).expect("redis-server ran before");
        self.wait_ready();
    }

    /// `kill -9`, then the same server again on the same port.
    pub fn restart_after(&mut self, down: Duration) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(down);
        self.child = spawn(&self.args).expect("redis-server ran before");
        self.wait_ready();
    }
}

fn spawn(args: &[String]) -> Option<Child> {
    Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("CMDSCOPE_REQUIRE_REDIS").is_some()
}

/// No server available: fail in CI, skip (loudly) elsewhere.
pub fn unavailable() -> Option<String> {
    assert!(
        !required(),
        "no Redis: set CMDSCOPE_TEST_REDIS_URL or install redis-server (.ci/run does both)"
    );
    eprintln!("SKIPPED: no redis-server and no CMDSCOPE_TEST_REDIS_URL");
    None
}

/// A Redis server for one test: `CMDSCOPE_TEST_REDIS_URL`'s, or one started for the test
/// (stopped when the test ends).
pub struct TestRedis {
    pub url: String,
    _own: Option<RedisServer>,
}

pub fn redis() -> Option<TestRedis> {
    if let Ok(url) = std::env::var("CMDSCOPE_TEST_REDIS_URL") {
        return Some(TestRedis { url, _own: None });
    }
    match RedisServer::start(&[]) {
        Some(server) => Some(TestRedis {
            url: server.url(),
            _own: Some(server),
        }),
        None => {
            unavailable();
            None
        }
    }
}

/// Keys of one test apart from every other test's.
pub fn prefix(test: &str) -> String {
    format!("cmdscope-test:{test}:{:x}", fastrand::u64(..))
}
