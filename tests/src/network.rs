//! Networks built through the real AWS SDK, as a person would build them:
//! the seed scenario's VPCs, tags, instances and security groups.

use crate::*;
use aws_config::SdkConfig;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use tagpeer::ids::Endpoint;

/// The seed's two networks.
#[derive(Clone, Debug)]
pub struct Seed {
    pub seoul_vpc: String,
    pub seoul_subnet: String,
    pub seoul_route_table: String,
    pub osaka_vpc: String,
}

impl Seed {
    pub fn seoul(&self) -> Endpoint {
        endpoint(SEOUL, &self.seoul_vpc)
    }
    pub fn osaka(&self) -> Endpoint {
        endpoint(OSAKA, &self.osaka_vpc)
    }
}

pub fn endpoint(region: &str, vpc: &str) -> Endpoint {
    Endpoint::new(ACCOUNT.parse().unwrap(), region.parse().unwrap(), vpc.parse().unwrap())
}

fn name_tag(resource: ResourceType, name: &str) -> TagSpecification {
    TagSpecification::builder().resource_type(resource).tags(Tag::builder().key("Name").value(name).build()).build()
}

/// Builds Seoul's network as the seed does by hand (a VPC with its own range,
/// a subnet, an internet gateway, a route table with its association and
/// default route) and finds Osaka's default VPC.
pub async fn build_seed(sdk: &SdkConfig, seoul_cidr: &str) -> Seed {
    let seoul = ec2(sdk, SEOUL);
    let vpc = seoul
        .create_vpc()
        .cidr_block(seoul_cidr)
        .tag_specifications(name_tag(ResourceType::Vpc, "seoul"))
        .send()
        .await
        .expect("CreateVpc");
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).expect("a VPC id").to_owned();
    let subnet_cidr = subnet_of(seoul_cidr);
    let subnet = seoul
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block(subnet_cidr)
        .availability_zone(format!("{SEOUL}a"))
        .tag_specifications(name_tag(ResourceType::Subnet, "seoul-a"))
        .send()
        .await
        .expect("CreateSubnet");
    let subnet_id = subnet.subnet().and_then(|s| s.subnet_id()).expect("a subnet id").to_owned();
    let igw = seoul.create_internet_gateway().send().await.expect("CreateInternetGateway");
    let igw_id = igw.internet_gateway().and_then(|g| g.internet_gateway_id()).expect("a gateway id").to_owned();
    seoul.attach_internet_gateway().internet_gateway_id(&igw_id).vpc_id(&vpc_id).send().await.expect("Attach");
    let table = seoul
        .create_route_table()
        .vpc_id(&vpc_id)
        .tag_specifications(name_tag(ResourceType::RouteTable, "seoul-public"))
        .send()
        .await
        .expect("CreateRouteTable");
    let table_id = table.route_table().and_then(|t| t.route_table_id()).expect("a table id").to_owned();
    seoul.associate_route_table().route_table_id(&table_id).subnet_id(&subnet_id).send().await.expect("Associate");
    seoul
        .create_route()
        .route_table_id(&table_id)
        .destination_cidr_block("0.0.0.0/0")
        .gateway_id(&igw_id)
        .send()
        .await
        .expect("CreateRoute to the gateway");
    let osaka_vpc = default_vpc(sdk, OSAKA).await;
    Seed { seoul_vpc: vpc_id, seoul_subnet: subnet_id, seoul_route_table: table_id, osaka_vpc }
}

/// The first /24 of a block (`10.0.0.0/16` → `10.0.6.0/24`, the seed server's subnet).
fn subnet_of(cidr: &str) -> String {
    let net: ipnet::Ipv4Net = cidr.parse().expect("an IPv4 block");
    let octets = net.network().octets();
    if net.prefix_len() <= 16 {
        format!("{}.{}.6.0/24", octets[0], octets[1])
    } else {
        net.to_string()
    }
}

