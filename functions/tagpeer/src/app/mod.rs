//! The handler every function runs: decode the event, observe, plan, apply,
//! write the status, send the next event, log the outcome. Thin by design: the
//! decisions are the planner's.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use serde::Serialize;
use serde_json::Value;

use crate::aws::{Ec2, EventSink};
use crate::error::{AwsError, ConfigError, HandlerError};
use crate::events::{
    Detail, OutcomeDetail, Outgoing, PeeringDetail, Trigger, LINK_FAILED, LINK_READY, LINK_REMOVED, PEERING_ACCEPTED,
    PEERING_REQUESTED,
};
use crate::ids::{AccountId, Endpoint, PeeringId, Region};
use crate::model::World;
use crate::plan::{self, Action, Deployment, Focus, LinkKey, Role};

/// What a function reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    pub role: Role,
    /// The region the function runs in (`AWS_REGION`).
    pub region: Region,
    /// `TAGPEER_ACCOUNT` (else the credentials' own account), `TAGPEER_REGIONS`
    /// (the function's own region when unset), `TAGPEER_ALLOWED_ACCOUNTS`,
    /// `TAGPEER_MAX_PEERINGS_PER_VPC` and `TAGPEER_MAX_ROUTES_PER_TABLE`.
    pub deployment: Deployment,
    /// `TAGPEER_EVENT_BUS`: where tagpeer's events go; `default` when unset.
    pub event_bus: String,
    /// `TAGPEER_READER_ROLE`: the name (without its `-REGION` suffix) of the
    /// role tagpeer assumes to read an allowed account's VPCs.
    pub reader_role: Option<String>,
    /// `TAGPEER_WAIT_SECONDS` (default 30): how long an invocation waits for
    /// a connection AWS still has in an intermediate state before it leaves
    /// the step to Lambda's retry and the sweep. Below the function's timeout.
    pub wait: std::time::Duration,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Reads the environment; `account` is the credentials' own, used when
    /// `TAGPEER_ACCOUNT` is unset.
    pub fn from_env(role: Role, account: Option<AccountId>) -> Result<Self, ConfigError> {
        let region: Region = env_var("AWS_REGION")
            .ok_or(ConfigError::Missing {
                var: "AWS_REGION",
                hint: "Lambda sets it; elsewhere set the region to run in",
            })?
            .parse()
            .map_err(|source| ConfigError::Invalid { var: "AWS_REGION", source })?;
        let mut regions = match env_var("TAGPEER_REGIONS") {
            Some(list) => parse_regions(&list)?,
            None => vec![region.clone()],
        };
        if !regions.contains(&region) {
            regions.insert(0, region.clone());
        }
        let account = match env_var("TAGPEER_ACCOUNT") {
            Some(a) => a.trim().parse().map_err(|source| ConfigError::Invalid { var: "TAGPEER_ACCOUNT", source })?,
            None => account.ok_or(ConfigError::Missing {
                var: "TAGPEER_ACCOUNT",
                hint: "the template sets it; elsewhere set the account tagpeer acts in",
            })?,
        };
        let mut deployment = Deployment::new(account, regions);
        if let Some(list) = env_var("TAGPEER_ALLOWED_ACCOUNTS") {
            deployment.allowed_accounts = parse_accounts(&list)?;
        }
        let quota = |var: &'static str, default: usize| -> Result<usize, ConfigError> {
            match env_var(var) {
                None => Ok(default),
                Some(v) => {
                    v.trim().parse::<usize>().ok().filter(|n| *n > 0).ok_or(ConfigError::Quota { var, value: v })
                }
            }
        };
        deployment.quotas.peerings_per_vpc = quota("TAGPEER_MAX_PEERINGS_PER_VPC", deployment.quotas.peerings_per_vpc)?;
        deployment.quotas.routes_per_table = quota("TAGPEER_MAX_ROUTES_PER_TABLE", deployment.quotas.routes_per_table)?;
        deployment.quotas.outstanding_requests =
            quota("TAGPEER_MAX_OUTSTANDING_REQUESTS", deployment.quotas.outstanding_requests)?;
        Ok(Self {
            role,
            region,
            deployment,
            event_bus: env_var("TAGPEER_EVENT_BUS").unwrap_or_else(|| "default".to_owned()),
            reader_role: env_var("TAGPEER_READER_ROLE"),
            wait: std::time::Duration::from_secs_f64(match env_var("TAGPEER_WAIT_SECONDS") {
                None => DEFAULT_WAIT_SECONDS,
                Some(v) => v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && (0.0..=600.0).contains(s))
                    .ok_or(ConfigError::Seconds { var: "TAGPEER_WAIT_SECONDS", value: v })?,
            }),
        })
    }
}

