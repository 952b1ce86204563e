//! What became of a reply sent as a text (SMS or WhatsApp): its `delivery`, and the one rule that applies
//! an event to it.
//!
//! Events come from three places, in any order, late or twice: the sender's claim and its outcome
//! (`sending`, then `sent` / `failed` / `unconfirmed`), the SMS configuration set's events and WhatsApp's
//! statuses. [`Delivery::apply`] makes the result independent of that order: the status only moves up the
//! ranking queued < sending < sent < unconfirmed < failed < delivered < read, so a late `sent` never
//! downgrades `delivered` (Chatwoot #14529), an early `delivered` is not lost when the send's own answer
//! comes after it (postmangovsg #2151), a failure's reason stays until a delivery (Chatwoot #9542), and a
//! delivery confirmed after a failure wins: the owner has the text, a retry would send it twice.
//!
//! A staff retry ([`Delivery::retry`]) is the only way down; it starts a new attempt, and events of an
//! older attempt then count only when they confirm a delivery.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Channel;
use crate::error::{DomainError, DomainResult, InvalidCode};

/// Where a text reply stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Stored with the conversation change; the sender has not claimed it yet.
    Queued,
    /// Claimed by a sender, which is calling the provider (once).
    Sending,
    /// The provider took it.
    Sent,
    Delivered,
    /// WhatsApp only: the owner opened it.
    Read,
    /// The provider refused it or could not deliver it (`reason` says why).
    Failed,
    /// The provider may or may not have taken it (the call timed out): never resent without a staff retry.
    Unconfirmed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 7] = [
        DeliveryStatus::Queued,
        DeliveryStatus::Sending,
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Read,
        DeliveryStatus::Failed,
        DeliveryStatus::Unconfirmed,
    ];

    /// The ranking events climb. A failure ranks above `unconfirmed` (it says more: the provider answered)
    /// and both above `sent` (a carrier's refusal comes after the provider took it), below `delivered`.
    pub fn rank(self) -> u8 {
        match self {
            DeliveryStatus::Queued => 0,
            DeliveryStatus::Sending => 1,
            DeliveryStatus::Sent => 2,
            DeliveryStatus::Unconfirmed => 3,
            DeliveryStatus::Failed => 4,
            DeliveryStatus::Delivered => 5,
            DeliveryStatus::Read => 6,
        }
    }

    /// Reached the owner: what even an older attempt's event may report.
    pub fn reached_the_owner(self) -> bool {
        matches!(self, DeliveryStatus::Delivered | DeliveryStatus::Read)
    }

    /// Not yet answered by a provider: waiting for a sender, or with one. What the sweep of stuck texts
    /// looks at.
    pub fn in_flight(self) -> bool {
        matches!(self, DeliveryStatus::Queued | DeliveryStatus::Sending)
    }

    /// What a staff retry may start again from.
    pub fn retryable(self) -> bool {
        matches!(self, DeliveryStatus::Failed | DeliveryStatus::Unconfirmed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Unconfirmed => "unconfirmed",
        }
    }
}

/// Why a text failed, in words staff can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The number opted out of the practice's texts (STOP, or the provider's own refusal).
    OptedOut,
    InvalidNumber,
    CarrierUnreachable,
    /// The provider gave up before the carrier took it (the message's time to live ran out).
    Expired,
    /// The provider kept throttling us past the sender's patience.
    ThrottledTooLong,
    /// A carrier or the provider's filters blocked it.
    Blocked,
    /// WhatsApp: more than 24 hours since the owner's last message.
    WindowClosed,
    /// Any other refusal of the provider.
    ProviderError,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::OptedOut => "opted_out",
            FailureReason::InvalidNumber => "invalid_number",
            FailureReason::CarrierUnreachable => "carrier_unreachable",
            FailureReason::Expired => "expired",
            FailureReason::ThrottledTooLong => "throttled_too_long",
            FailureReason::Blocked => "blocked",
            FailureReason::WindowClosed => "window_closed",
            FailureReason::ProviderError => "provider_error",
        }
    }
}

