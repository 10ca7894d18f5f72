//! A typed client of the reference MPP's app API (`/app/v1/...`, see [`crate::app_api`]): the
//! request bodies and answers are the server's own serde types, so the two cannot disagree.

use std::time::Duration;

use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tolem_wire::mpp::ParameterValue;
use tolem_wire::{Amount, Locale};

use crate::app_api::{
    BACK_PATH, CHECKOUT_PATH, CONFIRM_PATH, CheckoutBody, CheckoutView, ConfirmBody, SCAN_PATH,
    ScanBody,
};
use crate::flows::{Account, PaymentView, ScanView};
use crate::wallet::WalletError;

/// How long the wallet waits to connect to the MPP.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long the wallet waits for an answer. Confirm is the slow one: the MPP answers only after
/// the PS has answered notifyPayment, which it retries; past this the payment still completes at
/// the MPP and shows up in the history.
pub const REQUEST_TIMEOUT_MS: u64 = 90_000;
/// The largest answer the wallet reads (the account's history is capped at 100 rows by the MPP).
pub const RESPONSE_BYTES_MAX: usize = 1024 * 1024;
/// The longest piece of a non-JSON error body quoted back to the customer.
const ERROR_TEXT_CHARS_MAX: usize = 200;

#[derive(Clone, Debug)]
pub struct AppClient {
    http: reqwest::Client,
    base: Url,
}

/// The app API's name of a locale.
fn locale_code(locale: Locale) -> String {
    match locale {
        Locale::Ru => "ru",
        Locale::Kk => "kk",
    }
    .to_owned()
}

