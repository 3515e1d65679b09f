//! Address and host rules of the egress gateway: what a URL may name and which addresses a
//! connection may reach.
//!
//! An address is reachable when it is globally routable. The operator's allow-list
//! (`SSRF_ALLOWED_HOSTS`) opens chosen internal hosts, addresses, networks and ports; cloud
//! metadata names and addresses stay closed whatever the allow-list says. Calseta let an
//! allow-listed hostname skip every rule, metadata included ([QUIRK] in
//! security-and-config.md §10); here the metadata rules run before the allow-list is consulted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use url::{Host, Url};

use super::EgressError;

/// Host names that answer with cloud instance metadata (credentials, user data). Refused even when
/// allow-listed; subdomains of the dotted ones are refused too.
const METADATA_HOSTNAMES: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
    "metadata.platformequinix.com",
    "metadata.packet.net",
];

/// Cloud metadata and platform-agent endpoints. Refused even when allow-listed. 168.63.129.16
/// (Azure WireServer) is globally routable, so only this list stops it.
const METADATA_V4: &[Ipv4Addr] = &[
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OCI, DigitalOcean, ...
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task credentials
    Ipv4Addr::new(169, 254, 170, 23),  // AWS EKS pod identity
    Ipv4Addr::new(169, 254, 0, 23),    // Tencent Cloud
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(168, 63, 129, 16),   // Azure WireServer
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud (classic)
];

const METADATA_V6: &[Ipv6Addr] = &[
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254), // AWS IMDS over IPv6
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023), // AWS EKS pod identity over IPv6
];

/// Names private to a site or host; refused unless allow-listed.
const INTERNAL_SUFFIXES: &[&str] =
    &[".internal", ".local", ".localhost", ".localdomain", ".corp", ".lan", ".home.arpa"];

/// What the gateway may reach and how long and how much it may read.
#[derive(Clone, Debug)]
pub struct Policy {
    pub allowed: AllowList,
    /// Refuse `http://` URLs.
    pub require_https: bool,
    /// Bound on DNS resolution + TCP connect + TLS handshake of one connection.
    pub connect_timeout: Duration,
    /// Bound on a whole request (connect, send, headers, body), whatever the caller asks.
    pub max_timeout: Duration,
    /// Largest response body read; a longer one fails the request.
    pub max_response_bytes: u64,
}

impl Default for Policy {
    /// Public destinations only, with the defaults of `Settings`.
    fn default() -> Self {
        Policy {
            allowed: AllowList::default(),
            require_https: false,
            connect_timeout: Duration::from_secs(5),
            max_timeout: Duration::from_secs(60),
            max_response_bytes: 5 * 1024 * 1024,
        }
    }
}

impl Policy {
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Policy, EgressError> {
        let allowed = AllowList::parse(&settings.ssrf_allowed_hosts)
            .map_err(|e| EgressError::Config(format!("SSRF_ALLOWED_HOSTS: {e}")))?;
        Ok(Policy {
            allowed,
            require_https: settings.egress_require_https,
            connect_timeout: Duration::from_secs(settings.egress_connect_timeout_seconds.max(1)),
            max_timeout: Duration::from_secs(settings.egress_max_timeout_seconds.max(1)),
            max_response_bytes: settings.egress_max_response_bytes,
        })
    }

    /// The total time a request may take: the caller's wish capped by the policy; a zero wish
    /// means "no preference".
    pub fn effective_timeout(&self, requested: Duration) -> Duration {
        if requested.is_zero() { self.max_timeout } else { requested.min(self.max_timeout) }
    }

