//! Text replies on DynamoDB: the message item is the outbox entry (written in the conversation change's
//! transaction) and its `delivery` map the record of the send.
//!
//! | method | requests |
//! |---|---|
//! | `get_text` | one `GetItem` (consistent) |
//! | `apply_delivery_event` | one conditional `UpdateItem` (the status event's budget) |
//! | `replace_delivery` | one conditional `UpdateItem` |
//! | `texts_in_flight` | one `Query` of `GSI1` (`TEXTS#in_flight`), paged to the limit |
//! | `record_refused_opt_out` | two `UpdateItem`s (`dynamo/opt_outs.rs`) |
//!
//! An event is applied with no read: [`Delivery::apply`]'s rule becomes the update's condition (the stored
//! status is one ranked below the event's, and the attempt is the event's unless the event reports a
//! delivery), and what the rule writes (status, reason, instant) becomes its `SET`. The same update takes
//! the item out of the in-flight index (`REMOVE GSI1PK, GSI1SK`) once the status is past `sending`, and a
//! retry puts it back: the index holds exactly the texts the sweep may have to take over.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use domain::conversation::{Delivery, DeliveryEvent, DeliveryStatus, Message};
use domain::identity::PracticeId;
use domain::realtime::Change;
use domain::store::{StoreError, StoreResult, StoredText, TextOutbox, TextRef};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_attribute_value};

use super::codec::{decoding_failed, encoding_failed, n, s, string_attribute, Item};
use super::conversations::REPLY_FROM;
use super::keys::{
    conversation_pk, in_flight_sk, key, message_sk, sortable, GSI1, GSI1PK, GSI1SK,
    TEXTS_IN_FLIGHT_PK,
};
use super::{sdk_unavailable, DynamoStore};

fn text_key(text: &TextRef) -> Item {
    key(
        conversation_pk(&text.practice_id, &text.conversation_id),
        &message_sk(text.seq),
    )
}

fn stored_text(item: Item) -> StoreResult<Option<StoredText>> {
    let Some(client_id) = string_attribute(&item, "client_id").map(str::to_owned) else {
        return Ok(None);
    };
    let reply_from = string_attribute(&item, REPLY_FROM).map(str::to_owned);
    let message: Message = from_item(item).map_err(decoding_failed)?;
    Ok(message.delivery.is_some().then_some(StoredText {
        message,
        client_id,
        reply_from,
    }))
}

fn encode<T: serde::Serialize>(value: &T) -> StoreResult<AttributeValue> {
    to_attribute_value(value).map_err(encoding_failed)
}

impl DynamoStore {
    /// One conditional `UpdateItem` answering the item after it, or `None` when the condition failed.
    async fn update_text(
        &self,
        text: &TextRef,
        expression: &str,
        condition: String,
        values: Vec<(String, AttributeValue)>,
    ) -> StoreResult<Option<StoredText>> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(text_key(text)))
            .update_expression(expression)
            .condition_expression(&condition)
            .expression_attribute_names("#d", "delivery")
            .expression_attribute_names("#st", "status")
            .return_values(ReturnValue::AllNew);
        // DynamoDB refuses names an expression does not use.
        if condition.contains("#a") {
            request = request.expression_attribute_names("#a", "attempt");
        }
        if expression.contains("#r") {
            request = request
                .expression_attribute_names("#r", "reason")
                .expression_attribute_names("#u", "updated_at");
        }
        if expression.contains("#g1pk") {
            request = request
                .expression_attribute_names("#g1pk", GSI1PK)
                .expression_attribute_names("#g1sk", GSI1SK);
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(out) => {
                let changed = stored_text(out.attributes.unwrap_or_default())?;
                if let Some(t) = &changed {
                    // The local stand-in for the stream's MODIFY record.
                    self.feed.publish(vec![Change::DeliveryChanged {
                        practice_id: text.practice_id.clone(),
                        client_id: t.client_id.clone(),
                        message: t.message.clone(),
                    }]);
                }
                Ok(changed)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_unavailable("UpdateItem", &e)),
        }
    }
}

