//! The alert outbox in memory: alerts in the order they were written, each with its delivery claims.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::alert::{AlertRecord, AlertStatus, DeliveryOutcome, PendingAlert};
use domain::conversation::AlertId;
use domain::store::{AlertOutbox, PendingAlerts, StoreError, StoreResult};

use super::{MemoryStore, Tables};

/// An alert as the change that causes it writes it: pending, nothing delivered.
pub(super) fn new_alert_record(alert: &PendingAlert) -> AlertRecord {
    AlertRecord {
        alert: alert.clone(),
        status: AlertStatus::Pending,
        outcomes: Default::default(),
    }
}

impl Tables {
    fn alert_mut(
        &mut self,
        id: &AlertId,
    ) -> StoreResult<&mut (AlertRecord, HashMap<String, DateTime<Utc>>)> {
        self.alerts
            .iter_mut()
            .find(|(r, _)| &r.alert.id == id)
            .ok_or(StoreError::NotFound)
    }
}

#[async_trait]
impl AlertOutbox for MemoryStore {
    async fn get_alert(&self, id: &AlertId) -> StoreResult<Option<AlertRecord>> {
        Ok(self
            .lock()
            .alerts
            .iter()
            .find(|(r, _)| &r.alert.id == id)
            .map(|(r, _)| r.clone()))
    }

    async fn claim_delivery(
        &self,
        id: &AlertId,
        key: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tables = self.lock();
        let (record, claims) = tables.alert_mut(id)?;
        if record.outcomes.contains_key(key) || claims.get(key).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        claims.insert(key.to_owned(), lease_until);
        Ok(true)
    }

    async fn release_delivery(&self, id: &AlertId, key: &str) -> StoreResult<()> {
        let mut tables = self.lock();
        tables.alert_mut(id)?.1.remove(key);
        Ok(())
    }

    async fn record_delivery(
        &self,
        id: &AlertId,
        key: &str,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<()> {
        let mut tables = self.lock();
        let (record, claims) = tables.alert_mut(id)?;
        record
            .outcomes
            .entry(key.to_owned())
            .or_insert_with(|| outcome.clone());
        claims.remove(key);
        Ok(())
    }

    async fn complete_alert(&self, id: &AlertId) -> StoreResult<()> {
        let mut tables = self.lock();
        tables.alert_mut(id)?.0.status = AlertStatus::Done;
        Ok(())
    }
}

#[async_trait]
impl PendingAlerts for MemoryStore {
    async fn pending_alert_ids(&self, limit: usize) -> StoreResult<Vec<AlertId>> {
        let tables = self.lock();
        Ok(tables
            .alerts
            .iter()
            .filter(|(r, _)| r.status == AlertStatus::Pending)
            .take(limit)
            .map(|(r, _)| r.alert.id.clone())
            .collect())
    }
}
