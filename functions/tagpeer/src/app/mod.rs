//! The handler every function runs: the trigger decides the scope; then
//! observe, act (plan and perform, waiting on AWS where a step must), report
//! what became ready, write the statuses, send the events. Thin by design:
//! the decisions are the planner's ([`crate::plan`]).

mod config;
mod outcome;
mod provisioner;

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use serde_json::Value;

pub use config::{parse_accounts, parse_regions, regions_from_env, Config, DEFAULT_WAIT_SECONDS};
pub use outcome::{Change, Report};
pub use provisioner::Provisioner;

use crate::aws::{Ec2, EventBridge};
use crate::error::{AwsError, HandlerError};
use crate::events::{
    ConsentDetail, Detail, Outgoing, SweepDetail, Trigger, CONSENT_CHANGED, LINK_FAILED, LINK_REMOVED, SWEEP_REQUESTED,
};
use crate::ids::{Endpoint, PeeringId, Region};
use crate::metrics::{self, Source};
use crate::model::{LinkKey, World};
use crate::overview;
use crate::plan::{self, Action, Assessment, Role, Scope};
use crate::ports::{Cloud, EventSink};
use crate::status;

/// The most quota lines (a VPC's or a route table's) a "Sweep Requested"
/// carries to another region's router besides the region's own line: an
/// event holds at most 256 KB, and a line is about half a kilobyte. The
/// fullest come first.
const CARRIED_QUOTA_LINES: usize = 300;

/// The trigger a report names for a batch of events of several kinds.
const BATCH: &str = "Batch";

/// How many times a function writes statuses and checks them again before it
/// leaves the rest to the next event or sweep.
const STATUS_ROUNDS: usize = 3;

/// AWS's code for a connection its region does not list (yet), compared
/// case-insensitively (moto spells it `…ConnectionId…`).
const NOT_FOUND: &str = "InvalidVpcPeeringConnectionID.NotFound";
/// The first pause while a step waits on AWS; each later one doubles, up to [`MAX_PAUSE`].
const FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
const MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(4);

/// One function: its configuration and the ports it builds once.
#[derive(Clone, Debug)]
pub struct App<C = Ec2, S = EventBridge> {
    config: Config,
    cloud: C,
    events: S,
}

impl<S: EventSink> App<Ec2, S> {
    /// The function on AWS, its events sent to `events`.
    pub fn new(sdk: &SdkConfig, config: Config, events: S) -> Self {
        let ec2 = Ec2::new(sdk, &config.deployment.regions).with_reader_role(config.reader_role.clone());
        Self::with_ports(config, ec2, events)
    }
}

impl App {
    /// Reads the configuration and the standard AWS configuration (credentials,
    /// `AWS_ENDPOINT_URL`, retries) once, at cold start.
    pub async fn from_env(role: Role) -> Result<Self, String> {
        let sdk = crate::aws::load_sdk_config().await;
        let account = match config::env_var("TAGPEER_ACCOUNT") {
            Some(_) => None,
            None => Some(Ec2::new(&sdk, &[]).caller_account().await.map_err(|e| e.to_string())?),
        };
        let config = Config::from_env(role, account).map_err(|e| e.to_string())?;
        let events = EventBridge::new(&sdk, config.event_bus.clone(), &config.deployment.regions);
        Ok(Self::new(&sdk, config, events))
    }
}

/// What one invocation has done so far.
#[derive(Default)]
struct Run {
    report: Report,
    /// The errors met, by link: that link's later steps wait.
    failures: BTreeMap<LinkKey, String>,
    first_error: Option<AwsError>,
    /// Every error met: failed steps, reads and sends (the `Errors` metric).
    errors: usize,
    /// What a step still waited on when the invocation stopped waiting.
    still_waiting: Option<String>,
    /// The metrics it publishes besides its own line ([`crate::metrics`]).
    metrics: Vec<Value>,
    /// It sweeps for the whole deployment: the schedule's router, which
    /// wakes the functions with work and carries each region's gauges there.
    sweeps_deployment: bool,
    /// These VPCs' `tagpeer:accept` changed: the allowed accounts hear of it.
    consent_changed: Vec<Endpoint>,
}