/// `111111111111,222222222222` (spaces are forgiven).
pub fn parse_accounts(list: &str) -> Result<Vec<AccountId>, ConfigError> {
    let mut accounts = Vec::new();
    for item in list.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()) {
        let account: AccountId =
            item.parse().map_err(|source| ConfigError::Invalid { var: "TAGPEER_ALLOWED_ACCOUNTS", source })?;
        if !accounts.contains(&account) {
            accounts.push(account);
        }
    }
    Ok(accounts)
}

/// `ap-northeast-2,ap-northeast-3` (spaces are forgiven).
pub fn parse_regions(list: &str) -> Result<Vec<Region>, ConfigError> {
    let mut regions = Vec::new();
    for item in list.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()) {
        let region: Region = item.parse().map_err(|source| ConfigError::Invalid { var: "TAGPEER_REGIONS", source })?;
        if !regions.contains(&region) {
            regions.push(region);
        }
    }
    Ok(regions)
}

/// How long an invocation waits on AWS by default (see [`Config::wait`]).
pub const DEFAULT_WAIT_SECONDS: f64 = 30.0;

/// How many times a function writes statuses and checks them again before it
/// leaves the rest to the next event or sweep.
const STATUS_ROUNDS: usize = 3;

/// One function: its configuration and the clients it builds once.
#[derive(Clone, Debug)]
pub struct App {
    config: Config,
    ec2: Ec2,
    events: EventSink,
}

/// One change an invocation made, or tried to.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub action: &'static str,
    pub region: String,
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `ok`, or the error.
    pub outcome: String,
}

/// What an invocation did: the Lambda's response, and the summary it logs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub function: &'static str,
    pub trigger: &'static str,
    /// Why nothing was looked at, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    pub changes: Vec<Change>,
    pub events: Vec<Outgoing>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.changes.iter().filter(|c| c.outcome != "ok").count()
    }
}

impl App {
    pub fn new(sdk: &SdkConfig, config: Config, events: EventSink) -> Self {
        let ec2 = Ec2::new(sdk, &config.deployment.regions).with_reader_role(config.reader_role.clone());
        Self { config, ec2, events }
    }

    /// Reads the configuration and the standard AWS configuration (credentials,
    /// `AWS_ENDPOINT_URL`, retries) once, at cold start.
    pub async fn from_env(role: Role) -> Result<Self, String> {
        let sdk = crate::aws::load_sdk_config().await;
        let account = match env_var("TAGPEER_ACCOUNT") {
            Some(_) => None,
            None => Some(Ec2::new(&sdk, &[]).caller_account().await.map_err(|e| e.to_string())?),
        };
        let config = Config::from_env(role, account).map_err(|e| e.to_string())?;
        let events = EventSink::event_bridge(&sdk, config.event_bus.clone());
        Ok(Self::new(&sdk, config, events))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles one event. Bad input is logged and answered with an error,
    /// without a change; failed AWS calls are logged, written to the status and
    /// answered with an error, so that Lambda retries and the sweep follows up.
    ///
    /// The steps: decode the trigger into a focus; observe; act (plan and
    /// apply) and, while a step waits on AWS, wait and act again; report what
    /// became ready; write the statuses; send the events.
    pub async fn handle(&self, payload: &Value) -> Result<Report, HandlerError> {
        let function = self.config.role.name();
        let trigger = match Trigger::decode(payload) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(function, error = %e, "event rejected");
                return Err(e.into());
            }
        };
        let mut run =
            Run { report: Report { function, trigger: trigger.kind(), ..Report::default() }, ..Run::default() };
        let Some(focus) = trigger.focus() else {
            run.report.ignored = Some("no tagpeer: tag changed".to_owned());
            tracing::info!(
                function,
                trigger = run.report.trigger,
                ignored = run.report.ignored.as_deref(),
                "nothing to do"
            );
            return Ok(run.report);
        };

