//! Turning pending alerts into emails and texts, and delivering each once.
//!
//! A pending alert is written in the same atomic write as the change that causes it. The dispatcher (the
//! DynamoDB stream on AWS, an in-process worker locally) composes one delivery per recipient and, for each:
//! claims it with a lease (so a duplicate stream record or a concurrent retry does not send it too), sends it,
//! and records the outcome under the delivery's idempotency key (so a retried run skips it). A temporary
//! failure releases the claim and leaves the alert pending for the next attempt; a permanent refusal of one
//! recipient is recorded as failed and does not block the others.
//!
//! SES and SNS take no idempotency token: if a process dies after a send and before its outcome is
//! recorded, the next attempt after the lease sends that one message again. That window is the only place
//! a repeat can come from; the idempotency key travels with the message so a receiver can spot it.

use chrono::{DateTime, Duration, Utc};

use crate::alert::{
    AlertKind, AlertRecord, AlertSender, AlertStatus, Delivery, DeliveryChannel, DeliveryOutcome,
    PendingAlert, ReminderDigest, SendError,
};
use crate::conversation::AlertId;
use crate::department::Department;
use crate::error::DomainResult;
use crate::practice::Practice;
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

/// Practices outside the US and Canada get no SMS alerts (API.md).
fn sms_allowed(practice: &Practice) -> bool {
    matches!(practice.country.as_str(), "US" | "CA")
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The GSM 03.38 basic set: a text only of these fits 160 characters in one SMS segment; any other
/// character makes the whole text UCS-2, 70 characters a segment.
fn is_gsm(c: char) -> bool {
    const GSM: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    GSM.contains(c)
}

/// Fits `head` + a quote of `quote` + `tail` into one SMS segment where it can, shortening only the quote.
fn fit_sms(head: &str, quote: &str, tail: &str) -> String {
    let all_gsm = head
        .chars()
        .chain(quote.chars())
        .chain(tail.chars())
        .all(is_gsm);
    let limit: usize = if all_gsm { 160 } else { 70 };
    let fixed = head.chars().count() + tail.chars().count() + 4; // quotes and spaces
    let room = limit.saturating_sub(fixed);
    let quote = if quote.chars().count() <= room {
        quote.to_owned()
    } else if room > 3 {
        format!(
            "{}...",
            quote.chars().take(room - 3).collect::<String>().trim_end()
        )
    } else {
        String::new()
    };
    if quote.is_empty() {
        format!("{head} {tail}")
    } else {
        format!("{head} \"{quote}\" {tail}")
    }
}

/// One delivery per recipient: the department's alert emails and numbers for a new conversation or a
/// transfer (none when its alerts are off), its alert emails for the unresolved-conversation reminder (which
/// has its own switch).
pub fn compose(
    alert: &PendingAlert,
    practice: &Practice,
    department: &Department,
    dashboard_url: &str,
) -> Vec<Delivery> {
    if let (AlertKind::UnresolvedReminder, Some(digest)) = (alert.kind, &alert.reminder) {
        return compose_reminder(alert, digest, practice, department, dashboard_url);
    }
    let alerts = &department.settings.alerts;
    if !alerts.enabled {
        return Vec::new();
    }
    let dept = &department.settings.name;
    let link = format!(
        "{}/conversations/{}",
        dashboard_url.trim_end_matches('/'),
        alert.conversation_id
    );
    let channel = alert.channel.as_str();
    let client = &alert.client_id;
    let (subject, lead) = match (&alert.kind, &alert.transfer) {
        (AlertKind::Transfer, Some(t)) => (
            format!("Conversation transferred to {dept}"),
            format!(
                "{} transferred a conversation to {dept}; it needs attention.",
                t.by
            ),
        ),
        _ => (
            format!("New conversation in {dept}"),
            format!("A new conversation in {dept} needs attention."),
        ),
    };
    let note = alert
        .transfer
        .as_ref()
        .and_then(|t| t.note.clone())
        .filter(|n| !n.trim().is_empty());
    let mut text = format!("{lead}\n\nClient: {client}\nChannel: {channel}\n");
    if !alert.preview.is_empty() {
        text.push_str(&format!("Last message: \"{}\"\n", alert.preview));
    }
    if let Some(note) = &note {
        text.push_str(&format!("Note: {note}\n"));
    }
    text.push_str(&format!(
        "\nOpen the conversation: {link}\n\n{} — {}\n",
        practice.name, dept
    ));
    let mut html = format!(
        "<p>{}</p><table><tr><td>Client</td><td>{}</td></tr><tr><td>Channel</td><td>{}</td></tr>",
        html_escape(&lead),
        html_escape(client),
        channel
    );
    if !alert.preview.is_empty() {
        html.push_str(&format!(
            "<tr><td>Last message</td><td>&ldquo;{}&rdquo;</td></tr>",
            html_escape(&alert.preview)
        ));
    }
    if let Some(note) = &note {
        html.push_str(&format!(
            "<tr><td>Note</td><td>{}</td></tr>",
            html_escape(note)
        ));
    }
    html.push_str(&format!(
        "</table><p><a href=\"{}\">Open the conversation</a></p><p>{} &mdash; {}</p>",
        html_escape(&link),
        html_escape(&practice.name),
        html_escape(dept)
    ));
    let sms_head = match alert.kind {
        AlertKind::Transfer => format!(
            "{}: chat transferred to {dept} from {client}",
            practice.name
        ),
        _ => format!(
            "{}: new {channel} chat in {dept} from {client}",
            practice.name
        ),
    };
    let sms = fit_sms(&sms_head, &alert.preview, &link);

    let delivery =
        |channel: DeliveryChannel, to: &str, text: String, html: Option<String>| Delivery {
            alert_id: alert.id.clone(),
            kind: alert.kind,
            channel,
            to: to.to_owned(),
            subject: subject.clone(),
            text,
            html,
            department_id: department.id.clone(),
            conversation_ids: vec![alert.conversation_id.clone()],
            idempotency_key: format!("{}:{}:{}", alert.id, channel_key(channel), to),
        };
    let mut out: Vec<Delivery> = alerts
        .emails
        .iter()
        .map(|e| delivery(DeliveryChannel::Email, e, text.clone(), Some(html.clone())))
        .collect();
    if sms_allowed(practice) {
        out.extend(
            alerts
                .sms_numbers
                .iter()
                .map(|n| delivery(DeliveryChannel::Sms, n, sms.clone(), None)),
        );
    }
    out
}

fn compose_reminder(
    alert: &PendingAlert,
    digest: &ReminderDigest,
    practice: &Practice,
    department: &Department,
    dashboard_url: &str,
) -> Vec<Delivery> {
    let tz = practice.timezone;
    let dept = &department.settings.name;
    let n = digest.conversations.len();
    let plural = if n == 1 {
        "conversation is"
    } else {
        "conversations are"
    };
    let subject = format!(
        "{dept}: {n} open {} to end today",
        if n == 1 {
            "conversation"
        } else {
            "conversations"
        }
    );
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%a %d %b %H:%M").to_string();
    let base = dashboard_url.trim_end_matches('/');
    let mut text = format!(
        "{n} {plural} still open in {dept} ({}). End the ones that are finished, so that clients' next \
         messages start new conversations instead of arriving after hours in old ones.\n\n",
        digest.date.format("%A %d %B %Y")
    );
    let mut html = format!(
        "<p>{n} {plural} still open in {} ({}). End the ones that are finished.</p><table>\
         <tr><th>Client</th><th>Channel</th><th>Started</th><th>Last activity</th><th></th></tr>",
        html_escape(dept),
        digest.date.format("%A %d %B %Y")
    );
    for c in &digest.conversations {
        let link = format!("{base}/conversations/{}", c.id);
        text.push_str(&format!(
            "- {} ({}), started {}, last activity {}: {link}\n",
            c.client_id,
            c.channel.as_str(),
            local(c.started_at),
            local(c.last_message_at)
        ));
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"{}\">Open</a></td></tr>",
            html_escape(&c.client_id),
            c.channel.as_str(),
            local(c.started_at),
            local(c.last_message_at),
            html_escape(&link)
        ));
    }
    text.push_str(&format!("\n{} — {}\n", practice.name, dept));
    html.push_str(&format!(
        "</table><p>{} &mdash; {}</p>",
        html_escape(&practice.name),
        html_escape(dept)
    ));
    department
        .settings
        .alerts
        .emails
        .iter()
        .map(|to| Delivery {
            alert_id: alert.id.clone(),
            kind: AlertKind::UnresolvedReminder,
            channel: DeliveryChannel::Email,
            to: to.clone(),
            subject: subject.clone(),
            text: text.clone(),
            html: Some(html.clone()),
            department_id: department.id.clone(),
            conversation_ids: digest.conversations.iter().map(|c| c.id.clone()).collect(),
            idempotency_key: format!("{}:email:{to}", alert.id),
        })
        .collect()
}

fn channel_key(channel: DeliveryChannel) -> &'static str {
    match channel {
        DeliveryChannel::Email => "email",
        DeliveryChannel::Sms => "sms",
    }
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
