//! `simsweep cache status|clear`: the tokenized-corpus cache (`simsweep_core::tokcache`), by
//! default `<db folder>/cache/tokens`, or `$SIMSWEEP_TOKEN_CACHE`.

use super::*;
use simsweep_core::tokcache;

/// The cache folder for this database, or `None` when the cache is off.
fn folder(cli: &Cli) -> Option<PathBuf> {
    tokcache::dir_for(&crate::exec::slurm::results_dir(&cli.db))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(super) fn status(cli: &Cli, verify: bool, format: Format) -> Result<i32> {
    let Some(dir) = folder(cli) else {
        println!("the token cache is off ({}=off)", tokcache::ENV);
        return Ok(0);
    };
    let entries = tokcache::entries(&dir, verify)?;
    if format == Format::Json {
        let v = serde_json::json!({ "folder": dir, "entries": entries });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    let n = entries.iter().filter(|e| e.info.is_some()).count();
    if format == Format::Table {
        println!(
            "token cache {}: {n} entries, {}{}",
            dir.display(),
            mib(total),
            if verify { ", checksums verified" } else { "" }
        );
        if entries.is_empty() {
            return Ok(0);
        }
    }
    let headers = [
        "key",
        "state",
        "size",
        "examples",
        "tokens",
        "max_len",
        "files",
        "tokenizer",
        "created",
    ];
    let mut w = RowWriter::new(
        std::io::stdout(),
        format,
        headers.iter().map(|h| h.to_string()).collect(),
        "-",
    );
    for e in &entries {
        let name = e
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let key = name.split('.').next().unwrap_or_default().to_string();
        let s = |v: String| serde_json::Value::String(v);
        let row: Vec<serde_json::Value> = match &e.info {
            Some(i) => vec![
                s(key),
                s(e.state.clone()),
                s(mib(e.bytes)),
                i.examples.into(),
                i.tokens.into(),
                i.max_len.into(),
                s(i.files
                    .iter()
                    .map(|f| format!("{} ({})", f.path.display(), f.format))
                    .collect::<Vec<_>>()
                    .join(", ")),
                s(i.tokenizer_source.display().to_string()),
                s(unix_time(i.created)),
            ],
            None => {
                let mut r = vec![s(key), s(e.state.clone()), s(mib(e.bytes))];
                r.resize(headers.len(), serde_json::Value::Null);
                r
            }
        };
        w.row(&row)?;
    }
    w.finish()?;
    Ok(0)
}

pub(super) fn clear(cli: &Cli) -> Result<i32> {
    let Some(dir) = folder(cli) else {
        println!(
            "the token cache is off ({}=off): nothing to clear",
            tokcache::ENV
        );
        return Ok(0);
    };
    let (n, bytes) = tokcache::clear(&dir)?;
    println!("removed {n} files ({}) from {}", mib(bytes), dir.display());
    Ok(0)
}

/// `YYYY-MM-DD HH:MM:SS` UTC of a Unix time.
fn unix_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_times_read_as_utc_dates() {
        assert_eq!(super::unix_time(0), "1970-01-01 00:00:00");
        assert_eq!(super::unix_time(1_796_083_200), "2026-12-01 00:00:00");
        assert_eq!(super::unix_time(951_825_599), "2000-02-29 11:59:59");
    }
}