    /// Every rule that can be decided from the URL text alone: scheme, credentials, host name
    /// rules, and the address rules when the host is an IP literal. A host name still has to be
    /// resolved and its addresses checked ([`Policy::check_address`]).
    pub fn check_url(&self, raw: &str) -> Result<Target, EgressError> {
        let url = Url::parse(raw).map_err(|e| match e {
            url::ParseError::EmptyHost => EgressError::Blocked("Missing hostname".into()),
            other => EgressError::InvalidUrl(other.to_string()),
        })?;
        self.check_scheme(url.scheme())?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EgressError::Blocked("Credentials in URLs are not allowed".into()));
        }
        let port = url.port_or_known_default().ok_or_else(|| EgressError::InvalidUrl("no port for scheme".into()))?;
        let host = match url.host() {
            None => return Err(EgressError::Blocked("Missing hostname".into())),
            Some(Host::Ipv4(ip)) => TargetHost::Ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => TargetHost::Ip(IpAddr::V6(ip)),
            // The WHATWG parser turns every IPv4 spelling into Host::Ipv4; this guards against a
            // domain that another parser (hyper's) would still read as an address.
            Some(Host::Domain(name)) => match name.parse::<IpAddr>() {
                Ok(ip) => TargetHost::Ip(ip),
                Err(_) => {
                    let name = normalize_name(name);
                    let allowlisted = self.check_hostname(&name, port).map_err(EgressError::Blocked)?;
                    TargetHost::Name { name, allowlisted }
                }
            },
        };
        if let TargetHost::Ip(ip) = host {
            self.check_address(ip, port, false).map_err(EgressError::Blocked)?;
        }
        Ok(Target { url, host, port })
    }

    pub(crate) fn check_scheme(&self, scheme: &str) -> Result<(), EgressError> {
        match scheme {
            "https" => Ok(()),
            "http" if self.require_https => {
                Err(EgressError::Blocked("Unsupported scheme: http (HTTPS required)".into()))
            }
            "http" => Ok(()),
            other => Err(EgressError::Blocked(format!("Unsupported scheme: {other}"))),
        }
    }

    /// Name rules for a (normalized, lower-case, no trailing dot) host name. `Ok(true)` when an
    /// allow-list hostname entry covers `name:port`, which exempts the name's addresses from the
    /// "globally routable" rule (never from the metadata rule).
    pub fn check_hostname(&self, name: &str, port: u16) -> Result<bool, String> {
        if is_metadata_hostname(name) {
            return Err(format!("Blocked metadata hostname: {name}"));
        }
        if self.allowed.allows_host(name, port) {
            return Ok(true);
        }
        if name == "localhost" {
            return Err("Blocked internal hostname: localhost".into());
        }
        if let Some(suffix) = INTERNAL_SUFFIXES.iter().find(|s| name.ends_with(*s)) {
            return Err(format!("Blocked internal domain suffix: {suffix}"));
        }
        Ok(false)
    }

    /// Address rules for one address a connection to `port` would reach. `host_allowlisted`: the
    /// URL's host name matched an allow-list hostname entry.
    pub fn check_address(&self, ip: IpAddr, port: u16, host_allowlisted: bool) -> Result<(), String> {
        if is_metadata_ip(ip) {
            return Err(format!("Blocked cloud metadata IP: {ip}"));
        }
        if host_allowlisted || self.allowed.allows_addr(ip, port) {
            return Ok(());
        }
        match non_global_reason(ip) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }
}

/// A URL that passed [`Policy::check_url`].
#[derive(Clone, Debug)]
pub struct Target {
    pub url: Url,
    pub host: TargetHost,
    /// Explicit port, or the scheme's default.
    pub port: u16,
}

#[derive(Clone, Debug)]
pub enum TargetHost {
    /// An IP literal, already checked.
    Ip(IpAddr),
    /// A host name whose addresses still have to be resolved and checked.
    Name { name: String, allowlisted: bool },
}

/// Lower-case, no trailing dot: `Metadata.Google.Internal.` and `metadata.google.internal` are one
/// host to the resolver, so they must be one host to the rules.
pub(crate) fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn is_metadata_hostname(name: &str) -> bool {
    METADATA_HOSTNAMES
        .iter()
        .any(|m| name == *m || (m.contains('.') && name.strip_suffix(*m).is_some_and(|rest| rest.ends_with('.'))))
}

