//! How notifyPayment is repeated until the PS answers (SPEC 4.3).

use std::time::Duration;

/// How notifyPayment is retried: delays grow from `delay_ms_initial` by doubling up to
/// `delay_ms_max`, each with up to 50 % random jitter; `attempts_max` bounds the attempts
/// (`None`, the default: until answered, as SPEC 4.3 asks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    delay_ms_initial: u64,
    delay_ms_max: u64,
    attempts_max: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            delay_ms_initial: 200,
            delay_ms_max: 10_000,
            attempts_max: None,
        }
    }
}

impl RetryPolicy {
    /// The same policy with other delays (the first delay, and the cap of the doubling).
    pub fn with_delays_ms(mut self, delay_ms_initial: u64, delay_ms_max: u64) -> RetryPolicy {
        self.delay_ms_initial = delay_ms_initial;
        self.delay_ms_max = delay_ms_max.max(delay_ms_initial);
        self
    }

    /// The same policy with a bound on the attempts (`None`: until answered). A bound of 0 is
    /// taken as 1: every call makes one attempt.
    pub fn with_attempts_max(mut self, attempts_max: Option<u32>) -> RetryPolicy {
        self.attempts_max = attempts_max.map(|n| n.max(1));
        self
    }

    /// The first delay, in milliseconds.
    pub fn delay_ms_initial(&self) -> u64 {
        self.delay_ms_initial
    }

    /// The longest delay, in milliseconds.
    pub fn delay_ms_max(&self) -> u64 {
        self.delay_ms_max
    }

    /// The bound on attempts, if any.
    pub fn attempts_max(&self) -> Option<u32> {
        self.attempts_max
    }

    /// True when `attempt` (counting from 1) may be followed by another.
    pub(crate) fn allows_after(&self, attempt: u32) -> bool {
        self.attempts_max.is_none_or(|max| attempt < max)
    }

    /// The delay before attempt `attempt + 1` (attempt counts from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .delay_ms_initial
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.delay_ms_max);
        let jitter = rand::random_range(0..=capped / 2);
        Duration::from_millis(capped / 2 + jitter)
    }
}
