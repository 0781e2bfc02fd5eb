//! Optional origin restriction: only callers inside `ownid.allowed_networks` reach the OwnID
//! operations. `X-Forwarded-For` is honoured only when the connection comes from one of
//! `server.trusted_proxies`; otherwise any caller could claim any address.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::error::ApiError;

#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    pub allowed: Vec<IpNet>,
    pub trusted_proxies: Vec<IpNet>,
}

fn contains(networks: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    networks.iter().any(|net| net.contains(&ip))
}

/// `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) is matched as `10.0.0.1`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// A forwarding header that cannot be read: the request is refused rather than attributed to
/// the proxy (which may well be inside the allowed networks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

/// One `X-Forwarded-For` entry: an address, optionally with a port as some proxies write it
/// (`203.0.113.7:5678`, `[2001:db8::1]:80`), or a bracketed IPv6 address. Anything else
/// (empty, `unknown`, a host name, garbage) is unreadable.
fn parse_entry(entry: &str) -> Result<IpAddr, Unreadable> {
    let entry = entry.trim_matches([' ', '\t']);
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(ip);
    }
    if let Ok(addr) = entry.parse::<std::net::SocketAddr>() {
        return Ok(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
        .ok_or(Unreadable)
}

/// Every `X-Forwarded-For` line, in order, as one list of addresses (RFC 9110 §5.3: several lines
/// of a list header are one comma-separated list). One unreadable line or entry makes the whole
/// list unreadable.
pub fn forwarded_for_list<'a>(
    lines: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<IpAddr>, Unreadable> {
    let mut hops = Vec::new();
    for line in lines {
        let line = std::str::from_utf8(line).map_err(|_| Unreadable)?;
        for entry in line.split(',') {
            hops.push(parse_entry(entry)?);
        }
    }
    Ok(hops)
}

/// Every RFC 7239 `Forwarded` line, in order, as one list of the elements' `for=` addresses.
/// Each element must name its `for` as an address (optionally quoted, with a port, IPv6 in
/// brackets); an element without one, an obfuscated identifier (`_hidden`), `unknown` or
/// anything else unreadable makes the whole list unreadable.
pub fn forwarded_list<'a>(
    lines: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<IpAddr>, Unreadable> {
    let mut hops = Vec::new();
    for line in lines {
        let line = std::str::from_utf8(line).map_err(|_| Unreadable)?;
        for element in line.split(',') {
            let mut client = None;
            for pair in element.split(';') {
                let (name, value) = pair.split_once('=').ok_or(Unreadable)?;
                if !name.trim_matches([' ', '\t']).eq_ignore_ascii_case("for") {
                    continue;
                }
                if client.is_some() {
                    return Err(Unreadable);
                }
                let value = value.trim_matches([' ', '\t']);
                let value = match value.strip_prefix('"') {
                    Some(quoted) => quoted.strip_suffix('"').ok_or(Unreadable)?,
                    None => value,
                };
                client = Some(parse_entry(value)?);
            }
            hops.push(client.ok_or(Unreadable)?);
        }
    }
    Ok(hops)
}

impl NetworkPolicy {
    /// The caller's address: the peer, or, when the peer is a trusted proxy, the right-most
    /// forwarded address that is not itself a trusted proxy (the left-most one when all are).
    /// `forwarded` is every `X-Forwarded-For` line in order; it is ignored (not even read) from a
    /// peer that is not a trusted proxy, and refused when a trusted proxy's is unreadable.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<IpAddr, Unreadable> {
        if !contains(&self.trusted_proxies, peer) {
            return Ok(peer);
        }
        Ok(self.client_of(peer, &forwarded_for_list(forwarded)?))
    }

    /// The right-most hop that is not a trusted proxy, else the left-most, else the peer.
    fn client_of(&self, peer: IpAddr, hops: &[IpAddr]) -> IpAddr {
        hops.iter()
            .rev()
            .find(|hop| !contains(&self.trusted_proxies, **hop))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }

    /// The caller's address of a request, or `None` when it cannot be known (no socket peer, an
    /// unreadable forwarding header from a trusted proxy). From a trusted proxy either
    /// `X-Forwarded-For` or RFC 7239 `Forwarded` is read, with the same rules; both at once are
    /// refused (the proxy writes one, so the other came from the client).
    pub fn caller(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.remote_addr().as_socket_addr()?.ip();
        if !contains(&self.trusted_proxies, peer) {
            return Some(peer);
        }
        let lines = |name: &'static str| {
            req.headers()
                .get_all(name)
                .iter()
                .map(|value| value.as_bytes())
        };
        let has = |name: &'static str| req.headers().contains_key(name);
        let hops = match (has("x-forwarded-for"), has("forwarded")) {
            (true, true) => return None,
            (_, true) => forwarded_list(lines("forwarded")),
            _ => forwarded_for_list(lines("x-forwarded-for")),
        };
        hops.ok().map(|hops| self.client_of(peer, &hops))
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allowed.is_empty() || contains(&self.allowed, ip)
    }

    /// Whether `/metrics` may answer this request (`allowed` is `metrics.allowed_networks`).
    /// Stricter than the operations' check: a request that carries a forwarding header but does
    /// not come from a trusted proxy was forwarded by a proxy this server knows nothing about (a
    /// reverse proxy on the same host connects from loopback), and is refused.
    pub fn allows_metrics(&self, req: &Request) -> bool {
        if self.allowed.is_empty() {
            return true;
        }
        let Some(peer) = req.remote_addr().as_socket_addr().map(|addr| addr.ip()) else {
            return false;
        };
        let headers = req.headers();
        let forwarded =
            headers.contains_key("x-forwarded-for") || headers.contains_key("forwarded");
        if forwarded && !contains(&self.trusted_proxies, peer) {
            return false;
        }
        self.caller(req).is_some_and(|ip| self.allows(ip))
    }
}

