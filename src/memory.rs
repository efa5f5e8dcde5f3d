//! Giving back what a burst held. glibc's malloc keeps the memory a big request freed for the
//! next one (measured: ten requests of 10,000 contexts left serve 3 MB up, a few hundred pages
//! of 1,000 another 8-10 MB), and a bot's traffic is bursts: an import, a broadcast. A big
//! request says so with [`after_burst`]; once a second has passed without another, a thread
//! hands every arena's free pages back (`malloc_trim`), off the request path and never in the
//! middle of a burst. Elsewhere than glibc this is a no-op: other allocators return memory
//! themselves.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set by a big request; the trimming thread clears it.
static BURST: AtomicBool = AtomicBool::new(false);

/// A request that held a lot of memory (a list of thousands of contexts) has ended.
pub(crate) fn after_burst() {
    BURST.store(true, Ordering::Relaxed);
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let started = std::thread::Builder::new()
            .name("cmdscope-trim".into())
            .spawn(trim_when_quiet);
        if let Err(e) = started {
            tracing::debug!("no memory trimming thread: {e}");
        }
    });
}

fn trim_when_quiet() {
    let mut pending = false;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if BURST.swap(false, Ordering::Relaxed) {
            // Still bursting: the memory is about to be used again.
            pending = true;
        } else if pending {
            pending = false;
            give_back();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_back() {
    // SAFETY: malloc_trim takes no pointer and may be called from any thread at any time.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back() {}
