//! The server-side request forgery guard: which hosts and addresses a URL we did not write may reach (a
//! job's image URL, the picture URL a gateway answered).
//!
//! Whoever wrote the URL could otherwise point the worker at the cloud metadata service, the broker's
//! management API or anything else only reachable from inside the network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused, or `None` when it is a public unicast address.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if a == 10 || (a == 172 && (16..=31).contains(&b)) || (a == 192 && b == 168) {
        Some("a private address")
    } else if a == 100 && (64..=127).contains(&b) {
        Some("a shared (CGNAT) address")
    } else if a == 169 && b == 254 {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_broadcast() || a >= 240 {
        Some("a reserved address")
    } else if (a == 192 && b == 0 && c == 0) || (a == 198 && (18..=19).contains(&b)) {
        Some("a special-purpose address")
    } else if (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
    {
        Some("a documentation address")
    } else if a == 192 && b == 88 && c == 99 {
        Some("a 6to4 relay anycast address")
    } else {
        None
    }
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    // Addresses that carry an IPv4 address reach that IPv4 host: judge the embedded one.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_reason(v4);
    }
    if seg[..6] == [0, 0, 0, 0, 0, 0] {
        // IPv4-compatible (deprecated) form ::a.b.c.d
        return v4_reason(embedded_v4(seg[6], seg[7]));
    }
    if seg[..6] == [0, 0, 0, 0, 0xffff, 0] {
        // IPv4-translated (SIIT, RFC 2765) form ::ffff:0:a.b.c.d
        return v4_reason(embedded_v4(seg[6], seg[7]));
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 well-known prefix
        return v4_reason(embedded_v4(seg[6], seg[7]));
    }
    if seg[..3] == [0x64, 0xff9b, 1] {
        // Local-use NAT64 (RFC 8215, 64:ff9b:1::/48): translated by a NAT64 of the local network, to any
        // IPv4 address it chooses, wherever the IPv4 bits sit.
        return Some("a local-use NAT64 address");
    }
    if seg[0] == 0x2001 && seg[1] == 0 {
        // Teredo (2001::/32) carries a client IPv4 address (obfuscated) and a server one: a tunnel to
        // whatever they name.
        return Some("a Teredo tunnel address");
    }
    if seg[0] == 0x2002 {
        // 6to4 carries the IPv4 address in the second and third segments.
        return v4_reason(embedded_v4(seg[1], seg[2]));
    }
    if seg[0] & 0xff00 == 0xff00 {
        Some("a multicast address")
    } else if seg[0] & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if seg[0] & 0xffc0 == 0xfec0 {
        Some("a site-local address")
    } else if seg[0] & 0xfe00 == 0xfc00 {
        Some("a unique-local address")
    } else if (seg[0] == 0x2001 && seg[1] == 0x0db8) || seg[0] & 0xfff0 == 0x3ff0 {
        Some("a documentation address")
    } else if seg[..4] == [0x100, 0, 0, 0] {
        Some("a discard-only address")
    } else if seg[0] == 0x2001 && (seg[1] & 0xfff0 == 0x0010 || seg[1] & 0xfff0 == 0x0020) {
        // ORCHID (2001:10::/28) and ORCHIDv2 (2001:20::/28): identifiers, not routable.
        Some("a special-purpose address")
    } else if seg[0] == 0x2001 && seg[1] == 0x0002 && seg[2] == 0 {
        Some("a benchmarking address")
    } else {
        None
    }
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// Whether `host` (as written in the URL, IPv6 in brackets) and `port` are on the allow-list,
/// which takes `host` or `host:port` entries.
pub fn is_allowed(allow_hosts: &[String], host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let with_port = format!("{host}:{port}");
    allow_hosts.iter().any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        entry == host || entry == with_port || (strip_brackets(&entry) == strip_brackets(&host))
    })
}

