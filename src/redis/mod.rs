//! Several workers of one bot sharing state through Redis: the applied state
//! ([`RedisStore`]), the bot's pace ([`RedisGate`]) and per-list turns ([`RedisTurns`]), behind
//! the same traits as their in-process versions.
//!
//! Connection loss never stops a worker: the store answers "uncertain" (so lists are sent
//! rather than trusted) and remembers what it could not record, marking those keys uncertain
//! for every worker once Redis is back; the gate falls back to the worker's own pace; turns
//! fall back to the worker's own. Run Redis with persistence (`appendonly yes`): state
//! wiped by a restart without it makes every worker take the lists it sent for unset.

mod gate;
mod store;
mod turns;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use self::gate::RedisGate;
pub use self::store::RedisStore;
pub use self::turns::RedisTurns;

/// A connection to the Redis server a bot's workers share, and the prefix of the bot's keys.
#[derive(Clone)]
pub struct RedisShared {
    pub(crate) conn: ConnectionManager,
    /// The fleet release this worker serves (0: none, writes unordered): a list written under
    /// a newer release is never overwritten under an older one (see `RedisStore::begin`).
    pub(crate) release: std::sync::Arc<std::sync::atomic::AtomicU64>,
    prefix: String,
    url_for_reports: String,
}

impl RedisShared {
    /// Connects lazily to `url` (`redis://127.0.0.1:6379`); keys start with `prefix`
    /// (e.g. `cmdscope:<bot id>`). Commands fail fast (1 s) while the server is away and the
    /// connection is re-established in the background.
    pub fn connect(url: &str, prefix: &str) -> Result<RedisShared, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisShared {
            conn,
            prefix: prefix.to_string(),
            url_for_reports: redact(url),
            release: Default::default(),
        })
    }

    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    /// This worker serves fleet release `number` from now on: its writes are ordered by it.
    pub fn serve_release(&self, number: u64) {
        self.release
            .store(number, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn describe(&self) -> String {
        format!("redis {} (prefix {})", self.url_for_reports, self.prefix)
    }
}

/// The key prefix for a bot: `cmdscope:<bot id>`, the id being the token's public part.
pub fn default_prefix(token: &str) -> String {
    let id = token.split(':').next().unwrap_or("bot");
    format!("cmdscope:{id}")
}

/// A Redis URL without its password, for reports.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_hide_passwords_and_prefixes_name_the_bot() {
        assert_eq!(
            redact("redis://:secret@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(default_prefix("12345:AAE-secret"), "cmdscope:12345");
    }
}
