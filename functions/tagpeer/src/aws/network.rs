//! What `tagpeer check` reads: the network of the deployment's regions, as
//! [`reach::Network`]: VPCs, subnets, route tables with their associations,
//! peering connections, security groups, network ACLs and network interfaces.

use aws_sdk_ec2 as ec2;

use super::{aws_error, peering, route, vpc, Ec2};
use crate::error::AwsError;
use crate::ids::{Endpoint, Region};
use crate::reach::{self, Interface, Nacl, NaclEntry, Network, Protocol, SecurityGroup, SgPeer, SgRule, Subnet};

impl Ec2 {
    /// Everything a reachability check reads, in every region, the regions side by side.
    pub async fn observe_network(&self, regions: &[Region]) -> Result<Network, AwsError> {
        let seen =
            self.in_every_region(regions, |client, region| async move { observe_region(&client, &region).await });
        let mut net = Network::default();
        for (_, part) in seen.await? {
            net.vpcs.extend(part.vpcs);
            net.subnets.extend(part.subnets);
            net.route_tables.extend(part.route_tables);
            for p in part.peerings {
                if !net.peerings.iter().any(|q| q.id == p.id) {
                    net.peerings.push(p);
                }
            }
            net.security_groups.extend(part.security_groups);
            net.nacls.extend(part.nacls);
            net.interfaces.extend(part.interfaces);
        }
        Ok(net)
    }
}

async fn observe_region(client: &ec2::Client, region: &Region) -> Result<Network, AwsError> {
    let (vpcs, subnets, tables, peerings) = tokio::try_join!(
        async { all_items!(client.describe_vpcs(), "DescribeVpcs", region) },
        async { all_items!(client.describe_subnets(), "DescribeSubnets", region) },
        async { all_items!(client.describe_route_tables(), "DescribeRouteTables", region) },
        async { all_items!(client.describe_vpc_peering_connections(), "DescribeVpcPeeringConnections", region) },
    )?;
    let (groups, acls, interfaces) = tokio::try_join!(
        async { all_items!(client.describe_security_groups(), "DescribeSecurityGroups", region) },
        async { all_items!(client.describe_network_acls(), "DescribeNetworkAcls", region) },
        async { all_items!(client.describe_network_interfaces(), "DescribeNetworkInterfaces", region) },
    )?;

    let vpcs: Vec<reach::Vpc> =
        vpcs.iter().filter_map(|v| vpc(v, region)).map(|v| reach::Vpc { endpoint: v.endpoint, ipv4: v.ipv4 }).collect();
    // Resources name their VPC by id; its owner comes from the VPC itself.
    let endpoint = |vpc_id: Option<&str>| -> Option<Endpoint> {
        let id = vpc_id?;
        vpcs.iter().find(|v| v.endpoint.vpc_id.as_str() == id).map(|v| v.endpoint.clone())
    };

    let subnets = subnets
        .iter()
        .filter_map(|s| {
            Some(Subnet {
                id: s.subnet_id()?.to_owned(),
                vpc: endpoint(s.vpc_id())?,
                cidr: s.cidr_block()?.parse().ok()?,
            })
        })
        .collect();
    let route_tables = tables
        .iter()
        .filter_map(|t| {
            Some(reach::RouteTable {
                id: t.route_table_id()?.parse().ok()?,
                vpc: endpoint(t.vpc_id())?,
                main: t.associations().iter().any(|a| a.main() == Some(true)),
                subnets: t.associations().iter().filter_map(|a| a.subnet_id().map(str::to_owned)).collect(),
                routes: t.routes().iter().filter_map(route).collect(),
            })
        })
        .collect();
    let peerings = peerings.iter().filter_map(|p| peering(p, region)).collect();
    let security_groups = groups
        .iter()
        .filter_map(|g| {
            Some(SecurityGroup {
                id: g.group_id()?.to_owned(),
                vpc: endpoint(g.vpc_id())?,
                ingress: g.ip_permissions().iter().filter_map(sg_rule).collect(),
                egress: g.ip_permissions_egress().iter().filter_map(sg_rule).collect(),
            })
        })
        .collect();
    let nacls = acls
        .iter()
        .filter_map(|a| {
            Some(Nacl {
                id: a.network_acl_id()?.to_owned(),
                vpc: endpoint(a.vpc_id())?,
                default: a.is_default() == Some(true),
                subnets: a.associations().iter().filter_map(|x| x.subnet_id().map(str::to_owned)).collect(),
                entries: a.entries().iter().filter_map(nacl_entry).collect(),
            })
        })
        .collect();
    let interfaces = interfaces
        .iter()
        .filter_map(|i| {
            Some(Interface {
                id: i.network_interface_id()?.to_owned(),
                subnet: i.subnet_id()?.to_owned(),
                vpc: endpoint(i.vpc_id())?,
                private_ip: i.private_ip_address()?.parse().ok()?,
                security_groups: i.groups().iter().filter_map(|g| g.group_id().map(str::to_owned)).collect(),
                instance: i.attachment().and_then(|a| a.instance_id()).map(str::to_owned),
            })
        })
        .collect();
    Ok(Network { vpcs, subnets, route_tables, peerings, security_groups, nacls, interfaces })
}

/// EC2's `-1` means every port (or every ICMP type).
fn ports(from: Option<i32>, to: Option<i32>) -> Option<(u16, u16)> {
    match (from, to) {
        (Some(f), Some(t)) if f >= 0 && t >= 0 => Some((u16::try_from(f).ok()?, u16::try_from(t).ok()?)),
        (Some(f), _) if f >= 0 => u16::try_from(f).ok().map(|f| (f, f)),
        _ => None,
    }
}

fn sg_rule(p: &ec2::types::IpPermission) -> Option<SgRule> {
    let protocol = Protocol::from_code(p.ip_protocol()?)?;
    let ports = match protocol {
        Protocol::Tcp | Protocol::Udp => ports(p.from_port(), p.to_port()),
        // For ICMP, FromPort is the type (-1: all).
        Protocol::Icmp => ports(p.from_port(), p.from_port()),
        _ => None,
    };
    let mut peers: Vec<SgPeer> =
        p.ip_ranges().iter().filter_map(|r| r.cidr_ip()?.parse().ok()).map(SgPeer::Cidr).collect();
    peers.extend(p.user_id_group_pairs().iter().filter_map(|g| g.group_id()).map(|g| SgPeer::Group(g.to_owned())));
    Some(SgRule { protocol, ports, peers })
}

fn nacl_entry(e: &ec2::types::NetworkAclEntry) -> Option<NaclEntry> {
    let protocol = Protocol::from_code(e.protocol()?)?;
    let ports = match protocol {
        Protocol::Tcp | Protocol::Udp => e.port_range().and_then(|r| ports(r.from(), r.to())),
        Protocol::Icmp => e.icmp_type_code().and_then(|c| ports(c.r#type(), c.r#type())),
        _ => None,
    };
    Some(NaclEntry {
        rule_number: u16::try_from(e.rule_number()?).ok()?,
        egress: e.egress()?,
        protocol,
        ports,
        // IPv4 only: entries for IPv6 ranges are left out.
        cidr: e.cidr_block()?.parse().ok()?,
        allow: e.rule_action()? == &ec2::types::RuleAction::Allow,
    })
}