/// A message's `delivery`: `{status, reason, updated_at, segments}` in the contract, plus the attempt the
/// status belongs to (1 for the first send, +1 per staff retry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub status: DeliveryStatus,
    pub reason: Option<FailureReason>,
    pub updated_at: DateTime<Utc>,
    /// SMS parts the body takes; `None` on WhatsApp.
    pub segments: Option<u32>,
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

fn first_attempt() -> u32 {
    1
}

/// One thing learned about a send: from the sender or the provider's event destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryEvent {
    pub status: DeliveryStatus,
    /// Set with `failed`; ignored otherwise.
    pub reason: Option<FailureReason>,
    pub at: DateTime<Utc>,
    /// The attempt it is about (carried in the send's context); `None` when the provider did not echo it.
    pub attempt: Option<u32>,
}

impl DeliveryEvent {
    pub fn new(status: DeliveryStatus, at: DateTime<Utc>, attempt: Option<u32>) -> Self {
        DeliveryEvent {
            status,
            reason: None,
            at,
            attempt,
        }
    }

    pub fn failed(reason: FailureReason, at: DateTime<Utc>, attempt: Option<u32>) -> Self {
        DeliveryEvent {
            status: DeliveryStatus::Failed,
            reason: Some(reason),
            at,
            attempt,
        }
    }
}

impl Delivery {
    /// A text reply just stored: waiting for the sender.
    pub fn queued(segments: Option<u32>, now: DateTime<Utc>) -> Self {
        Delivery {
            status: DeliveryStatus::Queued,
            reason: None,
            updated_at: now,
            segments,
            attempt: 1,
        }
    }

    /// The delivery after `event`, or `None` when the event changes nothing (late, repeated, lower, or of an
    /// older attempt short of a delivery). The one rule every store applies, under a condition on the
    /// status it read (so two events applied at once cannot both win).
    pub fn apply(&self, event: &DeliveryEvent) -> Option<Delivery> {
        let stale_attempt = event.attempt.is_some_and(|a| a != self.attempt);
        if stale_attempt && !event.status.reached_the_owner() {
            return None;
        }
        if event.status.rank() <= self.status.rank() {
            return None;
        }
        let reason = match event.status {
            DeliveryStatus::Failed => Some(event.reason.unwrap_or(FailureReason::ProviderError)),
            // Only a delivery erases a failure's reason: the owner has the text.
            s if s.reached_the_owner() => None,
            _ => self.reason,
        };
        Some(Delivery {
            status: event.status,
            reason,
            updated_at: event.at,
            segments: self.segments,
            attempt: self.attempt,
        })
    }

    /// A staff retry of a failed or unconfirmed text: queued again as a new attempt (409 `not_retryable`
    /// otherwise: what was sent or is being sent is never sent again).
    pub fn retry(&self, now: DateTime<Utc>) -> DomainResult<Delivery> {
        if !self.status.retryable() {
            return Err(DomainError::conflict(
                crate::error::ConflictCode::NotRetryable,
                format!(
                    "only a failed or unconfirmed text can be retried; this one is {}",
                    self.status.as_str()
                ),
            ));
        }
        Ok(Delivery {
            status: DeliveryStatus::Queued,
            reason: None,
            updated_at: now.max(self.updated_at),
            segments: self.segments,
            attempt: self.attempt + 1,
        })
    }
}

/// The most characters an SMS reply may have (End User Messaging SMS's limit).
pub const MAX_SMS_CHARS: usize = 1600;

/// A reply's body fits the channel it goes out on: an SMS at most [`MAX_SMS_CHARS`] (422 `too_large`).
pub fn fits_the_channel(channel: Channel, body: &str) -> DomainResult<()> {
    if channel == Channel::Sms && body.chars().count() > MAX_SMS_CHARS {
        return Err(DomainError::invalid(
            InvalidCode::TooLarge,
            "body",
            format!("an SMS reply is at most {MAX_SMS_CHARS} characters"),
        ));
    }
    Ok(())
}

/// GSM 03.38 basic character set: one septet each.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Its extension table: an escape and the character, two septets each.
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{000C}";

