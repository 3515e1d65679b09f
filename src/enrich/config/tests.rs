use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use super::*;


fn issues_of(result: Result<HttpConfig, Vec<ConfigIssue>>) -> Vec<(String, String)> {
    result
        .unwrap_err()
        .into_iter()
        .map(|issue| (issue.path, issue.message))
        .collect()
}

fn has_issue(issues: &[(String, String)], path: &str, fragment: &str) -> bool {
    issues
        .iter()
        .any(|(at, message)| at == path && message.contains(fragment))
}

fn assert_issue(config: Value, path: &str, fragment: &str) {
    let issues = issues_of(HttpConfig::parse(&config));
    assert!(
        has_issue(&issues, path, fragment),
        "expected {path}: …{fragment}… in {issues:#?}"
    );
}

fn one_step(extra: Value) -> Value {
    let mut step = json!({"url": "https://api.example.net/v1/{{value}}"});
    step.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"steps": [step]})
}

#[test]
fn minimal_step_gets_defaults() {
    let config = HttpConfig::parse(&one_step(json!({}))).unwrap();
    let step = &config.steps[0];
    assert_eq!(step.name, "step_0");
    assert_eq!(step.method, Method::GET);
    assert_eq!(step.url, "https://api.example.net/v1/{{value}}");
    assert!(step.headers.is_empty());
    assert_eq!(step.query_params, None);
    assert_eq!(step.json_body, None);
    assert_eq!(step.form_body, None);
    assert_eq!(step.timeout, Duration::from_secs(30));
    assert_eq!(step.expected_status, vec![200]);
    assert!(step.not_found_status.is_empty());
    assert!(!step.optional);
    assert!(config.url_templates_by_type.is_empty());
}

#[test]
fn full_step_is_parsed() {
    let config = HttpConfig::parse(&json!({
        "steps": [
            {"name": "token", "method": "post", "url": "https://login.example.net/{{auth.tenant}}/token",
             "headers": {"Content-Type": "application/x-www-form-urlencoded"},
             "form_body": {"client_id": "{{auth.client_id}}", "n": 3, "flag": true},
             "timeout_seconds": 2.5, "expected_status": [200, 201]},
            {"name": "lookup", "url": "{{auth.base_url}}/users/{{value | urlencode}}",
             "headers": {"Authorization": "Bearer {{steps.token.response.access_token}}"},
             "query_params": {"q": "{{type}}", "limit": 10},
             "json_body": {"filter": [{"eq": "{{steps.token.response.scope}}"}], "n": 1},
             "not_found_status": [404, 410], "optional": true, "form_body": null}
        ],
        "url_templates_by_type": {"account": "https://login.example.net/{{value}}"}
    }))
    .unwrap();
    let token = &config.steps[0];
    assert_eq!(token.method, Method::POST);
    assert_eq!(token.timeout, Duration::from_millis(2500));
    assert_eq!(token.expected_status, vec![200, 201]);
    assert_eq!(
        token.form_body.as_ref().unwrap()["client_id"],
        json!("{{auth.client_id}}")
    );
    let lookup = &config.steps[1];
    assert_eq!(lookup.name, "lookup");
    assert!(lookup.optional);
    assert_eq!(lookup.not_found_status, vec![404, 410]);
    assert_eq!(lookup.form_body, None);
    assert_eq!(lookup.query_params.as_ref().unwrap()["limit"], json!(10));
    assert_eq!(
        config.url_template(0, "account"),
        "https://login.example.net/{{value}}"
    );
    assert_eq!(
        config.url_template(0, "ip"),
        "https://login.example.net/{{auth.tenant}}/token"
    );
    assert_eq!(
        config.url_template(1, "account"),
        "{{auth.base_url}}/users/{{value | urlencode}}"
    );
}

