//! [`FileStore`]: applied state in one redb file, so a restarted CLI or bot sends only what
//! changed or was left unconfirmed.
//!
//! Writes go through one writer thread that commits them in groups: every write that arrives
//! while a commit (and its fsync) is under way joins the next one. A write is answered only
//! once the commit holding it is durable (or, for known users' contexts, written), so the
//! write-ahead protocol of [`StateStore::begin`] holds, and 32 concurrent deliveries cost one
//! fsync, not 64.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use tokio::sync::oneshot;

use super::users::{self, Cursor, Generation, KnownUsers, Page, UserKey};
use super::{Intent, KeyState, StateStore, StoreError, StoreFuture, Ticket};
use crate::menu::Fingerprint;
use crate::scope::ListKey;

/// Key: [`ListKey::storage_key`]; value: [`encode`]d [`KeyState`].
const LISTS: TableDefinition<&str, &[u8]> = TableDefinition::new("lists");
/// Bot-wide settings by name (`menu_button`).
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
const MENU_BUTTON: &str = "menu_button";
const RECONCILED: &str = "reconciled";
/// Known users: key [`UserKey::to_bytes`], value the record of `users::encode`.
const USERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("users");
/// Bot-wide documents by name (a staged rollout and its candidate).
const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");

/// Writes one commit takes at most: enough to absorb any concurrency a bot uses, few enough
/// that a commit stays short.
const MAX_GROUP: usize = 1024;

/// Applied state in a file. One process opens a file at a time (redb locks it); clones share
/// the file and its writer.
#[derive(Clone)]
pub struct FileStore {
    db: Arc<Database>,
    path: PathBuf,
    writer: Arc<Writer>,
}

type Output = Box<dyn Any + Send>;
type Work = Box<dyn FnOnce(&WriteTransaction) -> Result<Output, redb::Error> + Send>;

/// One write waiting for a commit.
struct Job {
    work: Work,
    /// Needs an fsync before it is answered (applied state, marks); `false` for what the bot
    /// gives again anyway (known users' contexts).
    durable: bool,
    reply: oneshot::Sender<Result<Output, String>>,
}