/// How an invocation starts, once its trigger is read.
enum Start {
    /// A sweep, a change, one of tagpeer's events: a scope to work on.
    Work(Scope, Box<Run>),
    /// Nothing to look at; the metrics it carries are published as they are.
    Nothing(Report, Vec<Value>),
}

/// How an invocation went, in the figures of its metrics line.
struct Tally {
    errors: usize,
    changes: usize,
}

impl Run {
    fn record(
        &mut self,
        function: &'static str,
        action: &Action,
        result: &Result<Option<crate::ids::PeeringId>, AwsError>,
    ) {
        let change = Change::of(action, result);
        change.log(function);
        self.report.changes.push(change);
    }

    /// An error met; the first one is the invocation's answer.
    fn fail(&mut self, error: AwsError) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }

    /// The invocation's answer (its report, or the first error it met, or
    /// what it still waited on), its tally and the metrics it publishes.
    fn finish(mut self) -> (Result<Report, HandlerError>, Tally, Vec<Value>) {
        let tally = Tally { errors: self.errors, changes: self.report.changes.len() - self.report.failed() };
        let metrics = std::mem::take(&mut self.metrics);
        (self.answer(), tally, metrics)
    }

    fn answer(self) -> Result<Report, HandlerError> {
        let report = self.report;
        tracing::info!(
            function = report.function,
            trigger = report.trigger,
            changes = report.changes.len(),
            failed = report.failed(),
            events = report.events.len(),
            "done"
        );
        match (self.first_error, self.still_waiting) {
            (Some(first), _) => {
                Err(HandlerError::Apply { failed: report.failed(), attempted: report.changes.len(), first })
            }
            (None, Some(waited)) => Err(HandlerError::StillWaiting(waited)),
            (None, None) => Ok(report),
        }
    }
}