        let before = self.observe(&run.report).await?;
        let world = self.act_until_settled(before.clone(), &focus, &mut run).await;
        let assessment = plan::assess(&world, &self.config.deployment);
        self.announce_ready(&before, &world, &assessment, &focus, &mut run.report);
        log_outcomes(function, &run.report);
        self.write_statuses(world, assessment, &focus, &mut run).await;
        if !run.report.events.is_empty() {
            if let Err(e) = self.events.send(&self.config.region, &run.report.events).await {
                tracing::error!(function, error = %e, "sending events failed");
                run.first_error.get_or_insert(e);
            }
        }

        let report = run.report;
        tracing::info!(
            function,
            trigger = report.trigger,
            changes = report.changes.len(),
            failed = report.failed(),
            events = report.events.len(),
            "done"
        );
        match (run.first_error, run.still_waiting) {
            (Some(first), _) => {
                Err(HandlerError::Apply { failed: report.failed(), attempted: report.changes.len(), first })
            }
            (None, Some(waited)) => Err(HandlerError::StillWaiting(waited)),
            (None, None) => Ok(report),
        }
    }

    async fn observe(&self, report: &Report) -> Result<World, HandlerError> {
        self.ec2.observe_deployment(&self.config.deployment).await.map_err(|e| {
            tracing::error!(function = report.function, trigger = report.trigger, error = %e, "observe failed");
            HandlerError::Observe(e)
        })
    }

    /// Plans and applies this role's actions; while one of its steps waits on
    /// AWS (a connection still `initiating-request` or `provisioning`, or not
    /// yet visible in this region), waits for it, up to the configured
    /// [`Config::wait`], reads again and acts again. A step still waiting then
    /// is the invocation's error ([`HandlerError::StillWaiting`]), so that
    /// Lambda hands the event back a little later and the sweep follows up.
    async fn act_until_settled(&self, mut world: World, focus: &Focus, run: &mut Run) -> World {
        let function = self.config.role.name();
        let deadline = tokio::time::Instant::now() + self.config.wait;
        let mut pause = FIRST_PAUSE;
        loop {
            let assessment = plan::assess(&world, &self.config.deployment);
            let actions = plan::plan(&world, &assessment, self.config.role, &self.config.region, focus);
            let mut awaited = self.apply(&mut world, &assessment, &actions, run).await;
            let assessment = plan::assess(&world, &self.config.deployment);
            awaited.extend(
                plan::awaiting(&world, &assessment, self.config.role, &self.config.region, focus)
                    .into_iter()
                    .map(|a| format!("{} is {}", a.peering, a.state.code())),
            );
            if awaited.is_empty() {
                run.still_waiting = None;
                return world;
            }
            let waited = awaited.join(", ");
            if tokio::time::Instant::now() + pause > deadline {
                tracing::warn!(function, waiting = %waited, "still waiting for AWS; Lambda's retry or the sweep follows up");
                run.still_waiting = Some(waited);
                return world;
            }
            tracing::info!(function, waiting = %waited, pause_ms = pause.as_millis() as u64, "waiting for AWS");
            run.still_waiting = Some(waited);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
            match self.ec2.observe_deployment(&self.config.deployment).await {
                Ok(now) => world = now,
                Err(e) => {
                    tracing::warn!(function, error = %e, "reading again while waiting failed");
                    run.first_error.get_or_insert(e);
                    return world;
                }
            }
        }
    }

    /// Applies `actions` in order; after a failure, the rest of that link's
    /// steps wait (routes go before their connection does). Returns the steps
    /// that found their connection not yet visible in their region: AWS lists
    /// a new connection in the accepter's region a moment after it is made.
    async fn apply(
        &self,
        world: &mut World,
        assessment: &plan::Assessment,
        actions: &[Action],
        run: &mut Run,
    ) -> Vec<String> {
        let function = self.config.role.name();
        let mut not_visible = Vec::new();
        for action in actions {
            let link = action.link().expect("planned link actions name their link");
            if run.failures.contains_key(link) {
                continue;
            }
            let result = self.ec2.apply(action).await;
            if let (Action::AcceptPeering { peering, region, .. }, Err(e)) = (action, &result) {
                if e.is(NOT_FOUND) {
                    tracing::info!(function, peering = %peering, region = %region, "not yet visible here");
                    not_visible.push(format!("{peering} is not yet visible in {region}"));
                    continue;
                }
            }
            run.report.changes.push(change(action, &result));
            log_change(function, run.report.changes.last().expect("just pushed"));
            match result {
                Ok(created) => {
                    plan::apply(world, action, created.as_ref());
                    if let Some(event) = announce(world, action, created.as_ref()) {
                        run.report.events.push(event);
                    }
                    if let Action::DeletePeering { peering, .. } = action {
                        run.report.events.push(outcome(world, assessment, action, LINK_REMOVED, Some(peering), None));
                    }
                }
                Err(e) => {
                    run.report.events.push(outcome(world, assessment, action, LINK_FAILED, None, Some(&e)));
                    run.failures.insert(link.clone(), e.to_string());
                    run.first_error.get_or_insert(e);
                }
            }
        }
        not_visible
    }

    /// "Link Ready" for each link in focus whose side in this region became ready.
    fn announce_ready(
        &self,
        before: &World,
        after: &World,
        assessment: &plan::Assessment,
        focus: &Focus,
        report: &mut Report,
    ) {
        for (key, side, peering) in plan::newly_ready(before, after, assessment, &self.config.region, focus) {
            let (requester, accepter) = ends(after, assessment, &key);
            report.events.push(Outgoing {
                detail_type: LINK_READY,
                detail: Detail::Outcome(OutcomeDetail {
                    link: key.to_string(),
                    requester,
                    accepter,
                    side,
                    peering_connection_id: Some(peering),
                    step: "ready".to_owned(),
                    error_code: None,
                    message: None,
                }),
            });
        }
    }

    /// Statuses say how things stand now, not as this invocation first read
    /// them. A region's functions run side by side (a sweep starts them all)
    /// and EC2 tags have no compare-and-set, so a status computed from an older
    /// read could undo a newer one. So a function that has a status to write
    /// reads again first, writes, and reads once more to check that what it
    /// wrote still holds, writing again if not: then the last status written is
    /// always the one its writer checked against what stands. An idle sweep
    /// writes none and reads nothing more.
    async fn write_statuses(&self, world: World, assessment: plan::Assessment, focus: &Focus, run: &mut Run) {
        let function = self.config.role.name();
        let region = &self.config.region;
        let mut writes = plan::statuses(&world, &assessment, region, focus, &run.failures);
        for _ in 0..STATUS_ROUNDS {
            if writes.is_empty() {
                break;
            }
            let checked = match self.ec2.observe_deployment(&self.config.deployment).await {
                Ok(now) => {
                    let assessment = plan::assess(&now, &self.config.deployment);
                    writes = plan::statuses(&now, &assessment, region, focus, &run.failures);
                    true
                }
                Err(e) => {
                    tracing::warn!(function, error = %e, "reading again before the status failed");
                    false
                }
            };
            for action in &writes {
                let result = self.ec2.apply(action).await;
                run.report.changes.push(change(action, &result));
                log_change(function, run.report.changes.last().expect("just pushed"));
                if let Err(e) = result {
                    run.first_error.get_or_insert(e);
                }
            }
            if !checked {
                break;
            }
        }
    }
}

