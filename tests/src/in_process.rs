//! The three functions' real handlers in this process, with tagpeer's
//! events routed between them as the template's rules route them.

use std::sync::{Arc, Mutex};

use crate::*;
use aws_config::SdkConfig;
use aws_sdk_ec2::config::Region as SdkRegion;
use serde_json::{json, Value};
use tagpeer::aws::Ec2;
use tagpeer::error::HandlerError;
use tagpeer::events::{self, Outgoing};
use tagpeer::ids::Region;
use tagpeer::model::World;
use tagpeer::plan::{Deployment, Role};
use tagpeer::ports::EventSink;
use tagpeer::{App, Config, Report};

/// What EventBridge hands a function for one of tagpeer's events, sent from `region`.
/// The in-process functions' event sink: the events each sent, with the
/// region whose bus took each, for the test's router to deliver as the
/// template's rules would.
#[derive(Clone, Debug, Default)]
pub struct Outbox(Arc<Mutex<Vec<(Region, Outgoing)>>>);

impl EventSink for Outbox {
    async fn send(&self, region: &Region, events: &[Outgoing]) -> Result<(), tagpeer::error::AwsError> {
        let mut sent = self.0.lock().expect("no test panics while holding the outbox");
        sent.extend(events.iter().map(|e| (region.clone(), e.clone())));
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
        "resources": out.detail.vpcs().into_iter().map(events::vpc_arn).collect::<Vec<_>>(),
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
    let (Some(requester), Some(accepter)) = (out.detail.requester(), out.detail.accepter()) else {
        return Vec::new(); // "Sweep Requested": the tests sweep every function themselves
    };
    match out.detail_type {
        events::PEERING_REQUESTED => vec![to(Role::Accepter, &accepter.region)],
        events::LINK_WANTED => vec![to(Role::Requester, &requester.region)],
        events::PEERING_ACCEPTED => vec![
            to(Role::Router, &requester.region),
            to(Role::Router, &accepter.region),
            to(Role::Requester, &requester.region),
        ],
        // To the router of the link's other region: the side that took it
        // down wrote its own region's statuses.
        events::LINK_REMOVED => match &out.detail {
            events::Detail::Outcome(d) => [&d.requester, &d.accepter]
                .into_iter()
                .map(|e| &e.region)
                .filter(|r| *r != &d.side.region)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|r| to(Role::Router, r))
                .collect(),
            _ => vec![],
        },
        _ => vec![],
    }
}

/// One function in one region, and the events it has sent.
struct Function {
    role: Role,
    region: String,
    app: App<Ec2, Outbox>,
    outbox: Arc<Mutex<Vec<(Region, Outgoing)>>>,
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
    /// The end of an end-to-end test whose deployment has converged: what
    /// stands now breaks no invariant, and nothing changed since `start` (read
    /// before tagpeer acted) breaks 3 or 4.
    pub async fn assert_invariants(&self, start: &World) {
        let now = self.observe().await;
        assert_eq!(tagpeer::invariants::violations_since(start, &now, &self.deployment), Vec::<String>::new());
    }

    /// The end of a test whose deployment is not converged by design: nothing
    /// changed since `start` breaks invariant 3 or 4.
    pub async fn assert_changes_allowed(&self, start: &World) {
        let now = self.observe().await;
        assert_eq!(tagpeer::invariants::changes_violating(start, &now, &self.deployment), Vec::<String>::new());
    }

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
        let sent = std::mem::take(&mut *f.outbox.lock().unwrap());
        let region: Region = d.region.parse().unwrap();
        // Every event is put on the sender's own bus, among others (Outgoing::destinations);
        // `route` follows it from there to every function that takes it, once.
        let sent = sent.iter().filter(|(bus, _)| *bus == region).map(|(_, o)| o);
        (result, sent.flat_map(|o| route(o, &region)).collect())
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

/// The details of the outcome events of one kind ("Link Ready"…) a run of deliveries sent.
pub fn outcomes(log: &[(Delivery, Result<Report, HandlerError>)], detail_type: &str) -> Vec<Value> {
    log.iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flat_map(|r| r.events.iter())
        .filter(|e| e.detail_type == detail_type)
        .map(|e| serde_json::to_value(&e.detail).expect("details serialize"))
        .collect()
}