#[test]
fn methods() {
    for method in ["get", "POST", "Put", "patch", "DELETE", "head"] {
        let config = HttpConfig::parse(&one_step(json!({"method": method}))).unwrap();
        assert_eq!(config.steps[0].method.as_str(), method.to_ascii_uppercase());
    }
    assert_issue(
        one_step(json!({"method": "TRACE"})),
        "http_config.steps[0].method",
        "'TRACE' is not allowed",
    );
    assert_issue(
        one_step(json!({"method": "CONNECT"})),
        "http_config.steps[0].method",
        "not allowed",
    );
    assert_issue(
        one_step(json!({"method": 1})),
        "http_config.steps[0].method",
        "must be a string",
    );
}

#[test]
fn top_level_shape() {
    assert_issue(json!([]), "http_config", "must be an object");
    assert_issue(json!({}), "http_config.steps", "is required");
    assert_issue(json!({"steps": null}), "http_config.steps", "is required");
    assert_issue(
        json!({"steps": []}),
        "http_config.steps",
        "at least one step",
    );
    assert_issue(
        json!({"steps": {}}),
        "http_config.steps",
        "must be an array",
    );
    let eleven: Vec<Value> = (0..11)
        .map(|index| json!({"name": format!("s{index}"), "url": "https://h.example.net/"}))
        .collect();
    assert_issue(json!({"steps": eleven}), "http_config.steps", "11 steps");
    let ten = &eleven[..10];
    assert!(HttpConfig::parse(&json!({"steps": ten})).is_ok());
    assert_issue(
        json!({"steps": [1]}),
        "http_config.steps[0]",
        "must be an object",
    );
    assert_issue(
        json!({"steps": [{"url": "https://h.example.net/"}], "extra": 1}),
        "http_config.extra",
        "unknown key 'extra'",
    );
}

#[test]
fn unknown_step_keys_are_rejected() {
    assert_issue(
        one_step(json!({"expected_statuses": [200]})),
        "http_config.steps[0].expected_statuses",
        "unknown key",
    );
    assert_issue(
        one_step(json!({"timeout": 5})),
        "http_config.steps[0].timeout",
        "unknown key",
    );
}

#[test]
fn step_names() {
    assert_issue(
        one_step(json!({"name": "bad-name"})),
        "http_config.steps[0].name",
        "letters, digits",
    );
    assert_issue(
        one_step(json!({"name": ""})),
        "http_config.steps[0].name",
        "letters, digits",
    );
    assert_issue(
        one_step(json!({"name": "ünï"})),
        "http_config.steps[0].name",
        "letters, digits",
    );
    assert_issue(
        one_step(json!({"name": 5})),
        "http_config.steps[0].name",
        "must be a string",
    );
    assert_issue(
        one_step(json!({"name": "a".repeat(65)})),
        "http_config.steps[0].name",
        "at most 64",
    );
    assert!(HttpConfig::parse(&one_step(json!({"name": "Step_1"}))).is_ok());
    assert_issue(
        json!({"steps": [{"name": "a", "url": "https://h.example.net/"}, {"name": "a", "url": "https://h.example.net/"}]}),
        "http_config.steps[1].name",
        "duplicate step name 'a'",
    );
    // A default name can collide with an explicit one.
    assert_issue(
        json!({"steps": [{"name": "step_1", "url": "https://h.example.net/"}, {"url": "https://h.example.net/"}]}),
        "http_config.steps[1].name",
        "duplicate step name 'step_1'",
    );
}

#[test]
fn urls() {
    assert_issue(
        json!({"steps": [{}]}),
        "http_config.steps[0].url",
        "is required",
    );
    assert_issue(
        one_step(json!({"url": ""})),
        "http_config.steps[0].url",
        "must not be empty",
    );
    assert_issue(
        one_step(json!({"url": "  "})),
        "http_config.steps[0].url",
        "must not be empty",
    );
    assert_issue(
        one_step(json!({"url": 3})),
        "http_config.steps[0].url",
        "must be a string",
    );
    assert_issue(
        one_step(json!({"url": "ftp://h.example.net/"})),
        "http_config.steps[0].url",
        "http://",
    );
    assert_issue(
        one_step(json!({"url": "h.example.net/x"})),
        "http_config.steps[0].url",
        "http://",
    );
    assert_issue(
        one_step(json!({"url": "https://h.example.net/a b"})),
        "http_config.steps[0].url",
        "whitespace",
    );
    for good in [
        "HTTPS://h.example.net/",
        "http://h.example.net/",
        "{{auth.base_url}}/api/v1/ip/{{value}}",
        "https://{{auth.domain}}/api",
    ] {
        assert!(
            HttpConfig::parse(&one_step(json!({"url": good}))).is_ok(),
            "{good}"
        );
    }
}

