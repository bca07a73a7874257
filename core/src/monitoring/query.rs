//! The scaler's request-rate query (SPEC §3) and the reading of Prometheus's answer.

use serde_json::Value;

use super::{MonitoringError, prometheus_duration};

/// Rate window used when the configured one is not a Prometheus duration.
pub const DEFAULT_WINDOW: &str = "1m";

/// Largest `/api/v1/query` body read (1 MiB, some ten thousand series): a template that forgot
/// its `sum` should not make the scaler buffer an unbounded answer.
pub const MAX_QUERY_BYTES: usize = 1024 * 1024;

/// A PromQL string literal (`"…"`) holding `value`: backslashes, double quotes and line breaks
/// escaped, so a label value can never end the literal and inject PromQL.
pub fn promql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    out.push_str(&escape_string_body(value));
    out.push('"');
    out
}

fn escape_string_body(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// `value` as a literal inside a PromQL (RE2) regular expression, for `=~` matchers built from
/// names. Kubernetes names hold no metacharacters today; escaping keeps that an assumption no
/// matcher depends on. The result still needs [`promql_string`] around it.
pub fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The PromQL giving a service's request rate in requests per second.
///
/// Without a template: `sum(rate(flask_http_request_total{namespace="<ns>",service="<deployment>"}[<window>]))`
/// — the flask exporter in smo's workloads labels requests with the Deployment's name.
///
/// A template (the descriptor's `scaling.metric`) may use these placeholders:
/// - `{service}`: the Deployment name (`<graph>-<service>`), the value of the `service` label;
/// - `{deployment}`: the same, for templates that read better with it;
/// - `{service_id}`: the service's id in the descriptor;
/// - `{namespace}`: the namespace, i.e. the project;
/// - `{window}`: the rate window (`1m`).
///
/// Name placeholders are replaced by the value escaped for the inside of a double-quoted PromQL
/// string, so write them between double quotes: `rate(http_requests_total{job="{service}"}[{window}])`.
/// Anything else in braces (label matchers) is left alone, and substituted text is never
/// scanned again. `window` is normalised like a grace period; a value Prometheus would refuse
/// becomes [`DEFAULT_WINDOW`] rather than a query that fails on every tick.
pub fn rate_query(
    template: Option<&str>,
    namespace: &str,
    deployment: &str,
    service_id: &str,
    window: &str,
) -> String {
    let window = prometheus_duration(window).unwrap_or_else(|_| DEFAULT_WINDOW.to_string());
    let Some(template) = template.map(str::trim).filter(|t| !t.is_empty()) else {
        return format!(
            "sum(rate(flask_http_request_total{{namespace={},service={}}}[{window}]))",
            promql_string(namespace),
            promql_string(deployment),
        );
    };
    let names: [(&str, String); 5] = [
        ("{service}", escape_string_body(deployment)),
        ("{deployment}", escape_string_body(deployment)),
        ("{service_id}", escape_string_body(service_id)),
        ("{namespace}", escape_string_body(namespace)),
        ("{window}", window),
    ];
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(pos) = rest.find('{') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        match names.iter().find(|(p, _)| rest.starts_with(p)) {
            Some((p, value)) => {
                out.push_str(value);
                rest = &rest[p.len()..];
            }
            None => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A Prometheus answer as JSON, refused when larger than [`MAX_QUERY_BYTES`].
fn read_answer(body: &[u8], what: &'static str) -> Result<Value, MonitoringError> {
    if body.len() > MAX_QUERY_BYTES {
        return Err(MonitoringError::TooLarge {
            what,
            size: body.len(),
            limit: MAX_QUERY_BYTES,
        });
    }
    serde_json::from_slice(body).map_err(|e| MonitoringError::Json {
        what,
        message: e.to_string(),
    })
}

/// Largest answer to the fleet's rate query: a vector of one series per running service (about
/// 100 bytes each), so 128 MiB covers a million services.
pub const MAX_FLEET_QUERY_BYTES: usize = 128 * 1024 * 1024;

/// The default rate query for every service at once (the scaling round's one query): the
/// per-service default ([`rate_query`] without a template), grouped instead of filtered.
pub fn fleet_rate_query(window: &str) -> String {
    let window = prometheus_duration(window).unwrap_or_else(|_| DEFAULT_WINDOW.to_string());
    format!("sum by (namespace, service) (rate(flask_http_request_total[{window}]))")
}

/// The answer to [`fleet_rate_query`]: rate per `(namespace, service)`, read by the rules of
/// [`parse_query_result`] (NaN → 0). A series whose value is infinite maps to `None`: its
/// service keeps its replicas this round rather than scale on a broken number.
pub fn parse_fleet_rates(
    body: &[u8],
) -> Result<std::collections::HashMap<(String, String), Option<f64>>, MonitoringError> {
    const WHAT: &str = "Prometheus fleet rate response";
    #[derive(serde::Deserialize)]
    struct Answer {
        status: String,
        #[serde(default)]
        data: Option<Data>,
        #[serde(default, rename = "errorType")]
        error_type: String,
        #[serde(default)]
        error: String,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        #[serde(rename = "resultType")]
        result_type: String,
        result: Vec<Sample>,
    }
    #[derive(serde::Deserialize)]
    struct Sample {
        metric: Labels,
        value: (Value, String),
    }
    #[derive(serde::Deserialize)]
    struct Labels {
        #[serde(default)]
        namespace: String,
        #[serde(default)]
        service: String,
    }
    if body.len() > MAX_FLEET_QUERY_BYTES {
        return Err(MonitoringError::TooLarge {
            what: WHAT,
            size: body.len(),
            limit: MAX_FLEET_QUERY_BYTES,
        });
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|e| MonitoringError::Json {
        what: WHAT,
        message: e.to_string(),
    })?;
    if answer.status == "error" {
        return Err(MonitoringError::Prometheus {
            error_type: answer.error_type,
            message: answer.error,
        });
    }
    let malformed = |path: &str, message: String| MonitoringError::Malformed {
        what: WHAT,
        path: path.to_string(),
        message,
    };
    if answer.status != "success" {
        return Err(malformed(
            "status",
            format!("expected \"success\" or \"error\", got {:?}", answer.status),
        ));
    }
    let data = answer
        .data
        .ok_or_else(|| malformed("data", "missing".into()))?;
    if data.result_type != "vector" {
        return Err(malformed(
            "data.resultType",
            format!("expected a vector, got {:?}", data.result_type),
        ));
    }
    let mut out = std::collections::HashMap::with_capacity(data.result.len());
    for (i, s) in data.result.into_iter().enumerate() {
        let x: f64 = s.value.1.trim().parse().map_err(|_| {
            malformed(
                &format!("data.result[{i}].value"),
                format!("{:?} is not a number", s.value.1),
            )
        })?;
        let rate = if x.is_nan() {
            Some(0.0)
        } else if x.is_infinite() {
            None
        } else {
            Some(x)
        };
        out.insert((s.metric.namespace, s.metric.service), rate);
    }
    Ok(out)
}

/// The number a Prometheus `/api/v1/query` answer holds, read by the scaler as λ.
///
/// Rules (SPEC §3: "NaN/empty → 0"):
/// - `status: "error"` → [`MonitoringError::Prometheus`] with Prometheus's `errorType` and `error`;
/// - a vector: the sum of its samples (one sample for the default `sum(…)` query; several when
///   a template leaves series apart, whose total is the service's rate); empty → 0;
/// - a scalar: its value;
/// - `NaN` samples count as 0 (no traffic: `0/0` of a ratio, or a series without data);
/// - `+Inf`/`-Inf` → [`MonitoringError::NotFinite`]: a broken query, on which scaling to the
///   maximum (or minimum) would be wrong; the caller should keep the current replicas;
/// - matrices, strings and malformed bodies → errors naming the field.
pub fn parse_query_result(body: &[u8]) -> Result<f64, MonitoringError> {
    const WHAT: &str = "Prometheus query response";
    let v = read_answer(body, WHAT)?;
    let malformed = |path: &str, message: String| MonitoringError::Malformed {
        what: WHAT,
        path: path.to_string(),
        message,
    };
    let Value::Object(top) = &v else {
        return Err(malformed(
            "",
            format!("expected an object, got {}", kind(&v)),
        ));
    };
    match top.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            let text = |k: &str| top.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            return Err(MonitoringError::Prometheus {
                error_type: text("errorType"),
                message: text("error"),
            });
        }
        Some(other) => {
            return Err(malformed(
                "status",
                format!("expected \"success\" or \"error\", got {other:?}"),
            ));
        }
        None => return Err(malformed("status", "missing or not a string".into())),
    }
    let data = top
        .get("data")
        .ok_or_else(|| malformed("data", "missing".into()))?;
    let result_type = data
        .get("resultType")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("data.resultType", "missing or not a string".into()))?;
    let result = data
        .get("result")
        .ok_or_else(|| malformed("data.result", "missing".into()))?;
    match result_type {
        "vector" => {
            let Value::Array(samples) = result else {
                return Err(malformed(
                    "data.result",
                    format!("expected a list, got {}", kind(result)),
                ));
            };
            let mut sum = 0.0;
            for (i, s) in samples.iter().enumerate() {
                let path = format!("data.result[{i}].value");
                let value = s
                    .get("value")
                    .ok_or_else(|| malformed(&path, "missing".into()))?;
                sum += sample_value(value, &path, &malformed)?;
            }
            Ok(sum)
        }
        "scalar" => sample_value(result, "data.result", &malformed),
        other => Err(malformed(
            "data.resultType",
            format!(
                "expected a vector or a scalar, got {other:?}; the query must return one number"
            ),
        )),
    }
}

