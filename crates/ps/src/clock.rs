//! Time as the PS sees it. Everything that expires or backs off asks an injected [`Clock`], so
//! tests move time forward instead of sleeping.

use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to; for tests and simulations.
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, by: SignedDuration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = now.saturating_add(by).unwrap_or(*now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A step of the wall clock worth an operator's look: NTP slews by far less, and a step this
/// large moves operations into other days' registers or past deadlines.
const STEP_SAID: SignedDuration = SignedDuration::from_secs(60);

/// Watches the PS's clock against the monotonic clock of the machine, which no one sets: a
/// step of the wall clock (a time source corrected, `date -s`, a machine resumed from a pause)
/// between two looks shows as a difference between how far each moved.
pub(crate) struct StepWatch {
    wall: Timestamp,
    monotonic: std::time::Instant,
}

impl StepWatch {
    pub(crate) fn new(now: Timestamp) -> StepWatch {
        StepWatch {
            wall: now,
            monotonic: std::time::Instant::now(),
        }
    }

    /// The step since the last look (forward positive), when it is more than a minute.
    pub(crate) fn step(&mut self, now: Timestamp) -> Option<SignedDuration> {
        self.step_at(now, std::time::Instant::now())
    }

    fn step_at(&mut self, now: Timestamp, monotonic: std::time::Instant) -> Option<SignedDuration> {
        let wall = self.wall.duration_until(now);
        let ran = SignedDuration::try_from(monotonic.saturating_duration_since(self.monotonic))
            .unwrap_or(SignedDuration::MAX);
        (self.wall, self.monotonic) = (now, monotonic);
        let step = wall.checked_sub(ran)?;
        (step.abs() > STEP_SAID).then_some(step)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_step_of_the_wall_clock_is_seen_and_steady_time_is_not() {
        let start = Timestamp::from_second(1_800_000_000).expect("a time");
        let mut watch = StepWatch::new(start);
        let t0 = watch.monotonic;
        let at = |s: i64| {
            start
                .checked_add(SignedDuration::from_secs(s))
                .expect("a time")
        };
        let after = |s: u64| t0 + Duration::from_secs(s);
        // Ten seconds on both: nothing; a few seconds of drift: nothing.
        assert_eq!(watch.step_at(at(10), after(10)), None);
        assert_eq!(watch.step_at(at(25), after(20)), None);
        // The wall clock an hour ahead of what ran, then set back.
        assert_eq!(
            watch.step_at(at(3_625), after(30)),
            Some(SignedDuration::from_secs(3_590))
        );
        assert_eq!(
            watch.step_at(at(35), after(40)),
            Some(SignedDuration::from_secs(-3_600))
        );
    }
}
