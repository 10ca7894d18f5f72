//! Each MPP's request rate on the MPP API (`limits.mpp_requests_per_s`, DECISIONS 43): one
//! careless or hostile MPP must not take the PS's writer, and so the other MPPs' payments, for
//! itself. Counted per identified MPP (after `X-Caller-Name` was checked), in this process, with
//! the generic cell rate algorithm of `governor`: `mpp_requests_burst` at once, then the rate.
//! Each MPP has its own cell, so one over its limit never slows another.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The limiter, or none when the limit is off (the default).
pub struct RequestRate(Option<DefaultKeyedRateLimiter<String>>);

impl RequestRate {
    /// `per_s` requests a second for each MPP, `burst` at once (0: one second's worth); no
    /// limit when `per_s` is 0.
    pub fn new(per_s: u32, burst: u32) -> RequestRate {
        let Some(rate) = NonZeroU32::new(per_s) else {
            return RequestRate(None);
        };
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        RequestRate(Some(RateLimiter::keyed(
            Quota::per_second(rate).allow_burst(burst),
        )))
    }

    /// Counts one request of `mpp`; false when it is over its limit (nothing of the request may
    /// be done then). The state kept is one cell per MPP of the catalog: only identified MPPs
    /// are counted.
    pub(crate) fn admit(&self, mpp: &str) -> bool {
        match &self.0 {
            None => true,
            Some(limiter) => limiter.check_key(&mpp.to_owned()).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_each_mpp_counted_apart() {
        let off = RequestRate::new(0, 5);
        assert!((0..1_000).all(|_| off.admit("demobank")));
        // One a second, three at once: the fourth at once is refused, another MPP is not.
        let limit = RequestRate::new(1, 3);
        assert!((0..3).all(|_| limit.admit("demobank")));
        assert!(!limit.admit("demobank"));
        assert!(limit.admit("demowallet"));
    }
}
