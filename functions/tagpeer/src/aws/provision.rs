//! The provisioner's side of the adapter: [`observe`] a network by its
//! `tagpeer-network` tag, [`apply`] the steps [`crate::provision::plan`] chose,
//! and [`provision`], the three in a row, which the Lambda calls.
//!
//! moto ignores `Filters` on some describe calls: every answer is filtered on
//! the client too.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2 as ec2;
use aws_sdk_ec2::types::{
    AttachmentStatus, AvailabilityZoneState, Filter, ResourceType, RouteTableAssociationStateCode, TagSpecification,
};
use ipnet::{IpNet, Ipv4Net};
use serde_json::Value;
use thiserror::Error;

use super::{aws_error, malformed, tag, tags, vpc, Ec2};
use crate::error::AwsError;
use crate::ids::{Region, VpcId};
use crate::intent::{self, VpcRef};
use crate::model;
use crate::provision::{
    self, Gateway, NetworkRequest, Observed, ProvisionAction, ProvisionError, Ref, RouteTable, Subnet,
};

/// Why a network request did not end in a built network. The texts are the
/// words a person reads in the log and the Lambda's answer.
#[derive(Debug, Error)]
pub enum BuildError {
    #[error("network request refused: {0}")]
    Refused(#[from] ProvisionError),
    #[error("observing network {name} in {region} failed: {source}")]
    Observe { name: String, region: Region, source: AwsError },
    #[error(
        "building {name} stopped after {done} of {planned} steps, at \"{step}\": {source}; the next delivery resumes it"
    )]
    Apply {
        name: String,
        done: usize,
        planned: usize,
        step: String,
        /// What each step that ran did.
        did: Vec<String>,
        source: AwsError,
    },
}

/// Handles one "Network Requested" detail: reads the request, observes what
/// exists, plans what is missing and makes it. Returns the summary of the run
/// (`built vpc-… 10.0.0.0/16 with 2 subnets, igw-…, rtb-…; asked for …`, or
/// `nothing to do: seoul is built`).
pub async fn provision(
    clients: &Ec2,
    deployment_regions: &[Region],
    pool: &[Ipv4Net],
    detail: &Value,
) -> Result<String, BuildError> {
    let request = NetworkRequest::from_detail(detail)?;
    request.check_regions(deployment_regions)?;
    let (name, region) = (&request.name, &request.region);
    let observed = observe(clients, region, deployment_regions, name, &request.peers)
        .await
        .map_err(|source| BuildError::Observe { name: name.clone(), region: region.clone(), source })?;
    let design = provision::design(&request, &observed, pool)?;

    let mut progress = Progress::default();
    if let Err(source) = run(clients, region, &design.actions, &mut progress).await {
        let done = progress.did.len();
        let step = design.actions.get(done).map(ToString::to_string).unwrap_or_default();
        tracing::error!(network = %name, region = %region, step = %step, error = %source, "provisioning stopped");
        return Err(BuildError::Apply {
            name: name.clone(),
            done,
            planned: design.actions.len(),
            step,
            did: progress.did,
            source,
        });
    }
    let summary = provision::summary(&design, &progress.created).to_string();
    tracing::info!(network = %name, region = %region, steps = design.actions.len(), summary = %summary, "provisioned");
    Ok(summary)
}

