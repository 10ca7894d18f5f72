//! Reconciliation: the PS's register of a period (its CSV form, `docs/registers.md`) against this
//! MPP's own books, listing every difference (SPEC §5: MPPs and the PS settle by the registers).
//!
//! Operations are matched by the PS operation id: a payment's `paymentId`, a refund's `refundId`.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::params;
use serde::Serialize;
use tolem_wire::Amount;

use crate::flows::{FlowError, Mpp};

/// One operation as the register lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegisterRow {
    pub customer_id: String,
    pub mpp_operation_id: String,
    pub ps_operation_id: String,
    pub refund: bool,
    pub amount: Amount,
}

/// One operation as the MPP's books have it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BookEntry {
    pub customer_id: String,
    pub mpp_operation_id: String,
    pub ps_operation_id: String,
    pub refund: bool,
    pub amount: Amount,
    /// When the MPP booked it (Unix milliseconds, its own clock).
    pub at_ms: i64,
}

/// How far apart the MPP's and the PS's times of one operation may be: the MPP books a payment
/// when the PS's answer arrives and a refund when it first applies it, the PS dates each when it
/// finished it, after retries perhaps. Across a period's edge that puts an operation in the
/// neighbouring register: a timing difference, not a missing operation.
pub const EDGE_MARGIN_MS: i64 = 3_600_000;

/// A difference between the register and the books.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// The PS counts an operation the MPP has no record of.
    MissingInBooks { row: RegisterRow },
    /// The MPP has an operation of the period the register does not list.
    MissingInRegister { entry: BookEntry },
    /// Both have it, but they disagree (amount, customer, MPP id or type).
    Differs {
        register: RegisterRow,
        books: BookEntry,
    },
    /// The register lists the same operation more than once.
    ListedTwice { row: RegisterRow },
    /// The MPP booked an operation within [`EDGE_MARGIN_MS`] of the period's edge that the
    /// register does not list: the PS likely dated it on the other side of the edge, in the
    /// neighbouring register, where it is to be looked for (a timing difference until found).
    NearTheEdge { entry: BookEntry },
}

