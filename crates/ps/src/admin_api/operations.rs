//! What the operator does and watches about money: cancellations of Custom payments, refunds
//! and their delivery, counters, register e-mails.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tolem_wire::Amount;

use super::edge::{AdminBody, AdminPath, AdminQuery};
use super::{AdminError, AdminResult, bad, body, internal};
use crate::domain::refund::Refusal;
use crate::domain::{PaymentId, RefundId, RefundStatus};
use crate::payments::{self, CancelOrder, Cancelled};
use crate::state::AppState;
use crate::store::Replay;

#[derive(Deserialize, Default)]
struct CancelRequest {
    /// Part of the payment to give back; all that is left when absent. Read from its exact text
    /// (DECISIONS 3): `1e2` or `0.019999` is no amount.
    #[serde(default, deserialize_with = "tolem_wire::amount::strict_json_opt")]
    amount: Option<Amount>,
}

/// Cancels a Custom payment at the service provider's request (SPEC §3, DECISIONS 23): a refund
/// of it is placed and delivered to the MPP like any other ([`payments::cancel`]).
pub(super) async fn cancel_payment(
    State(app): State<AppState>,
    AdminPath(id): AdminPath<PaymentId>,
    headers: HeaderMap,
    AdminBody(raw): AdminBody,
) -> AdminResult {
    let req: CancelRequest = if raw.is_empty() {
        CancelRequest::default()
    } else {
        body::<Option<CancelRequest>>(&raw)?.unwrap_or_default()
    };
    // A repeat with the same X-Request-ID and body gets the first answer and places nothing.
    let replay = crate::request_id::of_merchant(&headers).map(|request_id| {
        Replay::operator(
            format!("cancel-{id}-{request_id}"),
            hex::encode(Sha256::digest(&raw)),
        )
    });
    let order = CancelOrder {
        payment_id: id,
        amount: req.amount,
        replay,
    };
    match payments::cancel(&app, order).await.map_err(internal)? {
        Cancelled::Placed(body) => Ok((
            StatusCode::CREATED,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()),
        Cancelled::NoSuchPayment => {
            Err(AdminError(StatusCode::NOT_FOUND, "no such payment".into()))
        }
        Cancelled::NothingLeft => Err(bad("nothing left to refund")),
        Cancelled::ZeroAmount => Err(bad(
            "amount: more than 0.00 (leave it out for all that is left)",
        )),
        Cancelled::Refused(Refusal::AmountExceeded { left }) => Err(bad(format!(
            "the amount is more than what is left to refund ({left})"
        ))),
        Cancelled::Refused(refusal) => Err(bad(match refusal {
            Refusal::AmountExceeded { .. } => "the amount is more than what is left to refund",
            Refusal::TooManyRefunds => "the purchase has refunds.per_purchase_max refunds already",
            // The operator cancels any trade point's purchase, and without a return QR.
            Refusal::PaymentNotFound
            | Refusal::NotRefundable
            | Refusal::TradePointMismatch
            | Refusal::ReturnQrNotUsable => "only a confirmed Custom payment can be cancelled",
        })),
    }
}

#[derive(Deserialize)]
pub(super) struct RefundQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    after: Option<RefundId>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Deserialize)]
pub(super) struct PageQuery {
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Most rows one page of a list shows; its `next` leads on to the rest.
const PAGE_ROWS_MAX: usize = 500;
/// Rows of a page when the operator names no `limit`.
const PAGE_ROWS_DEFAULT: usize = 100;

fn page_rows(limit: Option<usize>) -> Result<usize, AdminError> {
    match limit.unwrap_or(PAGE_ROWS_DEFAULT) {
        0 => Err(bad("limit must be at least 1")),
        rows => Ok(rows.min(PAGE_ROWS_MAX)),
    }
}

/// One page of a list fetched one row past its size, and the cursor of the next page: the id of
/// its last row when that extra row showed that more follow, else none.
fn page<T, K>(mut rows: Vec<T>, size: usize, id: impl Fn(&T) -> K) -> (Vec<T>, Option<K>) {
    let more = rows.len() > size;
    rows.truncate(size);
    let next = if more { rows.last().map(id) } else { None };
    (rows, next)
}

/// Refunds, newest first, a page at a time: `{"refunds": [...], "next": <id> | null}`; `next`
/// given as `after` reads the following page.
pub(super) async fn refunds(
    State(app): State<AppState>,
    AdminQuery(query): AdminQuery<RefundQuery>,
) -> AdminResult {
    let status = match query.status.as_deref() {
        Some(text) => {
            Some(RefundStatus::parse(text).ok_or_else(|| bad(format!("unknown status {text}")))?)
        }
        None => None,
    };
    let size = page_rows(query.limit)?;
    let views = app
        .store
        .refund_views(status, query.after, size + 1)
        .await
        .map_err(internal)?;
    let (views, next) = page(views, size, |v| v.refund.id);
    let list: Vec<_> = views
        .into_iter()
        .map(|v| {
            let r = v.refund;
            let now = app.clock.now();
            let lease = v.lease.as_ref().filter(|l| l.until > now);
            json!({
                "refund_id": r.id,
                "kind": r.kind.as_str(),
                "status": r.effective_status(app.clock.now()).as_str(),
                "payment_id": r.payment_id,
                "amount": r.amount,
                "mpp": r.owner.as_ref().map(|o| o.mpp.clone()),
                "requested_at": r.requested_at.map(|t| t.to_string()),
                "finished_at": r.finished_at.map(|t| t.to_string()),
                "mpp_result": r.mpp_result,
                "attempts": v.attempts,
                "next_attempt_at": v.next_attempt_at.map(|t| t.to_string()),
                "last_error": v.last_error,
                "flagged": v.flagged,
                // While a node's claim runs: an attempt under way, or a node that died during
                // one, whose refund no other node takes before `lease_until`.
                "leased_by": lease.map(|l| l.node.clone()),
                "lease_until": lease.map(|l| l.until.to_string()),
            })
        })
        .collect();
    Ok(Json(json!({"refunds": list, "next": next})).into_response())
}

pub(super) async fn retry_refund(
    State(app): State<AppState>,
    AdminPath(id): AdminPath<RefundId>,
) -> AdminResult {
    if !crate::refunds::retry_now(&app, id)
        .await
        .map_err(internal)?
    {
        return Err(AdminError(
            StatusCode::NOT_FOUND,
            "no undelivered refund with that id".into(),
        ));
    }
    Ok(Json(json!({"refund_id": id, "due": "now"})).into_response())
}

/// Counters in the Prometheus text format.
pub(super) async fn metrics(State(app): State<AppState>) -> AdminResult {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &app.metrics;
    // The undelivered refunds are read from the store; the rest is in memory. A store out of
    // reach (or not answering within 2 s) leaves out the two gauges and says so, and everything
    // else is still answered: the outage is when the operator needs the counters most.
    let undelivered = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        app.store.undelivered_counts(),
    )
    .await;
    let store = match undelivered {
        Ok(Ok((undelivered, flagged))) => format!(
            "# TYPE tolem_refunds_undelivered gauge\ntolem_refunds_undelivered {undelivered}\n\
             # TYPE tolem_refunds_undelivered_flagged gauge\ntolem_refunds_undelivered_flagged {flagged}\n\
             # TYPE tolem_store_reachable gauge\ntolem_store_reachable 1\n"
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: the store did not answer; its gauges left out");
            "# TYPE tolem_store_reachable gauge\ntolem_store_reachable 0\n".to_owned()
        }
        Err(_) => {
            tracing::warn!("metrics: the store did not answer in 2 s; its gauges left out");
            "# TYPE tolem_store_reachable gauge\ntolem_store_reachable 0\n".to_owned()
        }
    };
    // Which build and node these counters are of (a node's own admin listener is scraped).
    let node = crate::state::label_value(&app.config.node_name);
    let text = format!(
        "# TYPE tolem_build_info gauge\ntolem_build_info{{version=\"{}\",node=\"{node}\"}} 1\n\
         # TYPE tolem_refund_attempts_total counter\ntolem_refund_attempts_total {}\n\
         # TYPE tolem_refunds_completed_total counter\ntolem_refunds_completed_total {}\n\
         # TYPE tolem_refunds_failed_total counter\ntolem_refunds_failed_total {}\n\
         # TYPE tolem_refund_retries_total counter\ntolem_refund_retries_total {}\n\
         # TYPE tolem_refunds_flagged_total counter\ntolem_refunds_flagged_total {}\n\
         {store}\
         # TYPE tolem_console_sign_ins_refused_total counter\ntolem_console_sign_ins_refused_total {}\n",
        env!("CARGO_PKG_VERSION"),
        m.refund_attempts.load(Relaxed),
        m.refunds_completed.load(Relaxed),
        m.refunds_failed.load(Relaxed),
        m.refund_retries.load(Relaxed),
        m.refunds_flagged.load(Relaxed),
        m.console_sign_ins_refused.load(Relaxed),
    );
    // Why attempts failed, by kind (`outgoing.rs`): a TLS count that grows means a certificate
    // or the trust of it needs the operator.
    use crate::outgoing::FailureKind as K;
    // The kinds an HTTP call fails by (an e-mail's differ: `smtp` in place of `http` and
    // `answer`).
    const HTTP: &[K] = &[
        K::Tls,
        K::Connect,
        K::Timeout,
        K::Protocol,
        K::Http,
        K::Answer,
        K::Other,
    ];
    let text = format!(
        "{text}{}{}{}",
        m.refund_attempt_failures
            .prometheus("tolem_refund_attempt_failures_total", HTTP),
        m.register_email_failures.prometheus(
            "tolem_register_email_failures_total",
            &[
                K::Tls,
                K::Connect,
                K::Timeout,
                K::Protocol,
                K::Smtp,
                K::Other
            ],
        ),
        m.amount_callback_failures
            .prometheus("tolem_amount_callback_failures_total", HTTP),
    );
    // The connection layer (DECISIONS 43), all listeners together: how close they are to their
    // caps, what their deadlines closed, the requests they refused below the router, and the TLS
    // handshakes that failed (DECISIONS 41).
    let c = &m.connections;
    let text = format!(
        "{text}# TYPE tolem_connections_open gauge\ntolem_connections_open {}\n\
         # TYPE tolem_connections_open_max gauge\ntolem_connections_open_max {}\n\
         # TYPE tolem_connections_accepted_total counter\ntolem_connections_accepted_total {}\n\
         # TYPE tolem_connections_closed_headers_late_total counter\ntolem_connections_closed_headers_late_total {}\n\
         # TYPE tolem_connections_closed_idle_total counter\ntolem_connections_closed_idle_total {}\n\
         # TYPE tolem_connections_closed_send_late_total counter\ntolem_connections_closed_send_late_total {}\n\
         # TYPE tolem_connections_cap_reached_total counter\ntolem_connections_cap_reached_total {}\n\
         # TYPE tolem_tls_handshakes_failed_total counter\ntolem_tls_handshakes_failed_total {}\n\
         # TYPE tolem_connections_refused_total counter\n\
         tolem_connections_refused_total{{reason=\"uri_too_long\"}} {}\n\
         tolem_connections_refused_total{{reason=\"headers_too_large\"}} {}\n\
         tolem_connections_refused_total{{reason=\"head_too_large\"}} {}\n\
         tolem_connections_refused_total{{reason=\"head_malformed\"}} {}\n\
         tolem_connections_refused_total{{reason=\"body_framing\"}} {}\n",
        c.open.load(Relaxed),
        c.open_max.load(Relaxed),
        c.accepted.load(Relaxed),
        c.closed_headers_late.load(Relaxed),
        c.closed_idle.load(Relaxed),
        c.closed_send_late.load(Relaxed),
        c.cap_reached.load(Relaxed),
        c.tls_handshakes_failed.load(Relaxed),
        c.refused_uri_too_long.load(Relaxed),
        c.refused_headers_too_large.load(Relaxed),
        c.refused_head_too_large.load(Relaxed),
        c.refused_head_malformed.load(Relaxed),
        c.refused_body_framing.load(Relaxed),
    );
    // When each certificate the PS shows ends (a listener's, by its URL; the PS's own for
    // outgoing calls, `outgoing`), and whether a listener's files failed to read again (the older
    // certificate then stays in force): renewals that did not happen, before clients refuse.
    let mut text = text;
    let listeners = m.tls_listeners.get().map(Vec::as_slice).unwrap_or_default();
    let ends = listeners
        .iter()
        .filter_map(|(url, files)| Some((url.as_str(), files.expires_at()?)))
        .chain(
            app.outgoing
                .client_certificate_expires_at()
                .map(|end| ("outgoing", end)),
        )
        .collect::<Vec<_>>();
    // Declared even with no certificate to show (no TLS listener, no client certificate), so
    // that the alert rules always name a series the PS exports.
    text.push_str("# TYPE tolem_tls_certificate_expiry_timestamp_seconds gauge\n");
    for (certificate, end) in ends {
        text.push_str(&format!(
            "tolem_tls_certificate_expiry_timestamp_seconds{{certificate=\"{certificate}\"}} {end}\n"
        ));
    }
    text.push_str("# TYPE tolem_tls_files_reload_failing gauge\n");
    for (url, files) in listeners {
        text.push_str(&format!(
            "tolem_tls_files_reload_failing{{certificate=\"{url}\"}} {}\n",
            u8::from(files.reload_failing())
        ));
    }
    // On PostgreSQL, scan, checkout, notifyPayment, qr/create and the reads of every POS call run
    // on the async workers unless they turn out to need a blocking thread's connection
    // (docs/ARCHITECTURE.md); the fallback counts should stay flat.
    let staged = app.store.staged_counts();
    let text = format!(
        "{text}# TYPE tolem_store_staged_transactions_total counter\ntolem_store_staged_transactions_total {}\n\
         # TYPE tolem_store_staged_fallbacks_total counter\ntolem_store_staged_fallbacks_total {}\n\
         # TYPE tolem_store_staged_reads_total counter\ntolem_store_staged_reads_total {}\n\
         # TYPE tolem_store_staged_read_fallbacks_total counter\ntolem_store_staged_read_fallbacks_total {}\n",
        staged.transactions, staged.fallbacks, staged.reads, staged.read_fallbacks,
    );
    // What the APIs answered and how long each took, and the requests refused over a rate:
    // each MPP's on the MPP API, the organizations' POSTs together on the merchant API.
    let mut text = format!(
        "{text}{}# TYPE tolem_mpp_requests_over_rate_total counter\n",
        m.traffic.prometheus()
    );
    // Every MPP of the catalog at 0 until it is refused (a series that appears at 1 shows no
    // increase to an alert), and any other name a refusal was counted under.
    let mut over_rate = app.mpp_requests.refused();
    for mpp in app.catalog.get().mpps.keys() {
        over_rate.entry(mpp.as_str().to_owned()).or_default();
    }
    for (mpp, count) in over_rate {
        let mpp = crate::state::label_value(&mpp);
        text.push_str(&format!(
            "tolem_mpp_requests_over_rate_total{{mpp=\"{mpp}\"}} {count}\n"
        ));
    }
    let pos_refused: u64 = app.pos_writes.refused().values().sum();
    text.push_str(&format!(
        "# TYPE tolem_pos_writes_over_rate_total counter\ntolem_pos_writes_over_rate_total {pos_refused}\n"
    ));
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response())
}

/// Register e-mails, newest first: what is queued, sent (when, to whom) or failing; a page at a
/// time like [`refunds`]: `{"registers": [...], "next": <id> | null}`.
pub(super) async fn register_deliveries(
    State(app): State<AppState>,
    AdminQuery(query): AdminQuery<PageQuery>,
) -> AdminResult {
    let size = page_rows(query.limit)?;
    let views = app
        .store
        .register_deliveries(query.after, size + 1)
        .await
        .map_err(internal)?;
    let (views, next) = page(views, size, |v| v.id);
    let list: Vec<_> = views
        .into_iter()
        .map(|v| {
            json!({
                "id": v.id,
                "mpp": v.due.mpp,
                "kind": v.due.kind,
                "period": v.due.period,
                "sendings": v.sendings,
                "sent_at": v.sent_at.map(|t| t.to_string()),
                "sent_to": v.sent_to,
                "attempts": v.attempts,
                "last_error": v.last_error,
                "flagged": v.flagged,
            })
        })
        .collect();
    Ok(Json(json!({"registers": list, "next": next})).into_response())
}
