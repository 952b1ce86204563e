//! Per-client rate limits of chat (app and web, role `client`): a client that writes faster than a person
//! chats is answered 429 `rate_limited` with `Retry-After`, and nothing of that message is stored. Staff,
//! admins and the texting gateway are never limited (a pet owner's text is never refused).
//!
//! Each limit is a fixed window that starts at the first message it counts: at most `max` in the
//! `window_secs` from there, then a new window at the next message. The counters live on one record per
//! (practice, client), read with the routing context (the same read) and written in the same atomic write as
//! the message, on the condition that it is still the version read: concurrent messages of one client
//! cannot pass the limit together.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};

/// At most `max` in `window_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window_secs: u32,
}

/// The limits a client's chat meets (configuration: `adapters::config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRateLimits {
    /// New conversations a client may start (a client has one open at a time, so this counts the ones
    /// started again after staff ended the last).
    pub new_conversations: Limit,
    /// Messages a client may send (into its one open conversation, or starting one).
    pub messages: Limit,
}

impl Default for ClientRateLimits {
    /// A person chatting: 3 new conversations in 10 minutes, 30 messages a minute.
    fn default() -> Self {
        ClientRateLimits {
            new_conversations: Limit {
                max: 3,
                window_secs: 600,
            },
            messages: Limit {
                max: 30,
                window_secs: 60,
            },
        }
    }
}

/// One window's count: `count` counted since the window opened, until `ends_at` (epoch seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCount {
    pub ends_at: i64,
    pub count: u32,
}

impl WindowCount {
    /// This window with one more counted at `now`, or the seconds until it ends when it is full.
    fn count_one(self, limit: Limit, now: i64) -> Result<WindowCount, u32> {
        if self.ends_at <= now {
            return Ok(WindowCount {
                ends_at: now + i64::from(limit.window_secs),
                count: 1,
            });
        }
        if self.count >= limit.max {
            return Err(u32::try_from(self.ends_at - now).unwrap_or(u32::MAX));
        }
        Ok(WindowCount {
            count: self.count + 1,
            ..self
        })
    }
}

/// A client's counters in a practice, as stored. `version` grows by one with each write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRate {
    pub client_id: String,
    pub version: u64,
    #[serde(default)]
    pub new_conversations: WindowCount,
    #[serde(default)]
    pub messages: WindowCount,
}

impl ClientRate {
    /// When the record is of no more use (both windows over): the DynamoDB TTL, epoch seconds.
    pub fn expires_at(&self) -> i64 {
        self.new_conversations.ends_at.max(self.messages.ends_at)
    }
}

/// What a message's write does to its client's counters: written only if the record is still at
/// `read_version` (`None`: there was none), else the write fails as a lost race and is read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateUpdate {
    pub read_version: Option<u64>,
    pub next: ClientRate,
}

/// Counts one message of `client_id` at `now` (one new conversation too when it starts one) against
/// `limits`, from the record `read`. 429 `rate_limited` when a window is full, with the seconds until the
/// last full one ends (at least 1).
pub fn count_message(
    limits: &ClientRateLimits,
    client_id: &str,
    read: Option<&ClientRate>,
    starts_conversation: bool,
    now: DateTime<Utc>,
) -> DomainResult<RateUpdate> {
    let at = now.timestamp();
    let current = read.cloned().unwrap_or_else(|| ClientRate {
        client_id: client_id.to_owned(),
        ..ClientRate::default()
    });
    let messages = current.messages.count_one(limits.messages, at);
    let new_conversations = if starts_conversation {
        current
            .new_conversations
            .count_one(limits.new_conversations, at)
    } else {
        Ok(current.new_conversations)
    };
    match (messages, new_conversations) {
        (Ok(messages), Ok(new_conversations)) => Ok(RateUpdate {
            read_version: read.map(|r| r.version),
            next: ClientRate {
                client_id: client_id.to_owned(),
                version: current.version + 1,
                new_conversations,
                messages,
            },
        }),
        (messages, conversations) => {
            let wait = messages
                .err()
                .unwrap_or(0)
                .max(conversations.err().unwrap_or(0));
            let what = if conversations.is_err() {
                format!(
                    "at most {} new conversations in {} minutes",
                    limits.new_conversations.max,
                    limits.new_conversations.window_secs.div_ceil(60)
                )
            } else {
                format!(
                    "at most {} messages in {} seconds",
                    limits.messages.max, limits.messages.window_secs
                )
            };
            Err(DomainError::RateLimited {
                retry_after_secs: wait.max(1),
                message: format!("too many messages: {what}; try again in {} s", wait.max(1)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn limits() -> ClientRateLimits {
        ClientRateLimits {
            new_conversations: Limit {
                max: 2,
                window_secs: 600,
            },
            messages: Limit {
                max: 3,
                window_secs: 60,
            },
        }
    }

    fn retry_after(e: DomainError) -> u32 {
        match e {
            DomainError::RateLimited {
                retry_after_secs, ..
            } => retry_after_secs,
            other => panic!("not rate limited: {other:?}"),
        }
    }

    #[test]
    fn a_window_holds_max_then_refuses_until_it_ends_then_starts_again() {
        let l = limits();
        let mut rate: Option<ClientRate> = None;
        for (k, t) in [0, 10, 20].into_iter().enumerate() {
            let u = count_message(&l, "c", rate.as_ref(), false, at(t)).unwrap();
            assert_eq!(u.read_version, rate.as_ref().map(|r| r.version));
            assert_eq!(u.next.messages.count, k as u32 + 1);
            assert_eq!(
                u.next.messages.ends_at,
                at(60).timestamp(),
                "the window starts at the first"
            );
            rate = Some(u.next);
        }
        let e = count_message(&l, "c", rate.as_ref(), false, at(45)).unwrap_err();
        assert_eq!(retry_after(e), 15);
        let e = count_message(&l, "c", rate.as_ref(), false, at(59)).unwrap_err();
        assert_eq!(retry_after(e), 1);
        // The window ends at 60: the next message opens a new one.
        let u = count_message(&l, "c", rate.as_ref(), false, at(60)).unwrap();
        assert_eq!(
            u.next.messages,
            WindowCount {
                ends_at: at(120).timestamp(),
                count: 1
            }
        );
        assert_eq!(u.next.version, 4);
    }

    #[test]
    fn new_conversations_count_in_their_own_window_and_the_longer_wait_is_told() {
        let l = limits();
        let first = count_message(&l, "c", None, true, at(0)).unwrap().next;
        let second = count_message(&l, "c", Some(&first), true, at(100))
            .unwrap()
            .next;
        assert_eq!(second.new_conversations.count, 2);
        assert_eq!(
            second.messages.count, 1,
            "the message window of the first ended at 60"
        );
        let e = count_message(&l, "c", Some(&second), true, at(200)).unwrap_err();
        assert_eq!(retry_after(e), 400, "the conversation window ends at 600");
        // Joining the open conversation is still fine: only messages count.
        let joined = count_message(&l, "c", Some(&second), false, at(200))
            .unwrap()
            .next;
        assert_eq!(joined.new_conversations, second.new_conversations);
        assert_eq!(joined.expires_at(), at(600).timestamp());
    }
}
