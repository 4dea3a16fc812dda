//! Writing query results: aligned text tables, CSV (RFC 4180) and JSON, streamed row by row.
//!
//! Cells are JSON values (`null`, booleans, numbers, strings, lists), so one row source serves all
//! three formats: JSON keeps the types, CSV writes numbers in full precision (shortest text that
//! reads back to the same `f64`), an empty field for NULL and lists as their JSON text, and the table
//! rounds reals to six significant digits for reading.

use serde_json::Value;
use std::io::{self, Write};

/// How a command prints its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned columns for the terminal.
    #[default]
    Table,
    /// Comma-separated values with a header line (RFC 4180 quoting).
    Csv,
    /// A JSON array with one object per row.
    Json,
}

/// Rows buffered by a table before its column widths are fixed; later rows are streamed with those
/// widths (a wider cell pushes its line out rather than holding millions of rows in memory).
const TABLE_BUFFER_ROWS: usize = 1000;

/// Streams rows in one [`Format`]: call [`RowWriter::row`] per row, then [`RowWriter::finish`].
pub struct RowWriter<W: Write> {
    out: W,
    format: Format,
    headers: Vec<String>,
    /// What a NULL reads as in a table (`NULL` for SQL results, `-` for simsweep's own tables).
    null: &'static str,
    buffered: Vec<Vec<String>>,
    widths: Option<Vec<usize>>,
    rows: u64,
}

impl<W: Write> RowWriter<W> {
    pub fn new(out: W, format: Format, headers: Vec<String>, null: &'static str) -> Self {
        RowWriter {
            out,
            format,
            headers,
            null,
            buffered: Vec::new(),
            widths: None,
            rows: 0,
        }
    }

    pub fn row(&mut self, cells: &[Value]) -> io::Result<()> {
        if self.rows == 0 {
            match self.format {
                Format::Csv => {
                    write_csv_line(&mut self.out, self.headers.iter().map(|h| h.as_str()))?
                }
                Format::Json => self.out.write_all(b"[\n")?,
                Format::Table => {}
            }
        }
        match self.format {
            Format::Csv => write_csv_values(&mut self.out, cells)?,
            Format::Json => {
                if self.rows > 0 {
                    self.out.write_all(b",\n")?;
                }
                let obj: serde_json::Map<String, Value> = self
                    .headers
                    .iter()
                    .cloned()
                    .zip(cells.iter().cloned())
                    .collect();
                serde_json::to_writer(&mut self.out, &obj)?;
            }
            Format::Table => {
                let line: Vec<String> = cells.iter().map(|c| table_cell(c, self.null)).collect();
                match &self.widths {
                    Some(w) => self
                        .out
                        .write_all(crate::table::line(&line, w).as_bytes())?,
                    None => {
                        self.buffered.push(line);
                        if self.buffered.len() >= TABLE_BUFFER_ROWS {
                            self.flush_table()?;
                        }
                    }
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn flush_table(&mut self) -> io::Result<()> {
        let widths = crate::table::widths(&self.headers, &self.buffered);
        self.out
            .write_all(crate::table::line(&self.headers, &widths).as_bytes())?;
        for r in self.buffered.drain(..) {
            self.out
                .write_all(crate::table::line(&r, &widths).as_bytes())?;
        }
        self.widths = Some(widths);
        Ok(())
    }

    /// Close the output (the header alone when there were no rows; `[]` in JSON) and return the
    /// number of rows written.
    pub fn finish(mut self) -> io::Result<u64> {
        match self.format {
            Format::Csv if self.rows == 0 => {
                write_csv_line(&mut self.out, self.headers.iter().map(|h| h.as_str()))?
            }
            Format::Csv => {}
            Format::Json if self.rows == 0 => self.out.write_all(b"[]\n")?,
            Format::Json => self.out.write_all(b"\n]\n")?,
            Format::Table => {
                if self.widths.is_none() {
                    self.flush_table()?;
                }
            }
        }
        self.out.flush()?;
        Ok(self.rows)
    }
}

/// A cell as the table shows it: reals to six significant digits, lists joined with `+`.
pub fn table_cell(v: &Value, null: &str) -> String {
    match v {
        Value::Null => null.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if !n.is_f64() => i.to_string(),
            (_, Some(x)) => fmt_sig(x, 6),
            _ => n.to_string(),
        },
        other => crate::spec::value::display(other),
    }
}

/// `x` to `sig` significant digits without trailing zeros (`0.05`, `76.1235`, `200`); scientific
/// notation below 1e-4 and from 1e9 on.
pub fn fmt_sig(x: f64, sig: usize) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x == 0.0 {
        return "0".into();
    }
    let mag = x.abs().log10().floor() as i64;
    if !(-4..9).contains(&mag) {
        let s = format!("{:.*e}", sig.saturating_sub(1), x);
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        return format!("{}e{exp}", trim_zeros(mantissa.to_string()));
    }
    let decimals = (sig as i64 - 1 - mag).max(0) as usize;
    trim_zeros(format!("{x:.decimals$}"))
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.');
        if t == "-0" {
            "0".into()
        } else {
            t.to_string()
        }
    } else {
        s
    }
}

/// Decimals that show the largest of `values` to four significant digits (at least 0, at most 8):
/// one setting for a whole column, so `76.12 ± 1.35` and `0.7123 ± 0.0135` line up.
pub fn decimals_for(values: impl IntoIterator<Item = f64>) -> usize {
    let max = values
        .into_iter()
        .filter(|x| x.is_finite())
        .fold(0.0f64, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return 2;
    }
    (3 - max.log10().floor() as i64).clamp(0, 8) as usize
}

/// One CSV field: quoted when it holds a comma, a quote or a line break (quotes doubled).
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// A JSON value as a CSV field: NULL empty, numbers in full precision, strings as they are, lists
/// and objects as their JSON text.
pub fn csv_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => csv_field(s).into_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => csv_field(&other.to_string()).into_owned(),
    }
}

