//! Tickets and connections on DynamoDB. A ticket is kept under the SHA-256 of its secret, with the table's
//! TTL on `expires_at` (epoch seconds) as its sweep; taking it is a conditional `DeleteItem` that returns the
//! old item, so a second take finds nothing. A connection is kept under its id, in `GSI2`'s partition of its
//! practice, with a TTL of its 2 hours.
//!
//! | method | requests |
//! |---|---|
//! | `put_ticket` | one `PutItem` (conditional: a fresh secret) |
//! | `take_ticket` | one `DeleteItem` (conditional: there and unexpired; `ALL_OLD`) |
//! | `put_connection` | one `PutItem` |
//! | `delete_connection` | one `DeleteItem` |
//! | `practice_connections` | one `Query` on `GSI2` (more pages only past 1 MB) |

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use domain::identity::PracticeId;
use domain::realtime::{Connection, ConnectionId, Subscriber, Ticket};
use domain::store::{ConnectionStore, StoreError, StoreResult, TicketStore};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

use super::codec::{decoding_failed, encoding_failed, s, Item, ABSENT};
use super::keys::{connection_key, connections_pk, ticket_key, GSI2, GSI2PK, GSI2SK};
use super::{sdk_unavailable, DynamoStore};
use crate::store::ticket_hash;

/// A ticket as stored: `expires_at` in epoch seconds, which the table's TTL reads.
#[derive(Serialize, Deserialize)]
struct TicketItem {
    #[serde(flatten)]
    subscriber: Subscriber,
    #[serde(with = "chrono::serde::ts_seconds")]
    expires_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct ConnectionItem {
    id: ConnectionId,
    #[serde(flatten)]
    subscriber: Subscriber,
    connected_at: DateTime<Utc>,
    #[serde(with = "chrono::serde::ts_seconds")]
    expires_at: DateTime<Utc>,
}

fn epoch(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp().to_string())
}

#[async_trait]
impl TicketStore for DynamoStore {
    async fn put_ticket(&self, secret: &str, ticket: &Ticket) -> StoreResult<()> {
        let mut item: Item = to_item(TicketItem {
            subscriber: ticket.subscriber.clone(),
            expires_at: ticket.expires_at,
        })
        .map_err(encoding_failed)?;
        item.extend(ticket_key(&ticket_hash(secret)));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(ABSENT)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::AlreadyExists)
            }
            Err(e) => Err(sdk_unavailable("PutItem", &e)),
        }
    }

    async fn take_ticket(&self, secret: &str, now: DateTime<Utc>) -> StoreResult<Option<Ticket>> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(ticket_key(&ticket_hash(secret))))
            .condition_expression("attribute_exists(PK) AND expires_at > :now")
            .expression_attribute_values(":now", epoch(now))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(out) => out.attributes,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(sdk_unavailable("DeleteItem", &e)),
        };
        let Some(old) = old.filter(|item| !item.is_empty()) else {
            return Ok(None);
        };
        let ticket: TicketItem = from_item(old).map_err(decoding_failed)?;
        Ok(Some(Ticket {
            subscriber: ticket.subscriber,
            expires_at: ticket.expires_at,
        }))
    }
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn put_connection(&self, c: &Connection) -> StoreResult<()> {
        let mut item: Item = to_item(ConnectionItem {
            id: c.id.clone(),
            subscriber: c.subscriber.clone(),
            connected_at: c.connected_at,
            expires_at: c.expires_at,
        })
        .map_err(encoding_failed)?;
        item.extend(connection_key(&c.id));
        item.insert(GSI2PK.into(), s(connections_pk(&c.subscriber.practice_id)));
        item.insert(GSI2SK.into(), s(c.id.as_str()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_unavailable("PutItem", &e))?;
        Ok(())
    }

    async fn delete_connection(&self, id: &ConnectionId) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(connection_key(id)))
            .send()
            .await
            .map_err(|e| sdk_unavailable("DeleteItem", &e))?;
        Ok(())
    }

    async fn practice_connections(&self, practice_id: &PracticeId) -> StoreResult<Vec<Connection>> {
        let request = self.index_query(GSI2, GSI2PK, connections_pk(practice_id));
        self.query(request, None, |item| {
            let c: ConnectionItem = from_item(item).map_err(decoding_failed)?;
            Ok(Some(Connection {
                id: c.id,
                subscriber: c.subscriber,
                connected_at: c.connected_at,
                expires_at: c.expires_at,
            }))
        })
        .await
    }
}