/// What one invocation has done so far.
#[derive(Default)]
struct Run {
    report: Report,
    /// The errors met, by link: that link's later steps wait.
    failures: BTreeMap<LinkKey, String>,
    first_error: Option<AwsError>,
    /// What a step still waited on when the invocation stopped waiting.
    still_waiting: Option<String>,
}

/// AWS's code for a connection its region does not list (yet), compared
/// case-insensitively (moto spells it `…ConnectionId…`).
const NOT_FOUND: &str = "InvalidVpcPeeringConnectionID.NotFound";
/// The first pause while a step waits on AWS; each later one doubles, up to [`MAX_PAUSE`].
const FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
const MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(4);

/// One JSON line an outcome ("Link Ready", "Link Failed", "Link Removed").
fn log_outcomes(function: &'static str, report: &Report) {
    for e in &report.events {
        let Detail::Outcome(d) = &e.detail else { continue };
        tracing::info!(
            function,
            outcome = e.detail_type,
            link = %d.link,
            side = %d.side,
            peering = d.peering_connection_id.as_ref().map(|p| p.as_str()),
            step = %d.step,
            error_code = d.error_code.as_deref(),
            message = d.message.as_deref(),
            "outcome"
        );
    }
}

fn change(action: &Action, result: &Result<Option<crate::ids::PeeringId>, AwsError>) -> Change {
    let (region, resource, detail) = match action {
        Action::RequestPeering { requester, accepter, .. } => (
            requester.region.to_string(),
            requester.vpc_id.to_string(),
            Some(format!("to {}", accepter.relative_to(requester))),
        ),
        Action::AcceptPeering { region, peering, .. } | Action::DeletePeering { region, peering, .. } => {
            (region.to_string(), peering.to_string(), None)
        }
        Action::SetDns { region, peering, requester_side, on, .. } => (
            region.to_string(),
            peering.to_string(),
            Some(format!(
                "{} side lets the peer resolve its DNS names: {on}",
                if *requester_side { "requester" } else { "accepter" }
            )),
        ),
        Action::CreateRoute { region, route_table, destination, peering, .. }
        | Action::ReplaceRoute { region, route_table, destination, peering, .. } => {
            (region.to_string(), route_table.to_string(), Some(format!("{destination} via {peering}")))
        }
        Action::DeleteRoute { region, route_table, destination, .. } => {
            (region.to_string(), route_table.to_string(), Some(destination.to_string()))
        }
        Action::SetRetry { vpc, last, .. } => (
            vpc.region.to_string(),
            vpc.vpc_id.to_string(),
            Some(match last {
                Some((attempt, _)) => format!("remembers request {attempt}"),
                None => "forgets the retries".to_owned(),
            }),
        ),
        Action::SetStatus { vpc, status } => (
            vpc.region.to_string(),
            vpc.vpc_id.to_string(),
            Some(status.clone().unwrap_or_else(|| "(removed)".to_owned())),
        ),
    };
    let outcome = match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    let detail = match (result, detail) {
        (Ok(Some(created)), Some(d)) => Some(format!("{d} as {created}")),
        (_, d) => d,
    };
    Change {
        action: action.api_name(),
        region,
        resource,
        link: action.link().map(ToString::to_string),
        detail,
        outcome,
    }
}

