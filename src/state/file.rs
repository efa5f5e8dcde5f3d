//! [`FileStore`]: applied state in one redb file, so a restarted CLI or bot sends only what
//! changed or was left unconfirmed. Every write is its own durable transaction (fsync) taken
//! off the async threads; at Telegram's pace (tens of calls a second) that costs nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Intent, KeyState, StateStore, StoreError, StoreFuture, Ticket};
use crate::menu::Fingerprint;
use crate::scope::ListKey;

/// Key: [`ListKey::storage_key`]; value: [`encode`]d [`KeyState`].
const LISTS: TableDefinition<&str, &[u8]> = TableDefinition::new("lists");
/// Bot-wide settings by name (`menu_button`).
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
const MENU_BUTTON: &str = "menu_button";

/// Applied state in a file. One process opens a file at a time (redb locks it).
#[derive(Clone)]
pub struct FileStore {
    db: Arc<Database>,
    path: PathBuf,
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
        txn.commit().map_err(|e| fail(&e))?;
        Ok(FileStore {
            db: Arc::new(db),
            path: path.to_path_buf(),
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

    /// Read-modify-write of one key in one durable transaction, off the async threads.
    fn write<'a>(
        &'a self,
        key: &'a ListKey,
        change: impl FnOnce(KeyState) -> KeyState + Send + 'static,
    ) -> StoreFuture<'a, ()> {
        let db = self.db.clone();
        let storage_key = key.storage_key();
        Box::pin(async move {
            let result = tokio::task::spawn_blocking(move || -> Result<(), redb::Error> {
                let txn = db.begin_write()?;
                {
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
                }
                txn.commit()?;
                Ok(())
            })
            .await;
            match result {
                Ok(r) => r.map_err(|e| self.error(e)),
                Err(join) => Err(self.error(join)),
            }
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

    fn record_menu_button<'a>(&'a self, button: Option<&'a str>) -> StoreFuture<'a, ()> {
        let db = self.db.clone();
        let button = button.map(str::to_string);
        Box::pin(async move {
            let result = tokio::task::spawn_blocking(move || -> Result<(), redb::Error> {
                let txn = db.begin_write()?;
                {
                    let mut table = txn.open_table(SETTINGS)?;
                    match &button {
                        Some(b) => table.insert(MENU_BUTTON, b.as_str())?,
                        None => table.remove(MENU_BUTTON)?,
                    };
                }
                txn.commit()?;
                Ok(())
            })
            .await;
            match result {
                Ok(r) => r.map_err(|e| self.error(e)),
                Err(join) => Err(self.error(join)),
            }
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
        super::super::tests::store_contract(&store).await;
        let before = store.entries().await.unwrap();
        drop(store);
        let reopened = FileStore::open(&path).unwrap();
        assert_eq!(reopened.entries().await.unwrap(), before);
        assert!(reopened.describe().contains("state.redb"));
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
