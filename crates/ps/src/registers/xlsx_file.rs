//! The register as an Excel workbook (SPEC 5.1 asks for Excel), written in rust_xlsxwriter's
//! constant-memory mode: each row goes to a temporary file as soon as the next one starts, so
//! memory stays flat however many operations there are. Amounts are numeric cells shown with two
//! decimals, date-times real date cells in the operator's local time. A sheet holds at most
//! `sheet_rows_max` operations; more continue on the next sheet, under the same headers.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};
use tolem_wire::Amount;

use super::RegisterError;
use super::sheet::{HEADERS_KK, HEADERS_RU, Line, Sink, TOTAL_LABEL, Totals, type_label};

const SHEET_NAME: &str = "Реестр";
const COLUMN_WIDTHS: [f64; 8] = [16.0, 28.0, 20.0, 20.0, 18.0, 14.0, 12.0, 22.0];

/// Two header rows above the operations of every sheet.
const HEADER_ROWS: u32 = 2;

pub struct XlsxSink {
    workbook: Workbook,
    out: PathBuf,
    zone: TimeZone,
    sheet_rows_max: u32,
    sheets: usize,
    /// The next row to write on the current sheet.
    row: u32,
    header: Format,
    money: Format,
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

/// The local wall-clock time of `at` as an Excel date-time (Excel has no time zones).
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
    Ok(date.and_hms_milli(
        number(local.hour().into())?,
        u8::try_from(local.minute()).unwrap_or(0),
        u8::try_from(local.second()).unwrap_or(0),
        number(local.millisecond().into())?,
    )?)
}

impl XlsxSink {
    pub fn create(
        out: &Path,
        temp_dir: &Path,
        title: &str,
        zone: &TimeZone,
        sheet_rows_max: u32,
    ) -> Result<XlsxSink, RegisterError> {
        let mut workbook = Workbook::new();
        workbook.set_tempdir(temp_dir)?;
        workbook.set_properties(&DocProperties::new().set_title(title));
        let mut sink = XlsxSink {
            workbook,
            out: out.to_owned(),
            zone: zone.clone(),
            sheet_rows_max,
            sheets: 0,
            row: 0,
            header: Format::new().set_bold().set_text_wrap(),
            money: Format::new().set_num_format("0.00"),
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
        for (row, headers) in [(0, HEADERS_RU), (1, HEADERS_KK)] {
            for (col, text) in (0u16..).zip(headers) {
                sheet.write_string_with_format(row, col, text, &self.header)?;
            }
        }
        sheet.set_freeze_panes(HEADER_ROWS, 0)?;
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
        sheet.write_datetime_with_format(row, 3, when, &self.datetime)?;
        sheet.write_string(row, 4, type_label(op.kind))?;
        sheet.write_number_with_format(row, 5, tenge(op.amount), &self.money)?;
        sheet.write_number_with_format(row, 6, tenge(line.commission), &self.money)?;
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
            sheet.write_string_with_format(row, 0, TOTAL_LABEL, &self.header)?;
            sheet.write_number_with_format(row, 2, f64_count(total.count), &self.count)?;
            sheet.write_string_with_format(row, 4, type_label(kind), &self.header)?;
            sheet.write_number_with_format(row, 5, tenge(total.amount), &self.money)?;
            sheet.write_number_with_format(row, 6, tenge(total.commission), &self.money)?;
        }
        self.workbook.save(&self.out)?;
        Ok(())
    }
}

/// A count as an Excel number: exact for any count a register can have (below 2^53).
#[allow(clippy::cast_precision_loss)]
fn f64_count(count: u64) -> f64 {
    count as f64
}
