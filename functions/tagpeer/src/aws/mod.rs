//! The adapter: the only module that names AWS SDK types. It observes a
//! [`World`] and applies [`Action`]s, one regional client per region, all from
//! one standard AWS configuration (so `AWS_ENDPOINT_URL` points them anywhere).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::error::Error as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_ec2 as ec2;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use aws_sdk_eventbridge as eventbridge;
use ipnet::IpNet;

use crate::error::AwsError;
use crate::events::{self, Outgoing};
use crate::ids::{AccountId, Endpoint, PeeringId, Region, VpcId};
use crate::intent;
use crate::model::{Peering, PeeringDns, PeeringState, Route, RouteTable, Target, Vpc, World};
use crate::plan::{Action, Deployment};
use crate::ports::{Calls, Cloud, EventSink};
use std::future::Future;

/// Every item of a paged describe call, or the call's error.
macro_rules! all_items {
    ($request:expr, $name:literal, $region:expr) => {
        $request.into_paginator().items().send().try_collect().await.map_err(|e| aws_error($name, $region, e))
    };
}

/// Seconds since the Unix epoch, by this machine's clock.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The time as the cloud tells it. Every EC2 answer carries a `Date` header
/// (RFC 7231), and tagpeer's decisions that depend on time (when a retry is
/// due, `tagpeer-requested-at`) follow the cloud's clock, not the machine's:
/// the one AWS keeps the connections' lifecycle by, and the one a local cloud
/// can move forward. Until the first answer, the machine's clock stands in.
#[derive(Clone, Debug, Default)]
pub struct CloudClock {
    /// The cloud's time at the last answer, and when, by this machine, it came.
    last: Arc<Mutex<Option<(u64, std::time::Instant)>>>,
}

impl CloudClock {
    /// Unix seconds, by the cloud.
    pub fn now(&self) -> u64 {
        match *self.last.lock().expect("clock lock") {
            Some((secs, at)) => secs.saturating_add(at.elapsed().as_secs()),
            None => unix_now(),
        }
    }

    fn heard(&self, secs: u64) {
        *self.last.lock().expect("clock lock") = Some((secs, std::time::Instant::now()));
    }
}

/// Reads the `Date` header of every answer into the [`CloudClock`].
#[derive(Debug)]
struct DateHeader(CloudClock);

impl ec2::config::Intercept for DateHeader {
    fn name(&self) -> &'static str {
        "tagpeer-cloud-clock"
    }

    fn read_after_transmit(
        &self,
        context: &ec2::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _: &ec2::config::RuntimeComponents,
        _: &mut ec2::config::ConfigBag,
    ) -> Result<(), ec2::error::BoxError> {
        let date = context.response().headers().get("date");
        let parsed =
            date.and_then(|d| ec2::primitives::DateTime::from_str(d, ec2::primitives::DateTimeFormat::HttpDate).ok());
        if let Some(secs) = parsed.and_then(|t| u64::try_from(t.secs()).ok()) {
            self.0.heard(secs);
        }
        Ok(())
    }
}

/// Counts every EC2 attempt a client sends and those AWS answers with a
/// throttling error (`RequestLimitExceeded`, HTTP 503, as EC2 throttles).
#[derive(Clone, Debug, Default)]
pub struct CallCounter(Arc<CallCounts>);

#[derive(Debug, Default)]
struct CallCounts {
    sent: AtomicU64,
    throttled: AtomicU64,
}

/// EC2's throttling error codes.
const THROTTLING: [&str; 3] = ["RequestLimitExceeded", "Throttling", "ThrottlingException"];

impl CallCounter {
    pub fn calls(&self) -> Calls {
        Calls { sent: self.0.sent.load(Ordering::Relaxed), throttled: self.0.throttled.load(Ordering::Relaxed) }
    }
}