/// Reads what the plan needs: the VPCs of `region` tagged `tagpeer-network` =
/// `name` with their subnets, route tables and internet gateways; the region's
/// zones; every VPC range of the deployment's regions; and each peer's ranges
/// (a peer is looked up in its region, the reference's or `region`).
///
/// One DescribeVpcs a region, DescribeAvailabilityZones and
/// DescribeInternetGateways; DescribeSubnets and DescribeRouteTables once the VPC exists.
pub async fn observe(
    clients: &Ec2,
    region: &Region,
    deployment_regions: &[Region],
    name: &str,
    peers: &[VpcRef],
) -> Result<Observed, AwsError> {
    let client = clients.client(region)?;
    let mut regions = deployment_regions.to_vec();
    if !regions.contains(region) {
        regions.push(region.clone());
    }
    let (all, zones, gateways) =
        tokio::try_join!(all_vpcs(clients, &regions), zones(client, region), gateways(client, region))?;

    let mine = |tags: &BTreeMap<String, String>| tags.get(provision::NETWORK).is_some_and(|n| n == name);
    let mut vpcs: Vec<provision::Vpc> = all
        .iter()
        .filter(|v| &v.endpoint.region == region && mine(&v.tags))
        .filter_map(|v| match v.ipv4.first() {
            Some(IpNet::V4(cidr)) => Some(provision::Vpc {
                id: v.endpoint.vpc_id.clone(),
                cidr: *cidr,
                tags: v.tags.clone(),
                dns_hostnames: false,
            }),
            _ => None,
        })
        .collect();
    for vpc in &mut vpcs {
        let out = client
            .describe_vpc_attribute()
            .vpc_id(vpc.id.as_str())
            .attribute(ec2::types::VpcAttributeName::EnableDnsHostnames)
            .send()
            .await
            .map_err(|e| aws_error("DescribeVpcAttribute", region, e))?;
        vpc.dns_hostnames = out.enable_dns_hostnames().and_then(|v| v.value()).unwrap_or(false);
    }
    let ids: BTreeSet<VpcId> = vpcs.iter().map(|v| v.id.clone()).collect();

    let taken = all.iter().flat_map(|v| v.ipv4.iter().copied()).collect();
    let peers = peers
        .iter()
        .filter_map(|p| {
            let in_region = p.region.as_ref().unwrap_or(region);
            let found = all.iter().find(|v| {
                &v.endpoint.region == in_region
                    && v.endpoint.vpc_id == p.vpc_id
                    && p.account.as_ref().is_none_or(|a| a == &v.endpoint.account)
            })?;
            Some((p.clone(), found.ipv4.clone()))
        })
        .collect();

    let (mut subnets, tables) = if ids.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        tokio::try_join!(subnets_of(client, region, &ids), route_tables_of(client, region, &ids))?
    };
    // Explicit associations, from every route table of the VPC (a person's too).
    for table in &tables {
        for a in table.associations() {
            let live = a.association_state().and_then(|s| s.state()).is_none_or(|s| {
                matches!(s, RouteTableAssociationStateCode::Associated | RouteTableAssociationStateCode::Associating)
            });
            let (Some(subnet), Some(id), false, true) =
                (a.subnet_id(), table.route_table_id(), a.main() == Some(true), live)
            else {
                continue;
            };
            if let (Some(s), Ok(id)) = (subnets.iter_mut().find(|s| s.id == subnet), id.parse()) {
                s.route_table = Some(id);
            }
        }
    }
    let route_tables = tables
        .iter()
        .filter(|t| mine(&tags(t.tags())))
        .filter_map(|t| {
            Some(RouteTable {
                id: t.route_table_id()?.parse().ok()?,
                vpc: t.vpc_id()?.parse().ok()?,
                default_route: t
                    .routes()
                    .iter()
                    .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
                    .map(|r| super::route_target_id(r).to_owned()),
            })
        })
        .collect();
    let mut gateways = gateways
        .iter()
        .filter_map(|g| {
            let attached_to = g
                .attachments()
                .iter()
                .filter(|a| !matches!(a.state(), Some(AttachmentStatus::Detached | AttachmentStatus::Detaching)))
                .find_map(|a| a.vpc_id()?.parse::<VpcId>().ok());
            let ours = mine(&tags(g.tags())) || attached_to.as_ref().is_some_and(|v| ids.contains(v));
            if !ours {
                return None;
            }
            Some(Gateway { id: g.internet_gateway_id()?.to_owned(), attached_to })
        })
        .collect::<Vec<_>>();
    gateways.sort_by(|a, b| a.id.cmp(&b.id));
    subnets.sort_by_key(|s| s.cidr);

    Ok(Observed { regions: deployment_regions.to_vec(), vpcs, subnets, gateways, route_tables, zones, taken, peers })
}

/// Makes the steps in order, in `region`, tagging what it creates as it creates
/// it. Returns what each step did (`created vpc-… 10.0.0.0/16 (seoul)`, …); the
/// first failure ends the run.
pub async fn apply(clients: &Ec2, region: &Region, actions: &[ProvisionAction]) -> Result<Vec<String>, AwsError> {
    let mut progress = Progress::default();
    run(clients, region, actions, &mut progress).await?;
    Ok(progress.did)
}

/// What the steps that ran created (in order, `None` for those that create
/// nothing), and what each did.
#[derive(Default)]
struct Progress {
    created: Vec<Option<String>>,
    did: Vec<String>,
}

async fn run(clients: &Ec2, region: &Region, actions: &[ProvisionAction], p: &mut Progress) -> Result<(), AwsError> {
    let client = clients.client(region)?;
    for action in actions {
        let (created, did) = step(client, region, action, &p.created).await?;
        tracing::info!(region = %region, action = action.api_name(), did = %did, "provision step");
        p.created.push(created);
        p.did.push(did);
    }
    Ok(())
}