impl<C: Cloud, S: EventSink> App<C, S> {
    /// A function over any cloud and any event sink (the tests' in-memory ones).
    pub fn with_ports(config: Config, cloud: C, events: S) -> Self {
        Self { config, cloud, events }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles one event. Bad input is logged and answered with an error,
    /// without a change; failed AWS calls are logged, written to the status and
    /// answered with an error, so that Lambda retries and the sweep follows up.
    /// Every invocation publishes its metrics ([`crate::metrics`]).
    pub async fn handle(&self, payload: &Value) -> Result<Report, HandlerError> {
        let (answer, lines) = self.invoke(payload).await;
        metrics::publish(&lines);
        answer
    }

    /// [`App::handle`], with the metrics lines it publishes handed back
    /// instead: the invocation's own line first.
    pub async fn invoke(&self, payload: &Value) -> (Result<Report, HandlerError>, Vec<Value>) {
        let calls = self.cloud.calls();
        let (answer, tally, mut lines) = match self.scope_of(payload) {
            Err(rejected) => (Err(rejected), Tally { errors: 1, changes: 0 }, Vec::new()),
            Ok((Start::Nothing(ignored, carried), rejected)) => {
                (Ok(ignored), Tally { errors: rejected, changes: 0 }, carried)
            }
            Ok((Start::Work(scope, run), rejected)) => {
                let (answer, mut tally, lines) = self.steps(&scope, *run).await;
                tally.errors += rejected;
                (answer, tally, lines)
            }
        };
        let calls = self.cloud.calls().since(calls);
        lines.insert(0, self.source().invocation(calls, tally.errors, tally.changes));
        (answer, lines)
    }

    /// Who this function's metrics come from, now.
    fn source(&self) -> Source {
        Source::now(self.config.role.name(), self.config.region.clone(), self.config.deployment.account.clone())
    }

    /// The named steps, once the trigger gave a scope: observe, act, report
    /// what became ready, write the statuses, gauge (the router), send the events.
    async fn steps(&self, scope: &Scope, mut run: Run) -> (Result<Report, HandlerError>, Tally, Vec<Value>) {
        let before = match self.observe(&run.report, scope).await {
            Ok(world) => world,
            Err(e) => return (Err(e), Tally { errors: 1, changes: 0 }, Vec::new()),
        };
        let (world, assessment) = self.act_until_settled(before.clone(), scope, &mut run).await;
        self.announce_ready(&before, &world, &assessment, scope, &mut run);
        run.report.log_outcomes();
        let (world, assessment) = self.write_statuses(world, assessment, scope, &mut run).await;
        if self.config.role == Role::Router {
            let lines = self.gauge_lines(&world, &assessment, &self.config.region, scope.is_sweep());
            run.metrics.extend(lines);
        }
        if run.sweeps_deployment {
            self.wake(&world, &assessment, &mut run);
        }
        for vpc in std::mem::take(&mut run.consent_changed) {
            let accounts = self.config.deployment.allowed_accounts.clone();
            let detail = Detail::Consent(ConsentDetail { vpc, accounts });
            run.report.events.push(Outgoing { detail_type: CONSENT_CHANGED, detail });
        }
        self.send_events(&mut run).await;
        run.finish()
    }

    /// The router's metrics of `region`, as a router there would publish
    /// them: its links by health and the highest quota use; in a sweep, each
    /// VPC's and route table's quota use too.
    fn gauge_lines(&self, world: &World, assessment: &Assessment, region: &Region, sweep: bool) -> Vec<Value> {
        let source = Source { region: region.clone(), ..self.source() };
        let links = overview::links(world, assessment);
        let mut lines = vec![source.region_gauges(&overview::region_gauges(world, assessment, &links, region))];
        if sweep {
            let (vpcs, tables) = overview::quota_use(world, assessment, region);
            lines.extend(vpcs.iter().map(|q| source.vpc_quota(q)));
            lines.extend(tables.iter().map(|q| source.table_quota(q)));
        }
        lines
    }

    /// The deployment's sweep, after this router's own: which other
    /// functions of which regions a sweep of the world it read has work for
    /// ([`crate::report::sweep_work`]). Each region with work, or with links
    /// to gauge, gets one "Sweep Requested" naming the functions with work
    /// and carrying the region's gauges for its router to publish there. An
    /// idle deployment's sweep is then this one read of every region, and a
    /// `PutEvents` a region with links: no function reads the regions again.
    fn wake(&self, world: &World, assessment: &Assessment, run: &mut Run) {
        let own = (self.config.role, &self.config.region);
        let mut work: BTreeMap<Region, BTreeSet<&'static str>> = BTreeMap::new();
        for (role, region) in crate::report::sweep_work(world, assessment, &self.config.deployment) {
            if (role, &region) != own {
                work.entry(region).or_default().insert(role.name());
            }
        }
        for region in &self.config.deployment.regions {
            let functions: Vec<String> =
                work.remove(region).unwrap_or_default().into_iter().map(String::from).collect();
            // This region's gauges are this router's own; another region's
            // are carried there while it has links of this account to gauge.
            let gauged = region != &self.config.region && overview::has_links_in(world, assessment, region);
            if functions.is_empty() && !gauged {
                continue;
            }
            let metrics = if gauged { self.carried_gauges(world, assessment, region) } else { Vec::new() };
            run.report.events.push(Outgoing {
                detail_type: SWEEP_REQUESTED,
                detail: Detail::Sweep(SweepDetail { region: region.clone(), functions, publish: gauged, metrics }),
            });
        }
    }

    /// `region`'s gauges for a "Sweep Requested": the region's line, then at
    /// most [`CARRIED_QUOTA_LINES`] quota lines, the fullest first.
    fn carried_gauges(&self, world: &World, assessment: &Assessment, region: &Region) -> Vec<Value> {
        let mut lines = self.gauge_lines(world, assessment, region, true);
        let use_of = |line: &Value| {
            let percent = |name: &str| line.get(name).and_then(Value::as_f64);
            percent("PeeringQuotaUsePercent").or_else(|| percent("RouteQuotaUsePercent")).unwrap_or(0.0)
        };
        lines[1..].sort_by(|x, y| use_of(y).total_cmp(&use_of(x)));
        lines.truncate(1 + CARRIED_QUOTA_LINES);
        lines
    }

    /// The triggers decide the scope, or that there is nothing to look at. A
    /// batch from the function's queue is planned once, on the union of its
    /// events' scopes ([`Scope::union`]): a burst of changes is one
    /// invocation's read and plan. An event that cannot be read is logged and
    /// counted as an error, and the rest are handled; a payload with nothing
    /// readable is the invocation's error.
    fn scope_of(&self, payload: &Value) -> Result<(Start, usize), HandlerError> {
        let function = self.config.role.name();
        let mut rejected = Vec::new();
        let mut starts = Vec::new();
        for event in crate::events::events_of(payload) {
            match event.and_then(|event| Trigger::decode(&event)) {
                Ok(trigger) => starts.push(self.start_of(trigger)),
                Err(e) => {
                    tracing::error!(function, error = %e, "event rejected");
                    rejected.push(e);
                }
            }
        }
        let errors = rejected.len();
        if starts.is_empty() {
            let first = rejected
                .into_iter()
                .next()
                .unwrap_or_else(|| crate::error::EventError::Envelope("a batch of no messages".to_owned()));
            return Err(first.into());
        }
        Ok((Self::merge(starts), errors))
    }

    /// One start for a batch: the union of the scopes of those with work, the
    /// flags of each, the metrics each carries; nothing to look at when none
    /// has work.
    fn merge(starts: Vec<Start>) -> Start {
        let kinds: BTreeSet<&'static str> = starts
            .iter()
            .map(|start| match start {
                Start::Work(_, run) => run.report.trigger,
                Start::Nothing(report, _) => report.trigger,
            })
            .collect();
        let trigger = if kinds.len() == 1 { kinds.into_iter().next().unwrap_or(BATCH) } else { BATCH };
        let mut scopes = Vec::new();
        let mut merged: Option<Run> = None;
        let mut carried = Vec::new();
        let mut idle: Option<Report> = None;
        for start in starts {
            match start {
                Start::Work(scope, run) => {
                    scopes.push(scope);
                    let run = *run;
                    merged = Some(match merged {
                        None => run,
                        Some(mut so_far) => {
                            so_far.sweeps_deployment |= run.sweeps_deployment;
                            so_far.consent_changed.extend(run.consent_changed);
                            so_far.metrics.extend(run.metrics);
                            so_far
                        }
                    });
                }
                Start::Nothing(report, metrics) => {
                    carried.extend(metrics);
                    idle.get_or_insert(report);
                }
            }
        }
        match (Scope::union(scopes), merged) {
            (Some(scope), Some(mut run)) => {
                run.report.trigger = trigger;
                // A change delivered twice (EventBridge and SQS deliver at
                // least once) is told to the other accounts once.
                run.consent_changed.sort();
                run.consent_changed.dedup();
                run.metrics.extend(carried);
                Start::Work(scope, Box::new(run))
            }
            _ => {
                let report = idle.map(|r| Report { trigger, ..r }).unwrap_or_default();
                Start::Nothing(report, carried)
            }
        }
    }

    /// What one event asks of this function: a scope to work on, or nothing.
    fn start_of(&self, trigger: Trigger) -> Start {
        let function = self.config.role.name();
        let report = Report { function, trigger: trigger.kind(), ..Report::default() };
        let nothing = |why: &str, carried: Vec<Value>| {
            let report = Report { ignored: Some(why.to_owned()), ..report.clone() };
            tracing::info!(function, trigger = report.trigger, ignored = report.ignored.as_deref(), "nothing to do");
            Start::Nothing(report, carried)
        };
        // The deployment's sweeper names the functions with work; a router
        // not named publishes the gauges it carries and reads nothing.
        if let Trigger::SweepRequested(sweep) = &trigger {
            if !sweep.functions.iter().any(|f| f == function) {
                let carried = match self.config.role {
                    Role::Router if sweep.publish => sweep.metrics.clone(),
                    _ => Vec::new(),
                };
                return nothing("no work for this function in the sweep", carried);
            }
        }
        let sweeps_deployment = trigger == Trigger::Schedule && self.config.role == Role::Router;
        let consent_changed = match &trigger {
            Trigger::TagChange { vpc, changed }
                if self.config.role == Role::Requester
                    && changed.iter().any(|k| k == crate::intent::ACCEPT)
                    && !self.config.deployment.allowed_accounts.is_empty() =>
            {
                vec![vpc.clone()]
            }
            _ => Vec::new(),
        };
        match trigger.scope() {
            Some(scope) => {
                let run = Run { report, sweeps_deployment, consent_changed, ..Run::default() };
                Start::Work(scope, Box::new(run))
            }
            None => nothing("no tagpeer: tag changed", Vec::new()),
        }
    }

    async fn observe(&self, report: &Report, scope: &Scope) -> Result<World, HandlerError> {
        self.cloud.observe(&self.config.deployment, &scope.vpcs_named()).await.map_err(|e| {
            tracing::error!(function = report.function, trigger = report.trigger, error = %e, "observe failed");
            HandlerError::Observe(e)
        })
    }

    /// Plans and performs this role's actions; while one of its steps waits on
    /// AWS (a connection still `initiating-request` or `provisioning`, or not
    /// yet visible in this region), waits for it, up to the configured
    /// [`Config::wait`], reads those connections again (nothing else) and
    /// acts again. A step still waiting then is the invocation's error
    /// ([`HandlerError::StillWaiting`]), so that
    /// Lambda hands the event back a little later and the sweep follows up.
    /// Returns the world as it stands after, with its assessment.
    async fn act_until_settled(&self, mut world: World, scope: &Scope, run: &mut Run) -> (World, Assessment) {
        let (function, role, region) = (self.config.role.name(), self.config.role, &self.config.region);
        let deadline = tokio::time::Instant::now() + self.config.wait;
        let mut pause = FIRST_PAUSE;
        loop {
            let planned = plan::for_role(&world, &self.config.deployment, role, region, scope);
            let mut awaited = self.perform_all(&mut world, &planned.assessment, &planned.actions, run).await;
            let assessment = plan::assess(&world, &self.config.deployment);
            let still = plan::awaiting(&world, &assessment, role, region, scope);
            awaited.extend(still.into_iter().map(|a| {
                let waits = format!("{} is {}", a.peering, a.state.code());
                (a.peering, waits)
            }));
            if awaited.is_empty() {
                run.still_waiting = None;
                return (world, assessment);
            }
            let waited = awaited.iter().map(|(_, w)| w.as_str()).collect::<Vec<_>>().join(", ");
            run.still_waiting = Some(waited.clone());
            if tokio::time::Instant::now() + pause > deadline {
                tracing::warn!(function, waiting = %waited, "still waiting for AWS; Lambda's retry or the sweep follows up");
                return (world, assessment);
            }
            tracing::info!(function, waiting = %waited, pause_ms = pause.as_millis() as u64, "waiting for AWS");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
            // What the wait is for is the connections' state: read those alone.
            let ids = awaited.into_iter().map(|(id, _)| id).collect();
            match self.cloud.refresh_peerings(&self.config.deployment, &world, &ids).await {
                Ok(now) => world = now,
                Err(e) => {
                    tracing::warn!(function, error = %e, "reading again while waiting failed");
                    run.fail(e);
                    return (world, assessment);
                }
            }
        }
    }

    /// Performs `actions` in order; after a failure, the rest of that link's
    /// steps wait (routes go before their connection does). Returns the steps
    /// that found their connection not yet visible in their region: AWS lists
    /// a new connection in the accepter's region a moment after it is made.
    async fn perform_all(
        &self,
        world: &mut World,
        assessment: &Assessment,
        actions: &[Action],
        run: &mut Run,
    ) -> Vec<(PeeringId, String)> {
        let function = self.config.role.name();
        let mut not_visible = Vec::new();
        // The sides this invocation unrouted, by link, and the links whose
        // connection it deleted: a link across accounts unrouted here and
        // not deleted tells the other account ("Routes Removed").
        let mut unrouted: BTreeMap<&LinkKey, Endpoint> = BTreeMap::new();
        let mut deleted: BTreeSet<&LinkKey> = BTreeSet::new();
        for action in actions {
            let link = action.link().expect("planned link actions name their link");
            if run.failures.contains_key(link) {
                continue;
            }
            if let Some(event) = outcome::hand_over(action) {
                tracing::info!(function, link = %link, "handed over to the requester's region");
                run.report.events.push(event);
                continue;
            }
            let result = self.cloud.perform(action).await;
            if let (Action::AcceptPeering { peering, region, .. }, Err(e)) = (action, &result) {
                if e.is(NOT_FOUND) {
                    tracing::info!(function, peering = %peering, region = %region, "not yet visible here");
                    not_visible.push((peering.clone(), format!("{peering} is not yet visible in {region}")));
                    continue;
                }
            }
            run.record(function, action, &result);
            match result {
                Ok(created) => {
                    action.take_effect(world, created.as_ref());
                    if let Some(event) = outcome::handoff(world, action, created.as_ref()) {
                        run.report.events.push(event);
                    }
                    match action {
                        Action::DeletePeering { peering, .. } => {
                            let removed =
                                outcome::of_step(world, assessment, action, LINK_REMOVED, Some(peering), None);
                            run.report.events.push(removed);
                            deleted.insert(link);
                        }
                        Action::DeleteRoute { .. } => {
                            unrouted.entry(link).or_insert_with(|| action.side_of(link, world).clone());
                        }
                        _ => {}
                    }
                }
                Err(e) => {
                    run.report.events.push(outcome::of_step(world, assessment, action, LINK_FAILED, None, Some(&e)));
                    run.failures.insert(link.clone(), e.to_string());
                    run.fail(e);
                }
            }
        }
        for (link, side) in unrouted.into_iter().filter(|(link, _)| !deleted.contains(link)) {
            if run.failures.contains_key(link) {
                continue;
            }
            run.report.events.extend(outcome::routes_removed(world, assessment, link, &side));
        }
        not_visible
    }

    /// "Link Ready" for each link in scope whose side in this region became
    /// ready, and the time it took since its connection was requested.
    fn announce_ready(&self, before: &World, after: &World, assessment: &Assessment, scope: &Scope, run: &mut Run) {
        let source = self.source();
        for (key, side, peering) in status::newly_ready(before, after, assessment, &self.config.region, scope) {
            let requested_at = after.peering(&peering).map(|p| p.requested_at()).filter(|at| *at > 0);
            if let Some(at) = requested_at {
                run.metrics.push(source.link_up(&key, &side, &peering, after.observed_at.saturating_sub(at)));
            }
            run.report.events.push(outcome::ready(after, assessment, &key, side, peering));
        }
    }

    /// Statuses say how things stand now, not as this invocation first read
    /// them. A region's functions run side by side (a sweep starts them all)
    /// and EC2 tags have no compare-and-set, so a status computed from an older
    /// read could undo a newer one. So a function writes the statuses its own
    /// world calls for (as it read it, with its actions' effects), then reads
    /// again to check that what it wrote still holds, and writes again where
    /// it does not, up to [`STATUS_ROUNDS`] times: a status it wrote from an
    /// older read than a neighbour's is put right by its own check. An idle
    /// sweep writes none and reads nothing more. Returns the world as last read.
    async fn write_statuses(
        &self,
        mut world: World,
        mut assessment: Assessment,
        scope: &Scope,
        run: &mut Run,
    ) -> (World, Assessment) {
        let function = self.config.role.name();
        let region = &self.config.region;
        let mut writes = status::statuses(&world, &assessment, region, scope, &run.failures);
        for _ in 0..STATUS_ROUNDS {
            if writes.is_empty() {
                break;
            }
            for action in &writes {
                let result = self.cloud.perform(action).await;
                run.record(function, action, &result);
                if let Err(e) = result {
                    run.fail(e);
                }
            }
            match self.cloud.observe(&self.config.deployment, &scope.vpcs_named()).await {
                Ok(now) => {
                    world = now;
                    assessment = plan::assess(&world, &self.config.deployment);
                    writes = status::statuses(&world, &assessment, region, scope, &run.failures);
                }
                Err(e) => {
                    tracing::warn!(function, error = %e, "reading again after the status failed");
                    run.errors += 1;
                    break;
                }
            }
        }
        (world, assessment)
    }

    /// Puts each event on the bus of every region that takes it
    /// ([`Outgoing::destinations`]), this region's first.
    async fn send_events(&self, run: &mut Run) {
        let (own, deployment) = (&self.config.region, &self.config.deployment);
        let mut by_region: BTreeMap<Region, Vec<Outgoing>> = BTreeMap::new();
        for event in &run.report.events {
            for region in event.destinations(own, deployment) {
                by_region.entry(region).or_default().push(event.clone());
            }
        }
        let own_first = by_region.remove_entry(own).into_iter().chain(by_region);
        for (region, events) in own_first {
            if let Err(e) = self.events.send(&region, &events).await {
                tracing::error!(function = run.report.function, region = %region, error = %e, "sending events failed");
                run.fail(e);
            }
        }
    }
}

#[cfg(test)]
mod tests;
