//! What a function reads from its environment, read once at cold start.

use crate::error::ConfigError;
use crate::ids::{parse_list, AccountId, Region};
use crate::plan::{Deployment, Role};

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

pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Reads the environment; `account` is the credentials' own, used when
    /// `TAGPEER_ACCOUNT` is unset.
    pub fn from_env(role: Role, account: Option<AccountId>) -> Result<Self, ConfigError> {
        let (region, regions) = regions_from_env()?;
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
    parse_list(list).map_err(|source| ConfigError::Invalid { var: "TAGPEER_ALLOWED_ACCOUNTS", source })
}

/// `ap-northeast-2,ap-northeast-3` (spaces are forgiven).
pub fn parse_regions(list: &str) -> Result<Vec<Region>, ConfigError> {
    parse_list(list).map_err(|source| ConfigError::Invalid { var: "TAGPEER_REGIONS", source })
}

/// The function's own region (`AWS_REGION`) and the deployment's
/// (`TAGPEER_REGIONS`, the function's own first when it is not listed; the
/// function's own alone when unset). Every function reads them so.
pub fn regions_from_env() -> Result<(Region, Vec<Region>), ConfigError> {
    let region: Region = env_var("AWS_REGION")
        .ok_or(ConfigError::Missing { var: "AWS_REGION", hint: "Lambda sets it; elsewhere set the region to run in" })?
        .parse()
        .map_err(|source| ConfigError::Invalid { var: "AWS_REGION", source })?;
    let mut regions = match env_var("TAGPEER_REGIONS") {
        Some(list) => parse_regions(&list)?,
        None => vec![region.clone()],
    };
    if !regions.contains(&region) {
        regions.insert(0, region.clone());
    }
    Ok((region, regions))
}

/// How long an invocation waits on AWS by default (see [`Config::wait`]).
pub const DEFAULT_WAIT_SECONDS: f64 = 30.0;