/// One JSON line a change.
fn log_change(function: &'static str, c: &Change) {
    let status_error = c.action == "CreateTags" && c.detail.as_deref().is_some_and(|d| d.contains("error: "));
    if c.outcome != "ok" {
        tracing::error!(function, action = c.action, region = %c.region, resource = %c.resource, link = c.link.as_deref(), detail = c.detail.as_deref(), outcome = %c.outcome, "change failed");
    } else if status_error {
        tracing::warn!(function, action = c.action, region = %c.region, resource = %c.resource, detail = c.detail.as_deref(), outcome = %c.outcome, "status");
    } else {
        tracing::info!(function, action = c.action, region = %c.region, resource = %c.resource, link = c.link.as_deref(), detail = c.detail.as_deref(), outcome = %c.outcome, "change");
    }
}

/// The event that tells the next function its turn has come.
fn announce(world: &crate::model::World, action: &Action, created: Option<&crate::ids::PeeringId>) -> Option<Outgoing> {
    let (detail_type, id) = match action {
        Action::RequestPeering { .. } => (PEERING_REQUESTED, created?),
        Action::AcceptPeering { peering, .. } => (PEERING_ACCEPTED, peering),
        _ => return None,
    };
    let peering = world.peering(id)?;
    Some(Outgoing {
        detail_type,
        detail: Detail::Peering(PeeringDetail {
            link: LinkKey::of(peering).to_string(),
            peering_connection_id: id.clone(),
            requester: peering.requester.clone(),
            accepter: peering.accepter.clone(),
        }),
    })
}

