//! Whether an indicator is worth sending to providers (enrichment.md §6): private IPs, reserved
//! domains and URLs pointing at them are skipped with a reason.
//!
//! "Globally routable" is Python's `ipaddress.is_global` as the specification lists it (Rust's
//! `is_global` is unstable, so the tables are written out): documentation ranges are *not*
//! global, IPv4 multicast *is*, and the whole IPv4-mapped range `::ffff:0:0/96` is not.
//!
//! URLs are parsed with the WHATWG parser of the `url` crate rather than Python's lenient
//! `urlparse`, so a URL that HTTP clients would not accept (e.g. a space in the host) is
//! `invalid URL format`, and numeric hosts are read the way clients read them (`http://10.1/` is
//! 10.0.0.1, hence not routable).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Exact domains that are never enriched.
const RESERVED_DOMAINS: &[&str] = &["localhost"];

/// Suffixes of domains that are never enriched (the bare suffix without its dot too).
const NON_ROUTABLE_SUFFIXES: &[&str] = &[
    ".internal",
    ".local",
    ".localhost",
    ".home",
    ".lan",
    ".corp",
    ".test",
    ".example",
    ".invalid",
    ".arpa",
];

/// IPv4 networks that are not globally routable.
const IPV4_NOT_GLOBAL: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
    (Ipv4Addr::new(240, 0, 0, 0), 4),
    (Ipv4Addr::new(255, 255, 255, 255), 32),
];

/// Globally routable addresses inside [`IPV4_NOT_GLOBAL`] (IANA: PCP and TURN anycast).
const IPV4_GLOBAL_EXCEPTIONS: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(192, 0, 0, 9), 32),
    (Ipv4Addr::new(192, 0, 0, 10), 32),
];

/// IPv6 networks that are not globally routable.
const IPV6_NOT_GLOBAL: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 128),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1), 128),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
];

/// Globally routable networks inside `2001::/23` (IANA special-purpose registry, as in Python).
const IPV6_GLOBAL_EXCEPTIONS: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 1), 128),
    (Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 2), 128),
    (Ipv6Addr::new(0x2001, 3, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x2001, 4, 0x112, 0, 0, 0, 0, 0), 48),
    (Ipv6Addr::new(0x2001, 0x20, 0, 0, 0, 0, 0, 0), 28),
    (Ipv6Addr::new(0x2001, 0x30, 0, 0, 0, 0, 0, 0), 28),
];

/// `Ok` when the indicator may be enriched, else the skip reason (the text after
/// `Enrichment skipped: `).
pub fn check(indicator_type: &str, value: &str) -> Result<(), String> {
    match indicator_type {
        "ip" => check_ip(value),
        "domain" => check_domain(value),
        "url" => check_url(value),
        // Hashes, emails and accounts are always enrichable.
        _ => Ok(()),
    }
}

/// Python's `ipaddress.ip_address(text).is_global` over the specification's tables.
pub fn is_global(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(address) => {
            let bits = u32::from(address);
            let within = |&(network, prefix): &(Ipv4Addr, u8)| {
                prefix_match(u128::from(bits), u128::from(u32::from(network)), prefix, 32)
            };
            !IPV4_NOT_GLOBAL.iter().any(within) || IPV4_GLOBAL_EXCEPTIONS.iter().any(within)
        }
        IpAddr::V6(address) => {
            let bits = u128::from(address);
            let within = |&(network, prefix): &(Ipv6Addr, u8)| {
                prefix_match(bits, u128::from(network), prefix, 128)
            };
            !IPV6_NOT_GLOBAL.iter().any(within) || IPV6_GLOBAL_EXCEPTIONS.iter().any(within)
        }
    }
}

/// Whether the first `prefix` of `width` bits of `address` and `network` agree.
fn prefix_match(address: u128, network: u128, prefix: u8, width: u32) -> bool {
    let host_bits = width - u32::from(prefix);
    address >> host_bits == network >> host_bits
}

/// Parses an address like Python's `ip_address`: dotted-quad IPv4 (no leading zeros) or IPv6,
/// which may carry a `%scope` suffix.
fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address);
    }
    let (address, scope) = text.split_once('%')?;
    if scope.is_empty() || scope.contains('%') {
        return None;
    }
    address.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

