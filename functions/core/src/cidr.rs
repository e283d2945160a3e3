//! CIDR arithmetic on `ipnet`'s types: overlap by containment, for IPv4 and IPv6.

use ipnet::IpNet;

/// Two ranges overlap when one contains the other's first address. CIDR blocks
/// nest or are disjoint, so this is exact. Ranges of different families never
/// overlap.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        (IpNet::V4(a), IpNet::V4(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        (IpNet::V6(a), IpNet::V6(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        _ => false,
    }
}

/// The first pair, one from each side, that overlaps.
pub fn first_overlap<'a>(left: &'a [IpNet], right: &'a [IpNet]) -> Option<(&'a IpNet, &'a IpNet)> {
    left.iter().find_map(|a| right.iter().find(|b| overlaps(a, b)).map(|b| (a, b)))
}

/// Parses a CIDR block and insists on its canonical form (`10.0.0.0/16`, not
/// `10.0.0.1/16`), which is what AWS stores and returns.
pub fn parse_canonical(s: &str) -> Result<IpNet, String> {
    let net: IpNet = s.trim().parse().map_err(|_| format!("{s:?} is not a CIDR block"))?;
    if net.trunc() != net {
        return Err(format!("{s:?} is not canonical: the block is {}", net.trunc()));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::{Ipv4Net, Ipv6Net};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn the_seed_ranges_do_not_overlap() {
        assert!(!overlaps(&net("10.0.0.0/16"), &net("172.31.0.0/16")));
    }

    #[test]
    fn containment_and_equality_overlap_in_both_orders() {
        for (a, b) in [
            ("10.0.0.0/16", "10.0.0.0/16"),
            ("10.0.0.0/8", "10.1.2.0/24"),
            ("0.0.0.0/0", "192.168.1.1/32"),
            ("2600:1f18::/56", "2600:1f18:0:10::/64"),
        ] {
            assert!(overlaps(&net(a), &net(b)), "{a} {b}");
            assert!(overlaps(&net(b), &net(a)), "{b} {a}");
        }
        for (a, b) in
            [("10.0.0.0/16", "10.1.0.0/16"), ("10.0.0.0/24", "10.0.1.0/24"), ("2600:1f18::/56", "2600:1f18:0:100::/56")]
        {
            assert!(!overlaps(&net(a), &net(b)), "{a} {b}");
        }
    }

    #[test]
    fn families_never_overlap() {
        assert!(!overlaps(&net("0.0.0.0/0"), &net("::/0")));
    }

    #[test]
    fn first_overlap_names_the_pair() {
        let left = [net("10.0.0.0/16"), net("100.64.0.0/16")];
        let right = [net("172.31.0.0/16"), net("100.64.128.0/17")];
        assert_eq!(first_overlap(&left, &right), Some((&left[1], &right[1])));
        assert_eq!(first_overlap(&left[..1], &right), None);
    }

    #[test]
    fn canonical_form_is_required() {
        assert_eq!(parse_canonical("10.0.0.0/16").unwrap(), net("10.0.0.0/16"));
        assert!(parse_canonical("10.0.0.1/16").unwrap_err().contains("10.0.0.0/16"));
        assert!(parse_canonical("10.0.0.0/33").unwrap_err().contains("not a CIDR"));
        assert!(parse_canonical("ten").is_err());
    }

    fn v4() -> impl Strategy<Value = Ipv4Net> {
        (any::<u32>(), 0u8..=32).prop_map(|(a, p)| Ipv4Net::new(Ipv4Addr::from(a), p).unwrap().trunc())
    }

    fn v6() -> impl Strategy<Value = Ipv6Net> {
        (any::<u128>(), 0u8..=128).prop_map(|(a, p)| Ipv6Net::new(Ipv6Addr::from(a), p).unwrap().trunc())
    }

    /// The definition: two ranges overlap when some address is in both.
    fn share_an_address_v4(a: &Ipv4Net, b: &Ipv4Net) -> bool {
        let (a0, a1) = (u32::from(a.network()), u32::from(a.broadcast()));
        let (b0, b1) = (u32::from(b.network()), u32::from(b.broadcast()));
        a0 <= b1 && b0 <= a1
    }

    fn share_an_address_v6(a: &Ipv6Net, b: &Ipv6Net) -> bool {
        let (a0, a1) = (u128::from(a.network()), u128::from(a.broadcast()));
        let (b0, b1) = (u128::from(b.network()), u128::from(b.broadcast()));
        a0 <= b1 && b0 <= a1
    }

    proptest! {
        #[test]
        fn overlap_is_sharing_an_address_v4(a in v4(), b in v4()) {
            prop_assert_eq!(overlaps(&IpNet::V4(a), &IpNet::V4(b)), share_an_address_v4(&a, &b));
        }

        #[test]
        fn overlap_is_sharing_an_address_v6(a in v6(), b in v6()) {
            prop_assert_eq!(overlaps(&IpNet::V6(a), &IpNet::V6(b)), share_an_address_v6(&a, &b));
        }

        #[test]
        fn a_block_overlaps_its_subnets_and_supernets(a in v4(), extra in 0u8..=8) {
            let p = (a.prefix_len() + extra).min(32);
            let sub = Ipv4Net::new(a.network(), p).unwrap();
            prop_assert!(overlaps(&IpNet::V4(a), &IpNet::V4(sub)));
            prop_assert!(overlaps(&IpNet::V4(sub), &IpNet::V4(a)));
        }

        #[test]
        fn siblings_do_not_overlap(a in v4()) {
            prop_assume!(a.prefix_len() < 32);
            let halves: Vec<Ipv4Net> = a.subnets(a.prefix_len() + 1).unwrap().collect();
            prop_assert!(!overlaps(&IpNet::V4(halves[0]), &IpNet::V4(halves[1])));
        }

        #[test]
        fn canonical_text_round_trips(a in v4()) {
            prop_assert_eq!(parse_canonical(&a.to_string()).unwrap(), IpNet::V4(a));
        }
    }
}