/// The requester and accepter of a link: its connection's, else the planned ones.
fn ends(world: &World, assessment: &plan::Assessment, key: &LinkKey) -> (Endpoint, Endpoint) {
    if let Some(p) = world.peerings.iter().filter(|p| &LinkKey::of(p) == key).max_by_key(|p| p.state.is_live()) {
        return (p.requester.clone(), p.accepter.clone());
    }
    match assessment.links.get(key) {
        Some(link) => (link.requester.clone(), link.accepter().clone()),
        None => (key.a.clone(), key.b.clone()),
    }
}

/// A "Link Removed" or "Link Failed" outcome of one step.
fn outcome(
    world: &World,
    assessment: &plan::Assessment,
    action: &Action,
    detail_type: &'static str,
    peering: Option<&PeeringId>,
    error: Option<&AwsError>,
) -> Outgoing {
    let key = action.link().expect("link steps name their link");
    let (requester, accepter) = ends(world, assessment, key);
    Outgoing {
        detail_type,
        detail: Detail::Outcome(OutcomeDetail {
            link: key.to_string(),
            requester,
            accepter,
            side: plan::side_of(action, key, world).clone(),
            peering_connection_id: peering.cloned(),
            step: action.api_name().to_owned(),
            error_code: error.map(|e| e.code.clone()),
            message: error.map(|e| e.message.clone()),
        }),
    }
}

/// The provisioner function: one "Network Requested" event builds one network.
#[derive(Clone, Debug)]
pub struct Provisioner {
    ec2: Ec2,
    regions: Vec<Region>,
    pool: Vec<ipnet::Ipv4Net>,
}

impl Provisioner {
    pub fn new(sdk: &SdkConfig, regions: Vec<Region>, pool: Vec<ipnet::Ipv4Net>) -> Self {
        Self { ec2: Ec2::new(sdk, &regions), regions, pool }
    }