/// How many SMS parts `body` takes: 160 GSM-7 septets in one part, 153 per part when split; otherwise
/// UCS-2, 70 UTF-16 units in one part, 67 per part when split.
pub fn sms_segments(body: &str) -> u32 {
    let septets: Option<usize> = body
        .chars()
        .map(|c| {
            if GSM7_BASIC.contains(c) {
                Some(1)
            } else if GSM7_EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (units, single, part) = match septets {
        Some(n) => (n, 160, 153),
        None => (body.encode_utf16().count(), 70, 67),
    };
    if units <= single {
        1
    } else {
        units.div_ceil(part) as u32
    }
}

/// What an inbound text's body asks of the practice's texts, when it is exactly a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptKeyword {
    /// STOP and its sister keywords: no more texts from this practice.
    OptOut,
    /// START / UNSTOP: texts again.
    OptIn,
}

/// The carriers' opt-out keywords (API.md "Opt-out").
pub const OPT_OUT_KEYWORDS: [&str; 11] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "OPT-OUT",
    "REMOVE",
    "ARRET",
    "TD",
];
pub const OPT_IN_KEYWORDS: [&str; 2] = ["START", "UNSTOP"];

/// The keyword `body` is (any case, surrounding spaces ignored), if it is exactly one.
pub fn opt_keyword(body: &str) -> Option<OptKeyword> {
    let word = body.trim().to_uppercase();
    if OPT_OUT_KEYWORDS.contains(&word.as_str()) {
        Some(OptKeyword::OptOut)
    } else if OPT_IN_KEYWORDS.contains(&word.as_str()) {
        Some(OptKeyword::OptIn)
    } else {
        None
    }
}

/// What an SMS configuration-set event type (`messageStatus`'s event, e.g. `TEXT_DELIVERED`) says, or
/// `None` for events that say nothing about where the text stands (`TEXT_QUEUED`, `TEXT_UNKNOWN`, …).
pub fn sms_event_status(event_type: &str) -> Option<(DeliveryStatus, Option<FailureReason>)> {
    use DeliveryStatus::{Delivered, Failed, Sent};
    use FailureReason::*;
    Some(match event_type {
        "TEXT_SENT" | "TEXT_SUCCESSFUL" => (Sent, None),
        "TEXT_DELIVERED" => (Delivered, None),
        "TEXT_BLOCKED" | "TEXT_CARRIER_BLOCKED" | "TEXT_SPAM" | "TEXT_PROTECT_BLOCKED" => {
            (Failed, Some(Blocked))
        }
        "TEXT_CARRIER_UNREACHABLE" | "TEXT_UNREACHABLE" => (Failed, Some(CarrierUnreachable)),
        "TEXT_TTL_EXPIRED" => (Failed, Some(Expired)),
        "TEXT_INVALID" => (Failed, Some(InvalidNumber)),
        "TEXT_INVALID_MESSAGE" => (Failed, Some(ProviderError)),
        "TEXT_OPTED_OUT" => (Failed, Some(OptedOut)),
        _ => return None,
    })
}

