//! What an alert says and to whom: the subject, the plain-text and HTML bodies of the email, the SMS fitted
//! to one segment where it can, and one [`Delivery`] per recipient. No I/O: [`super::dispatch`] delivers
//! what this composes.

use chrono::{DateTime, Utc};

use super::{
    AlertSubject, ConversationAlert, Delivery, DeliveryChannel, PendingAlert, ReminderDigest,
};
use crate::conversation::Transfer;
use crate::department::Department;
use crate::practice::Practice;

/// One delivery per recipient: the department's alert emails and numbers for a new conversation or a
/// transfer (none when its alerts are off), its alert emails for the unresolved-conversation reminder (which
/// has its own switch).
pub fn compose(
    alert: &PendingAlert,
    practice: &Practice,
    department: &Department,
    dashboard_url: &str,
) -> Vec<Delivery> {
    let words = match &alert.subject {
        AlertSubject::NewConversation(conversation) => {
            conversation_text(conversation, None, practice, department, dashboard_url)
        }
        AlertSubject::Transfer(t) => conversation_text(
            &t.conversation,
            Some(&t.transfer),
            practice,
            department,
            dashboard_url,
        ),
        AlertSubject::UnresolvedReminder { reminder } => {
            reminder_text(reminder, practice, department, dashboard_url)
        }
    };
    let Some(words) = words else {
        return Vec::new();
    };
    let alerts = &department.settings.alerts;
    let conversation_ids = alert.subject.conversation_ids();
    let delivery = |channel: DeliveryChannel, to: &str, text: &str, html: Option<&str>| Delivery {
        alert_id: alert.id.clone(),
        kind: alert.kind(),
        channel,
        to: to.to_owned(),
        subject: words.subject.clone(),
        text: text.to_owned(),
        html: html.map(str::to_owned),
        department_id: department.id.clone(),
        conversation_ids: conversation_ids.clone(),
        idempotency_key: format!("{}:{}:{to}", alert.id, channel_key(channel)),
    };
    let mut out: Vec<Delivery> = alerts
        .emails
        .iter()
        .map(|to| delivery(DeliveryChannel::Email, to, &words.text, Some(&words.html)))
        .collect();
    if let Some(sms) = words.sms.as_deref().filter(|_| sms_allowed(practice)) {
        out.extend(
            alerts
                .sms_numbers
                .iter()
                .map(|to| delivery(DeliveryChannel::Sms, to, sms, None)),
        );
    }
    out
}

/// The words of one alert, the same for every recipient.
struct AlertText {
    subject: String,
    /// The email's text part.
    text: String,
    /// The email's HTML part.
    html: String,
    /// The SMS; `None` when the alert is never texted (the reminder goes by email only).
    sms: Option<String>,
}

/// Practices outside the US and Canada get no SMS alerts.
fn sms_allowed(practice: &Practice) -> bool {
    matches!(practice.country.as_str(), "US" | "CA")
}

/// A new conversation's alert, or a transfer's (`transfer`); `None` when the department's alerts are off.
fn conversation_text(
    alert: &ConversationAlert,
    transfer: Option<&Transfer>,
    practice: &Practice,
    department: &Department,
    dashboard_url: &str,
) -> Option<AlertText> {
    if !department.settings.alerts.enabled {
        return None;
    }
    let dept = &department.settings.name;
    let link = format!(
        "{}/conversations/{}",
        dashboard_url.trim_end_matches('/'),
        alert.conversation_id
    );
    let channel = alert.channel.as_str();
    let client = &alert.client_id;
    let (subject, lead, sms_head) = match transfer {
        Some(t) => (
            format!("Conversation transferred to {dept}"),
            format!(
                "{} transferred a conversation to {dept}; it needs attention.",
                t.by
            ),
            format!(
                "{}: chat transferred to {dept} from {client}",
                practice.name
            ),
        ),
        None => (
            format!("New conversation in {dept}"),
            format!("A new conversation in {dept} needs attention."),
            format!(
                "{}: new {channel} chat in {dept} from {client}",
                practice.name
            ),
        ),
    };
    let note = transfer
        .and_then(|t| t.note.clone())
        .filter(|n| !n.trim().is_empty());
    let mut text = format!("{lead}\n\nClient: {client}\nChannel: {channel}\n");
    if !alert.preview.is_empty() {
        text.push_str(&format!("Last message: \"{}\"\n", alert.preview));
    }
    if let Some(note) = &note {
        text.push_str(&format!("Note: {note}\n"));
    }
    text.push_str(&format!("\nOpen the conversation: {link}\n\n"));
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
        "</table><p><a href=\"{}\">Open the conversation</a></p>",
        html_escape(&link),
    ));
    sign_off(&mut text, &mut html, practice, dept);
    Some(AlertText {
        subject,
        text,
        html,
        sms: Some(fit_sms(&sms_head, &alert.preview, &link)),
    })
}

/// The end-of-day reminder: every open conversation of the department, oldest first, in local time.
fn reminder_text(
    digest: &ReminderDigest,
    practice: &Practice,
    department: &Department,
    dashboard_url: &str,
) -> Option<AlertText> {
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
    text.push('\n');
    html.push_str("</table>");
    sign_off(&mut text, &mut html, practice, dept);
    Some(AlertText {
        subject,
        text,
        html,
        sms: None,
    })
}

/// The last line of every alert email: the practice and the department.
fn sign_off(text: &mut String, html: &mut String, practice: &Practice, dept: &str) {
    text.push_str(&format!("{} — {dept}\n", practice.name));
    html.push_str(&format!(
        "<p>{} &mdash; {}</p>",
        html_escape(&practice.name),
        html_escape(dept)
    ));
}

fn channel_key(channel: DeliveryChannel) -> &'static str {
    match channel {
        DeliveryChannel::Email => "email",
        DeliveryChannel::Sms => "sms",
    }
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
