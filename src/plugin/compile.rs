//! Turning a component's bytes into native code, within a time budget, whatever the bytes.
//!
//! Cranelift's time is not linear in the input: a 650 KB component whose one function keeps
//! thousands of locals live across many branches takes minutes. Validation cannot see that
//! coming, so compilation is bounded from outside:
//!
//! - [`Compiler::Subprocess`]: the program runs itself again as a compile worker
//!   ([`run_compile_worker_if_requested`]), which reads the component on stdin and writes the
//!   native code on stdout. Over budget, the worker is killed: nothing keeps running, and the
//!   compiler's memory was never the host's. `cmdscope` (the binary) compiles this way.
//! - [`Compiler::InProcess`] (the library default, which needs nothing of the program): the
//!   compile runs on a thread of its own; over budget, the load is rejected at once and the
//!   thread is abandoned: it runs on to its end in the background (Cranelift cannot be
//!   stopped), its result dropped. A bot that can afford the one line in `main` should use
//!   the subprocess.
//!
//! The subprocess's budget is **CPU time** (all its threads), read from `/proc` while it runs,
//! so an honest plugin is not refused because the machine is busy (a bot under load, a
//! deploy compiling several plugins at once); a wall-clock cap of [`WALL_FACTOR`] times the
//! budget still ends a worker starved of CPU. In process, the compile's CPU cannot be told
//! from the bot's, so the budget is wall time there.
//!
//! Either way a load ends within its bound, and each file compiles on its own thread, so a
//! slow file never delays another.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::LoadError;

/// The environment variable that turns a program into a compile worker.
pub const COMPILE_WORKER_ENV: &str = "CMDSCOPE_COMPILE_WORKER";

/// A compile worker is also stopped after this many times its CPU budget of wall time.
pub const WALL_FACTOR: u32 = 4;

/// Largest component a worker accepts on stdin (the host checks its own limit first).
const WORKER_MAX_INPUT: u64 = 1 << 30;

/// How components are compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Compiler {
    /// On a thread of this process, abandoned when over budget.
    #[default]
    InProcess,
    /// In a child process running `program` with [`COMPILE_WORKER_ENV`] set, killed when over
    /// budget. `program` must call [`run_compile_worker_if_requested`] first thing in `main`.
    Subprocess { program: PathBuf },
}

impl Compiler {
    /// This very program as the worker: for binaries whose `main` starts with
    /// [`run_compile_worker_if_requested`].
    pub fn this_program() -> std::io::Result<Compiler> {
        Ok(Compiler::Subprocess {
            program: std::env::current_exe()?,
        })
    }

    /// Compiles `bytes` within `budget`. Also returns the serialised native code when the
    /// compile produced it anyway (the subprocess), so the compiled cache need not serialise.
    pub(crate) fn compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        budget: Duration,
    ) -> Result<(Component, Option<Vec<u8>>), LoadError> {
        match self {
            Compiler::InProcess => in_thread(engine, bytes, budget).map(|c| (c, None)),
            Compiler::Subprocess { program } => {
                let code = in_child(program, bytes, budget)?;
                // SAFETY: the code was produced by `Engine::precompile_component` in a worker
                // running this same program with the same engine configuration
                // (`sandbox::engine_config`); wasmtime also checks its header and the
                // compatibility hash before using it.
                let component = unsafe { Component::deserialize(engine, &code) }.map_err(|e| {
                    LoadError::Compile(format!("the compile worker's output is unusable: {e}"))
                })?;
                Ok((component, Some(code)))
            }
        }
    }
}

/// In-process compiles abandoned over budget and still running.
static ABANDONED: AtomicUsize = AtomicUsize::new(0);

/// In-process compiles abandoned over budget that are still running in the background.
pub fn abandoned_compiles() -> usize {
    ABANDONED.load(Ordering::Relaxed)
}

fn over_budget(budget: Duration) -> LoadError {
    LoadError::CompileBudget(budget)
}

