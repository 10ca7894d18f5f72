//! The purchases' use cases. Each takes a request that passed its edge's format checks, opens its
//! own transaction (`Store::transaction`), applies the rules of `domain` there through the store's
//! per-table operations, and renders its own answer: the MPP API's scan, checkout and
//! notifyPayment (called by `mpp_api`); a POS's new purchase (`create`) and the sandbox's emulated
//! MPP (`emulate`) (called by `merchant_api`); the operator's cancel (`cancel`, called by
//! `admin_api`), which places its refund through `refunds`.

mod cancel;
mod checkout;
mod create;
mod emulate;
mod fill;
mod notify;
mod scan;

use std::sync::Arc;

use tolem_wire::mpp::{Merchant, ResultCode};
use tolem_wire::{Locale, Param, Problem};

pub use cancel::CancelOrder;
pub use cancel::{Cancelled, cancel};
pub use checkout::checkout;
pub use create::PosOrder;
pub use create::create;
pub use emulate::Emulated;
pub use emulate::{Step, emulate};
pub use fill::{FillPlan, FillReport, fill};
pub use notify::notify;
pub use scan::scan;

use crate::catalog::{Catalog, Mpp};
use crate::domain::{PaymentId, Status, TradePointId};
use crate::state::App;
use crate::store::StoreError;

/// The authenticated caller of an MPP API request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub mpp: Arc<Mpp>,
    pub locale: Locale,
}

/// Why an MPP API call did not succeed: a result code of the regulation, or an infrastructure
/// failure (never reported as a business code; the edge answers it with UNKNOWN_EXCEPTION).
#[derive(Debug, thiserror::Error)]
pub enum MppError {
    #[error("{code:?}: {detail:?}")]
    Code {
        code: ResultCode,
        detail: Option<String>,
    },
    /// PARAM_ILLEGAL naming the parameter and what is wrong with it, in the caller's language
    /// (DECISIONS 44).
    #[error("PARAM_ILLEGAL: {0:?}")]
    Param(Param),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MppError {
    pub fn code(code: ResultCode) -> MppError {
        MppError::Code { code, detail: None }
    }

    /// PARAM_ILLEGAL naming the offending field, whose value is not one the call takes.
    pub fn param(field: &str) -> MppError {
        MppError::Param(Param::new(field, Problem::Invalid))
    }

    /// `code` refusing a purchase in `status`. EXPIRED_CODE's message speaks of the QR's time
    /// alone; for a purchase paid, cancelled or refused already it says which, in the caller's
    /// language. The caller passes the status only to the purchase's own MPP.
    pub(crate) fn refusing(code: ResultCode, status: Status, locale: Locale) -> MppError {
        let why = match (status, locale) {
            (Status::Confirmed, Locale::Ru) => "покупка уже оплачена",
            (Status::Confirmed, Locale::Kk) => "сатып алу төленіп қойған",
            (Status::Cancelled, Locale::Ru) => "покупка отменена",
            (Status::Cancelled, Locale::Kk) => "сатып алудан бас тартылған",
            (Status::Failed, Locale::Ru) => "оплата покупки отклонена",
            (Status::Failed, Locale::Kk) => "сатып алуды төлеу қабылданбады",
            _ => return code.into(),
        };
        MppError::expired_because(code, why)
    }

    /// `code` refusing a checkout: EXPIRED_CODE there means the confirmation window is over
    /// (DECISIONS 16), which it says.
    pub(crate) fn refusing_checkout(code: ResultCode, locale: Locale) -> MppError {
        let why = match locale {
            Locale::Ru => "время на подтверждение истекло",
            Locale::Kk => "растау уақыты өтті",
        };
        MppError::expired_because(code, why)
    }

    fn expired_because(code: ResultCode, why: &str) -> MppError {
        match code {
            ResultCode::ExpiredCode => MppError::Code {
                code,
                detail: Some(why.to_owned()),
            },
            _ => code.into(),
        }
    }
}

impl From<ResultCode> for MppError {
    fn from(code: ResultCode) -> MppError {
        MppError::code(code)
    }
}

/// The `merchant` object of a trade point, as scan and checkout show it.
pub(crate) fn merchant_of(catalog: &Catalog, trade_point_id: TradePointId) -> Option<Merchant> {
    let (point, _) = catalog.merchant(trade_point_id)?;
    Some(Merchant {
        merchant_id: point.id.to_string(),
        merchant_name: point.name.clone(),
        merchant_mcc: point.mcc.clone(),
        // Empty only in a trade point stored before the type was required.
        author_type: (!point.terminal_type.is_empty()).then(|| point.terminal_type.clone()),
    })
}

/// A field of 1..=`max` characters, none of them a control character (an identifier or a code).
/// Spaces alone are no identifier either: a blank `customerId` would name every blank customer.
pub(crate) fn check_len(value: &str, max: usize, field: &str) -> Result<(), MppError> {
    let len = value.chars().count();
    if value.trim().is_empty() || len > max {
        return Err(MppError::Param(Param::new(field, Problem::Length(1, max))));
    }
    if value.chars().any(char::is_control) {
        return Err(MppError::Param(Param::new(
            field,
            Problem::ControlCharacter,
        )));
    }
    Ok(())
}

/// The PS's payment ids are integers, written as the PS writes them; anything else names no
/// payment (`ORDER_NOT_EXIST`). `field` is the id's path in the body, for a length error.
pub fn parse_payment_id(text: &str, field: &str) -> Result<PaymentId, MppError> {
    check_len(text, tolem_wire::mpp::PAYMENT_ID_LEN_MAX, field)?;
    // Only the id as the PS wrote it: "066" or "+66" is no payment the PS handed out.
    text.parse::<PaymentId>()
        .ok()
        .filter(|id| id.to_string() == text)
        .ok_or(MppError::code(ResultCode::OrderNotExist))
}

impl App {
    pub(crate) fn format_date(&self, at: jiff::Timestamp) -> String {
        tolem_wire::time::format_mpp(at, &self.zone)
    }
}
