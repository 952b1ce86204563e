//! The alert outbox's delivery side: every alert is written by the change that causes it (a conversation
//! started or transferred, a reminder claimed); these are the dispatcher's reads and writes of it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::alert::{AlertRecord, DeliveryOutcome};
use crate::conversation::AlertId;

/// Delivering one alert, recipient by recipient, exactly once (the alert dispatcher, the reminder).
#[async_trait]
pub trait AlertOutbox: Send + Sync {
    async fn get_alert(&self, id: &AlertId) -> StoreResult<Option<AlertRecord>>;

    /// Takes the right to send delivery `key` of an alert until `lease_until`. `false` when its outcome is
    /// already recorded, or another dispatcher holds an unexpired lease (a duplicate stream record, a retry
    /// running beside the first attempt).
    async fn claim_delivery(
        &self,
        id: &AlertId,
        key: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Gives up a claim after a temporary failure, so the next attempt may send at once.
    async fn release_delivery(&self, id: &AlertId, key: &str) -> StoreResult<()>;

    /// Records the final outcome of delivery `key`, once (a second record of the same key is ignored).
    async fn record_delivery(
        &self,
        id: &AlertId,
        key: &str,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<()>;

    /// Marks the alert done: every delivery has its outcome.
    async fn complete_alert(&self, id: &AlertId) -> StoreResult<()>;
}

/// The alerts still pending, for the local server's worker (on AWS the table's stream hands each one to
/// the dispatcher, which never lists them).
#[async_trait]
pub trait PendingAlerts: Send + Sync {
    /// Up to `limit` alerts still pending, oldest first.
    async fn pending_alert_ids(&self, limit: usize) -> StoreResult<Vec<AlertId>>;
}
