//! The register as an Excel workbook (SPEC 5.1 asks for Excel), written in rust_xlsxwriter's
//! constant-memory mode: each row goes to a temporary file as soon as the next one starts, so
//! memory stays flat however many operations there are. Amounts are numeric cells shown with two
//! decimals, date-times real date cells in the operator's local time. A sheet holds at most
//! `sheet_rows_max` operations; more continue on the next sheet, under the same headers.
//!
//! Layout for people who open and print it: each header row is as tall as its longest wrapped
//! header, because LibreOffice keeps a row at the default height and lets wrapped text spill over
//! the next row (the Kazakh headers covered the Russian ones); and the page setup prints one page
//! wide, landscape, with the headers repeated on every page.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, FormatAlign, Workbook};
use tolem_wire::Amount;

use super::RegisterError;
use super::sheet::{Line, Sink, TOTAL_LABEL, Totals, type_label};

const SHEET_NAME: &str = "Реестр";
/// Column widths in characters of the default font; the type column fits `Возврат / Қайтару`.
const COLUMN_WIDTHS: [f64; 8] = [16.0, 28.0, 20.0, 20.0, 20.0, 14.0, 12.0, 22.0];
/// Height of one line of the default font (Calibri 11), in points.
const LINE_HEIGHT_PT: f64 = 15.0;
/// How much wider a bold Cyrillic character is than the `0` a column width counts in; on the
/// generous side, since a row too tall costs nothing and one too short hides text.
const BOLD_CHAR_WIDTH: f64 = 1.25;
/// Excel's paper size code for A4.
const PAPER_A4: u8 = 9;

/// Two header rows above the operations of every sheet.
const HEADER_ROWS: u32 = 2;
/// The workbook's zip compression: Excel's own level. Deflate was most of the time a large
/// register took at the default level 6; level 3 makes a million-row register about 30 %
/// faster for a file 7 % larger (docs/registers.md, "Benchmark").
const ZIP_LEVEL: u8 = 3;
/// The columns of date-times and of amounts: their formats are the columns', so that a line's
/// cells are written without looking a format up three times per line.
const DATETIME_COLUMN: u16 = 3;
const MONEY_COLUMNS: [u16; 2] = [5, 6];

