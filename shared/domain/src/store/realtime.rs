//! The realtime aggregate: single-use tickets and the WebSocket connections they open.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::identity::PracticeId;
use crate::realtime::{Connection, ConnectionId, Ticket};

/// Tickets: bought over the JWT-protected HTTP API, taken once by `$connect`.
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Stores `ticket` under `secret`. The store keeps only a hash of the secret, so a copy of the table
    /// holds no usable ticket.
    async fn put_ticket(&self, secret: &str, ticket: &Ticket) -> StoreResult<()>;

    /// Takes the ticket of `secret` if it is there and still valid at `now`, atomically (a conditional
    /// delete): of two takes of one secret, one gets the ticket and the other `None`.
    async fn take_ticket(&self, secret: &str, now: DateTime<Utc>) -> StoreResult<Option<Ticket>>;
}

/// Open WebSocket connections, found by practice without a scan.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    async fn put_connection(&self, connection: &Connection) -> StoreResult<()>;

    /// Deletes exactly this connection (nothing if it is gone already).
    async fn delete_connection(&self, id: &ConnectionId) -> StoreResult<()>;

    /// The practice's connections, clients' and staff's (one query; the domain picks who gets a frame).
    /// May include expired ones the table's TTL has not removed yet.
    async fn practice_connections(&self, practice_id: &PracticeId) -> StoreResult<Vec<Connection>>;
}