/// What a WhatsApp status (`statuses[].status` of Meta's webhook) says.
pub fn whatsapp_event_status(status: &str) -> Option<(DeliveryStatus, Option<FailureReason>)> {
    Some(match status {
        "sent" => (DeliveryStatus::Sent, None),
        "delivered" => (DeliveryStatus::Delivered, None),
        "read" => (DeliveryStatus::Read, None),
        "failed" => (DeliveryStatus::Failed, Some(FailureReason::ProviderError)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap() + Duration::seconds(s)
    }

    fn run(events: &[DeliveryEvent]) -> Delivery {
        events.iter().fold(Delivery::queued(Some(1), t(0)), |d, e| {
            d.apply(e).unwrap_or(d)
        })
    }

    #[test]
    fn chatwoot_14529_a_late_sent_never_downgrades_delivered() {
        let d = run(&[
            DeliveryEvent::new(DeliveryStatus::Sending, t(1), Some(1)),
            DeliveryEvent::new(DeliveryStatus::Delivered, t(3), Some(1)),
            DeliveryEvent::new(DeliveryStatus::Sent, t(2), Some(1)),
        ]);
        assert_eq!(d.status, DeliveryStatus::Delivered);
        assert_eq!(d.updated_at, t(3));
    }

    #[test]
    fn postmangovsg_2151_an_early_status_before_the_send_answer_is_kept() {
        // The provider's delivery event arrives before the sender records its own `sent`.
        let d = run(&[
            DeliveryEvent::new(DeliveryStatus::Sending, t(1), Some(1)),
            DeliveryEvent::new(DeliveryStatus::Delivered, t(2), Some(1)),
            DeliveryEvent::new(DeliveryStatus::Sent, t(3), Some(1)),
        ]);
        assert_eq!(d.status, DeliveryStatus::Delivered);
    }

    #[test]
    fn chatwoot_9542_a_failure_reason_is_not_erased_by_a_later_event() {
        let d = run(&[
            DeliveryEvent::failed(FailureReason::CarrierUnreachable, t(2), Some(1)),
            DeliveryEvent::new(DeliveryStatus::Sent, t(3), Some(1)),
            DeliveryEvent::new(DeliveryStatus::Unconfirmed, t(4), Some(1)),
        ]);
        assert_eq!(d.status, DeliveryStatus::Failed);
        assert_eq!(d.reason, Some(FailureReason::CarrierUnreachable));
    }

    #[test]
    fn a_delivery_confirmed_after_a_failure_wins() {
        let d = run(&[
            DeliveryEvent::failed(FailureReason::Expired, t(2), Some(1)),
            DeliveryEvent::new(DeliveryStatus::Delivered, t(3), Some(1)),
        ]);
        assert_eq!(d.status, DeliveryStatus::Delivered);
        assert_eq!(d.reason, None);
        assert!(d.retry(t(4)).is_err(), "a delivered text is not retryable");
    }

    #[test]
    fn a_failure_reported_after_delivered_is_ignored() {
        let d = run(&[
            DeliveryEvent::new(DeliveryStatus::Delivered, t(2), Some(1)),
            DeliveryEvent::failed(FailureReason::Blocked, t(3), Some(1)),
        ]);
        assert_eq!(d.status, DeliveryStatus::Delivered);
        assert_eq!(d.reason, None);
    }

    #[test]
    fn chatwoot_14120_retry_starts_a_new_attempt_and_old_failures_do_not_touch_it() {
        let failed = run(&[DeliveryEvent::failed(
            FailureReason::ProviderError,
            t(2),
            Some(1),
        )]);
        let again = failed.retry(t(5)).unwrap();
        assert_eq!(again.status, DeliveryStatus::Queued);
        assert_eq!(again.attempt, 2);
        assert_eq!(again.reason, None);
        // A late, repeated failure of attempt 1 leaves attempt 2 queued for its send.
        assert_eq!(
            again.apply(&DeliveryEvent::failed(
                FailureReason::ProviderError,
                t(6),
                Some(1)
            )),
            None
        );
        // But attempt 1 reaching the owner after all is news staff need (do not send a third).
        let delivered = again
            .apply(&DeliveryEvent::new(
                DeliveryStatus::Delivered,
                t(7),
                Some(1),
            ))
            .unwrap();
        assert_eq!(delivered.status, DeliveryStatus::Delivered);
    }

    #[test]
    fn only_failed_and_unconfirmed_are_retryable() {
        for s in DeliveryStatus::ALL {
            let d = Delivery {
                status: s,
                ..Delivery::queued(None, t(0))
            };
            assert_eq!(d.retry(t(1)).is_ok(), s.retryable(), "{s:?}");
        }
    }

    fn event() -> impl Strategy<Value = DeliveryEvent> {
        let status = prop::sample::select(&DeliveryStatus::ALL[1..]);
        let reason = prop::sample::select(&[
            FailureReason::Blocked,
            FailureReason::Expired,
            FailureReason::OptedOut,
        ]);
        (status, reason, 1i64..100).prop_map(|(status, reason, s)| DeliveryEvent {
            status,
            reason: (status == DeliveryStatus::Failed).then_some(reason),
            at: t(s),
            attempt: Some(1),
        })
    }

    proptest! {
        /// Any order, any repeats: the final status is the furthest reached; a failure keeps a reason it was
        /// given unless a delivery came; applying any of them again changes nothing.
        #[test]
        fn events_in_any_order_and_repeated_end_at_the_furthest(
            events in prop::collection::vec(event(), 1..12),
            seed in any::<u64>(),
        ) {
            let mut shuffled = events.clone();
            // Repeat some and permute: a deterministic shuffle from the seed.
            shuffled.extend(events.iter().take((seed % 4) as usize).cloned());
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            let a = run(&events);
            let b = run(&shuffled);
            let furthest = events.iter().map(|e| e.status).max_by_key(|s| s.rank()).unwrap();
            prop_assert_eq!(a.status, furthest);
            prop_assert_eq!(b.status, furthest);
            for d in [&a, &b] {
                if d.status == DeliveryStatus::Failed {
                    let given: Vec<_> = events.iter().filter_map(|e| e.reason).collect();
                    prop_assert!(d.reason.is_some_and(|r| given.contains(&r)));
                } else {
                    prop_assert_eq!(d.reason, None);
                }
            }
            // Applying any event again to the result changes nothing.
            for e in &shuffled {
                prop_assert_eq!(b.apply(e), None);
            }
        }
    }

    #[test]
    fn sms_segments_count_gsm7_and_ucs2_parts() {
        assert_eq!(sms_segments(&"a".repeat(160)), 1);
        assert_eq!(sms_segments(&"a".repeat(161)), 2);
        assert_eq!(sms_segments(&"a".repeat(306)), 2);
        assert_eq!(sms_segments(&"a".repeat(307)), 3);
        // Extension characters take two septets.
        assert_eq!(sms_segments(&"€".repeat(80)), 1);
        assert_eq!(sms_segments(&"€".repeat(81)), 2);
        // One character outside GSM-7 makes the whole text UCS-2.
        assert_eq!(sms_segments(&format!("{}ł", "a".repeat(69))), 1);
        assert_eq!(sms_segments(&format!("{}ł", "a".repeat(70))), 2);
        assert_eq!(sms_segments(&"ł".repeat(134)), 2);
        assert_eq!(sms_segments(&"ł".repeat(135)), 3);
        // An emoji is two UTF-16 units.
        assert_eq!(sms_segments(&"🐶".repeat(35)), 1);
        assert_eq!(sms_segments(&"🐶".repeat(36)), 2);
    }

    #[test]
    fn sms_bodies_are_at_most_1600_characters() {
        assert!(fits_the_channel(Channel::Sms, &"a".repeat(1600)).is_ok());
        assert!(fits_the_channel(Channel::App, &"a".repeat(1601)).is_ok());
        let err = fits_the_channel(Channel::Sms, &"a".repeat(1601)).unwrap_err();
        assert!(matches!(
            err,
            DomainError::Invalid {
                code: InvalidCode::TooLarge,
                ..
            }
        ));
    }

    #[test]
    fn opt_out_keywords_exactly_any_case() {
        for k in OPT_OUT_KEYWORDS {
            assert_eq!(opt_keyword(k), Some(OptKeyword::OptOut));
            assert_eq!(
                opt_keyword(&format!("  {}  ", k.to_lowercase())),
                Some(OptKeyword::OptOut)
            );
        }
        assert_eq!(opt_keyword("Start"), Some(OptKeyword::OptIn));
        assert_eq!(opt_keyword(" unstop "), Some(OptKeyword::OptIn));
        assert_eq!(opt_keyword("please stop"), None);
        assert_eq!(opt_keyword("STOP!"), None);
        assert_eq!(opt_keyword("stopp"), None);
    }

    #[test]
    fn sms_events_map_to_statuses() {
        assert_eq!(
            sms_event_status("TEXT_DELIVERED"),
            Some((DeliveryStatus::Delivered, None))
        );
        assert_eq!(
            sms_event_status("TEXT_CARRIER_UNREACHABLE"),
            Some((
                DeliveryStatus::Failed,
                Some(FailureReason::CarrierUnreachable)
            ))
        );
        assert_eq!(sms_event_status("TEXT_QUEUED"), None);
        assert_eq!(
            whatsapp_event_status("read"),
            Some((DeliveryStatus::Read, None))
        );
    }
}
