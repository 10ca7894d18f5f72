//! Each MPP's request rate on the MPP API (`limits.mpp_requests_per_s`, DECISIONS 43): one
//! careless or hostile MPP must not take the PS's writer, and so the other MPPs' payments, for
//! itself. Counted per identified MPP (after `X-Caller-Name` was checked), in this process, with
//! the generic cell rate algorithm of `governor`: `mpp_requests_burst` at once, then the rate.
//! Each MPP has its own cell, so one over its limit never slows another.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The limiter, or none when the limit is off (the default), and how many requests of each key
/// it refused (for the metrics).
pub struct RequestRate(
    Option<DefaultKeyedRateLimiter<String>>,
    Mutex<BTreeMap<String, u64>>,
);

impl RequestRate {
    /// `per_s` requests a second for each MPP, `burst` at once (0: one second's worth); no
    /// limit when `per_s` is 0.
    pub fn new(per_s: u32, burst: u32) -> RequestRate {
        let Some(rate) = NonZeroU32::new(per_s) else {
            return RequestRate(None, Mutex::default());
        };
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        RequestRate(
            Some(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            )),
            Mutex::default(),
        )
    }

    /// Counts one request of `mpp`; false when it is over its limit (nothing of the request may
    /// be done then). The state kept is one cell per MPP of the catalog: only identified MPPs
    /// are counted.
    pub(crate) fn admit(&self, mpp: &str) -> bool {
        let admitted = match &self.0 {
            None => true,
            Some(limiter) => limiter.check_key(&mpp.to_owned()).is_ok(),
        };
        if !admitted {
            let mut refused = self.1.lock().unwrap_or_else(PoisonError::into_inner);
            match refused.get_mut(mpp) {
                Some(count) => *count += 1,
                None => {
                    refused.insert(mpp.to_owned(), 1);
                }
            }
        }
        admitted
    }

    /// The requests refused over the limit since the start, by key (only keys with a refusal).
    pub(crate) fn refused(&self) -> BTreeMap<String, u64> {
        self.1
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
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
        assert!(!limit.admit("demobank"));
        let refused = limit.refused();
        assert_eq!(refused.get("demobank"), Some(&2));
        assert_eq!(refused.get("demowallet"), None);
        assert!(off.refused().is_empty());
    }
}
