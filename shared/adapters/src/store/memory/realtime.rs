//! Tickets and connections in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::identity::PracticeId;
use domain::realtime::{Connection, ConnectionId, Ticket};
use domain::store::{ConnectionStore, StoreError, StoreResult, TicketStore};

use super::MemoryStore;
use crate::store::ticket_hash;

#[async_trait]
impl TicketStore for MemoryStore {
    async fn put_ticket(&self, secret: &str, ticket: &Ticket) -> StoreResult<()> {
        let mut tables = self.lock();
        let key = ticket_hash(secret);
        if tables.tickets.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        tables.tickets.insert(key, ticket.clone());
        Ok(())
    }

    async fn take_ticket(&self, secret: &str, now: DateTime<Utc>) -> StoreResult<Option<Ticket>> {
        let mut tables = self.lock();
        let key = ticket_hash(secret);
        // As on DynamoDB: an expired ticket stays until it is swept, and is never taken.
        match tables.tickets.get(&key) {
            Some(t) if t.expires_at > now => Ok(tables.tickets.remove(&key)),
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn put_connection(&self, connection: &Connection) -> StoreResult<()> {
        self.lock()
            .connections
            .insert(connection.id.clone(), connection.clone());
        Ok(())
    }

    async fn delete_connection(&self, id: &ConnectionId) -> StoreResult<()> {
        self.lock().connections.remove(id);
        Ok(())
    }

    async fn practice_connections(&self, practice_id: &PracticeId) -> StoreResult<Vec<Connection>> {
        let mut found: Vec<Connection> = self
            .lock()
            .connections
            .values()
            .filter(|c| &c.subscriber.practice_id == practice_id)
            .cloned()
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }
}
