//! The configuration's times as typed durations, converted here once: the TOML keys stay numbers
//! with their unit last (`poll_interval_ms`, `alert_after_s`, documented in
//! docs/configuration.md), and every use site reads a ready `Duration` (for timers and timeouts)
//! or `SignedDuration` (for instants of the clock) instead of converting, with its own fallback.
//!
//! Validation at load keeps every setting far below the bounds of the conversions; a value past
//! them (no valid configuration has one) saturates instead of failing.

use std::time::Duration;

use jiff::SignedDuration;

use super::registers::RegistersConfig;
use super::{LimitsConfig, PaymentsConfig, RefundsConfig};

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn signed_millis(ms: u64) -> SignedDuration {
    SignedDuration::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn signed_secs(s: u64) -> SignedDuration {
    SignedDuration::from_secs(i64::try_from(s).unwrap_or(i64::MAX))
}

impl PaymentsConfig {
    /// `confirm_window_s`.
    pub fn confirm_window(&self) -> SignedDuration {
        signed_secs(self.confirm_window_s.into())
    }

    /// `confirm_grace_s`.
    pub fn confirm_grace(&self) -> SignedDuration {
        signed_secs(self.confirm_grace_s.into())
    }

    /// `expiry_sweep_interval_ms`.
    pub fn expiry_sweep_interval(&self) -> Duration {
        millis(self.expiry_sweep_interval_ms)
    }

    /// `amount_callback_timeout_ms`, or a service's own `timeout_ms` when it sets one.
    pub fn amount_callback_timeout(&self, service_ms: Option<u64>) -> Duration {
        millis(service_ms.unwrap_or(self.amount_callback_timeout_ms))
    }
}

impl RefundsConfig {
    /// `return_qr_scan_wait_s`.
    pub fn return_qr_scan_wait(&self) -> SignedDuration {
        signed_secs(self.return_qr_scan_wait_s.into())
    }

    /// `return_qr_use_window_s`.
    pub fn return_qr_use_window(&self) -> SignedDuration {
        signed_secs(self.return_qr_use_window_s.into())
    }

    /// `retry_delay_ms_initial`.
    pub fn retry_delay_initial(&self) -> SignedDuration {
        signed_millis(self.retry_delay_ms_initial)
    }

    /// `retry_delay_ms_max`.
    pub fn retry_delay_max(&self) -> SignedDuration {
        signed_millis(self.retry_delay_ms_max)
    }

    /// `request_timeout_ms`.
    pub fn request_timeout(&self) -> Duration {
        millis(self.request_timeout_ms)
    }

    /// `poll_interval_ms`.
    pub fn poll_interval(&self) -> Duration {
        millis(self.poll_interval_ms)
    }

    /// `alert_after_s`.
    pub fn alert_after(&self) -> SignedDuration {
        signed_secs(self.alert_after_s)
    }

    /// `lease_ms`.
    pub fn lease(&self) -> SignedDuration {
        signed_millis(self.lease_ms)
    }

    /// `pos_wait_ms`.
    pub fn pos_wait(&self) -> Duration {
        millis(self.pos_wait_ms)
    }
}

impl LimitsConfig {
    /// `pos_replay_retention_s`.
    pub fn pos_replay_retention(&self) -> SignedDuration {
        signed_secs(self.pos_replay_retention_s)
    }

    /// `header_timeout_ms`.
    pub fn header_timeout(&self) -> Duration {
        millis(self.header_timeout_ms)
    }

    /// `body_timeout_ms`.
    pub fn body_timeout(&self) -> Duration {
        millis(self.body_timeout_ms)
    }

    /// `header_timeout_at_cap_ms`, never longer than `header_timeout_ms` (an operator who
    /// shortened the one need not shorten the other).
    pub fn header_timeout_at_cap(&self) -> Duration {
        millis(self.header_timeout_at_cap_ms.min(self.header_timeout_ms))
    }

    /// `idle_timeout_ms`.
    pub fn idle_timeout(&self) -> Duration {
        millis(self.idle_timeout_ms)
    }

    /// `send_timeout_ms`.
    pub fn send_timeout(&self) -> Duration {
        millis(self.send_timeout_ms)
    }

    /// `tls_files_check_interval_ms`.
    pub fn tls_files_check_interval(&self) -> Duration {
        millis(self.tls_files_check_interval_ms)
    }

    /// `catalog_check_interval_ms`.
    pub fn catalog_check_interval(&self) -> Duration {
        millis(self.catalog_check_interval_ms)
    }
}

impl RegistersConfig {
    /// `smtp_timeout_ms`.
    pub fn smtp_timeout(&self) -> Duration {
        millis(self.smtp_timeout_ms)
    }

    /// `poll_interval_ms`.
    pub fn poll_interval(&self) -> Duration {
        millis(self.poll_interval_ms)
    }

    /// `retry_delay_ms_initial`.
    pub fn retry_delay_initial(&self) -> SignedDuration {
        signed_millis(self.retry_delay_ms_initial)
    }

    /// `retry_delay_ms_max`.
    pub fn retry_delay_max(&self) -> SignedDuration {
        signed_millis(self.retry_delay_ms_max)
    }

    /// `alert_after_s`.
    pub fn alert_after(&self) -> SignedDuration {
        signed_secs(self.alert_after_s)
    }

    /// `lease_ms`.
    pub fn lease(&self) -> SignedDuration {
        signed_millis(self.lease_ms)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn the_defaults_read_as_their_documented_durations() {
        let config = Config::default();
        assert_eq!(config.refunds.lease().as_millis(), 60_000);
        assert_eq!(config.refunds.alert_after().as_secs(), 86_400);
        assert_eq!(config.limits.body_timeout().as_millis(), 30_000);
        assert_eq!(config.payments.confirm_window().as_secs(), 60);
        assert_eq!(
            config.payments.amount_callback_timeout(None).as_millis(),
            3_000
        );
        assert_eq!(
            config
                .payments
                .amount_callback_timeout(Some(500))
                .as_millis(),
            500
        );
        assert_eq!(config.registers.poll_interval().as_millis(), 5_000);
    }
}