#[test]
fn templates_are_checked_everywhere() {
    assert_issue(
        one_step(json!({"url": "https://h.example.net/{{value"})),
        "http_config.steps[0].url",
        "unterminated",
    );
    assert_issue(
        one_step(json!({"headers": {"X-Key": "{{secret.key}}"}})),
        "http_config.steps[0].headers.X-Key",
        "unknown namespace 'secret'",
    );
    assert_issue(
        one_step(json!({"query_params": {"q": "{{value | lower}}"}})),
        "http_config.steps[0].query_params.q",
        "unknown filter 'lower'",
    );
    assert_issue(
        one_step(json!({"json_body": {"a": [1, {"b": "{{ a}b }}"}]}})),
        "http_config.steps[0].json_body.a[1].b",
        "'}' inside",
    );
    assert_issue(
        one_step(json!({"json_body": "{{}}"})),
        "http_config.steps[0].json_body",
        "empty placeholder",
    );
    assert_issue(
        one_step(json!({"form_body": {"s": "{{auth}}"}})),
        "http_config.steps[0].form_body.s",
        "needs a field",
    );
    assert_issue(
        json!({"steps": [{"url": "https://h.example.net/"}], "url_templates_by_type": {"ip": "https://h.example.net/{{indicator.ip}}"}}),
        "http_config.url_templates_by_type.ip",
        "unknown indicator field",
    );
}

#[test]
fn steps_may_only_reference_earlier_steps() {
    let config = |second_url: &str, first_url: &str| {
        json!({"steps": [
            {"name": "first", "url": first_url},
            {"name": "second", "url": second_url},
        ]})
    };
    assert!(
        HttpConfig::parse(&config(
            "https://h.example.net/{{steps.first.response.id}}",
            "https://h.example.net/"
        ))
        .is_ok()
    );
    assert_issue(
        config(
            "https://h.example.net/{{steps.second.response.id}}",
            "https://h.example.net/",
        ),
        "http_config.steps[1].url",
        "not an earlier step",
    );
    assert_issue(
        config(
            "https://h.example.net/",
            "https://h.example.net/{{steps.second.response.id}}",
        ),
        "http_config.steps[0].url",
        "'second', which is not an earlier step",
    );
    assert_issue(
        config(
            "https://h.example.net/{{steps.third.response.id}}",
            "https://h.example.net/",
        ),
        "http_config.steps[1].url",
        "unknown step 'third'",
    );
    // The per-type URL replaces the first step's: no step precedes it.
    let mut with_override = config("https://h.example.net/", "https://h.example.net/");
    with_override["url_templates_by_type"] =
        json!({"ip": "https://h.example.net/{{steps.first.response.id}}"});
    let issues = issues_of(HttpConfig::parse(&with_override));
    assert!(
        has_issue(
            &issues,
            "http_config.url_templates_by_type.ip",
            "not an earlier step"
        ),
        "{issues:?}"
    );
    // Default names can be referenced too.
    assert!(
        HttpConfig::parse(&json!({"steps": [
            {"url": "https://h.example.net/"},
            {"url": "https://h.example.net/{{steps.step_0.response.id}}"},
        ]}))
        .is_ok()
    );
}

#[test]
fn headers() {
    assert_issue(
        one_step(json!({"headers": []})),
        "http_config.steps[0].headers",
        "must be an object",
    );
    assert_issue(
        one_step(json!({"headers": {"X-N": 5}})),
        "http_config.steps[0].headers.X-N",
        "string template",
    );
    assert_issue(
        one_step(json!({"headers": {"X-N": {"a": "b"}}})),
        "http_config.steps[0].headers.X-N",
        "string template",
    );
    assert_issue(
        one_step(json!({"headers": {"Bad Name": "v"}})),
        "http_config.steps[0].headers.Bad Name",
        "valid header name",
    );
    assert_issue(
        one_step(json!({"headers": {"X-A": "a\r\nX-B: b"}})),
        "http_config.steps[0].headers.X-A",
        "line breaks",
    );
}

