//! The provider template language: `{{ expr }}` and `{{ expr | urlencode }}` placeholders in step
//! URLs, headers, query parameters and bodies (enrichment.md §2.2).
//!
//! Matching follows the original regex `\{\{\s*([^}]+?)\s*\}\}`: a placeholder runs from `{{` to
//! the first `}`, which must be followed by a second `}`; its expression may not contain `}`.
//! Text that does not form a placeholder is copied unchanged.
//!
//! Expressions: `indicator.value`, `indicator.type` (shorthands `value`, `type`), `auth.<field>`
//! and `steps.<step>.response.<dot.path>`. A missing key, a bad index or `null` renders as the
//! empty string; an unknown namespace leaves the placeholder text as it is (configuration
//! validation rejects those at save time, see [`check`]). An unknown filter is ignored.
//!
//! Deviation from the original: non-string values render as JSON text — `12`, `true`, `1.5`,
//! `{"a":1}` — where Python printed its own repr (`True`, `None`, `{'a': 1}`).
//!
//! [`Mode::Url`] fixes the original's quirk of percent-encoding every substituted value of a URL,
//! which made `{{auth.base_url}}/api/…` unusable: placeholders forming the scheme/authority part
//! of the URL are substituted raw (the egress gateway vets the resulting URL), and every
//! placeholder after the authority is percent-encoded with no safe characters.

use serde_json::{Map, Value};

use super::dotpath;

/// How substituted values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A request URL: placeholders after the authority are always percent-encoded.
    Url,
    /// Headers, query parameters, bodies: raw unless `| urlencode` is given.
    Text,
}

/// What placeholders can refer to while one provider runs for one indicator.
#[derive(Debug, Clone, Copy)]
pub struct TemplateContext<'a> {
    pub indicator_type: &'a str,
    pub indicator_value: &'a str,
    /// Resolved credentials (`auth.<field>`).
    pub auth: &'a Map<String, Value>,
    /// Step name → parsed JSON body of that earlier, successful step.
    pub steps: &'a Map<String, Value>,
}

/// What a well-formed placeholder refers to, as [`check`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `indicator.value` or `value`.
    IndicatorValue,
    /// `indicator.type` or `type`.
    IndicatorType,
    /// `auth.<path>`: the path below `auth`.
    Auth(String),
    /// `steps.<step>.response[.<path>]`.
    Step { step: String, path: Option<String> },
}

/// The only filter of the language.
pub const URLENCODE_FILTER: &str = "urlencode";

/// Renders every placeholder of `template`.
pub fn render(template: &str, ctx: &TemplateContext, mode: Mode) -> String {
    let (pieces, _) = scan(template);
    let raw_in_url = match mode {
        Mode::Url => url_authority_placeholders(&pieces),
        Mode::Text => vec![false; pieces.len()],
    };
    let mut out = String::with_capacity(template.len());
    for (index, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Literal(text) => out.push_str(text),
            Piece::Placeholder { text, expr } => {
                let (path, filter) = split_filter(expr);
                let Some(value) = lookup(path, ctx) else {
                    out.push_str(text);
                    continue;
                };
                let encode =
                    filter == Some(URLENCODE_FILTER) || (mode == Mode::Url && !raw_in_url[index]);
                if encode {
                    out.push_str(&percent_encode(&value));
                } else {
                    out.push_str(&value);
                }
            }
        }
    }
    out
}

