//! Text replies on redb: the delivery of a message item, changed in one write transaction by the domain's
//! rule, and published to the change feed (what the local sender and fanout hear).

use async_trait::async_trait;
use domain::conversation::{Conversation, Delivery, DeliveryEvent, Message};
use domain::realtime::Change;
use domain::store::{StoreError, StoreResult, StoredText, TextOutbox, TextRef};
use redb::ReadableTable;

use super::conversations::{CONVERSATIONS, MESSAGES};
use super::{engine, get, put, EmbeddedStore};

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
}
