//! The receipt page behind `linkReceipt` (SPEC 4.3, 4.4): `GET /receipt?id=…[&locale=kk]`, for a
//! payment or a refund. Reachable only through the unguessable id; shows what a receipt needs and
//! no more (no customer id).

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::app::AppState;
use crate::domain::{RefundStatus, Status};

pub fn router() -> Router<AppState> {
    Router::new().route("/receipt", get(page))
}

#[derive(Deserialize)]
struct ReceiptQuery {
    id: String,
    #[serde(default)]
    locale: Option<String>,
}

struct Labels {
    title: &'static str,
    merchant: &'static str,
    bin: &'static str,
    trade_point: &'static str,
    amount: &'static str,
    date: &'static str,
    ps_id: &'static str,
    mpp_id: &'static str,
    status: &'static str,
    paid: &'static str,
    not_paid: &'static str,
    refund_title: &'static str,
    purchase: &'static str,
    refunded: &'static str,
    refund_pending: &'static str,
    refund_failed: &'static str,
}

const RU: Labels = Labels {
    title: "Чек об оплате",
    merchant: "Продавец",
    bin: "БИН",
    trade_point: "Торговая точка",
    amount: "Сумма",
    date: "Дата и время",
    ps_id: "Номер операции ПС",
    mpp_id: "Номер операции участника",
    status: "Статус",
    paid: "Оплачено",
    not_paid: "Не оплачено",
    refund_title: "Чек возврата",
    purchase: "Покупка",
    refunded: "Возвращено",
    refund_pending: "Возврат в обработке",
    refund_failed: "Возврат не выполнен",
};

const KK: Labels = Labels {
    title: "Төлем түбіртегі",
    merchant: "Сатушы",
    bin: "БСН",
    trade_point: "Сауда нүктесі",
    amount: "Сома",
    date: "Күні мен уақыты",
    ps_id: "ТЖ операциясының нөмірі",
    mpp_id: "Қатысушы операциясының нөмірі",
    status: "Мәртебесі",
    paid: "Төленді",
    not_paid: "Төленбеді",
    refund_title: "Қайтару түбіртегі",
    purchase: "Сатып алу",
    refunded: "Қайтарылды",
    refund_pending: "Қайтару өңделуде",
    refund_failed: "Қайтару орындалмады",
};

async fn page(State(app): State<AppState>, Query(q): Query<ReceiptQuery>) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such receipt").into_response();
    if q.id.len() != 32 || !q.id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return not_found();
    }
    let l = if q.locale.as_deref() == Some("kk") {
        &KK
    } else {
        &RU
    };
    let found = match app.store.payment_by_receipt(q.id.clone()).await {
        Ok(Some(p)) => Some(Ok(p)),
        Ok(None) => match app.store.refund_by_receipt(q.id.clone()).await {
            Ok(refund) => refund.map(Err),
            Err(e) => return fault(e),
        },
        Err(e) => return fault(e),
    };
    let Some(found) = found else {
        return not_found();
    };
    let catalog = app.catalog.get();
    let trade_point_id = match &found {
        Ok(p) => p.trade_point_id,
        Err(r) => r.trade_point_id,
    };
    let Some((point, org)) = catalog.merchant(trade_point_id) else {
        return not_found();
    };
    let mut rows = vec![
        (l.merchant, org.name.clone()),
        (l.bin, org.bin.clone()),
        (
            l.trade_point,
            format!("{}, {}, {}", point.name, point.address, point.city),
        ),
    ];
    let title = match &found {
        Ok(payment) => {
            let when = payment.finished_at.unwrap_or(payment.created_at);
            rows.extend([
                (
                    l.amount,
                    payment.amount.map(|a| format!("{a} ₸")).unwrap_or_default(),
                ),
                (l.date, tolem_wire::time::format_mpp(when, &app.zone)),
                (l.ps_id, payment.id.to_string()),
                (l.mpp_id, payment.mpp_payment_id.clone().unwrap_or_default()),
                (
                    l.status,
                    if payment.status == Status::Confirmed {
                        l.paid
                    } else {
                        l.not_paid
                    }
                    .to_owned(),
                ),
            ]);
            l.title
        }
        Err(refund) => {
            let when = refund
                .finished_at
                .or(refund.requested_at)
                .unwrap_or(refund.created_at);
            let status = match refund.status {
                RefundStatus::Completed => l.refunded,
                RefundStatus::Failed => l.refund_failed,
                _ => l.refund_pending,
            };
            rows.extend([
                (
                    l.amount,
                    refund.amount.map(|a| format!("{a} ₸")).unwrap_or_default(),
                ),
                (l.date, tolem_wire::time::format_mpp(when, &app.zone)),
                (l.ps_id, refund.id.to_string()),
                (
                    l.purchase,
                    refund.payment_id.map(|p| p.to_string()).unwrap_or_default(),
                ),
                (l.status, status.to_owned()),
            ]);
            l.refund_title
        }
    };
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title><style>body{{font-family:sans-serif;max-width:28em;margin:2em auto}}\
         td{{padding:.3em .6em;border-bottom:1px solid #ddd}}@media print{{body{{margin:0}}}}</style></head>\
         <body><h1>{t}</h1><table>",
        t = title
    );
    for (label, value) in rows {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>",
            label,
            escape(&value)
        ));
    }
    html.push_str("</table></body></html>");
    Html(html).into_response()
}

fn fault(e: crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "cannot read a receipt");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// Text made safe to put inside HTML.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