pub(crate) struct XlsxSink {
    workbook: Workbook,
    out: PathBuf,
    zone: TimeZone,
    /// The Russian and the Kazakh header rows, at the top of every sheet.
    headers: [[&'static str; 8]; 2],
    sheet_rows_max: u32,
    sheets: usize,
    /// The next row to write on the current sheet.
    row: u32,
    header: Format,
    total: Format,
    money: Format,
    /// A total too long for an Excel number (more than one amount can be): text, right-aligned as
    /// numbers.
    wide: Format,
    count: Format,
    datetime: Format,
}

/// Tiyn as the number of tenge an Excel cell holds. Excel numbers are IEEE doubles, so this is
/// the one place money becomes a float, at the very edge: every amount below 2^53 tiyn converts
/// exactly, and dividing by 100 gives the double nearest the two-decimal value, which the `0.00`
/// format shows exactly.
#[allow(clippy::cast_precision_loss)]
fn tenge(amount: Amount) -> f64 {
    amount.tiyn() as f64 / 100.0
}

/// The local wall-clock time of `at` as an Excel date-time (Excel has no time zones), in whole
/// seconds as the CSV writes it: Excel rounds a fraction of a second when it shows a time, so
/// 23:59:59.600 kept whole would read as 00:00:00 of the next day, in another day's register.
fn excel_time(at: Timestamp, zone: &TimeZone) -> Result<ExcelDateTime, RegisterError> {
    let local = at.to_zoned_datetime(zone.clone()).datetime();
    let number = |n: i64| {
        u16::try_from(n).map_err(|_| RegisterError::Write(format!("date out of range: {local}")))
    };
    let date = ExcelDateTime::from_ymd(
        number(local.year().into())?,
        u8::try_from(local.month()).unwrap_or(1),
        u8::try_from(local.day()).unwrap_or(1),
    )?;
    Ok(date.and_hms(
        number(local.hour().into())?,
        u8::try_from(local.minute()).unwrap_or(0),
        u8::try_from(local.second()).unwrap_or(0),
    )?)
}

impl XlsxSink {
    pub(crate) fn create(
        out: &Path,
        temp_dir: &Path,
        (title, headers): (&str, [[&'static str; 8]; 2]),
        period_end: Timestamp,
        zone: &TimeZone,
        sheet_rows_max: u32,
    ) -> Result<XlsxSink, RegisterError> {
        let mut workbook = Workbook::new();
        workbook.set_tempdir(temp_dir)?;
        workbook.set_zip_compression_level(ZIP_LEVEL);
        // Dated by its period's end, not by the clock: a register made again is the same file,
        // byte for byte, whichever node or command made it and when.
        let created = ExcelDateTime::from_timestamp(period_end.as_second())?;
        workbook.set_properties(
            &DocProperties::new()
                .set_title(title)
                .set_creation_datetime(&created),
        );
        let mut sink = XlsxSink {
            workbook,
            out: out.to_owned(),
            zone: zone.clone(),
            headers,
            sheet_rows_max,
            sheets: 0,
            row: 0,
            header: Format::new()
                .set_bold()
                .set_text_wrap()
                .set_align(FormatAlign::Top),
            total: Format::new().set_bold(),
            money: Format::new().set_num_format("0.00"),
            wide: Format::new().set_align(FormatAlign::Right),
            count: Format::new().set_num_format("0"),
            datetime: Format::new().set_num_format("dd.mm.yyyy hh:mm:ss"),
        };
        sink.new_sheet()?;
        Ok(sink)
    }

    /// The index of the sheet being written (`create` made the first one, so `sheets >= 1`).
    fn current(&self) -> usize {
        self.sheets.saturating_sub(1)
    }

    fn new_sheet(&mut self) -> Result<(), RegisterError> {
        self.sheets += 1;
        let name = match self.sheets {
            1 => SHEET_NAME.to_owned(),
            n => format!("{SHEET_NAME} {n}"),
        };
        let sheet = self.workbook.add_worksheet_with_constant_memory()?;
        sheet.set_name(name)?;
        for (col, width) in (0u16..).zip(COLUMN_WIDTHS) {
            sheet.set_column_width(col, width)?;
        }
        // A cell written without a format of its own takes its column's.
        sheet.set_column_format(DATETIME_COLUMN, &self.datetime)?;
        for col in MONEY_COLUMNS {
            sheet.set_column_format(col, &self.money)?;
        }
        for (row, headers) in [0, 1].into_iter().zip(self.headers) {
            sheet.set_row_height(row, header_height(&headers))?;
            for (col, text) in (0u16..).zip(headers) {
                sheet.write_string_with_format(row, col, text, &self.header)?;
            }
        }
        sheet.set_freeze_panes(HEADER_ROWS, 0)?;
        sheet.set_landscape();
        sheet.set_paper_size(PAPER_A4);
        // One page wide, as many pages tall as it takes (0: no limit).
        sheet.set_print_fit_to_pages(1, 0);
        sheet.set_repeat_rows(0, HEADER_ROWS - 1)?;
        self.row = HEADER_ROWS;
        Ok(())
    }
}

impl Sink for XlsxSink {
    fn line(&mut self, line: &Line) -> Result<(), RegisterError> {
        if self.row - HEADER_ROWS >= self.sheet_rows_max {
            self.new_sheet()?;
        }
        let row = self.row;
        let op = &line.op;
        let when = excel_time(op.finished_at, &self.zone)?;
        let sheet = self.workbook.worksheet_from_index(self.current())?;
        sheet.write_string(row, 0, &op.customer_id)?;
        sheet.write_string(row, 1, &op.mpp_operation_id)?;
        sheet.write_string(row, 2, op.id.to_string())?;
        sheet.write_datetime(row, DATETIME_COLUMN, when)?;
        sheet.write_string(row, 4, type_label(op.kind))?;
        sheet.write_number(row, MONEY_COLUMNS[0], tenge(op.amount))?;
        sheet.write_number(row, MONEY_COLUMNS[1], tenge(line.commission))?;
        if let Some(of) = op.refund_of {
            sheet.write_string(row, 7, of.payment_id.to_string())?;
        }
        self.row += 1;
        Ok(())
    }

    fn finish(mut self, totals: &Totals) -> Result<(), RegisterError> {
        let first = self.row + 1;
        let sheet = self.workbook.worksheet_from_index(self.current())?;
        for (row, (kind, total)) in (first..).zip(totals.by_type()) {
            sheet.write_string_with_format(row, 0, TOTAL_LABEL, &self.total)?;
            sheet.write_number_with_format(row, 2, f64_count(total.count), &self.count)?;
            sheet.write_string_with_format(row, 4, type_label(kind), &self.total)?;
            for (col, amount) in [(5, total.amount), (6, total.commission)] {
                // Excel shows 15 significant digits, so a number to the tiyn up to
                // 9999999999999.99 tenge, the largest single amount (DECISIONS 3): a total that
                // is no more than one amount can be. A day's or month's total can pass it; such
                // a total is written as its text, which the CSV has too.
                if let Some(amount) = amount.as_amount() {
                    sheet.write_number_with_format(row, col, tenge(amount), &self.money)?;
                } else {
                    sheet.write_string_with_format(row, col, amount.to_string(), &self.wide)?;
                }
            }
        }
        self.workbook.save(&self.out)?;
        Ok(())
    }
}

/// How many lines `text` takes when wrapped at word boundaries in a column `width` characters
/// wide, in bold.
fn wrapped_lines(text: &str, width: f64) -> u32 {
    // Whole characters per line; at least one, so that a long word still ends.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let per_line = ((width / BOLD_CHAR_WIDTH).floor() as usize).max(1);
    let mut lines = 1u32;
    let mut used = 0usize;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        let needed = if used == 0 { len } else { used + 1 + len };
        if needed <= per_line {
            used = needed;
        } else {
            // A word longer than a line is broken across lines by the spreadsheet.
            let extra = len.saturating_sub(1) / per_line;
            lines += u32::from(used > 0) + u32::try_from(extra).unwrap_or(u32::MAX);
            used = len - extra * per_line;
        }
    }
    lines
}

/// The height of a header row, in points: enough for its longest wrapped header.
fn header_height(headers: &[&str]) -> f64 {
    let lines = headers
        .iter()
        .zip(COLUMN_WIDTHS)
        .map(|(text, width)| wrapped_lines(text, width))
        .max()
        .unwrap_or(1);
    f64::from(lines) * LINE_HEIGHT_PT
}

/// A count as an Excel number: exact for any count a register can have (below 2^53).
#[allow(clippy::cast_precision_loss)]
fn f64_count(count: u64) -> f64 {
    count as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registers::RegisterKind;
    use tolem_wire::AmountTotal;

    #[test]
    fn totals_past_fifteen_digits_are_not_numbers() {
        let largest = AmountTotal::from(Amount::from_tiyn(999_999_999_999_999));
        assert!(largest.as_amount().is_some(), "the largest single amount");
        let total = largest.checked_add(Amount::from_tiyn(1)).expect("a total");
        assert_eq!(total.as_amount(), None);
        assert_eq!(total.to_string(), "10000000000000.00");
    }

    #[test]
    fn headers_wrap_at_words_and_long_words_break() {
        assert_eq!(wrapped_lines("Сома", 14.0), 1);
        // 22 characters per line at width 28.
        assert_eq!(wrapped_lines("Номер операции участника", 28.0), 2);
        assert_eq!(wrapped_lines("Қатысушы операциясының нөмірі", 28.0), 2);
        assert_eq!(wrapped_lines("абвгдежзик", 5.0), 3, "4 a line, broken");
        for kind in [RegisterKind::Daily, RegisterKind::Monthly] {
            for headers in crate::registers::sheet::headers(kind) {
                assert!(header_height(&headers) >= 2.0 * LINE_HEIGHT_PT);
            }
        }
    }
}