/// Whether `host` (as written in the URL) and `port` match one of `patterns`: `*` (any host), `*.domain`
/// (any name under `domain`, not `domain` itself), or an exact `host` / `host:port` entry as
/// [`is_allowed`] takes them.
pub fn host_matches(patterns: &[String], host: &str, port: u16) -> bool {
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    patterns.iter().any(|pattern| {
        let pattern = pattern.trim().to_ascii_lowercase();
        if pattern == "*" {
            return true;
        }
        match pattern.strip_prefix("*.") {
            Some(domain) => name
                .strip_suffix(domain)
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            None => is_allowed(std::slice::from_ref(&pattern), host, port),
        }
    })
}

fn strip_brackets(s: &str) -> &str {
    s.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        forbidden_reason(s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))).is_some()
    }

    #[test]
    fn classifies_addresses() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "224.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:c0a8:0101::1",
        ] {
            assert!(refused(bad), "{bad} should be refused");
        }
    }

    #[test]
    fn addresses_that_tunnel_translate_or_discard_are_refused() {
        for (bad, says) in [
            // IPv4-translated ::ffff:0:0/96 carrying 127.0.0.1 and 10.0.0.1
            ("::ffff:0:7f00:1", "loopback"),
            ("::ffff:0:a00:1", "private"),
            // local-use NAT64 64:ff9b:1::/48, whatever it embeds
            ("64:ff9b:1::7f00:1", "NAT64"),
            ("64:ff9b:1::808:808", "NAT64"),
            ("64:ff9b:1:ffff::1", "NAT64"),
            // discard-only 100::/64
            ("100::", "discard"),
            ("100::1", "discard"),
            // Teredo 2001::/32
            ("2001::1", "Teredo"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("2001:10::1", "special-purpose"),
            ("2001:20::1", "special-purpose"),
            ("2001:2::1", "benchmarking"),
            ("64:ff9b::7f00:1", "loopback"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("192.88.99.1", "6to4"),
        ] {
            let ip: IpAddr = bad.parse().expect(bad);
            let reason = forbidden_reason(ip).unwrap_or_else(|| panic!("{bad} should be refused"));
            assert!(reason.contains(says), "{bad}: {reason}");
        }
        for good in [
            "100:0:0:1::1",
            "2001:4860:4860::8888",
            "2001:200::1",
            "64:ff9b::808:808",
            "64:ff9b:2::1",
            "::ffff:0:808:808",
        ] {
            assert!(!refused(good), "{good} should be allowed");
        }
        for good in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!refused(good), "{good} should be allowed");
        }
    }

    #[test]
    fn allow_list_matches_host_or_host_port() {
        let list = vec![
            "mock:8080".to_string(),
            "127.0.0.1".to_string(),
            "[::1]:9".to_string(),
        ];
        assert!(is_allowed(&list, "mock", 8080));
        assert!(!is_allowed(&list, "mock", 80));
        assert!(is_allowed(&list, "127.0.0.1", 1234));
        assert!(is_allowed(&list, "[::1]", 9));
        assert!(!is_allowed(&list, "localhost", 80));
    }

    #[test]
    fn host_patterns_match_subdomains_exact_hosts_and_ports() {
        let list = vec![
            "*.whatsapp.net".to_string(),
            "mock:3000".to_string(),
            "cdn.example".to_string(),
        ];
        assert!(host_matches(&list, "pps.whatsapp.net", 443));
        assert!(host_matches(&list, "a.b.WhatsApp.net.", 443));
        assert!(!host_matches(&list, "whatsapp.net", 443));
        assert!(!host_matches(&list, "evilwhatsapp.net", 443));
        assert!(!host_matches(&list, "whatsapp.net.evil.example", 443));
        assert!(host_matches(&list, "mock", 3000));
        assert!(!host_matches(&list, "mock", 3001));
        assert!(host_matches(&list, "cdn.example", 8443));
        assert!(!host_matches(&list, "127.0.0.1", 3000));
        assert!(host_matches(&["*".to_string()], "[::1]", 1));
        assert!(!host_matches(&[], "pps.whatsapp.net", 443));
    }
}
