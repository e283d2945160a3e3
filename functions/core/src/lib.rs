//! tagpeer's functional core: everything tagpeer decides, with no AWS SDK, no
//! async runtime and no Lambda crate (`cargo tree -p tagpeer-core` shows it).
//!
//! Read it from the bottom up:
//!
//! - [`ids`], [`cidr`]: identifiers and address ranges;
//! - [`intent`]: the tag grammar, what people write;
//! - [`model`]: what tagpeer observes (the [`model::World`]) and its links;
//!   `index` (private): the world hashed by what a planning pass looks up,
//!   built once a pass;
//! - [`plan`]: the planner, intent and observed state in, actions out, in
//!   named phases;
//! - [`status`]: beside the planner, how each link stands and the words of
//!   `tagpeer-status`;
//! - [`invariants`]: what must hold after convergence, checked by the tests;
//! - [`overview`]: the deployment at a glance: each link's health, and the
//!   figures the metrics publish;
//! - [`graph`]: the links as a picture (Mermaid, Graphviz DOT);
//! - [`report`]: what the `tagpeer` command prints;
//! - [`reach`]: whether two servers can reach each other, and why not;
//! - [`provision`]: the design of the network the provisioner builds.
//!
//! The `tagpeer` crate holds the imperative shell: the AWS adapter, the
//! handlers, events and configuration.

pub mod cidr;
pub mod error;
pub mod graph;
pub mod ids;
mod index;
pub mod intent;
pub mod invariants;
pub mod model;
pub mod overview;
pub mod plan;
pub mod provision;
pub mod reach;
pub mod report;
pub mod status;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