pub fn write_csv_line<'a, W: Write + ?Sized>(
    out: &mut W,
    fields: impl IntoIterator<Item = &'a str>,
) -> io::Result<()> {
    let mut first = true;
    for f in fields {
        if !first {
            out.write_all(b",")?;
        }
        first = false;
        out.write_all(csv_field(f).as_bytes())?;
    }
    out.write_all(b"\n")
}

pub fn write_csv_values<W: Write + ?Sized>(out: &mut W, cells: &[Value]) -> io::Result<()> {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(csv_value(c).as_bytes())?;
    }
    out.write_all(b"\n")
}

/// A number as a JSON value (`null` when not finite, as the database stores NaN).
pub fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// An optional number as a JSON value.
pub fn opt_num(x: Option<f64>) -> Value {
    x.map_or(Value::Null, num)
}

/// Shorten a text to its first line and at most `max` characters (an ellipsis marks the cut).
pub fn shorten(s: &str, max: usize) -> String {
    let first = s.lines().next().unwrap_or("");
    let cut = first.chars().count() > max || first.len() < s.trim_end().len();
    if !cut {
        return first.to_string();
    }
    let mut t: String = first.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn significant_digits() {
        assert_eq!(fmt_sig(0.05, 6), "0.05");
        assert_eq!(fmt_sig(76.123456789, 6), "76.1235");
        assert_eq!(fmt_sig(200.0, 6), "200");
        assert_eq!(fmt_sig(-3.25, 6), "-3.25");
        assert_eq!(fmt_sig(3e-5, 6), "3e-5");
        assert_eq!(fmt_sig(1.5e10, 6), "1.5e10");
        assert_eq!(fmt_sig(0.0, 6), "0");
        assert_eq!(decimals_for([76.12, 1.3]), 2);
        assert_eq!(decimals_for([0.71, -0.01]), 4);
        assert_eq!(decimals_for([1234.5]), 0);
        assert_eq!(decimals_for([]), 2);
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_value(&json!(null)), "");
        assert_eq!(csv_value(&json!(0.1)), "0.1");
        assert_eq!(csv_value(&json!(["a", "b"])), "\"[\"\"a\"\",\"\"b\"\"]\"");
    }

    fn written(
        format: Format,
        headers: &[&str],
        rows: &[Vec<Value>],
        null: &'static str,
    ) -> String {
        let mut v = Vec::new();
        let mut w = RowWriter::new(
            &mut v,
            format,
            headers.iter().map(|h| h.to_string()).collect(),
            null,
        );
        for r in rows {
            w.row(r).unwrap();
        }
        assert_eq!(w.finish().unwrap(), rows.len() as u64);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn the_three_formats() {
        let rows = [vec![json!(1), json!(0.5), json!(null), json!("x,y")]];
        let h = ["i", "r", "n", "s"];
        assert_eq!(
            written(Format::Csv, &h, &rows, "NULL"),
            "i,r,n,s\n1,0.5,,\"x,y\"\n"
        );
        let j: Value = serde_json::from_str(&written(Format::Json, &h, &rows, "NULL")).unwrap();
        assert_eq!(j, json!([{"i": 1, "r": 0.5, "n": null, "s": "x,y"}]));
        assert_eq!(
            written(Format::Table, &h, &rows, "NULL"),
            "i  r    n     s\n1  0.5  NULL  x,y\n"
        );
        // No rows: the header alone, an empty array.
        assert_eq!(written(Format::Csv, &h, &[], "NULL"), "i,r,n,s\n");
        assert_eq!(written(Format::Json, &h, &[], "NULL"), "[]\n");
        assert_eq!(written(Format::Table, &h, &[], "-"), "i  r  n  s\n");
    }

    #[test]
    fn a_long_table_streams_with_the_widths_of_its_first_rows() {
        let mut rows: Vec<Vec<Value>> = (0..TABLE_BUFFER_ROWS).map(|_| vec![json!("a")]).collect();
        rows.push(vec![json!("wider")]);
        let t = written(Format::Table, &["c"], &rows, "-");
        assert_eq!(t.lines().count(), TABLE_BUFFER_ROWS + 2);
        assert_eq!(t.lines().last(), Some("wider"));
    }

    #[test]
    fn shortening() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("0123456789abc", 10), "012345678…");
        assert_eq!(shorten("first\nsecond", 10), "first…");
    }
}
