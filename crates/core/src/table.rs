//! Plain aligned text tables for the terminal.

/// Render rows under headers, columns padded to their widest cell, two spaces apart.
pub fn render(headers: &[String], rows: &[Vec<String>]) -> String {
    let w = widths(headers, rows);
    let mut out = line(headers, &w);
    for r in rows {
        out.push_str(&line(r, &w));
    }
    out
}

/// The width of each column: its widest cell, header included (in characters).
pub fn widths(headers: &[String], rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    widths
}

/// One line of a table: cells padded to `widths`, two spaces apart, no trailing blanks.
pub fn line(cells: &[String], widths: &[usize]) -> String {
    let mut s = String::new();
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            s.push_str("  ");
        }
        s.push_str(c);
        if i + 1 < cells.len() {
            let w = widths.get(i).copied().unwrap_or(0);
            s.push_str(&" ".repeat(w.saturating_sub(c.chars().count())));
        }
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns() {
        let h = vec!["a".to_string(), "bb".to_string()];
        let r = vec![vec!["xxx".to_string(), "y".to_string()]];
        assert_eq!(super::render(&h, &r), "a    bb\nxxx  y\n");
    }
}
