//! Releases in Redis, beside the bot's state (same prefix):
//!
//! - `{prefix}:release:blob:<sha256>` = a plugin file's bytes, written once (`SET NX`);
//! - `{prefix}:releases` = hash { number -> the release as JSON, without its number };
//! - `{prefix}:release:seq` = the last number given; `{prefix}:release:current` = the number
//!   workers serve.
//!
//! A release's blobs are written first, then one Lua script numbers it, stores it and makes
//! it current: a worker that sees a number finds the whole release.

use redis::Script;

use super::Release;
use crate::redis::RedisShared;

const PUBLISH: &str = r#"
local n = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], n, ARGV[1])
redis.call('SET', KEYS[3], n)
return n
"#;

/// The releases of one bot in its Redis.
#[derive(Clone)]
pub struct ReleaseStore {
    shared: RedisShared,
}

impl ReleaseStore {
    pub fn new(shared: RedisShared) -> ReleaseStore {
        ReleaseStore { shared }
    }

    pub fn describe(&self) -> String {
        self.shared.describe()
    }

    fn blob_key(&self, sha256: &str) -> String {
        self.shared.key(&["release", "blob", sha256])
    }

    /// Writes `release` with its plugin files (name, bytes), makes it current, and answers its
    /// number. Blobs already stored (an unchanged plugin) are not sent again.
    pub async fn publish(
        &self,
        release: &Release,
        files: &[(String, Vec<u8>)],
    ) -> anyhow::Result<u64> {
        let mut conn = self.shared.conn.clone();
        for listed in &release.plugins {
            let key = self.blob_key(&listed.sha256);
            let present: bool = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(&mut conn)
                .await?;
            if present {
                continue;
            }
            let (_, bytes) = files
                .iter()
                .find(|(file, _)| *file == listed.file)
                .ok_or_else(|| anyhow::anyhow!("{}: no bytes to store", listed.file))?;
            redis::cmd("SET")
                .arg(&key)
                .arg(bytes.as_slice())
                .arg("NX")
                .query_async::<()>(&mut conn)
                .await?;
        }
        let mut stored = release.clone();
        stored.number = 0;
        let number: u64 = Script::new(PUBLISH)
            .key(self.shared.key(&["release", "seq"]))
            .key(self.shared.key(&["releases"]))
            .key(self.shared.key(&["release", "current"]))
            .arg(serde_json::to_string(&stored)?)
            .invoke_async(&mut conn)
            .await?;
        Ok(number)
    }

    /// The number workers should serve, if any release was published.
    pub async fn current(&self) -> anyhow::Result<Option<u64>> {
        let mut conn = self.shared.conn.clone();
        Ok(redis::cmd("GET")
            .arg(self.shared.key(&["release", "current"]))
            .query_async(&mut conn)
            .await?)
    }

    pub async fn get(&self, number: u64) -> anyhow::Result<Option<Release>> {
        let mut conn = self.shared.conn.clone();
        let json: Option<String> = redis::cmd("HGET")
            .arg(self.shared.key(&["releases"]))
            .arg(number)
            .query_async(&mut conn)
            .await?;
        json.map(|j| {
            let mut release: Release = serde_json::from_str(&j)
                .map_err(|e| anyhow::anyhow!("release {number} is unreadable: {e}"))?;
            release.number = number;
            Ok(release)
        })
        .transpose()
    }

    /// Every release, oldest first.
    pub async fn list(&self) -> anyhow::Result<Vec<Release>> {
        let mut conn = self.shared.conn.clone();
        let all: Vec<(u64, String)> = redis::cmd("HGETALL")
            .arg(self.shared.key(&["releases"]))
            .query_async(&mut conn)
            .await?;
        let mut out = Vec::with_capacity(all.len());
        for (number, json) in all {
            let mut release: Release = serde_json::from_str(&json)
                .map_err(|e| anyhow::anyhow!("release {number} is unreadable: {e}"))?;
            release.number = number;
            out.push(release);
        }
        out.sort_by_key(|r| r.number);
        Ok(out)
    }

    /// A release's plugin files (name, bytes); a missing blob is an error naming it.
    pub async fn files(&self, release: &Release) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let mut conn = self.shared.conn.clone();
        let mut out = Vec::with_capacity(release.plugins.len());
        for listed in &release.plugins {
            let bytes: Option<Vec<u8>> = redis::cmd("GET")
                .arg(self.blob_key(&listed.sha256))
                .query_async(&mut conn)
                .await?;
            let bytes = bytes.ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: its bytes (sha256 {}) are not in the store",
                    listed.file,
                    listed.sha256
                )
            })?;
            out.push((listed.file.clone(), bytes));
        }
        Ok(out)
    }
}