async fn step(
    client: &ec2::Client,
    region: &Region,
    action: &ProvisionAction,
    created: &[Option<String>],
) -> Result<(Option<String>, String), AwsError> {
    let api = action.api_name();
    let id = |r: &Ref| {
        r.resolve(created)
            .map(str::to_owned)
            .ok_or_else(|| malformed(api, region, &format!("{r} was not created before \"{action}\"")))
    };
    let missing = |what: &str| malformed(api, region, &format!("no {what} in the answer"));
    match action {
        ProvisionAction::CreateVpc { network, name, cidr } => {
            let out = client
                .create_vpc()
                .cidr_block(cidr.to_string())
                .tag_specifications(labels(ResourceType::Vpc, network, name))
                .send()
                .await
                .map_err(|e| aws_error(api, region, e))?;
            let vpc = out.vpc().and_then(|v| v.vpc_id()).ok_or_else(|| missing("VPC id"))?;
            Ok((Some(vpc.to_owned()), format!("created {vpc} {cidr} ({name})")))
        }
        ProvisionAction::CreateSubnet { network, name, vpc, cidr, zone } => {
            let out = client
                .create_subnet()
                .vpc_id(id(vpc)?)
                .cidr_block(cidr.to_string())
                .availability_zone(zone)
                .tag_specifications(labels(ResourceType::Subnet, network, name))
                .send()
                .await
                .map_err(|e| aws_error(api, region, e))?;
            let subnet = out.subnet().and_then(|s| s.subnet_id()).ok_or_else(|| missing("subnet id"))?;
            Ok((Some(subnet.to_owned()), format!("created {subnet} {cidr} in {zone} ({name})")))
        }
        ProvisionAction::CreateInternetGateway { network, name } => {
            let out = client
                .create_internet_gateway()
                .tag_specifications(labels(ResourceType::InternetGateway, network, name))
                .send()
                .await
                .map_err(|e| aws_error(api, region, e))?;
            let igw =
                out.internet_gateway().and_then(|g| g.internet_gateway_id()).ok_or_else(|| missing("gateway id"))?;
            Ok((Some(igw.to_owned()), format!("created {igw} ({name})")))
        }
        ProvisionAction::AttachInternetGateway { gateway, vpc } => {
            let (igw, vpc) = (id(gateway)?, id(vpc)?);
            client
                .attach_internet_gateway()
                .internet_gateway_id(&igw)
                .vpc_id(&vpc)
                .send()
                .await
                .map_err(|e| aws_error(api, region, e))?;
            Ok((None, format!("attached {igw} to {vpc}")))
        }
        ProvisionAction::EnableDnsHostnames { vpc } => {
            let vpc = id(vpc)?;
            client
                .modify_vpc_attribute()
                .vpc_id(&vpc)
                .enable_dns_hostnames(ec2::types::AttributeBooleanValue::builder().value(true).build())
                .send()
                .await
                .map_err(|e| aws_error(api, region, e))?;
            Ok((None, format!("turned DNS hostnames on in {vpc}")))
        }
        ProvisionAction::CreateRouteTable { network, name, vpc } => {
            let vpc = id(vpc)?;
            let out = client
                .create_route_table()
                .vpc_id(&vpc)
                .tag_specifications(labels(ResourceType::RouteTable, network, name))
                .send()
                .await
                .map_err(|e| aws_error(api, region, e))?;
            let rtb = out.route_table().and_then(|t| t.route_table_id()).ok_or_else(|| missing("route table id"))?;
            Ok((Some(rtb.to_owned()), format!("created {rtb} in {vpc} ({name})")))
        }
        ProvisionAction::AssociateRouteTable { route_table, subnet } => {
            let (rtb, subnet) = (id(route_table)?, id(subnet)?);
            client
                .associate_route_table()
                .route_table_id(&rtb)
                .subnet_id(&subnet)
                .send()
                .await
                .map_err(|e| aws_error(api, region, e))?;
            Ok((None, format!("associated {rtb} with {subnet}")))
        }
        ProvisionAction::CreateDefaultRoute { route_table, gateway } => {
            let (rtb, igw) = (id(route_table)?, id(gateway)?);
            client
                .create_route()
                .route_table_id(&rtb)
                .destination_cidr_block("0.0.0.0/0")
                .gateway_id(&igw)
                .send()
                .await
                .map_err(|e| aws_error(api, region, e))?;
            Ok((None, format!("routed 0.0.0.0/0 in {rtb} to {igw}")))
        }
        ProvisionAction::TagIntent { vpc, peers } => {
            let (vpc, value) = (id(vpc)?, ProvisionAction::intent_value(peers));
            client
                .create_tags()
                .resources(&vpc)
                .tags(tag(intent::PEERS, &value))
                .send()
                .await
                .map_err(|e| aws_error(api, region, e))?;
            Ok((None, format!("tagged {vpc} {}={value}", intent::PEERS)))
        }
    }
}

