//! Text replies on redb: the delivery of a message item, changed in one write transaction by the domain's
//! rule, and published to the change feed (what the local sender and fanout hear). `texts_in_flight` (the
//! in-flight partition of DynamoDB's `GSI1`) lists the texts queued or sending, kept by [`index_in_flight`]
//! in every transaction that writes a message.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::conversation::{
    Conversation, ConversationId, Delivery, DeliveryEvent, DeliveryStatus, Message,
};
use domain::identity::PracticeId;
use domain::realtime::Change;
use domain::store::{StoreError, StoreResult, StoredText, TextOutbox, TextRef};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::conversations::{CONVERSATIONS, MESSAGES};
use super::opt_outs::keep_or_record;
use super::{engine, get, put, EmbeddedStore};
use crate::store::sortable;

/// (practice, conversation, `seq`) → when the text was queued: the texts in flight.
pub(super) const TEXTS_IN_FLIGHT: TableDefinition<(&str, &str, u64), &str> =
    TableDefinition::new("texts_in_flight");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<(), redb::Error> {
    tx.open_table(TEXTS_IN_FLIGHT)?;
    Ok(())
}

/// Keeps `message`'s row of `texts_in_flight` in step with its delivery: entered when queued (stored, or
/// queued again by a retry), kept while a sender has it, removed once the provider's answer is recorded.
pub(super) fn index_in_flight(
    tx: &WriteTransaction,
    practice_id: &str,
    message: &Message,
) -> StoreResult<()> {
    let Some(delivery) = &message.delivery else {
        return Ok(());
    };
    let mut table = tx.open_table(TEXTS_IN_FLIGHT).map_err(engine)?;
    let key = (practice_id, message.conversation_id.0.as_str(), message.seq);
    match delivery.status {
        DeliveryStatus::Queued => {
            let queued_at = sortable(delivery.updated_at);
            table.insert(key, queued_at.as_str()).map_err(engine)?;
        }
        DeliveryStatus::Sending => {}
        _ => {
            table.remove(key).map_err(engine)?;
        }
    }
    Ok(())
}

/// Migration to format 2: the texts already in flight enter `texts_in_flight`.
pub(super) fn migrate_texts_in_flight(tx: &WriteTransaction) -> Result<(), redb::Error> {
    let messages = tx.open_table(MESSAGES)?;
    let mut in_flight = tx.open_table(TEXTS_IN_FLIGHT)?;
    for row in messages.iter()? {
        let (key, value) = row?;
        let (practice, conversation, seq) = key.value();
        let Ok(message) = serde_json::from_slice::<Message>(value.value()) else {
            continue;
        };
        if let Some(d) = message.delivery.filter(|d| d.status.in_flight()) {
            in_flight.insert(
                (practice, conversation, seq),
                sortable(d.updated_at).as_str(),
            )?;
        }
    }
    Ok(())
}

fn read_text(
    conversations: &impl ReadableTable<(&'static str, &'static str), super::Json>,
    messages: &impl ReadableTable<(&'static str, &'static str, u64), super::Json>,
    text: &TextRef,
) -> StoreResult<Option<StoredText>> {
    let key = (
        text.practice_id.as_str(),
        text.conversation_id.0.as_str(),
        text.seq,
    );
    let Some(message) = get::<_, Message>(messages, key)? else {
        return Ok(None);
    };
    if message.delivery.is_none() {
        return Ok(None);
    }
    let conversation: Option<Conversation> = get(
        conversations,
        (text.practice_id.as_str(), text.conversation_id.0.as_str()),
    )?;
    Ok(conversation.map(|c| StoredText {
        message,
        client_id: c.client_id,
        reply_from: c.reply_from,
    }))
}

