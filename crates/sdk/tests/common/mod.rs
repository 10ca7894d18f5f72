//! What the SDK's test files share.

use tolem_wire::mpp::{NotifyPayment, NotifyPaymentRequest, ResultBody};

/// notifyPayment SUCCESS of payment 1 by customer C1.
pub fn request() -> NotifyPaymentRequest {
    NotifyPaymentRequest {
        result: ResultBody::success(),
        payment: NotifyPayment {
            payment_id: "1".into(),
            mpp_payment_id: "M1".into(),
            payment_amount: None,
            customer_id: None,
        },
        customer_id: Some("C1".into()),
    }
}
