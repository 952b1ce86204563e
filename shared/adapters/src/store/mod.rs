//! The two implementations of the storage port (`domain::store`), organised alike: one file per aggregate,
//! side by side, each implementing that aggregate's traits.
//!
//! | aggregate | traits | DynamoDB | embedded (redb) |
//! |---|---|---|---|
//! | settings | `SettingsLookup`, `SettingsStore` | `dynamo/settings.rs` | `embedded/settings.rs` |
//! | conversations | `ConversationIntake`, `ConversationHistory`, `ConversationStore`, `TransferStore`, `ClientConversations` | `dynamo/conversations.rs` | `embedded/conversations.rs` |
//! | opt-outs (a number's, per practice; written through `ConversationIntake::record_opt_keyword` and `TextOutbox::record_refused_opt_out`) | — | `dynamo/opt_outs.rs` | `embedded/opt_outs.rs` |
//! | realtime | `TicketStore`, `ConnectionStore` | `dynamo/realtime.rs` | `embedded/realtime.rs` |
//! | alerts | `AlertOutbox`, `PendingAlerts` | `dynamo/alerts.rs` | `embedded/alerts.rs` |
//! | reminders | `ReminderStore` | `dynamo/reminders.rs` | `embedded/reminders.rs` |
//!
//! What the DynamoDB files share: `dynamo/mod.rs` (the store and its request loops: transaction, single
//! conditional write, batch read, query pages), `dynamo/keys.rs` (the item keys below), `dynamo/codec.rs`
//! (attribute values, items, transaction items), `dynamo/table.rs` (the table's shape, `ensure_table`),
//! `dynamo/counter.rs` (requests counted per operation, with the `test-support` feature). `embedded/mod.rs`
//! holds the embedded store (one redb database on a file or in memory), its transactions, the data format
//! and its migrations; its tables are listed there.
//!
//! A new aggregate: its traits in `domain/src/store/<aggregate>.rs` (and in `domain::store::Store`), a file
//! of that name in each folder here (for the embedded store: its tables, their `create_tables`, called from
//! `embedded/mod.rs`), its keys in `dynamo/keys.rs` and its rows in the table below, and its contract suite
//! in `tests/tests/stores/`, run on every store by `vetchat_tests::on_every_store!`.
//!
//! # DynamoDB single-table layout
//!
//! | item | `PK` | `SK` | holds |
//! |---|---|---|---|
//! | practice | `PRACTICE#{practice_id}` | `PRACTICE` | the `Practice` fields, `version` |
//! | department | `PRACTICE#{practice_id}` | `DEPT#{department_id}` | `settings` (one map), `name_key`, `is_default`, `open_conversations`, `version`, timestamps |
//! | department name | `DEPTNAME#{practice_id}#{name_key}` | `DEPTNAME` | `department_id`: the name is taken |
//! | texting number | `SMSNUMBER#{e164}` | `SMSNUMBER` | `practice_id`: the owner (of a texting or a WhatsApp number) |
//! | WhatsApp phone number id | `WAPHONEID#{phone_number_id}` | `WAPHONEID` | `practice_id`: the owner |
//! | conversation | `CONV#{practice_id}#{conversation_id}` | `MSG~` (right after its messages) | the `Conversation` fields (with `last_seq`, `department_name`, `sms_opted_out_at`, `after_hours_replied_at`); `transfers` (the `Transfer`s, a list); `preview` (the last message a person wrote); `GSI1PK = CONVS#{practice_id}#{status}`, `GSI1SK = {last_message_at}#{conversation_id}`; app and web ones also `GSI2PK = CLIENT#{practice_id}#{client_id}`, `GSI2SK` as `GSI1SK` |
//! | message | `CONV#{practice_id}#{conversation_id}` | `MSG#{seq:020}` | the `Message` fields; `client_id` (the conversation's), `practice_id`; a text reply's also `reply_from` (the conversation's) |
//! | client's open conversation | `OPEN#{practice_id}#{client_id}` | `OPEN` | the `OpenConversation` fields (`conversation_id`, `department_id`, `department_name`, `client_id`, `channel`, `last_seq`, `reply_from`, `after_hours_replied_at`): the claim |
//! | a number's opt-out | `OPTOUT#{practice_id}#{number}` | `OPTOUT` | `opted_out_at`, `practice_id`, `number` (`dynamo/opt_outs.rs`); its copy is the `sms` conversation's `sms_opted_out_at` |
//! | ticket | `TICKET#{sha256 of the secret}` | `TICKET` | the `Subscriber` fields; `expires_at` (TTL, epoch seconds: 60 s) |
//! | connection | `CONN#{connection_id}` | `CONN` | `id`, the `Subscriber` fields, `connected_at`; `expires_at` (TTL: 2 h); `GSI2PK = CONNS#{practice_id}`, `GSI2SK = {connection_id}` |
//! | inbound message seen | `INBOUND#{practice_id}#{dedup_key}` | `INBOUND` | `conversation_id`; `expires_at` (TTL, 7 days) |
//! | alert (outbox) | `ALERT#{alert_id}` | `ALERT` | the `PendingAlert` fields; `status` (`pending`, then `done`); `outcomes` (map: idempotency key → `DeliveryOutcome`); `claims` (map: idempotency key → lease end `{at}`); while pending, `GSI1PK = ALERTS#pending`, `GSI1SK = {created_at}#{alert_id}` |
//!
//! Instants in keys (`{at}`, `{last_message_at}`, `{created_at}`) and in `claims` are fixed-width UTC with nanoseconds
//! (`2026-11-21T17:30:00.123456789Z`), so keys sort as instants do.
//!
//! A practice and its departments share one item collection, so `practice_config` is one Query and
//! `practice_and_department` one BatchGetItem. The name and number records are written in the same
//! transaction as the change that claims or releases them, each with a condition, so uniqueness holds under
//! concurrency.
//!
//! A conversation and its messages share one item collection keyed by the practice too, so another practice's
//! conversation is unreachable, and "the messages after seq n" is one Query that ends with the conversation
//! item (`docs/architecture.md`: `seq`, and why the client's read is one Query). Routing reads the
//! practice, the department and the client's claim in one BatchGetItem; starting a conversation is one
//! transaction (claim put if absent, conversation, messages, `ADD 1` to the department's
//! `open_conversations` if the department exists, the pending alert, the dedup record put if absent);
//! appending is one transaction (the conversation updated if still open, messages, dedup record); ending is
//! one transaction (status resolved if still open in its department, claim deleted if it is this
//! conversation's, `ADD -1`). `delete_department` is conditioned on `open_conversations = 0`, so a
//! conversation never outlives its department. `GSI1` lists a practice's conversations per status, newest
//! activity first (an unfiltered list merges the open and resolved partitions); a list cursor holds the
//! practice and the position (`last_message_at`, id) of the last conversation answered, encoded by
//! `cursor.rs` for both stores (DynamoDB turns it into the `GSI1SK` to start after).
//!
//! Transferring is one transaction too: the conversation's `department_id` set if it is still open in the
//! department the caller saw, the transfer record, `ADD -1` / `ADD 1` on the two departments (the target must
//! exist), the client's claim pointed at the new department if it is this conversation's, and the target's
//! alert. Every alert is written in the transaction of the change that causes it (the transactional outbox):
//! the table's stream hands its insert to the dispatcher. The dispatcher's state lives on the alert item: a
//! delivery is claimed by setting `claims.#k` to a lease end if no outcome is recorded and no unexpired lease
//! holds it, released by removing it, and recorded by setting `outcomes.#k` only if no outcome is there yet
//! (one conditional `UpdateItem` each; the key is always an expression attribute name, never spliced into
//! the expression). Both maps are written empty with the alert, so the nested `SET`s always find them.
//! Completing the alert sets `status = "done"` and removes its `GSI1` keys, so the alerts still pending are
//! one `GSI1` Query on `ALERTS#pending`, oldest first: a sparse partition that holds only the alerts in
//! flight (a single partition key on purpose; fine at alert volumes, shard it if that ever changes).