    /// `AWS_REGION`, `TAGPEER_REGIONS` as for every function, and
    /// `TAGPEER_CIDR_POOL` (default 10.0.0.0/8,172.16.0.0/12,192.168.0.0/16).
    pub async fn from_env() -> Result<Self, String> {
        let region: Region = env_var("AWS_REGION")
            .ok_or("AWS_REGION is not set: Lambda sets it; elsewhere set the region to run in")?
            .parse()
            .map_err(|e| format!("AWS_REGION: {e}"))?;
        let mut regions = match env_var("TAGPEER_REGIONS") {
            Some(list) => parse_regions(&list).map_err(|e| e.to_string())?,
            None => vec![region.clone()],
        };
        if !regions.contains(&region) {
            regions.insert(0, region);
        }
        let pool = crate::provision::pool_from(std::env::var("TAGPEER_CIDR_POOL").ok().as_deref())
            .map_err(|e| e.to_string())?;
        let sdk = crate::aws::load_sdk_config().await;
        Ok(Self::new(&sdk, regions, pool))
    }

    /// Builds what the event asks for, or resumes where an earlier delivery
    /// stopped; answers with what it did. Bad input and failed calls are
    /// logged and answered with an error.
    pub async fn handle(&self, payload: &Value) -> Result<String, String> {
        let event: aws_lambda_events::event::eventbridge::EventBridgeEvent<Value> =
            serde_json::from_value(payload.clone()).map_err(|e| {
                let e = crate::error::EventError::Envelope(e.to_string());
                tracing::error!(function = "provisioner", error = %e, "event rejected");
                e.to_string()
            })?;
        if (event.source.as_str(), event.detail_type.as_str())
            != (crate::events::SOURCE, crate::provision::NETWORK_REQUESTED)
        {
            let e = crate::error::EventError::Unexpected { event_source: event.source, detail_type: event.detail_type };
            tracing::error!(function = "provisioner", error = %e, "event rejected");
            return Err(e.to_string());
        }
        match crate::aws::provision::provision(&self.ec2, &self.regions, &self.pool, &event.detail).await {
            Ok(summary) => Ok(summary),
            Err(e) => {
                tracing::error!(function = "provisioner", error = %e, "network not built");
                Err(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Peering, PeeringState};

    fn ep(region: &str, vpc: &str) -> Endpoint {
        Endpoint::new("123456789012".parse().unwrap(), region.parse().unwrap(), vpc.parse().unwrap())
    }

    #[test]
    fn a_failed_step_says_which_link_side_step_and_error() {
        let (seoul, osaka) = (ep("ap-northeast-2", "vpc-0000000a"), ep("ap-northeast-3", "vpc-0000000b"));
        let key = LinkKey::new(seoul.clone(), osaka.clone());
        let pcx: PeeringId = "pcx-0000abcd".parse().unwrap();
        let world = World {
            peerings: vec![Peering {
                id: pcx.clone(),
                requester: seoul.clone(),
                accepter: osaka.clone(),
                state: PeeringState::PendingAcceptance,
                tags: Default::default(),
                dns: Default::default(),
                hidden_from_accepter: false,
            }],
            ..World::default()
        };
        let accept = Action::AcceptPeering { link: key.clone(), region: osaka.region.clone(), peering: pcx.clone() };
        let error = AwsError {
            action: "AcceptVpcPeeringConnection",
            region: "ap-northeast-3".into(),
            code: "RequestLimitExceeded".into(),
            message: "Request limit exceeded.".into(),
        };
        let deployment = Deployment::new(osaka.account.clone(), vec![osaka.region.clone()]);
        let event = outcome(&world, &plan::assess(&world, &deployment), &accept, LINK_FAILED, None, Some(&error));
        assert_eq!(event.detail_type, "Link Failed");
        let detail = serde_json::to_value(&event.detail).unwrap();
        assert_eq!(detail["link"], serde_json::json!(key.to_string()));
        assert_eq!(detail["side"], serde_json::to_value(&osaka).unwrap(), "the accepter's side failed");
        assert_eq!(detail["requester"], serde_json::to_value(&seoul).unwrap());
        assert_eq!(detail["step"], "AcceptVpcPeeringConnection");
        assert_eq!(detail["error-code"], "RequestLimitExceeded");
        assert_eq!(detail["message"], "Request limit exceeded.");
        assert!(detail.get("peering-connection-id").is_none());
    }
}