#[async_trait]
impl TextOutbox for DynamoStore {
    async fn get_text(&self, text: &TextRef) -> StoreResult<Option<StoredText>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(text_key(text)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_unavailable("GetItem", &e))?;
        match out.item {
            Some(item) if !item.is_empty() => stored_text(item),
            _ => Ok(None),
        }
    }

    async fn apply_delivery_event(
        &self,
        text: &TextRef,
        event: &DeliveryEvent,
    ) -> StoreResult<Option<StoredText>> {
        // What the rule writes over a status below the event's, of the event's attempt.
        let Some(written) = Delivery::queued(None, event.at).apply(&DeliveryEvent {
            attempt: None,
            ..event.clone()
        }) else {
            return Ok(None);
        };
        let below: Vec<DeliveryStatus> = DeliveryStatus::ALL
            .into_iter()
            .filter(|s| s.rank() < event.status.rank())
            .collect();
        let mut values: Vec<(String, AttributeValue)> = below
            .iter()
            .enumerate()
            .map(|(i, st)| (format!(":b{i}"), s(st.as_str())))
            .collect();
        let listed: Vec<String> = (0..below.len()).map(|i| format!(":b{i}")).collect();
        let mut condition = format!("#d.#st IN ({})", listed.join(", "));
        if let Some(attempt) = event.attempt.filter(|_| !event.status.reached_the_owner()) {
            condition.push_str(" AND #d.#a = :a");
            values.push((":a".into(), n(u64::from(attempt))));
        }
        values.push((":st".into(), encode(&written.status)?));
        values.push((":r".into(), encode(&written.reason)?));
        values.push((":u".into(), encode(&written.updated_at)?));
        let expression = if written.status.in_flight() {
            "SET #d.#st = :st, #d.#r = :r, #d.#u = :u"
        } else {
            "SET #d.#st = :st, #d.#r = :r, #d.#u = :u REMOVE #g1pk, #g1sk"
        };
        self.update_text(text, expression, condition, values).await
    }

    async fn record_refused_opt_out(
        &self,
        text: &TextRef,
        number: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<chrono::DateTime<chrono::Utc>> {
        self.write_refused_opt_out(text, number, at).await
    }

    async fn replace_delivery(
        &self,
        text: &TextRef,
        expected: &Delivery,
        new: &Delivery,
    ) -> StoreResult<StoredText> {
        let mut values = vec![
            (":new".into(), encode(new)?),
            (":est".into(), s(expected.status.as_str())),
            (":ea".into(), n(u64::from(expected.attempt))),
        ];
        let expression = if new.status.in_flight() {
            let pk = conversation_pk(&text.practice_id, &text.conversation_id);
            values.push((":g1pk".into(), s(TEXTS_IN_FLIGHT_PK)));
            values.push((
                ":g1sk".into(),
                s(in_flight_sk(new.updated_at, &pk, text.seq)),
            ));
            "SET #d = :new, #g1pk = :g1pk, #g1sk = :g1sk"
        } else {
            "SET #d = :new REMOVE #g1pk, #g1sk"
        };
        let changed = self
            .update_text(
                text,
                expression,
                "#d.#st = :est AND #d.#a = :ea".into(),
                values,
            )
            .await?;
        match changed {
            Some(text) => Ok(text),
            None => match self.get_text(text).await? {
                Some(_) => Err(StoreError::VersionMismatch),
                None => Err(StoreError::NotFound),
            },
        }
    }

    async fn texts_in_flight(
        &self,
        queued_before: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(TextRef, Delivery)>> {
        // Eventually consistent, as every index: a text just answered may still be listed (the sweep's
        // writes are conditional on the status it read, so a stale entry changes nothing).
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk AND #sk < :before")
            .expression_attribute_names("#pk", GSI1PK)
            .expression_attribute_names("#sk", GSI1SK)
            .expression_attribute_values(":pk", s(TEXTS_IN_FLIGHT_PK))
            .expression_attribute_values(":before", s(sortable(queued_before)))
            .scan_index_forward(true);
        self.query(request, Some(limit), |item| {
            let Some(practice_id) =
                string_attribute(&item, "practice_id").and_then(PracticeId::parse)
            else {
                tracing::error!("an in-flight text index entry without its practice");
                return Err(StoreError::Unavailable(
                    "a stored record could not be read".into(),
                ));
            };
            let message: Message = from_item(item).map_err(decoding_failed)?;
            let text = TextRef {
                practice_id,
                conversation_id: message.conversation_id.clone(),
                seq: message.seq,
            };
            Ok(message.delivery.map(|d| (text, d)))
        })
        .await
    }
}
