//! Gateway tests on loopback sockets: fake vendors the allow-list opens, and a "canary" listener
//! that must never see a connection. No test needs the internet: host names are answered by
//! test resolvers, and public addresses are only ever vetted, never connected to.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A listener that counts the connections it accepts (and drops them).
struct Canary {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Canary {
    async fn start() -> Canary {
        Canary::start_on(Ipv4Addr::LOCALHOST, 0).await
    }

    async fn start_on(ip: Ipv4Addr, port: u16) -> Canary {
        let listener = TcpListener::bind((ip, port)).await.expect("bind canary");
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        Canary { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A fake vendor: `/echo` answers with what it received; `/redirect?to=URL` answers 302.
async fn fake_vendor_on(ip: Ipv4Addr, port: u16) -> u16 {
    use axum::routing::any;
    async fn echo(
        method: http::Method,
        uri: http::Uri,
        headers: http::HeaderMap,
        body: bytes::Bytes,
    ) -> impl axum::response::IntoResponse {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), Value::String(v.to_str().unwrap_or("").to_string())))
            .collect();
        let reply = json!({
            "method": method.as_str(),
            "path": uri.path(),
            "query": uri.query(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        });
        ([("x-fake-vendor", "yes")], axum::Json(reply))
    }
    async fn redirect(uri: http::Uri) -> impl axum::response::IntoResponse {
        let to = uri.query().and_then(|q| q.strip_prefix("to=")).unwrap_or("/").to_string();
        (http::StatusCode::FOUND, [(http::header::LOCATION, to)], "moved")
    }
    let app = axum::Router::new().route("/echo", any(echo)).route("/redirect", any(redirect));
    let listener = TcpListener::bind((ip, port)).await.expect("bind fake vendor");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

async fn fake_vendor() -> u16 {
    fake_vendor_on(Ipv4Addr::LOCALHOST, 0).await
}

/// A raw TCP server: reads the request head, then hands the socket to `respond`.
async fn raw_server<F, Fut>(respond: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                respond(socket).await;
            });
        }
    });
    port
}

/// Answers names from a fixed table; counts lookups. A missing name fails like NXDOMAIN.
#[derive(Default)]
struct MapResolver {
    answers: HashMap<String, Vec<IpAddr>>,
    lookups: AtomicUsize,
}

impl MapResolver {
    fn with(entries: &[(&str, &[&str])]) -> MapResolver {
        MapResolver {
            answers: entries
                .iter()
                .map(|(name, ips)| (name.to_string(), ips.iter().map(|ip| ip.parse().unwrap()).collect()))
                .collect(),
            lookups: AtomicUsize::new(0),
        }
    }
}

impl HostResolver for MapResolver {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let answer = match self.answers.get(host) {
            Some(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
        };
        Box::pin(async move { answer })
    }
}

/// A DNS-rebinding attacker: the first lookup answers `first`, every later one `then`.
struct RebindResolver {
    first: IpAddr,
    then: IpAddr,
    lookups: AtomicUsize,
}

impl HostResolver for RebindResolver {
    fn resolve(&self, _host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let n = self.lookups.fetch_add(1, Ordering::SeqCst);
        let ip = if n == 0 { self.first } else { self.then };
        Box::pin(async move { Ok(vec![SocketAddr::new(ip, port)]) })
    }
}

fn policy(allow: &str) -> Policy {
    Policy {
        allowed: AllowList::parse(allow).expect("allow-list"),
        connect_timeout: Duration::from_secs(2),
        max_timeout: Duration::from_secs(10),
        ..Policy::default()
    }
}

fn gateway(policy: Policy, resolver: Arc<dyn HostResolver>) -> Egress {
    Egress::with_resolver(policy, resolver).expect("gateway")
}

fn get(url: impl Into<String>) -> Request {
    Request {
        method: http::Method::GET,
        url: url.into(),
        headers: Vec::new(),
        body: Body::Empty,
        timeout: Duration::from_secs(5),
    }
}

fn blocked_reason(result: Result<impl std::fmt::Debug, EgressError>) -> String {
    match result {
        Err(EgressError::Blocked(reason)) => reason,
        other => panic!("expected Blocked, got {other:?}"),
    }
}

fn json_body(response: &Response) -> Value {
    serde_json::from_slice(&response.body).expect("JSON body")
}

// ---------------------------------------------------------------------------------------------
// The SSRF table