/// The writer thread; dropping the last handle lets it finish what it holds and joins it, so
/// the file can be opened again at once.
struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(db: Arc<Database>) -> std::io::Result<Writer> {
        let (jobs, incoming) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("cmdscope-redb".into())
            .spawn(move || {
                while let Ok(first) = incoming.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match incoming.try_recv() {
                            Ok(job) => group.push(job),
                            Err(_) => break,
                        }
                    }
                    commit(&db, group);
                }
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Commits `group` in one transaction, durable when any of it must be. A failure fails every
/// write of the group: none of it was committed.
fn commit(db: &Database, group: Vec<Job>) {
    let durable = group.iter().any(|j| j.durable);
    let (works, replies): (Vec<Work>, Vec<_>) =
        group.into_iter().map(|j| (j.work, j.reply)).unzip();
    let result = (|| -> Result<Vec<Output>, redb::Error> {
        let mut txn = db.begin_write()?;
        if !durable {
            txn.set_durability(Durability::None)
                .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
        }
        let outputs = works
            .into_iter()
            .map(|work| work(&txn))
            .collect::<Result<Vec<_>, _>>()?;
        txn.commit()?;
        Ok(outputs)
    })();
    match result {
        Ok(outputs) => {
            for (reply, output) in replies.into_iter().zip(outputs) {
                let _ = reply.send(Ok(output));
            }
        }
        Err(e) => {
            let e = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

impl FileStore {
    /// Opens `path`, creating it (not its folder) when missing.
    pub fn open(path: &Path) -> Result<FileStore, StoreError> {
        let fail =
            |e: &dyn std::fmt::Display| StoreError::new(format!("file {}", path.display()), e);
        let db = Database::create(path).map_err(|e| fail(&e))?;
        // Create the table once, so reads never meet a missing table.
        let txn = db.begin_write().map_err(|e| fail(&e))?;
        txn.open_table(LISTS).map_err(|e| fail(&e))?;
        txn.open_table(SETTINGS).map_err(|e| fail(&e))?;
        txn.open_table(USERS).map_err(|e| fail(&e))?;
        txn.commit().map_err(|e| fail(&e))?;
        let db = Arc::new(db);
        let writer = Writer::start(db.clone()).map_err(|e| fail(&e))?;
        Ok(FileStore {
            db,
            path: path.to_path_buf(),
            writer: Arc::new(writer),
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::new(self.describe(), e)
    }

    fn read(&self, key: &ListKey) -> Result<KeyState, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LISTS)?;
        Ok(table
            .get(key.storage_key().as_str())?
            .map(|v| decode(v.value()))
            .unwrap_or_default())
    }

    /// Runs `work` in the writer's next commit and answers once that commit is done: durable
    /// (fsynced) when `durable`; else written, persisted by the next durable commit (a crash
    /// may lose it).
    fn submit<'a, T: Send + 'static>(
        &'a self,
        durable: bool,
        work: impl FnOnce(&WriteTransaction) -> Result<T, redb::Error> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            work: Box::new(move |txn| work(txn).map(|t| Box::new(t) as Output)),
            durable,
            reply,
        };
        let sent = self.writer.jobs.as_ref().map(|jobs| jobs.send(job));
        Box::pin(async move {
            if !matches!(sent, Some(Ok(()))) {
                return Err(self.error("the writer thread has stopped"));
            }
            match answer.await {
                Ok(Ok(output)) => Ok(*output.downcast::<T>().expect("the job's own type")),
                Ok(Err(e)) => Err(self.error(e)),
                Err(_) => Err(self.error("the writer thread stopped before committing")),
            }
        })
    }

    /// Read-modify-write of one list's state, durable before it is answered.
    fn write<'a>(
        &'a self,
        key: &'a ListKey,
        change: impl FnOnce(KeyState) -> KeyState + Send + 'static,
    ) -> StoreFuture<'a, ()> {
        let storage_key = key.storage_key();
        self.submit(true, move |txn| {
            let mut table = txn.open_table(LISTS)?;
            let old = table
                .get(storage_key.as_str())?
                .map(|v| decode(v.value()))
                .unwrap_or_default();
            let new = change(old);
            if new == KeyState::default() {
                table.remove(storage_key.as_str())?;
            } else {
                table.insert(storage_key.as_str(), encode(&new).as_slice())?;
            }
            Ok(())
        })
    }
}

impl StateStore for FileStore {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn load<'a>(&'a self, key: &'a ListKey) -> StoreFuture<'a, KeyState> {
        let result = self.read(key).map_err(|e| self.error(e));
        Box::pin(std::future::ready(result))
    }

    fn load_many<'a>(&'a self, keys: &'a [&'a ListKey]) -> StoreFuture<'a, Vec<KeyState>> {
        let read = || -> Result<Vec<KeyState>, redb::Error> {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(LISTS)?;
            keys.iter()
                .map(|key| {
                    Ok(table
                        .get(key.storage_key().as_str())?
                        .map(|v| decode(v.value()))
                        .unwrap_or_default())
                })
                .collect()
        };
        let result = read().map_err(|e| self.error(e));
        Box::pin(std::future::ready(result))
    }

    fn begin<'a>(&'a self, key: &'a ListKey, intent: Intent) -> StoreFuture<'a, Ticket> {
        let write = self.write(key, move |old| KeyState {
            pending: Some(intent),
            ..old
        });
        Box::pin(async move { write.await.map(|()| 0) })
    }

    /// One process holds the file, and its updates of a key take turns.
    fn confirm<'a>(&'a self, key: &'a ListKey, intent: Intent, _: Ticket) -> StoreFuture<'a, ()> {
        self.write(key, move |_| KeyState {
            applied: intent.applied(),
            pending: None,
        })
    }

    fn entries(&self) -> StoreFuture<'_, Vec<(ListKey, KeyState)>> {
        let read = || -> Result<Vec<(ListKey, KeyState)>, redb::Error> {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(LISTS)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                // A key this version cannot read is skipped, not fatal: it is re-sent if needed.
                if let Some(key) = ListKey::from_storage_key(k.value()) {
                    out.push((key, decode(v.value())));
                }
            }
            Ok(out)
        };
        let result = read().map_err(|e| self.error(e));
        Box::pin(std::future::ready(result))
    }

    fn menu_button(&self) -> StoreFuture<'_, Option<String>> {
        let read = || -> Result<Option<String>, redb::Error> {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(SETTINGS)?;
            Ok(table.get(MENU_BUTTON)?.map(|v| v.value().to_string()))
        };
        let result = read().map_err(|e| self.error(e));
        Box::pin(std::future::ready(result))
    }

    fn known_users(&self) -> Option<&dyn KnownUsers> {
        Some(self)
    }

    fn record_menu_button<'a>(&'a self, button: Option<&'a str>) -> StoreFuture<'a, ()> {
        let button = button.map(str::to_string);
        self.submit(true, move |txn| {
            let mut table = txn.open_table(SETTINGS)?;
            match &button {
                Some(b) => table.insert(MENU_BUTTON, b.as_str())?,
                None => table.remove(MENU_BUTTON)?,
            };
            Ok(())
        })
    }

    fn document<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let read = || -> Result<Option<Vec<u8>>, redb::Error> {
            let txn = self.db.begin_read()?;
            let table = match txn.open_table(DOCUMENTS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            Ok(table.get(name)?.map(|v| v.value().to_vec()))
        };
        let result = read().map_err(|e| self.error(e));
        Box::pin(std::future::ready(result))
    }

    fn set_document<'a>(&'a self, name: &'a str, value: Option<&'a [u8]>) -> StoreFuture<'a, ()> {
        let (name, value) = (name.to_string(), value.map(<[u8]>::to_vec));
        self.submit(true, move |txn| {
            let mut table = txn.open_table(DOCUMENTS)?;
            match &value {
                Some(v) => table.insert(name.as_str(), v.as_slice())?,
                None => table.remove(name.as_str())?,
            };
            Ok(())
        })
    }
}

