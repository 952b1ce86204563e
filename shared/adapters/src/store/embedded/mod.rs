//! The embedded store: the store traits on [redb](https://docs.rs/redb), an ACID key-value engine in pure
//! Rust (copy-on-write B-trees, crash-safe commits, readers on snapshots that never wait for the writer). It
//! runs on a file (`cargo run`: durable, a change is answered only once its commit is on disk) or on redb's
//! in-memory backend (tests, `--in-memory`), with the same code: one set of semantics.
//!
//! Why redb: an ACID engine is what makes "answered means kept" hold through a `kill -9` without code of
//! ours; redb is pure Rust (no C toolchain, a quick build), well kept, with crash-safe commits (checksummed
//! copy-on-write pages, the file always at its last commit), snapshot readers, and the same engine in
//! memory for tests. SQLite (rusqlite) would bring a C build and a SQL layer this key-value access does not
//! need; sled is unmaintained; an append-only log of our own would be a second database to get right.
//!
//! Each operation that is one DynamoDB transaction is one redb write transaction here, every condition
//! checked before anything is written, so a refused change writes nothing and a crash leaves no half of one.
//! Reads take a read transaction (a consistent snapshot). Writes run on tokio's blocking pool: a commit
//! waits for the disk, and redb lets one writer in at a time.
//!
//! # Tables
//!
//! Named tables with tuple keys (ordered element by element, so prefixes and ranges are plain), values the
//! serde JSON of the domain types. They mirror the DynamoDB items (the table in [`crate::store`]), one file
//! per aggregate:
//!
//! | table | key | value | file |
//! |---|---|---|---|
//! | `meta` | `"format"` | the data format version ([`FORMAT`]) | here |
//! | `practices` | practice | `Practice` | `settings.rs` |
//! | `departments` | (practice, department) | `Department` (with `open_conversations`) | `settings.rs` |
//! | `department_names` | (practice, `name_key`) | department: the name is taken | `settings.rs` |
//! | `sms_numbers` | E.164 | practice: the owner | `settings.rs` |
//! | `due_reminders` | (`next_reminder_at`, department, practice) | — (the DUE index) | `settings.rs` |
//! | `conversations` | (practice, conversation) | `Conversation` | `conversations.rs` |
//! | `messages` | (practice, conversation, `seq`) | `Message` | `conversations.rs` |
//! | `transfers` | (practice, conversation, `at`, alert) | `Transfer` | `conversations.rs` |
//! | `conversation_activity` | (practice, status, `last_message_at`, conversation) | department (the GSI1 index) | `conversations.rs` |
//! | `open_claims` | (practice, client) | `OpenConversation` | `conversations.rs` |
//! | `client_conversations` | (practice, client, conversation) | — (the client's view, GSI2) | `conversations.rs` |
//! | `inbound_seen` | (practice, dedup key) | conversation | `conversations.rs` |
//! | `client_rates` | (practice, client) | `ClientRate` (rate-limit counters) | `rate_limits.rs` |
//! | `alerts` | alert | `AlertRecord` with its delivery claims | `alerts.rs` |
//! | `pending_alerts` | (`created_at`, alert) | — (the pending partition of GSI1) | `alerts.rs` |
//! | `tickets` | SHA-256 of the secret | `Ticket` | `realtime.rs` |
//! | `connections` | (practice, connection) | `Connection` | `realtime.rs` |
//! | `connection_practice` | connection | practice | `realtime.rs` |
//! | `texts_in_flight` | (practice, conversation, `seq`) | when queued (the in-flight partition of GSI1) | `texts.rs` |
//!
//! Instants in keys are the fixed-width UTC strings of the DynamoDB keys ([`crate::store::sortable`]), so
//! both stores order alike. An index row is written and removed by the one helper that writes its record.
//!
//! # The data format
//!
//! `meta.format` says how the tables above are laid out and encoded. A store refuses a file of a format it
//! does not know (a newer build wrote it) and migrates an older one it knows, in one write transaction,
//! before answering anything: the steps are [`MIGRATIONS`]. A change to a stored type that old JSON would
//! not read back as meant (a new field without a default, a key layout) bumps [`FORMAT`] and adds its step.

mod alerts;
mod conversations;
mod rate_limits;
mod realtime;
mod reminders;
mod settings;
mod texts;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use domain::store::{StoreError, StoreResult};