impl Difference {
    /// Whether it is a difference to settle as it stands (every kind but
    /// [`Difference::NearTheEdge`], which is one only if the neighbouring register lacks it too).
    pub fn is_break(&self) -> bool {
        !matches!(self, Difference::NearTheEdge { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot read the register: {0}")]
    Read(String),
    #[error("register line {line}: {why}")]
    Line { line: usize, why: String },
    #[error(
        "register line {line} is dated {at}, outside the period asked for: is it the register of \
         that period (--date, --month)?"
    )]
    OtherPeriod { line: usize, at: String },
    #[error(transparent)]
    Flow(#[from] FlowError),
}

/// The type column's words (Russian / Kazakh) for refunds.
fn is_refund_label(text: &str) -> Option<bool> {
    if text.starts_with("Оплата") || text.contains("Төлем") {
        Some(false)
    } else if text.starts_with("Возврат") || text.contains("Қайтару") {
        Some(true)
    } else {
        None
    }
}

/// Reads the operations of a register in CSV: two header rows, the operations, an empty row,
/// then totals (not needed here: they follow from the operations).
/// Reads a register's operations; with `period` (`[from, to)`, Unix milliseconds), one dated
/// outside it is refused: the register of another day than the one asked for would report every
/// operation of both as missing.
pub fn read_register_csv(
    path: &Path,
    period: Option<(i64, i64)>,
) -> Result<Vec<RegisterRow>, ReconcileError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .map_err(|e| ReconcileError::Read(e.to_string()))?;
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate().skip(2) {
        let line = index + 1;
        let record = record.map_err(|e| ReconcileError::Line {
            line,
            why: e.to_string(),
        })?;
        if record.iter().all(str::is_empty) {
            break;
        }
        let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
        if let Some((from, to)) = period {
            let at = field(3);
            let ms = at
                .parse::<jiff::Timestamp>()
                .map_err(|e| ReconcileError::Line {
                    line,
                    why: format!("date {at:?}: {e}"),
                })?
                .as_millisecond();
            if !(from..to).contains(&ms) {
                return Err(ReconcileError::OtherPeriod { line, at });
            }
        }
        let refund = is_refund_label(&field(4)).ok_or_else(|| ReconcileError::Line {
            line,
            why: "unknown type".into(),
        })?;
        let amount = Amount::parse(&field(5)).map_err(|e| ReconcileError::Line {
            line,
            why: e.to_string(),
        })?;
        rows.push(RegisterRow {
            customer_id: field(0),
            mpp_operation_id: field(1),
            ps_operation_id: field(2),
            refund,
            amount,
        });
    }
    Ok(rows)
}

/// Compares a register with the books' operations of the same period.
pub fn compare(register: &[RegisterRow], books: &[BookEntry]) -> Vec<Difference> {
    let key = |refund: bool, id: &str| (refund, id.to_owned());
    let booked: HashMap<_, _> = books
        .iter()
        .map(|b| (key(b.refund, &b.ps_operation_id), b))
        .collect();
    let listed: HashMap<_, _> = register
        .iter()
        .map(|r| (key(r.refund, &r.ps_operation_id), r))
        .collect();
    let mut differences = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for row in register {
        if !seen.insert(key(row.refund, &row.ps_operation_id)) {
            differences.push(Difference::ListedTwice { row: row.clone() });
            continue;
        }
        match booked.get(&key(row.refund, &row.ps_operation_id)) {
            None => differences.push(Difference::MissingInBooks { row: row.clone() }),
            Some(entry) => {
                let same = entry.amount == row.amount
                    && entry.customer_id == row.customer_id
                    && entry.mpp_operation_id == row.mpp_operation_id;
                if !same {
                    differences.push(Difference::Differs {
                        register: row.clone(),
                        books: (*entry).clone(),
                    });
                }
            }
        }
    }
    for entry in books {
        if !listed.contains_key(&key(entry.refund, &entry.ps_operation_id)) {
            differences.push(Difference::MissingInRegister {
                entry: entry.clone(),
            });
        }
    }
    differences
}

impl Mpp {
    /// The MPP's payments confirmed and refunds applied in `[from_ms, to_ms)`, by the MPP's own
    /// clock at the moment the PS's answer arrived; an operation within a moment of midnight may
    /// fall on the other side of the PS's day.
    pub async fn book_entries(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<BookEntry>, FlowError> {
        self.with_db(move |conn| {
            let mut entries = Vec::new();
            let mut stmt = conn.prepare(
                "SELECT customer_id, mpp_payment_id, payment_id, amount_tiyn, paid_at_ms FROM payments \
                 WHERE status = 'paid' AND paid_at_ms >= ?1 AND paid_at_ms < ?2",
            )?;
            let rows = stmt.query_map(params![from_ms, to_ms], |r| {
                Ok(BookEntry {
                    customer_id: r.get(0)?,
                    mpp_operation_id: r.get(1)?,
                    ps_operation_id: r.get(2)?,
                    refund: false,
                    amount: crate::ledger::stored_amount(
                        r.get::<_, Option<i64>>(3)?.unwrap_or(-1),
                    )?,
                    at_ms: r.get(4)?,
                })
            })?;
            for row in rows {
                entries.push(row?);
            }
            let mut stmt = conn.prepare(
                "SELECT customer_id, refund_id, amount_tiyn, created_at_ms FROM tolem_refunds \
                 WHERE result_code = 'SUCCESS' AND created_at_ms >= ?1 AND created_at_ms < ?2",
            )?;
            let rows = stmt.query_map(params![from_ms, to_ms], |r| {
                let refund_id: String = r.get(1)?;
                Ok(BookEntry {
                    customer_id: r.get(0)?,
                    mpp_operation_id: refund_id.clone(),
                    ps_operation_id: refund_id,
                    refund: true,
                    amount: crate::ledger::stored_amount(r.get(2)?)?,
                    at_ms: r.get(3)?,
                })
            })?;
            for row in rows {
                entries.push(row?);
            }
            Ok(entries)
        })
        .await
    }

    /// Reads a register (CSV) and lists every difference with the books of `[from_ms, to_ms)`.
    /// Its rows are looked for in the books of the period and [`EDGE_MARGIN_MS`] around it;
    /// what the books have near an edge and the register does not is
    /// [`Difference::NearTheEdge`].
    pub async fn reconcile(
        &self,
        register: &Path,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Difference>, ReconcileError> {
        let rows = read_register_csv(register, Some((from_ms, to_ms)))?;
        let books = self
            .book_entries(from_ms - EDGE_MARGIN_MS, to_ms + EDGE_MARGIN_MS)
            .await?;
        Ok(within(compare(&rows, &books), (from_ms, to_ms)))
    }
}

/// The differences of a comparison with books of the period and a margin around it, as they
/// concern the period `[from, to)`: an entry of the margin the register does not list belongs to
/// a neighbouring register, and one near the edge is [`Difference::NearTheEdge`].
fn within(differences: Vec<Difference>, (from, to): (i64, i64)) -> Vec<Difference> {
    differences
        .into_iter()
        .filter_map(|difference| match difference {
            Difference::MissingInRegister { entry } => {
                if !(from..to).contains(&entry.at_ms) {
                    None
                } else if entry.at_ms < from + EDGE_MARGIN_MS || entry.at_ms >= to - EDGE_MARGIN_MS
                {
                    Some(Difference::NearTheEdge { entry })
                } else {
                    Some(Difference::MissingInRegister { entry })
                }
            }
            other => Some(other),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, refund: bool, tenge: u64) -> RegisterRow {
        RegisterRow {
            customer_id: "C1".into(),
            mpp_operation_id: format!("M{id}"),
            ps_operation_id: id.into(),
            refund,
            amount: Amount::from_tenge(tenge).unwrap_or_default(),
        }
    }

    fn entry(r: &RegisterRow) -> BookEntry {
        BookEntry {
            customer_id: r.customer_id.clone(),
            mpp_operation_id: r.mpp_operation_id.clone(),
            ps_operation_id: r.ps_operation_id.clone(),
            refund: r.refund,
            amount: r.amount,
            at_ms: 0,
        }
    }

    #[test]
    fn a_register_of_another_day_than_asked_is_refused_naming_its_date() {
        let dir = tempfile::tempdir().expect("a folder");
        let path = dir.path().join("demobank-daily-2026-12-06.csv");
        std::fs::write(
            &path,
            "ID покупателя,…\nСатып алушының ID,…\n\
             C1,M1,10,2026-12-06T10:00:00+05:00,Оплата / Төлем,100.00,1.00,\n",
        )
        .expect("written");
        let day = |d: &str| {
            let start = format!("{d}T00:00:00+05:00")
                .parse::<jiff::Timestamp>()
                .expect("a time");
            let ms = start.as_millisecond();
            (ms, ms + 86_400_000)
        };
        let rows = read_register_csv(&path, Some(day("2026-12-06"))).expect("its day");
        assert_eq!(rows.len(), 1);
        let refused = read_register_csv(&path, Some(day("2026-12-07"))).expect_err("another");
        assert_eq!(
            refused.to_string(),
            "register line 3 is dated 2026-12-06T10:00:00+05:00, outside the period asked for: \
             is it the register of that period (--date, --month)?"
        );
    }

    #[test]
    fn lists_every_kind_of_difference() {
        let (a, b, c) = (
            row("1", false, 100),
            row("2", false, 200),
            row("2", true, 50),
        );
        let mut changed = entry(&b);
        changed.amount = Amount::from_tenge(201).unwrap_or_default();
        let only_books = entry(&row("9", false, 5));
        let differences = compare(
            &[a.clone(), b.clone(), c.clone(), a.clone()],
            &[entry(&a), changed.clone(), only_books.clone()],
        );
        assert_eq!(
            differences,
            vec![
                Difference::Differs {
                    register: b,
                    books: changed
                },
                Difference::MissingInBooks { row: c },
                Difference::ListedTwice { row: a },
                Difference::MissingInRegister { entry: only_books },
            ]
        );
    }

    #[test]
    fn an_operation_across_the_edge_is_a_timing_difference_not_a_missing_one() {
        let hour = EDGE_MARGIN_MS;
        let (from, to) = (100 * hour, 124 * hour);
        let at = |ms: i64, r: &RegisterRow| BookEntry {
            at_ms: ms,
            ..entry(r)
        };
        let (listed, late, early, inside, outside) = (
            row("1", false, 100),
            row("2", true, 50),
            row("3", false, 70),
            row("4", false, 80),
            row("5", false, 90),
        );
        // The register lists one the MPP booked just before the period began.
        let books = [
            at(from - 1_000, &listed),
            at(to - 1_000, &late),
            at(from + 1_000, &early),
            at(from + 5 * hour, &inside),
            at(to + 1_000, &outside),
        ];
        let differences = within(compare(std::slice::from_ref(&listed), &books), (from, to));
        assert_eq!(
            differences,
            vec![
                Difference::NearTheEdge {
                    entry: books[1].clone()
                },
                Difference::NearTheEdge {
                    entry: books[2].clone()
                },
                Difference::MissingInRegister {
                    entry: books[3].clone()
                },
            ]
        );
        assert_eq!(
            differences.iter().filter(|d| d.is_break()).count(),
            1,
            "one operation is missing; two are the neighbours'"
        );
    }
}