#[test]
fn query_and_form_fields_are_scalars() {
    assert_issue(
        one_step(json!({"query_params": "q=1"})),
        "http_config.steps[0].query_params",
        "must be an object",
    );
    assert_issue(
        one_step(json!({"query_params": {"q": [1]}})),
        "http_config.steps[0].query_params.q",
        "number or a boolean",
    );
    assert_issue(
        one_step(json!({"form_body": {"q": {"a": 1}}})),
        "http_config.steps[0].form_body.q",
        "number or a boolean",
    );
    assert_issue(
        one_step(json!({"form_body": {"q": null}})),
        "http_config.steps[0].form_body.q",
        "not null",
    );
}

#[test]
fn one_body_only() {
    assert_issue(
        one_step(json!({"json_body": {"a": 1}, "form_body": {"b": "2"}})),
        "http_config.steps[0].form_body",
        "mutually exclusive",
    );
    let config = HttpConfig::parse(&one_step(json!({"json_body": [1, "x", null]}))).unwrap();
    assert_eq!(config.steps[0].json_body, Some(json!([1, "x", null])));
}

#[test]
fn timeouts() {
    for (seconds, millis) in [(json!(1), 1000), (json!(60), 60_000), (json!(0.5e1), 5000)] {
        let config = HttpConfig::parse(&one_step(json!({"timeout_seconds": seconds}))).unwrap();
        assert_eq!(config.steps[0].timeout, Duration::from_millis(millis));
    }
    for bad in [
        json!(0),
        json!(0.99),
        json!(61),
        json!(-5),
        json!("30"),
        json!(true),
    ] {
        assert_issue(
            one_step(json!({"timeout_seconds": bad})),
            "http_config.steps[0].timeout_seconds",
            "from 1 to 60",
        );
    }
}

#[test]
fn statuses() {
    assert_issue(
        one_step(json!({"expected_status": []})),
        "http_config.steps[0].expected_status",
        "at least one",
    );
    assert_issue(
        one_step(json!({"expected_status": 200})),
        "http_config.steps[0].expected_status",
        "must be an array",
    );
    assert_issue(
        one_step(json!({"expected_status": [99]})),
        "http_config.steps[0].expected_status[0]",
        "100 to 599",
    );
    assert_issue(
        one_step(json!({"expected_status": [200, 600]})),
        "http_config.steps[0].expected_status[1]",
        "100 to 599",
    );
    assert_issue(
        one_step(json!({"expected_status": ["200"]})),
        "http_config.steps[0].expected_status[0]",
        "100 to 599",
    );
    assert_issue(
        one_step(json!({"not_found_status": [200.5]})),
        "http_config.steps[0].not_found_status[0]",
        "100 to 599",
    );
    assert_issue(
        one_step(json!({"expected_status": [200, 404], "not_found_status": [404]})),
        "http_config.steps[0].not_found_status",
        "404 is also an expected status",
    );
    assert_issue(
        one_step(json!({"not_found_status": [200]})),
        "http_config.steps[0].not_found_status",
        "200 is also",
    );
    let config = HttpConfig::parse(&one_step(
        json!({"expected_status": [100, 599], "not_found_status": []}),
    ))
    .unwrap();
    assert_eq!(config.steps[0].expected_status, vec![100, 599]);
}

#[test]
fn optional_flag() {
    assert!(
        HttpConfig::parse(&one_step(json!({"optional": true})))
            .unwrap()
            .steps[0]
            .optional
    );
    assert_issue(
        one_step(json!({"optional": "yes"})),
        "http_config.steps[0].optional",
        "must be a boolean",
    );
}

