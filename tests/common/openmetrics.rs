//! A strict OpenMetrics 1.0 text checker, for `/metrics`: what a strict
//! parser (Prometheus' OpenMetrics parser, Python's `prometheus_client`)
//! refuses, this refuses too, with the line and the reason. It checks the
//! whole exposition, not a sample here and there:
//!
//! - every line ends in `\n`, the last one is `# EOF` and it comes once;
//! - `# TYPE`, `# HELP`, `# UNIT` name a valid family once each, before its
//!   samples, with a known type; a family's samples are not interleaved with
//!   another's, and no family name comes twice;
//! - every sample's name belongs to its family's type (`_total`/`_created`
//!   for a counter, `_bucket`/`_count`/`_sum`/`_created` for a histogram,
//!   ...), its labels are well formed, escaped and not repeated, its value
//!   is a number, and no label set repeats within a family;
//! - counters are not negative; a histogram's buckets have `le`, rise, end
//!   at `+Inf` with `_count` equal to it, and a histogram with a negative
//!   bucket has no `_sum` (a negative sum needs a gaugehistogram).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};

/// Check `text`; the error names the line and what is wrong with it.
pub fn check(text: &str) -> Result<(), String> {
    if !text.ends_with("# EOF\n") && !text.ends_with("# EOF") {
        return Err("the exposition does not end with `# EOF`".into());
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut families: HashMap<String, Family> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut closed: HashSet<String> = HashSet::new();
    let mut eof = false;
    for (i, raw) in lines.iter().enumerate() {
        let n = i + 1;
        let err = |why: String| Err(format!("line {n} ({raw:?}): {why}"));
        if eof {
            return err("text after `# EOF`".into());
        }
        let line = match raw.strip_suffix('\n') {
            Some(l) => l,
            None if *raw == "# EOF" => raw,
            None => return err("no trailing newline".into()),
        };
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if line.is_empty() {
            return err("empty line".into());
        }
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let kind = parts.next().unwrap_or("");
            let name = parts.next().unwrap_or("").to_string();
            let rest = parts.next();
            if !valid_name(&name) {
                return err(format!("bad family name {name:?}"));
            }
            if current.as_deref() != Some(name.as_str()) {
                if let Some(c) = current.take() {
                    closed.insert(c);
                }
                if closed.contains(&name) || families.contains_key(&name) {
                    return err(format!("family {name} comes twice"));
                }
                families.insert(name.clone(), Family::default());
                order.push(name.clone());
                current = Some(name.clone());
            }
            let fam = families.get_mut(&name).ok_or("no family")?;
            if fam.samples > 0 {
                return err(format!("metadata of {name} after its samples"));
            }
            match kind {
                "TYPE" => {
                    let t = rest.unwrap_or("");
                    if fam.kind.is_some() {
                        return err("a second TYPE".into());
                    }
                    if ![
                        "counter",
                        "gauge",
                        "histogram",
                        "gaugehistogram",
                        "stateset",
                        "info",
                        "summary",
                        "unknown",
                    ]
                    .contains(&t)
                    {
                        return err(format!("unknown type {t:?}"));
                    }
                    if t == "counter" && name.ends_with("_total") {
                        return err("a counter family name must not end in _total".into());
                    }
                    fam.kind = Some(t.to_string());
                }
                "HELP" => {
                    if fam.help {
                        return err("a second HELP".into());
                    }
                    fam.help = true;
                    if let Some(h) = rest {
                        check_escapes(h).or_else(err)?;
                    }
                }
                "UNIT" => {
                    if fam.unit {
                        return err("a second UNIT".into());
                    }
                    fam.unit = true;
                    let u = rest.unwrap_or("");
                    if !u.is_empty() && !name.ends_with(&format!("_{u}")) {
                        return err(format!("family {name} does not end with its unit {u}"));
                    }
                }
                other => return err(format!("unknown metadata {other:?}")),
            }
            continue;
        }
        if line.starts_with('#') {
            return err("a comment that is not TYPE, HELP, UNIT or EOF".into());
        }
        let sample = parse_sample(line).map_err(|e| format!("line {n} ({raw:?}): {e}"))?;
        // The family this sample belongs to: the current one, by suffix.
        let Some(fam_name) = current.clone() else {
            return err("a sample before any TYPE".into());
        };
        let fam = families.get_mut(&fam_name).ok_or("no family")?;
        let kind = fam.kind.clone().unwrap_or_else(|| "unknown".into());
        let suffix = match sample.name.strip_prefix(fam_name.as_str()) {
            Some(s) => s.to_string(),
            None => {
                return err(format!(
                    "sample {} is not of the family {fam_name} (interleaved or undeclared)",
                    sample.name
                ))
            }
        };
        let allowed: &[&str] = match kind.as_str() {
            "counter" => &["_total", "_created"],
            "gauge" | "unknown" => &[""],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            "gaugehistogram" => &["_bucket", "_gcount", "_gsum"],
            "summary" => &["", "_count", "_sum", "_created"],
            "info" => &["_info"],
            "stateset" => &[""],
            _ => &[],
        };
        if !allowed.contains(&suffix.as_str()) {
            return err(format!(
                "sample {} does not belong to a {kind} family {fam_name}",
                sample.name
            ));
        }
        fam.samples += 1;
        let mut key_labels: Vec<(String, String)> = sample
            .labels
            .iter()
            .filter(|(k, _)| k != "le" || suffix != "_bucket")
            .cloned()
            .collect();
        key_labels.sort();
        let key = format!("{suffix}{key_labels:?}");
        let le = sample
            .labels
            .iter()
            .find(|(k, _)| k == "le")
            .map(|(_, v)| v.clone());
        if suffix == "_bucket" {
            let Some(le) = le else {
                return err("a bucket without `le`".into());
            };
            let bound = parse_value(&le).map_err(|e| format!("line {n}: le {e}"))?;
            let series = fam.histograms.entry(format!("{key_labels:?}")).or_default();
            if let Some((last, count)) = series.buckets.last() {
                if bound <= *last {
                    return err("buckets not in increasing `le` order".into());
                }
                if sample.value < *count {
                    return err("a bucket count below the one before it".into());
                }
            }
            series.buckets.push((bound, sample.value));
            continue;
        }
        if !fam.seen.insert(key) {
            return err(format!("the label set of {} comes twice", sample.name));
        }
        if sample.value.is_nan() && (suffix == "_total" || suffix == "_count") {
            return err("a counter-like value is NaN".into());
        }
        if (suffix == "_total" || suffix == "_count" || suffix == "_created") && sample.value < 0.0
        {
            return err("a counter-like value is negative".into());
        }
        if kind == "histogram" {
            let series = fam.histograms.entry(format!("{key_labels:?}")).or_default();
            match suffix.as_str() {
                "_count" => series.count = Some(sample.value),
                "_sum" => series.sum = Some(sample.value),
                _ => {}
            }
        }
    }
    if !eof {
        return Err("no `# EOF`".into());
    }
    for name in &order {
        let fam = &families[name];
        for (labels, h) in &fam.histograms {
            let what = format!("histogram {name}{labels}");
            match h.buckets.last() {
                Some((last, top)) if last.is_infinite() && *last > 0.0 => {
                    if h.count.is_some_and(|c| c != *top) {
                        return Err(format!("{what}: _count differs from its +Inf bucket"));
                    }
                }
                _ => return Err(format!("{what}: no +Inf bucket")),
            }
            let negative = h.buckets.iter().any(|(le, _)| *le < 0.0);
            if negative && h.sum.is_some() {
                return Err(format!("{what}: Cannot have _sum with negative buckets"));
            }
            if !negative && h.sum.is_some_and(|s| s < 0.0) {
                return Err(format!("{what}: a negative _sum without negative buckets"));
            }
        }
    }
    Ok(())
}

