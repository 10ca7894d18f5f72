//! The refund the PS asks for, parsed once at the edge (SPEC 4.4) and trusted inside.

use tolem_wire::Amount;
use tolem_wire::mpp::{CUSTOMER_ID_LEN_MAX, PAYMENT_ID_LEN_MAX, REFUND_ID_LEN_MAX, RefundRequest};

/// A refund of the PS, valid as SPEC 4.4 describes it: the ids within their lengths and free of
/// control characters, a positive amount, a receipt link. The credit hook receives it; `refund_id` is its idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundOrder {
    customer_id: String,
    payment_id: String,
    refund_id: String,
    amount: Amount,
    link_receipt: String,
}

/// Why a refund request is not valid: the field at fault, as the request names it. The endpoint
/// answers it `PARAM_ILLEGAL` and records nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}")]
pub struct InvalidRefund {
    field: &'static str,
}

impl InvalidRefund {
    /// The request's field at fault (`customerId`, `refundAmount`, …; `body` for unreadable JSON).
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl RefundOrder {
    /// A refund from its parts — for an MPP's own tests of its credit hook.
    pub fn new(
        customer_id: &str,
        payment_id: &str,
        refund_id: &str,
        amount: Amount,
        link_receipt: &str,
    ) -> Result<RefundOrder, InvalidRefund> {
        // Ids within their lengths and without control characters, as the PS takes the MPP's
        // own ids: a line break in a customerId must not reach the hook's SQL, logs or texts.
        let within = |text: &str, max: usize| {
            !text.is_empty() && text.chars().count() <= max && !text.chars().any(char::is_control)
        };
        let invalid = |field| Err(InvalidRefund { field });
        if !within(customer_id, CUSTOMER_ID_LEN_MAX) {
            return invalid("customerId");
        }
        if !within(payment_id, PAYMENT_ID_LEN_MAX) {
            return invalid("paymentId");
        }
        if !within(refund_id, REFUND_ID_LEN_MAX) {
            return invalid("refundId");
        }
        if amount.is_zero() {
            return invalid("refundAmount");
        }
        // A link the customer will open: a web address and nothing else (not `javascript:`,
        // not text with spaces or line breaks).
        let web = ["https://", "http://"]
            .iter()
            .any(|scheme| link_receipt.len() > scheme.len() && link_receipt.starts_with(scheme));
        if !web
            || link_receipt
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return invalid("linkReceipt");
        }
        Ok(RefundOrder {
            customer_id: customer_id.to_owned(),
            payment_id: payment_id.to_owned(),
            refund_id: refund_id.to_owned(),
            amount,
            link_receipt: link_receipt.to_owned(),
        })
    }

    /// A refund as this kit recorded it when it first took it: valid by the rules of the version
    /// that took it, so not checked again (a later, stricter rule must not strand a refund whose
    /// credit had begun).
    pub(super) fn recorded(
        customer_id: String,
        payment_id: String,
        refund_id: String,
        amount: Amount,
        link_receipt: String,
    ) -> RefundOrder {
        RefundOrder {
            customer_id,
            payment_id,
            refund_id,
            amount,
            link_receipt,
        }
    }

    /// The body of the PS's `POST /refund`, read strictly as the PS reads its own (one JSON
    /// object, no key twice, amounts as written): an error names the field at fault, `body` when
    /// it is no object at all.
    pub fn from_json(body: &[u8]) -> Result<RefundOrder, InvalidRefund> {
        const FIELDS: [&str; 5] = [
            "customerId",
            "paymentId",
            "refundId",
            "refundAmount",
            "linkReceipt",
        ];
        let req: RefundRequest = tolem_wire::body::read(body, tolem_wire::body::Keys::Exact)
            .map_err(|param| {
                let field = FIELDS
                    .into_iter()
                    .find(|f| *f == param.name)
                    .unwrap_or("body");
                InvalidRefund { field }
            })?;
        RefundOrder::new(
            &req.customer_id,
            &req.payment_id,
            &req.refund_id,
            req.refund_amount,
            &req.link_receipt,
        )
    }

    /// The MPP's customer to credit (`customerId`).
    pub fn customer_id(&self) -> &str {
        &self.customer_id
    }

    /// The PS's id of the payment refunded (`paymentId`).
    pub fn payment_id(&self) -> &str {
        &self.payment_id
    }

    /// The PS's id of this refund (`refundId`): unique at the PS, the same on every retry — the
    /// idempotency key to give a core-banking system.
    pub fn refund_id(&self) -> &str {
        &self.refund_id
    }

    /// How much to give back (`refundAmount`), never zero.
    pub fn amount(&self) -> Amount {
        self.amount
    }

    /// The receipt to show the customer (`linkReceipt`; append `&locale=kk` for Kazakh).
    pub fn link_receipt(&self) -> &str {
        &self.link_receipt
    }
}