impl FileStore {
    fn users_read<T>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        self.db
            .begin_read()
            .map_err(redb::Error::from)
            .and_then(|txn| read(&txn))
            .map_err(|e| self.error(e))
    }
}

impl KnownUsers for FileStore {
    fn remember<'a>(
        &'a self,
        ctx: &'a crate::UserContext,
        generation: Generation,
    ) -> StoreFuture<'a, bool> {
        let Some(record) = users::encode(ctx, generation, users::today()) else {
            return Box::pin(std::future::ready(Ok(false)));
        };
        let key = UserKey::of(ctx).to_bytes();
        self.submit(false, move |txn| {
            let mut table = txn.open_table(USERS)?;
            let old = table.insert(key.as_slice(), record.as_slice())?;
            Ok(old.is_none())
        })
    }

    fn get(&self, key: UserKey) -> StoreFuture<'_, Option<users::KnownUser>> {
        let user = self.users_read(|txn| {
            Ok(txn
                .open_table(USERS)?
                .get(key.to_bytes().as_slice())?
                .and_then(|v| users::decode(key, v.value())))
        });
        Box::pin(std::future::ready(user))
    }

    fn forget(&self, key: UserKey) -> StoreFuture<'_, ()> {
        self.submit(false, move |txn| {
            txn.open_table(USERS)?.remove(key.to_bytes().as_slice())?;
            Ok(())
        })
    }

    fn behind<'a>(
        &'a self,
        generation: Generation,
        cursor: Option<&'a Cursor>,
        limit: usize,
    ) -> StoreFuture<'a, Page> {
        let start = cursor.map(|c| c.0.clone());
        let page = self.users_read(|txn| {
            let table = txn.open_table(USERS)?;
            let rows = match &start {
                Some(after) => table.range::<&[u8]>((
                    std::ops::Bound::Excluded(after.as_slice()),
                    std::ops::Bound::Unbounded,
                ))?,
                None => table.range::<&[u8]>(..)?,
            };
            let mut page = Vec::new();
            let mut next = None;
            for (examined, row) in rows.enumerate() {
                let (k, v) = row?;
                let record = v.value();
                if record.get(users::GENERATION_AT) != Some(&generation.to_le_bytes()[..])
                    && let Some(user) =
                        UserKey::from_bytes(k.value()).and_then(|key| users::decode(key, record))
                {
                    page.push(user);
                }
                if page.len() >= limit || examined + 1 >= limit.saturating_mul(16) {
                    next = Some(Cursor(k.value().to_vec()));
                    break;
                }
            }
            Ok((page, next))
        });
        Box::pin(std::future::ready(page))
    }

    fn mark<'a>(
        &'a self,
        contexts: &'a [&'a crate::UserContext],
        generation: Generation,
    ) -> StoreFuture<'a, u64> {
        let given: Vec<([u8; 16], Vec<u8>)> = contexts
            .iter()
            .filter_map(|ctx| Some((UserKey::of(ctx).to_bytes(), users::encode(ctx, 0, 0)?)))
            .collect();
        self.submit(true, move |txn| {
            let mut table = txn.open_table(USERS)?;
            let mut marked = 0;
            for (key, given) in &given {
                let record = table.get(key.as_slice())?.map(|v| v.value().to_vec());
                if let Some(mut record) = record
                    && users::same_context(&record, given)
                {
                    record[users::GENERATION_AT].copy_from_slice(&generation.to_le_bytes());
                    table.insert(key.as_slice(), record.as_slice())?;
                    marked += 1;
                }
            }
            Ok(marked)
        })
    }

    fn count(&self) -> StoreFuture<'_, u64> {
        let count = self.users_read(|txn| Ok(txn.open_table(USERS)?.len()?));
        Box::pin(std::future::ready(count))
    }

    fn reconciled(&self) -> StoreFuture<'_, Option<Generation>> {
        let read = self.users_read(|txn| {
            Ok(txn
                .open_table(SETTINGS)?
                .get(RECONCILED)?
                .and_then(|v| v.value().parse().ok()))
        });
        Box::pin(std::future::ready(read))
    }

    /// A durable commit persists every non-durable one before it.
    fn flush(&self) -> StoreFuture<'_, ()> {
        self.submit(true, |_| Ok(()))
    }

    fn set_reconciled(&self, generation: Generation) -> StoreFuture<'_, ()> {
        self.submit(true, move |txn| {
            txn.open_table(SETTINGS)?
                .insert(RECONCILED, generation.to_string().as_str())?;
            Ok(())
        })
    }
}