/// The region's default VPC (moto makes one, 172.31.0.0/16, in every region).
/// A bare VPC with range `cidr` in `region` (and its main route table).
pub async fn create_vpc(sdk: &SdkConfig, region: &str, cidr: &str) -> Endpoint {
    let out = ec2(sdk, region).create_vpc().cidr_block(cidr).send().await.expect("CreateVpc");
    endpoint(region, out.vpc().and_then(|v| v.vpc_id()).expect("a VPC id"))
}

pub async fn default_vpc(sdk: &SdkConfig, region: &str) -> String {
    let vpcs = ec2(sdk, region)
        .describe_vpcs()
        .filters(Filter::builder().name("is-default").values("true").build())
        .send()
        .await
        .expect("DescribeVpcs");
    // moto may ignore filters: choose on the client too.
    vpcs.vpcs()
        .iter()
        .find(|v| v.is_default() == Some(true))
        .and_then(|v| v.vpc_id())
        .expect("a default VPC")
        .to_owned()
}

/// Sets (or with `None`, removes) one tag on a VPC, as a person would.
pub async fn tag_vpc(sdk: &SdkConfig, vpc: &Endpoint, key: &str, value: Option<&str>) {
    let client = ec2(sdk, vpc.region.as_str());
    match value {
        Some(value) => {
            client
                .create_tags()
                .resources(vpc.vpc_id.as_str())
                .tags(Tag::builder().key(key).value(value).build())
                .send()
                .await
                .expect("CreateTags");
        }
        None => {
            client
                .delete_tags()
                .resources(vpc.vpc_id.as_str())
                .tags(Tag::builder().key(key).build())
                .send()
                .await
                .expect("DeleteTags");
        }
    }
}

/// Starts a server with a fixed private IP in a subnet (the VPC's default security group).
pub async fn run_instance(sdk: &SdkConfig, region: &str, subnet: &str, ip: &str) -> String {
    let client = ec2(sdk, region);
    let images = client.describe_images().owners("amazon").send().await.expect("DescribeImages");
    let image = images.images().first().and_then(|i| i.image_id()).expect("an image").to_owned();
    let out = client
        .run_instances()
        .image_id(image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .subnet_id(subnet)
        .private_ip_address(ip)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("RunInstances");
    out.instances().first().and_then(|i| i.instance_id()).expect("an instance").to_owned()
}

/// The subnet of a VPC that holds `ip`.
pub async fn subnet_holding(sdk: &SdkConfig, region: &str, vpc: &str, ip: &str) -> String {
    let ip: std::net::Ipv4Addr = ip.parse().expect("an IPv4 address");
    let subnets = ec2(sdk, region).describe_subnets().send().await.expect("DescribeSubnets");
    subnets
        .subnets()
        .iter()
        .filter(|s| s.vpc_id() == Some(vpc))
        .find(|s| s.cidr_block().and_then(|c| c.parse::<ipnet::Ipv4Net>().ok()).is_some_and(|c| c.contains(&ip)))
        .and_then(|s| s.subnet_id())
        .expect("a subnet holding the address")
        .to_owned()
}

/// The VPC's default security group.
pub async fn default_group(sdk: &SdkConfig, region: &str, vpc: &str) -> String {
    let groups = ec2(sdk, region).describe_security_groups().send().await.expect("DescribeSecurityGroups");
    groups
        .security_groups()
        .iter()
        .find(|g| g.vpc_id() == Some(vpc) && g.group_name() == Some("default"))
        .and_then(|g| g.group_id())
        .expect("a default group")
        .to_owned()
}

/// Lets ICMP in from `cidr` through a security group.
pub async fn allow_icmp(sdk: &SdkConfig, region: &str, group: &str, cidr: &str) {
    ec2(sdk, region)
        .authorize_security_group_ingress()
        .group_id(group)
        .ip_protocol("icmp")
        .from_port(-1)
        .to_port(-1)
        .cidr_ip(cidr)
        .send()
        .await
        .expect("AuthorizeSecurityGroupIngress");
}
