//! What the customer's app asks the MPP to do: scan a QR, fill a Custom form (checkout), confirm
//! (pay) or go back, and read balance, history and notifications.
//!
//! Paying follows SPEC §2 steps 20–23: the customer is debited first, then the PS is told with
//! notifyPayment, retried until it answers (also after a restart of the MPP); when the PS does
//! not confirm, the debit is reversed.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tolem_sdk::refund::{Credit, CreditError, Credited, RefundEndpoint};
use tolem_sdk::{MppClient, Outcome, RequestId, RetryPolicy, Scanned, SdkError, SetupError};
use tolem_wire::mpp::{
    CheckoutRequest, Merchant, NotifyPayment, NotifyPaymentRequest, NotifyPaymentResponse,
    ParameterValue, PaymentData, QrCodeType, RefundRequest, ResultBody, ResultCode, ScanRequest,
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
            SdkError::Unreadable(e) => FlowError::Ps(e.to_string()),
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

/// The PS's final answer to a notifyPayment, whatever its code: the caller decides by the code.
fn settled(outcome: Outcome<NotifyPaymentResponse>) -> Result<NotifyPaymentResponse, FlowError> {
    match outcome {
        Outcome::Refused(result) => Ok(NotifyPaymentResponse {
            result,
            link_receipt: None,
        }),
        other => done(other),
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
}

/// Refunds from the PS credit the customer back from the clearing account (via the kit's
/// exactly-once endpoint) and push a notification.
struct LedgerCredit;

impl Credit for LedgerCredit {
    fn credit(
        &self,
        tx: &rusqlite::Transaction<'_>,
        refund: &RefundRequest,
    ) -> Result<Credited, CreditError> {
        // Money goes back only for a payment this customer made here, and never more than it.
        let paid: Option<(String, i64)> = tx
            .query_row(
                "SELECT customer_id, amount_tiyn FROM payments WHERE payment_id = ?1 AND status = 'paid'",
                [&refund.payment_id],
                |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(0))),
            )
            .optional()?;
        let Some((customer, paid_tiyn)) =
            paid.filter(|(customer, _)| *customer == refund.customer_id)
        else {
            return Ok(Credited::Refused(ResultCode::ProcessFail));
        };
        let refunded: i64 = tx.query_row(
            "SELECT COALESCE(SUM(amount_tiyn), 0) FROM tolem_refunds WHERE payment_id = ?1 AND result_code = 'SUCCESS'",
            [&refund.payment_id],
            |r| r.get(0),
        )?;
        let asked = i64::try_from(refund.refund_amount.tiyn())
            .map_err(|e| CreditError::Other(e.to_string()))?;
        if refunded
            .checked_add(asked)
            .is_none_or(|total| total > paid_tiyn)
        {
            return Ok(Credited::Refused(ResultCode::ProcessFail));
        }
        let account = customer_account(&customer);
        let reference = format!(
            "refund {} of payment {}",
            refund.refund_id, refund.payment_id
        );
        ledger::transfer(
            tx,
            "refund",
            &reference,
            CLEARING,
            &account,
            refund.refund_amount,
        )
        .map_err(|e| CreditError::Other(e.to_string()))?;
        let text = format!(
            "Возврат {} ₸ · Қайтару {} ₸ ({})",
            refund.refund_amount, refund.refund_amount, refund.link_receipt
        );
        let notice = Notice::Refunded {
            amount: refund.refund_amount,
            receipt: refund.link_receipt.clone(),
        };
        ledger::notify(tx, &customer, &text, &notice.stored())
            .map_err(|e| CreditError::Other(e.to_string()))?;
        Ok(Credited::Yes)
    }
}