impl EmbeddedStore {
    /// Changes the text's delivery to what `change` makes of it (`None`: nothing to write), in one
    /// transaction, and tells the change feed.
    async fn change_delivery<F>(&self, text: &TextRef, change: F) -> StoreResult<Option<StoredText>>
    where
        F: FnOnce(&Delivery) -> StoreResult<Option<Delivery>> + Send + 'static,
    {
        let text = text.clone();
        let changed = self
            .write(move |tx| {
                let conversations = tx.open_table(CONVERSATIONS).map_err(engine)?;
                let mut messages = tx.open_table(MESSAGES).map_err(engine)?;
                let Some(mut stored) = read_text(&conversations, &messages, &text)? else {
                    return Ok(None);
                };
                let current = stored
                    .message
                    .delivery
                    .as_ref()
                    .expect("a text has a delivery");
                let Some(new) = change(current)? else {
                    return Ok(None);
                };
                stored.message.delivery = Some(new);
                index_in_flight(tx, text.practice_id.as_str(), &stored.message)?;
                put(
                    &mut messages,
                    (
                        text.practice_id.as_str(),
                        text.conversation_id.0.as_str(),
                        text.seq,
                    ),
                    &stored.message,
                )?;
                Ok(Some((stored, text.practice_id.clone())))
            })
            .await?;
        Ok(changed.map(|(stored, practice_id)| {
            self.feed.publish(vec![Change::DeliveryChanged {
                practice_id,
                client_id: stored.client_id.clone(),
                message: stored.message.clone(),
            }]);
            stored
        }))
    }
}

#[async_trait]
impl TextOutbox for EmbeddedStore {
    async fn get_text(&self, text: &TextRef) -> StoreResult<Option<StoredText>> {
        self.read(|tx| {
            let conversations = tx.open_table(CONVERSATIONS).map_err(engine)?;
            let messages = tx.open_table(MESSAGES).map_err(engine)?;
            read_text(&conversations, &messages, text)
        })
    }

    async fn apply_delivery_event(
        &self,
        text: &TextRef,
        event: &DeliveryEvent,
    ) -> StoreResult<Option<StoredText>> {
        let event = event.clone();
        self.change_delivery(text, move |current| Ok(current.apply(&event)))
            .await
    }

    async fn record_refused_opt_out(
        &self,
        text: &TextRef,
        number: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<chrono::DateTime<chrono::Utc>> {
        let (text, number) = (text.clone(), number.to_owned());
        self.write(move |tx| {
            let recorded = keep_or_record(tx, &text.practice_id, &number, at)?;
            let mut conversations = tx.open_table(CONVERSATIONS).map_err(engine)?;
            let key = (text.practice_id.as_str(), text.conversation_id.0.as_str());
            if let Some(mut c) = get::<_, Conversation>(&conversations, key)? {
                c.sms_opted_out_at = Some(recorded);
                put(&mut conversations, key, &c)?;
            }
            Ok(recorded)
        })
        .await
    }

    async fn replace_delivery(
        &self,
        text: &TextRef,
        expected: &Delivery,
        new: &Delivery,
    ) -> StoreResult<StoredText> {
        let (expected, new) = (expected.clone(), new.clone());
        self.change_delivery(text, move |current| {
            if current.status != expected.status || current.attempt != expected.attempt {
                return Err(StoreError::VersionMismatch);
            }
            Ok(Some(new))
        })
        .await?
        .ok_or(StoreError::NotFound)
    }

    async fn texts_in_flight(
        &self,
        queued_before: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(TextRef, Delivery)>> {
        let before = sortable(queued_before);
        self.read(|tx| {
            let in_flight = tx.open_table(TEXTS_IN_FLIGHT).map_err(engine)?;
            let messages = tx.open_table(MESSAGES).map_err(engine)?;
            let mut found = Vec::new();
            for row in in_flight.iter().map_err(engine)? {
                let (key, queued_at) = row.map_err(engine)?;
                if queued_at.value() >= before.as_str() {
                    continue;
                }
                let (practice, conversation, seq) = key.value();
                let Some(practice_id) = PracticeId::parse(practice) else {
                    continue;
                };
                let text = TextRef {
                    practice_id,
                    conversation_id: ConversationId(conversation.to_owned()),
                    seq,
                };
                let message: Option<Message> = get(&messages, (practice, conversation, seq))?;
                if let Some(d) = message.and_then(|m| m.delivery) {
                    found.push((queued_at.value().to_owned(), text, d));
                }
            }
            // Oldest first, as the DynamoDB index sorts them.
            found.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(found
                .into_iter()
                .take(limit)
                .map(|(_, text, d)| (text, d))
                .collect())
        })
    }
}