/// 1 tag byte + 16 fingerprint bytes for `applied`, then the same for `pending`
/// (tag 0: none, 1: set, 2: delete).
fn encode(state: &KeyState) -> [u8; 34] {
    let mut out = [0u8; 34];
    if let Some(fp) = state.applied {
        out[0] = 1;
        out[1..17].copy_from_slice(&fp.0.to_le_bytes());
    }
    match state.pending {
        None => {}
        Some(Intent::Set(fp)) => {
            out[17] = 1;
            out[18..34].copy_from_slice(&fp.0.to_le_bytes());
        }
        Some(Intent::Delete) => out[17] = 2,
    }
    out
}

/// Anything unreadable decodes as uncertain, so the key is sent again rather than trusted.
fn decode(bytes: &[u8]) -> KeyState {
    let fp = |b: &[u8]| Fingerprint(u128::from_le_bytes(b.try_into().expect("16 bytes")));
    if bytes.len() != 34 {
        return KeyState {
            applied: None,
            pending: Some(Intent::Delete),
        };
    }
    KeyState {
        applied: (bytes[0] == 1).then(|| fp(&bytes[1..17])),
        pending: match bytes[17] {
            0 => None,
            1 => Some(Intent::Set(fp(&bytes[18..34]))),
            _ => Some(Intent::Delete),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_store_keeps_the_contract_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = FileStore::open(&path).unwrap();
        crate::state::conformance::store_contract(&store).await;
        let before = store.entries().await.unwrap();
        drop(store);
        let reopened = FileStore::open(&path).unwrap();
        assert_eq!(reopened.entries().await.unwrap(), before);
        assert!(reopened.describe().contains("state.redb"));
    }

    #[tokio::test]
    async fn file_store_keeps_the_known_users_contract_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = FileStore::open(&path).unwrap();
        crate::state::conformance::known_users_contract(&store).await;
        drop(store);
        let reopened = FileStore::open(&path).unwrap();
        assert_eq!(reopened.count().await.unwrap(), 9);
        assert_eq!(reopened.reconciled().await.unwrap(), Some(2));
    }

    #[test]
    fn state_encoding_round_trips() {
        for state in [
            KeyState::default(),
            KeyState {
                applied: Some(Fingerprint(u128::MAX - 3)),
                pending: Some(Intent::Delete),
            },
            KeyState {
                applied: None,
                pending: Some(Intent::Set(Fingerprint(42))),
            },
        ] {
            assert_eq!(decode(&encode(&state)), state);
        }
        assert!(decode(b"short").pending.is_some());
    }
}