/// `tagpeer-network` and `Name`, set as the resource is created.
fn labels(resource: ResourceType, network: &str, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .tags(tag(provision::NETWORK, network))
        .tags(tag("Name", name))
        .build()
}

/// Every VPC of the regions, the regions side by side.
async fn all_vpcs(clients: &Ec2, regions: &[Region]) -> Result<Vec<model::Vpc>, AwsError> {
    let seen = clients.in_every_region(regions, |client, region| async move {
        let vpcs: Vec<ec2::types::Vpc> = all_items!(client.describe_vpcs(), "DescribeVpcs", &region)?;
        Ok(vpcs.iter().filter_map(|v| vpc(v, &region)).collect::<Vec<_>>())
    });
    let mut all: Vec<model::Vpc> = seen.await?.into_iter().flat_map(|(_, vpcs)| vpcs).collect();
    all.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    Ok(all)
}

/// The region's availability zones that are available (not local or wavelength zones), by name.
async fn zones(client: &ec2::Client, region: &Region) -> Result<Vec<String>, AwsError> {
    let out = client
        .describe_availability_zones()
        .filters(Filter::builder().name("zone-type").values("availability-zone").build())
        .send()
        .await
        .map_err(|e| aws_error("DescribeAvailabilityZones", region, e))?;
    let mut zones: Vec<String> = out
        .availability_zones()
        .iter()
        .filter(|z| z.state().is_none_or(|s| s == &AvailabilityZoneState::Available))
        .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
        .filter(|z| z.region_name().is_none_or(|r| r == region.as_str()))
        .filter_map(|z| z.zone_name().map(str::to_owned))
        .collect();
    zones.sort();
    zones.dedup();
    Ok(zones)
}

/// Every internet gateway of the region: the network's are the tagged ones and
/// those attached to its VPC, which one filter cannot say.
async fn gateways(client: &ec2::Client, region: &Region) -> Result<Vec<ec2::types::InternetGateway>, AwsError> {
    client
        .describe_internet_gateways()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| aws_error("DescribeInternetGateways", region, e))
}

fn vpc_filter(ids: &BTreeSet<VpcId>) -> Filter {
    Filter::builder().name("vpc-id").set_values(Some(ids.iter().map(ToString::to_string).collect())).build()
}

fn in_vpcs(vpc: Option<&str>, ids: &BTreeSet<VpcId>) -> bool {
    vpc.and_then(|v| v.parse::<VpcId>().ok()).is_some_and(|v| ids.contains(&v))
}

async fn subnets_of(client: &ec2::Client, region: &Region, ids: &BTreeSet<VpcId>) -> Result<Vec<Subnet>, AwsError> {
    let subnets: Vec<ec2::types::Subnet> = client
        .describe_subnets()
        .filters(vpc_filter(ids))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| aws_error("DescribeSubnets", region, e))?;
    Ok(subnets
        .iter()
        .filter(|s| in_vpcs(s.vpc_id(), ids))
        .filter_map(|s| {
            Some(Subnet {
                id: s.subnet_id()?.to_owned(),
                vpc: s.vpc_id()?.parse().ok()?,
                cidr: s.cidr_block()?.parse().ok()?,
                zone: s.availability_zone().unwrap_or_default().to_owned(),
                route_table: None,
            })
        })
        .collect())
}

async fn route_tables_of(
    client: &ec2::Client,
    region: &Region,
    ids: &BTreeSet<VpcId>,
) -> Result<Vec<ec2::types::RouteTable>, AwsError> {
    let tables: Vec<ec2::types::RouteTable> = client
        .describe_route_tables()
        .filters(vpc_filter(ids))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| aws_error("DescribeRouteTables", region, e))?;
    let mut tables: Vec<_> = tables.into_iter().filter(|t| in_vpcs(t.vpc_id(), ids)).collect();
    tables.sort_by(|a, b| a.route_table_id().cmp(&b.route_table_id()));
    Ok(tables)
}