#[test]
fn url_templates_by_type() {
    let mut config = one_step(json!({}));
    config["url_templates_by_type"] = json!({
        "ip": "https://h.example.net/ip/{{value}}",
        "hash_sha256": "https://h.example.net/files/{{value}}",
    });
    let parsed = HttpConfig::parse(&config).unwrap();
    assert_eq!(parsed.url_templates_by_type.len(), 2);
    assert_eq!(
        parsed.url_template(0, "hash_sha256"),
        "https://h.example.net/files/{{value}}"
    );

    config["url_templates_by_type"] = json!({"ipv4": "https://h.example.net/"});
    assert_issue(
        config.clone(),
        "http_config.url_templates_by_type.ipv4",
        "not an indicator type",
    );
    config["url_templates_by_type"] = json!({"ip": 5});
    assert_issue(
        config.clone(),
        "http_config.url_templates_by_type.ip",
        "URL template string",
    );
    config["url_templates_by_type"] = json!({"ip": ""});
    assert_issue(
        config.clone(),
        "http_config.url_templates_by_type.ip",
        "must not be empty",
    );
    config["url_templates_by_type"] = json!(["ip"]);
    assert_issue(
        config,
        "http_config.url_templates_by_type",
        "must be an object",
    );
}

#[test]
fn every_issue_is_reported_at_once() {
    let issues = issues_of(HttpConfig::parse(&json!({
        "steps": [{"name": "x-y", "method": "TRACE", "url": "", "timeout_seconds": 0, "bogus": 1}],
        "url_templates_by_type": {"nope": "https://h.example.net/"},
    })));
    assert_eq!(issues.len(), 6, "{issues:#?}");
}

#[test]
fn value_types() {
    assert_eq!(VALUE_TYPES.len(), 8);
    for value_type in [
        "string", "int", "float", "bool", "list", "dict", "any", "number",
    ] {
        assert!(VALUE_TYPES.contains(&value_type));
    }
}

fn malice_issues(value: Value) -> Vec<(String, String)> {
    MaliceRules::parse(&value)
        .unwrap_err()
        .into_iter()
        .map(|issue| (issue.path, issue.message))
        .collect()
}

fn assert_malice_issue(value: Value, path: &str, fragment: &str) {
    let issues = malice_issues(value);
    assert!(
        has_issue(&issues, path, fragment),
        "expected {path}: …{fragment}… in {issues:#?}"
    );
}

#[test]
fn malice_rules_parse() {
    let rules = MaliceRules::parse(&json!({
        "rules": [
            {"field": "data.score", "operator": ">=", "value": 75, "verdict": "Malicious"},
            {"field": "data.score", "operator": ">", "value": "25.5", "verdict": "Suspicious"},
            {"field": "data.tags", "operator": "contains", "value": "tor"},
            {"field": "data.country", "operator": "in", "value": ["KP", "IR"], "verdict": "Suspicious"},
            {"field": "data.flag", "value": true, "verdict": "Malicious"},
        ],
        "default_verdict": "Benign",
    }))
    .unwrap();
    assert_eq!(rules.default_verdict, "Benign");
    assert_eq!(rules.not_found_verdict, "Pending");
    assert_eq!(rules.rules.len(), 5);
    assert_eq!(rules.rules[0].operator, MaliceOperator::Ge);
    assert_eq!(rules.rules[1].value, json!("25.5"));
    // A rule without a verdict yields the default verdict; without an operator it is "==".
    assert_eq!(rules.rules[2].verdict, "Benign");
    assert_eq!(rules.rules[4].operator, MaliceOperator::Eq);
}

#[test]
fn malice_rules_defaults() {
    assert_eq!(
        MaliceRules::parse(&Value::Null).unwrap(),
        MaliceRules::pending()
    );
    assert_eq!(
        MaliceRules::parse(&json!({})).unwrap(),
        MaliceRules::pending()
    );
    assert_eq!(
        MaliceRules::parse(&json!({"rules": null, "default_verdict": null})).unwrap(),
        MaliceRules::pending()
    );
    let pending = MaliceRules::pending();
    assert!(pending.rules.is_empty());
    assert_eq!(pending.default_verdict, "Pending");
    assert_eq!(pending.not_found_verdict, "Pending");
}