use super::ChangeFeed;
use redb::{
    backends::InMemoryBackend, ConcurrencyMode, Database, DatabaseError, Durability,
    ReadTransaction, ReadableDatabase, ReadableTable, Table, TableDefinition, TableHandle,
    WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The data format this build writes. Files of an older format are migrated by [`MIGRATIONS`].
pub const FORMAT: u64 = 2;

/// One step of migration: `MIGRATIONS[i]` takes a file from format `i + 1` to `i + 2`, inside the write
/// transaction that then records the new format. 1 → 2: the `texts_in_flight` index of the texts queued or
/// sending (for the sweep of stuck texts), filled from the messages.
type Migration = fn(&WriteTransaction) -> Result<(), redb::Error>;
const MIGRATIONS: &[Migration] = &[texts::migrate_texts_in_flight];

/// The file in the data directory.
pub const DATA_FILE: &str = "vetchat.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const FORMAT_KEY: &str = "format";

/// Values are JSON bytes.
pub(super) type Json = &'static [u8];

/// The store traits of `domain::store` on redb, on a file or in memory. Cheap to clone (one database).
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    /// The data file, `None` in memory.
    file: Option<PathBuf>,
    /// Where committed conversation changes go (the local server's fanout); none by default.
    feed: ChangeFeed,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// Why the store could not be opened, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the data directory {dir} is in use by another vetchat server (a second `cargo run`?): stop \
         that one, or start this one on another directory with --data-dir DIR (or DATA_DIR=DIR), or \
         with --in-memory for a throwaway run"
    )]
    InUse { dir: PathBuf },
    #[error(
        "{file} was written by a newer vetchat (data format {found}; this build reads formats 1 to \
         {FORMAT}): run that version, or start fresh with another --data-dir (or move the file aside)"
    )]
    NewerFormat { file: PathBuf, found: u64 },
    #[error(
        "{file} is not a vetchat data file (it holds tables but no data format): use another \
         --data-dir, or move the file aside to start fresh"
    )]
    NotOurs { file: PathBuf },
    #[error(
        "{file} was written by an older version of the storage engine (redb file format {0}) that this \
         build cannot read: run the vetchat version that wrote it, or start fresh with another \
         --data-dir (or move the file aside)", .found
    )]
    EngineFormat { file: PathBuf, found: u8 },
    #[error("cannot use the data directory {dir}: {reason}")]
    Unusable { dir: PathBuf, reason: String },
    #[error("cannot open {file}: {reason}")]
    Engine { file: PathBuf, reason: String },
}

impl EmbeddedStore {
    /// The store on `dir/vetchat.redb`, created (directory and file) if missing, migrated if it is of an
    /// older format. Only one process may have it open: a second one gets [`OpenError::InUse`].
    pub fn open(dir: &Path) -> Result<EmbeddedStore, OpenError> {
        let unusable = |reason: String| OpenError::Unusable {
            dir: dir.to_owned(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| unusable(e.to_string()))?;
        let file = dir.join(DATA_FILE);
        let db = Database::builder()
            // One process on a file: redb 4's default, set here so that a change of default cannot let a
            // second server in. The whole file is locked while the database is open.
            .set_concurrency_mode(ConcurrencyMode::ExclusiveWriter)
            .create(&file)
            .map_err(|e| match e {
                DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
                    OpenError::InUse {
                        dir: dir.to_owned(),
                    }
                }
                DatabaseError::UpgradeRequired(found) => OpenError::EngineFormat {
                    file: file.clone(),
                    found,
                },
                other => OpenError::Engine {
                    file: file.clone(),
                    reason: other.to_string(),
                },
            })?;
        prepare(&db, MIGRATIONS).map_err(|e| e.for_file(&file))?;
        Ok(EmbeddedStore {
            db: Arc::new(db),
            file: Some(file),
            feed: ChangeFeed::default(),
        })
    }

    /// A store in memory, empty, gone with the process: the same engine and code as on a file.
    pub fn in_memory() -> EmbeddedStore {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .expect("an in-memory database opens");
        prepare(&db, MIGRATIONS).expect("a new in-memory database takes the tables");
        EmbeddedStore {
            db: Arc::new(db),
            file: None,
            feed: ChangeFeed::default(),
        }
    }

    /// The store, handing the changes of every conversation write it commits to `feed` (the local
    /// server's fanout, where the table's stream feeds it on AWS).
    pub fn with_change_feed(self, feed: ChangeFeed) -> EmbeddedStore {
        EmbeddedStore { feed, ..self }
    }