#[derive(Default)]
struct Family {
    kind: Option<String>,
    help: bool,
    unit: bool,
    samples: usize,
    seen: HashSet<String>,
    histograms: BTreeMap<String, Histogram>,
}

#[derive(Default)]
struct Histogram {
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: Option<f64>,
}

struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_escapes(text: &str) -> Result<(), String> {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && !matches!(chars.next(), Some('\\' | '"' | 'n')) {
            return Err("a bad escape".into());
        }
    }
    Ok(())
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        t if t.is_empty()
            || t.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            Err(format!("{t:?} is not a number"))
        }
        t => t
            .parse::<f64>()
            .map_err(|_| format!("{t:?} is not a number")),
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut s = after;
        loop {
            if let Some(r) = s.strip_prefix('}') {
                s = r;
                break;
            }
            let eq = s.find('=').ok_or("a label without `=`")?;
            let lname = &s[..eq];
            if !valid_label_name(lname) {
                return Err(format!("bad label name {lname:?}"));
            }
            let v = s[eq + 1..]
                .strip_prefix('"')
                .ok_or("a label value without quotes")?;
            let mut value = String::new();
            let mut chars = v.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        _ => return Err("a bad escape in a label value".into()),
                    },
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                    None => return Err("an unterminated label value".into()),
                }
            };
            if labels.iter().any(|(k, _): &(String, String)| k == lname) {
                return Err(format!("label {lname} comes twice"));
            }
            labels.push((lname.to_string(), value));
            s = &v[end + 1..];
            if let Some(r) = s.strip_prefix(',') {
                s = r;
            } else if !s.starts_with('}') {
                return Err("labels not separated by `,`".into());
            }
        }
        rest = s;
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let (main, _exemplar) = match rest.split_once(" # ") {
        Some((m, e)) => (m, Some(e)),
        None => (rest, None),
    };
    let mut parts = main.split(' ');
    let value = parse_value(parts.next().unwrap_or(""))?;
    if let Some(ts) = parts.next() {
        parse_value(ts).map_err(|e| format!("timestamp {e}"))?;
    }
    if parts.next().is_some() {
        return Err("more than a value and a timestamp".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The checker's own cases: what it must refuse.
pub fn self_test() {
    let ok = "# HELP a A.\n# TYPE a counter\na_total{x=\"1\"} 2\n\
              # TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 0.7\n# EOF\n";
    check(ok).unwrap();
    for (bad, why) in [
        (ok.replace("# EOF\n", ""), "no EOF"),
        (
            ok.replace("le=\"0.5\"", "le=\"-0.5\""),
            "negative bucket with _sum",
        ),
        (ok.replace("h_count 2", "h_count 3"), "count differs"),
        (
            ok.replace("a_total{x=\"1\"} 2", "a_total{x=\"1\"} -2"),
            "negative counter",
        ),
        (ok.replace("a_total", "a_sum"), "wrong suffix"),
        (ok.replace("# TYPE h histogram\n", ""), "interleaved"),
        (ok.replace("x=\"1\"", "x=\"1\",x=\"2\""), "repeated label"),
        (ok.replace("} 2\n", "} two\n"), "not a number"),
        (format!("{ok}a_total 1\n"), "after EOF"),
    ] {
        assert!(check(&bad).is_err(), "accepted ({why}):\n{bad}");
    }
}
