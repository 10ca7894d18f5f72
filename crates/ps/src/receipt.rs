//! The receipt page behind `linkReceipt` (SPEC 4.3): `GET /receipt?id=…[&locale=kk]`. Reachable
//! only through the unguessable id; shows what a receipt needs and no more (no customer id).

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::app::AppState;
use crate::domain::Status;

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
};

async fn page(State(app): State<AppState>, Query(q): Query<ReceiptQuery>) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such receipt").into_response();
    if q.id.len() != 32 || !q.id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return not_found();
    }
    let payment = match app.store.payment_by_receipt(q.id.clone()).await {
        Ok(Some(p)) => p,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a receipt");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let l = if q.locale.as_deref() == Some("kk") {
        &KK
    } else {
        &RU
    };
    let catalog = app.catalog.get();
    let Some((point, org)) = catalog.merchant(payment.trade_point_id) else {
        return not_found();
    };
    let when = payment.finished_at.unwrap_or(payment.created_at);
    let rows = [
        (l.merchant, org.name.clone()),
        (l.bin, org.bin.clone()),
        (
            l.trade_point,
            format!("{}, {}, {}", point.name, point.address, point.city),
        ),
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
    ];
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title><style>body{{font-family:sans-serif;max-width:28em;margin:2em auto}}\
         td{{padding:.3em .6em;border-bottom:1px solid #ddd}}@media print{{body{{margin:0}}}}</style></head>\
         <body><h1>{t}</h1><table>",
        t = l.title
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
