//! [`RedisGate`]: one GCRA limiter for all workers of a bot, in one Lua script on the Redis
//! server's clock, so N workers together keep the bot's pace.

use std::time::Duration;

use redis::Script;

use super::RedisShared;
use crate::deliver::{GateFuture, LocalGate, RateGate};

/// `{prefix}:gcra` holds the theoretical arrival time (ms); `{prefix}:paused` exists while a
/// 429's `retry_after` runs. Returns 0 when the request may go (and takes its slot), else the
/// milliseconds to wait before asking again.
const ACQUIRE: &str = r#"
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return pause end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local period = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + period
local allow_at = new_tat - tolerance
if now < allow_at then return math.ceil(allow_at - now) end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return 0
"#;

/// Sets the pause unless a longer one is already running.
const PAUSE: &str = r#"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"#;

pub struct RedisGate {
    shared: RedisShared,
    period_ms: f64,
    tolerance_ms: f64,
    acquire: Script,
    pause: Script,
    /// This worker's own pace while Redis is away.
    fallback: LocalGate,
}

impl RedisGate {
    /// `pace` requests per second for the whole bot, `burst` at once after a quiet spell.
    pub fn new(shared: RedisShared, pace: f64, burst: u32) -> RedisGate {
        let period_ms = 1000.0 / pace.max(0.001);
        RedisGate {
            shared,
            period_ms,
            tolerance_ms: period_ms * f64::from(burst.max(1)),
            acquire: Script::new(ACQUIRE),
            pause: Script::new(PAUSE),
            fallback: LocalGate::new(pace, burst),
        }
    }
}

impl RateGate for RedisGate {
    fn acquire(&self) -> GateFuture<'_> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            let (rate, pause) = (self.shared.key(&["gcra"]), self.shared.key(&["paused"]));
            loop {
                let wait: Result<u64, _> = self
                    .acquire
                    .key(&rate)
                    .key(&pause)
                    .arg(self.period_ms)
                    .arg(self.tolerance_ms)
                    .invoke_async(&mut conn)
                    .await;
                match wait {
                    Ok(0) => return,
                    Ok(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    Err(e) => {
                        tracing::warn!("redis unavailable, pacing this worker alone: {e}");
                        return self.fallback.acquire().await;
                    }
                }
            }
        })
    }

    fn pause(&self, wait: Duration) {
        self.fallback.pause(wait);
        let mut conn = self.shared.conn.clone();
        let key = self.shared.key(&["paused"]);
        let script = self.pause.clone();
        let ms = wait.as_millis().max(1) as u64;
        // Called from a running delivery; tell the other workers without making it wait.
        tokio::spawn(async move {
            let result: Result<u64, _> = script.key(key).arg(ms).invoke_async(&mut conn).await;
            if let Err(e) = result {
                tracing::warn!("could not share a 429 pause through redis: {e}");
            }
        });
    }
}
