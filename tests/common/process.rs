//! The `cmdscope` binary as a process: one-shot runs with their peak memory, and a running
//! `watch` whose event lines a test waits for.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_cmdscope");

/// A child process killed (and reaped) when dropped: a failing test leaves nothing running.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `command` to its end (killed after `limit`), with its output and its peak resident
/// memory in KiB, read from the kernel's accounting of that one child.
pub fn run_measured(command: &mut Command, limit: Duration) -> (Output, u64) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cmdscope starts");
    let pid = child.id() as libc::pid_t;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = r.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our child, not yet reaped; status and usage are valid pointers.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            break;
        }
        assert!(reaped == 0, "wait4 failed");
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{command:?} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::mem::forget(child); // reaped above
    let output = Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (output, usage.ru_maxrss as u64)
}

/// A running `cmdscope watch`, killed on drop. Its stdout (one JSON event per line) and
/// stderr are read on threads of their own.
pub struct Watch {
    child: Child,
    events: mpsc::Receiver<Value>,
    /// Events received but not yet taken by a `wait_for`, in arrival order.
    pending: std::cell::RefCell<std::collections::VecDeque<Value>>,
    stderr: mpsc::Receiver<String>,
    /// Every event line's length in bytes, the longest first seen.
    pub longest_line: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Watch {
    /// `cmdscope watch ARGS` started in `cwd`.
    pub fn start(cwd: &Path, args: &[&str]) -> Watch {
        let mut child = Command::new(BIN)
            .arg("watch")
            .args(args)
            .current_dir(cwd)
            .env("CMDSCOPE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cmdscope watch starts");
        let (tx, events) = mpsc::channel();
        let longest_line = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let longest = longest_line.clone();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { return };
                longest.fetch_max(line.len(), std::sync::atomic::Ordering::SeqCst);
                let event: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON event line ({e}): {line}"));
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        let (tx, stderr) = mpsc::channel();
        let errors = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in errors.lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        Watch {
            child,
            events,
            pending: Default::default(),
            stderr,
            longest_line,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first event, in arrival order, matching `want` that no earlier call took; panics
    /// after `limit`.
    pub fn wait_for(&self, limit: Duration, want: impl Fn(&Value) -> bool) -> Value {
        let mut pending = self.pending.borrow_mut();
        if let Some(i) = pending.iter().position(&want) {
            return pending.remove(i).unwrap();
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if want(&event) => return event,
                Ok(event) => pending.push_back(event),
                Err(_) => panic!(
                    "no matching watch event within {limit:?}; seen meanwhile: {:?}",
                    pending
                ),
            }
        }
    }

    /// Events not yet taken, and every event that arrives within `quiet` of the previous one.
    pub fn drain(&self, quiet: Duration) -> Vec<Value> {
        let mut out: Vec<Value> = self.pending.borrow_mut().drain(..).collect();
        while let Ok(event) = self.events.recv_timeout(quiet) {
            out.push(event);
        }
        out
    }

    /// The first stderr line starting with `prefix`, with the prefix removed.
    pub fn stderr_line(&self, limit: Duration, prefix: &str) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_string();
                    }
                }
                Err(_) => panic!("no stderr line starting with {prefix:?} within {limit:?}"),
            }
        }
    }

    /// Stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// A field of `/proc/PID/status` in kB (`VmHWM`, `VmRSS`) or a count (`Threads`).
    pub fn status_field(&self, field: &str) -> u64 {
        proc_status(self.child.id(), field)
    }

    /// Processes this watch has started and not yet reaped (compile workers).
    pub fn children(&self) -> Vec<u32> {
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut out = Vec::new();
        for task in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        out
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of `/proc/PID/status`, as its first number.
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Events of one kind (`loaded`, `reloaded`, `rejected`, `removed`) for one file.
pub fn is(event: &'static str, file: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["event"] == event && e["file"] == file
}
