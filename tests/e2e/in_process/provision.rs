//! The provisioner end to end on moto's real server: one "Network Requested"
//! detail builds the network the seed builds by hand (a VPC with its own range,
//! subnets, an internet gateway, a route table with its associations and
//! default route) and tags it with the intent; the same request again builds
//! nothing; a build cut short is finished by the next delivery.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use serde_json::{json, Value};
use tagpeer::aws::provision::{self as adapter, BuildError};
use tagpeer::aws::Ec2;
use tagpeer::ids::Region;
use tagpeer::intent::PEERS;
use tagpeer::provision::{self, NetworkRequest, NETWORK};
use tagpeer_tests::*;

struct Bed {
    _moto: Moto,
    sdk: SdkConfig,
    clients: Ec2,
    regions: Vec<Region>,
    /// Osaka's default VPC (172.31.0.0/16), the seed's peer.
    osaka_vpc: String,
}

impl Bed {
    async fn start() -> Self {
        let moto = Moto::start();
        let sdk = moto.sdk_config().await;
        let regions: Vec<Region> = [SEOUL, OSAKA].iter().map(|r| r.parse().unwrap()).collect();
        let clients = Ec2::new(&sdk, &regions);
        let osaka_vpc = default_vpc(&sdk, OSAKA).await;
        Self { _moto: moto, sdk, clients, regions, osaka_vpc }
    }

    async fn provision(&self, detail: &Value) -> Result<String, BuildError> {
        adapter::provision(&self.clients, &self.regions, &provision::default_pool(), detail).await
    }

    fn peer(&self) -> String {
        format!("{OSAKA}/{}", self.osaka_vpc)
    }

    /// The seed's Seoul network, asked for by name, peered with Osaka's default VPC.
    fn request(&self, name: &str) -> Value {
        json!({"region": SEOUL, "name": name, "subnets": 2, "peers": [self.peer()]})
    }
}

/// Everything in a region, counted: "no new resource" compares two of these.
#[derive(Debug, PartialEq, Eq)]
struct Census {
    vpcs: usize,
    subnets: usize,
    gateways: usize,
    attachments: usize,
    route_tables: usize,
    associations: usize,
    routes: usize,
    vpc_tags: usize,
}

async fn census(sdk: &SdkConfig, region: &str) -> Census {
    let ec2 = ec2(sdk, region);
    let vpcs = ec2.describe_vpcs().send().await.expect("DescribeVpcs");
    let subnets = ec2.describe_subnets().send().await.expect("DescribeSubnets");
    let gateways = ec2.describe_internet_gateways().send().await.expect("DescribeInternetGateways");
    let tables = ec2.describe_route_tables().send().await.expect("DescribeRouteTables");
    Census {
        vpcs: vpcs.vpcs().len(),
        subnets: subnets.subnets().len(),
        gateways: gateways.internet_gateways().len(),
        attachments: gateways.internet_gateways().iter().map(|g| g.attachments().len()).sum(),
        route_tables: tables.route_tables().len(),
        associations: tables.route_tables().iter().map(|t| t.associations().len()).sum(),
        routes: tables.route_tables().iter().map(|t| t.routes().len()).sum(),
        vpc_tags: vpcs.vpcs().iter().map(|v| v.tags().len()).sum(),
    }
}

fn tags(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect()
}

fn named(t: &[Tag], name: &str) -> bool {
    tags(t).get(NETWORK).is_some_and(|n| n == name)
}

/// One network as EC2 holds it, found by its tag; there is exactly one of each part.
#[derive(Debug)]
struct Network {
    vpc: String,
    cidr: String,
    tags: BTreeMap<String, String>,
    /// (id, range, zone), by range.
    subnets: Vec<(String, String, String)>,
    gateway: String,
    route_table: String,
    /// The subnets associated with the route table, sorted.
    associated: Vec<String>,
    /// The target of the table's route to 0.0.0.0/0.
    default_route: Option<String>,
}