#[test]
fn malice_rules_validation() {
    assert_malice_issue(json!([]), "malice_rules", "must be an object");
    assert_malice_issue(
        json!({"rules": [], "extra": 1}),
        "malice_rules.extra",
        "unknown key",
    );
    assert_malice_issue(
        json!({"default_verdict": "malicious"}),
        "malice_rules.default_verdict",
        "must be one of",
    );
    assert_malice_issue(
        json!({"not_found_verdict": "Unknown"}),
        "malice_rules.not_found_verdict",
        "must be one of",
    );
    assert_malice_issue(
        json!({"rules": {}}),
        "malice_rules.rules",
        "must be an array",
    );
    assert_malice_issue(
        json!({"rules": [5]}),
        "malice_rules.rules[0]",
        "must be an object",
    );
    let rule = |extra: Value| {
        let mut rule =
            json!({"field": "a.b", "operator": "==", "value": 1, "verdict": "Malicious"});
        rule.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"rules": [rule]})
    };
    assert_malice_issue(
        rule(json!({"operator": "=~"})),
        "malice_rules.rules[0].operator",
        "unknown operator '=~'",
    );
    assert_malice_issue(
        rule(json!({"operator": 1})),
        "malice_rules.rules[0].operator",
        "must be a string",
    );
    assert_malice_issue(
        rule(json!({"verdict": "Evil"})),
        "malice_rules.rules[0].verdict",
        "must be one of",
    );
    assert_malice_issue(
        rule(json!({"field": ""})),
        "malice_rules.rules[0].field",
        "empty",
    );
    assert_malice_issue(
        rule(json!({"field": "a..b"})),
        "malice_rules.rules[0].field",
        "empty segment",
    );
    assert_malice_issue(
        rule(json!({"field": null})),
        "malice_rules.rules[0].field",
        "is required",
    );
    assert_malice_issue(
        rule(json!({"field": 3})),
        "malice_rules.rules[0].field",
        "dot path string",
    );
    assert_malice_issue(
        rule(json!({"value": null})),
        "malice_rules.rules[0].value",
        "is required",
    );
    assert_malice_issue(
        rule(json!({"operator": ">", "value": "high"})),
        "malice_rules.rules[0].value",
        "must be a number",
    );
    assert_malice_issue(
        rule(json!({"operator": "<=", "value": [1]})),
        "malice_rules.rules[0].value",
        "must be a number",
    );
    assert_malice_issue(
        rule(json!({"operator": "<", "value": true})),
        "malice_rules.rules[0].value",
        "must be a number",
    );
    assert_malice_issue(
        rule(json!({"operator": ">", "value": "nan"})),
        "malice_rules.rules[0].value",
        "must be a number",
    );
    assert_malice_issue(
        rule(json!({"operator": "in", "value": "KP"})),
        "malice_rules.rules[0].value",
        "must be an array",
    );
    assert_malice_issue(
        rule(json!({"when": 1})),
        "malice_rules.rules[0].when",
        "unknown key",
    );
    let too_many: Vec<Value> = (0..101)
        .map(|_| json!({"field": "a", "value": 1}))
        .collect();
    assert_malice_issue(
        json!({"rules": too_many}),
        "malice_rules.rules",
        "101 rules",
    );
    for operator in MaliceOperator::ALL {
        let value = if operator == MaliceOperator::In {
            json!([1])
        } else {
            json!(1)
        };
        assert!(
            MaliceRules::parse(&rule(
                json!({"operator": operator.as_str(), "value": value})
            ))
            .is_ok()
        );
    }
}

#[test]
fn issue_display() {
    let issue = ConfigIssue {
        path: "http_config.steps[0].url".into(),
        message: "is required".into(),
    };
    assert_eq!(issue.to_string(), "http_config.steps[0].url: is required");
    assert_eq!(
        serde_json::to_value(&issue).unwrap(),
        json!({"path": "http_config.steps[0].url", "message": "is required"})
    );
}