/// `[<unix time>, "<value>"]` → the value, NaN as 0, infinities refused.
fn sample_value(
    v: &Value,
    path: &str,
    malformed: &dyn Fn(&str, String) -> MonitoringError,
) -> Result<f64, MonitoringError> {
    let Some([_, raw]) = v.as_array().map(Vec::as_slice) else {
        return Err(malformed(
            path,
            format!("expected [time, \"value\"], got {}", kind(v)),
        ));
    };
    let text = match raw {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(malformed(
                path,
                format!("expected the value as a string, got {}", kind(other)),
            ));
        }
    };
    let x: f64 = text
        .parse()
        .map_err(|_| malformed(path, format!("{text:?} is not a number")))?;
    if x.is_nan() {
        Ok(0.0)
    } else if x.is_infinite() {
        Err(MonitoringError::NotFinite { value: text })
    } else {
        Ok(x)
    }
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One series of a range query: its labels and its `(unix seconds, value)` samples.
pub type RangeSeries = (std::collections::BTreeMap<String, String>, Vec<(f64, f64)>);

/// The series a Prometheus `/api/v1/query_range` answer holds (a matrix). Samples that are not
/// finite numbers are skipped; anything else malformed is an error naming the field.
pub fn parse_range_result(body: &[u8]) -> Result<Vec<RangeSeries>, MonitoringError> {
    const WHAT: &str = "Prometheus range query response";
    let v = read_answer(body, WHAT)?;
    let malformed = |path: &str, message: &str| MonitoringError::Malformed {
        what: WHAT,
        path: path.to_string(),
        message: message.to_string(),
    };
    if v["status"] == "error" {
        return Err(MonitoringError::Prometheus {
            error_type: v["errorType"].as_str().unwrap_or("").to_string(),
            message: v["error"].as_str().unwrap_or("").to_string(),
        });
    }
    if v["data"]["resultType"] != "matrix" {
        return Err(malformed("data.resultType", "expected \"matrix\""));
    }
    let result = v["data"]["result"]
        .as_array()
        .ok_or_else(|| malformed("data.result", "expected an array"))?;
    let mut out = Vec::with_capacity(result.len());
    for (i, s) in result.iter().enumerate() {
        let labels = s["metric"]
            .as_object()
            .ok_or_else(|| malformed(&format!("data.result[{i}].metric"), "expected an object"))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let values = s["values"]
            .as_array()
            .ok_or_else(|| malformed(&format!("data.result[{i}].values"), "expected an array"))?
            .iter()
            .filter_map(|p| {
                let t = p.get(0)?.as_f64()?;
                let v: f64 = p.get(1)?.as_str()?.parse().ok()?;
                v.is_finite().then_some((t, v))
            })
            .collect();
        out.push((labels, values));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_query_names_namespace_and_deployment() {
        assert_eq!(
            rate_query(None, "demo", "shop-frontend", "frontend", "1m"),
            r#"sum(rate(flask_http_request_total{namespace="demo",service="shop-frontend"}[1m]))"#
        );
        // A blank template is no template; a bad window falls back to the default.
        assert_eq!(
            rate_query(Some("  "), "demo", "shop-frontend", "frontend", "soon"),
            r#"sum(rate(flask_http_request_total{namespace="demo",service="shop-frontend"}[1m]))"#
        );
        assert_eq!(
            rate_query(None, "demo", "x", "x", "90s"),
            r#"sum(rate(flask_http_request_total{namespace="demo",service="x"}[1m30s]))"#
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let q = rate_query(None, "a\"b", "c\\d", "s", "1m");
        assert_eq!(
            q,
            r#"sum(rate(flask_http_request_total{namespace="a\"b",service="c\\d"}[1m]))"#
        );
        assert_eq!(promql_string("x\ny"), r#""x\ny""#);
        assert_eq!(regex_escape("a.b-c(d)"), r"a\.b-c\(d\)");
    }

    #[test]
    fn templates_fill_placeholders_once() {
        let t = r#"sum(rate(http_requests_total{namespace="{namespace}",job="{service}",app="{service_id}",d="{deployment}"}[{window}])) + 0*{unknown}"#;
        assert_eq!(
            rate_query(Some(t), "demo", "g-web", "web", "2m"),
            r#"sum(rate(http_requests_total{namespace="demo",job="g-web",app="web",d="g-web"}[2m])) + 0*{unknown}"#
        );
        // Substituted text is not scanned again, and is escaped.
        let q = rate_query(Some(r#"x{a="{service}"}"#), "n", "{window}\"", "s", "1m");
        assert_eq!(q, r#"x{a="{window}\""}"#);
        // A trailing brace and no placeholders at all.
        assert_eq!(rate_query(Some("up{"), "n", "d", "s", "1m"), "up{");
        assert_eq!(
            rate_query(Some("vector(1)"), "n", "d", "s", "1m"),
            "vector(1)"
        );
    }

    fn vector(values: &[&str]) -> Vec<u8> {
        let result: Vec<Value> = values
            .iter()
            .map(|v| serde_json::json!({"metric": {}, "value": [1_700_000_000.5, v]}))
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "status": "success",
            "data": {"resultType": "vector", "result": result}
        }))
        .expect("json")
    }

    #[test]
    fn query_results_follow_the_rules() {
        assert_eq!(parse_query_result(&vector(&["12.5"])), Ok(12.5));
        assert_eq!(parse_query_result(&vector(&[])), Ok(0.0));
        assert_eq!(parse_query_result(&vector(&["NaN"])), Ok(0.0));
        assert_eq!(parse_query_result(&vector(&["1", "2.5", "NaN"])), Ok(3.5));
        assert_eq!(parse_query_result(&vector(&["1e+06"])), Ok(1e6));
        for inf in ["+Inf", "-Inf"] {
            assert_eq!(
                parse_query_result(&vector(&[inf])),
                Err(MonitoringError::NotFinite { value: inf.into() })
            );
        }
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1.0,"4"]}}"#;
        assert_eq!(parse_query_result(scalar), Ok(4.0));
    }

    #[test]
    fn prometheus_errors_keep_its_message() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \"}\""}"#;
        let e = parse_query_result(body).expect_err("error status");
        assert_eq!(
            e,
            MonitoringError::Prometheus {
                error_type: "bad_data".into(),
                message: "1:5: parse error: unexpected \"}\"".into()
            }
        );
        assert!(e.to_string().contains("parse error"), "{e}");
    }

    #[test]
    fn malformed_answers_are_refused_clearly() {
        let cases: [(&[u8], &str); 9] = [
            (b"not json", "not valid JSON"),
            (b"[]", "expected an object"),
            (br#"{"data":{}}"#, "status: missing"),
            (br#"{"status":"maybe"}"#, "status: expected"),
            (br#"{"status":"success"}"#, "data: missing"),
            (
                br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
                "expected a vector or a scalar",
            ),
            (
                br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1]}]}}"#,
                "data.result[0].value: expected [time",
            ),
            (
                br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"abc"]}]}}"#,
                "\"abc\" is not a number",
            ),
            (
                br#"{"status":"success","data":{"resultType":"vector","result":{}}}"#,
                "data.result: expected a list",
            ),
        ];
        for (body, want) in cases {
            let e = parse_query_result(body).expect_err(want).to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
        let big = vec![b' '; MAX_QUERY_BYTES + 1];
        assert!(matches!(
            parse_query_result(&big),
            Err(MonitoringError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_range_answer_reads_as_series_and_errors_name_the_field() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"deployment":"g-web"},"values":[[1700000000,"1"],[1700000030,"NaN"],[1700000060,"3"]]}]}}"#;
        let s = parse_range_result(body).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].0["deployment"], "g-web");
        assert_eq!(s[0].1, vec![(1_700_000_000.0, 1.0), (1_700_000_060.0, 3.0)]);
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(
            parse_range_result(vector)
                .unwrap_err()
                .to_string()
                .contains("resultType")
        );
        let err = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(
            parse_range_result(err)
                .unwrap_err()
                .to_string()
                .contains("parse error")
        );
    }
}
