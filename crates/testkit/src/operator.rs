//! What the operator does, through the admin API: where refunds go, a merchant's status, and
//! how a refund's delivery to the bank went.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::pos::send;
use crate::sandbox::SandboxPs;
use crate::{CAFE_BIN, TestkitError};

/// The sandbox's admin token (`examples/sandbox.toml`).
const ADMIN_TOKEN: &str = "sandbox-admin-token";
/// How often a wait looks at the refund again.
const POLL_INTERVAL_MS: u64 = 20;
/// How many looks a wait takes before it gives up: a minute of real time, enough for a bank's
/// `/refund` that answers within the PS's 5 s timeout after a few retries.
const REFUND_WAIT_POLLS_MAX: u32 = 3_000;
/// Where a refund stands (the admin API's `status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefundState {
    /// A return QR not yet scanned.
    QrCreated,
    /// A return QR scanned: the customer is known, no refund placed yet.
    Identified,
    /// Placed and being delivered to the bank (retried until it answers a final code).
    Pending,
    /// The bank answered `SUCCESS`: credited.
    Completed,
    /// The bank answered a final refusal (`PROCESS_FAIL`, …): nothing was credited.
    Failed,
    /// A return QR not used in time.
    Expired,
}

/// How a refund's delivery to the bank went, as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct RefundDelivery {
    /// The refund's id: the refundId the bank's `/refund` was called with.
    pub refund_id: i64,
    /// Where it stands.
    pub status: RefundState,
    /// The refunded purchase, once the refund is placed.
    pub payment_id: Option<i64>,
    /// The amount refunded, once the refund is placed.
    pub amount: Option<tolem_wire::Amount>,
    /// The bank's final `resultCode`, once it answered one.
    pub mpp_result: Option<String>,
    /// Calls made to the bank's `/refund` so far.
    pub attempts: u32,
    /// Why the last call did not settle it (a timeout, HTTP 500, `UNKNOWN_EXCEPTION`, …).
    pub last_error: Option<String>,
    /// Undelivered long enough that the operator is alerted.
    pub flagged: bool,
    /// When the next call is due, while delivery goes on (RFC 3339).
    pub next_attempt_at: Option<String>,
}

impl SandboxPs {
    /// Delivers the refunds of MPP `caller_name` to `url` from now on (the admin API's
    /// `PUT /admin/v1/mpps/{caller_name}`), e.g. the bank's `http://127.0.0.1:<port>/refund`.
    pub async fn set_refund_url(&self, caller_name: &str, url: &str) -> Result<(), TestkitError> {
        let catalog = self.admin("GET", "/admin/v1/catalog", None).await?;
        let mut mpp = catalog["mpps"]
            .as_array()
            .and_then(|mpps| mpps.iter().find(|m| m["caller_name"] == caller_name))
            .cloned()
            .ok_or_else(|| TestkitError::Start(format!("no MPP {caller_name} in the catalog")))?;
        mpp["refund_url"] = json!(url);
        let path = format!("/admin/v1/mpps/{caller_name}");
        self.admin("PUT", &path, Some(&mpp)).await?;
        Ok(())
    }

    /// The operator suspends the café's organization: scans and notifyPayments for its
    /// purchases are answered `PAYMENTS_SUSPENDED` until [`SandboxPs::reopen_merchant`].
    pub async fn suspend_merchant(&self) -> Result<(), TestkitError> {
        self.set_merchant_status("suspended").await
    }

    /// The operator blocks the café's organization: its QRs are answered `INVALID_MERCHANT`.
    pub async fn block_merchant(&self) -> Result<(), TestkitError> {
        self.set_merchant_status("blocked").await
    }

    /// The café's organization takes payments again.
    pub async fn reopen_merchant(&self) -> Result<(), TestkitError> {
        self.set_merchant_status("active").await
    }

    /// How a refund's delivery went so far; `None` if the PS has no such refund.
    pub async fn refund_delivery(
        &self,
        refund_id: i64,
    ) -> Result<Option<RefundDelivery>, TestkitError> {
        // The list runs newest first from its cursor: the one refund just past `refund_id + 1`
        // is this one, if it exists.
        let path = format!(
            "/admin/v1/refunds?after={}&limit=1",
            refund_id.saturating_add(1)
        );
        let page = self.admin("GET", &path, None).await?;
        let Some(found) = page["refunds"]
            .as_array()
            .and_then(|l| l.iter().find(|r| r["refund_id"] == refund_id))
        else {
            return Ok(None);
        };
        serde_json::from_value(found.clone())
            .map(Some)
            .map_err(|_| TestkitError::Unexpected {
                call: format!("GET {path}"),
                http_status: 200,
                body: found.to_string(),
            })
    }

    /// Waits until the bank has answered refund `refund_id` with a final code (`Completed` or
    /// `Failed`), and returns how it went. When a retry is due later (the bank answered HTTP 500
    /// or `UNKNOWN_EXCEPTION`, or did not answer), the PS's clock is moved to that moment, so
    /// retries happen at once; the clock moves no further than they need.
    pub async fn wait_refund_settled(
        &self,
        refund_id: i64,
    ) -> Result<RefundDelivery, TestkitError> {
        for _ in 0..REFUND_WAIT_POLLS_MAX {
            if let Some(delivery) = self.refund_delivery(refund_id).await? {
                match delivery.status {
                    RefundState::Completed | RefundState::Failed => return Ok(delivery),
                    _ => self.advance_to(delivery.next_attempt_at.as_deref()),
                }
            }
            tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
        }
        Err(TestkitError::GaveUp(format!(
            "refund {refund_id} was answered by the MPP"
        )))
    }

    /// Moves the clock to `at` if that is later than now.
    fn advance_to(&self, at: Option<&str>) {
        let Some(at) = at.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
            return;
        };
        let ahead = at.duration_since(self.now());
        if ahead.is_positive() {
            self.advance(Duration::try_from(ahead).unwrap_or_default());
        }
    }

    async fn set_merchant_status(&self, status: &str) -> Result<(), TestkitError> {
        let path = format!("/admin/v1/organizations/{CAFE_BIN}/status");
        self.admin("POST", &path, Some(&json!({ "status": status })))
            .await?;
        Ok(())
    }

    /// An admin API call: its JSON answer on HTTP 200, [`TestkitError::Unexpected`] otherwise.
    async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, TestkitError> {
        let url = format!("{}{path}", self.url);
        let mut request = match method {
            "PUT" => self.http.put(url),
            "POST" => self.http.post(url),
            _ => self.http.get(url),
        };
        request = request.bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(body);
        }
        let call = format!("{method} {path}");
        let (http_status, text) = send(&call, request).await?;
        match serde_json::from_str(&text) {
            Ok(value) if http_status == 200 => Ok(value),
            _ => Err(TestkitError::Unexpected {
                call,
                http_status,
                body: text,
            }),
        }
    }
}
