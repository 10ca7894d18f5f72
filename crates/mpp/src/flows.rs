//! What the customer's app asks the MPP to do: scan a QR, fill a Custom form (checkout), confirm
//! (pay) or go back, and read balance, history and notifications.
//!
//! Paying follows SPEC §2 steps 20–23 on the kit's durable pattern (`tolem_sdk::pending`): the
//! customer's debit and the pending notifyPayment are recorded in one transaction; the kit's
//! driver tells the PS until it answers for good — whatever happens to the app's request, and
//! also after a restart of the MPP — and then [`PaySettle`] keeps the debit or reverses it.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tolem_sdk::pending::{
    self, Driver, DriverConfig, Notification, Outcome as Settlement, PendingStore, Settle,
    SettleError,
};
use tolem_sdk::refund::{Credit, CreditError, Credited, RefundEndpoint, RefundOrder, Refusal};
use tolem_sdk::{MppClient, Outcome, RetryPolicy, Scanned, SdkError, SetupError};
use tolem_wire::mpp::{
    CheckoutRequest, Merchant, NotifyPayment, NotifyPaymentRequest, ParameterValue, PaymentData,
    QrCodeType, ResultBody, ResultCode, ScanRequest,
};
use tolem_wire::{Amount, Locale};

use crate::config::MppConfig;
use crate::ledger::{self, CLEARING, LedgerError, customer_account};

