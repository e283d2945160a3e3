//! The test bed the end-to-end tests and the demo share: moto's real server on
//! a free loopback port, the seed scenario's networks built through the real
//! AWS SDK, and the three functions' real handlers, with tagpeer's events
//! routed between them as the template's rules route them.

pub mod local;
pub mod reliability;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::{Credentials, Region as SdkRegion};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use serde_json::{json, Value};
use tagpeer::aws::Ec2;
use tagpeer::error::HandlerError;
use tagpeer::events::{self, Outgoing};
use tagpeer::ids::{Endpoint, Region};
use tagpeer::intent::STATUS;
use tagpeer::model::{PeeringState, Target, World};
use tagpeer::plan::{Deployment, Role};
use tagpeer::ports::EventSink;
use tagpeer::{App, Config, Report};

pub const SEOUL: &str = "ap-northeast-2";
pub const OSAKA: &str = "ap-northeast-3";
pub const ACCOUNT: &str = "123456789012";
pub const ROLES: [Role; 3] = [Role::Requester, Role::Accepter, Role::Router];

/// The repository's root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository").to_path_buf()
}

/// AWS's EC2 and STS as the in-process tests meet them: moto's server behind
/// the local cloud's endpoint, which answers as AWS does where moto does not
/// (asynchronous peering states, tags per account and region, race errors,
/// the quotas), with no function processes and no rules of its own: the tests
/// run the handlers. Started on a free loopback port, stopped on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts `python -m localcloud --no-functions` from the repository's
    /// virtual environment (made by `make venv`), with the tests' short
    /// lifecycle ([`local::TEST_LIFECYCLE`]).
    pub fn start() -> Self {
        let python = repo_root().join(".venv/bin/python");
        assert!(python.exists(), "{} is missing: run `make venv` first", python.display());
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port();
        let child = Command::new(&python)
            .args(["-m", "localcloud", "--no-functions", "--port", &port.to_string()])
            .args(["--lifecycle", local::TEST_LIFECYCLE])
            .env("PYTHONPATH", repo_root().join("tests"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", python.display()));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "the endpoint did not listen on {addr} within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, endpoint: format!("http://{addr}") }
    }

    /// The standard AWS configuration, pointed at this server.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(SdkRegion::new(SEOUL))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tagpeer-tests"))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An EC2 client for one region.
pub fn ec2(sdk: &SdkConfig, region: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(sdk).region(SdkRegion::new(region.to_owned())).build(),
    )
}

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

/// The event AWS sends when `changed` keys change on a VPC: the sample in
/// `events/tag-change.json`, pointed at this VPC with its current tags.
pub async fn tag_change_event(sdk: &SdkConfig, vpc: &Endpoint, changed: &[&str]) -> Value {
    let mut event = sample_event("tag-change.json");
    let described =
        ec2(sdk, vpc.region.as_str()).describe_vpcs().vpc_ids(vpc.vpc_id.as_str()).send().await.expect("DescribeVpcs");
    let tags: serde_json::Map<String, Value> = described
        .vpcs()
        .iter()
        .flat_map(|v| v.tags())
        .filter_map(|t| Some((t.key()?.to_owned(), json!(t.value().unwrap_or_default()))))
        .collect();
    event["region"] = json!(vpc.region);
    event["account"] = json!(vpc.account);
    event["resources"] = json!([events::vpc_arn(vpc)]);
    event["detail"]["changed-tag-keys"] = json!(changed);
    event["detail"]["tags"] = Value::Object(tags);
    event
}

/// The schedule's event in one region (`events/scheduled.json`).
pub fn scheduled_event(region: &str) -> Value {
    let mut event = sample_event("scheduled.json");
    event["region"] = json!(region);
    event["resources"] = json!([format!("arn:aws:events:{region}:{ACCOUNT}:rule/tagpeer-sweep")]);
    event
}

