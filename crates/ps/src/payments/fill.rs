//! Fills a store with realistic purchases, for the growth measurements of `docs/benchmarks.md`
//! (`tolem-load fill`): millions of them in minutes, through the store's own operations and the
//! rules of `domain`, not HTTP. Each purchase takes the path a real one takes — inserted, scanned
//! (bound to a customer of an MPP), then notified — so its row, its indexes and its stored
//! answers are the ones the PS writes in production; only the clock is the plan's and many
//! purchases share one transaction.
//!
//! The mix, fixed so that two fills of the same size are alike: 19 of 20 purchases are Dynamic
//! QRs, 1 in 20 a scan of a trade point's Static QR; of the Dynamic ones, 1 in 25 is never scanned
//! and expires, 1 in 50 is refused by the MPP; the rest are confirmed. Amounts are 100–50 000 ₸,
//! customers 100 000 per MPP, MPPs and trade points taken in turn from the catalog.

use jiff::{SignedDuration, Timestamp};
use tolem_wire::mpp::ResultCode;
use tolem_wire::{Amount, Locale};

use crate::domain::payment::{Notify, NotifyDecision, Verdict};
use crate::domain::{CallerName, DeviceId, Kind, MerchantState, Owner, Status, TradePointId};
use crate::links::{qr_digits, secret_token};
use crate::state::App;
use crate::store::{NewPayment, StoreError, StoreResult, Tx};

/// Purchases per write: small, so that a write's savepoint journal stays short when the writer
/// runs it in a savepoint of its own (after a write of its batch failed). SQLite cuts that
/// in-memory journal back after each statement by walking it from its start, so such a write's
/// cost grows with the square of its size: 2,000 purchases per write, each in its savepoint,
/// spent nine tenths of the fill there.
const BATCH: u64 = 50;
/// Writes in flight at once, which the store's writer commits together (group commit), so that
/// a commit still carries many purchases.
const IN_FLIGHT: usize = 32;
/// Customers per MPP: `customerId` is `F<n>` (at most 12 characters).
const CUSTOMERS_PER_MPP: u64 = 100_000;

/// What to fill.
#[derive(Clone, Debug)]
pub struct FillPlan {
    /// Purchases to add.
    pub purchases: u64,
    /// The days they are spread over, ending now: created at even intervals, oldest first.
    pub days: u32,
}

/// What a fill added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FillReport {
    pub purchases: u64,
    pub confirmed: u64,
}

/// Everything a batch needs, cloned into the store's transaction.
#[derive(Clone)]
struct Setting {
    mpps: Vec<CallerName>,
    /// Trade points with their Static QR token's trade point, for the Static scans.
    trade_points: Vec<TradePointId>,
    static_points: Vec<TradePointId>,
    policy: crate::domain::Policy,
    public_url: String,
    qr_scan_wait: SignedDuration,
}