/// Why a request of the app failed.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("the PS answered {0}")]
    Ps(String),
    #[error("the PS cannot be reached: {0}")]
    Unreachable(String),
    /// An answer that is not the PS's words (it says so itself: `the PS's answer to scan (HTTP
    /// 200) cannot be read: …`).
    #[error("{0}")]
    Unreadable(String),
    #[error("{0}")]
    Invalid(String),
    #[error("not enough money")]
    InsufficientFunds,
    #[error("no such payment")]
    NotFound,
    #[error("unknown customer {0}")]
    UnknownCustomer(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<LedgerError> for FlowError {
    fn from(e: LedgerError) -> FlowError {
        match e {
            LedgerError::InsufficientFunds => FlowError::InsufficientFunds,
            other => FlowError::Internal(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for FlowError {
    fn from(e: rusqlite::Error) -> FlowError {
        FlowError::Internal(e.to_string())
    }
}

impl From<SdkError> for FlowError {
    fn from(e: SdkError) -> FlowError {
        match e {
            SdkError::Unreadable(e) => FlowError::Unreadable(e.to_string()),
            SdkError::Transport(e) => FlowError::Unreachable(e.to_string()),
            other => FlowError::Internal(other.to_string()),
        }
    }
}

impl From<SetupError> for FlowError {
    fn from(e: SetupError) -> FlowError {
        FlowError::Internal(e.to_string())
    }
}

/// The answer of a call the PS finished; a refusal or no final answer is the app's error.
fn done<T>(outcome: Outcome<T>) -> Result<T, FlowError> {
    match outcome {
        Outcome::Done(answer) => Ok(answer),
        Outcome::Refused(result) => Err(FlowError::Ps(format!(
            "{}: {}",
            result.result_code, result.result_message
        ))),
        Outcome::NotKnownYet(why) => Err(FlowError::Unreachable(why.to_string())),
        _ => Err(FlowError::Ps(
            "an outcome this MPP does not know".to_owned(),
        )),
    }
}

impl ScanView {
    fn of(scanned: Scanned) -> Result<ScanView, FlowError> {
        let merchant = scanned.merchant().cloned();
        let view = |kind, payment: tolem_wire::mpp::ScanPayment| ScanView {
            kind,
            payment_id: Some(payment.payment_id),
            merchant: merchant.clone(),
            amount: payment.payment_amount,
            can_confirm_until: Some(payment.can_confirm_until),
            service: None,
            refund_id: None,
        };
        Ok(match scanned {
            Scanned::Dynamic { payment, .. } => view(QrCodeType::Dynamic, payment),
            Scanned::Static { payment, .. } => view(QrCodeType::Static, payment),
            Scanned::Custom {
                payment, service, ..
            } => ScanView {
                service: Some(service),
                ..view(QrCodeType::Custom, payment)
            },
            Scanned::Refund { refund, .. } => ScanView {
                kind: QrCodeType::Refund,
                payment_id: None,
                merchant,
                amount: None,
                can_confirm_until: None,
                service: None,
                refund_id: Some(refund.refund_id),
            },
            other => {
                return Err(FlowError::Invalid(format!(
                    "a QR this MPP cannot pay: {other:?}"
                )));
            }
        })
    }
}

/// What a scan found, for the app to show.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScanView {
    pub kind: QrCodeType,
    pub payment_id: Option<String>,
    pub merchant: Option<Merchant>,
    pub amount: Option<Amount>,
    pub can_confirm_until: Option<String>,
    pub service: Option<PaymentData>,
    pub refund_id: Option<String>,
}

/// How a payment ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentView {
    pub payment_id: String,
    /// `paid`, `rejected` (debit reversed) or `cancelled`.
    pub status: String,
    pub amount: Option<Amount>,
    pub receipt: Option<String>,
    /// The PS's result code.
    pub ps_code: Option<String>,
}

/// A movement of the customer's account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Movement {
    pub kind: String,
    pub reference: String,
    /// Positive: money in; negative: money out (tiyn).
    pub tiyn: i64,
    pub at_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Account {
    pub customer_id: String,
    pub name: String,
    pub balance_tiyn: i64,
    pub history: Vec<Movement>,
    pub notifications: Vec<Notice>,
}

/// One notification of the customer's feed, as facts: the app words it in the customer's
/// language (`tolem_mpp::wallet::text::notice`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// A payment the PS confirmed.
    Paid { merchant: String, amount: Amount },
    /// A payment the PS did not confirm: the debit was given back.
    Rejected { code: String, amount: Amount },
    /// A refund the PS sent; `receipt` is its receipt link as the PS gave it (no locale).
    Refunded { amount: Amount, receipt: String },
    /// A notification stored before notifications had a shape: its text, in both languages.
    Text { text: String },
}

impl Notice {
    /// The stored form, its JSON. Writing strings and amounts cannot fail; were it ever empty,
    /// the row's bilingual text would be shown instead.
    fn stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A stored row: its notice, or its text when it has none (or one this version cannot read).
    fn from_row(text: String, notice: Option<String>) -> Notice {
        notice
            .and_then(|n| serde_json::from_str(&n).ok())
            .unwrap_or(Notice::Text { text })
    }
}

/// The reference MPP.
#[derive(Clone)]
pub struct Mpp {
    db: Arc<Mutex<Connection>>,
    ps: MppClient,
    caller_name: String,
    endpoint: RefundEndpoint,
    driver: Driver<PaySettle>,
}

/// How long the app's confirm waits for the PS's final answer before it answers `pending` (the
/// driver goes on; the app reads the outcome from the customer's account later).
pub const CONFIRM_WAIT_MS: u64 = 30_000;

/// Refunds from the PS credit the customer back from the clearing account and push a
/// notification. The ledger shares the kit's file, but the kit calls this hook outside its own
/// transactions (it may await a network call), so the hook is idempotent on its own: the credit
/// and its mark in `refunds_applied` commit together, and a repeat of a refundId (the MPP stopped
/// after this commit, before the kit recorded the answer) finds the mark and moves nothing.
struct LedgerCredit {
    db: Arc<Mutex<Connection>>,
}

impl Credit for LedgerCredit {
    async fn credit(&self, refund: &RefundOrder) -> Result<Credited, CreditError> {
        let guard = self.db.clone().lock_owned().await;
        let refund = refund.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = guard;
            credit_refund(&mut conn, &refund)
        })
        .await
        .map_err(CreditError::new)?
    }
}

