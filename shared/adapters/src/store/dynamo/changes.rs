//! The table's stream read as the domain's changes: what the fanout tells connections of. A message item
//! inserted is `MessageCreated`; a conversation item inserted, or changed in status or department, is
//! `ConversationUpdated` (an append's new activity and `seq` alone are not: the message says it); a message
//! item modified in its `delivery` is `DeliveryChanged`. Other
//! items (settings, alerts, claims, tickets, connections) are none of the fanout's business.

use aws_lambda_events::event::dynamodb::EventRecord;
use domain::conversation::{Conversation, Message};
use domain::identity::{DepartmentId, PracticeId};
use domain::realtime::Change;
use serde_dynamo::aws_sdk_dynamodb_1::from_item;

use super::codec::{sort_key, string_attribute, Item};
use super::keys::{CONVERSATION_SK, MESSAGE_SK_PREFIX};

/// The change a stream record carries, if the fanout cares.
pub fn change_of_record(record: &EventRecord) -> Option<Change> {
    let new: Item = record.change.new_image.clone().into();
    let old: Item = record.change.old_image.clone().into();
    let sk = sort_key(&new)?;
    match record.event_name.as_str() {
        "INSERT" if sk.starts_with(MESSAGE_SK_PREFIX) => {
            let practice_id = PracticeId::from(string_attribute(&new, "practice_id")?);
            let client_id = string_attribute(&new, "client_id")?.to_owned();
            let message = decode::<Message>(new)?;
            Some(Change::MessageCreated {
                practice_id,
                client_id,
                message,
            })
        }
        // A text reply's delivery moved (claimed, sent, delivered, failed, retried).
        "MODIFY"
            if sk.starts_with(MESSAGE_SK_PREFIX) && old.get("delivery") != new.get("delivery") =>
        {
            let practice_id = PracticeId::from(string_attribute(&new, "practice_id")?);
            let client_id = string_attribute(&new, "client_id")?.to_owned();
            Some(Change::DeliveryChanged {
                practice_id,
                client_id,
                message: decode::<Message>(new)?,
            })
        }
        "INSERT" if sk == CONVERSATION_SK => Some(Change::ConversationUpdated {
            conversation: decode::<Conversation>(new)?,
            previous_department_id: None,
        }),
        "MODIFY" if sk == CONVERSATION_SK => {
            let before = |name: &str| string_attribute(&old, name).map(str::to_owned);
            let after = |name: &str| string_attribute(&new, name).map(str::to_owned);
            let moved = before("department_id") != after("department_id");
            if !moved && before("status") == after("status") {
                return None;
            }
            Some(Change::ConversationUpdated {
                previous_department_id: moved
                    .then(|| before("department_id").map(DepartmentId))
                    .flatten(),
                conversation: decode::<Conversation>(new)?,
            })
        }
        _ => None,
    }
}

fn decode<T: serde::de::DeserializeOwned>(item: Item) -> Option<T> {
    match from_item(item) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(error = %e, "a stream record the fanout cannot read");
            None
        }
    }
}
