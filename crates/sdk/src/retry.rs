//! How notifyPayment is repeated until the PS answers (SPEC 4.3).

use std::time::Duration;

/// How notifyPayment is retried: delays grow from `delay_ms_initial` by doubling up to
/// `delay_ms_max`, each with up to 50 % random jitter, and are never shorter than a
/// `Retry-After` the answer carried, up to `delay_ms_max` (a PS asks for one second with its 503s;
/// something in front of it that asks for an hour is not waited out past the PS's confirmation
/// window, where a payable purchase would expire); `attempts_max` bounds the
/// attempts and `elapsed_ms_max` the time (`None`, the default for both: until answered, as
/// SPEC 4.3 asks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    delay_ms_initial: u64,
    delay_ms_max: u64,
    attempts_max: Option<u32>,
    elapsed_ms_max: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            delay_ms_initial: 200,
            delay_ms_max: 10_000,
            attempts_max: None,
            elapsed_ms_max: None,
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

    /// The same policy with a bound on the time from the first attempt (`None`: until
    /// answered): no attempt starts after it has passed, and the call ends with
    /// [`Outcome::NotKnownYet`](crate::Outcome::NotKnownYet) — keep the debit and repeat later
    /// with the reply's X-Request-ID. An attempt under way is not cut short (that is the
    /// request timeout's job). The [`Driver`](crate::pending::Driver) ignores it, as it ignores
    /// `attempts_max`.
    pub fn with_elapsed_ms_max(mut self, elapsed_ms_max: Option<u64>) -> RetryPolicy {
        self.elapsed_ms_max = elapsed_ms_max;
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

    /// The bound on the time from the first attempt, if any, in milliseconds.
    pub fn elapsed_ms_max(&self) -> Option<u64> {
        self.elapsed_ms_max
    }

    /// True when `attempt` (counting from 1) may be followed by another.
    pub(crate) fn allows_after(&self, attempt: u32) -> bool {
        self.attempts_max.is_none_or(|max| attempt < max)
    }

    /// True when an attempt that would start `elapsed` after the first is still allowed.
    pub(crate) fn allows_at(&self, elapsed: Duration) -> bool {
        self.elapsed_ms_max
            .is_none_or(|max| elapsed <= Duration::from_millis(max))
    }

    /// The wait before attempt `attempt + 1` when the last answer asked for `retry_after`: the
    /// policy's [`delay`](RetryPolicy::delay), or the `Retry-After` (up to `delay_ms_max`) when
    /// that is longer.
    pub(crate) fn delay_after(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let asked = self.honoured(retry_after).unwrap_or(Duration::ZERO);
        self.delay(attempt).max(asked)
    }

    /// The part of a `Retry-After` this policy waits out: at most `delay_ms_max`.
    pub(crate) fn honoured(&self, retry_after: Option<Duration>) -> Option<Duration> {
        retry_after.map(|after| after.min(Duration::from_millis(self.delay_ms_max)))
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

#[cfg(test)]
mod tests {
    use super::RetryPolicy;
    use std::time::Duration;

    #[test]
    fn a_retry_after_is_waited_out_up_to_the_longest_delay() {
        let policy = RetryPolicy::default();
        let second = Duration::from_secs(1);
        assert_eq!(policy.delay_after(1, Some(second)), second);
        // An hour asked for is the policy's longest delay, 10 s.
        let hour = Duration::from_secs(3_600);
        assert_eq!(policy.delay_after(1, Some(hour)), Duration::from_secs(10));
        assert_eq!(policy.honoured(Some(hour)), Some(Duration::from_secs(10)));
        // Shorter than the policy's own delay, or none: the policy's.
        let short = RetryPolicy::default().with_delays_ms(400, 400);
        for asked in [None, Some(Duration::ZERO), Some(Duration::from_millis(100))] {
            let delay = short.delay_after(1, asked);
            assert!(delay >= Duration::from_millis(200) && delay <= Duration::from_millis(400));
        }
    }
}
