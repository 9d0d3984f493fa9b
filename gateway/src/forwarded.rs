//! `X-Forwarded-For` and the client address, as the contract defines them: a peer outside
//! `server.trusted_proxies` has its `X-Forwarded-For` replaced by its own address; a trusted
//! peer's is kept and the peer appended. The client is the right-most untrusted address.

use std::net::IpAddr;

use ipnet::IpNet;

pub struct Forwarded {
    pub client: IpAddr,
    /// The `X-Forwarded-For` value to send upstream.
    pub header: String,
    /// The peer is one of our proxies: its `X-Forwarded-*` headers are believed.
    pub trusted_peer: bool,
}

pub fn forwarded(peer: IpAddr, xff: Option<&str>, trusted: &[IpNet]) -> Forwarded {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer_text = peer.to_string();
    if !is_trusted(&peer) {
        return Forwarded {
            client: peer,
            header: peer_text,
            trusted_peer: false,
        };
    }
    let Some(xff) = xff.filter(|v| !v.trim().is_empty()) else {
        return Forwarded {
            client: peer,
            header: peer_text,
            trusted_peer: true,
        };
    };
    // Walk from the right: skip our trusted proxies; the first other address is the client.
    // An entry that is not an address stops the walk: nothing left of it can be believed.
    let mut client = peer;
    for entry in xff.rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Forwarded {
        client,
        header: format!("{xff}, {peer_text}"),
        trusted_peer: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peer_replaces_the_header() {
        let f = forwarded(
            "203.0.113.7".parse().unwrap(),
            Some("1.2.3.4"),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(f.client.to_string(), "203.0.113.7");
        assert_eq!(f.header, "203.0.113.7");
    }

    #[test]
    fn trusted_peer_appends_and_the_client_is_the_rightmost_untrusted() {
        let trusted = nets(&["10.0.0.0/8"]);
        let f = forwarded(
            "10.0.0.2".parse().unwrap(),
            Some("6.6.6.6, 198.51.100.1, 10.0.0.9"),
            &trusted,
        );
        assert_eq!(f.client.to_string(), "198.51.100.1");
        assert_eq!(f.header, "6.6.6.6, 198.51.100.1, 10.0.0.9, 10.0.0.2");
        let f = forwarded("10.0.0.2".parse().unwrap(), None, &trusted);
        assert_eq!(f.client.to_string(), "10.0.0.2");
        assert_eq!(f.header, "10.0.0.2");
        let f = forwarded(
            "10.0.0.2".parse().unwrap(),
            Some("garbage, 10.0.0.3"),
            &trusted,
        );
        assert_eq!(f.client.to_string(), "10.0.0.3");
    }
}
