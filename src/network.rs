//! Optional origin restriction: only callers inside `ownid.allowed_networks` reach the OwnID
//! operations. `X-Forwarded-For` is honoured only when the connection comes from one of
//! `server.trusted_proxies`; otherwise any caller could claim any address.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::api::ApiError;

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

impl NetworkPolicy {
    /// The caller's address: the peer, or, when the peer is a trusted proxy, the right-most
    /// `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !contains(&self.trusted_proxies, peer) {
            return peer;
        }
        let Some(forwarded_for) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for hop in forwarded_for.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !contains(&self.trusted_proxies, ip) {
                        break;
                    }
                }
                // An entry we cannot read ends the walk: trust nothing to its left.
                Err(_) => break,
            }
        }
        client
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allowed.is_empty() || contains(&self.allowed, ip)
    }
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
            let peer = req.remote_addr().as_socket_addr().map(|addr| addr.ip());
            let forwarded_for = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|value| value.to_str().ok());
            let allowed = peer
                .map(|peer| {
                    self.policy
                        .allows(self.policy.client_ip(peer, forwarded_for))
                })
                .unwrap_or(false);
            if !allowed {
                return Ok(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "the caller's address is not in the allowed networks",
                )
                .into_response());
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
        let client = policy.client_ip(ip("198.51.100.7"), Some("203.0.113.5"));
        assert_eq!(client, ip("198.51.100.7"));
        assert!(!policy.allows(client));
    }

    #[test]
    fn forwarded_for_is_walked_from_the_right_through_trusted_proxies() {
        let policy = NetworkPolicy {
            allowed: nets(&["203.0.113.0/24"]),
            trusted_proxies: nets(&["10.0.0.0/8"]),
        };
        // A spoofed left-most entry does not help: the right-most untrusted hop is the client.
        let client = policy.client_ip(ip("10.0.0.2"), Some("203.0.113.9, 198.51.100.7, 10.0.0.3"));
        assert_eq!(client, ip("198.51.100.7"));
        let client = policy.client_ip(ip("10.0.0.2"), Some("203.0.113.9"));
        assert_eq!(client, ip("203.0.113.9"));
        assert!(policy.allows(client));
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