/// One of the sample events in `events/`.
pub fn sample_event(name: &str) -> Value {
    let path = repo_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What EventBridge hands a function for one of tagpeer's events, sent from `region`.
/// The in-process functions' event sink: the events each sent, for the
/// test's router to deliver as the template's rules would.
#[derive(Clone, Debug, Default)]
pub struct Outbox(Arc<Mutex<Vec<Outgoing>>>);

impl EventSink for Outbox {
    async fn send(&self, _: &Region, events: &[Outgoing]) -> Result<(), tagpeer::error::AwsError> {
        self.0.lock().expect("no test panics while holding the outbox").extend_from_slice(events);
        Ok(())
    }
}

pub fn envelope(out: &Outgoing, region: &Region) -> Value {
    json!({
        "version": "0",
        "id": format!("tagpeer-test-{}", NEXT_EVENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
        "detail-type": out.detail_type,
        "source": events::SOURCE,
        "account": ACCOUNT,
        "time": "2026-11-27T00:00:00Z",
        "region": region,
        "resources": [events::vpc_arn(out.detail.requester()), events::vpc_arn(out.detail.accepter())],
        "detail": out.detail,
    })
}

static NEXT_EVENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// An event on its way to one function in one region.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub role: Role,
    pub region: String,
    pub event: Value,
}

/// The targets of tagpeer's own events, as the template's rules send them:
/// "Peering Requested" to the accepter in the accepter's region, "Peering
/// Accepted" to the router in both regions.
pub fn route(out: &Outgoing, from: &Region) -> Vec<Delivery> {
    let event = envelope(out, from);
    let to = |role, region: &Region| Delivery { role, region: region.to_string(), event: event.clone() };
    match out.detail_type {
        events::PEERING_REQUESTED => vec![to(Role::Accepter, &out.detail.accepter().region)],
        events::PEERING_ACCEPTED => {
            vec![to(Role::Router, &out.detail.requester().region), to(Role::Router, &out.detail.accepter().region)]
        }
        _ => vec![],
    }
}

/// One function in one region, and the events it has sent.
struct Function {
    role: Role,
    region: String,
    app: App<Ec2, Outbox>,
    outbox: Arc<Mutex<Vec<Outgoing>>>,
}

/// The three functions in both regions, as deployed to one account, over one
/// moto server (which other accounts' deployments may share).
pub struct Cloud {
    pub moto: Arc<Moto>,
    /// Credentials that act in this deployment's account.
    pub sdk: SdkConfig,
    functions: Vec<Function>,
    ec2: Ec2,
    deployment: Deployment,
}

/// The name, without its `-REGION` suffix, of the role each deployment's
/// functions assume to read another account.
pub const READER_ROLE: &str = "tagpeer-reader";

impl Cloud {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A deployment to moto's default account, with `configure`'s changes
    /// (allowed accounts, quotas).
    pub async fn start_with(configure: impl FnOnce(&mut Deployment)) -> Self {
        let moto = Arc::new(Moto::start());
        let sdk = moto.sdk_config().await;
        Self::deploy(moto, sdk, ACCOUNT, configure)
    }

    /// A second deployment, to `account`, on this one's moto server: its
    /// functions act with credentials of that account, got as a person's
    /// would be, by assuming a role there through STS.
    pub async fn other_account(&self, account: &str, configure: impl FnOnce(&mut Deployment)) -> Self {
        let provider =
            aws_config::sts::AssumeRoleProvider::builder(format!("arn:aws:iam::{account}:role/tagpeer-tests"))
                .session_name("tagpeer-tests")
                .region(SdkRegion::new(SEOUL))
                .configure(&self.sdk)
                .build()
                .await;
        let sdk = self
            .sdk
            .to_builder()
            .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(provider))
            .build();
        Self::deploy(self.moto.clone(), sdk, account, configure)
    }

    fn deploy(moto: Arc<Moto>, sdk: SdkConfig, account: &str, configure: impl FnOnce(&mut Deployment)) -> Self {
        let regions: Vec<Region> = [SEOUL, OSAKA].iter().map(|r| r.parse().unwrap()).collect();
        let mut deployment = Deployment::new(account.parse().unwrap(), regions.clone());
        configure(&mut deployment);
        let mut functions = Vec::new();
        for region in &regions {
            for role in ROLES {
                let outbox = Arc::new(Mutex::new(Vec::new()));
                let config = Config {
                    role,
                    region: region.clone(),
                    deployment: deployment.clone(),
                    event_bus: "default".into(),
                    reader_role: Some(READER_ROLE.into()),
                    wait: std::time::Duration::from_secs(5),
                };
                let app = App::new(&sdk, config, Outbox(outbox.clone()));
                functions.push(Function { role, region: region.to_string(), app, outbox });
            }
        }
        let ec2 = Ec2::new(&sdk, &regions).with_reader_role(Some(READER_ROLE.into()));
        Self { moto, sdk, functions, ec2, deployment }
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// Hands one event to one function; returns its answer and the events it sent.
    pub async fn deliver(&self, d: &Delivery) -> (Result<Report, HandlerError>, Vec<Delivery>) {
        let f = self
            .functions
            .iter()
            .find(|f| f.role == d.role && f.region == d.region)
            .expect("each function runs in each region");
        let result = f.app.handle(&d.event).await;
        let sent: Vec<Outgoing> = std::mem::take(&mut *f.outbox.lock().unwrap());
        let region: Region = d.region.parse().unwrap();
        (result, sent.iter().flat_map(|o| route(o, &region)).collect())
    }

    /// Delivers `first`, then every event that follows from it, in order,
    /// each once. Returns every delivery with its answer.
    pub async fn run_chain(&self, first: Delivery) -> Vec<(Delivery, Result<Report, HandlerError>)> {
        let mut queue = std::collections::VecDeque::from([first]);
        let mut log = Vec::new();
        while let Some(d) = queue.pop_front() {
            let (result, next) = self.deliver(&d).await;
            queue.extend(next);
            log.push((d, result));
        }
        log
    }

    /// The schedule fires every function in every region once; the events the
    /// sweep sends are delivered too.
    pub async fn sweep(&self) -> Vec<(Delivery, Result<Report, HandlerError>)> {
        let mut log = Vec::new();
        for role in ROLES {
            for region in [SEOUL, OSAKA] {
                log.extend(
                    self.run_chain(Delivery { role, region: region.into(), event: scheduled_event(region) }).await,
                );
            }
        }
        log
    }

    /// The deployment as it stands, with what it reads of other accounts.
    pub async fn observe(&self) -> World {
        self.ec2.observe_deployment(&self.deployment).await.expect("observing moto")
    }
}

/// The changes a run of deliveries made, across all of them.
pub fn changes(log: &[(Delivery, Result<Report, HandlerError>)]) -> Vec<String> {
    log.iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flat_map(|r| {
            r.changes.iter().map(move |c| format!("{} {} {} {}", r.function, c.action, c.resource, c.outcome))
        })
        .collect()
}

/// A world with its connection ids replaced by their order of appearance, so
/// that two runs compare equal when they built the same thing.
pub fn canonical(world: &World) -> String {
    let mut text = format!("{:?}", World { observed_at: 0, ..world.clone() });
    for (i, p) in world.peerings.iter().enumerate() {
        text = text.replace(p.id.as_str(), &format!("pcx-#{i}"));
    }
    text
}

/// Captures the JSON log lines the code under `future` writes.
pub async fn with_logs<F: std::future::Future>(future: F) -> (F::Output, Vec<Value>) {
    use tracing::instrument::WithSubscriber;
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    let output = future.with_subscriber(subscriber).await;
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).expect("UTF-8 logs");
    let lines = text.lines().map(|l| serde_json::from_str(l).expect("each log line is JSON")).collect();
    (output, lines)
}