/// A metadata address, directly or embedded in an IPv6 form that reaches it (IPv4-mapped,
/// IPv4-compatible, NAT64, 6to4, Teredo).
pub fn is_metadata_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => METADATA_V4.contains(&v4),
        IpAddr::V6(v6) => METADATA_V6.contains(&v6) || embedded_v4(v6).iter().any(|v4| METADATA_V4.contains(v4)),
    }
}

/// IPv4 addresses an IPv6 address carries and may reach through translation or tunnelling.
fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return vec![mapped];
    }
    if s[..6] == [0; 6] {
        return vec![v4(s[6], s[7])]; // IPv4-compatible ::a.b.c.d
    }
    if s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1) {
        return vec![v4(s[6], s[7])]; // NAT64, well-known and local-use
    }
    if s[0] == 0x2002 {
        return vec![v4(s[1], s[2])]; // 6to4
    }
    if s[0] == 0x2001 && s[1] == 0 {
        return vec![v4(s[2], s[3]), v4(!s[6], !s[7])]; // Teredo server, client (obfuscated)
    }
    Vec::new()
}

/// Why an address is not globally routable, as a block reason; `None` when it is.
pub fn non_global_reason(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4).map(|c| c.reason(ip, None)),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

#[derive(Clone, Copy)]
struct Class {
    kind: &'static str,
    note: Option<&'static str>,
}

impl Class {
    const fn of(kind: &'static str) -> Class {
        Class { kind, note: None }
    }
    const fn non_global(note: &'static str) -> Class {
        Class { kind: "non-global", note: Some(note) }
    }
    fn reason(self, ip: IpAddr, embedding: Option<String>) -> String {
        let mut reason = format!("Blocked {} IP: {ip}", self.kind);
        match (embedding, self.note) {
            (Some(e), Some(n)) => reason.push_str(&format!(" ({e}, {n})")),
            (Some(e), None) => reason.push_str(&format!(" ({e})")),
            (None, Some(n)) => reason.push_str(&format!(" ({n})")),
            (None, None) => {}
        }
        reason
    }
}