    /// The data file, `None` in memory.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Runs `change` in one write transaction on the blocking pool and commits it (durably, on a file)
    /// only if it returns `Ok`: an `Err` writes nothing.
    async fn write<T, F>(&self, change: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut tx = db.begin_write().map_err(engine)?;
            // redb's default, said here because it is the promise: `commit` returns once the change is on
            // disk (fsync), so a change is answered 2xx only after it would survive a crash.
            tx.set_durability(Durability::Immediate).map_err(engine)?;
            match change(&tx) {
                Ok(out) => {
                    tx.commit().map_err(engine)?;
                    Ok(out)
                }
                Err(e) => {
                    tx.abort().map_err(engine)?;
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("embedded store write failed: {e}")))?
    }

    /// Runs `read` on a snapshot (a read transaction never waits for the writer).
    fn read<T>(&self, read: impl FnOnce(&ReadTransaction) -> StoreResult<T>) -> StoreResult<T> {
        let tx = self.db.begin_read().map_err(engine)?;
        read(&tx)
    }
}

/// Why [`prepare`] refused a database, before it knows the file's name.
#[derive(Debug)]
enum PrepareError {
    Newer(u64),
    NotOurs,
    Engine(redb::Error),
}

impl From<redb::Error> for PrepareError {
    fn from(e: redb::Error) -> Self {
        PrepareError::Engine(e)
    }
}

impl PrepareError {
    fn for_file(self, file: &Path) -> OpenError {
        let file = file.to_owned();
        match self {
            PrepareError::Newer(found) => OpenError::NewerFormat { file, found },
            PrepareError::NotOurs => OpenError::NotOurs { file },
            PrepareError::Engine(e) => OpenError::Engine {
                file,
                reason: e.to_string(),
            },
        }
    }
}

/// Checks the data format, migrates an older one (`migrations[i]`: format `i + 1` to `i + 2`) and creates
/// any table missing, all in one write transaction: a crash half-way leaves the file as it was.
fn prepare(db: &Database, migrations: &[Migration]) -> Result<(), PrepareError> {
    let current = 1 + migrations.len() as u64;
    let tx = db.begin_write().map_err(redb::Error::from)?;
    let found = {
        let meta_exists = tx
            .list_tables()
            .map_err(redb::Error::from)?
            .any(|t| t.name() == META.name());
        if meta_exists {
            let meta = tx.open_table(META).map_err(redb::Error::from)?;
            let format = meta
                .get(FORMAT_KEY)
                .map_err(redb::Error::from)?
                .map(|g| g.value());
            format
        } else {
            None
        }
    };
    match found {
        None => {
            // A new file has no table at all; one with tables but no format is someone else's.
            if tx
                .list_tables()
                .map_err(redb::Error::from)?
                .next()
                .is_some()
            {
                return Err(PrepareError::NotOurs);
            }
        }
        Some(found) if found > current => return Err(PrepareError::Newer(found)),
        Some(0) => return Err(PrepareError::NotOurs),
        Some(found) => {
            for step in &migrations[(found - 1) as usize..] {
                step(&tx)?;
            }
        }
    }
    tx.open_table(META)
        .map_err(redb::Error::from)?
        .insert(FORMAT_KEY, current)
        .map_err(redb::Error::from)?;
    settings::create_tables(&tx)?;
    conversations::create_tables(&tx)?;
    rate_limits::create_tables(&tx)?;
    alerts::create_tables(&tx)?;
    realtime::create_tables(&tx)?;
    texts::create_tables(&tx)?;
    tx.commit().map_err(redb::Error::from)?;
    Ok(())
}

/// An engine failure, logged in full, answered as the store being unavailable.
fn engine(e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    tracing::warn!(error = %e, "embedded store failed");
    StoreError::Unavailable(format!("embedded store: {e}"))
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| StoreError::Unavailable(format!("embedded store: cannot encode: {e}")))
}

/// A stored value read back; one that does not read as `T` is an error, never a guess.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        tracing::warn!(error = %e, "embedded store holds a value it cannot read");
        StoreError::Unavailable(format!("embedded store: unreadable record: {e}"))
    })
}

/// The JSON row at `key`, decoded.
fn get<'k, K, T>(
    table: &impl ReadableTable<K, Json>,
    key: impl std::borrow::Borrow<K::SelfType<'k>>,
) -> StoreResult<Option<T>>
where
    K: redb::Key + 'static,
    T: DeserializeOwned,
{
    match table.get(key).map_err(engine)? {
        Some(row) => decode(row.value()).map(Some),
        None => Ok(None),
    }
}

