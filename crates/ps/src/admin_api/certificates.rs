//! An organization's client certificates (DECISIONS 41): registered by PEM or by fingerprint,
//! listed, revoked by removing them. The merchant API's r2 and r3 know an organization by them;
//! each change reloads the catalog, so a revoked certificate stops working at the next request.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::edge::{AdminBody, AdminPath};
use super::{AdminError, AdminResult, bad, body, change_organization, current_organization};
use crate::catalog::{Fingerprint, Organization};
use crate::state::AppState;

/// The body of a registration: the certificate itself, or its SHA-256.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    /// The certificate (PEM; with a chain, the first certificate is the client's).
    #[serde(default)]
    pem: Option<String>,
    /// Its SHA-256: 64 hex digits in either case, colons allowed.
    #[serde(default)]
    fingerprint: Option<String>,
}

fn listing(org: &Organization) -> serde_json::Value {
    json!({
        "organization": org.bin,
        "certificates": org.client_certificates,
    })
}

/// `GET /admin/v1/organizations/{bin}/certificates`.
pub(super) async fn list(
    State(app): State<AppState>,
    AdminPath(bin): AdminPath<String>,
) -> AdminResult {
    let org = current_organization(&app, &bin)?;
    Ok(Json(listing(&org)).into_response())
}

/// `POST /admin/v1/organizations/{bin}/certificates`: 201 when the certificate is new to the
/// organization, 200 when it was registered already (nothing changes).
pub(super) async fn register(
    State(app): State<AppState>,
    AdminPath(bin): AdminPath<String>,
    AdminBody(raw): AdminBody,
) -> AdminResult {
    let req: Registration = body(&raw)?;
    let done = register_certificate(&app, &bin, req.pem, req.fingerprint).await?;
    let (status, fingerprint) = match done {
        Registered::New(f) => (StatusCode::CREATED, f),
        Registered::Known(f) => (StatusCode::OK, f),
    };
    let answer = json!({"organization": bin, "fingerprint": fingerprint});
    Ok((status, Json(answer)).into_response())
}

/// What a registration did, with the fingerprint as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Registered {
    New(String),
    /// Registered already: nothing changed.
    Known(String),
}

/// Registers a client certificate of the organization `bin`, given as exactly one of its PEM
/// (with a chain, the first certificate) or its SHA-256 fingerprint. The admin API and the
/// console call it.
pub(crate) async fn register_certificate(
    app: &AppState,
    bin: &str,
    pem: Option<String>,
    fingerprint: Option<String>,
) -> Result<Registered, AdminError> {
    let _one_change_at_a_time = app.catalog_changes.lock().await;
    let fingerprint = match (pem, fingerprint) {
        (Some(pem), None) => Fingerprint::of_pem(&pem).map_err(bad)?,
        (None, Some(text)) => Fingerprint::parse(&text).map_err(bad)?,
        _ => return Err(bad("give exactly one of pem and fingerprint")),
    };
    let text = fingerprint.to_string();
    let stored = text.clone();
    let (_, changed) = change_organization(app, bin, move |org| {
        if org.fingerprints().any(|f| f == fingerprint) {
            return Ok(false);
        }
        org.client_certificates.push(stored.clone());
        Ok(true)
    })
    .await?;
    Ok(match changed {
        true => Registered::New(text),
        false => Registered::Known(text),
    })
}

/// `DELETE /admin/v1/organizations/{bin}/certificates/{fingerprint}`: the certificate is no
/// longer the organization's identity, from the next request on.
pub(super) async fn revoke(
    State(app): State<AppState>,
    AdminPath((bin, fingerprint)): AdminPath<(String, String)>,
) -> AdminResult {
    let org = revoke_certificate(&app, &bin, &fingerprint).await?;
    Ok(Json(listing(&org)).into_response())
}

/// Removes the certificate with `fingerprint` from the organization `bin`; the organization as
/// it is now. 404 when it was not registered to it. The admin API and the console call it.
pub(crate) async fn revoke_certificate(
    app: &AppState,
    bin: &str,
    fingerprint: &str,
) -> Result<Organization, AdminError> {
    let _one_change_at_a_time = app.catalog_changes.lock().await;
    let fingerprint = Fingerprint::parse(fingerprint).map_err(bad)?;
    let (org, _) = change_organization(app, bin, move |org| {
        let before = org.client_certificates.len();
        org.client_certificates
            .retain(|text| Fingerprint::parse(text).ok() != Some(fingerprint));
        if org.client_certificates.len() == before {
            return Err(AdminError(
                StatusCode::NOT_FOUND,
                "that certificate is not registered to this organization".into(),
            ));
        }
        Ok(true)
    })
    .await?;
    Ok(org)
}
