//! The test bed the end-to-end tests and the demo share: moto's real server on
//! a free loopback port, the seed scenario's networks built through the real
//! AWS SDK, and the three functions' real handlers, with tagpeer's events
//! routed between them as the template's rules route them.

pub mod fixtures;
pub mod in_process;
pub mod local;
pub mod logs;
pub mod moto;
pub mod network;
pub mod observe;
pub mod reliability;

pub use fixtures::*;
pub use in_process::*;
pub use logs::*;
pub use moto::*;
pub use network::*;
pub use observe::*;

use tagpeer::plan::Role;

pub const SEOUL: &str = "ap-northeast-2";
pub const OSAKA: &str = "ap-northeast-3";
pub const ACCOUNT: &str = "123456789012";
pub const ROLES: [Role; 3] = [Role::Requester, Role::Accepter, Role::Router];