/// The refusal for a caller outside the allowed networks.
pub fn forbidden() -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "the caller's address is not in the allowed networks",
    )
    .into_response()
}

/// The middleware, applied outside the signature check: a caller from the wrong network is
/// refused before its body is read.
#[derive(Clone)]
pub struct OriginCheck(pub Arc<NetworkPolicy>);

impl<E: Endpoint> Middleware<E> for OriginCheck {
    type Output = OriginEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        OriginEndpoint {
            inner,
            policy: self.0.clone(),
        }
    }
}

pub struct OriginEndpoint<E> {
    inner: E,
    policy: Arc<NetworkPolicy>,
}

impl<E: Endpoint> Endpoint for OriginEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if !self.policy.allowed.is_empty() {
            let allowed = self
                .policy
                .caller(&req)
                .is_some_and(|ip| self.policy.allows(ip));
            if !allowed {
                return Ok(forbidden());
            }
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|net| net.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let policy = NetworkPolicy {
            allowed: nets(&["203.0.113.0/24"]),
            trusted_proxies: nets(&["10.0.0.0/8"]),
        };
        let client = policy
            .client_ip(ip("198.51.100.7"), [&b"203.0.113.5"[..]])
            .unwrap();
        assert_eq!(client, ip("198.51.100.7"));
        assert!(!policy.allows(client));
        // Not even read from an untrusted peer.
        let client = policy.client_ip(ip("198.51.100.7"), [&b"garbage"[..]]);
        assert_eq!(client, Ok(ip("198.51.100.7")));
    }

    #[test]
    fn forwarded_for_is_walked_from_the_right_through_trusted_proxies() {
        let policy = NetworkPolicy {
            allowed: nets(&["203.0.113.0/24"]),
            trusted_proxies: nets(&["10.0.0.0/8"]),
        };
        // A spoofed left-most entry does not help: the right-most untrusted hop is the client.
        let client = policy
            .client_ip(
                ip("10.0.0.2"),
                [&b"203.0.113.9, 198.51.100.7, 10.0.0.3"[..]],
            )
            .unwrap();
        assert_eq!(client, ip("198.51.100.7"));
        let client = policy
            .client_ip(ip("10.0.0.2"), [&b"203.0.113.9"[..]])
            .unwrap();
        assert_eq!(client, ip("203.0.113.9"));
        assert!(policy.allows(client));
        // Several lines are one list; when every hop is a trusted proxy the left-most is the
        // client; without a header the peer is.
        let lines: [&[u8]; 2] = [b"10.0.0.5", b"10.0.0.6, 10.0.0.7"];
        assert_eq!(policy.client_ip(ip("10.0.0.2"), lines), Ok(ip("10.0.0.5")));
        assert_eq!(
            policy.client_ip(ip("10.0.0.2"), std::iter::empty()),
            Ok(ip("10.0.0.2"))
        );
    }

    #[test]
    fn forwarded_for_entries_may_carry_ports_and_garbage_is_unreadable() {
        for (entry, expected) in [
            ("203.0.113.7", "203.0.113.7"),
            (" 203.0.113.7:5678\t", "203.0.113.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:80", "2001:db8::1"),
        ] {
            assert_eq!(parse_entry(entry), Ok(ip(expected)), "{entry}");
        }
        for entry in [
            "",
            " ",
            "unknown",
            "_hidden",
            "example.com",
            "[203.0.113.7]",
            "203.0.113.7:",
            "203.0.113.7:99999",
            "2001:db8::1:80:x",
            "[2001:db8::1]:x",
        ] {
            assert_eq!(parse_entry(entry), Err(Unreadable), "{entry:?}");
        }
    }

    #[test]
    fn forwarded_elements_name_their_for_address() {
        let list = |line: &str| forwarded_list([line.as_bytes()]);
        assert_eq!(
            list("for=192.0.2.60;proto=http;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\""),
            Ok(vec![ip("192.0.2.60"), ip("2001:db8:cafe::17")])
        );
        assert_eq!(list("for=\"192.0.2.60:8080\""), Ok(vec![ip("192.0.2.60")]));
        for line in [
            "for=unknown",
            "for=_gazonk",
            "proto=https",
            "for=192.0.2.60;for=192.0.2.61",
            "for=\"192.0.2.60",
            "for=192.0.2.60, ",
            "for",
        ] {
            assert_eq!(list(line), Err(Unreadable), "{line}");
        }
    }

    #[test]
    fn an_empty_allow_list_allows_everyone_and_mapped_addresses_match() {
        assert!(NetworkPolicy::default().allows(ip("198.51.100.7")));
        let policy = NetworkPolicy {
            allowed: nets(&["127.0.0.1/32"]),
            trusted_proxies: Vec::new(),
        };
        assert!(policy.allows(ip("::ffff:127.0.0.1")));
    }
}
