//! The deployment a function plans for: its account, regions, the accounts
//! it works with and the quotas it plans within; and the roles that plan.

use crate::ids::{AccountId, Endpoint, Region};

/// One deployment of tagpeer: the account it acts in, its regions, the other
/// accounts it works with, and the quotas it plans within.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub account: AccountId,
    pub regions: Vec<Region>,
    /// Accounts whose VPCs may peer with this account's (`AllowedAccounts`):
    /// this deployment requests links to them and accepts requests from them.
    pub allowed_accounts: Vec<AccountId>,
    pub quotas: Quotas,
}

impl Deployment {
    /// A deployment that works with no other account, within AWS's default quotas.
    pub fn new(account: AccountId, regions: Vec<Region>) -> Self {
        Self { account, regions, allowed_accounts: Vec::new(), quotas: Quotas::default() }
    }

    /// This deployment's own: in its account and one of its regions.
    pub fn is_home(&self, vpc: &Endpoint) -> bool {
        vpc.account == self.account && self.regions.contains(&vpc.region)
    }
}

/// The EC2 quotas tagpeer checks before it acts, rather than meeting them as
/// failures. Both are adjustable per account and region, so both are settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Active VPC peering connections per VPC (AWS's default: 50).
    pub peerings_per_vpc: usize,
    /// Routes per route table (AWS's default: 50).
    pub routes_per_table: usize,
    /// Outstanding peering requests (not yet accepted) an account has made in
    /// a region (AWS's default: 25).
    pub outstanding_requests: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self { peerings_per_vpc: 50, routes_per_table: 50, outstanding_requests: 25 }
    }
}

/// Which function is planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Requester,
    Accepter,
    Router,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Accepter => "accepter",
            Role::Router => "router",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "requester" => Ok(Role::Requester),
            "accepter" => Ok(Role::Accepter),
            "router" => Ok(Role::Router),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// A role name that is none of the three.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not one of the function's roles: requester, accepter or router")]
pub struct UnknownRole(pub String);
