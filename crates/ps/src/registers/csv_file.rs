//! The register as CSV (UTF-8, comma-separated), with the same rows as the workbook. Amounts are
//! the exact text `Amount` writes (`1500.00`), date-times ISO 8601 with the operator's offset
//! (`2026-11-26T18:31:42+05:00`), as on the MPP API.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use jiff::tz::TimeZone;

use super::RegisterError;
use super::sheet::{Line, Sink, TOTAL_LABEL, Totals, type_label};

pub(crate) struct CsvSink {
    writer: csv::Writer<BufWriter<File>>,
    zone: TimeZone,
}

impl CsvSink {
    pub(crate) fn create(
        out: &Path,
        zone: &TimeZone,
        headers: [[&str; 8]; 2],
    ) -> Result<CsvSink, RegisterError> {
        let mut writer = csv::WriterBuilder::new()
            .flexible(false)
            .from_writer(BufWriter::new(File::create(out)?));
        for row in headers {
            writer.write_record(row)?;
        }
        Ok(CsvSink {
            writer,
            zone: zone.clone(),
        })
    }
}

impl Sink for CsvSink {
    fn line(&mut self, line: &Line) -> Result<(), RegisterError> {
        let op = &line.op;
        let payment = op
            .refund_of
            .map(|of| of.payment_id.to_string())
            .unwrap_or_default();
        self.writer.write_record([
            op.customer_id.as_str(),
            op.mpp_operation_id.as_str(),
            &op.id.to_string(),
            &tolem_wire::time::format_mpp(op.finished_at, &self.zone),
            type_label(op.kind),
            &op.amount.to_string(),
            &line.commission.to_string(),
            &payment,
        ])?;
        Ok(())
    }

    fn finish(mut self, totals: &Totals) -> Result<(), RegisterError> {
        self.writer.write_record([""; 8])?;
        for (kind, total) in totals.by_type() {
            self.writer.write_record([
                TOTAL_LABEL,
                "",
                &total.count.to_string(),
                "",
                type_label(kind),
                &total.amount.to_string(),
                &total.commission.to_string(),
                "",
            ])?;
        }
        let file = self
            .writer
            .into_inner()
            .map_err(|e| RegisterError::Write(e.to_string()))?;
        file.into_inner()
            .map_err(|e| RegisterError::Write(e.to_string()))?
            .sync_all()?;
        Ok(())
    }
}