async fn network(sdk: &SdkConfig, region: &str, name: &str) -> Network {
    let ec2 = ec2(sdk, region);
    let vpcs = ec2.describe_vpcs().send().await.expect("DescribeVpcs");
    let vpcs: Vec<_> = vpcs.vpcs().iter().filter(|v| named(v.tags(), name)).collect();
    assert_eq!(vpcs.len(), 1, "one VPC carries {NETWORK}={name}: {vpcs:?}");
    let vpc = vpcs[0].vpc_id().unwrap().to_owned();

    let subnets = ec2.describe_subnets().send().await.expect("DescribeSubnets");
    let mut subnets: Vec<(String, String, String)> = subnets
        .subnets()
        .iter()
        .filter(|s| s.vpc_id() == Some(&vpc))
        .inspect(|s| assert!(named(s.tags(), name), "every subnet is tagged: {s:?}"))
        .map(|s| {
            let text = |v: Option<&str>| v.unwrap_or_default().to_owned();
            (text(s.subnet_id()), text(s.cidr_block()), text(s.availability_zone()))
        })
        .collect();
    subnets.sort_by_key(|(_, cidr, _)| cidr.parse::<ipnet::Ipv4Net>().unwrap());

    let gateways = ec2.describe_internet_gateways().send().await.expect("DescribeInternetGateways");
    let gateways: Vec<_> = gateways.internet_gateways().iter().filter(|g| named(g.tags(), name)).collect();
    assert_eq!(gateways.len(), 1, "one gateway: {gateways:?}");
    let attached: Vec<Option<&str>> = gateways[0].attachments().iter().map(|a| a.vpc_id()).collect();
    assert_eq!(attached, [Some(vpc.as_str())], "attached to the VPC");

    let tables = ec2.describe_route_tables().send().await.expect("DescribeRouteTables");
    let tables: Vec<_> = tables.route_tables().iter().filter(|t| named(t.tags(), name)).collect();
    assert_eq!(tables.len(), 1, "one route table: {tables:?}");
    let table = tables[0];
    assert_eq!(table.vpc_id(), Some(vpc.as_str()));
    let mut associated: Vec<String> =
        table.associations().iter().filter_map(|a| a.subnet_id()).map(str::to_owned).collect();
    associated.sort();
    let default_route = table
        .routes()
        .iter()
        .filter(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        .map(|r| r.gateway_id().unwrap_or("not a gateway").to_owned())
        .collect::<Vec<_>>();
    assert!(default_route.len() <= 1, "{default_route:?}");

    Network {
        cidr: vpcs[0].cidr_block().unwrap().to_owned(),
        tags: tags(vpcs[0].tags()),
        vpc,
        subnets,
        gateway: gateways[0].internet_gateway_id().unwrap().to_owned(),
        route_table: table.route_table_id().unwrap().to_owned(),
        associated,
        default_route: default_route.into_iter().next(),
    }
}

/// The network as the seed builds it, with these subnets (range, zone) and intent.
fn assert_built(net: &Network, name: &str, cidr: &str, subnets: &[(&str, &str)], peers: Option<&str>) {
    assert_eq!(net.cidr, cidr);
    assert_eq!(net.tags.get("Name").map(String::as_str), Some(name));
    assert_eq!(net.tags.get(NETWORK).map(String::as_str), Some(name));
    assert_eq!(net.tags.get(PEERS).map(String::as_str), peers);
    let layout: Vec<(&str, &str)> = net.subnets.iter().map(|(_, c, z)| (c.as_str(), z.as_str())).collect();
    assert_eq!(layout, subnets);
    let mut ids: Vec<String> = net.subnets.iter().map(|(id, ..)| id.clone()).collect();
    ids.sort();
    assert_eq!(net.associated, ids, "every subnet is associated with the route table");
    assert_eq!(net.default_route.as_deref(), Some(net.gateway.as_str()), "0.0.0.0/0 goes to the gateway");
}

const SEOUL_SUBNETS: [(&str, &str); 2] = [("10.0.0.0/24", "ap-northeast-2a"), ("10.0.1.0/24", "ap-northeast-2b")];

#[tokio::test]
async fn one_request_builds_the_seed_network_and_the_same_again_builds_nothing() {
    let bed = Bed::start().await;
    let start = observe(&bed.sdk).await;
    let before = census(&bed.sdk, SEOUL).await;

    let summary = bed.provision(&bed.request("seoul")).await.expect("built");
    let net = network(&bed.sdk, SEOUL, "seoul").await;
    // moto's default VPCs are 172.31.0.0/16: the lowest free /16 of the pool is 10.0.0.0/16.
    assert_built(&net, "seoul", "10.0.0.0/16", &SEOUL_SUBNETS, Some(&bed.peer()));
    assert_eq!(
        summary,
        format!(
            "built {} 10.0.0.0/16 with 2 subnets, {}, {}; asked for {}",
            net.vpc,
            net.gateway,
            net.route_table,
            bed.peer()
        )
    );
    let after = census(&bed.sdk, SEOUL).await;
    assert_eq!(after.vpcs, before.vpcs + 1);
    assert_eq!(after.subnets, before.subnets + 2);
    assert_eq!(after.gateways, before.gateways + 1);
    assert_eq!(after.route_tables, before.route_tables + 2, "the VPC's main table and the network's");
    assert_eq!(census(&bed.sdk, OSAKA).await.vpcs, 1, "nothing made in the peer's region");

    for _ in 0..2 {
        let again = bed.provision(&bed.request("seoul")).await.expect("nothing to do");
        assert_eq!(again, "nothing to do: seoul is built");
        assert_eq!(census(&bed.sdk, SEOUL).await, after, "no new resource");
    }
    assert_eq!(network(&bed.sdk, SEOUL, "seoul").await.vpc, net.vpc);
    // DNS hostnames on, which tagpeer:dns needs (a new VPC has them off).
    let dns = ec2(&bed.sdk, SEOUL)
        .describe_vpc_attribute()
        .vpc_id(net.vpc.to_string())
        .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
        .send()
        .await
        .expect("DescribeVpcAttribute");
    assert_eq!(dns.enable_dns_hostnames().and_then(|v| v.value()), Some(true));
    assert_changes_allowed(&bed.sdk, &deployment(), &start).await;
}

#[tokio::test]
async fn a_build_cut_short_after_any_step_is_finished_by_the_next_delivery() {
    let bed = Bed::start().await;
    let start = observe(&bed.sdk).await;
    let pool = provision::default_pool();
    let mut k = 1;
    let steps = loop {
        let name = format!("cut-{k}");
        let detail = bed.request(&name);
        let request = NetworkRequest::from_detail(&detail).unwrap();
        let observed = adapter::observe(&bed.clients, &request.region, &bed.regions, &name, &request.peers)
            .await
            .expect("observed");
        let actions = provision::missing_steps(&request, &observed, &pool).expect("planned");
        if k >= actions.len() {
            break actions.len();
        }
        // The delivery that fails after k steps.
        let did = adapter::apply(&bed.clients, &request.region, &actions[..k]).await.expect("the first steps");
        assert_eq!(did.len(), k);
        assert!(did[0].starts_with("created vpc-"), "{did:?}");

        let summary = bed.provision(&detail).await.expect("resumed");
        assert!(summary.starts_with("completed vpc-"), "{k}: {summary}");
        let net = network(&bed.sdk, SEOUL, &name).await;
        // Each network takes the next free /16 (10.0, 10.1, …): the finished ones are in the way.
        let cidr = format!("10.{}.0.0/16", k - 1);
        let subnets =
            [(format!("10.{}.0.0/24", k - 1), "ap-northeast-2a"), (format!("10.{}.1.0/24", k - 1), "ap-northeast-2b")];
        let subnets: Vec<(&str, &str)> = subnets.iter().map(|(c, z)| (c.as_str(), *z)).collect();
        assert_built(&net, &name, &cidr, &subnets, Some(&bed.peer()));

        let quiet = census(&bed.sdk, SEOUL).await;
        assert_eq!(bed.provision(&detail).await.expect("built"), format!("nothing to do: {name} is built"));
        assert_eq!(census(&bed.sdk, SEOUL).await, quiet);
        k += 1;
    };
    assert_eq!(steps, 11, "the seed's network is ten steps, and DNS hostnames on");
    assert_eq!(census(&bed.sdk, SEOUL).await.vpcs, 1 + 10, "the default VPC and one VPC a cut");
    assert_changes_allowed(&bed.sdk, &deployment(), &start).await;
}

#[tokio::test]
async fn a_range_overlapping_the_peer_is_refused_and_nothing_is_made() {
    let bed = Bed::start().await;
    let start = observe(&bed.sdk).await;
    let before = (census(&bed.sdk, SEOUL).await, census(&bed.sdk, OSAKA).await);
    let mut detail = bed.request("seoul");
    detail["cidr"] = json!("172.31.0.0/16");
    let err = bed.provision(&detail).await.expect_err("refused");
    assert!(matches!(err, BuildError::Refused(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "network request refused: cidr: 172.31.0.0/16 overlaps {}'s 172.31.0.0/16; peered VPCs need disjoint ranges",
            bed.peer()
        )
    );

    // Other bad requests: refused with the reason, nothing made either.
    let cases = [
        (json!({"region": "Seoul", "name": "seoul"}), "region: \"Seoul\" is not a region name"),
        (json!({"region": SEOUL, "name": "seoul", "colour": "red"}), "unknown field `colour`"),
        (json!({"region": SEOUL, "name": "seoul", "peers": ["ap-northeast-3/vpc-0123abcd"]}), "no such VPC"),
        (json!({"region": "eu-west-1", "name": "seoul"}), "is not one of this deployment's"),
        (json!({"region": SEOUL, "name": "seoul", "availability-zones": ["ap-northeast-2z"]}), "is not one of"),
    ];
    for (detail, expect) in cases {
        let err = bed.provision(&detail).await.expect_err("refused").to_string();
        assert!(err.starts_with("network request refused: ") && err.contains(expect), "{detail}: {err}");
    }
    assert_eq!((census(&bed.sdk, SEOUL).await, census(&bed.sdk, OSAKA).await), before, "nothing made");
    assert_changes_allowed(&bed.sdk, &deployment(), &start).await;
}

#[tokio::test]
async fn a_second_network_gets_the_next_free_block_whatever_its_region() {
    let bed = Bed::start().await;
    let start = observe(&bed.sdk).await;
    bed.provision(&bed.request("seoul")).await.expect("first");
    assert_eq!(network(&bed.sdk, SEOUL, "seoul").await.cidr, "10.0.0.0/16");

    // In Osaka, peered with the first: Seoul's 10.0.0.0/16 is taken across the deployment.
    let seoul = network(&bed.sdk, SEOUL, "seoul").await.vpc;
    let detail = json!({
        "region": OSAKA, "name": "osaka-2", "availability-zones": ["ap-northeast-3c"],
        "peers": [format!("{SEOUL}/{seoul}")]
    });
    let summary = bed.provision(&detail).await.expect("second");
    let net = network(&bed.sdk, OSAKA, "osaka-2").await;
    assert_built(
        &net,
        "osaka-2",
        "10.1.0.0/16",
        &[("10.1.0.0/24", "ap-northeast-3c")],
        Some(&format!("{SEOUL}/{seoul}")),
    );
    assert!(summary.starts_with(&format!("built {} 10.1.0.0/16 with 1 subnet, ", net.vpc)), "{summary}");

    // A third, smaller, in Seoul, without peers: the next free /20, and no intent tag.
    let detail = json!({"region": SEOUL, "name": "small", "prefix-length": 20, "subnets": 3});
    bed.provision(&detail).await.expect("third");
    let net = network(&bed.sdk, SEOUL, "small").await;
    assert_built(
        &net,
        "small",
        "10.2.0.0/20",
        &[("10.2.0.0/24", "ap-northeast-2a"), ("10.2.1.0/24", "ap-northeast-2b"), ("10.2.2.0/24", "ap-northeast-2c")],
        None,
    );
    assert_changes_allowed(&bed.sdk, &deployment(), &start).await;
}

#[tokio::test]
async fn two_vpcs_with_one_name_are_refused_without_a_change() {
    let bed = Bed::start().await;
    let start = observe(&bed.sdk).await;
    bed.provision(&bed.request("seoul")).await.expect("built");
    let first = network(&bed.sdk, SEOUL, "seoul").await.vpc;
    let second = ec2(&bed.sdk, SEOUL)
        .create_vpc()
        .cidr_block("10.50.0.0/16")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Vpc)
                .tags(Tag::builder().key(NETWORK).value("seoul").build())
                .build(),
        )
        .send()
        .await
        .expect("CreateVpc")
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_owned();
    let before = census(&bed.sdk, SEOUL).await;
    let err = bed.provision(&bed.request("seoul")).await.expect_err("refused").to_string();
    let mut both = [first, second];
    both.sort();
    assert_eq!(
        err,
        format!(
            "network request refused: 2 VPCs carry tagpeer-network=seoul ({}, {}); take the tag off all but one",
            both[0], both[1]
        )
    );
    assert_eq!(census(&bed.sdk, SEOUL).await, before, "no change");
    assert_changes_allowed(&bed.sdk, &deployment(), &start).await;
}