/// One transaction: the checks the PS cannot make for the MPP, the credit, the notification and
/// the mark. The checks read what this same transaction would add to, and a write transaction of
/// SQLite excludes every other writer, so two partial refunds of one payment arriving together
/// cannot both pass a limit only one fits in.
fn credit_refund(conn: &mut Connection, refund: &RefundOrder) -> Result<Credited, CreditError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(CreditError::new)?;
    let applied: bool = tx
        .prepare_cached("SELECT 1 FROM refunds_applied WHERE refund_id = ?1")
        .and_then(|mut stmt| stmt.exists([refund.refund_id()]))
        .map_err(CreditError::new)?;
    if applied {
        return Ok(Credited::Yes);
    }
    // Money goes back only for a payment this customer made here, and never more than it.
    let payment: Option<(String, i64, String)> = tx
        .query_row(
            "SELECT customer_id, amount_tiyn, status FROM payments WHERE payment_id = ?1",
            [refund.payment_id()],
            |r| {
                let amount = r.get::<_, Option<i64>>(1)?.unwrap_or(0);
                Ok((r.get(0)?, amount, r.get(2)?))
            },
        )
        .optional()
        .map_err(CreditError::new)?;
    let Some((customer, paid_tiyn, status)) =
        payment.filter(|(customer, _, _)| customer == refund.customer_id())
    else {
        return Ok(Credited::Refused(Refusal::ProcessFail));
    };
    // Debited here, but the PS's answer to its notifyPayment has not arrived yet (lost, or the
    // PS was down): the refund is the PS's word that it confirmed the payment, and the driver
    // will hear the same. Not a refusal, which would be final and leave the customer charged:
    // the PS is answered "retry" until the driver has settled the payment. (A payment closing
    // was told to the PS as not paid, nothing debited: no refund of it is owed, and the
    // refusal below is final.)
    if status == "debited" {
        return Err(CreditError::new(format!(
            "payment {} is not settled here yet: its notifyPayment has not been answered",
            refund.payment_id()
        )));
    }
    if status != "paid" {
        return Ok(Credited::Refused(Refusal::ProcessFail));
    }
    let refunded: i64 = tx
        .query_row(
            "SELECT COALESCE(SUM(amount_tiyn), 0) FROM refunds_applied WHERE payment_id = ?1",
            [refund.payment_id()],
            |r| r.get(0),
        )
        .map_err(CreditError::new)?;
    let asked = i64::try_from(refund.amount().tiyn()).map_err(CreditError::new)?;
    if refunded
        .checked_add(asked)
        .is_none_or(|total| total > paid_tiyn)
    {
        return Ok(Credited::Refused(Refusal::ProcessFail));
    }
    let reference = format!(
        "refund {} of payment {}",
        refund.refund_id(),
        refund.payment_id()
    );
    let txn = ledger::transfer(
        &tx,
        "refund",
        &reference,
        CLEARING,
        &customer_account(&customer),
        refund.amount(),
    )
    .map_err(CreditError::new)?;
    ledger::mark_refund(
        &tx,
        refund.refund_id(),
        refund.payment_id(),
        &customer,
        asked,
        txn,
    )
    .map_err(CreditError::new)?;
    let text = format!(
        "Возврат {} ₸ · Қайтару {} ₸ ({})",
        refund.amount(),
        refund.amount(),
        refund.link_receipt()
    );
    let notice = Notice::Refunded {
        amount: refund.amount(),
        receipt: refund.link_receipt().to_owned(),
    };
    ledger::notify(&tx, &customer, &text, &notice.stored()).map_err(CreditError::new)?;
    tx.commit().map_err(CreditError::new)?;
    Ok(Credited::Yes)
}