impl AppClient {
    /// A client of the MPP at `base_url` (e.g. `http://127.0.0.1:8091`).
    pub fn new(base_url: &str) -> Result<AppClient, WalletError> {
        let base =
            Url::parse(base_url).map_err(|e| WalletError::BadUrl(format!("{base_url} ({e})")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(WalletError::BadUrl(base_url.to_owned()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .build()
            .map_err(|e| WalletError::BadUrl(e.to_string()))?;
        Ok(AppClient { http, base })
    }

    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    pub async fn scan(
        &self,
        customer_id: &str,
        qr_code: &str,
        locale: Locale,
    ) -> Result<ScanView, WalletError> {
        let body = ScanBody {
            customer_id: customer_id.to_owned(),
            qr_code: qr_code.to_owned(),
            locale: Some(locale_code(locale)),
        };
        self.call(Method::POST, &[SCAN_PATH], Some(&body)).await
    }

    /// Sends the filled Custom form; the PS computes and freezes the amount.
    pub async fn checkout(
        &self,
        customer_id: &str,
        payment_id: &str,
        parameters: Vec<ParameterValue>,
        locale: Locale,
    ) -> Result<Amount, WalletError> {
        let body = CheckoutBody {
            customer_id: customer_id.to_owned(),
            payment_id: payment_id.to_owned(),
            parameters,
            locale: Some(locale_code(locale)),
        };
        let view: CheckoutView = self
            .call(Method::POST, &[CHECKOUT_PATH], Some(&body))
            .await?;
        Ok(view.amount)
    }

    /// Pays: `amount` is the customer's for a Static QR, `None` otherwise.
    pub async fn confirm(
        &self,
        customer_id: &str,
        payment_id: &str,
        amount: Option<Amount>,
        locale: Locale,
    ) -> Result<PaymentView, WalletError> {
        let body = ConfirmBody {
            customer_id: customer_id.to_owned(),
            payment_id: payment_id.to_owned(),
            amount,
            locale: Some(locale_code(locale)),
        };
        self.call(Method::POST, &[CONFIRM_PATH], Some(&body)).await
    }

    /// The customer pressed Back: CANCELLED_BY_CLIENT, nothing debited.
    pub async fn back(
        &self,
        customer_id: &str,
        payment_id: &str,
        locale: Locale,
    ) -> Result<PaymentView, WalletError> {
        let body = ConfirmBody {
            customer_id: customer_id.to_owned(),
            payment_id: payment_id.to_owned(),
            amount: None,
            locale: Some(locale_code(locale)),
        };
        self.call(Method::POST, &[BACK_PATH], Some(&body)).await
    }

    /// Balance, history and notifications (newest first).
    pub async fn account(&self, customer_id: &str) -> Result<Account, WalletError> {
        self.call::<(), _>(
            Method::GET,
            &["/app/v1/customers", customer_id],
            None::<&()>,
        )
        .await
    }

    /// One request: `path` is a fixed prefix and then segments that are percent-encoded.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&B>,
    ) -> Result<T, WalletError> {
        let url = self.url(path);
        let mut request = self.http.request(method, url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        let bytes = read_capped(response)
            .await
            .map_err(|e| self.transport(&e))?
            .ok_or_else(|| {
                WalletError::Protocol(format!("an answer over {RESPONSE_BYTES_MAX} bytes"))
            })?;
        if !status.is_success() {
            return Err(WalletError::Mpp {
                status: status.as_u16(),
                message: error_text(&bytes),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| WalletError::Protocol(format!("{url}: {e}")))
    }

    fn url(&self, path: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` refused URLs that cannot be a base, so the segments are always available.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            for (i, part) in path.iter().enumerate() {
                if i == 0 {
                    segments.extend(part.split('/').filter(|s| !s.is_empty()));
                } else {
                    segments.push(part);
                }
            }
        }
        url
    }

    fn transport(&self, e: &reqwest::Error) -> WalletError {
        let url = self.base.as_str().trim_end_matches('/').to_owned();
        if e.is_timeout() {
            return WalletError::Timeout { url };
        }
        // The innermost cause says the most ("Connection refused").
        let mut why = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(inner) = source {
            why = inner.to_string();
            source = inner.source();
        }
        if e.is_connect() {
            WalletError::Unreachable { url, why }
        } else {
            WalletError::Interrupted { url, why }
        }
    }
}

/// The body, or `None` when it is larger than [`RESPONSE_BYTES_MAX`].
async fn read_capped(mut response: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if bytes.len() + chunk.len() > RESPONSE_BYTES_MAX {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// The `error` of an MPP error body, or the start of whatever else it sent.
fn error_text(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    if let Ok(body) = serde_json::from_slice::<ErrorBody>(bytes) {
        return body.error;
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return "—".to_owned();
    }
    text.chars().take(ERROR_TEXT_CHARS_MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_joined_and_encoded() {
        let client = AppClient::new("http://127.0.0.1:8091").expect("a valid url");
        assert_eq!(
            client.url(&[SCAN_PATH]).as_str(),
            "http://127.0.0.1:8091/app/v1/scan"
        );
        assert_eq!(
            client.url(&["/app/v1/customers", "C 1/2"]).as_str(),
            "http://127.0.0.1:8091/app/v1/customers/C%201%2F2"
        );
        let prefixed = AppClient::new("http://bank.example/mpp/").expect("a valid url");
        assert_eq!(
            prefixed.url(&[SCAN_PATH]).as_str(),
            "http://bank.example/mpp/app/v1/scan"
        );
    }

    #[test]
    fn only_http_urls_are_accepted() {
        for bad in ["", "127.0.0.1:8091", "ftp://x", "mailto:a@b"] {
            assert!(
                matches!(AppClient::new(bad), Err(WalletError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn a_connection_never_made_sent_nothing_and_one_cut_may_have() {
        // A port nothing listens on: refused at connect.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let addr = closed.local_addr().expect("its address");
        drop(closed);
        let client = AppClient::new(&format!("http://{addr}")).expect("a valid url");
        let refused = client.account("C1").await.expect_err("refused");
        assert!(
            matches!(refused, WalletError::Unreachable { .. }),
            "{refused:?}"
        );
        // A server that takes the connection and closes it unanswered: the request went out.
        let rude = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = rude.local_addr().expect("its address");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = rude.accept().await {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
            }
        });
        let client = AppClient::new(&format!("http://{addr}")).expect("a valid url");
        let cut = client.account("C1").await.expect_err("cut");
        assert!(matches!(cut, WalletError::Interrupted { .. }), "{cut:?}");
    }

    #[test]
    fn error_bodies_are_read() {
        assert_eq!(
            error_text(br#"{"error":"not enough money"}"#),
            "not enough money"
        );
        assert_eq!(error_text(b"Bad Gateway"), "Bad Gateway");
        assert_eq!(error_text(b""), "—");
        assert_eq!(error_text(&[b'x'; 1000]).len(), ERROR_TEXT_CHARS_MAX);
    }
}