fn in_thread(engine: &Engine, bytes: &[u8], budget: Duration) -> Result<Component, LoadError> {
    /// Written by whoever comes second: the compile (its result) or the waiter (giving up).
    enum Handoff {
        Waiting,
        Done(wasmtime::Result<Component>),
        Abandoned,
    }
    let shared = Arc::new((Mutex::new(Handoff::Waiting), Condvar::new()));
    let (engine, bytes, theirs) = (engine.clone(), bytes.to_vec(), shared.clone());
    std::thread::Builder::new()
        .name("cmdscope-compile".into())
        .spawn(move || {
            let result = Component::new(&engine, &bytes);
            let (lock, done) = &*theirs;
            let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
            if matches!(*state, Handoff::Abandoned) {
                ABANDONED.fetch_sub(1, Ordering::Relaxed);
            } else {
                *state = Handoff::Done(result);
                done.notify_one();
            }
        })
        .map_err(|e| LoadError::Compile(format!("cannot start a compile thread: {e}")))?;
    let (lock, done) = &*shared;
    let state = lock.lock().unwrap_or_else(|p| p.into_inner());
    let (mut state, _) = done
        .wait_timeout_while(state, budget, |s| matches!(s, Handoff::Waiting))
        .unwrap_or_else(|p| p.into_inner());
    match std::mem::replace(&mut *state, Handoff::Abandoned) {
        Handoff::Done(result) => result.map_err(|e| LoadError::Compile(super::root_cause(&e))),
        _ => {
            ABANDONED.fetch_add(1, Ordering::Relaxed);
            drop(state);
            tracing::warn!(
                budget_s = budget.as_secs_f64(),
                still_running = abandoned_compiles(),
                "a compile went over budget; it is abandoned and runs on in the background"
            );
            Err(over_budget(budget))
        }
    }
}

fn in_child(program: &PathBuf, bytes: &[u8], budget: Duration) -> Result<Vec<u8>, LoadError> {
    let started = Instant::now();
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        LoadError::Compile(format!("compile worker {}: {what}: {e}", program.display()))
    };
    let mut command = Command::new(program);
    command
        .env(COMPILE_WORKER_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal,
        // so a worker never outlives a host that died while it compiled.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    let mut child = command.spawn().map_err(|e| fail("cannot start", &e))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let reader = std::thread::spawn(move || {
        let mut code = Vec::new();
        stdout.read_to_end(&mut code).map(|_| code)
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.take(16 << 10).read_to_string(&mut text);
        text
    });
    let wall_cap = budget * WALL_FACTOR;
    let mut polls = 0u32;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {
                let over = if started.elapsed() >= wall_cap {
                    Some(over_budget(wall_cap))
                } else if polls.is_multiple_of(8)
                    && cpu_time(child.id()).is_some_and(|cpu| cpu >= budget)
                {
                    Some(LoadError::CompileCpuBudget(budget))
                } else {
                    None
                };
                if let Some(error) = over {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(error);
                }
                polls = polls.wrapping_add(1);
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(fail("cannot wait", &e)),
        }
    };
    let _ = writer.join();
    let code = reader
        .join()
        .map_err(|_| fail("reader", &"panicked"))?
        .map_err(|e| fail("cannot read its output", &e))?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        let why = errors.trim();
        return Err(LoadError::Compile(if why.is_empty() {
            format!("the compile worker failed ({status})")
        } else {
            why.to_string()
        }));
    }
    Ok(code)
}

/// The CPU time (user and system, every thread) a running process has used; `None` where
/// `/proc` cannot tell (the wall-clock cap still holds then).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks as f64,
    ))
}

/// Call first thing in `main` of a program used as [`Compiler::Subprocess`]: when started as a
/// compile worker, this reads a component on stdin, writes its native code on stdout (or the
/// reason it does not compile on stderr) and exits; otherwise it returns at once.
pub fn run_compile_worker_if_requested() {
    if std::env::var_os(COMPILE_WORKER_ENV).is_none() {
        return;
    }
    let code = match compile_stdin() {
        Ok(code) => std::io::stdout()
            .lock()
            .write_all(&code)
            .map(|()| 0)
            .unwrap_or(3),
        Err(why) => {
            let _ = writeln!(std::io::stderr(), "{why}");
            2
        }
    };
    std::process::exit(code);
}

fn compile_stdin() -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(WORKER_MAX_INPUT)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the component: {e}"))?;
    let engine = Engine::new(&super::sandbox::engine_config()).map_err(|e| e.to_string())?;
    engine
        .precompile_component(&bytes)
        .map_err(|e| super::root_cause(&e))
}
