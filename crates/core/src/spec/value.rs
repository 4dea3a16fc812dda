//! TOML values → JSON values, and checking a JSON value against a setting's kind.

use super::schema::{KeySpec, Kind};
use serde_json::{Number, Value};
use toml::de::DeValue;

/// A TOML value as plain JSON (tables become objects). Fails on datetimes and non-finite floats,
/// which no setting accepts.
pub fn to_json(v: &DeValue<'_>) -> Result<Value, String> {
    Ok(match v {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => {
            let n = i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| format!("integer {} does not fit in 64 bits", i.as_str()))?;
            Value::Number(n.into())
        }
        DeValue::Float(f) => {
            let x: f64 = f
                .as_str()
                .parse()
                .map_err(|_| format!("invalid float {}", f.as_str()))?;
            Value::Number(
                Number::from_f64(x)
                    .ok_or_else(|| format!("expected a finite number, found {}", f.as_str()))?,
            )
        }
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => {
            return Err(format!("a date-time ({d}) is not a valid setting value"))
        }
        DeValue::Array(a) => Value::Array(
            a.iter()
                .map(|x| to_json(x.get_ref()))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(t) => Value::Object(
            t.iter()
                .map(|(k, x)| Ok((k.get_ref().to_string(), to_json(x.get_ref())?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// How a JSON value reads in an error message.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) if n.is_f64() => format!("float {n}"),
        Value::Number(n) => format!("integer {n}"),
        Value::String(s) => format!("string \"{s}\""),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "a table".into(),
    }
}

/// What a kind expects, for error messages.
pub fn expected(kind: &Kind) -> String {
    let bound = |x: f64| {
        if x.is_infinite() {
            String::new()
        } else {
            format!("{x}")
        }
    };
    match kind {
        Kind::Float {
            min,
            min_open,
            max,
            max_open,
        } => {
            let lo = if min.is_infinite() {
                String::new()
            } else if *min_open {
                format!(" > {}", bound(*min))
            } else {
                format!(" ≥ {}", bound(*min))
            };
            let hi = if max.is_infinite() {
                String::new()
            } else if *max_open {
                format!(" < {}", bound(*max))
            } else {
                format!(" ≤ {}", bound(*max))
            };
            let and = if !lo.is_empty() && !hi.is_empty() {
                " and"
            } else {
                ""
            };
            format!("a number{lo}{and}{hi}")
        }
        Kind::Int { min, max } => {
            if *max >= 1 << 40 {
                format!("an integer ≥ {min}")
            } else {
                format!("an integer from {min} to {max}")
            }
        }
        Kind::Bool => "true or false".into(),
        Kind::Str => "a string".into(),
        Kind::Choice(c) => format!("one of {}", quoted(c)),
        Kind::StrList => "a string or a non-empty array of strings".into(),
        Kind::ChoiceList(c) => format!("an array of {}", quoted(c)),
        Kind::Layers => "\"last\", \"all\", or an array of layer indices ≥ 0".into(),
    }
}

pub fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Check `v` against the setting and return its canonical form (integers given for a float
/// setting become floats; a single string for a list setting becomes a one-element list).
pub fn check_json(spec: &KeySpec, v: &Value) -> Result<Value, String> {
    let bad = || format!("expected {}, found {}", expected(&spec.kind), describe(v));
    match spec.kind {
        Kind::Float {
            min,
            min_open,
            max,
            max_open,
        } => {
            let x = v.as_f64().filter(|_| v.is_number()).ok_or_else(bad)?;
            let below = if min_open { x <= min } else { x < min };
            let above = if max_open { x >= max } else { x > max };
            if below || above || !x.is_finite() {
                return Err(format!(
                    "{} is out of range: expected {}",
                    fmt_num(x),
                    expected(&spec.kind)
                ));
            }
            Ok(Value::Number(Number::from_f64(x).ok_or_else(bad)?))
        }
        Kind::Int { min, max } => {
            let x = v.as_i64().ok_or_else(bad)?;
            if x < min || x > max {
                return Err(format!(
                    "{x} is out of range: expected {}",
                    expected(&spec.kind)
                ));
            }
            Ok(Value::Number(x.into()))
        }
        Kind::Bool => v.as_bool().map(Value::Bool).ok_or_else(bad),
        Kind::Str => match v.as_str() {
            Some("") => Err("expected a non-empty string".into()),
            Some(s) => Ok(Value::String(s.into())),
            None => Err(bad()),
        },
        Kind::Choice(choices) => {
            let s = v.as_str().ok_or_else(bad)?;
            if choices.contains(&s) {
                Ok(Value::String(s.into()))
            } else {
                let hint = super::schema::suggest(s, choices.iter().copied())
                    .map(|c| format!(" (did you mean \"{c}\"?)"))
                    .unwrap_or_default();
                Err(format!(
                    "unknown value \"{s}\": expected one of {}{hint}",
                    quoted(choices)
                ))
            }
        }
        Kind::StrList => {
            let items = match v {
                Value::String(_) => vec![v.clone()],
                Value::Array(a) if !a.is_empty() => a.clone(),
                Value::Array(_) => {
                    return Err("expected at least one file, found an empty array".into())
                }
                _ => return Err(bad()),
            };
            for it in &items {
                match it.as_str() {
                    Some("") => return Err("expected non-empty strings, found \"\"".into()),
                    Some(_) => {}
                    None => return Err(bad()),
                }
            }
            Ok(Value::Array(items))
        }
        Kind::ChoiceList(choices) => {
            let a = v.as_array().ok_or_else(bad)?;
            let mut seen = Vec::new();
            for it in a {
                let s = it.as_str().ok_or_else(bad)?;
                if !choices.contains(&s) {
                    return Err(format!(
                        "unknown value \"{s}\": expected only {}",
                        quoted(choices)
                    ));
                }
                if seen.contains(&s) {
                    return Err(format!("\"{s}\" is listed twice"));
                }
                seen.push(s);
            }
            Ok(v.clone())
        }
        Kind::Layers => match v {
            Value::String(s) if s == "last" || s == "all" => Ok(v.clone()),
            Value::Number(_) => {
                let i = v.as_i64().filter(|i| *i >= 0).ok_or_else(bad)?;
                Ok(Value::Array(vec![i.into()]))
            }
            Value::Array(a) if !a.is_empty() => {
                let mut out = Vec::new();
                for it in a {
                    let i = it.as_i64().filter(|i| *i >= 0).ok_or_else(bad)?;
                    if out.contains(&i) {
                        return Err(format!("layer {i} is listed twice"));
                    }
                    out.push(i);
                }
                out.sort_unstable();
                Ok(Value::Array(out.into_iter().map(Value::from).collect()))
            }
            _ => Err(bad()),
        },
    }
}

/// Is this kind's value itself a list? (Then a grid axis lists lists.)
pub fn is_list_kind(kind: &Kind) -> bool {
    matches!(kind, Kind::StrList | Kind::ChoiceList(_) | Kind::Layers)
}

pub fn fmt_num(x: f64) -> String {
    serde_json::Number::from_f64(x)
        .map(|n| n.to_string())
        .unwrap_or_else(|| x.to_string())
}

/// A short, human form of a value for tables: strings unquoted, arrays joined with '+'.
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(display).collect::<Vec<_>>().join("+"),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::schema::lookup;
    use serde_json::json;

    fn chk(key: &str, v: Value) -> Result<Value, String> {
        check_json(lookup(key).unwrap(), &v)
    }

    #[test]
    fn floats_and_ints() {
        assert_eq!(chk("train.lr", json!(1)).unwrap(), json!(1.0));
        assert_eq!(chk("train.temperature", json!(0.05)).unwrap(), json!(0.05));
        assert_eq!(
            chk("train.temperature", json!(0.0)).unwrap_err(),
            "0.0 is out of range: expected a number > 0"
        );
        assert_eq!(
            chk("train.batch_size", json!(1)).unwrap_err(),
            "1 is out of range: expected an integer from 2 to 1048576"
        );
        assert_eq!(
            chk("train.batch_size", json!(64.0)).unwrap_err(),
            "expected an integer from 2 to 1048576, found float 64.0"
        );
        assert_eq!(
            chk("train.lr", json!("3e-5")).unwrap_err(),
            "expected a number > 0, found string \"3e-5\""
        );
        assert!(chk("model.config.hidden_dropout_prob", json!(1.0)).is_err());
        assert!(chk("model.config.hidden_dropout_prob", json!(0.0)).is_ok());
    }

    #[test]
    fn choices_and_lists() {
        assert_eq!(
            chk("model.pooling", json!("avg_frist_last")).unwrap_err(),
            "unknown value \"avg_frist_last\": expected one of \"cls\", \"cls_before_pooler\", \"avg\", \"avg_top2\", \"avg_first_last\" (did you mean \"avg_first_last\"?)"
        );
        assert_eq!(chk("data.train", json!("a.txt")).unwrap(), json!(["a.txt"]));
        assert!(chk("data.train", json!([])).is_err());
        assert_eq!(chk("probe.layers", json!([3, 1])).unwrap(), json!([1, 3]));
        assert_eq!(chk("probe.layers", json!(2)).unwrap(), json!([2]));
        assert!(chk("probe.layers", json!("first")).is_err());
        assert!(chk("eval.tasks", json!(["sts12", "sts12"])).is_err());
        assert_eq!(chk("eval.tasks", json!([])).unwrap(), json!([]));
    }
}