impl ec2::config::Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "tagpeer-call-counter"
    }

    fn read_before_transmit(
        &self,
        _: &ec2::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &ec2::config::RuntimeComponents,
        _: &mut ec2::config::ConfigBag,
    ) -> Result<(), ec2::error::BoxError> {
        self.0.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// After deserialization, the body of an answer has been read whole.
    fn read_after_deserialization(
        &self,
        context: &ec2::config::interceptors::AfterDeserializationInterceptorContextRef<'_>,
        _: &ec2::config::RuntimeComponents,
        _: &mut ec2::config::ConfigBag,
    ) -> Result<(), ec2::error::BoxError> {
        let response = context.response();
        if response.status().is_server_error() || response.status().is_client_error() {
            let body = response.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
            if THROTTLING.iter().any(|code| body.contains(&format!("<Code>{code}</Code>"))) {
                self.0.throttled.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// Sets a route call's destination, IPv4 or IPv6 (each route call has its own builder type).
macro_rules! to_destination {
    ($call:expr, $destination:expr) => {
        match $destination {
            IpNet::V4(_) => $call.destination_cidr_block($destination.to_string()),
            IpNet::V6(_) => $call.destination_ipv6_cidr_block($destination.to_string()),
        }
    };
}

pub mod network;
pub mod provision;

/// Attempts per API call, the first included (the SDK's own default is 3).
pub const MAX_ATTEMPTS: u32 = 5;
/// The longest wait between two attempts (the SDK's own default is 20 s).
pub const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(10);

/// The standard AWS configuration (credentials, region, `AWS_ENDPOINT_URL`),
/// with tagpeer's retry settings: the SDK's standard mode (exponential backoff
/// with jitter on throttling, 5xx and connection errors, within the client's
/// retry quota), [`MAX_ATTEMPTS`] attempts, waits up to [`MAX_BACKOFF`]. A
/// function has a minute; a call still failing after that is the
/// invocation's error, and the next event or sweep finishes the step.
/// `AWS_RETRY_MODE` or `AWS_MAX_ATTEMPTS` in the environment take precedence.
pub async fn load_sdk_config() -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    let set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if !set("AWS_RETRY_MODE") && !set("AWS_MAX_ATTEMPTS") {
        loader = loader.retry_config(
            aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS).with_max_backoff(MAX_BACKOFF),
        );
    }
    loader.load().await
}

/// EC2 clients for each region of the deployment, and, made on first use and
/// kept, clients that read other accounts through their reader roles.
#[derive(Clone, Debug)]
pub struct Ec2 {
    clients: HashMap<Region, ec2::Client>,
    clock: CloudClock,
    counter: CallCounter,
    config: SdkConfig,
    /// The reader role's name in every other account, without its region
    /// suffix (`tagpeer-reader` → `arn:aws:iam::ACCOUNT:role/tagpeer-reader-REGION`).
    reader_role: Option<String>,
    readers: Arc<Mutex<HashMap<(AccountId, Region), ec2::Client>>>,
}

impl Ec2 {
    /// One client per region, sharing the configuration's credentials,
    /// endpoint and retry settings.
    pub fn new(config: &SdkConfig, regions: &[Region]) -> Self {
        let clock = CloudClock::default();
        let counter = CallCounter::default();
        let clients = regions
            .iter()
            .map(|r| {
                let conf = ec2::config::Builder::from(config)
                    .region(ec2::config::Region::new(r.to_string()))
                    .interceptor(DateHeader(clock.clone()))
                    .interceptor(counter.clone())
                    .build();
                (r.clone(), ec2::Client::from_conf(conf))
            })
            .collect();
        Self { clients, clock, counter, config: config.clone(), reader_role: None, readers: Default::default() }
    }

    /// The cloud's clock, as its answers tell it.
    pub fn clock(&self) -> &CloudClock {
        &self.clock
    }

    /// Reads other accounts through the role of this name (see [`Ec2::reader_arn`]).
    pub fn with_reader_role(mut self, name: Option<String>) -> Self {
        self.reader_role = name;
        self
    }

    /// `arn:PARTITION:iam::ACCOUNT:role/NAME-REGION`: each regional stack
    /// makes its own reader role, which reads only its own region.
    pub fn reader_arn(name: &str, account: &AccountId, region: &Region) -> String {
        format!("arn:{}:iam::{account}:role/{name}-{region}", region.partition())
    }

    /// The account the configured credentials act in (STS `GetCallerIdentity`).
    pub async fn caller_account(&self) -> Result<AccountId, AwsError> {
        let region = self
            .config
            .region()
            .and_then(|r| r.as_ref().parse().ok())
            .or_else(|| self.clients.keys().next().cloned())
            .ok_or_else(|| AwsError {
                action: "GetCallerIdentity",
                region: String::new(),
                code: "NoRegion".into(),
                message: "no region is configured".into(),
            })?;
        let out = aws_sdk_sts::Client::new(&self.config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| aws_error("GetCallerIdentity", &region, e))?;
        out.account()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| malformed("GetCallerIdentity", &region, "no account id in the answer"))
    }

    async fn reader(&self, account: &AccountId, region: &Region) -> Result<ec2::Client, String> {
        let key = (account.clone(), region.clone());
        if let Some(client) = self.readers.lock().expect("readers lock").get(&key) {
            return Ok(client.clone());
        }
        let name = self.reader_role.as_deref().ok_or("no reader role is configured (TAGPEER_READER_ROLE)")?;
        let sdk_region = aws_config::Region::new(region.to_string());
        let provider = aws_config::sts::AssumeRoleProvider::builder(Self::reader_arn(name, account, region))
            .session_name("tagpeer")
            .region(sdk_region.clone())
            .configure(&self.config)
            .build()
            .await;
        let conf = ec2::config::Builder::from(&self.config)
            .region(sdk_region)
            .credentials_provider(ec2::config::SharedCredentialsProvider::new(provider))
            .interceptor(DateHeader(self.clock.clone()))
            .interceptor(self.counter.clone())
            .build();
        let client = ec2::Client::from_conf(conf);
        self.readers.lock().expect("readers lock").insert(key, client.clone());
        Ok(client)
    }

    /// Reads, through each other account's reader role, the VPCs `reads`
    /// names, their route tables, and that account's view of the connections
    /// already in `world` (the requester's view carries tagpeer's tags). A
    /// region that cannot be read is noted in `world.unreadable`, not fatal:
    /// only the links that need it wait.
    pub async fn observe_remote(&self, world: &mut World, reads: BTreeMap<(AccountId, Region), BTreeSet<VpcId>>) {
        let mut tasks = tokio::task::JoinSet::new();
        for ((account, region), vpcs) in reads {
            let reader = self.reader(&account, &region).await;
            tasks.spawn(async move {
                let seen = match reader {
                    Ok(client) => read_region(&client, &region, Some(&vpcs)).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                (account, region, seen)
            });
        }
        let mut parts = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok(part) = joined {
                parts.push(part);
            }
        }
        parts.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
        for (account, region, seen) in parts {
            match seen {
                Ok(part) => world.merge_remote(part, &account, &region),
                Err(error) => {
                    tracing::warn!(account = %account, region = %region, error = %error, "cannot read the other account");
                    world.unreadable.push((account, region, error));
                }
            }
        }
    }

    fn client(&self, region: &Region) -> Result<&ec2::Client, AwsError> {
        self.clients.get(region).ok_or_else(|| AwsError {
            action: "client",
            region: region.to_string(),
            code: "RegionNotInDeployment".into(),
            message: format!("{region} is not one of this deployment's regions"),
        })
    }

    /// Reads the VPCs, route tables and peering connections of every region, the
    /// regions side by side. A few paged describe calls a region, whatever the
    /// number of links.
    pub async fn observe(&self, regions: &[Region]) -> Result<World, AwsError> {
        let seen =
            self.in_every_region(regions, |client, region| async move { observe_region(&client, &region).await });
        let seen = seen.await?;
        let mut world = World { observed_at: self.clock.now(), ..World::default() };
        let mut listed = Vec::new();
        for (region, part) in seen {
            world.vpcs.extend(part.vpcs);
            world.route_tables.extend(part.route_tables);
            listed.push((region, part.peerings));
        }
        merge_listed(&mut world, listed, regions, None);
        Ok(world)
    }

    /// The deployment's own regions, then what it must read of other
    /// accounts (see [`crate::plan::remote_reads`]).
    pub async fn observe_deployment(&self, deployment: &Deployment) -> Result<World, AwsError> {
        self.observe_naming(deployment, &[]).await
    }

    /// [`Ec2::observe_deployment`], reading also the other accounts' VPCs
    /// among `named` (those a trigger names).
    pub async fn observe_naming(&self, deployment: &Deployment, named: &[Endpoint]) -> Result<World, AwsError> {
        let mut world = self.observe(&deployment.regions).await?;
        let reads = crate::plan::remote_reads(&world, deployment, named);
        if !reads.is_empty() {
            self.observe_remote(&mut world, reads).await;
        }
        self.observe_dns(&mut world, deployment).await?;
        Ok(world)
    }

    /// `world` with the connections `ids` read again, and nothing else: one
    /// `DescribeVpcPeeringConnections` by id in each of their accepters'
    /// regions (whether it lists the connection yet, and its state), instead
    /// of every describe in every region.
    /// A connection to another account, whose tags that account's reader
    /// role adds, is read as a whole observation reads it.
    pub async fn refresh_peerings(
        &self,
        deployment: &Deployment,
        world: &World,
        ids: &BTreeSet<PeeringId>,
    ) -> Result<World, AwsError> {
        let waiting: Vec<&Peering> = world.peerings.iter().filter(|p| ids.contains(&p.id)).collect();
        if waiting.len() != ids.len()
            || !waiting.iter().all(|p| deployment.is_home(&p.requester) && deployment.is_home(&p.accepter))
        {
            // Both sides of what is awaited: another account's request may
            // not be listed in this deployment's regions yet.
            let named: Vec<Endpoint> = waiting.iter().flat_map(|p| [p.requester.clone(), p.accepter.clone()]).collect();
            return self.observe_naming(deployment, &named).await;
        }
        // What a step waits for is AWS moving a connection on, which its
        // accepter's region shows as it happens: a new request appears there
        // once AWS has made it, and an accepted one turns active there as in
        // the requester's. So one describe by id in each awaited connection's
        // accepter region; the requester's view, which carries tagpeer's tags,
        // is kept from `world`.
        let regions: Vec<Region> =
            deployment.regions.iter().filter(|r| waiting.iter().any(|p| &p.accepter.region == *r)).cloned().collect();
        let by_id = vec![ec2::types::Filter::builder()
            .name("vpc-peering-connection-id")
            .set_values(Some(ids.iter().map(ToString::to_string).collect()))
            .build()];
        let seen = self.in_every_region(&regions, |client, region| {
            let by_id = by_id.clone();
            async move {
                let found = all_items!(
                    client.describe_vpc_peering_connections().set_filters(Some(by_id)),
                    "DescribeVpcPeeringConnections",
                    &region
                )?;
                Ok(found.iter().filter_map(|p| peering(p, &region)).collect::<Vec<_>>())
            }
        });
        let seen = seen.await?;
        let mut fresh = world.clone();
        fresh.observed_at = self.clock.now();
        for p in fresh.peerings.iter_mut().filter(|p| ids.contains(&p.id)) {
            // moto may ignore the filter: look the id up.
            let listed = seen
                .iter()
                .filter(|(region, _)| region == &p.accepter.region)
                .flat_map(|(_, listed)| listed)
                .find(|s| s.id == p.id);
            match listed {
                Some(there) => {
                    p.state = there.state.clone();
                    p.hidden_from_accepter = false;
                }
                None => p.hidden_from_accepter = true,
            }
        }
        Ok(fresh)
    }

    /// The DNS attributes of the VPCs whose links ask for DNS resolution
    /// ([`crate::plan::dns_reads`]): two `DescribeVpcAttribute` calls each,
    /// made only when `tagpeer:dns` is on somewhere.
    async fn observe_dns(&self, world: &mut World, deployment: &Deployment) -> Result<(), AwsError> {
        let mut tasks = tokio::task::JoinSet::new();
        for vpc in crate::plan::dns_reads(world, deployment) {
            let client = self.client(&vpc.region)?.clone();
            tasks.spawn(async move {
                let attribute = |name: ec2::types::VpcAttributeName| {
                    let (client, id) = (client.clone(), vpc.vpc_id.to_string());
                    async move { client.describe_vpc_attribute().vpc_id(id).attribute(name).send().await }
                };
                let (hostnames, support) = tokio::join!(
                    attribute(ec2::types::VpcAttributeName::EnableDnsHostnames),
                    attribute(ec2::types::VpcAttributeName::EnableDnsSupport),
                );
                let name = "DescribeVpcAttribute";
                let hostnames = hostnames.map_err(|e| aws_error(name, &vpc.region, e))?;
                let support = support.map_err(|e| aws_error(name, &vpc.region, e))?;
                let on = |v: Option<&ec2::types::AttributeBooleanValue>| v.and_then(|v| v.value()).unwrap_or(false);
                let dns = crate::model::VpcDns {
                    hostnames: on(hostnames.enable_dns_hostnames()),
                    support: on(support.enable_dns_support()),
                };
                Ok::<_, AwsError>((vpc, dns))
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (vpc, dns) = joined.map_err(|e| AwsError {
                action: "DescribeVpcAttribute",
                region: String::new(),
                code: "TaskFailed".into(),
                message: e.to_string(),
            })??;
            if let Some(v) = world.vpc_mut(&vpc) {
                v.dns = Some(dns);
            }
        }
        Ok(())
    }

    /// Runs `read` against every region's client, the regions side by side;
    /// the answers come in the order of `regions`, whatever order they finished in.
    async fn in_every_region<T, F, Fut>(&self, regions: &[Region], read: F) -> Result<Vec<(Region, T)>, AwsError>
    where
        F: Fn(ec2::Client, Region) -> Fut,
        Fut: std::future::Future<Output = Result<T, AwsError>> + Send + 'static,
        T: Send + 'static,
    {
        let mut tasks = tokio::task::JoinSet::new();
        for region in regions {
            let answer = read(self.client(region)?.clone(), region.clone());
            let region = region.clone();
            tasks.spawn(async move { answer.await.map(|seen| (region, seen)) });
        }
        let mut seen = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            seen.push(joined.map_err(|e| AwsError {
                action: "observe",
                region: String::new(),
                code: "TaskFailed".into(),
                message: e.to_string(),
            })??);
        }
        seen.sort_by_key(|(region, _)| regions.iter().position(|r| r == region));
        Ok(seen)
    }

    /// Makes one change. Returns the id of a connection it requested.
    pub async fn perform(&self, action: &Action) -> Result<Option<PeeringId>, AwsError> {
        let name = action.api_name();
        match action {
            // Not an EC2 call: the handler sends it as an event.
            Action::HandOver { .. } => Ok(None),
            Action::RequestPeering { link, requester, accepter, attempt } => {
                let region = &requester.region;
                let tags = TagSpecification::builder()
                    .resource_type(ResourceType::VpcPeeringConnection)
                    .tags(tag(intent::MANAGED, "true"))
                    .tags(tag(intent::LINK, &link.to_string()))
                    .tags(tag(intent::ATTEMPT, &attempt.to_string()))
                    .tags(tag(intent::REQUESTED_AT, &self.clock.now().to_string()))
                    .tags(tag("Name", &format!("tagpeer {} {}", requester.vpc_id, accepter.vpc_id)))
                    .build();
                let out = self
                    .client(region)?
                    .create_vpc_peering_connection()
                    .vpc_id(requester.vpc_id.as_str())
                    .peer_vpc_id(accepter.vpc_id.as_str())
                    .peer_region(accepter.region.as_str())
                    .peer_owner_id(accepter.account.as_str())
                    .tag_specifications(tags)
                    .send()
                    .await
                    .map_err(|e| aws_error(name, region, e))?;
                let id = out
                    .vpc_peering_connection()
                    .and_then(|p| p.vpc_peering_connection_id())
                    .and_then(|id| id.parse().ok())
                    .ok_or_else(|| malformed(name, region, "no peering connection id in the answer"))?;
                Ok(Some(id))
            }
            Action::AcceptPeering { region, peering, .. } => {
                self.client(region)?
                    .accept_vpc_peering_connection()
                    .vpc_peering_connection_id(peering.as_str())
                    .send()
                    .await
                    .map_err(|e| aws_error(name, region, e))?;
                Ok(None)
            }
            Action::CreateRoute { region, route_table, destination, peering, .. } => {
                let call = self
                    .client(region)?
                    .create_route()
                    .route_table_id(route_table.as_str())
                    .vpc_peering_connection_id(peering.as_str());
                let call = to_destination!(call, destination);
                match call.send().await.map_err(|e| aws_error(name, region, e)) {
                    // Another invocation made it first (both routers route both
                    // sides when a range changes); the next read judges it.
                    Err(e) if e.is("RouteAlreadyExists") => {
                        tracing::info!(route_table = %route_table, destination = %destination, "already routed");
                        Ok(None)
                    }
                    other => other.map(|_| None),
                }
            }
            Action::ReplaceRoute { region, route_table, destination, peering, .. } => {
                let call = self
                    .client(region)?
                    .replace_route()
                    .route_table_id(route_table.as_str())
                    .vpc_peering_connection_id(peering.as_str());
                let call = to_destination!(call, destination);
                call.send().await.map_err(|e| aws_error(name, region, e))?;
                Ok(None)
            }
            Action::DeleteRoute { region, route_table, destination, .. } => {
                let call = self.client(region)?.delete_route().route_table_id(route_table.as_str());
                let call = to_destination!(call, destination);
                match call.send().await.map_err(|e| aws_error(name, region, e)) {
                    Err(e) if e.is("InvalidRoute.NotFound") => Ok(None), // already gone
                    other => other.map(|_| None),
                }
            }
            Action::DeletePeering { region, peering, .. } => {
                let sent = self
                    .client(region)?
                    .delete_vpc_peering_connection()
                    .vpc_peering_connection_id(peering.as_str())
                    .send()
                    .await
                    .map_err(|e| aws_error(name, region, e));
                match sent {
                    Err(e) if e.is("InvalidVpcPeeringConnectionID.NotFound") => Ok(None), // already gone
                    other => other.map(|_| None),
                }
            }
            Action::SetDns { region, peering, requester_side, on, .. } => {
                let options = ec2::types::PeeringConnectionOptionsRequest::builder()
                    .allow_dns_resolution_from_remote_vpc(*on)
                    .build();
                let call = self
                    .client(region)?
                    .modify_vpc_peering_connection_options()
                    .vpc_peering_connection_id(peering.as_str());
                let call = if *requester_side {
                    call.requester_peering_connection_options(options)
                } else {
                    call.accepter_peering_connection_options(options)
                };
                call.send().await.map_err(|e| aws_error(name, region, e))?;
                Ok(None)
            }
            Action::SetStatus { vpc, status: Some(status), .. } => {
                self.client(&vpc.region)?
                    .create_tags()
                    .resources(vpc.vpc_id.as_str())
                    .tags(tag(intent::STATUS, status))
                    .send()
                    .await
                    .map_err(|e| aws_error(name, &vpc.region, e))?;
                Ok(None)
            }
            Action::SetRetry { link, vpc, last } => {
                let key = crate::plan::retry_key(link.other(vpc));
                let client = self.client(&vpc.region)?;
                match last {
                    Some((attempt, at)) => client
                        .create_tags()
                        .resources(vpc.vpc_id.as_str())
                        .tags(tag(&key, &format!("{attempt}@{at}")))
                        .send()
                        .await
                        .map_err(|e| aws_error(name, &vpc.region, e))
                        .map(|_| None),
                    None => client
                        .delete_tags()
                        .resources(vpc.vpc_id.as_str())
                        .tags(Tag::builder().key(&key).build())
                        .send()
                        .await
                        .map_err(|e| aws_error(name, &vpc.region, e))
                        .map(|_| None),
                }
            }
            Action::SetStatus { vpc, status: None, .. } => {
                self.client(&vpc.region)?
                    .delete_tags()
                    .resources(vpc.vpc_id.as_str())
                    .tags(Tag::builder().key(intent::STATUS).build())
                    .send()
                    .await
                    .map_err(|e| aws_error(name, &vpc.region, e))?;
                Ok(None)
            }
        }
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn aws_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    action: &'static str,
    region: &Region,
    err: SdkError<E, R>,
) -> AwsError {
    let (code, message) = match &err {
        SdkError::ServiceError(service) => (
            service.err().code().unwrap_or("Unknown").to_owned(),
            service.err().message().unwrap_or_default().to_owned(),
        ),
        SdkError::TimeoutError(_) => ("Timeout".to_owned(), err.to_string()),
        SdkError::DispatchFailure(_) => {
            ("DispatchFailure".to_owned(), err.source().map(ToString::to_string).unwrap_or_else(|| err.to_string()))
        }
        _ => ("Unknown".to_owned(), error_chain(&err)),
    };
    AwsError { action, region: region.to_string(), code, message }
}

/// The whole chain of causes, on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn malformed(action: &'static str, region: &Region, what: &str) -> AwsError {
    AwsError { action, region: region.to_string(), code: "MalformedResponse".into(), message: what.to_owned() }
}

async fn observe_region(client: &ec2::Client, region: &Region) -> Result<World, AwsError> {
    read_region(client, region, None).await
}

/// One region's VPCs (all of them, or the `only` ones, as an other account's
/// reader role reads them), their route tables, and the connections that
/// touch them (filtered here too: moto ignores filters on connections).
async fn read_region(client: &ec2::Client, region: &Region, only: Option<&BTreeSet<VpcId>>) -> Result<World, AwsError> {
    let by_vpc = only.map(|ids| {
        vec![ec2::types::Filter::builder()
            .name("vpc-id")
            .set_values(Some(ids.iter().map(ToString::to_string).collect()))
            .build()]
    });
    let (vpcs, tables, peerings) = tokio::try_join!(
        async { all_items!(client.describe_vpcs().set_filters(by_vpc.clone()), "DescribeVpcs", region) },
        async { all_items!(client.describe_route_tables().set_filters(by_vpc.clone()), "DescribeRouteTables", region) },
        async { all_items!(client.describe_vpc_peering_connections(), "DescribeVpcPeeringConnections", region) },
    )?;
    let wanted = |vpc: &VpcId| only.is_none_or(|ids| ids.contains(vpc));
    let vpcs: Vec<Vpc> = vpcs.iter().filter_map(|v| vpc(v, region)).filter(|v| wanted(&v.endpoint.vpc_id)).collect();
    let route_tables = tables
        .iter()
        .filter_map(|t| {
            let vpc_id = t.vpc_id()?.parse().ok()?;
            // A route table belongs to its VPC's owner; find it among the VPCs.
            let owner = vpcs.iter().find(|v| v.endpoint.vpc_id == vpc_id)?.endpoint.clone();
            route_table(t, owner)
        })
        .collect();
    let peerings = peerings
        .iter()
        .filter_map(|p| peering(p, region))
        .filter(|p| wanted(&p.requester.vpc_id) || wanted(&p.accepter.vpc_id))
        .collect();
    Ok(World { vpcs, route_tables, peerings, ..World::default() })
}

/// Merges into `world` the connections each region listed (the requester's
/// view, which carries tagpeer's tags, wins), keeping to `only` when given,
/// and marks each of them that its accepter's region, among those `read`, did
/// not list yet: AWS shows a new request there a moment after it is made.
fn merge_listed(
    world: &mut World,
    listed_in: Vec<(Region, Vec<Peering>)>,
    read: &[Region],
    only: Option<&BTreeSet<PeeringId>>,
) {
    let wanted = |id: &PeeringId| only.is_none_or(|ids| ids.contains(id));
    let mut listed: BTreeSet<(PeeringId, Region)> = BTreeSet::new();
    let mut seen = Vec::new();
    for (region, peerings) in listed_in {
        for peering in peerings.into_iter().filter(|p| wanted(&p.id)) {
            listed.insert((peering.id.clone(), region.clone()));
            seen.push((peering, region.clone()));
        }
    }
    world.merge_peerings(seen);
    for p in world.peerings.iter_mut().filter(|p| wanted(&p.id)) {
        let region = p.accepter.region.clone();
        p.hidden_from_accepter = read.contains(&region) && !listed.contains(&(p.id.clone(), region));
    }
}

fn tags(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect()
}

fn vpc(v: &ec2::types::Vpc, region: &Region) -> Option<Vpc> {
    let associated = |state: Option<&ec2::types::VpcCidrBlockState>| {
        state.and_then(|s| s.state()) == Some(&ec2::types::VpcCidrBlockStateCode::Associated)
    };
    let mut ipv4: Vec<IpNet> = v
        .cidr_block_association_set()
        .iter()
        .filter(|a| associated(a.cidr_block_state()))
        .filter_map(|a| a.cidr_block()?.parse().ok())
        .collect();
    // The primary range first.
    if let Some(primary) = v.cidr_block().and_then(|c| c.parse::<IpNet>().ok()) {
        ipv4.retain(|c| c != &primary);
        ipv4.insert(0, primary);
    }
    let ipv6 = v
        .ipv6_cidr_block_association_set()
        .iter()
        .filter(|a| associated(a.ipv6_cidr_block_state()))
        .filter_map(|a| a.ipv6_cidr_block()?.parse().ok())
        .collect();
    Some(Vpc {
        endpoint: Endpoint::new(v.owner_id()?.parse().ok()?, region.clone(), v.vpc_id()?.parse().ok()?),
        ipv4,
        ipv6,
        tags: tags(v.tags()),
        dns: None,
    })
}

/// A route to a CIDR block (routes to prefix lists are not tagpeer's concern).
fn route(r: &ec2::types::Route) -> Option<Route> {
    let destination: IpNet = r.destination_cidr_block().or(r.destination_ipv6_cidr_block())?.parse().ok()?;
    let target = if r.gateway_id() == Some("local") {
        Target::Local
    } else if let Some(pcx) = r.vpc_peering_connection_id().and_then(|id| id.parse().ok()) {
        Target::Peering(pcx)
    } else {
        Target::Other(route_target_id(r).to_owned())
    };
    Some(Route { destination, target })
}

/// The id of whatever a route sends its traffic to.
fn route_target_id(r: &ec2::types::Route) -> &str {
    [
        r.gateway_id(),
        r.nat_gateway_id(),
        r.transit_gateway_id(),
        r.vpc_peering_connection_id(),
        r.network_interface_id(),
        r.instance_id(),
        r.egress_only_internet_gateway_id(),
        r.local_gateway_id(),
        r.carrier_gateway_id(),
        r.core_network_arn(),
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap_or("unknown")
}

fn route_table(t: &ec2::types::RouteTable, vpc: Endpoint) -> Option<RouteTable> {
    let routes = t.routes().iter().filter_map(route).collect();
    Some(RouteTable {
        id: t.route_table_id()?.parse().ok()?,
        main: t.associations().iter().any(|a| a.main() == Some(true)),
        vpc,
        routes,
    })
}

fn dns_option(info: Option<&ec2::types::VpcPeeringConnectionVpcInfo>) -> bool {
    info.and_then(|i| i.peering_options()).and_then(|o| o.allow_dns_resolution_from_remote_vpc()).unwrap_or(false)
}

fn peering(p: &ec2::types::VpcPeeringConnection, seen_in: &Region) -> Option<Peering> {
    let side = |info: Option<&ec2::types::VpcPeeringConnectionVpcInfo>| -> Option<Endpoint> {
        let info = info?;
        let region = match info.region() {
            Some(r) => r.parse().ok()?,
            None => seen_in.clone(),
        };
        Some(Endpoint::new(info.owner_id()?.parse().ok()?, region, info.vpc_id()?.parse().ok()?))
    };
    Some(Peering {
        id: p.vpc_peering_connection_id()?.parse().ok()?,
        requester: side(p.requester_vpc_info())?,
        accepter: side(p.accepter_vpc_info())?,
        state: PeeringState::from_code(p.status().and_then(|s| s.code()).map(|c| c.as_str()).unwrap_or("unknown")),
        tags: tags(p.tags()),
        dns: PeeringDns { requester: dns_option(p.requester_vpc_info()), accepter: dns_option(p.accepter_vpc_info()) },
        hidden_from_accepter: false,
    })
}

impl Cloud for Ec2 {
    fn observe(
        &self,
        deployment: &Deployment,
        named: &[Endpoint],
    ) -> impl Future<Output = Result<World, AwsError>> + Send {
        self.observe_naming(deployment, named)
    }

    fn refresh_peerings(
        &self,
        deployment: &Deployment,
        world: &World,
        ids: &BTreeSet<PeeringId>,
    ) -> impl Future<Output = Result<World, AwsError>> + Send {
        Ec2::refresh_peerings(self, deployment, world, ids)
    }

    fn perform(&self, action: &Action) -> impl Future<Output = Result<Option<PeeringId>, AwsError>> + Send {
        Ec2::perform(self, action)
    }

    fn calls(&self) -> Calls {
        self.counter.calls()
    }
}

/// Where tagpeer's own events go: `PutEvents` to this bus (the default one)
/// in whichever of the deployment's regions an event is for, through one
/// client a region ([`Outgoing::destinations`] decides which): no forwarding
/// rule stands between the regions, so a deployment has as many as it lists.
#[derive(Clone, Debug)]
pub struct EventBridge {
    clients: BTreeMap<Region, eventbridge::Client>,
    bus: String,
}

impl EventBridge {
    /// A sender to `bus` in each of `regions`.
    pub fn new(config: &SdkConfig, bus: String, regions: &[Region]) -> Self {
        let clients = regions
            .iter()
            .map(|r| {
                let conf =
                    eventbridge::config::Builder::from(config).region(eventbridge::config::Region::new(r.to_string()));
                (r.clone(), eventbridge::Client::from_conf(conf.build()))
            })
            .collect();
        Self { clients, bus }
    }
}

impl EventSink for EventBridge {
    async fn send(&self, region: &Region, outgoing: &[Outgoing]) -> Result<(), AwsError> {
        let bus = &self.bus;
        let client = self.clients.get(region).ok_or_else(|| AwsError {
            action: "PutEvents",
            region: region.to_string(),
            code: "NotADeploymentRegion".to_owned(),
            message: format!("{region} is not one of the deployment's regions"),
        })?;
        // PutEvents takes at most 10 entries a call.
        for chunk in outgoing.chunks(10) {
            let entries = chunk.iter().map(|o| {
                eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(bus)
                    .source(events::SOURCE)
                    .detail_type(o.detail_type)
                    .set_resources(Some(o.detail.vpcs().into_iter().map(events::vpc_arn).collect()))
                    .detail(serde_json::to_string(&o.detail).expect("details serialize"))
                    .build()
            });
            let out = client
                .put_events()
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .map_err(|e| aws_error("PutEvents", region, e))?;
            if out.failed_entry_count() > 0 {
                let first = out.entries().iter().find(|e| e.error_code().is_some());
                return Err(AwsError {
                    action: "PutEvents",
                    region: region.to_string(),
                    code: first.and_then(|e| e.error_code()).unwrap_or("Unknown").to_owned(),
                    message: first.and_then(|e| e.error_message()).unwrap_or_default().to_owned(),
                });
            }
        }
        Ok(())
    }
}