fn check_ip(value: &str) -> Result<(), String> {
    let address = parse_ip(value).ok_or_else(|| "invalid IP address format".to_owned())?;
    if is_global(address) {
        Ok(())
    } else {
        Err(format!("non-routable IP address ({value})"))
    }
}

fn check_domain(value: &str) -> Result<(), String> {
    let lower = value.to_lowercase();
    let domain = lower.trim_end_matches('.');
    if RESERVED_DOMAINS.contains(&domain) {
        return Err(format!("reserved domain ({value})"));
    }
    let non_routable = NON_ROUTABLE_SUFFIXES
        .iter()
        .any(|suffix| domain == &suffix[1..] || domain.ends_with(suffix));
    if non_routable {
        return Err(format!("non-routable domain suffix ({value})"));
    }
    Ok(())
}

fn check_url(value: &str) -> Result<(), String> {
    let url = match Url::parse(value) {
        Ok(url) => url,
        // No scheme (`example.com/x`) or an empty host (`http://`): Python found no hostname.
        Err(url::ParseError::RelativeUrlWithoutBase | url::ParseError::EmptyHost) => {
            return Err("URL has no hostname".to_owned());
        }
        Err(_) => return Err("invalid URL format".to_owned()),
    };
    match url.host() {
        None => Err("URL has no hostname".to_owned()),
        Some(Host::Domain("")) => Err("URL has no hostname".to_owned()),
        Some(Host::Ipv4(address)) => check_ip(&address.to_string()),
        Some(Host::Ipv6(address)) => check_ip(&address.to_string()),
        // Hosts of non-special schemes are opaque: an address there is still an address.
        Some(Host::Domain(host)) => match host.parse::<IpAddr>() {
            Ok(_) => check_ip(host),
            Err(_) => check_domain(host),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> bool {
        is_global(text.parse().unwrap())
    }

    #[test]
    fn ipv4_not_global_table() {
        for address in [
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.0",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.0",
            "192.0.0.8",
            "192.0.0.11",
            "192.0.0.170",
            "192.0.0.255",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "240.0.0.1",
            "255.255.255.254",
            "255.255.255.255",
        ] {
            assert!(!ip(address), "{address} should not be global");
        }
    }

    #[test]
    fn ipv4_global() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.0.9",
            "192.0.0.10",
            "192.0.1.1",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "198.51.101.0",
            "203.0.112.255",
            "203.0.114.0",
            "224.0.0.1",
            "239.255.255.255",
        ] {
            assert!(ip(address), "{address} should be global");
        }
    }

    #[test]
    fn ipv6_not_global_table() {
        for address in [
            "::",
            "::1",
            "::ffff:8.8.8.8",
            "::ffff:10.0.0.1",
            "64:ff9b:1::1",
            "64:ff9b:1:ffff::",
            "100::1",
            "100::ffff:ffff:ffff:ffff",
            "2001::1",
            "2001:1::3",
            "2001:2::1",
            "2001:1ff:ffff::",
            "2001:db8::1",
            "2001:db8:ffff::",
            "2002::1",
            "2002:ffff::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf:ffff::",
        ] {
            assert!(!ip(address), "{address} should not be global");
        }
    }

    #[test]
    fn ipv6_global_including_iana_exceptions() {
        for address in [
            "2001:1::1",
            "2001:1::2",
            "2001:3::1",
            "2001:3:ffff::",
            "2001:4:112::1",
            "2001:20::1",
            "2001:2f:ffff::",
            "2001:30::1",
            "2001:3f::1",
            "2001:200::1",
            "2001:4860:4860::8888",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
            "64:ff9b:2::",
            "100:0:0:1::",
            "::2",
            "::8.8.8.8",
            "2003::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(ip(address), "{address} should be global");
        }
    }

    #[test]
    fn ip_indicators() {
        assert_eq!(check("ip", "8.8.8.8"), Ok(()));
        assert_eq!(check("ip", "2606:4700::1111"), Ok(()));
        assert_eq!(
            check("ip", "10.0.0.1"),
            Err("non-routable IP address (10.0.0.1)".into())
        );
        assert_eq!(
            check("ip", "fe80::1%eth0"),
            Err("non-routable IP address (fe80::1%eth0)".into())
        );
        assert_eq!(check("ip", "2606:4700::1111%1"), Ok(()));
        for bad in [
            "",
            "not-an-ip",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            " 8.8.8.8",
            "8.8.8.8 ",
            "1.2.3.4%0",
            "fe80::1%",
            "fe80::1%a%b",
            "1.2.3.4/32",
            "[::1]",
        ] {
            assert_eq!(
                check("ip", bad),
                Err("invalid IP address format".into()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn domain_indicators() {
        assert_eq!(check("domain", "example.com"), Ok(()));
        assert_eq!(check("domain", "evil.example.net"), Ok(()));
        assert_eq!(check("domain", "localhost.com"), Ok(()));
        assert_eq!(check("domain", "mylocal"), Ok(()));
        assert_eq!(check("domain", "local.example.com"), Ok(()));
        assert_eq!(check("domain", "bücher.de"), Ok(()));
        assert_eq!(
            check("domain", "localhost"),
            Err("reserved domain (localhost)".into())
        );
        assert_eq!(
            check("domain", "LocalHost.."),
            Err("reserved domain (LocalHost..)".into())
        );
        for (domain, expected) in [
            ("db.internal", "non-routable domain suffix (db.internal)"),
            (
                "printer.LOCAL",
                "non-routable domain suffix (printer.LOCAL)",
            ),
            (
                "app.localhost",
                "non-routable domain suffix (app.localhost)",
            ),
            ("nas.home.", "non-routable domain suffix (nas.home.)"),
            ("x.lan", "non-routable domain suffix (x.lan)"),
            ("dc01.corp", "non-routable domain suffix (dc01.corp)"),
            ("a.test", "non-routable domain suffix (a.test)"),
            ("www.example", "non-routable domain suffix (www.example)"),
            ("foo.invalid", "non-routable domain suffix (foo.invalid)"),
            (
                "1.0.0.127.in-addr.arpa",
                "non-routable domain suffix (1.0.0.127.in-addr.arpa)",
            ),
            ("corp", "non-routable domain suffix (corp)"),
            ("example", "non-routable domain suffix (example)"),
            ("arpa.", "non-routable domain suffix (arpa.)"),
        ] {
            assert_eq!(check("domain", domain), Err(expected.into()), "{domain}");
        }
    }

    #[test]
    fn url_indicators() {
        assert_eq!(check("url", "https://evil.example.net/login?x=1"), Ok(()));
        assert_eq!(check("url", "http://8.8.8.8:8080/a"), Ok(()));
        assert_eq!(check("url", "https://[2606:4700::1111]/"), Ok(()));
        assert_eq!(check("url", "ftp://files.example.com/x"), Ok(()));
        assert_eq!(
            check("url", "http://192.168.1.10/admin"),
            Err("non-routable IP address (192.168.1.10)".into())
        );
        assert_eq!(
            check("url", "http://[::1]:8080/"),
            Err("non-routable IP address (::1)".into())
        );
        assert_eq!(
            check("url", "http://10.1/"),
            Err("non-routable IP address (10.0.0.1)".into())
        );
        assert_eq!(
            check("url", "custom://10.0.0.1/x"),
            Err("non-routable IP address (10.0.0.1)".into())
        );
        assert_eq!(
            check("url", "HTTP://Intranet.Corp/x"),
            Err("non-routable domain suffix (intranet.corp)".into())
        );
        assert_eq!(
            check("url", "http://localhost:3000/"),
            Err("reserved domain (localhost)".into())
        );
        assert_eq!(
            check("url", "https://user:pw@db.internal/"),
            Err("non-routable domain suffix (db.internal)".into())
        );
        for no_host in [
            "evil.example.net/path",
            "/relative",
            "",
            "mailto:a@example.com",
            "http://",
            "file:///etc/passwd",
            "custom:///x",
        ] {
            assert_eq!(
                check("url", no_host),
                Err("URL has no hostname".into()),
                "{no_host:?}"
            );
        }
        for invalid in [
            "http://[::1/",
            "http://exa mple.com/",
            "http://example.com:99999/",
        ] {
            assert_eq!(
                check("url", invalid),
                Err("invalid URL format".into()),
                "{invalid:?}"
            );
        }
    }

    #[test]
    fn other_types_are_always_enrichable() {
        for itype in ["hash_md5", "hash_sha1", "hash_sha256", "email", "account"] {
            assert_eq!(check(itype, "anything at all"), Ok(()));
            assert_eq!(check(itype, ""), Ok(()));
        }
    }
}