fn v4_class(ip: Ipv4Addr) -> Option<Class> {
    let o = ip.octets();
    let class = if ip.is_unspecified() {
        Class::of("unspecified")
    } else if o[0] == 0 {
        Class::non_global("\"this network\" 0.0.0.0/8")
    } else if ip.is_loopback() {
        Class::of("loopback")
    } else if ip.is_private() {
        Class::of("private")
    } else if ip.is_link_local() {
        Class::of("link-local")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Class::non_global("shared address space 100.64.0.0/10")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 && o[3] != 9 && o[3] != 10 {
        Class::non_global("IETF protocol assignments 192.0.0.0/24")
    } else if ip.is_documentation() {
        Class::non_global("documentation")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Class::non_global("benchmarking 198.18.0.0/15")
    } else if ip.is_broadcast() {
        Class::non_global("broadcast")
    } else if ip.is_multicast() {
        Class::non_global("multicast")
    } else if o[0] >= 240 {
        Class::non_global("reserved 240.0.0.0/4")
    } else {
        return None;
    };
    Some(class)
}

fn v6_reason(ip: Ipv6Addr) -> Option<String> {
    let s = ip.segments();
    let addr = IpAddr::V6(ip);
    // An embedded IPv4 that is not global makes the IPv6 form as bad as the IPv4 it reaches.
    let embedded_reason = |label: &str| -> Option<String> {
        embedded_v4(ip).into_iter().find_map(|v4| v4_class(v4).map(|c| c.reason(addr, Some(format!("{label} {v4}")))))
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(embedded_reason("IPv4-mapped").unwrap_or_else(|| {
            Class::non_global("IPv4-mapped addresses are refused").reason(addr, Some(format!("IPv4-mapped {v4}")))
        }));
    }
    if ip.is_unspecified() {
        return Some(Class::of("unspecified").reason(addr, None));
    }
    if ip.is_loopback() {
        return Some(Class::of("loopback").reason(addr, None));
    }
    if s[..6] == [0; 6] {
        return Some(
            embedded_reason("IPv4-compatible")
                .unwrap_or_else(|| Class::non_global("deprecated IPv4-compatible ::/96").reason(addr, None)),
        );
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some(Class::non_global("local-use NAT64 64:ff9b:1::/48").reason(addr, None));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return embedded_reason("NAT64 of");
    }
    let class = if (s[0] & 0xfe00) == 0xfc00 {
        Class { kind: "private", note: Some("unique local fc00::/7") }
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Class::of("link-local")
    } else if (s[0] & 0xffc0) == 0xfec0 {
        Class::non_global("site-local fec0::/10")
    } else if (s[0] & 0xff00) == 0xff00 {
        Class::non_global("multicast")
    } else if (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x3fff && s[1] <= 0x0fff) {
        Class::non_global("documentation")
    } else if s[0] == 0x2001 && s[1] == 0 {
        return embedded_reason("Teredo embedding");
    } else if s[0] == 0x2001 && s[1] < 0x0200 && !ietf_global_exception(s) {
        Class::non_global("IETF protocol assignments 2001::/23")
    } else if s[0] == 0x2002 {
        return embedded_reason("6to4 of");
    } else if s[0] == 0x5f00 {
        Class::non_global("SRv6 SIDs 5f00::/16")
    } else if (s[0] & 0xe000) != 0x2000 {
        Class::non_global("outside global unicast 2000::/3")
    } else {
        return None;
    };
    Some(class.reason(addr, None))
}

/// Blocks inside 2001::/23 that IANA marks globally reachable (anycast services, AMT, AS112,
/// ORCHIDv2, DRIP).
fn ietf_global_exception(s: [u16; 8]) -> bool {
    let anycast = s[1] == 1 && s[2..7] == [0; 5] && (1..=3).contains(&s[7]);
    let amt = s[1] == 3;
    let as112 = s[1] == 4 && s[2] == 0x112;
    let orchid_v2 = (s[1] & 0xfff0) == 0x20;
    let drip = (s[1] & 0xfff0) == 0x30;
    anycast || amt || as112 || orchid_v2 || drip
}

/// The operator's allow-list (`SSRF_ALLOWED_HOSTS`): host names, addresses and networks the
/// gateway may reach although they are not globally routable, optionally on one port only.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    entries: Vec<AllowEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowEntry {
    pub target: AllowTarget,
    /// `None`: every port.
    pub port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowTarget {
    /// Matches the URL's host name exactly (case-insensitive, trailing dot ignored).
    Host(String),
    /// Matches a resolved (or literal) address.
    Net(IpNet),
}

impl AllowList {
    /// Comma-separated entries: `host`, `host:port`, `ip`, `ip:port`, `[v6]`, `[v6]:port`,
    /// `cidr`. Blank entries are ignored; anything else unreadable is an error naming it.
    pub fn parse(list: &str) -> Result<AllowList, String> {
        let entries = list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| parse_entry(e).map_err(|why| format!("invalid entry `{e}`: {why}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowList { entries })
    }

    pub fn entries(&self) -> &[AllowEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn allows_host(&self, name: &str, port: u16) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(&e.target, AllowTarget::Host(h) if h == name) && e.port.is_none_or(|p| p == port))
    }

    pub fn allows_addr(&self, ip: IpAddr, port: u16) -> bool {
        self.entries.iter().any(|e| {
            matches!(&e.target, AllowTarget::Net(net) if net.contains(&ip)) && e.port.is_none_or(|p| p == port)
        })
    }
}

fn parse_entry(entry: &str) -> Result<AllowEntry, String> {
    if entry.contains('/') {
        let net = IpNet::from_str(entry).map_err(|_| "not a CIDR network".to_string())?;
        return Ok(AllowEntry { target: AllowTarget::Net(net.trunc()), port: None });
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(AllowEntry { target: AllowTarget::Net(IpNet::from(ip)), port: None });
    }
    let (host, port) = split_host_port(entry)?;
    // Normalize the host exactly as URL hosts are normalized, so `127.1` and `EXAMPLE.com.` match
    // what the URL parser produces.
    let target = match Host::parse(host).map_err(|e| e.to_string())? {
        Host::Ipv4(ip) => AllowTarget::Net(IpNet::from(IpAddr::V4(ip))),
        Host::Ipv6(ip) => AllowTarget::Net(IpNet::from(IpAddr::V6(ip))),
        Host::Domain(name) => match name.parse::<IpAddr>() {
            Ok(ip) => AllowTarget::Net(IpNet::from(ip)),
            Err(_) => AllowTarget::Host(normalize_name(&name)),
        },
    };
    Ok(AllowEntry { target, port })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` → (host as the URL parser expects it, port).
fn split_host_port(entry: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if entry.starts_with('[') {
        let close = entry.find(']').ok_or("unclosed `[`")?;
        let rest = &entry[close + 1..];
        let port = match rest {
            "" => None,
            _ => Some(rest.strip_prefix(':').ok_or("expected `:port` after `]`")?),
        };
        (&entry[..=close], port)
    } else {
        match entry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("missing host".into());
    }
    let port = port
        .map(|p| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("bad port `{p}`")),
            Ok(p) => Ok(p),
        })
        .transpose()?;
    Ok((host, port))
}

/// The URL to vet at save time for a URL template: the template itself when it has no markup,
/// or, when scheme and authority are literal, the template with its placeholders replaced by a
/// neutral token. `None` when a placeholder sits in the scheme or the authority (the host is only
/// known once the template is rendered). Errors for what is already knowable: a literal non-http
/// scheme and literal credentials.
pub(crate) fn url_to_vet_at_save(policy: &Policy, template: &str) -> Result<Option<String>, EgressError> {
    let Some(marker) = first_marker(template) else {
        return Ok(Some(template.to_string()));
    };
    let head = &template[..marker];
    let Some(colon) = head.find(':') else {
        return Ok(None); // the scheme itself is templated
    };
    let scheme = head[..colon].trim().to_ascii_lowercase();
    if scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        policy.check_scheme(&scheme)?;
    } else {
        return Ok(None); // the colon is not a scheme delimiter; the scheme comes from the template
    }
    let after_scheme = &head[colon + 1..];
    let authority_start = after_scheme.len() - after_scheme.trim_start_matches(['/', '\\']).len();
    let authority_and_rest = &after_scheme[authority_start..];
    match authority_and_rest.find(['/', '\\', '?', '#']) {
        Some(_) => Ok(Some(render_neutral(template))),
        None => {
            // The placeholder is inside the authority, so the host is unknown; literal
            // credentials around it (`https://user:{{pw}}@host/`) are already visible.
            if let Ok(url) = Url::parse(&render_neutral(template))
                && (!url.username().is_empty() || url.password().is_some())
            {
                return Err(EgressError::Blocked("Credentials in URLs are not allowed".into()));
            }
            Ok(None)
        }
    }
}

fn first_marker(template: &str) -> Option<usize> {
    [template.find("{{"), template.find("{%")].into_iter().flatten().min()
}

/// The template with every placeholder replaced by a harmless path-safe token, for vetting the
/// literal scheme and authority through the same URL parser as send time.
fn render_neutral(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = first_marker(rest) {
        out.push_str(&rest[..start]);
        let close = if rest[start..].starts_with("{{") { "}}" } else { "%}" };
        out.push('x');
        match rest[start + 2..].find(close) {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}