mod cursor;
mod dynamo;
pub mod embedded;

use chrono::{DateTime, Utc};
use domain::realtime::Change;

#[cfg(feature = "test-support")]
pub use dynamo::RequestCounter;
pub use dynamo::{
    change_of_record, due_partition, ensure_table, table_spec, DynamoStore, IndexSpec,
    KeyAttribute, TableSpec, DUE_SHARDS,
};
pub use embedded::EmbeddedStore;

/// An instant as a fixed-width UTC string (nanoseconds, `Z`), so strings sort as instants do: the instants
/// in both stores' keys, so that their orders agree exactly.
pub(crate) fn sortable(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// A [`sortable`] instant read back.
pub(crate) fn parse_sortable(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The key a ticket is stored under: SHA-256 of its secret, hex. Only the buyer ever holds the secret; a
/// copy of the table holds hashes, which open no connection.
pub(crate) fn ticket_hash(secret: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The local stand-in for the table's stream: a store given a feed hands it the changes of every write it
/// commits (conversations started, messages, transfers, ends), for the local server's fanout. Without one
/// (every Lambda function; on AWS the stream carries them) nothing is sent.
#[derive(Debug, Clone, Default)]
pub struct ChangeFeed(Option<tokio::sync::mpsc::UnboundedSender<Vec<Change>>>);

impl ChangeFeed {
    /// A feed and the receiving end the fanout reads.
    pub fn channel() -> (
        ChangeFeed,
        tokio::sync::mpsc::UnboundedReceiver<Vec<Change>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (ChangeFeed(Some(tx)), rx)
    }

    pub(crate) fn publish(&self, changes: Vec<Change>) {
        if let Some(tx) = &self.0 {
            // The receiver gone (the server shutting down): frames are nudges, nothing to keep.
            let _ = tx.send(changes);
        }
    }
}
