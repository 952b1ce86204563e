//! Tickets and WebSocket connections on redb. A ticket is kept under the hash of its secret, as on
//! DynamoDB; taking one is a read and a delete in one write transaction, so of two takes one wins.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::identity::PracticeId;
use domain::realtime::{Connection, ConnectionId, Ticket};
use domain::store::{ConnectionStore, StoreError, StoreResult, TicketStore};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{decode, engine, get, past, put, EmbeddedStore, Json};
use crate::store::ticket_hash;

/// SHA-256 of a ticket's secret (hex) → the ticket.
const TICKETS: TableDefinition<&str, Json> = TableDefinition::new("tickets");
/// (practice, connection) → the connection: a practice's connections are one range.
const CONNECTIONS: TableDefinition<(&str, &str), Json> = TableDefinition::new("connections");
/// connection → its practice, for a delete that knows only the connection's id.
const CONNECTION_PRACTICE: TableDefinition<&str, &str> =
    TableDefinition::new("connection_practice");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<(), redb::Error> {
    tx.open_table(TICKETS)?;
    tx.open_table(CONNECTIONS)?;
    tx.open_table(CONNECTION_PRACTICE)?;
    Ok(())
}

#[async_trait]
impl TicketStore for EmbeddedStore {
    async fn put_ticket(&self, secret: &str, ticket: &Ticket) -> StoreResult<()> {
        let (key, ticket) = (ticket_hash(secret), ticket.clone());
        self.write(move |tx| {
            let mut tickets = tx.open_table(TICKETS).map_err(engine)?;
            if tickets.get(key.as_str()).map_err(engine)?.is_some() {
                return Err(StoreError::AlreadyExists);
            }
            put(&mut tickets, key.as_str(), &ticket)
        })
        .await
    }

    async fn take_ticket(&self, secret: &str, now: DateTime<Utc>) -> StoreResult<Option<Ticket>> {
        let key = ticket_hash(secret);
        self.write(move |tx| {
            let mut tickets = tx.open_table(TICKETS).map_err(engine)?;
            let ticket: Option<Ticket> = get(&tickets, key.as_str())?;
            // As on DynamoDB: an expired ticket stays until it is swept, and is never taken.
            match ticket {
                Some(t) if t.expires_at > now => {
                    tickets.remove(key.as_str()).map_err(engine)?;
                    Ok(Some(t))
                }
                _ => Ok(None),
            }
        })
        .await
    }
}

#[async_trait]
impl ConnectionStore for EmbeddedStore {
    async fn put_connection(&self, connection: &Connection) -> StoreResult<()> {
        let connection = connection.clone();
        self.write(move |tx| {
            let (p, id) = (
                connection.subscriber.practice_id.0.as_str(),
                connection.id.as_str(),
            );
            put(
                &mut tx.open_table(CONNECTIONS).map_err(engine)?,
                (p, id),
                &connection,
            )?;
            tx.open_table(CONNECTION_PRACTICE)
                .map_err(engine)?
                .insert(id, p)
                .map_err(engine)?;
            Ok(())
        })
        .await
    }

    async fn delete_connection(&self, id: &ConnectionId) -> StoreResult<()> {
        let id = id.clone();
        self.write(move |tx| {
            let mut practices = tx.open_table(CONNECTION_PRACTICE).map_err(engine)?;
            let practice = practices
                .remove(id.as_str())
                .map_err(engine)?
                .map(|p| p.value().to_owned());
            if let Some(p) = practice {
                tx.open_table(CONNECTIONS)
                    .map_err(engine)?
                    .remove((p.as_str(), id.as_str()))
                    .map_err(engine)?;
            }
            Ok(())
        })
        .await
    }

    async fn practice_connections(&self, practice_id: &PracticeId) -> StoreResult<Vec<Connection>> {
        self.read(|tx| {
            let connections = tx.open_table(CONNECTIONS).map_err(engine)?;
            let p = practice_id.0.as_str();
            let past_p = past(p);
            let mut out = Vec::new();
            for row in connections
                .range((p, "")..(past_p.as_str(), ""))
                .map_err(engine)?
            {
                out.push(decode::<Connection>(row.map_err(engine)?.1.value())?);
            }
            Ok(out)
        })
    }
}