/// Adds `plan.purchases` purchases to the app's store; `progress` hears the count after each
/// batch. Stops at the first store error (what was committed before it stays).
pub async fn fill(
    app: &App,
    plan: &FillPlan,
    mut progress: impl FnMut(u64),
) -> StoreResult<FillReport> {
    let catalog = app.catalog.get();
    let mut mpps: Vec<CallerName> = catalog.mpps.keys().cloned().collect();
    mpps.sort();
    let mut trade_points: Vec<TradePointId> = catalog.trade_points.keys().copied().collect();
    trade_points.sort();
    let mut static_points: Vec<TradePointId> = catalog
        .trade_points
        .values()
        .filter(|t| t.static_qr.is_some())
        .map(|t| t.id)
        .collect();
    static_points.sort();
    if mpps.is_empty() || trade_points.is_empty() {
        return Err(StoreError::Corrupt(
            "the catalog has no MPP or no trade point to fill purchases for".to_owned(),
        ));
    }
    if static_points.is_empty() {
        static_points = trade_points.clone();
    }
    let setting = Setting {
        mpps,
        trade_points,
        static_points,
        policy: app.policy,
        public_url: app.config.public_url.clone(),
        qr_scan_wait: SignedDuration::from_secs(i64::from(app.config.payments.qr_scan_wait_s)),
    };
    let end = app.clock.now();
    let span_ms = i64::from(plan.days.max(1)) * 86_400_000;
    let start = end
        .checked_sub(SignedDuration::from_millis(span_ms))
        .unwrap_or(end);
    let step_ms = span_ms / i64::try_from(plan.purchases.max(1)).unwrap_or(i64::MAX);
    let mut report = FillReport::default();
    let mut next = 0u64;
    let mut writes = tokio::task::JoinSet::new();
    while next < plan.purchases || !writes.is_empty() {
        while next < plan.purchases && writes.len() < IN_FLIGHT {
            let count = BATCH.min(plan.purchases - next);
            let first = next;
            next += count;
            let (store, setting) = (app.store.clone(), setting.clone());
            writes.spawn(async move {
                let confirmed = store
                    .transaction(move |tx| {
                        let mut confirmed = 0;
                        for n in first..first + count {
                            let offset =
                                i64::try_from(n).unwrap_or(i64::MAX).saturating_mul(step_ms);
                            let at = start
                                .checked_add(SignedDuration::from_millis(offset))
                                .unwrap_or(end);
                            if add_one(tx, &setting, n, at)? {
                                confirmed += 1;
                            }
                        }
                        Ok(confirmed)
                    })
                    .await?;
                Ok::<_, StoreError>((count, confirmed))
            });
        }
        let Some(done) = writes.join_next().await else {
            break;
        };
        let (count, confirmed) =
            done.map_err(|_| StoreError::Corrupt("a fill write panicked".to_owned()))??;
        report.purchases += count;
        report.confirmed += confirmed;
        progress(report.purchases);
    }
    Ok(report)
}