impl Mpp {
    /// Opens the database (creating tables and demo customers) and resumes unfinished payments.
    pub fn open(config: &MppConfig, retry: RetryPolicy) -> Result<Mpp, FlowError> {
        tolem_sdk::create_private_database(&config.database);
        let mut conn = Connection::open(&config.database)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(ledger::SCHEMA)?;
        ledger::upgrade(&conn)?;
        for c in &config.customers {
            ledger::seed_customer(&conn, &c.id, &c.name, c.deposit)?;
        }
        adopt_unsettled(&mut conn)?;
        let db = Arc::new(Mutex::new(conn));
        // The kit's record goes in the same file, on a connection of its own.
        let endpoint = RefundEndpoint::open(&config.database, LedgerCredit { db: db.clone() })
            .map_err(|e| FlowError::Internal(e.to_string()))?;
        let ps = MppClient::builder(&config.ps_url, &config.caller_name)
            .retry_policy(retry.clone())
            .build()?;
        let store = PendingStore::with_connection(db.clone());
        let settle = PaySettle { db: db.clone() };
        let driver = Driver::new(
            store,
            ps.clone(),
            settle,
            DriverConfig::new(retry, pending_lease_ms()),
        );
        let mpp = Mpp {
            db,
            ps,
            caller_name: config.caller_name.clone(),
            endpoint,
            driver,
        };
        Ok(mpp)
    }

    pub fn refund_endpoint(&self) -> &RefundEndpoint {
        &self.endpoint
    }