/// Renders every string inside `value` (object values and array items at any depth; object keys
/// are left as they are).
pub fn render_value(value: &Value, ctx: &TemplateContext, mode: Mode) -> Value {
    match value {
        Value::String(text) => Value::String(render(text, ctx, mode)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_value(item, ctx, mode))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| (key.clone(), render_value(item, ctx, mode)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Parses `template` strictly, for configuration validation: every `{{` must open a well-formed
/// placeholder with a known namespace and filter. Returns what the placeholders refer to.
pub fn check(template: &str) -> Result<Vec<Reference>, String> {
    let (pieces, problem) = scan(template);
    if let Some(problem) = problem {
        return Err(problem);
    }
    let mut references = Vec::new();
    for piece in &pieces {
        let Piece::Placeholder { text, expr } = piece else {
            continue;
        };
        let (path, filter) = split_filter(expr);
        if let Some(filter) = filter
            && filter != URLENCODE_FILTER
        {
            return Err(format!(
                "unknown filter '{filter}' in '{text}' (the only filter is '{URLENCODE_FILTER}')"
            ));
        }
        if path.is_empty() {
            return Err(format!("empty placeholder '{text}'"));
        }
        references.push(parse_reference(path).map_err(|problem| format!("{problem} in '{text}'"))?);
    }
    Ok(references)
}

/// The text of `template` outside its placeholders.
pub fn literal_text(template: &str) -> String {
    scan(template)
        .0
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Literal(text) => Some(text),
            Piece::Placeholder { .. } => None,
        })
        .collect()
}

/// Percent-encodes everything except the unreserved characters `A-Z a-z 0-9 - . _ ~` (UTF-8
/// bytes, upper-case hex) — Python's `quote(value, safe="")`.
pub fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0x0f)] as char);
        }
    }
    out
}