/// Writes `value` as the JSON row at `key`.
fn put<'k, K, T>(
    table: &mut Table<K, Json>,
    key: impl std::borrow::Borrow<K::SelfType<'k>>,
    value: &T,
) -> StoreResult<()>
where
    K: redb::Key + 'static,
    T: Serialize,
{
    let bytes = encode(value)?;
    table.insert(key, bytes.as_slice()).map_err(engine)?;
    Ok(())
}

/// The smallest string above every string that starts with `prefix`'s element exactly equal: a range
/// `(.., s, ..)..(.., past(s), ..)` holds the keys whose element is `s`, whatever follows.
fn past(s: &str) -> String {
    format!("{s}\u{0}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_NOTES: TableDefinition<&str, &str> = TableDefinition::new("notes_v1");

    fn in_memory_db() -> Database {
        Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .expect("an in-memory database")
    }

    fn format_of(db: &Database) -> Option<u64> {
        let tx = db.begin_read().expect("read");
        let meta = tx.open_table(META).expect("meta");
        let format = meta.get(FORMAT_KEY).expect("get").map(|g| g.value());
        format
    }

    fn set_format(db: &Database, format: u64) {
        let tx = db.begin_write().expect("write");
        tx.open_table(META)
            .expect("meta")
            .insert(FORMAT_KEY, format)
            .expect("insert");
        tx.commit().expect("commit");
    }

    #[test]
    fn a_new_database_gets_the_current_format_and_every_table() {
        let db = in_memory_db();
        prepare(&db, MIGRATIONS).expect("prepared");
        assert_eq!(format_of(&db), Some(FORMAT));
        let tx = db.begin_read().expect("read");
        let names: Vec<String> = tx
            .list_tables()
            .expect("tables")
            .map(|t| t.name().to_owned())
            .collect();
        for table in [
            "practices",
            "departments",
            "conversations",
            "messages",
            "alerts",
        ] {
            assert!(names.iter().any(|n| n == table), "{table} in {names:?}");
        }
        // Preparing again (the next start) changes nothing.
        drop(tx);
        prepare(&db, MIGRATIONS).expect("prepared again");
        assert_eq!(format_of(&db), Some(FORMAT));
    }

    #[test]
    fn a_format_1_file_gets_its_texts_in_flight_indexed() {
        use domain::conversation::{
            Author, Channel, ConversationId, Delivery, DeliveryStatus, Message, MessageId,
        };
        use domain::identity::DepartmentId;
        let db = in_memory_db();
        // A format-1 file (no migration step) holding a queued text and a sent one.
        prepare(&db, &[]).expect("prepared");
        assert_eq!(format_of(&db), Some(1));
        let queued_at = chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("instant");
        let text = |seq: u64, status: DeliveryStatus| Message {
            id: MessageId(format!("msg_{seq}")),
            conversation_id: ConversationId("cnv_1".into()),
            seq,
            at: queued_at,
            author: Author::Staff {
                id: "staff-1".into(),
            },
            channel: Channel::Sms,
            body: "Ready at 5".into(),
            department_id: DepartmentId("dep_1".into()),
            department_name: "Reception".into(),
            delivery: Some(Delivery {
                status,
                ..Delivery::queued(Some(1), queued_at)
            }),
        };
        let tx = db.begin_write().expect("write");
        {
            let mut messages = tx.open_table(conversations::MESSAGES).expect("messages");
            for (seq, status) in [(1, DeliveryStatus::Queued), (2, DeliveryStatus::Sent)] {
                let bytes = serde_json::to_vec(&text(seq, status)).expect("json");
                messages
                    .insert(("prc_1", "cnv_1", seq), bytes.as_slice())
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
        prepare(&db, MIGRATIONS).expect("migrated");
        assert_eq!(format_of(&db), Some(FORMAT));
        let tx = db.begin_read().expect("read");
        let in_flight = tx.open_table(texts::TEXTS_IN_FLIGHT).expect("table");
        let rows: Vec<(u64, String)> = in_flight
            .iter()
            .expect("iter")
            .map(|r| {
                let (k, v) = r.expect("row");
                (k.value().2, v.value().to_owned())
            })
            .collect();
        assert_eq!(rows, vec![(1, crate::store::sortable(queued_at))]);
    }

    #[test]
    fn a_newer_format_is_refused_and_left_as_it_was() {
        let db = in_memory_db();
        prepare(&db, MIGRATIONS).expect("prepared");
        set_format(&db, FORMAT + 1);
        match prepare(&db, MIGRATIONS) {
            Err(PrepareError::Newer(found)) => assert_eq!(found, FORMAT + 1),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(format_of(&db), Some(FORMAT + 1));
        let message = PrepareError::Newer(FORMAT + 1)
            .for_file(Path::new("/data/vetchat.redb"))
            .to_string();
        assert!(
            message.contains("/data/vetchat.redb")
                && message.contains("newer")
                && message.contains("--data-dir"),
            "{message}"
        );
    }

    #[test]
    fn a_file_with_tables_but_no_format_is_not_ours() {
        let db = in_memory_db();
        let tx = db.begin_write().expect("write");
        tx.open_table(OLD_NOTES)
            .expect("table")
            .insert("a", "b")
            .expect("insert");
        tx.commit().expect("commit");
        assert!(matches!(
            prepare(&db, MIGRATIONS),
            Err(PrepareError::NotOurs)
        ));
    }

    /// The migration mechanism with made-up steps (format 1 has no predecessor yet): a file of format 1
    /// is taken through every step to the newest, its rows rewritten, in the transaction that records the
    /// new format; one of format 2 runs only the last step.
    #[test]
    fn an_older_format_is_migrated_step_by_step() {
        fn v1_to_v2(tx: &WriteTransaction) -> Result<(), redb::Error> {
            let mut notes = tx.open_table(OLD_NOTES)?;
            let upper: Vec<(String, String)> = notes
                .iter()?
                .map(|row| row.map(|(k, v)| (k.value().to_owned(), v.value().to_uppercase())))
                .collect::<Result<_, _>>()?;
            for (k, v) in upper {
                notes.insert(k.as_str(), v.as_str())?;
            }
            Ok(())
        }
        fn v2_to_v3(tx: &WriteTransaction) -> Result<(), redb::Error> {
            tx.open_table(OLD_NOTES)?.insert("migrated", "v3")?;
            Ok(())
        }
        let steps: &[Migration] = &[v1_to_v2, v2_to_v3];

        let db = in_memory_db();
        prepare(&db, &[]).expect("a format-1 file");
        let tx = db.begin_write().expect("write");
        tx.open_table(OLD_NOTES)
            .expect("table")
            .insert("rex", "ready")
            .expect("insert");
        tx.commit().expect("commit");

        prepare(&db, steps).expect("migrated");
        assert_eq!(format_of(&db), Some(3));
        let tx = db.begin_read().expect("read");
        let notes = tx.open_table(OLD_NOTES).expect("table");
        assert_eq!(notes.get("rex").expect("get").unwrap().value(), "READY");
        assert_eq!(notes.get("migrated").expect("get").unwrap().value(), "v3");
        drop((notes, tx));

        // From format 2, only the last step runs (the first would have upper-cased again: no change
        // visible, so check with a fresh lower-case row).
        set_format(&db, 2);
        let tx = db.begin_write().expect("write");
        tx.open_table(OLD_NOTES)
            .expect("table")
            .insert("bella", "waiting")
            .expect("insert");
        tx.commit().expect("commit");
        prepare(&db, steps).expect("migrated from 2");
        let tx = db.begin_read().expect("read");
        let notes = tx.open_table(OLD_NOTES).expect("table");
        assert_eq!(notes.get("bella").expect("get").unwrap().value(), "waiting");
        assert_eq!(format_of(&db), Some(3));
    }

    /// A step that fails leaves the file at its old format, with none of the steps' writes.
    #[test]
    fn a_failed_migration_changes_nothing() {
        fn half_then_fail(tx: &WriteTransaction) -> Result<(), redb::Error> {
            tx.open_table(OLD_NOTES)?.insert("half", "done")?;
            Err(redb::Error::Corrupted("made-up failure".into()))
        }
        let db = in_memory_db();
        prepare(&db, &[]).expect("a format-1 file");
        assert!(prepare(&db, &[half_then_fail]).is_err());
        assert_eq!(format_of(&db), Some(1));
        let tx = db.begin_read().expect("read");
        assert!(
            tx.open_table(OLD_NOTES).is_err(),
            "nothing of the step kept"
        );
    }
}