    /// Runs `f` on the database off the async threads (for the crate's other modules).
    pub(crate) async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, FlowError> + Send + 'static,
    ) -> Result<T, FlowError> {
        self.db(f).await
    }

    /// Runs `f` on the database off the async threads.
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, FlowError> + Send + 'static,
    ) -> Result<T, FlowError> {
        let guard = self.db.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || {
            let mut guard = guard;
            f(&mut guard)
        })
        .await
        .map_err(|e| FlowError::Internal(e.to_string()))?
    }

    /// Starts the kit's driver, which takes every pending notification to the PS's final answer
    /// — those an earlier run left too — and keeps or reverses each debit. Returns how many were
    /// pending at the start, and the driver's task (abort it to stop).
    pub async fn resume(&self) -> Result<(usize, tokio::task::JoinHandle<()>), FlowError> {
        let pending = self
            .driver
            .store()
            .unsettled()
            .await
            .map_err(|e| FlowError::Internal(e.to_string()))?;
        Ok((pending.len(), tokio::spawn(self.driver.clone().run())))
    }

    pub async fn scan(
        &self,
        customer_id: &str,
        qr_code: &str,
        locale: Locale,
    ) -> Result<ScanView, FlowError> {
        let customer = customer_id.to_owned();
        let known = self
            .db(move |conn| {
                Ok(conn
                    .query_row("SELECT 1 FROM customers WHERE id = ?1", [&customer], |_| {
                        Ok(())
                    })
                    .optional()?)
            })
            .await?;
        if known.is_none() {
            return Err(FlowError::Invalid(format!(
                "unknown customer {customer_id}"
            )));
        }
        let scan = self
            .ps
            .in_locale(locale)
            .scan(&ScanRequest {
                qr_code: qr_code.to_owned(),
                customer_id: customer_id.to_owned(),
            })
            .await?;
        let view = ScanView::of(done(scan.outcome)?)?;
        let kind = view.kind;
        if let Some(payment_id) = view.payment_id.clone() {
            let record = (
                customer_id.to_owned(),
                format!("{kind:?}"),
                view.merchant.as_ref().map(|m| m.merchant_name.clone()),
            );
            let amount = view.amount;
            let service = view.service.as_ref().map(|s| s.service_id);
            let mpp_payment_id = format!("{}-{payment_id}", self.caller_name);
            self.db(move |conn| {
                conn.execute(
                    "INSERT OR IGNORE INTO payments (payment_id, customer_id, kind, merchant, amount_tiyn, service_id, status, \
                     mpp_payment_id, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'scanned', ?7, ?8)",
                    params![
                        payment_id,
                        record.0,
                        record.1,
                        record.2.unwrap_or_default(),
                        amount.map(|a| i64::try_from(a.tiyn()).unwrap_or(i64::MAX)),
                        service,
                        mpp_payment_id,
                        ledger::now_ms()
                    ],
                )?;
                Ok(())
            })
            .await?;
        }
        Ok(view)
    }

    /// The Custom form, filled: the PS computes and freezes the amount.
    pub async fn checkout(
        &self,
        customer_id: &str,
        payment_id: &str,
        values: Vec<ParameterValue>,
        locale: Locale,
    ) -> Result<Amount, FlowError> {
        let record = self.payment(customer_id, payment_id).await?;
        let service_id = record
            .service_id
            .ok_or_else(|| FlowError::Invalid("not a Custom payment".to_owned()))?;
        let answer = self
            .ps
            .in_locale(locale)
            .checkout(&CheckoutRequest {
                payment_id: payment_id.to_owned(),
                service_id,
                parameters: values,
                customer_id: Some(customer_id.to_owned()),
            })
            .await?;
        let answer = done(answer.outcome)?;
        let amount = answer
            .payment_amount
            .ok_or_else(|| FlowError::Ps("no paymentAmount".to_owned()))?;
        let id = payment_id.to_owned();
        let tiyn =
            i64::try_from(amount.tiyn()).map_err(|_| FlowError::Invalid("amount".to_owned()))?;
        self.db(move |conn| {
            conn.execute(
                "UPDATE payments SET amount_tiyn = ?1 WHERE payment_id = ?2 AND status = 'scanned'",
                params![tiyn, id],
            )?;
            Ok(())
        })
        .await?;
        Ok(amount)
    }

    /// The customer confirms: debit, tell the PS (until it answers), keep or reverse the debit.
    /// `amount` is the customer's for a Static QR (whole tenge), ignored otherwise.
    pub async fn confirm(
        &self,
        customer_id: &str,
        payment_id: &str,
        amount: Option<Amount>,
        locale: Locale,
    ) -> Result<PaymentView, FlowError> {
        let record = self.payment(customer_id, payment_id).await?;
        if record.status != "scanned" {
            return Err(FlowError::Invalid(format!(
                "the payment is {}",
                record.status
            )));
        }
        let amount = match (record.kind.as_str(), amount, record.amount) {
            ("Static", Some(amount), _) if !amount.is_zero() && amount.is_whole_tenge() => amount,
            ("Static", _, _) => {
                return Err(FlowError::Invalid(
                    "enter a whole amount in tenge".to_owned(),
                ));
            }
            (_, _, Some(amount)) => amount,
            _ => {
                return Err(FlowError::Invalid(
                    "fill the form first (checkout)".to_owned(),
                ));
            }
        };
        let (id, customer) = (payment_id.to_owned(), customer_id.to_owned());
        let notification = pay_notification(
            &record,
            payment_id,
            ResultBody::success(),
            Some(amount),
            locale,
        );
        let notification_id = notification.id.clone();
        let debited = self
            .db(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let tiyn = i64::try_from(amount.tiyn()).map_err(|_| FlowError::Invalid("amount".to_owned()))?;
                // Taking the payment from 'scanned' in the same transaction as the debit: a second
                // confirm (or a Back) of the same payment finds it taken and debits nothing.
                let taken = tx.execute(
                    "UPDATE payments SET status = 'debited', amount_tiyn = ?1 WHERE payment_id = ?2 AND status = 'scanned'",
                    params![tiyn, id],
                )?;
                if taken == 0 {
                    return Err(FlowError::Invalid("the payment is already being paid or done".to_owned()));
                }
                let reference = format!("payment {id}");
                match ledger::debit_customer(&tx, &customer, &reference, amount) {
                    Ok(_) => {
                        // The debit and the notification the PS is owed commit together.
                        pending::record(&tx, &notification).map_err(|e| FlowError::Internal(e.to_string()))?;
                        tx.commit()?;
                        Ok(Ok(()))
                    }
                    // Dropping the transaction puts the payment back to 'scanned'.
                    Err(e) => Ok(Err(e)),
                }
            })
            .await?;
        if let Err(LedgerError::InsufficientFunds) = debited {
            // Tell the PS the payment failed, so the merchant sees Error at once.
            self.finish_unpaid(payment_id, "PROCESS_FAIL", "insufficient funds", locale)
                .await?;
            return Err(FlowError::InsufficientFunds);
        }
        debited?;
        self.finish(payment_id, &notification_id).await
    }

    /// The customer pressed Back (SPEC 4.3): CANCELLED_BY_CLIENT, nothing debited.
    pub async fn back(
        &self,
        customer_id: &str,
        payment_id: &str,
        locale: Locale,
    ) -> Result<PaymentView, FlowError> {
        let record = self.payment(customer_id, payment_id).await?;
        if record.status != "scanned" {
            return Err(FlowError::Invalid(format!(
                "the payment is {}",
                record.status
            )));
        }
        self.finish_unpaid(
            payment_id,
            "CANCELLED_BY_CLIENT",
            "cancelled by client",
            locale,
        )
        .await
    }

    /// Tells the PS a verdict other than SUCCESS for a payment that was not debited, on the same
    /// durable path as a payment: taken from 'scanned' and the notification recorded together.
    async fn finish_unpaid(
        &self,
        payment_id: &str,
        code: &str,
        message: &str,
        locale: Locale,
    ) -> Result<PaymentView, FlowError> {
        let record = self.payment_any(payment_id).await?;
        let verdict = ResultBody {
            result_code: code.to_owned(),
            result_message: message.to_owned(),
        };
        let notification = pay_notification(&record, payment_id, verdict, None, locale);
        let notification_id = notification.id.clone();
        let id = payment_id.to_owned();
        self.db(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let taken = tx.execute("UPDATE payments SET status = 'closing' WHERE payment_id = ?1 AND status = 'scanned'", [&id])?;
            if taken == 0 {
                return Err(FlowError::Invalid("the payment is already being paid or done".to_owned()));
            }
            pending::record(&tx, &notification).map_err(|e| FlowError::Internal(e.to_string()))?;
            tx.commit()?;
            Ok(())
        })
        .await?;
        self.finish(payment_id, &notification_id).await
    }

    /// Has the driver tell the PS (in a task of its own, so a dropped request changes nothing)
    /// and waits a while for the outcome; the payment as it then stands.
    async fn finish(
        &self,
        payment_id: &str,
        notification_id: &str,
    ) -> Result<PaymentView, FlowError> {
        self.driver
            .finish(
                notification_id,
                std::time::Duration::from_millis(CONFIRM_WAIT_MS),
            )
            .await
            .map_err(|e| FlowError::Internal(e.to_string()))?;
        let id = payment_id.to_owned();
        self.db(move |conn| {
            Ok(conn.query_row(
                "SELECT status, amount_tiyn, receipt, ps_code FROM payments WHERE payment_id = ?1",
                [&id],
                |r| {
                    let status: String = r.get(0)?;
                    Ok(PaymentView {
                        payment_id: id.clone(),
                        // Debited or closing: the PS has not answered for good yet.
                        status: if matches!(status.as_str(), "debited" | "closing") {
                            "pending".to_owned()
                        } else {
                            status
                        },
                        amount: r
                            .get::<_, Option<i64>>(1)?
                            .map(ledger::stored_amount)
                            .transpose()?,
                        receipt: r.get(2)?,
                        ps_code: r.get(3)?,
                    })
                },
            )?)
        })
        .await
    }

    async fn payment(&self, customer_id: &str, payment_id: &str) -> Result<Record, FlowError> {
        let record = self.payment_any(payment_id).await?;
        if record.customer_id != customer_id {
            return Err(FlowError::NotFound);
        }
        Ok(record)
    }

    async fn payment_any(&self, payment_id: &str) -> Result<Record, FlowError> {
        let id = payment_id.to_owned();
        self.db(move |conn| {
            conn.query_row(
                "SELECT customer_id, kind, amount_tiyn, service_id, status, mpp_payment_id FROM payments WHERE payment_id = ?1",
                [&id],
                |r| {
                    Ok(Record {
                        customer_id: r.get(0)?,
                        kind: r.get(1)?,
                        amount: r.get::<_, Option<i64>>(2)?.map(ledger::stored_amount).transpose()?,
                        service_id: r.get(3)?,
                        status: r.get(4)?,
                        mpp_payment_id: r.get(5)?,
                    })
                },
            )
            .optional()?
            .ok_or(FlowError::NotFound)
        })
        .await
    }

    /// The customer's balance, movements (newest first) and notifications (newest first).
    pub async fn account(&self, customer_id: &str) -> Result<Account, FlowError> {
        let id = customer_id.to_owned();
        self.db(move |conn| {
            let name: String = conn
                .query_row("SELECT name FROM customers WHERE id = ?1", [&id], |r| r.get(0))
                .optional()?
                .ok_or_else(|| FlowError::UnknownCustomer(id.clone()))?;
            let account = customer_account(&id);
            let balance_tiyn = ledger::balance(conn, &account)?;
            let mut stmt = conn.prepare(
                "SELECT t.kind, t.reference, e.credit_tiyn - e.debit_tiyn, t.created_at_ms FROM entries e \
                 JOIN ledger_txns t ON t.id = e.txn_id WHERE e.account = ?1 ORDER BY t.id DESC LIMIT 100",
            )?;
            let history = stmt
                .query_map([&account], |r| Ok(Movement { kind: r.get(0)?, reference: r.get(1)?, tiyn: r.get(2)?, at_ms: r.get(3)? }))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut stmt = conn.prepare("SELECT text, notice FROM notifications WHERE customer_id = ?1 ORDER BY id DESC LIMIT 100")?;
            let notifications = stmt
                .query_map([&id], |r| Ok(Notice::from_row(r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Account { customer_id: id, name, balance_tiyn, history, notifications })
        })
        .await
    }

    /// Whether every ledger transaction is balanced.
    pub async fn ledger_balanced(&self) -> Result<bool, FlowError> {
        self.db(|conn| Ok(ledger::is_balanced(conn)?)).await
    }
}

struct Record {
    customer_id: String,
    kind: String,
    amount: Option<Amount>,
    service_id: Option<i64>,
    status: String,
    mpp_payment_id: String,
}

/// The notifyPayment a payment owes the PS; its id (`notify-<mppPaymentId>`) is the X-Request-ID
/// of every attempt, the same after a restart of the MPP.
fn pay_notification(
    record: &Record,
    payment_id: &str,
    verdict: ResultBody,
    amount: Option<Amount>,
    locale: Locale,
) -> Notification {
    Notification::new(
        NotifyPaymentRequest {
            result: verdict,
            payment: NotifyPayment {
                payment_id: payment_id.to_owned(),
                mpp_payment_id: record.mpp_payment_id.clone(),
                payment_amount: amount,
                customer_id: None,
            },
            customer_id: Some(record.customer_id.clone()),
        },
        locale,
    )
}

/// How long a driver's claim on a notification lasts: longer than one attempt, so that two
/// processes on one database never tell the PS at once, short enough that a crashed one's
/// notifications are taken over soon.
fn pending_lease_ms() -> u64 {
    tolem_sdk::REQUEST_TIMEOUT_MS_DEFAULT * 3
}

/// Payments debited (or closing) by a version before the kit's durable pattern, with no pending
/// notification: recorded now, so the driver finishes them.
fn adopt_unsettled(conn: &mut Connection) -> Result<(), FlowError> {
    pending::create_table(conn).map_err(|e| FlowError::Internal(e.to_string()))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rows: Vec<(String, String, String, Option<i64>, String)> = {
        let mut stmt = tx.prepare(
            "SELECT payment_id, customer_id, mpp_payment_id, amount_tiyn, status FROM payments \
             WHERE status IN ('debited', 'closing') \
             AND payment_id NOT IN (SELECT payment_id FROM tolem_pending_notifications)",
        )?;
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?
    };
    for (payment_id, customer_id, mpp_payment_id, tiyn, status) in rows {
        let record = Record {
            customer_id,
            kind: String::new(),
            amount: None,
            service_id: None,
            status: status.clone(),
            mpp_payment_id,
        };
        let amount = tiyn.map(ledger::stored_amount).transpose()?;
        // A payment left closing was a Back or a failed debit; which one is not recorded, and
        // both told the PS the customer did not pay.
        let (verdict, amount) = if status == "debited" {
            (ResultBody::success(), amount)
        } else {
            (
                ResultBody {
                    result_code: "PROCESS_FAIL".to_owned(),
                    result_message: "not paid".to_owned(),
                },
                None,
            )
        };
        let n = pay_notification(&record, &payment_id, verdict, amount, Locale::Ru);
        pending::record(&tx, &n).map_err(|e| FlowError::Internal(e.to_string()))?;
    }
    tx.commit()?;
    Ok(())
}

/// The reference MPP's side of a final answer: keeps or reverses the debit, on its own ledger
/// in the same file. Only a payment still debited (or closing) is settled, so a repeat of the
/// same outcome after a crash changes nothing.
#[derive(Clone)]
pub struct PaySettle {
    db: Arc<Mutex<Connection>>,
}

impl Settle for PaySettle {
    async fn settle(&self, n: &Notification, outcome: &Settlement) -> Result<(), SettleError> {
        let guard = self.db.clone().lock_owned().await;
        let (n, outcome) = (n.clone(), outcome.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = guard;
            settle_payment(&mut conn, &n, &outcome)
        })
        .await
        .map_err(SettleError::new)?
        .map_err(SettleError::new)
    }
}

