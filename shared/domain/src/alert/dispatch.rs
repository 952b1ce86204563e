//! The delivery protocol: each delivery of an alert sent once.
//!
//! A pending alert is written in the same atomic write as the change that causes it. The dispatcher (the
//! DynamoDB stream on AWS, an in-process worker locally) composes one delivery per recipient
//! ([`super::text::compose`]) and, for each:
//! claims it with a lease (so a duplicate stream record or a concurrent retry does not send it too), sends it,
//! and records the outcome under the delivery's idempotency key (so a retried run skips it). A temporary
//! failure releases the claim and leaves the alert pending for the next attempt; a permanent refusal of one
//! recipient is recorded as failed and does not block the others.
//!
//! SES and SNS take no idempotency token: if a process dies after a send and before its outcome is
//! recorded, the next attempt after the lease sends that one message again. That window is the only place
//! a repeat can come from; the idempotency key travels with the message so a receiver can spot it.

use chrono::{DateTime, Duration, Utc};

use super::text::compose;
use super::{AlertRecord, AlertSender, AlertStatus, DeliveryOutcome, SendError};
use crate::conversation::AlertId;
use crate::error::DomainResult;
use crate::store::DispatchStore;

/// How long a claimed delivery stays reserved for the dispatcher that claimed it.
pub const CLAIM_LEASE: Duration = Duration::seconds(60);

/// What became of one dispatch attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchReport {
    pub sent: usize,
    pub failed: usize,
    /// Deliveries left for a later attempt (temporary failure, or claimed by another dispatcher).
    pub pending: usize,
    /// The alert has every outcome recorded (now or before).
    pub done: bool,
}

/// Delivers what is still undelivered of one alert. `Err` only when the store is unavailable.
pub async fn dispatch_alert(
    store: &dyn DispatchStore,
    sender: &dyn AlertSender,
    id: &AlertId,
    now: DateTime<Utc>,
    dashboard_url: &str,
) -> DomainResult<DispatchReport> {
    let Some(record) = store.get_alert(id).await? else {
        return Ok(DispatchReport {
            done: true,
            ..Default::default()
        });
    };
    if record.status == AlertStatus::Done {
        return Ok(DispatchReport {
            done: true,
            ..Default::default()
        });
    }
    let AlertRecord {
        alert, outcomes, ..
    } = record;
    let (practice, department) = store
        .practice_and_department(&alert.practice_id, &alert.department_id)
        .await?;
    let deliveries = match (practice, department) {
        (Some(p), Some(d)) => compose(&alert, &p, &d, dashboard_url),
        // The department was deleted: nobody is left to alert.
        _ => Vec::new(),
    };
    let mut report = DispatchReport::default();
    for delivery in deliveries
        .iter()
        .filter(|d| !outcomes.contains_key(&d.idempotency_key))
    {
        let key = &delivery.idempotency_key;
        if !store
            .claim_delivery(id, key, now, now + CLAIM_LEASE)
            .await?
        {
            report.pending += 1;
            continue;
        }
        match sender.send(delivery).await {
            Ok(()) => {
                store
                    .record_delivery(id, key, &DeliveryOutcome::Sent { at: now })
                    .await?;
                report.sent += 1;
            }
            Err(SendError::Permanent(reason)) => {
                store
                    .record_delivery(id, key, &DeliveryOutcome::Failed { at: now, reason })
                    .await?;
                report.failed += 1;
            }
            Err(SendError::Transient(_)) => {
                store.release_delivery(id, key).await?;
                report.pending += 1;
            }
        }
    }
    if report.pending == 0 {
        store.complete_alert(id).await?;
        report.done = true;
    }
    Ok(report)
}