#[tokio::test]
async fn every_forbidden_destination_is_refused_at_save_and_at_send() {
    let canary = Canary::start().await;
    let vendor = fake_vendor().await;
    let c = canary.port;
    // The allow-list opens one loopback port and, to prove they stay closed, metadata entries.
    let allow =
        format!("127.0.0.1:{vendor}, 169.254.169.254, metadata.google.internal, fd00:ec2::254, 100.100.100.200/32");
    let resolver = Arc::new(MapResolver::with(&[
        ("loopback.example", &["127.0.0.1"]),
        ("mixed.example", &["93.184.216.34", "10.1.2.3"]),
        ("meta.example", &["169.254.169.254"]),
        ("v6loop.example", &["::1"]),
        ("empty.example", &[]),
    ]));
    let egress = gateway(policy(&allow), resolver);

    let table: Vec<(String, &str)> = vec![
        // Loopback in every spelling the URL parser understands, aimed at the canary.
        (format!("http://127.0.0.1:{c}/"), "Blocked loopback IP: 127.0.0.1"),
        (format!("http://127.0.0.2:{c}/"), "Blocked loopback IP: 127.0.0.2"),
        (format!("http://2130706433:{c}/"), "Blocked loopback IP: 127.0.0.1"),
        (format!("http://0x7f.1:{c}/"), "Blocked loopback IP: 127.0.0.1"),
        (format!("http://0x7f000001:{c}/"), "Blocked loopback IP: 127.0.0.1"),
        (format!("http://017700000001:{c}/"), "Blocked loopback IP: 127.0.0.1"),
        (format!("http://0177.0.0.1:{c}/"), "Blocked loopback IP: 127.0.0.1"),
        (format!("http://127.1:{c}/"), "Blocked loopback IP: 127.0.0.1"),
        (format!("http://127.0.0.1.:{c}/"), "Blocked loopback IP: 127.0.0.1"),
        (format!("http://%31%32%37.0.0.1:{c}/"), "Blocked loopback IP: 127.0.0.1"),
        (format!("http://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}:{c}/"), "Blocked loopback IP: 127.0.0.1"),
        (format!("http://[::1]:{c}/"), "Blocked loopback IP: ::1"),
        (format!("http://[::ffff:127.0.0.1]:{c}/"), "Blocked loopback IP: ::ffff:127.0.0.1 (IPv4-mapped 127.0.0.1)"),
        (format!("http://[::ffff:7f00:1]:{c}/"), "Blocked loopback IP: ::ffff:127.0.0.1"),
        (format!("http://[::127.0.0.1]:{c}/"), "Blocked loopback IP: ::7f00:1 (IPv4-compatible 127.0.0.1)"),
        (format!("http://[64:ff9b::7f00:1]:{c}/"), "Blocked loopback IP: 64:ff9b::7f00:1 (NAT64 of 127.0.0.1)"),
        (format!("http://[64:ff9b:1::a00:1]:{c}/"), "Blocked non-global IP: 64:ff9b:1::a00:1"),
        (format!("http://[2002:7f00:1::]:{c}/"), "Blocked loopback IP: 2002:7f00:1:: (6to4 of 127.0.0.1)"),
        (format!("http://[2001:0:7f00:1::]:{c}/"), "Blocked loopback IP: 2001:0:7f00:1:: (Teredo embedding 127.0.0.1)"),
        (
            "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/".into(),
            "Blocked private IP: 2001:0:4136:e378:8000:63bf:f5ff:fffe (Teredo embedding 10.0.0.1)",
        ),
        (format!("http://0.0.0.0:{c}/"), "Blocked unspecified IP: 0.0.0.0"),
        (format!("http://0:{c}/"), "Blocked unspecified IP: 0.0.0.0"),
        (format!("http://[::]:{c}/"), "Blocked unspecified IP: ::"),
        (format!("http://localhost:{c}/"), "Blocked internal hostname: localhost"),
        (format!("http://LocalHost.:{c}/"), "Blocked internal hostname: localhost"),
        (format!("http://loopback.example:{c}/"), "Blocked loopback IP: 127.0.0.1"),
        (format!("http://v6loop.example:{c}/"), "Blocked loopback IP: ::1"),
        // The allow-list opens 127.0.0.1 on the vendor's port only.
        (format!("http://127.0.0.1:{}/", vendor + 1), "Blocked loopback IP: 127.0.0.1"),
        // Cloud metadata, allow-listed or not.
        ("http://169.254.169.254/latest/meta-data/".into(), "Blocked cloud metadata IP: 169.254.169.254"),
        ("http://169.254.170.2/v2/credentials".into(), "Blocked cloud metadata IP: 169.254.170.2"),
        ("http://100.100.100.200/latest/meta-data/".into(), "Blocked cloud metadata IP: 100.100.100.200"),
        ("http://[fd00:ec2::254]/latest/meta-data/".into(), "Blocked cloud metadata IP: fd00:ec2::254"),
        ("http://[::ffff:169.254.169.254]/".into(), "Blocked cloud metadata IP: ::ffff:169.254.169.254"),
        ("http://[64:ff9b::a9fe:a9fe]/".into(), "Blocked cloud metadata IP: 64:ff9b::a9fe:a9fe"),
        ("http://2852039166/".into(), "Blocked cloud metadata IP: 169.254.169.254"),
        (
            "http://metadata.google.internal/computeMetadata/v1/".into(),
            "Blocked metadata hostname: metadata.google.internal",
        ),
        ("http://METADATA.google.internal./".into(), "Blocked metadata hostname: metadata.google.internal"),
        ("http://metadata.goog/".into(), "Blocked metadata hostname: metadata.goog"),
        ("http://metadata/".into(), "Blocked metadata hostname: metadata"),
        ("http://instance-data/latest/".into(), "Blocked metadata hostname: instance-data"),
        ("http://meta.example/".into(), "Blocked cloud metadata IP: 169.254.169.254"),
        // Private, link-local and other non-global ranges.
        (format!("http://10.0.0.1:{c}/"), "Blocked private IP: 10.0.0.1"),
        ("http://172.16.0.1/".into(), "Blocked private IP: 172.16.0.1"),
        ("http://192.168.0.1/".into(), "Blocked private IP: 192.168.0.1"),
        ("http://169.254.1.1/".into(), "Blocked link-local IP: 169.254.1.1"),
        ("http://100.64.0.1/".into(), "Blocked non-global IP: 100.64.0.1 (shared address space"),
        ("http://198.18.0.1/".into(), "Blocked non-global IP: 198.18.0.1 (benchmarking"),
        ("http://224.0.0.1/".into(), "Blocked non-global IP: 224.0.0.1 (multicast)"),
        ("http://240.0.0.1/".into(), "Blocked non-global IP: 240.0.0.1 (reserved"),
        ("http://255.255.255.255/".into(), "Blocked non-global IP: 255.255.255.255 (broadcast)"),
        ("http://192.0.2.1/".into(), "Blocked non-global IP: 192.0.2.1 (documentation)"),
        ("http://198.51.100.1/".into(), "Blocked non-global IP: 198.51.100.1 (documentation)"),
        ("http://203.0.113.1/".into(), "Blocked non-global IP: 203.0.113.1 (documentation)"),
        ("http://192.0.0.8/".into(), "Blocked non-global IP: 192.0.0.8"),
        ("http://[fd00::1]/".into(), "Blocked private IP: fd00::1"),
        ("http://[fe80::1]/".into(), "Blocked link-local IP: fe80::1"),
        ("http://[fec0::1]/".into(), "Blocked non-global IP: fec0::1 (site-local"),
        ("http://[ff02::1]/".into(), "Blocked non-global IP: ff02::1 (multicast)"),
        ("http://[2001:db8::1]/".into(), "Blocked non-global IP: 2001:db8::1 (documentation)"),
        ("http://[3fff::1]/".into(), "Blocked non-global IP: 3fff::1 (documentation)"),
        ("http://[2001:2::1]/".into(), "Blocked non-global IP: 2001:2::1"),
        ("http://[100::1]/".into(), "Blocked non-global IP: 100::1"),
        ("http://mixed.example/".into(), "Blocked private IP: 10.1.2.3"),
        // Internal names.
        ("http://printer.local/".into(), "Blocked internal domain suffix: .local"),
        ("http://vault.internal/".into(), "Blocked internal domain suffix: .internal"),
        ("http://app.localhost/".into(), "Blocked internal domain suffix: .localhost"),
        ("http://wiki.corp/".into(), "Blocked internal domain suffix: .corp"),
        ("http://nas.lan/".into(), "Blocked internal domain suffix: .lan"),
        ("http://router.home.arpa/".into(), "Blocked internal domain suffix: .home.arpa"),
        // Schemes, credentials, missing host, DNS failing closed.
        ("file:///etc/passwd".into(), "Unsupported scheme: file"),
        (format!("gopher://127.0.0.1:{c}/_GET"), "Unsupported scheme: gopher"),
        ("ftp://example.com/".into(), "Unsupported scheme: ftp"),
        ("javascript:alert(1)".into(), "Unsupported scheme: javascript"),
        ("http://user:pass@example.com/".into(), "Credentials in URLs are not allowed"),
        (format!("http://user@127.0.0.1:{vendor}/echo"), "Credentials in URLs are not allowed"),
        ("http://".into(), "Missing hostname"),
        ("http://nowhere.example/".into(), "DNS resolution failed for nowhere.example: no such host"),
        ("http://empty.example/".into(), "empty.example resolved to no addresses"),
    ];

    for (url, expected) in &table {
        let at_save = blocked_reason(egress.vet_for_save(url).await);
        assert!(at_save.starts_with(expected), "save {url}: got {at_save:?}, want {expected:?}");
        let at_send = blocked_reason(egress.send(get(url.clone())).await);
        assert!(at_send.starts_with(expected), "send {url}: got {at_send:?}, want {expected:?}");
    }
    assert_eq!(canary.hits(), 0, "the canary was reached");
}