/// The `n`th purchase of the fill, created at `at`; whether it ended confirmed.
fn add_one(tx: &Tx<'_>, s: &Setting, n: u64, at: Timestamp) -> StoreResult<bool> {
    // A cheap, fixed scramble of `n`, so that amounts and customers do not run in step.
    let r = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
    let mpp = &s.mpps[usize::try_from(n % s.mpps.len() as u64).unwrap_or(0)];
    let owner = Owner {
        mpp: mpp.clone(),
        customer_id: format!("F{}", r % CUSTOMERS_PER_MPP),
    };
    let amount_tiyn = (100 + (r % 49_901)) * 100;
    let amount = Some(Amount::from_tiyn(amount_tiyn));
    let locale = if r.is_multiple_of(5) {
        Locale::Kk
    } else {
        Locale::Ru
    };
    let is_static = n % 20 == 19;
    let pick =
        |points: &[TradePointId]| points[usize::try_from(r % points.len() as u64).unwrap_or(0)];
    let new = if is_static {
        NewPayment {
            kind: Kind::Static,
            trade_point_id: pick(&s.static_points),
            service_id: None,
            device_id: None,
            external_id: None,
            qr_token: None,
            amount: None,
            expire_at: None,
            receipt_token: secret_token(),
        }
    } else {
        NewPayment {
            kind: Kind::Dynamic,
            trade_point_id: pick(&s.trade_points),
            service_id: None,
            device_id: Some(DeviceId::new(1)),
            external_id: Some(format!("fill-{n}")),
            qr_token: Some(qr_digits()),
            amount,
            expire_at: at.checked_add(s.qr_scan_wait).ok(),
            receipt_token: secret_token(),
        }
    };
    let mut payment = tx.insert_payment(&new, at)?;
    if !is_static && n % 25 == 7 {
        // Never scanned: the sweeper expires it after its ExpireDate.
        let expired_at = payment.expire_at.unwrap_or(at);
        payment.finish(Status::Expired, expired_at);
        tx.save_payment(&payment, &s.policy)?;
        return Ok(false);
    }
    let scanned_at = at.checked_add(SignedDuration::from_secs(20)).unwrap_or(at);
    if is_static {
        payment.bind(&owner, scanned_at, &s.policy);
    } else if payment.scan(&owner, scanned_at, &s.policy).is_err() {
        return Ok(false);
    }
    tx.save_scanned_payment(&payment, &s.policy, locale)?;
    let refused = n % 50 == 3;
    let cmd = Notify {
        owner,
        verdict: if refused {
            Verdict::from_code("PROCESS_FAIL")
        } else {
            Verdict::Success
        },
        mpp_payment_id: format!("FILL-{n}"),
        amount: if is_static { amount } else { None },
    };
    let notified_at = scanned_at
        .checked_add(SignedDuration::from_secs(5))
        .unwrap_or(scanned_at);
    match payment.notify(&cmd, MerchantState::Open, notified_at, &s.policy) {
        NotifyDecision::Apply(code) => {
            let body = super::notify::answer(code, locale, &s.public_url, &payment.receipt_token);
            payment.notify_response = Some(body);
            tx.save_payment(&payment, &s.policy)?;
            Ok(code == ResultCode::Success)
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::SystemClock;
    use crate::domain::PaymentId;

    #[tokio::test]
    async fn a_fill_adds_the_mix_through_the_rules_and_a_repeat_hears_the_stored_answer() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut config = crate::Config::from_toml(crate::SANDBOX_TOML).expect("valid");
        config.database = dir.path().join("ps.db");
        let app = App::start(config, Arc::new(SystemClock))
            .await
            .expect("the PS starts");
        let plan = FillPlan {
            purchases: 2_500,
            days: 3,
        };
        let mut batches = Vec::new();
        let report = fill(&app, &plan, |done| batches.push(done))
            .await
            .expect("filled");
        // Progress after each write, of `BATCH` purchases each (writes end in any order).
        assert_eq!(batches.len(), 50);
        assert!(batches.windows(2).all(|w| w[1] == w[0] + BATCH));
        assert_eq!(batches.last(), Some(&2_500));
        // Of 2 500: 125 Static (all confirmed); of 2 375 Dynamic, 1 in 25 expired and 1 in 50
        // refused, counted by the same rule as the fill.
        let expired = (0..2_500u64)
            .filter(|n| n % 20 != 19 && n % 25 == 7)
            .count() as u64;
        let refused = (0..2_500u64)
            .filter(|n| !(n % 20 != 19 && n % 25 == 7) && n % 50 == 3)
            .count() as u64;
        assert_eq!(report.purchases, 2_500);
        assert_eq!(report.confirmed, 2_500 - expired - refused);

        // Writes run together, so ids do not follow the plan's order: the first confirmed one.
        let mut first = None;
        for id in 1..=20 {
            let payment = app.store.payment(PaymentId::new(id)).await.expect("read");
            if let Some(p) = payment.filter(|p| p.status == Status::Confirmed) {
                first = Some(p);
                break;
            }
        }
        let first = first.expect("a confirmed purchase among the first 20");
        assert!(first.created_at < app.clock.now());
        let stored = first.notify_response.clone().expect("its answer is stored");
        assert!(stored.contains("/receipt?id="), "{stored}");
        // A repeat of its notifyPayment hears that answer, as a real purchase's would.
        let mut repeat = first.clone();
        let cmd = Notify {
            owner: first.owner.clone().expect("bound"),
            verdict: Verdict::Success,
            mpp_payment_id: first.mpp_payment_id.clone().expect("notified"),
            amount: None,
        };
        assert_eq!(
            repeat.notify(&cmd, MerchantState::Open, app.clock.now(), &app.policy),
            NotifyDecision::Repeat(stored)
        );
    }
}