impl Mpp {
    /// Opens the database (creating tables and demo customers) and resumes unfinished payments.
    pub fn open(config: &MppConfig, retry: RetryPolicy) -> Result<Mpp, FlowError> {
        let conn = Connection::open(&config.database)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(ledger::SCHEMA)?;
        ledger::upgrade(&conn)?;
        for c in &config.customers {
            ledger::seed_customer(&conn, &c.id, &c.name, c.deposit)?;
        }
        let endpoint = RefundEndpoint::with_connection(conn, Arc::new(LedgerCredit))?;
        let ps = MppClient::builder(&config.ps_url, &config.caller_name)
            .retry_policy(retry)
            .build()?;
        let mpp = Mpp {
            db: endpoint.connection(),
            ps,
            caller_name: config.caller_name.clone(),
            endpoint,
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

    /// Payments debited but not yet answered by the PS (the MPP stopped meanwhile): tell the PS
    /// again until it answers.
    pub async fn resume(&self) -> Result<usize, FlowError> {
        let pending: Vec<String> = self
            .db(|conn| {
                let mut stmt =
                    conn.prepare("SELECT payment_id FROM payments WHERE status = 'debited'")?;
                let ids = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(ids)
            })
            .await?;
        for payment_id in &pending {
            let mpp = self.clone();
            let payment_id = payment_id.clone();
            tokio::spawn(async move {
                if let Err(e) = mpp.resolve(&payment_id, Locale::Ru).await {
                    tracing::error!(error = %e, payment_id, "cannot resolve a debited payment");
                }
            });
        }
        Ok(pending.len())
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
        let debited = self
            .db(move |conn| {
                let tx = conn.transaction()?;
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
        // Runs to the end even if the app stops waiting.
        let mpp = self.clone();
        let id = payment_id.to_owned();
        tokio::spawn(async move { mpp.resolve(&id, locale).await })
            .await
            .map_err(|e| FlowError::Internal(e.to_string()))?
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

    /// Tells the PS a verdict other than SUCCESS for a payment that was not debited.
    async fn finish_unpaid(
        &self,
        payment_id: &str,
        code: &str,
        message: &str,
        locale: Locale,
    ) -> Result<PaymentView, FlowError> {
        let id = payment_id.to_owned();
        let taken = self
            .db(move |conn| {
                Ok(conn.execute("UPDATE payments SET status = 'closing' WHERE payment_id = ?1 AND status = 'scanned'", [&id])?)
            })
            .await?;
        if taken == 0 {
            return Err(FlowError::Invalid(
                "the payment is already being paid or done".to_owned(),
            ));
        }
        let record = self.payment_any(payment_id).await?;
        let request = NotifyPaymentRequest {
            result: ResultBody {
                result_code: code.to_owned(),
                result_message: message.to_owned(),
            },
            payment: NotifyPayment {
                payment_id: payment_id.to_owned(),
                mpp_payment_id: record.mpp_payment_id.clone(),
                payment_amount: None,
                customer_id: None,
            },
            customer_id: Some(record.customer_id.clone()),
        };
        let request_id = notify_request_id(&record.mpp_payment_id);
        let request_id = RequestId::new(&request_id)?;
        let answer = self
            .ps
            .in_locale(locale)
            .notify_payment_with_id(&request, &request_id)
            .await?;
        let answer = settled(answer.outcome)?;
        // What the PS recorded decides, not what was asked.
        let status = match answer.result.code() {
            Some(ResultCode::CancelledByClient) => "cancelled",
            _ => "rejected",
        };
        let (id, ps_code) = (payment_id.to_owned(), answer.result.result_code.clone());
        self.db(move |conn| {
            conn.execute(
                "UPDATE payments SET status = ?1, ps_code = ?2 WHERE payment_id = ?3",
                params![status, ps_code, id],
            )?;
            Ok(())
        })
        .await?;
        Ok(PaymentView {
            payment_id: payment_id.to_owned(),
            status: status.to_owned(),
            amount: None,
            receipt: None,
            ps_code: Some(answer.result.result_code),
        })
    }

    /// Tells the PS about a debited payment until it answers, then keeps or reverses the debit.
    async fn resolve(&self, payment_id: &str, locale: Locale) -> Result<PaymentView, FlowError> {
        let record = self.payment_any(payment_id).await?;
        let amount = record
            .amount
            .ok_or_else(|| FlowError::Internal("a debited payment without amount".to_owned()))?;
        let request = NotifyPaymentRequest {
            result: ResultBody::success(),
            payment: NotifyPayment {
                payment_id: payment_id.to_owned(),
                mpp_payment_id: record.mpp_payment_id.clone(),
                payment_amount: Some(amount),
                customer_id: None,
            },
            customer_id: Some(record.customer_id.clone()),
        };
        let request_id = notify_request_id(&record.mpp_payment_id);
        let request_id = RequestId::new(&request_id)?;
        let answer = self
            .ps
            .in_locale(locale)
            .notify_payment_with_id(&request, &request_id)
            .await?;
        let answer = settled(answer.outcome)?;
        let paid = answer.result.code() == Some(ResultCode::Success);
        let (id, customer, code, receipt) = (
            payment_id.to_owned(),
            record.customer_id.clone(),
            answer.result.result_code.clone(),
            answer.link_receipt.clone(),
        );
        let merchant = record.merchant.clone();
        self.db(move |conn| {
            let tx = conn.transaction()?;
            // Only a payment still debited is settled here, so a second resolver changes nothing.
            let still_debited = tx.execute("UPDATE payments SET status = ?1, ps_code = ?2, receipt = ?3, paid_at_ms = ?5 WHERE payment_id = ?4 AND status = 'debited'",
                params![if paid { "paid" } else { "rejected" }, code, receipt, id, ledger::now_ms()])?;
            if still_debited == 1 {
                if paid {
                    let notice = Notice::Paid { merchant: merchant.clone(), amount };
                    ledger::notify(&tx, &customer, &format!("Оплата {merchant}: {amount} ₸ · Төлем {merchant}: {amount} ₸"), &notice.stored())?;
                } else {
                    ledger::transfer(&tx, "reversal", &format!("payment {id} ({code})"), CLEARING, &customer_account(&customer), amount)?;
                    let notice = Notice::Rejected { code: code.clone(), amount };
                    ledger::notify(&tx, &customer, &format!("Платёж отклонён ({code}), {amount} ₸ возвращены · Төлем қабылданбады, {amount} ₸ қайтарылды"), &notice.stored())?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await?;
        Ok(PaymentView {
            payment_id: payment_id.to_owned(),
            status: if paid { "paid" } else { "rejected" }.to_owned(),
            amount: Some(amount),
            receipt: answer.link_receipt,
            ps_code: Some(answer.result.result_code),
        })
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
                "SELECT customer_id, kind, merchant, amount_tiyn, service_id, status, mpp_payment_id FROM payments WHERE payment_id = ?1",
                [&id],
                |r| {
                    Ok(Record {
                        customer_id: r.get(0)?,
                        kind: r.get(1)?,
                        merchant: r.get(2)?,
                        amount: r.get::<_, Option<i64>>(3)?.and_then(|t| u64::try_from(t).ok()).map(Amount::from_tiyn),
                        service_id: r.get(4)?,
                        status: r.get(5)?,
                        mpp_payment_id: r.get(6)?,
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
    merchant: String,
    amount: Option<Amount>,
    service_id: Option<i64>,
    status: String,
    mpp_payment_id: String,
}

/// One X-Request-ID per payment's notifyPayment, the same after a restart of the MPP.
fn notify_request_id(mpp_payment_id: &str) -> String {
    format!("notify-{mpp_payment_id}")
}