#[tokio::test]
async fn malformed_urls_are_invalid() {
    let egress = gateway(policy(""), Arc::new(MapResolver::default()));
    for url in ["not a url", "/relative/path", "http://[::1/", "http://exa mple.com/", "http://[fe80::1%25eth0]/"] {
        assert!(matches!(egress.vet_for_save(url).await, Err(EgressError::InvalidUrl(_))), "{url}");
        assert!(matches!(egress.send(get(url)).await, Err(EgressError::InvalidUrl(_))), "{url}");
    }
}

#[tokio::test]
async fn public_destinations_pass_vetting() {
    let resolver = Arc::new(MapResolver::with(&[("public.example", &["93.184.216.34", "2606:2800:220:1::1"])]));
    let egress = gateway(policy(""), resolver);
    for url in [
        "https://public.example/api",
        "http://public.example:8080/api?q=1",
        "https://8.8.8.8/",
        "https://[2606:4700:4700::1111]/",
        "https://[64:ff9b::808:808]/", // NAT64 of a public address
        "https://[2002:808:808::1]/",  // 6to4 of a public address
        "https://192.0.0.9/",          // the global exception inside 192.0.0.0/24
    ] {
        egress.vet_for_save(url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

#[tokio::test]
async fn https_can_be_required() {
    let egress = gateway(Policy { require_https: true, ..policy("") }, Arc::new(MapResolver::default()));
    let reason = blocked_reason(egress.vet_for_save("http://8.8.8.8/").await);
    assert_eq!(reason, "Unsupported scheme: http (HTTPS required)");
    let reason = blocked_reason(egress.send(get("http://8.8.8.8/")).await);
    assert_eq!(reason, "Unsupported scheme: http (HTTPS required)");
    egress.vet_for_save("https://8.8.8.8/").await.unwrap();
    let reason = blocked_reason(egress.vet_for_save("http://{{auth.domain}}/x").await);
    assert_eq!(reason, "Unsupported scheme: http (HTTPS required)");
}

#[tokio::test]
async fn templates_defer_only_what_the_template_hides() {
    let canary = Canary::start().await;
    let resolver = Arc::new(MapResolver::with(&[("public.example", &["93.184.216.34"])]));
    let egress = gateway(policy(""), resolver.clone());
    // Scheme or host templated: nothing to resolve yet.
    for url in [
        "{{auth.base_url}}/api/v3/ip_addresses/{{indicator.value}}",
        "https://{{auth.domain}}/api/v1/users/{{indicator.value}}",
        "https://{{ auth.domain }}:8443/x",
        "https://api.example{{auth.suffix}}/x",
        "http{{auth.tls}}://api.example.com/x",
        "https://{% if auth.eu %}eu{% else %}us{% endif %}.api.example.com/x",
    ] {
        egress.vet_for_save(url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    }
    assert_eq!(resolver.lookups.load(Ordering::SeqCst), 0);
    // Literal scheme and host: checked now, placeholders in path and query notwithstanding.
    egress.vet_for_save("https://public.example/ip/{{indicator.value}}?key={{auth.api_key}}").await.unwrap();
    let c = canary.port;
    let cases = [
        (format!("http://127.0.0.1:{c}/ip/{{{{indicator.value}}}}"), "Blocked loopback IP: 127.0.0.1"),
        ("http://metadata.google.internal/{{x}}".to_string(), "Blocked metadata hostname: metadata.google.internal"),
        ("https://nowhere.example/{{x}}".to_string(), "DNS resolution failed for nowhere.example"),
        ("ftp://{{auth.host}}/x".to_string(), "Unsupported scheme: ftp"),
        ("https://user:{{auth.password}}@api.example.com/".to_string(), "Credentials in URLs are not allowed"),
        ("https://{{auth.user}}@api.example.com/".to_string(), "Credentials in URLs are not allowed"),
    ];
    for (url, expected) in &cases {
        let reason = blocked_reason(egress.vet_for_save(url).await);
        assert!(reason.starts_with(expected), "{url}: got {reason:?}");
    }
    // What a template renders to is vetted at send time.
    let rendered = format!("http://127.0.0.1:{c}/ip/8.8.8.8");
    assert_eq!(blocked_reason(egress.send(get(rendered)).await), "Blocked loopback IP: 127.0.0.1");
    assert_eq!(canary.hits(), 0);
}

// ---------------------------------------------------------------------------------------------
// Allow-listed destinations, end to end

#[tokio::test]
async fn allow_listed_loopback_port_works_end_to_end() {
    let canary = Canary::start().await;
    let vendor = fake_vendor().await;
    let egress = gateway(policy(&format!("127.0.0.1:{vendor}")), Arc::new(MapResolver::default()));
    egress.vet_for_save(&format!("http://127.0.0.1:{vendor}/echo?ip={{{{indicator.value}}}}")).await.unwrap();

    let mut request = get(format!("http://127.0.0.1:{vendor}/echo?ip=1.2.3.4&q=a%20b"));
    request.headers = vec![("X-Api-Key".into(), "k-123".into()), ("Accept".into(), "application/json".into())];
    let response = egress.send(request).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("X-Fake-Vendor"), Some("yes"));
    let echoed = json_body(&response);
    assert_eq!(echoed["method"], "GET");
    assert_eq!(echoed["path"], "/echo");
    assert_eq!(echoed["query"], "ip=1.2.3.4&q=a%20b");
    assert_eq!(echoed["headers"]["x-api-key"], "k-123");
    assert_eq!(echoed["headers"]["accept"], "application/json");
    assert!(response.elapsed > Duration::ZERO);

    let mut post = get(format!("http://127.0.0.1:{vendor}/echo"));
    post.method = http::Method::POST;
    post.body = Body::Json(json!({"indicator": "8.8.8.8", "n": 1}));
    let response = egress.send(post).await.unwrap();
    let echoed = json_body(&response);
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["headers"]["content-type"], "application/json");
    assert_eq!(
        serde_json::from_str::<Value>(echoed["body"].as_str().unwrap()).unwrap(),
        json!({"indicator": "8.8.8.8", "n": 1})
    );

    let mut form = get(format!("http://127.0.0.1:{vendor}/echo"));
    form.method = http::Method::POST;
    form.headers = vec![("Authorization".into(), "Basic abc".into())];
    form.body = Body::Form(vec![("grant_type".into(), "client_credentials".into()), ("scope".into(), "a b&c".into())]);
    let echoed = json_body(&egress.send(form).await.unwrap());
    assert_eq!(echoed["headers"]["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(echoed["headers"]["authorization"], "Basic abc");
    assert_eq!(echoed["body"], "grant_type=client_credentials&scope=a+b%26c");

    // A caller's own Content-Type wins over the body's default.
    let mut typed = get(format!("http://127.0.0.1:{vendor}/echo"));
    typed.method = http::Method::PUT;
    typed.headers = vec![("content-type".into(), "application/vnd.api+json".into())];
    typed.body = Body::Json(json!([1, 2]));
    let echoed = json_body(&egress.send(typed).await.unwrap());
    assert_eq!(echoed["headers"]["content-type"], "application/vnd.api+json");

    // The same host on another port stays closed.
    let reason = blocked_reason(egress.send(get(format!("http://127.0.0.1:{}/echo", canary.port))).await);
    assert_eq!(reason, "Blocked loopback IP: 127.0.0.1");
    assert_eq!(canary.hits(), 0);
}

#[tokio::test]
async fn allow_listed_hostname_opens_that_name_on_that_port_only() {
    let canary = Canary::start().await;
    let vendor = fake_vendor().await;
    let resolver =
        Arc::new(MapResolver::with(&[("vendor.internal", &["127.0.0.1"]), ("other.example", &["127.0.0.1"])]));
    let egress = gateway(policy(&format!("Vendor.Internal:{vendor}")), resolver);
    let response = egress.send(get(format!("http://vendor.internal:{vendor}/echo"))).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(json_body(&response)["headers"]["host"], format!("vendor.internal:{vendor}"));
    egress.vet_for_save(&format!("http://VENDOR.internal.:{vendor}/echo")).await.unwrap();

    let reason = blocked_reason(egress.send(get(format!("http://vendor.internal:{}/", canary.port))).await);
    assert_eq!(reason, "Blocked internal domain suffix: .internal");
    // The entry names a host, not its address: another name for 127.0.0.1 is still refused.
    let reason = blocked_reason(egress.send(get(format!("http://other.example:{vendor}/echo"))).await);
    assert_eq!(reason, "Blocked loopback IP: 127.0.0.1");
    assert_eq!(canary.hits(), 0);
}

#[tokio::test]
async fn allow_listed_network_opens_every_port() {
    let vendor = fake_vendor().await;
    let egress = gateway(policy("127.0.0.0/30"), Arc::new(MapResolver::default()));
    let response = egress.send(get(format!("http://127.0.0.1:{vendor}/echo"))).await.unwrap();
    assert_eq!(response.status, 200);
    // Outside the network: refused.
    assert_eq!(blocked_reason(egress.vet_for_save("http://127.0.0.9/").await), "Blocked loopback IP: 127.0.0.9");
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let canary = Canary::start().await;
    let vendor = fake_vendor().await;
    let egress = gateway(policy(&format!("127.0.0.1:{vendor}")), Arc::new(MapResolver::default()));
    let target = format!("http://127.0.0.1:{}/", canary.port);
    let response = egress.send(get(format!("http://127.0.0.1:{vendor}/redirect?to={target}"))).await.unwrap();
    assert_eq!(response.status, 302);
    assert_eq!(response.header("location"), Some(target.as_str()));
    assert_eq!(&response.body[..], b"moved");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(canary.hits(), 0);
}

// ---------------------------------------------------------------------------------------------
// Transport failures, time and size bounds

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    let closed_port = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let egress = gateway(policy(&format!("127.0.0.1:{closed_port}")), Arc::new(MapResolver::default()));
    match egress.send(get(format!("http://127.0.0.1:{closed_port}/x?apikey=SECRET"))).await {
        Err(EgressError::Transport(message)) => {
            assert!(message.to_lowercase().contains("refused"), "{message}");
            assert!(!message.contains("SECRET"), "the URL (and its query) must not be echoed: {message}");
        }
        other => panic!("expected Transport, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_to_a_plain_http_server_fails_as_transport() {
    let vendor = fake_vendor().await;
    let egress = gateway(policy(&format!("127.0.0.1:{vendor}")), Arc::new(MapResolver::default()));
    let result = egress.send(get(format!("https://127.0.0.1:{vendor}/echo"))).await;
    assert!(matches!(result, Err(EgressError::Transport(_))), "{result:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let held = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    let port = raw_server(move |socket| {
        let keep = keep.clone();
        async move { keep.lock().await.push(socket) }
    })
    .await;
    let egress = gateway(policy(&format!("127.0.0.1:{port}")), Arc::new(MapResolver::default()));
    let mut request = get(format!("http://127.0.0.1:{port}/"));
    request.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let result = egress.send(request).await;
    assert!(matches!(result, Err(EgressError::Timeout(d)) if d == Duration::from_millis(300)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // The policy's maximum caps a longer wish.
    let capped = gateway(
        Policy { max_timeout: Duration::from_millis(200), ..policy(&format!("127.0.0.1:{port}")) },
        Arc::new(MapResolver::default()),
    );
    let mut request = get(format!("http://127.0.0.1:{port}/"));
    request.timeout = Duration::from_secs(30);
    let result = capped.send(request).await;
    assert!(matches!(result, Err(EgressError::Timeout(d)) if d == Duration::from_millis(200)), "{result:?}");
}

#[tokio::test]
async fn a_slow_drip_body_hits_the_total_timeout() {
    let port = raw_server(|mut socket| async move {
        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n").await;
        for _ in 0..1000 {
            if socket.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    })
    .await;
    let egress = gateway(policy(&format!("127.0.0.1:{port}")), Arc::new(MapResolver::default()));
    let mut request = get(format!("http://127.0.0.1:{port}/"));
    request.timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let result = egress.send(request).await;
    assert!(matches!(result, Err(EgressError::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused() {
    // Declared too large: refused on the header, before any body byte (the server sends none).
    let declared = raw_server(|mut socket| async move {
        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n").await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    // Chunked, no length: refused once the running total passes the cap.
    let chunked = |total: usize| {
        move |mut socket: TcpStream| async move {
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await;
            let mut sent = 0;
            while sent < total {
                let n = 256.min(total - sent);
                let chunk = format!("{n:x}\r\n{}\r\n", "y".repeat(n));
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
                sent += n;
            }
            let _ = socket.write_all(b"0\r\n\r\n").await;
        }
    };
    let too_long = raw_server(chunked(4096)).await;
    let exact = raw_server(chunked(1024)).await;
    let allow = format!("127.0.0.1:{declared}, 127.0.0.1:{too_long}, 127.0.0.1:{exact}");
    let egress = gateway(Policy { max_response_bytes: 1024, ..policy(&allow) }, Arc::new(MapResolver::default()));

    let started = std::time::Instant::now();
    let result = egress.send(get(format!("http://127.0.0.1:{declared}/"))).await;
    assert!(matches!(result, Err(EgressError::TooLarge(1024))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let result = egress.send(get(format!("http://127.0.0.1:{too_long}/"))).await;
    assert!(matches!(result, Err(EgressError::TooLarge(1024))), "{result:?}");

    let response = egress.send(get(format!("http://127.0.0.1:{exact}/"))).await.unwrap();
    assert_eq!(response.body.len(), 1024);
}

#[tokio::test]
async fn bad_header_values_are_transport_errors_without_the_value() {
    let vendor = fake_vendor().await;
    let egress = gateway(policy(&format!("127.0.0.1:{vendor}")), Arc::new(MapResolver::default()));
    let mut request = get(format!("http://127.0.0.1:{vendor}/echo"));
    request.headers = vec![("X-Api-Key".into(), "secret\r\nX-Injected: 1".into())];
    match egress.send(request).await {
        Err(EgressError::Transport(message)) => {
            assert_eq!(message, "invalid value for header X-Api-Key");
        }
        other => panic!("expected Transport, got {other:?}"),
    }
    let mut request = get(format!("http://127.0.0.1:{vendor}/echo"));
    request.headers = vec![("Bad Name".into(), "v".into())];
    assert!(matches!(egress.send(request).await, Err(EgressError::Transport(_))));
}

// ---------------------------------------------------------------------------------------------
// DNS rebinding and failing DNS

/// The attacker's name answers an allowed address on its first lookup and loopback (forbidden)
/// on every later one. Loopback serves both sides so no internet is needed: the allowed address
/// is 127.0.0.2 (allow-listed on one port), the forbidden one 127.0.0.1, where the canary listens
/// on that same port. A gateway that vetted one lookup and let the HTTP client do a second one
/// (Calseta's window) would connect to the canary. Here:
/// * vetting at save uses lookup 1 (allowed); the send that follows does its own single lookup,
///   gets 127.0.0.1 and is refused;
/// * on a fresh gateway, the first send reaches the fake vendor on 127.0.0.2 with exactly one
///   lookup, so the address connected to is the address vetted; the next connection (the first
///   was closed) looks up again, gets 127.0.0.1 and is refused.
///
/// The canary sees nothing throughout.
#[tokio::test]
async fn dns_rebinding_never_reaches_the_rebound_address() {
    let canary = Canary::start().await;
    let port = canary.port;
    let vendor_ip = Ipv4Addr::new(127, 0, 0, 2);
    fake_vendor_on(vendor_ip, port).await;
    let allow = format!("127.0.0.2:{port}");
    let rebinder = || {
        Arc::new(RebindResolver {
            first: IpAddr::V4(vendor_ip),
            then: IpAddr::V4(Ipv4Addr::LOCALHOST),
            lookups: AtomicUsize::new(0),
        })
    };
    let url = format!("http://rebind.example:{port}/echo");

    // Registration sees the allowed answer; delivery sees the rebound one and is refused.
    let resolver = rebinder();
    let egress = gateway(policy(&allow), resolver.clone());
    egress.vet_for_save(&url).await.unwrap();
    assert_eq!(blocked_reason(egress.send(get(&url)).await), "Blocked loopback IP: 127.0.0.1");
    assert_eq!(resolver.lookups.load(Ordering::SeqCst), 2);

    // One lookup per connection, and the connection goes where that lookup pointed.
    let resolver = rebinder();
    let egress = gateway(policy(&allow), resolver.clone());
    let mut first = get(&url);
    first.headers = vec![("Connection".into(), "close".into())];
    let response = egress.send(first).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-fake-vendor"), Some("yes"));
    assert_eq!(resolver.lookups.load(Ordering::SeqCst), 1);
    assert_eq!(blocked_reason(egress.send(get(&url)).await), "Blocked loopback IP: 127.0.0.1");
    assert_eq!(resolver.lookups.load(Ordering::SeqCst), 2);

    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(canary.hits(), 0, "a rebound address was connected to");
}

/// A resolver that never answers: the lookup is bounded by the connect timeout and fails closed.
#[tokio::test]
async fn a_hanging_resolver_fails_closed() {
    struct Hang;
    impl HostResolver for Hang {
        fn resolve(&self, _host: &str, _port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
            Box::pin(futures::future::pending())
        }
    }
    let egress = gateway(Policy { connect_timeout: Duration::from_millis(100), ..policy("") }, Arc::new(Hang));
    let reason = blocked_reason(egress.vet_for_save("https://slow.example/").await);
    assert!(reason.starts_with("DNS resolution failed for slow.example: no answer within"), "{reason}");
    let result = egress.send(get("https://slow.example/")).await;
    assert!(matches!(&result, Err(EgressError::Blocked(_)) | Err(EgressError::Timeout(_))), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// Configuration and the address rules

#[test]
fn allow_list_entries_parse() {
    let list = AllowList::parse(" vault.corp.example , 10.20.0.0/16, 127.0.0.1, 127.0.0.1:8080, [::1]:9000, fd00::1, Example.COM.:443, 127.1:81, ,").unwrap();
    let net = |s: &str| AllowTarget::Net(s.parse().unwrap());
    assert_eq!(
        list.entries(),
        &[
            AllowEntry { target: AllowTarget::Host("vault.corp.example".into()), port: None },
            AllowEntry { target: net("10.20.0.0/16"), port: None },
            AllowEntry { target: net("127.0.0.1/32"), port: None },
            AllowEntry { target: net("127.0.0.1/32"), port: Some(8080) },
            AllowEntry { target: net("::1/128"), port: Some(9000) },
            AllowEntry { target: net("fd00::1/128"), port: None },
            AllowEntry { target: AllowTarget::Host("example.com".into()), port: Some(443) },
            AllowEntry { target: net("127.0.0.1/32"), port: Some(81) },
        ]
    );
    assert!(list.allows_addr("10.20.3.4".parse().unwrap(), 1));
    assert!(!list.allows_addr("10.21.0.1".parse().unwrap(), 1));
    assert!(list.allows_addr("::1".parse().unwrap(), 9000));
    assert!(!list.allows_addr("::1".parse().unwrap(), 9001));
    assert!(list.allows_host("example.com", 443));
    assert!(!list.allows_host("example.com", 80));
    assert!(list.allows_host("vault.corp.example", 8200));
    assert!(AllowList::parse("").unwrap().is_empty());

    for bad in ["10.0.0.0/33", "host:abc", "host:0", "host:70000", "[::1", "[::1]x", ":80", "a b.example"] {
        assert!(AllowList::parse(bad).is_err(), "{bad} should be rejected");
    }
}

#[test]
fn from_settings_reads_the_egress_settings() {
    let settings = crate::config::Settings {
        ssrf_allowed_hosts: "127.0.0.1:9999, vault.corp".into(),
        egress_require_https: true,
        egress_connect_timeout_seconds: 3,
        egress_max_timeout_seconds: 20,
        egress_max_response_bytes: 1000,
        ..crate::config::Settings::default()
    };
    let policy = Policy::from_settings(&settings).unwrap();
    assert_eq!(policy.allowed.entries().len(), 2);
    assert!(policy.require_https);
    assert_eq!(policy.connect_timeout, Duration::from_secs(3));
    assert_eq!(policy.max_timeout, Duration::from_secs(20));
    assert_eq!(policy.max_response_bytes, 1000);
    assert_eq!(policy.effective_timeout(Duration::from_secs(5)), Duration::from_secs(5));
    assert_eq!(policy.effective_timeout(Duration::from_secs(50)), Duration::from_secs(20));
    assert_eq!(policy.effective_timeout(Duration::ZERO), Duration::from_secs(20));

    let bad =
        crate::config::Settings { ssrf_allowed_hosts: "10.0.0.0/99".into(), ..crate::config::Settings::default() };
    match Egress::from_settings(&bad) {
        Err(EgressError::Config(message)) => assert!(message.contains("10.0.0.0/99"), "{message}"),
        Err(other) => panic!("expected Config, got {other:?}"),
        Ok(_) => panic!("expected Config error"),
    }
}

#[test]
fn global_addresses_are_not_blocked() {
    for ip in [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "192.0.0.9",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "2001:4860:4860::8888",
        "2001:20::1",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(non_global_reason(ip), None, "{ip}");
        assert!(!is_metadata_ip(ip), "{ip}");
    }
}

#[test]
fn metadata_addresses_stay_blocked_when_allow_listed() {
    let policy = policy("169.254.0.0/16, 0.0.0.0/0, ::/0, metadata.goog, metadata.google.internal:80");
    for ip in [
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "168.63.129.16",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "2002:a9fe:a9fe::1",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        let reason = policy.check_address(ip, 80, true).unwrap_err();
        assert_eq!(reason, format!("Blocked cloud metadata IP: {ip}"));
    }
    assert_eq!(policy.check_hostname("metadata.goog", 80).unwrap_err(), "Blocked metadata hostname: metadata.goog");
    assert_eq!(
        policy.check_hostname("foo.metadata.google.internal", 80).unwrap_err(),
        "Blocked metadata hostname: foo.metadata.google.internal"
    );
    // The wide allow-list does open ordinary internal addresses.
    assert_eq!(policy.check_address("10.0.0.1".parse().unwrap(), 80, false), Ok(()));
}