/// A value as placeholder text: strings as they are, other values as compact JSON.
pub fn stringify(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'t> {
    Literal(&'t str),
    /// `text` is the whole `{{ … }}`, `expr` its trimmed inside.
    Placeholder {
        text: &'t str,
        expr: &'t str,
    },
}

/// Splits `template` into literals and placeholders with the original regex's semantics, and
/// reports the first `{{` that does not open a placeholder (render ignores it, check rejects it).
fn scan(template: &str) -> (Vec<Piece<'_>>, Option<String>) {
    let mut pieces = Vec::new();
    let mut problem = None;
    let mut literal_start = 0;
    let mut search_from = 0;
    while let Some(found) = template[search_from..].find("{{") {
        let open = search_from + found;
        let inner_start = open + 2;
        match template[inner_start..].find('}') {
            Some(found_close) => {
                let close = inner_start + found_close;
                if close > inner_start && template[close + 1..].starts_with('}') {
                    if literal_start < open {
                        pieces.push(Piece::Literal(&template[literal_start..open]));
                    }
                    pieces.push(Piece::Placeholder {
                        text: &template[open..close + 2],
                        expr: template[inner_start..close].trim(),
                    });
                    literal_start = close + 2;
                    search_from = close + 2;
                    continue;
                }
                problem.get_or_insert_with(|| {
                    if close == inner_start {
                        format!("empty placeholder at '{}'", excerpt(&template[open..]))
                    } else {
                        format!(
                            "'}}' inside the placeholder at '{}' (a placeholder ends with '}}}}' and may not contain '}}')",
                            excerpt(&template[open..])
                        )
                    }
                });
            }
            None => {
                problem.get_or_insert_with(|| {
                    format!(
                        "unterminated placeholder at '{}' (missing '}}}}')",
                        excerpt(&template[open..])
                    )
                });
            }
        }
        // Like a regex search: retry from the next character ('{' is one byte).
        search_from = open + 1;
    }
    if literal_start < template.len() {
        pieces.push(Piece::Literal(&template[literal_start..]));
    }
    (pieces, problem)
}

/// The start of `text`, short enough for an error message.
fn excerpt(text: &str) -> String {
    const LIMIT: usize = 40;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `path | filter` → (`path`, `Some(filter)`); only the first `|` splits.
fn split_filter(expr: &str) -> (&str, Option<&str>) {
    match expr.split_once('|') {
        Some((path, filter)) => (path.trim(), Some(filter.trim())),
        None => (expr, None),
    }
}

/// The text a placeholder path renders to; `None` for an unknown namespace.
fn lookup(path: &str, ctx: &TemplateContext) -> Option<String> {
    let path = match path {
        "value" => "indicator.value",
        "type" => "indicator.type",
        other => other,
    };
    let (namespace, rest) = match path.split_once('.') {
        Some((namespace, rest)) => (namespace, Some(rest)),
        None => (path, None),
    };
    let text = match namespace {
        "indicator" => match rest {
            None => {
                let mut indicator = Map::new();
                indicator.insert("value".into(), ctx.indicator_value.into());
                indicator.insert("type".into(), ctx.indicator_type.into());
                Value::Object(indicator).to_string()
            }
            Some("value") => ctx.indicator_value.to_owned(),
            Some("type") => ctx.indicator_type.to_owned(),
            // `indicator.value.x` descends into a string, `indicator.other` is absent: both empty.
            Some(_) => String::new(),
        },
        "auth" => match rest {
            None => Value::Object(ctx.auth.clone()).to_string(),
            Some(rest) => {
                let mut segments = rest.split('.');
                let first = segments.next().unwrap_or_default();
                ctx.auth
                    .get(first)
                    .and_then(|value| dotpath::resolve_segments(value, segments))
                    .map(stringify)
                    .unwrap_or_default()
            }
        },
        "steps" => match rest {
            None => {
                let wrapped: Map<String, Value> = ctx
                    .steps
                    .iter()
                    .map(|(name, body)| (name.clone(), wrap_response(body)))
                    .collect();
                Value::Object(wrapped).to_string()
            }
            Some(rest) => {
                let mut segments = rest.split('.');
                let step = segments.next().unwrap_or_default();
                match (ctx.steps.get(step), segments.next()) {
                    (None, _) => String::new(),
                    (Some(body), None) => wrap_response(body).to_string(),
                    (Some(body), Some("response")) => dotpath::resolve_segments(body, segments)
                        .map(stringify)
                        .unwrap_or_default(),
                    (Some(_), Some(_)) => String::new(),
                }
            }
        },
        _ => return None,
    };
    Some(text)
}

/// A step as the original exposed it to templates: `{"response": <body>}`.
fn wrap_response(body: &Value) -> Value {
    let mut wrapped = Map::new();
    wrapped.insert("response".into(), body.clone());
    Value::Object(wrapped)
}

/// The reference a placeholder path makes, or why it is not acceptable in a configuration.
fn parse_reference(path: &str) -> Result<Reference, String> {
    match path {
        "value" | "indicator.value" => return Ok(Reference::IndicatorValue),
        "type" | "indicator.type" => return Ok(Reference::IndicatorType),
        _ => {}
    }
    dotpath::validate(path).map_err(|problem| format!("invalid path: {problem}"))?;
    let (namespace, rest) = match path.split_once('.') {
        Some((namespace, rest)) => (namespace, Some(rest)),
        None => (path, None),
    };
    match (namespace, rest) {
        ("indicator", _) => Err(format!(
            "unknown indicator field '{path}' (use indicator.value or indicator.type)"
        )),
        ("auth", Some(field)) => Ok(Reference::Auth(field.to_owned())),
        ("auth", None) => Err("'auth' needs a field, e.g. auth.api_key".to_owned()),
        ("steps", Some(rest)) => {
            let mut parts = rest.splitn(3, '.');
            let step = parts.next().unwrap_or_default();
            match (parts.next(), parts.next()) {
                (Some("response"), path) => Ok(Reference::Step {
                    step: step.to_owned(),
                    path: path.map(str::to_owned),
                }),
                _ => Err(format!(
                    "a step reference has the form steps.<step>.response.<path>, not '{path}'"
                )),
            }
        }
        ("steps", None) => Err(
            "'steps' needs a step and a response path, e.g. steps.lookup.response.id".to_owned(),
        ),
        (namespace, _) => Err(format!(
            "unknown namespace '{namespace}' (known: indicator.value, indicator.type, value, type, auth.<field>, steps.<step>.response…)"
        )),
    }
}

/// For each piece of a URL template, whether it is a placeholder that forms the scheme/authority
/// part and is therefore substituted raw:
/// * a placeholder that starts the URL is the base (`{{auth.base_url}}/api/…`); the authority
///   continues after it only when the next literal starts with `://` (it was the scheme);
/// * after a literal `scheme://`, placeholders up to the first `/`, `?` or `#` are in the
///   authority (`https://{{auth.domain}}/…`) — except user-info ones (followed by `@` before the
///   authority ends), which are encoded like everything after the authority.
fn url_authority_placeholders(pieces: &[Piece]) -> Vec<bool> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Phase {
        Start,
        AfterBase,
        Authority,
        Rest,
    }
    fn phase_after_authority_text(text: &str) -> Phase {
        if text.contains(['/', '?', '#']) {
            Phase::Rest
        } else {
            Phase::Authority
        }
    }
    fn userinfo_follows(pieces: &[Piece]) -> bool {
        for piece in pieces {
            if let Piece::Literal(text) = piece {
                match text.find(['/', '?', '#']) {
                    Some(end) => return text[..end].contains('@'),
                    None if text.contains('@') => return true,
                    None => {}
                }
            }
        }
        false
    }

    let mut raw = vec![false; pieces.len()];
    let mut phase = Phase::Start;
    for (index, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Placeholder { .. } => match phase {
                Phase::Start => {
                    raw[index] = true;
                    phase = Phase::AfterBase;
                }
                Phase::AfterBase => phase = Phase::Rest,
                Phase::Authority => raw[index] = !userinfo_follows(&pieces[index + 1..]),
                Phase::Rest => {}
            },
            Piece::Literal(text) => {
                phase = match phase {
                    Phase::Start => match text.find("://") {
                        Some(at) => phase_after_authority_text(&text[at + 3..]),
                        None => Phase::Rest,
                    },
                    Phase::AfterBase => match text.strip_prefix("://") {
                        Some(rest) => phase_after_authority_text(rest),
                        None => Phase::Rest,
                    },
                    Phase::Authority => phase_after_authority_text(text),
                    Phase::Rest => Phase::Rest,
                }
            }
        }
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixture {
        auth: Map<String, Value>,
        steps: Map<String, Value>,
    }

    impl Fixture {
        fn new() -> Self {
            let auth = json!({
                "api_key": "k&y=1/2",
                "base_url": "https://intel.example.net:8443",
                "domain": "acme.okta.com",
                "nested": {"level": [10, {"deep": "yes"}]},
                "empty": "",
                "nothing": null,
                "port": 8443,
                "flag": true,
            });
            let steps = json!({
                "token": {"access_token": "eyJ0eXAi.abc", "expires_in": 3599},
                "user_lookup": {"id": "00u1ab", "profile": {"login": "jane.doe@example.com"},
                                "groups": [{"name": "Admins"}, {"name": "R&D"}], "score": 1.5,
                                "nothing": null},
                "raw": null,
            });
            Fixture {
                auth: auth.as_object().unwrap().clone(),
                steps: steps.as_object().unwrap().clone(),
            }
        }

        fn ctx<'a>(&'a self, itype: &'a str, value: &'a str) -> TemplateContext<'a> {
            TemplateContext {
                indicator_type: itype,
                indicator_value: value,
                auth: &self.auth,
                steps: &self.steps,
            }
        }
    }

    fn text(template: &str) -> String {
        let fixture = Fixture::new();
        render(template, &fixture.ctx("ip", "203.0.113.9"), Mode::Text)
    }

    fn url(template: &str, value: &str) -> String {
        let fixture = Fixture::new();
        render(template, &fixture.ctx("account", value), Mode::Url)
    }

    #[test]
    fn indicator_namespace_and_shorthands() {
        assert_eq!(text("{{indicator.value}}"), "203.0.113.9");
        assert_eq!(text("{{ indicator.type }}"), "ip");
        assert_eq!(text("{{value}}/{{type}}"), "203.0.113.9/ip");
        assert_eq!(text("{{\n\tvalue  }}"), "203.0.113.9");
        assert_eq!(text("{{indicator.other}}"), "");
        assert_eq!(text("{{indicator.value.x}}"), "");
        let whole: Value = serde_json::from_str(&text("{{indicator}}")).unwrap();
        assert_eq!(whole, json!({"type": "ip", "value": "203.0.113.9"}));
    }

    #[test]
    fn auth_namespace() {
        assert_eq!(text("Bearer {{auth.api_key}}"), "Bearer k&y=1/2");
        assert_eq!(text("{{auth.nested.level.0}}"), "10");
        assert_eq!(text("{{auth.nested.level.1.deep}}"), "yes");
        assert_eq!(text("{{auth.nested.level.-1.deep}}"), "yes");
        assert_eq!(text("{{auth.nested.level.7}}"), "");
        assert_eq!(text("{{auth.nested.level.x}}"), "");
        assert_eq!(text("[{{auth.missing}}]"), "[]");
        assert_eq!(text("[{{auth.empty}}]"), "[]");
        assert_eq!(text("[{{auth.nothing}}]"), "[]");
    }

    #[test]
    fn non_strings_render_as_json_text() {
        assert_eq!(text("{{auth.port}}"), "8443");
        assert_eq!(text("{{auth.flag}}"), "true");
        assert_eq!(text("{{steps.user_lookup.response.score}}"), "1.5");
        assert_eq!(text("{{auth.nested}}"), r#"{"level":[10,{"deep":"yes"}]}"#);
        assert_eq!(
            text("{{steps.user_lookup.response.groups.1}}"),
            r#"{"name":"R&D"}"#
        );
    }

    #[test]
    fn steps_namespace() {
        assert_eq!(text("{{steps.user_lookup.response.id}}"), "00u1ab");
        assert_eq!(
            text("{{steps.user_lookup.response.profile.login}}"),
            "jane.doe@example.com"
        );
        assert_eq!(
            text("{{steps.user_lookup.response.groups.0.name}}"),
            "Admins"
        );
        assert_eq!(text("{{steps.token.response.expires_in}}"), "3599");
        assert_eq!(text("[{{steps.user_lookup.response.nothing}}]"), "[]");
        assert_eq!(text("[{{steps.missing.response.id}}]"), "[]");
        assert_eq!(text("[{{steps.user_lookup.id}}]"), "[]");
        assert_eq!(text("[{{steps.raw.response}}]"), "[]");
        assert_eq!(
            text("{{steps.token}}"),
            r#"{"response":{"access_token":"eyJ0eXAi.abc","expires_in":3599}}"#
        );
    }

    #[test]
    fn unknown_namespace_is_left_unchanged() {
        assert_eq!(text("a {{ secret.x }} b"), "a {{ secret.x }} b");
        assert_eq!(text("{{ }}"), "{{ }}");
        assert_eq!(text("{{indicator .value}}"), "{{indicator .value}}");
        assert_eq!(url("https://h/{{env.HOME}}", "x"), "https://h/{{env.HOME}}");
    }

    #[test]
    fn text_mode_is_raw_unless_urlencode() {
        assert_eq!(text("{{auth.api_key}}"), "k&y=1/2");
        assert_eq!(text("{{auth.api_key | urlencode}}"), "k%26y%3D1%2F2");
        assert_eq!(text("{{auth.api_key|urlencode}}"), "k%26y%3D1%2F2");
        // Unknown filters (and a second filter) are ignored.
        assert_eq!(text("{{auth.api_key | upper}}"), "k&y=1/2");
        assert_eq!(text("{{auth.api_key | urlencode | upper}}"), "k&y=1/2");
        assert_eq!(text("{{auth.api_key | }}"), "k&y=1/2");
    }

    #[test]
    fn percent_encoding_has_no_safe_characters() {
        assert_eq!(
            percent_encode("a b/c:d@e?f#g&h=i+j%k"),
            "a%20b%2Fc%3Ad%40e%3Ff%23g%26h%3Di%2Bj%25k"
        );
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(percent_encode("é€"), "%C3%A9%E2%82%AC");
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn url_mode_encodes_after_the_authority() {
        assert_eq!(
            url(
                "https://www.virustotal.com/api/v3/files/{{indicator.value}}",
                "a/b c"
            ),
            "https://www.virustotal.com/api/v3/files/a%2Fb%20c"
        );
        // Encoded once, with or without the filter.
        assert_eq!(
            url(
                "https://h/users/{{indicator.value | urlencode}}",
                "jane@example.com"
            ),
            "https://h/users/jane%40example.com"
        );
        assert_eq!(
            url(
                "https://h/check?key={{auth.api_key}}&q={{value}}#{{type}}",
                "x y"
            ),
            "https://h/check?key=k%26y%3D1%2F2&q=x%20y#account"
        );
        assert_eq!(
            url(
                "https://login.microsoftonline.com/{{auth.domain}}/token",
                "x"
            ),
            "https://login.microsoftonline.com/acme.okta.com/token"
        );
    }

    #[test]
    fn url_mode_base_url_placeholder_is_raw() {
        assert_eq!(
            url(
                "{{auth.base_url}}/api/v1/ip/{{indicator.value}}",
                "2001:db8::1"
            ),
            "https://intel.example.net:8443/api/v1/ip/2001%3Adb8%3A%3A1"
        );
        assert_eq!(
            url("{{ auth.base_url }}?q={{value}}", "a&b"),
            "https://intel.example.net:8443?q=a%26b"
        );
        // A placeholder glued to the base is already past the authority.
        assert_eq!(
            url("{{auth.base_url}}{{value}}", "/x"),
            "https://intel.example.net:8443%2Fx"
        );
        // The explicit filter is still honoured in the authority.
        assert_eq!(
            url("{{auth.base_url | urlencode}}/x", "v"),
            "https%3A%2F%2Fintel.example.net%3A8443/x"
        );
    }

    #[test]
    fn url_mode_host_placeholder_is_raw() {
        assert_eq!(
            url(
                "https://{{auth.domain}}/api/v1/users/{{indicator.value | urlencode}}",
                "a/b"
            ),
            "https://acme.okta.com/api/v1/users/a%2Fb"
        );
        assert_eq!(url("https://{{auth.domain}}", "v"), "https://acme.okta.com");
        assert_eq!(
            url(
                "https://{{value}}.{{auth.domain}}:{{auth.port}}/p/{{value}}",
                "eu"
            ),
            "https://eu.acme.okta.com:8443/p/eu"
        );
        // Scheme from one placeholder, host from another.
        assert_eq!(
            url("{{value}}://{{auth.domain}}/{{value}}", "https"),
            "https://acme.okta.com/https"
        );
    }

    #[test]
    fn url_mode_userinfo_is_encoded() {
        assert_eq!(
            url("https://svc:{{auth.api_key}}@{{auth.domain}}/x", "v"),
            "https://svc:k%26y%3D1%2F2@acme.okta.com/x"
        );
        // An '@' after the authority does not make a host placeholder user-info.
        assert_eq!(
            url("https://{{auth.domain}}/u/jane@corp", "v"),
            "https://acme.okta.com/u/jane@corp"
        );
    }

    #[test]
    fn url_mode_without_scheme_encodes_everything() {
        assert_eq!(url("api/{{value}}", "a/b"), "api/a%2Fb");
        assert_eq!(
            url("{{value}}", "https://x.example.net/a"),
            "https://x.example.net/a"
        );
    }

    #[test]
    fn unicode_values() {
        assert_eq!(
            url("https://h/u/{{value}}", "jürgen"),
            "https://h/u/j%C3%BCrgen"
        );
        assert_eq!(text("ünï {{value}} ✓"), "ünï 203.0.113.9 ✓");
        let fixture = Fixture::new();
        assert_eq!(
            render("{{value}}", &fixture.ctx("account", "名前"), Mode::Text),
            "名前"
        );
    }

    #[test]
    fn malformed_placeholders_are_literal_text() {
        assert_eq!(text(""), "");
        assert_eq!(text("no placeholders"), "no placeholders");
        assert_eq!(text("{{value"), "{{value");
        assert_eq!(text("value}}"), "value}}");
        assert_eq!(text("{{}}"), "{{}}");
        assert_eq!(text("{{ a}b }}"), "{{ a}b }}");
        assert_eq!(text("{value}"), "{value}");
        assert_eq!(text("{{value} }"), "{{value} }");
        // The placeholder starts at the first "{{": its expression "{value" is unknown.
        assert_eq!(text("{{{value}}}"), "{{{value}}}");
        assert_eq!(text("{{value}}}"), "203.0.113.9}");
        assert_eq!(text("{ {{value}}"), "{ 203.0.113.9");
        assert_eq!(text("{{ {{value}}"), "{{ {{value}}");
        assert_eq!(text("{{x}{{value}}"), "{{x}203.0.113.9");
    }

    #[test]
    fn render_value_recurses() {
        let fixture = Fixture::new();
        let body = json!({
            "client_id": "{{auth.domain}}",
            "nested": [{"q": "{{value}}"}, 7, true, null],
            "{{value}}": "keys are not templated",
        });
        assert_eq!(
            render_value(&body, &fixture.ctx("ip", "1.2.3.4"), Mode::Text),
            json!({
                "client_id": "acme.okta.com",
                "nested": [{"q": "1.2.3.4"}, 7, true, null],
                "{{value}}": "keys are not templated",
            })
        );
        assert_eq!(
            render_value(
                &json!("{{value | urlencode}}"),
                &fixture.ctx("ip", "a b"),
                Mode::Text
            ),
            json!("a%20b")
        );
    }

    #[test]
    fn check_reports_references() {
        assert_eq!(
            check("https://{{auth.domain}}/users/{{ value | urlencode }}?t={{type}}").unwrap(),
            vec![
                Reference::Auth("domain".into()),
                Reference::IndicatorValue,
                Reference::IndicatorType
            ]
        );
        assert_eq!(
            check("{{indicator.value}}{{indicator.type}}{{auth.a.b.0}}").unwrap(),
            vec![
                Reference::IndicatorValue,
                Reference::IndicatorType,
                Reference::Auth("a.b.0".into())
            ]
        );
        assert_eq!(
            check("Bearer {{steps.token.response.access_token}} {{steps.u.response}}").unwrap(),
            vec![
                Reference::Step {
                    step: "token".into(),
                    path: Some("access_token".into())
                },
                Reference::Step {
                    step: "u".into(),
                    path: None
                },
            ]
        );
        assert_eq!(
            check("plain } text }} with {single} braces").unwrap(),
            vec![]
        );
        assert_eq!(check("").unwrap(), vec![]);
    }

    #[test]
    fn check_rejects_malformed_templates() {
        let cases = [
            ("{{value", "unterminated"),
            ("ok {{value}} then {{", "unterminated"),
            ("{{}}", "empty placeholder"),
            ("{{  }}", "empty placeholder"),
            ("{{ a}b }}", "'}' inside"),
            ("{{value} }", "'}' inside"),
            ("{{{value}}}", "unknown namespace '{value'"),
            ("{{value | upper}}", "unknown filter 'upper'"),
            (
                "{{value | urlencode | upper}}",
                "unknown filter 'urlencode | upper'",
            ),
            ("{{value | }}", "unknown filter ''"),
            ("{{ | urlencode}}", "empty placeholder"),
            ("{{secret.x}}", "unknown namespace 'secret'"),
            ("{{indicator}}", "unknown indicator field"),
            ("{{indicator.values}}", "unknown indicator field"),
            ("{{auth}}", "needs a field"),
            ("{{auth..x}}", "empty segment"),
            ("{{auth.}}", "empty segment"),
            ("{{steps}}", "needs a step"),
            ("{{steps.lookup}}", "steps.<step>.response"),
            ("{{steps.lookup.body.id}}", "steps.<step>.response"),
            ("{{steps.lookup.response.}}", "empty segment"),
        ];
        for (template, expected) in cases {
            let problem = check(template).unwrap_err();
            assert!(
                problem.contains(expected),
                "{template}: {problem} (expected {expected})"
            );
        }
    }

    #[test]
    fn literal_text_skips_placeholders() {
        assert_eq!(
            literal_text("https://{{ auth.domain }}/a/{{value | urlencode}}?x"),
            "https:///a/?x"
        );
        assert_eq!(literal_text("{{value"), "{{value");
        assert_eq!(literal_text(""), "");
    }

    #[test]
    fn check_error_excerpt_is_bounded() {
        let template = format!("{{{{{}", "x".repeat(200));
        let problem = check(&template).unwrap_err();
        assert!(problem.len() < 150, "{problem}");
        assert!(problem.contains('…'));
    }
}