pub fn routes_via_peering(world: &World, vpc: &tagpeer::ids::Endpoint) -> Vec<(String, String, String)> {
    world
        .route_tables_of(vpc)
        .flat_map(|t| {
            t.routes.iter().filter_map(move |r| match &r.target {
                Target::Peering(p) => Some((t.id.to_string(), r.destination.to_string(), p.to_string())),
                _ => None,
            })
        })
        .collect()
}

/// What the clean run of the seed ends in: one active connection, 172.31.0.0/16 through
/// it in both Seoul tables, 10.0.0.0/16 in Osaka's, both VPCs ready.
pub fn assert_seed_converged(world: &World, seed: &Seed, deployment: &Deployment) {
    let live: Vec<_> = world.peerings.iter().filter(|p| p.state.is_live()).collect();
    assert_eq!(live.len(), 1, "one connection: {:?}", world.peerings);
    let pcx = live[0];
    assert_eq!(pcx.state, PeeringState::Active);
    assert_eq!((&pcx.requester, &pcx.accepter), (&seed.seoul(), &seed.osaka()));
    assert!(pcx.is_managed());
    assert_eq!(pcx.link_tag(), Some(format!("{}+{}", seed.seoul(), seed.osaka()).as_str()));

    let seoul_routes = routes_via_peering(world, &seed.seoul());
    assert_eq!(seoul_routes.len(), 2, "the main and the public table: {seoul_routes:?}");
    assert!(seoul_routes.iter().all(|(_, dest, p)| dest == "172.31.0.0/16" && p == pcx.id.as_str()));
    assert!(seoul_routes.iter().any(|(t, ..)| t == &seed.seoul_route_table));
    let osaka_routes = routes_via_peering(world, &seed.osaka());
    assert_eq!(osaka_routes.len(), 1, "{osaka_routes:?}");
    assert!(osaka_routes.iter().all(|(_, dest, p)| dest == "10.0.0.0/16" && p == pcx.id.as_str()));

    // The seed's own routes stay as they were.
    let public = world.route_tables_of(&seed.seoul()).find(|t| t.id.as_str() == seed.seoul_route_table).unwrap();
    assert!(public.routes.iter().any(|r| r.destination.to_string() == "0.0.0.0/0"
        && matches!(&r.target, Target::Other(igw) if igw.starts_with("igw-"))));

    let seoul_status = world.vpc(&seed.seoul()).unwrap().tags.get(STATUS).cloned().unwrap_or_default();
    assert_eq!(seoul_status, format!("ap-northeast-3/{}: ready via {}", seed.osaka_vpc, pcx.id));
    let osaka_status = world.vpc(&seed.osaka()).unwrap().tags.get(STATUS).cloned().unwrap_or_default();
    assert_eq!(osaka_status, format!("ap-northeast-2/{}: ready via {}", seed.seoul_vpc, pcx.id));
    assert_eq!(tagpeer::invariants::violations(world, deployment), Vec::<String>::new());
}

