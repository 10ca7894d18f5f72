//! The public contract written in the docs matches the code.

use tolem_wire::Locale;
use tolem_wire::merchant::StatusCode;
use tolem_wire::mpp::ResultCode;

#[test]
fn the_mpp_result_code_table_in_the_docs_matches_the_code() {
    let doc = include_str!("../../../../docs/mpp-api.md");
    for code in ResultCode::ALL {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", code.as_str())))
            .unwrap_or_else(|| panic!("docs/mpp-api.md has no row for {}", code.as_str()));
        for locale in [Locale::Ru, Locale::Kk] {
            assert!(
                row.contains(code.message(locale)),
                "{} message drifted: {row}",
                code.as_str()
            );
        }
        let retry = if code.is_retryable() {
            "| **yes** |"
        } else {
            "| no |"
        };
        assert!(
            row.contains(retry)
                || *code == ResultCode::Success
                || *code == ResultCode::RefundInProcess,
            "{row}"
        );
    }
}

#[test]
fn the_merchant_status_code_table_in_the_docs_matches_the_code() {
    let doc = include_str!("../../../../docs/merchant-api.md");
    for code in StatusCode::ALL {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| {} |", code.code())))
            .unwrap_or_else(|| panic!("docs/merchant-api.md has no row for {}", code.code()));
        for locale in [Locale::Ru, Locale::Kk] {
            assert!(
                row.contains(code.message(locale)),
                "{} message drifted: {row}",
                code.code()
            );
        }
    }
}