fn settle_payment(
    conn: &mut Connection,
    n: &Notification,
    outcome: &Settlement,
) -> Result<(), FlowError> {
    let id = &n.request.payment.payment_id;
    // IMMEDIATE, as every transaction here that reads and then writes: a deferred one whose read
    // turns into a write while another connection writes fails at once ("database is locked"),
    // without waiting out the busy timeout.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let row: Option<(String, String, String, Option<i64>)> = tx
        .query_row(
            "SELECT status, customer_id, merchant, amount_tiyn FROM payments WHERE payment_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((status, customer, merchant, tiyn)) = row else {
        return Ok(());
    };
    // A debited payment always has its amount: without one it could be neither kept nor paid
    // back, and the settlement fails (and is tried again) rather than reverse nothing. One
    // never debited (closing) may have none.
    let debited = || ledger::stored_amount(tiyn.unwrap_or(-1));
    let code = outcome.result_code().to_owned();
    match (status.as_str(), outcome) {
        ("debited", Settlement::Keep { link_receipt }) => {
            let amount = debited()?;
            tx.execute(
                "UPDATE payments SET status = 'paid', ps_code = ?2, receipt = ?3, paid_at_ms = ?4 WHERE payment_id = ?1",
                params![id, code, link_receipt, ledger::now_ms()],
            )?;
            let notice = Notice::Paid {
                merchant: merchant.clone(),
                amount,
            };
            ledger::notify(
                &tx,
                &customer,
                &format!("Оплата {merchant}: {amount} ₸ · Төлем {merchant}: {amount} ₸"),
                &notice.stored(),
            )?;
        }
        ("debited", _) => {
            let amount = debited()?;
            tx.execute(
                "UPDATE payments SET status = 'rejected', ps_code = ?2 WHERE payment_id = ?1",
                params![id, code],
            )?;
            ledger::transfer(
                &tx,
                "reversal",
                &format!("payment {id} ({code})"),
                CLEARING,
                &customer_account(&customer),
                amount,
            )?;
            let notice = Notice::Rejected {
                code: code.clone(),
                amount,
            };
            ledger::notify(
                &tx,
                &customer,
                &format!(
                    "Платёж отклонён ({code}), {amount} ₸ возвращены · Төлем қабылданбады, {amount} ₸ қайтарылды"
                ),
                &notice.stored(),
            )?;
        }
        ("closing", _) => {
            // What the PS recorded decides, not what was asked.
            let status = if code == ResultCode::CancelledByClient.as_str() {
                "cancelled"
            } else {
                "rejected"
            };
            tx.execute(
                "UPDATE payments SET status = ?2, ps_code = ?3 WHERE payment_id = ?1",
                params![id, status, code],
            )?;
        }
        // Settled before (a repeat after a crash): nothing to do.
        _ => {}
    }
    tx.commit()?;
    Ok(())
}