/// The deployment the tests use: Seoul and Osaka.
pub fn deployment() -> Deployment {
    Deployment::new(ACCOUNT.parse().unwrap(), [SEOUL, OSAKA].iter().map(|r| r.parse().unwrap()).collect())
}

/// The deployment as it stands, read through `sdk`'s endpoint.
/// Reads the deployment until `ready` holds of it (AWS moves a connection
/// through its states on its own time), every 100 ms for at most 20 s.
pub async fn observe_until(sdk: &SdkConfig, what: &str, ready: impl Fn(&World) -> bool) -> World {
    let started = Instant::now();
    loop {
        let world = observe(sdk).await;
        if ready(&world) {
            return world;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{what}: not within 20 s: {world:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits, as a person would, until AWS shows `pcx` in `region` in one of
/// `states` (`pending-acceptance` in the accepter's region: listed there and
/// ready to accept; `active`: ready to route), every 100 ms for at most 20 s.
pub async fn await_peering(sdk: &SdkConfig, region: &str, pcx: &str, states: &[&str]) {
    let client = ec2(sdk, region);
    let started = Instant::now();
    loop {
        let out = client.describe_vpc_peering_connections().send().await.expect("DescribeVpcPeeringConnections");
        let state = out
            .vpc_peering_connections()
            .iter()
            .find(|p| p.vpc_peering_connection_id() == Some(pcx))
            .and_then(|p| p.status()?.code().map(|c| c.as_str().to_owned()));
        if state.as_deref().is_some_and(|s| states.contains(&s)) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{pcx} in {region}: {state:?}, not {states:?} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn observe(sdk: &SdkConfig) -> World {
    let regions = deployment().regions;
    Ec2::new(sdk, &regions).observe(&regions).await.expect("observing")
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

/// The details of the outcome events of one kind ("Link Ready"…) a run of deliveries sent.
pub fn outcomes(log: &[(Delivery, Result<Report, HandlerError>)], detail_type: &str) -> Vec<Value> {
    log.iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flat_map(|r| r.events.iter())
        .filter(|e| e.detail_type == detail_type)
        .map(|e| serde_json::to_value(&e.detail).expect("details serialize"))
        .collect()
}
