//! The planner on hand-built worlds: no AWS.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::retry::wait_after;
use super::*;
use crate::ids::{AccountId, Endpoint, PeeringId};
use crate::index::WorldIndex;
use crate::intent::{self, MESH, PEERS, ROUTE_TABLES, STATUS};
use crate::invariants;
use crate::model::{Peering, PeeringState, Route, RouteTable, Target};
use crate::status::{link_state, newly_ready, statuses};

use crate::testing::{deployment, ep, osaka, region, seoul, WorldBuilder as Builder, ACCOUNT, OSAKA, SEOUL};

/// The seed: Seoul 10.0.0.0/16 with a second route table, Osaka's default VPC.
fn seed(tags: &[(&str, &str)]) -> World {
    Builder::default()
        .vpc(&seoul(), "10.0.0.0/16", tags)
        .table(&seoul(), false)
        .vpc(&osaka(), "172.31.0.0/16", &[])
        .build()
}

fn seed_tagged() -> World {
    seed(&[(PEERS, "ap-northeast-3/vpc-0000000b")])
}

fn plan_for(world: &World, role: Role, r: &str, focus: &Scope) -> Vec<Action> {
    actions(world, &assess(world, &deployment()), role, &region(r), focus)
}

/// Every role in every region until nothing is left to do ([`crate::testing::converge`]).
fn converge(world: &mut World) -> usize {
    crate::testing::converge(world, &deployment())
}

fn status(world: &World, vpc: &Endpoint) -> String {
    world.vpc(vpc).unwrap().tags.get(STATUS).cloned().unwrap_or_default()
}

#[test]
fn the_seed_tag_makes_the_requester_in_seoul_request_and_nobody_else_act() {
    let world = seed_tagged();
    let link = LinkKey::new(seoul(), osaka());
    assert_eq!(
        plan_for(&world, Role::Requester, SEOUL, &Scope::tags_changed(vec![seoul()])),
        [Action::RequestPeering { link: link.clone(), requester: seoul(), accepter: osaka(), attempt: 1 }]
    );
    assert!(plan_for(&world, Role::Requester, OSAKA, &Scope::sweep()).is_empty());
    for r in [SEOUL, OSAKA] {
        assert!(plan_for(&world, Role::Accepter, r, &Scope::sweep()).is_empty());
        assert!(plan_for(&world, Role::Router, r, &Scope::sweep()).is_empty());
    }
}

#[test]
fn the_seed_steps_follow_each_other_and_end_ready() {
    let mut world = seed_tagged();
    let link = LinkKey::new(seoul(), osaka());
    let pcx: PeeringId = "pcx-0000abcd".parse().unwrap();
    let request = plan_for(&world, Role::Requester, SEOUL, &Scope::tags_changed(vec![seoul()]));
    request[0].take_effect(&mut world, Some(&pcx));
    assert!(plan_for(&world, Role::Requester, SEOUL, &Scope::sweep()).is_empty(), "requested once");

    // AWS answers the request with `initiating-request`: the accepter waits for it.
    let a = assess(&world, &deployment());
    assert!(plan_for(&world, Role::Accepter, OSAKA, &Scope::link(link.clone())).is_empty());
    assert_eq!(
        awaiting(&world, &a, Role::Accepter, &region(OSAKA), &Scope::link(link.clone())),
        [Awaited { link: link.clone(), peering: pcx.clone(), state: PeeringState::InitiatingRequest }]
    );
    assert!(awaiting(&world, &a, Role::Accepter, &region(SEOUL), &Scope::sweep()).is_empty(), "Seoul accepts nothing");
    assert!(world.settle());
    // Pending, but not yet listed in Osaka: the accepter still waits, and makes no call AWS would refuse.
    world.peerings[0].hidden_from_accepter = true;
    assert!(plan_for(&world, Role::Accepter, OSAKA, &Scope::link(link.clone())).is_empty());
    assert_eq!(
        awaiting(&world, &assess(&world, &deployment()), Role::Accepter, &region(OSAKA), &Scope::sweep())[0].state,
        PeeringState::PendingAcceptance
    );
    world.peerings[0].hidden_from_accepter = false;
    assert!(
        awaiting(&world, &assess(&world, &deployment()), Role::Accepter, &region(OSAKA), &Scope::sweep()).is_empty()
    );

    let accept = plan_for(&world, Role::Accepter, OSAKA, &Scope::link(link.clone()));
    assert_eq!(accept, [Action::AcceptPeering { link: link.clone(), region: region(OSAKA), peering: pcx.clone() }]);
    assert!(plan_for(&world, Role::Accepter, SEOUL, &Scope::sweep()).is_empty(), "only the accepter's region accepts");
    accept[0].take_effect(&mut world, None);

    // The accept's answer says `provisioning`: both routers wait for `active`.
    let a = assess(&world, &deployment());
    for r in [SEOUL, OSAKA] {
        assert!(plan_for(&world, Role::Router, r, &Scope::link(link.clone())).is_empty(), "no route yet in {r}");
        assert_eq!(
            awaiting(&world, &a, Role::Router, &region(r), &Scope::link(link.clone())),
            [Awaited { link: link.clone(), peering: pcx.clone(), state: PeeringState::Provisioning }]
        );
    }
    assert!(
        awaiting(&world, &a, Role::Requester, &region(SEOUL), &Scope::sweep()).is_empty(),
        "the requester waits on nothing"
    );
    assert!(world.settle());

    let seoul_routes = plan_for(&world, Role::Router, SEOUL, &Scope::link(link.clone()));
    assert_eq!(seoul_routes.len(), 2, "both Seoul route tables: {seoul_routes:?}");
    for a in &seoul_routes {
        let Action::CreateRoute { destination, peering, region: r, .. } = a else { panic!("{a:?}") };
        assert_eq!((destination.to_string().as_str(), peering, r), ("172.31.0.0/16", &pcx, &region(SEOUL)));
    }
    let osaka_routes = plan_for(&world, Role::Router, OSAKA, &Scope::link(link.clone()));
    assert_eq!(osaka_routes.len(), 1);
    assert!(
        matches!(&osaka_routes[0], Action::CreateRoute { destination, .. } if destination.to_string() == "10.0.0.0/16")
    );
    for a in seoul_routes.iter().chain(&osaka_routes) {
        a.take_effect(&mut world, None);
    }
    for r in [SEOUL, OSAKA] {
        for role in [Role::Requester, Role::Accepter, Role::Router] {
            assert!(plan_for(&world, role, r, &Scope::sweep()).is_empty(), "{role:?} in {r} has nothing left");
        }
    }
    let a = assess(&world, &deployment());
    let focus = Scope::link(link);
    assert_eq!(
        statuses(&world, &a, &region(SEOUL), &focus, &BTreeMap::new()),
        [Action::SetStatus {
            vpc: seoul(),
            status: Some(format!("ap-northeast-3/vpc-0000000b: ready via {pcx}")),
            reports_error: false
        }]
    );
    assert_eq!(
        statuses(&world, &a, &region(OSAKA), &focus, &BTreeMap::new()),
        [Action::SetStatus {
            vpc: osaka(),
            status: Some(format!("ap-northeast-2/vpc-0000000a: ready via {pcx}")),
            reports_error: false
        }]
    );
    assert!(invariants::violations(&world, &deployment()).is_empty());
}

#[test]
fn when_both_sides_ask_there_is_one_link_and_the_smaller_side_requests() {
    let mut world = Builder::default()
        .vpc(&seoul(), "10.0.0.0/16", &[(PEERS, "ap-northeast-3/vpc-0000000b")])
        .vpc(&osaka(), "172.31.0.0/16", &[(PEERS, "ap-northeast-2/vpc-0000000a")])
        .build();
    let a = assess(&world, &deployment());
    assert_eq!(a.links.len(), 1);
    assert_eq!(a.links.values().next().unwrap().requester, seoul());
    assert!(plan_for(&world, Role::Requester, OSAKA, &Scope::sweep()).is_empty());
    converge(&mut world);
    assert_eq!(world.peerings.len(), 1);
    assert!(invariants::violations(&world, &deployment()).is_empty());
}

#[test]
fn bad_references_make_clear_errors_and_no_action() {
    let cases: [(&str, &str); 5] = [
        ("vpc-0000000a", "tagpeer:peers: vpc-0000000a is this VPC itself"),
        (
            "ap-northeast-9/vpc-0000000b",
            "region ap-northeast-9 is not one of this deployment's (ap-northeast-2, ap-northeast-3)",
        ),
        ("ap-northeast-3/vpc-0000000f", "tagpeer:peers: ap-northeast-3/vpc-0000000f: no such VPC"),
        (
            "ap-northeast-3/vpc-0000000c",
            "ap-northeast-3/vpc-0000000c: ranges overlap (10.0.0.0/16 here, 10.0.0.0/8 there)",
        ),
        ("ap-northeast-3/vpc-0000000b/x", "is not a VPC reference"),
    ];
    for (value, expect) in cases {
        let mut world = Builder::default()
            .vpc(&seoul(), "10.0.0.0/16", &[(PEERS, value)])
            .vpc(&osaka(), "172.31.0.0/16", &[])
            .vpc(&ep(OSAKA, "vpc-0000000c"), "10.0.0.0/8", &[])
            .build();
        for role in [Role::Requester, Role::Accepter, Role::Router] {
            for r in [SEOUL, OSAKA] {
                assert!(plan_for(&world, role, r, &Scope::sweep()).is_empty(), "{value}: {role:?} in {r}");
            }
        }
        converge(&mut world);
        let s = status(&world, &seoul());
        assert!(s.starts_with("error: ") && s.contains(expect), "{value}: {s}");
        assert!(world.peerings.is_empty());
    }
}

#[test]
fn a_malformed_tag_holds_an_existing_link_as_it_is() {
    let mut world = seed_tagged();
    converge(&mut world);
    let before = world.clone();
    world.vpc_mut(&seoul()).unwrap().tags.insert(PEERS.into(), "ap-northeast-3/vpc-0000000b, osaka".into());
    for role in [Role::Requester, Role::Accepter, Role::Router] {
        for r in [SEOUL, OSAKA] {
            assert!(plan_for(&world, role, r, &Scope::sweep()).is_empty());
        }
    }
    converge(&mut world);
    assert_eq!(world.peerings, before.peerings);
    assert_eq!(world.route_tables, before.route_tables);
    assert!(status(&world, &seoul()).contains("\"osaka\" is not a VPC reference"), "{}", status(&world, &seoul()));
    assert!(status(&world, &osaka()).contains("held"), "{}", status(&world, &osaka()));
}

#[test]
fn removing_the_tag_removes_routes_on_both_sides_before_the_connection() {
    let mut world = seed_tagged();
    converge(&mut world);
    world.vpc_mut(&seoul()).unwrap().tags.remove(PEERS);
    let actions = plan_for(&world, Role::Requester, SEOUL, &Scope::tags_changed(vec![seoul()]));
    let (deletes, rest) = actions.split_at(3);
    assert!(deletes.iter().all(|a| matches!(a, Action::DeleteRoute { .. })), "{actions:?}");
    assert!(deletes.iter().any(|a| matches!(a, Action::DeleteRoute { region: r, .. } if r == &region(OSAKA))));
    assert!(matches!(rest, [Action::DeletePeering { .. }]), "{actions:?}");
    converge(&mut world);
    assert!(world.peerings.iter().all(|p| p.state == PeeringState::Deleted));
    assert!(world.route_tables.iter().all(|t| t.routes.iter().all(|r| r.target == Target::Local)));
    assert!(invariants::violations(&world, &deployment()).is_empty());
    assert_eq!(status(&world, &seoul()), "");
}

#[test]
fn duplicates_are_removed_and_the_active_one_kept() {
    let mut world = seed_tagged();
    converge(&mut world);
    let kept = world.peerings[0].id.clone();
    let mut dup = world.peerings[0].clone();
    dup.id = "pcx-00000000".parse().unwrap(); // smaller id, but pending
    dup.state = PeeringState::PendingAcceptance;
    world.peerings.push(dup);
    assert!(plan_for(&world, Role::Accepter, OSAKA, &Scope::sweep()).is_empty(), "a duplicate is never accepted");
    let actions = plan_for(&world, Role::Requester, SEOUL, &Scope::sweep());
    assert_eq!(
        actions,
        [Action::DeletePeering {
            link: LinkKey::new(seoul(), osaka()),
            region: region(SEOUL),
            peering: "pcx-00000000".parse().unwrap()
        }]
    );
    converge(&mut world);
    assert!(world.peering(&kept).unwrap().state == PeeringState::Active);
    assert!(invariants::violations(&world, &deployment()).is_empty());
}

#[test]
fn a_route_through_something_else_is_a_conflict_left_alone() {
    let mut world = seed_tagged();
    let igw = Route { destination: "172.31.0.0/16".parse().unwrap(), target: Target::Other("igw-0000000a".into()) };
    world.route_tables[0].routes.push(igw.clone());
    converge(&mut world);
    assert!(world.route_tables[0].routes.contains(&igw), "never replaced");
    let s = status(&world, &seoul());
    assert!(s.contains("conflict: rtb-00000001 already routes 172.31.0.0/16 via igw-0000000a, left alone"), "{s}");
    assert!(invariants::violations(&world, &deployment()).is_empty());
}

#[test]
fn connections_and_routes_tagpeer_did_not_make_are_never_touched() {
    let mut world = seed_tagged();
    // A hand-made request between the same VPCs: reported, never accepted, never deleted.
    world.peerings.push(Peering {
        id: "pcx-0000ffff".parse().unwrap(),
        requester: seoul(),
        accepter: osaka(),
        state: PeeringState::PendingAcceptance,
        tags: BTreeMap::new(),
        dns: Default::default(),
        hidden_from_accepter: false,
    });
    converge(&mut world);
    assert_eq!(world.peerings.len(), 1);
    assert_eq!(world.peerings[0].state, PeeringState::PendingAcceptance);
    assert!(status(&world, &seoul()).contains("already joined by pcx-0000ffff, which tagpeer did not make"));

    // A request tagpeer did not make, for VPCs that asked for nothing: never accepted.
    let mut world = seed(&[]);
    let stranger = Peering {
        id: "pcx-0000eeee".parse().unwrap(),
        requester: seoul(),
        accepter: osaka(),
        state: PeeringState::PendingAcceptance,
        tags: [(intent::MANAGED.to_owned(), "false".to_owned())].into(),
        dns: Default::default(),
        hidden_from_accepter: false,
    };
    world.peerings.push(stranger.clone());
    converge(&mut world);
    assert_eq!(world.peerings, [stranger]);
}

#[test]
fn route_tables_can_be_chosen() {
    let mut world = seed(&[(PEERS, "ap-northeast-3/vpc-0000000b"), (ROUTE_TABLES, "main")]);
    converge(&mut world);
    let peer_routes = |t: &RouteTable| t.routes.iter().filter(|r| matches!(r.target, Target::Peering(_))).count();
    let seoul_tables: Vec<_> = world.route_tables_of(&seoul()).collect();
    assert_eq!(seoul_tables.iter().map(|t| (t.main, peer_routes(t))).collect::<Vec<_>>(), [(true, 1), (false, 0)]);

    let mut world = seed(&[(PEERS, "ap-northeast-3/vpc-0000000b"), (ROUTE_TABLES, "rtb-00000009")]);
    converge(&mut world);
    assert!(world.peerings.is_empty());
    assert!(status(&world, &seoul()).contains("rtb-00000009 is not a route table of this VPC"));
}

#[test]
fn a_mesh_links_every_pair_across_regions() {
    let mut world = Builder::default()
        .vpc(&ep(SEOUL, "vpc-0000000a"), "10.0.0.0/16", &[(MESH, "prod")])
        .vpc(&ep(SEOUL, "vpc-0000000b"), "10.1.0.0/16", &[(MESH, "prod dev")])
        .vpc(&ep(OSAKA, "vpc-0000000c"), "10.2.0.0/16", &[(MESH, "prod")])
        .vpc(&ep(OSAKA, "vpc-0000000d"), "10.3.0.0/16", &[(MESH, "prod")])
        .build();
    converge(&mut world);
    assert_eq!(world.peerings.len(), 6);
    assert!(invariants::violations(&world, &deployment()).is_empty());
    world.vpc_mut(&ep(OSAKA, "vpc-0000000d")).unwrap().tags.remove(MESH);
    converge(&mut world);
    assert_eq!(world.peerings.iter().filter(|p| p.state.is_live()).count(), 3);
    assert!(invariants::violations(&world, &deployment()).is_empty());
}

#[test]
fn the_invariants_checker_catches_what_is_wrong() {
    let mut world = seed_tagged();
    assert!(!invariants::violations(&world, &deployment()).is_empty(), "a link without a connection");
    converge(&mut world);
    assert!(invariants::violations(&world, &deployment()).is_empty());
    let mut missing_route = world.clone();
    missing_route.route_tables[1].routes.retain(|r| r.target == Target::Local);
    assert!(invariants::violations(&missing_route, &deployment())[0].contains("not ready"));
    let mut deleted = world.clone();
    deleted.peerings[0].state = PeeringState::Deleted;
    assert!(invariants::violations(&deleted, &deployment()).iter().any(|v| v.contains("which is deleted")));
}

#[test]
fn the_invariants_checker_catches_touched_routes_unconsented_acceptances_and_unreported_errors() {
    // 3: a route through a gateway, there before, is gone or redirected after.
    let igw = Route { destination: "0.0.0.0/0".parse().unwrap(), target: Target::Other("igw-0000000a".into()) };
    let mut before = seed_tagged();
    before.route_tables[0].routes.push(igw.clone());
    let mut after = before.clone();
    converge(&mut after);
    assert_eq!(invariants::violations_since(&before, &after, &deployment()), Vec::<String>::new());
    let mut touched = after.clone();
    touched.route_tables[0].routes.retain(|r| r != &igw);
    assert!(invariants::violations_since(&before, &touched, &deployment())[0].contains("which tagpeer does not manage"));
    // 4: a hand-made request, pending before, active after.
    let mut hand_made = before.clone();
    let pcx: PeeringId = "pcx-0000ffff".parse().unwrap();
    hand_made.peerings.push(Peering {
        id: pcx.clone(),
        requester: osaka(),
        accepter: seoul(),
        state: PeeringState::PendingAcceptance,
        tags: Default::default(),
        dns: Default::default(),
        hidden_from_accepter: false,
    });
    let mut accepted = hand_made.clone();
    accepted.peerings.last_mut().unwrap().state = PeeringState::Active;
    let found = invariants::violations_since(&hand_made, &accepted, &deployment());
    assert!(
        found.iter().any(|v| v.contains("pcx-0000ffff was accepted") && v.contains("nobody consented")),
        "{found:?}"
    );
    // 6: a malformed tag whose status does not say so.
    let mut bad = seed(&[(PEERS, "osaka")]);
    converge(&mut bad);
    assert_eq!(invariants::violations(&bad, &deployment()), Vec::<String>::new(), "the status says it");
    bad.vpc_mut(&seoul()).unwrap().tags.remove(STATUS);
    assert!(invariants::violations(&bad, &deployment())[0].contains("does not report its error"));
}

/// A random deployment: up to five VPCs over two regions, each asking for some
/// of the others (and sometimes for nonsense), in random order.
fn random_world() -> impl Strategy<Value = World> {
    let vpcs = proptest::collection::vec(
        (any::<bool>(), 0u8..4, proptest::collection::vec(0usize..6, 0..4), any::<bool>()),
        1..=5,
    );
    vpcs.prop_map(|specs| {
        let n = specs.len();
        let ends: Vec<Endpoint> = specs
            .iter()
            .enumerate()
            .map(|(i, (in_seoul, ..))| ep(if *in_seoul { SEOUL } else { OSAKA }, &format!("vpc-{:08x}", i + 1)))
            .collect();
        let mut b = Builder::default();
        for (i, (_, block, peers, mesh)) in specs.iter().enumerate() {
            // Two VPCs share a block in one case of four: overlap errors too.
            let cidr = format!("10.{}.0.0/16", if *block == 0 { 0 } else { i + 1 });
            let refs: Vec<String> = peers
                .iter()
                .map(|&p| if p < n { ends[p].relative_to(&ends[i]) } else { "vpc-ffffffff".into() })
                .collect();
            let mut tags = vec![(PEERS, refs.join(","))];
            if *mesh {
                tags.push((MESH, "m".into()));
            }
            let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b = b.vpc(&ends[i], &cidr, &tags);
        }
        b.build()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever is asked, the sweeps converge, the invariants hold, and a
    /// second convergence does nothing.
    #[test]
    fn sweeps_converge_to_the_invariants(mut world in random_world()) {
        let rounds = converge(&mut world);
        prop_assert!(rounds <= 5, "{rounds} rounds");
        prop_assert_eq!(invariants::violations(&world, &deployment()), Vec::<String>::new());
        prop_assert_eq!(converge(&mut world), 1);
    }

    /// Dropping every intent tears everything down, routes included.
    #[test]
    fn removing_all_intent_leaves_nothing(mut world in random_world()) {
        converge(&mut world);
        for vpc in &mut world.vpcs {
            vpc.tags.retain(|k, _| !k.starts_with(intent::INTENT_PREFIX));
        }
        converge(&mut world);
        prop_assert!(world.peerings.iter().all(|p| !p.state.is_live()));
        prop_assert!(world.route_tables.iter().all(|t| t.routes.iter().all(|r| r.target == Target::Local)));
        prop_assert!(world.vpcs.iter().all(|v| v.status().is_none()));
    }
}

#[test]
fn the_status_report_shows_each_side_and_its_routes() {
    let mut world = seed_tagged();
    converge(&mut world);
    let pcx = world.peerings[0].id.clone();
    let report = crate::report::status(&world, &deployment());
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    assert!(lines[0].starts_with("VPC") && lines[0].contains("ROUTES"), "{report}");
    assert!(lines[1].starts_with("ap-northeast-2/vpc-0000000a") && lines[1].contains(&format!("ready via {pcx}")));
    assert!(lines[1].contains(&format!("rtb-00000001 172.31.0.0/16 -> {pcx}, rtb-00000002 172.31.0.0/16 -> {pcx}")));
    assert!(lines[2].starts_with("ap-northeast-3/vpc-0000000b") && lines[2].contains(&format!("10.0.0.0/16 -> {pcx}")));

    let bad = seed(&[(PEERS, "vpc-0000000a")]);
    let report = crate::report::status(&bad, &deployment());
    assert!(report.contains("PROBLEM") && report.contains("is this VPC itself"), "{report}");
}

#[test]
fn the_sweep_plan_says_what_a_sweep_would_do_and_nothing_once_converged() {
    let mut world = seed_tagged();
    let planned: Vec<String> = crate::report::sweep_plan(&world, &deployment())
        .iter()
        .map(|(role, r, a)| format!("{} {r} {a}", role.name()))
        .collect();
    assert_eq!(
        planned,
        [
            "requester ap-northeast-2 CreateVpcPeeringConnection in ap-northeast-2: vpc-0000000a to ap-northeast-3/vpc-0000000b",
            "requester ap-northeast-2 CreateTags in ap-northeast-2: vpc-0000000a tagpeer-status = ap-northeast-3/vpc-0000000b: requesting",
            "requester ap-northeast-3 CreateTags in ap-northeast-3: vpc-0000000b tagpeer-status = ap-northeast-2/vpc-0000000a: requesting",
        ]
    );
    converge(&mut world);
    assert_eq!(crate::report::sweep_plan(&world, &deployment()), []);
}

#[test]
fn a_side_turns_ready_once_and_each_step_names_its_side() {
    let mut world = seed_tagged();
    let link = LinkKey::new(seoul(), osaka());
    let pcx: PeeringId = "pcx-0000abcd".parse().unwrap();
    let request = plan_for(&world, Role::Requester, SEOUL, &Scope::sweep());
    assert_eq!(request[0].side_of(&link, &world), &seoul());
    request[0].take_effect(&mut world, Some(&pcx));
    world.settle();
    let accept = plan_for(&world, Role::Accepter, OSAKA, &Scope::sweep());
    assert_eq!(accept[0].side_of(&link, &world), &osaka());
    accept[0].take_effect(&mut world, None);
    world.settle();

    let before = world.clone();
    let routes = plan_for(&world, Role::Router, OSAKA, &Scope::sweep());
    assert_eq!(routes[0].side_of(&link, &world), &osaka());
    for a in &routes {
        a.take_effect(&mut world, None);
    }
    let a = assess(&world, &deployment());
    assert_eq!(
        newly_ready(&before, &world, &a, &region(OSAKA), &Scope::sweep()),
        [(link.clone(), osaka(), pcx.clone())]
    );
    assert_eq!(newly_ready(&before, &world, &a, &region(SEOUL), &Scope::sweep()), [], "Seoul's side has no routes yet");
    assert_eq!(newly_ready(&world, &world, &a, &region(OSAKA), &Scope::sweep()), [], "ready once, not again");
}

#[test]
fn a_mesh_member_leaving_on_the_accepter_side_is_taken_down_from_its_own_region() {
    let (a, b) = (ep(SEOUL, "vpc-0000000a"), ep(OSAKA, "vpc-0000000b"));
    let mut world =
        Builder::default().vpc(&a, "10.0.0.0/16", &[(MESH, "prod")]).vpc(&b, "10.1.0.0/16", &[(MESH, "prod")]).build();
    converge(&mut world);
    assert_eq!(world.peerings[0].requester, a, "Seoul requested");
    world.vpc_mut(&b).unwrap().tags.remove(MESH);
    let actions = plan_for(&world, Role::Requester, OSAKA, &Scope::tags_changed(vec![b.clone()]));
    assert_eq!(actions.iter().filter(|x| matches!(x, Action::DeleteRoute { .. })).count(), 2, "{actions:?}");
    assert!(matches!(actions.last(), Some(Action::DeletePeering { region: r, .. }) if r == &region(SEOUL)));
}

#[test]
fn the_router_routes_both_sides_when_a_range_changes_or_a_connection_dies() {
    let mut world = seed_tagged();
    converge(&mut world);
    let osaka_vpc = world.vpc_mut(&osaka()).unwrap();
    osaka_vpc.ipv4.push("100.64.0.0/16".parse().unwrap());
    // A sweep routes this region's side only; a range change, both.
    let sweep = plan_for(&world, Role::Router, OSAKA, &Scope::sweep());
    assert!(sweep.is_empty(), "Osaka's side needs nothing: {sweep:?}");
    let change = plan_for(&world, Role::Router, OSAKA, &Scope::ranges_changed(vec![osaka()]));
    assert_eq!(change.len(), 2, "Seoul's two tables: {change:?}");
    assert!(change.iter().all(|x| matches!(x, Action::CreateRoute { region: r, destination, .. }
        if r == &region(SEOUL) && destination.to_string() == "100.64.0.0/16")));

    // A connection deleted by hand: its routes go on both sides.
    let pcx = world.peerings[0].id.clone();
    world.peerings[0].state = PeeringState::Deleted;
    let gone = plan_for(&world, Role::Router, SEOUL, &Scope::peering(pcx, true));
    assert_eq!(
        gone.iter().filter(|x| matches!(x, Action::DeleteRoute { region: r, .. } if r == &region(OSAKA))).count(),
        1
    );
    assert_eq!(
        gone.iter().filter(|x| matches!(x, Action::DeleteRoute { region: r, .. } if r == &region(SEOUL))).count(),
        2
    );
    // And the requester asks again.
    let again = plan_for(&world, Role::Requester, SEOUL, &Scope::peering(world.peerings[0].id.clone(), true));
    assert!(matches!(again.as_slice(), [Action::RequestPeering { .. }]), "{again:?}");
}

#[test]
fn dns_on_lets_this_vpc_resolve_the_peers_names_set_on_the_peers_side_in_its_region() {
    let mut world = seed(&[(PEERS, "ap-northeast-3/vpc-0000000b"), (intent::DNS, "on")]);
    converge(&mut world);
    assert_eq!(world.peerings[0].dns, crate::model::PeeringDns { requester: false, accepter: true });
    assert!(invariants::violations(&world, &deployment()).is_empty());
    // Turned off again: the option follows.
    world.vpc_mut(&seoul()).unwrap().tags.insert(intent::DNS.into(), "off".into());
    let actions = plan_for(&world, Role::Router, OSAKA, &Scope::sweep());
    assert!(
        matches!(actions.as_slice(), [Action::SetDns { region: r, requester_side: false, on: false, .. }] if r == &region(OSAKA)),
        "{actions:?}"
    );
    assert!(plan_for(&world, Role::Router, SEOUL, &Scope::sweep()).is_empty(), "Seoul's side is not asked to change");
    let mut broken = world.clone();
    broken.vpc_mut(&seoul()).unwrap().tags.insert(intent::DNS.into(), "on".into());
    broken.peerings[0].dns.accepter = false;
    assert!(invariants::violations(&broken, &deployment()).iter().any(|v| v.contains("DNS")));
}

#[test]
fn dns_waits_for_dns_hostnames_and_resolution_in_both_vpcs_and_says_so() {
    let mut world = seed(&[(PEERS, "ap-northeast-3/vpc-0000000b"), (intent::DNS, "on")]);
    // Osaka's VPC was made without DNS hostnames (a new VPC's default).
    world.vpc_mut(&seoul()).unwrap().dns = Some(crate::model::VpcDns { hostnames: true, support: true });
    world.vpc_mut(&osaka()).unwrap().dns = Some(crate::model::VpcDns { hostnames: false, support: true });
    assert_eq!(dns_reads(&world, &deployment()), [seoul(), osaka()].into(), "both sides' attributes are read");
    converge(&mut world);
    assert_eq!(world.peerings[0].dns, crate::model::PeeringDns::default(), "AWS would refuse the option");
    assert!(invariants::violations(&world, &deployment()).is_empty());
    let s = status(&world, &seoul());
    assert!(
        s.contains("ready via")
            && s.contains(
                "but no DNS resolution: ap-northeast-3/vpc-0000000b needs DNS hostnames and DNS resolution on"
            ),
        "{s}"
    );
    assert!(!status(&world, &osaka()).contains("DNS"), "Osaka asked for no DNS: {}", status(&world, &osaka()));
    // Turned on: the option follows, and the status is plain again.
    world.vpc_mut(&osaka()).unwrap().dns = Some(crate::model::VpcDns { hostnames: true, support: true });
    converge(&mut world);
    assert_eq!(world.peerings[0].dns, crate::model::PeeringDns { requester: false, accepter: true });
    assert!(status(&world, &seoul()).ends_with(&format!("ready via {}", world.peerings[0].id)));
    // Without any tagpeer:dns, nothing is read.
    assert!(dns_reads(&seed_tagged(), &deployment()).is_empty());
}

#[test]
fn a_rejected_request_is_asked_again_at_once_then_with_growing_waits() {
    let mut world = seed_tagged();
    world.observed_at = 1_000_000;
    let link = LinkKey::new(seoul(), osaka());
    let reject = |world: &mut World| {
        let live = world.peerings.iter_mut().find(|p| p.state.is_live()).expect("a live request");
        live.state = PeeringState::Rejected;
    };
    let request = |world: &World| plan_for(world, Role::Requester, SEOUL, &Scope::sweep());

    let first = request(&world);
    assert!(matches!(first.as_slice(), [Action::RequestPeering { attempt: 1, .. }]), "{first:?}");
    first[0].take_effect(&mut world, Some(&"pcx-00000001".parse().unwrap()));
    reject(&mut world);

    // The first retry goes at once (a connection deleted by hand comes back).
    let second = request(&world);
    assert!(matches!(second.as_slice(), [Action::RequestPeering { attempt: 2, .. }]), "{second:?}");
    second[0].take_effect(&mut world, Some(&"pcx-00000002".parse().unwrap()));
    reject(&mut world);

    // The second retry waits RETRY_BASE, and says so.
    assert_eq!(request(&world), [], "waits");
    let a = assess(&world, &deployment());
    let state = link_state(&world, &a, &link, &seoul());
    assert_eq!(state.to_string(), "pcx-00000002 ended rejected; request 3 in 5 min");
    world.observed_at += RETRY_BASE - 1;
    assert_eq!(request(&world), [], "still waits");
    world.observed_at += 1;
    let third = request(&world);
    assert!(matches!(third.as_slice(), [Action::RequestPeering { attempt: 3, .. }]), "{third:?}");
    third[0].take_effect(&mut world, Some(&"pcx-00000003".parse().unwrap()));
    reject(&mut world);

    // Then twice as long, and so on, up to the cap.
    world.observed_at += 2 * RETRY_BASE - 1;
    assert_eq!(request(&world), []);
    world.observed_at += 1;
    assert!(matches!(request(&world).as_slice(), [Action::RequestPeering { attempt: 4, .. }]));

    // Without the intent, nothing is asked and nothing waits.
    world.vpc_mut(&seoul()).unwrap().tags.remove(PEERS);
    assert_eq!(request(&world), []);
    let a = assess(&world, &deployment());
    let links: std::collections::BTreeSet<LinkKey> = a.links.keys().cloned().collect();
    assert_eq!(crate::status::render(&world, &a, &links, &BTreeMap::new(), &seoul()), None, "nothing to say");
}

// ---------------------------------------------------------------- accounts

const OTHER: &str = "222222222222";

/// Osaka's VPC in the other account.
fn theirs() -> Endpoint {
    Endpoint::new(OTHER.parse().unwrap(), region(OSAKA), "vpc-0000000c".parse().unwrap())
}

/// The deployment to `account`, allowing `allowed`.
fn deployed(account: &str, allowed: &[&str]) -> Deployment {
    let mut d = Deployment::new(account.parse().unwrap(), vec![region(SEOUL), region(OSAKA)]);
    d.allowed_accounts = allowed.iter().map(|a| a.parse().unwrap()).collect();
    d
}

/// Seoul (this account) asks for Osaka's VPC in the other account, which
/// carries `accept` (no tag when `None`). Both deployments see both VPCs,
/// as their reader roles show them.
fn across(accept: Option<&str>) -> World {
    let tag = format!("{OTHER}/ap-northeast-3/vpc-0000000c");
    let theirs_tags: Vec<(&str, &str)> = accept.map(|a| (crate::intent::ACCEPT, a)).into_iter().collect();
    Builder::default()
        .vpc(&seoul(), "10.0.0.0/16", &[(PEERS, &tag)])
        .vpc(&theirs(), "172.31.0.0/16", &theirs_tags)
        .build()
}

/// Every action both deployments would take, by deployment, in every region.
fn both_plans(world: &World, deployments: &[&Deployment]) -> Vec<(AccountId, Action)> {
    let mut out = Vec::new();
    for d in deployments {
        let assessment = assess(world, d);
        for role in [Role::Requester, Role::Accepter, Role::Router] {
            for r in &d.regions {
                for action in actions(world, &assessment, role, r, &Scope::sweep()) {
                    out.push((d.account.clone(), action));
                }
                for action in statuses(world, &assessment, r, &Scope::sweep(), &BTreeMap::new()) {
                    out.push((d.account.clone(), action));
                }
            }
        }
    }
    out
}

/// Runs both deployments' sweeps until neither has anything left to do.
fn converge_across(world: &mut World, deployments: &[&Deployment]) {
    for _ in 0..10 {
        let actions = both_plans(world, deployments);
        if actions.is_empty() && !world.settle() {
            return;
        }
        for (account, action) in actions {
            let side = action.link().map(|k| action.side_of(k, world).clone());
            let owner = match &action {
                Action::SetStatus { vpc, .. } => vpc.account.clone(),
                _ => side.map(|s| s.account).unwrap_or(account.clone()),
            };
            assert_eq!(owner, account, "a deployment acts on its own account only: {action}");
            let created = matches!(action, Action::RequestPeering { .. }).then(|| "pcx-0000c0de".parse().unwrap());
            action.take_effect(world, created.as_ref());
        }
    }
    panic!("no convergence: {world:#?}");
}

#[test]
fn a_link_across_accounts_forms_with_consent_each_account_doing_its_own_side() {
    let ours = deployed(ACCOUNT, &[OTHER]);
    let other = deployed(OTHER, &[ACCOUNT]);
    for accept in [
        "123456789012",
        "*",
        "333333333333 123456789012/ap-northeast-2/vpc-0000000a",
        "123456789012/ap-northeast-2/vpc-0000000a",
    ] {
        let mut world = across(Some(accept));
        converge_across(&mut world, &[&ours, &other]);
        let p = &world.peerings[0];
        assert_eq!((p.state.clone(), world.peerings.len()), (PeeringState::Active, 1), "accept = {accept}");
        assert!(invariants::violations(&world, &ours).is_empty(), "{:?}", invariants::violations(&world, &ours));
        assert!(invariants::violations(&world, &other).is_empty());
        assert!(status(&world, &seoul()).contains("ready via"), "{}", status(&world, &seoul()));
        assert!(status(&world, &theirs()).contains("ready via"), "{}", status(&world, &theirs()));
    }
}

#[test]
fn without_consent_nothing_is_requested_or_accepted() {
    let ours = deployed(ACCOUNT, &[OTHER]);
    let other = deployed(OTHER, &[ACCOUNT]);
    // No tagpeer:accept, or one that names someone else.
    // (`ap-northeast-2/vpc-0000000a` there names a VPC of the other account.)
    for accept in [None, Some("333333333333"), Some("ap-northeast-2/vpc-0000000a")] {
        let mut world = across(accept);
        converge_across(&mut world, &[&ours, &other]);
        assert!(world.peerings.is_empty(), "accept = {accept:?}");
        let s = status(&world, &seoul());
        assert!(
            s.contains("waiting for consent") && s.contains("tagpeer:accept does not name account 123456789012"),
            "{s}"
        );
    }
    // This deployment does not work with the other account.
    let world = across(Some("*"));
    let a = assess(&world, &deployed(ACCOUNT, &[]));
    assert!(a.links.is_empty());
    let problem = a.problems[&seoul()][0].to_string();
    assert!(problem.contains("account 222222222222 is not one of this deployment's allowed accounts"), "{problem}");
}

#[test]
fn a_request_the_accepters_deployment_does_not_allow_is_never_accepted() {
    let ours = deployed(ACCOUNT, &[OTHER]);
    let other = deployed(OTHER, &[]); // the other account does not allow this one
    let mut world = across(Some("*"));
    let request = actions(&world, &assess(&world, &ours), Role::Requester, &region(SEOUL), &Scope::sweep());
    assert_eq!(request.len(), 1, "this side consents and asks: {request:?}");
    request[0].take_effect(&mut world, Some(&"pcx-0000c0de".parse().unwrap()));
    for _ in 0..3 {
        for action in both_plans(&world, &[&ours, &other]) {
            let (_, action) = action;
            assert!(!matches!(action, Action::AcceptPeering { .. } | Action::DeletePeering { .. }), "{action}");
            action.take_effect(&mut world, None);
        }
        world.settle();
    }
    assert_eq!(world.peerings[0].state, PeeringState::PendingAcceptance);
}

#[test]
fn an_account_that_cannot_be_read_is_said_so_and_nothing_is_requested() {
    let ours = deployed(ACCOUNT, &[OTHER]);
    let mut world = across(Some("*"));
    world.vpcs.retain(|v| v.endpoint != theirs());
    world.route_tables.retain(|t| t.vpc != theirs());
    world.unreadable.push((OTHER.parse().unwrap(), region(OSAKA), "AccessDenied: not authorized".into()));
    let a = assess(&world, &ours);
    assert!(a.links.is_empty());
    assert!(actions(&world, &a, Role::Requester, &region(SEOUL), &Scope::sweep()).is_empty());
    let problem = a.problems[&seoul()][0].to_string();
    assert!(problem.contains("cannot read the other account (AccessDenied: not authorized)"), "{problem}");
    // Only the allowed accounts' VPCs in the deployment's regions are ever read.
    let reads = remote_reads(&across(Some("*")), &ours, &[]);
    assert_eq!(reads.len(), 1);
    assert!(remote_reads(&across(Some("*")), &deployed(ACCOUNT, &[]), &[]).is_empty());
    // A VPC the trigger names is read too, when its account is allowed and
    // its region the deployment's: a request from it may not be listed here yet.
    let named_elsewhere = Endpoint::new(OTHER.parse().unwrap(), region(SEOUL), "vpc-0000000e".parse().unwrap());
    let nobody = Builder::default().vpc(&seoul(), "10.0.0.0/16", &[]).build();
    let reads = remote_reads(&nobody, &ours, std::slice::from_ref(&named_elsewhere));
    assert_eq!(reads.values().flatten().collect::<Vec<_>>(), [&named_elsewhere.vpc_id]);
    assert!(remote_reads(&nobody, &deployed(ACCOUNT, &[]), &[named_elsewhere]).is_empty(), "not allowed");
}

#[test]
fn a_reject_or_delete_heard_in_the_accepters_region_is_handed_over_and_requested_again_by_the_requesters_region() {
    let link = LinkKey::new(seoul(), osaka());
    for state in [PeeringState::Rejected, PeeringState::Deleted] {
        let mut world = seed_tagged();
        let pcx: PeeringId = "pcx-0000abcd".parse().unwrap();
        world.peerings.push(Peering {
            id: pcx.clone(),
            requester: seoul(),
            accepter: osaka(),
            state: state.clone(),
            tags: [
                (crate::intent::MANAGED.to_owned(), "true".to_owned()),
                (crate::intent::LINK.to_owned(), link.to_string()),
            ]
            .into(),
            dns: Default::default(),
            hidden_from_accepter: false,
        });
        // CloudTrail records the call in Osaka only: Osaka's requester hands
        // the link over to Seoul's, which alone requests for Seoul's VPCs.
        assert_eq!(
            plan_for(&world, Role::Requester, OSAKA, &Scope::peering(pcx.clone(), true)),
            [Action::HandOver { link: link.clone(), requester: seoul(), accepter: osaka() }],
            "{state:?}"
        );
        assert_eq!(
            plan_for(&world, Role::Requester, SEOUL, &Scope::link(link.clone())),
            [Action::RequestPeering { link: link.clone(), requester: seoul(), accepter: osaka(), attempt: 2 }],
            "{state:?}: the Link Wanted"
        );
        // A sweep requests only for its own region's VPCs, so two sweeps never both request.
        assert!(plan_for(&world, Role::Requester, OSAKA, &Scope::sweep()).is_empty());
        assert_eq!(plan_for(&world, Role::Requester, SEOUL, &Scope::sweep()).len(), 1);
    }
}

#[test]
fn across_accounts_a_teardown_from_the_accepters_side_leaves_the_delete_to_the_requesters_account() {
    let ours = deployed(ACCOUNT, &[OTHER]);
    let other = deployed(OTHER, &[ACCOUNT]);
    let mut world = across(Some("*"));
    converge_across(&mut world, &[&ours, &other]);
    // The accepter withdraws consent: its deployment removes its routes, and
    // never deletes the connection (its account sees none of the connection's
    // tags, so AWS would refuse the delete), even once our routes are gone.
    world.vpc_mut(&theirs()).unwrap().tags.remove(crate::intent::ACCEPT);
    let a = assess(&world, &other);
    let theirs_plan = actions(&world, &a, Role::Requester, &region(OSAKA), &Scope::sweep());
    assert!(
        !theirs_plan.is_empty() && theirs_plan.iter().all(|x| matches!(x, Action::DeleteRoute { .. })),
        "{theirs_plan:?}"
    );
    for x in &theirs_plan {
        x.take_effect(&mut world, None);
    }
    let seoul_tables: Vec<_> = world.route_tables.iter().filter(|t| t.vpc == seoul()).map(|t| t.id.clone()).collect();
    for t in world.route_tables.iter_mut().filter(|t| seoul_tables.contains(&t.id)) {
        t.routes.retain(|r| r.target == Target::Local);
    }
    for region_name in [SEOUL, OSAKA] {
        let again = actions(&world, &assess(&world, &other), Role::Requester, &region(region_name), &Scope::sweep());
        assert!(!again.iter().any(|x| matches!(x, Action::DeletePeering { .. })), "{again:?}");
    }
    // Ours, the requester's, deletes it.
    let mine = actions(&world, &assess(&world, &ours), Role::Requester, &region(SEOUL), &Scope::sweep());
    assert!(
        mine.iter().any(|x| matches!(x, Action::DeletePeering { region: r, .. } if r == &region(SEOUL))),
        "{mine:?}"
    );
    converge_across(&mut world, &[&ours, &other]);
    assert_eq!(world.peerings[0].state, PeeringState::Deleted);
    assert!(invariants::violations(&world, &ours).is_empty() && invariants::violations(&world, &other).is_empty());
}

#[test]
fn across_accounts_the_connection_waits_for_the_other_accounts_routes_to_go() {
    let ours = deployed(ACCOUNT, &[OTHER]);
    let other = deployed(OTHER, &[ACCOUNT]);
    let mut world = across(Some("*"));
    converge_across(&mut world, &[&ours, &other]);
    world.vpc_mut(&seoul()).unwrap().tags.remove(PEERS);
    // This side removes its routes, and leaves the connection while the other side's stand.
    let a = assess(&world, &ours);
    let mine = actions(&world, &a, Role::Requester, &region(SEOUL), &Scope::sweep());
    assert!(
        !mine.is_empty()
            && mine.iter().all(|x| matches!(x, Action::DeleteRoute { region: r, .. } if r == &region(SEOUL))),
        "{mine:?}"
    );
    for x in &mine {
        x.take_effect(&mut world, None);
    }
    assert!(actions(&world, &a, Role::Requester, &region(SEOUL), &Scope::sweep()).is_empty(), "waits");
    // The other deployment takes its routes down; then ours deletes the connection.
    converge_across(&mut world, &[&other, &ours]);
    assert_eq!(world.peerings[0].state, PeeringState::Deleted);
    assert!(world.route_tables.iter().all(|t| t.routes.iter().all(|r| !matches!(r.target, Target::Peering(_)))));
}

// ------------------------------------------------------------------ quotas

#[test]
fn a_vpc_at_its_peering_quota_gets_no_new_link_and_keeps_the_ones_it_has() {
    let (b, c) = (ep(OSAKA, "vpc-0000000b"), ep(OSAKA, "vpc-0000000c"));
    let mut world = Builder::default()
        .vpc(&seoul(), "10.0.0.0/16", &[(PEERS, "ap-northeast-3/vpc-0000000b ap-northeast-3/vpc-0000000c")])
        .vpc(&b, "172.31.0.0/16", &[])
        .vpc(&c, "172.30.0.0/16", &[])
        .build();
    let mut d = deployment();
    d.quotas.peerings_per_vpc = 1;
    let a = assess(&world, &d);
    assert_eq!(
        a.links.keys().cloned().collect::<Vec<_>>(),
        [LinkKey::new(seoul(), b.clone())],
        "first in canonical order"
    );
    let problem = a.problems[&seoul()][0].to_string();
    assert_eq!(
        problem,
        "ap-northeast-3/vpc-0000000c: over quota: ap-northeast-2/vpc-0000000a already has 1 peering connections"
    );
    let requests = actions(&world, &a, Role::Requester, &region(SEOUL), &Scope::sweep());
    assert_eq!(requests.len(), 1);
    requests[0].take_effect(&mut world, Some(&"pcx-0000000b".parse().unwrap()));
    // The link that stands keeps its place, even when c now comes first.
    world.vpcs[1].endpoint = ep(OSAKA, "vpc-0000000e");
    world.peerings[0].accepter = ep(OSAKA, "vpc-0000000e");
    let renamed = LinkKey::new(seoul(), ep(OSAKA, "vpc-0000000e")).to_string();
    world.peerings[0].tags.insert(crate::intent::LINK.into(), renamed);
    world
        .vpc_mut(&seoul())
        .unwrap()
        .tags
        .insert(PEERS.into(), "ap-northeast-3/vpc-0000000e ap-northeast-3/vpc-0000000c".into());
    let a = assess(&world, &d);
    assert_eq!(a.links.keys().cloned().collect::<Vec<_>>(), [LinkKey::new(seoul(), ep(OSAKA, "vpc-0000000e"))]);
}

#[test]
fn a_full_route_table_refuses_a_new_link_before_any_request_and_is_reported_on_a_standing_one() {
    let mut d = deployment();
    d.quotas.routes_per_table = 1; // each table holds its local route already
    let mut world = seed_tagged();
    let a = assess(&world, &d);
    assert!(a.links.is_empty());
    assert!(actions(&world, &a, Role::Requester, &region(SEOUL), &Scope::sweep()).is_empty(), "no request");
    let problem = a.problems[&seoul()][0].to_string();
    assert!(problem.starts_with("ap-northeast-3/vpc-0000000b: over quota: rtb-00000001 of vpc-0000000a has no room for 1 more routes (1 at most)"), "{problem}");

    // A link that stands is never taken down by a quota: the router adds what
    // fits, and the status says which table is full.
    converge(&mut world);
    world.route_tables[0].routes.retain(|r| !matches!(r.target, Target::Peering(_)));
    let a = assess(&world, &d);
    assert_eq!(a.links.len(), 1);
    assert!(actions(&world, &a, Role::Router, &region(SEOUL), &Scope::sweep()).is_empty(), "no route over the quota");
    let status = crate::status::render(&world, &a, &all_links(&world, &a), &BTreeMap::new(), &seoul()).unwrap();
    assert!(!status.reports_error, "a full table is a state, not an error");
    let line = status.line;
    assert!(line.contains("but rtb-00000001 is full (1 routes, the quota)"), "{line}");
}

/// A mesh of three, two VPCs in Seoul (`a`, `b`) and one in Osaka, where
/// Seoul requests all three links, under a quota of one outstanding request.
fn mesh_of_three_one_request_at_a_time() -> (Deployment, World, Endpoint, Endpoint) {
    let mut d = deployment();
    d.quotas.outstanding_requests = 1;
    let (a, b) = (ep(SEOUL, "vpc-0000000a"), ep(SEOUL, "vpc-0000000d"));
    let world = Builder::default()
        .vpc(&a, "10.0.0.0/16", &[(MESH, "g")])
        .vpc(&b, "10.1.0.0/16", &[(MESH, "g")])
        .vpc(&osaka(), "172.31.0.0/16", &[(MESH, "g")])
        .build();
    (d, world, a, b)
}

/// An acceptance frees room in the requester's quota of outstanding requests:
/// the requester that hears of it ("Peering Accepted", a scope that frees
/// room) requests the link that waited, though the event names another link.
#[test]
fn a_link_waiting_for_room_is_requested_when_an_acceptance_frees_it() {
    let (d, mut world, a, b) = mesh_of_three_one_request_at_a_time();
    let first = LinkKey::new(a.clone(), b.clone());
    let plan_for = |world: &World, role: Role, r: &str, scope: &Scope| {
        super::actions(world, &assess(world, &d), role, &region(r), scope)
    };
    let request = plan_for(&world, Role::Requester, SEOUL, &Scope::tags_changed(vec![a.clone()]));
    assert!(matches!(&request[..], [Action::RequestPeering { link, .. }] if link == &first), "{request:?}");
    request[0].take_effect(&mut world, Some(&"pcx-00000001".parse().unwrap()));
    world.settle();
    let accept = plan_for(&world, Role::Accepter, SEOUL, &Scope::link(first.clone()));
    accept[0].take_effect(&mut world, None);
    // The acceptance names the first link only.
    let accepted = Scope::link(first.clone());
    assert_eq!(plan_for(&world, Role::Requester, SEOUL, &accepted), vec![], "without room freed, nothing more");
    let next = plan_for(&world, Role::Requester, SEOUL, &accepted.freeing_room());
    assert!(
        matches!(&next[..], [Action::RequestPeering { link, .. }] if link != &first),
        "the next link in canonical order: {next:?}"
    );
}

#[test]
fn requests_awaiting_acceptance_stay_within_the_quota_in_canonical_order() {
    let (d, mut world, a, b) = mesh_of_three_one_request_at_a_time();
    let mut next = 0u32;
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 20, "no convergence: {world:#?}");
        let assessment = assess(&world, &d);
        let mut actions = Vec::new();
        for role in [Role::Requester, Role::Accepter, Role::Router] {
            for r in [SEOUL, OSAKA] {
                actions.extend(super::actions(&world, &assessment, role, &region(r), &Scope::sweep()));
            }
        }
        let requests = actions.iter().filter(|x| matches!(x, Action::RequestPeering { .. })).count();
        let outstanding = world
            .peerings
            .iter()
            .filter(|p| matches!(p.state, PeeringState::InitiatingRequest | PeeringState::PendingAcceptance))
            .count();
        assert!(requests + outstanding <= 1, "at most one request awaits acceptance in Seoul: {actions:?}");
        if rounds == 1 {
            // The first link in canonical order goes first; the others wait, and say why.
            assert!(
                matches!(&actions[..], [Action::RequestPeering { link, .. }] if link == &LinkKey::new(a.clone(), b.clone()))
            );
            let status =
                crate::status::render(&world, &assessment, &all_links(&world, &assessment), &BTreeMap::new(), &osaka())
                    .unwrap();
            assert!(status.reports_error, "a refused link is an error of the VPC that asks");
            let line = status.line;
            assert!(line.contains("waiting for room: account 123456789012 has 1 peering requests awaiting acceptance in ap-northeast-2 (the quota)"), "{line}");
        }
        for r in [SEOUL, OSAKA] {
            actions.extend(statuses(&world, &assessment, &region(r), &Scope::sweep(), &BTreeMap::new()));
        }
        let moved = !actions.is_empty();
        for action in actions {
            let created = matches!(action, Action::RequestPeering { .. }).then(|| {
                next += 1;
                format!("pcx-{next:08x}").parse().unwrap()
            });
            action.take_effect(&mut world, created.as_ref());
        }
        if !world.settle() && !moved {
            break;
        }
    }
    assert_eq!(world.peerings.len(), 3, "every link, one at a time");
    assert!(world.peerings.iter().all(|p| p.state == PeeringState::Active));
    assert!(invariants::violations(&world, &d).is_empty(), "{:?}", invariants::violations(&world, &d));
}

#[test]
fn the_back_off_outlasts_the_ended_connections_aws_forgets() {
    let mut world = seed_tagged();
    world.observed_at = 1_000_000;
    let link = LinkKey::new(seoul(), osaka());
    let request = |world: &World| plan_for(world, Role::Requester, SEOUL, &Scope::sweep());
    // Requests 1 to 7, each rejected, each made as soon as it is due.
    for n in 1..=7u32 {
        let actions = request(&world);
        assert!(
            matches!(actions.first(), Some(Action::RequestPeering { attempt, .. }) if *attempt == n),
            "request {n}: {actions:?}"
        );
        // From the request whose back-off outlasts AWS's memory, the VPC remembers it.
        let remembers = actions.iter().any(|a| matches!(a, Action::SetRetry { last: Some((m, _)), .. } if *m == n));
        assert_eq!(remembers, wait_after(n) >= ENDED_KEPT_FOR, "request {n}: {actions:?}");
        for (i, a) in actions.iter().enumerate() {
            a.take_effect(&mut world, Some(&format!("pcx-{:08x}", n * 10 + i as u32).parse().unwrap()));
        }
        world.peerings.iter_mut().filter(|p| p.state.is_live()).for_each(|p| p.state = PeeringState::Rejected);
        world.observed_at += wait_after(n);
    }
    assert!(
        world.vpc(&seoul()).unwrap().tags.contains_key(&retry_key(&osaka())),
        "{:?}",
        world.vpc(&seoul()).unwrap().tags
    );
    // Request 7 ended; AWS forgets it (and every ended one) after about two hours,
    // well before request 8 is due (160 minutes after 7).
    world.observed_at -= wait_after(7);
    world.observed_at += ENDED_KEPT_FOR + 60;
    world.peerings.clear();
    assert_eq!(request(&world), [], "the back-off holds without the ended connections");
    let a = assess(&world, &deployment());
    assert_eq!(link_state(&world, &a, &link, &seoul()).to_string(), "request 7 ended; request 8 in 39 min");
    world.observed_at += 39 * 60;
    assert!(matches!(request(&world).first(), Some(Action::RequestPeering { attempt: 8, .. })));
    // Once the link is active, the VPC forgets.
    converge(&mut world);
    assert!(!world.vpc(&seoul()).unwrap().tags.contains_key(&retry_key(&osaka())));
    assert!(status(&world, &seoul()).contains("ready via"));
}

/// A converged random world, then intent dropped from some VPCs and made
/// malformed on others, with no sweep since: links that stand unasked (being
/// taken down) and held, beside the links asked for.
fn random_world_midway() -> impl Strategy<Value = World> {
    // One bit a VPC (at most five) to drop its intent, another to malform it.
    (random_world(), any::<u16>()).prop_map(|(mut world, mask)| {
        converge(&mut world);
        for (i, vpc) in world.vpcs.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                vpc.tags.retain(|k, _| !k.starts_with(intent::INTENT_PREFIX));
            } else if mask & (1 << (i + 5)) != 0 {
                vpc.tags.insert(intent::IPV6.into(), "perhaps".into());
            }
        }
        world
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A pass's index answers every per-link question as the world's own
    /// scans do, and [`EveryLink`] walks the links [`all_links`] lists.
    #[test]
    fn a_pass_through_the_index_sees_what_the_world_shows(world in random_world_midway()) {
        let a = assess(&world, &deployment());
        let index = WorldIndex::new(&world);
        let every = EveryLink::new(&index, &a);
        let walked: Vec<(&LinkKey, Option<&DesiredLink>)> = every.iter().collect();
        let listed = all_links(&world, &a);
        prop_assert_eq!(walked.iter().map(|(k, _)| *k).collect::<Vec<_>>(), listed.iter().collect::<Vec<_>>());
        for (key, desired) in &walked {
            prop_assert_eq!(*desired, a.links.get(*key));
        }
        let first = world.vpcs[0].endpoint.clone();
        let some_peering = world.peerings.first().map(|p| p.id.clone());
        let mut scopes = vec![Scope::sweep(), Scope::tags_changed(vec![first.clone()]), Scope::ranges_changed(vec![first])];
        scopes.extend(some_peering.map(|id| Scope::peering(id, true)));
        // Each status a pass writes is the line `render` gives from every link.
        let failures: BTreeMap<LinkKey, String> = listed.iter().take(1).map(|k| (k.clone(), "boom".into())).collect();
        for r in [SEOUL, OSAKA] {
            for write in statuses(&world, &a, &region(r), &Scope::sweep(), &failures) {
                let Action::SetStatus { vpc, status, .. } = write else { unreachable!("statuses only write statuses") };
                let line = crate::status::render(&world, &a, &listed, &failures, &vpc).map(|l| l.line);
                prop_assert_eq!(status, line);
            }
        }
        for key in &listed {
            prop_assert_eq!(retry_at(&index, key), retry(&world, key));
            prop_assert_eq!(dns_blocked_by_at(&index, key), dns_blocked_by(&world, key));
            for scope in &scopes {
                prop_assert_eq!(scope.in_view_at(key, &index, &a), scope.in_view(key, &world, &a));
            }
            for side in [&key.a, &key.b] {
                prop_assert_eq!(crate::status::link_state_at(&index, &a, key, side), link_state(&world, &a, key, side));
                let Some(peer) = world.vpc(key.other(side)) else { continue };
                let (through_index, scanned) = (wanted_routes_at(&index, &a, side, peer), wanted_routes(&world, &a, side, peer));
                prop_assert_eq!(through_index.len(), scanned.len());
                for ((t, r), (u, s)) in through_index.iter().zip(&scanned) {
                    prop_assert!(std::ptr::eq(*t, *u));
                    prop_assert_eq!(r, s);
                }
            }
        }
    }
}

#[test]
fn a_table_with_room_for_one_more_route_gets_one_across_all_the_links_of_a_pass() {
    let (b, c) = (ep(OSAKA, "vpc-0000000b"), ep(OSAKA, "vpc-0000000c"));
    let mut world = Builder::default()
        .vpc(&seoul(), "10.0.0.0/16", &[(MESH, "g")])
        .vpc(&b, "172.31.0.0/16", &[(MESH, "g")])
        .vpc(&c, "172.30.0.0/16", &[(MESH, "g")])
        .build();
    converge(&mut world);
    // Seoul's table loses both its routes to Osaka, and has room for one.
    world.route_tables[0].routes.retain(|r| r.target == Target::Local);
    let mut d = deployment();
    d.quotas.routes_per_table = 2;
    let a = assess(&world, &d);
    assert_eq!(a.links.len(), 3, "standing links keep their place");
    let routed = actions(&world, &a, Role::Router, &region(SEOUL), &Scope::sweep());
    let created: Vec<&Action> = routed.iter().filter(|a| matches!(a, Action::CreateRoute { .. })).collect();
    assert_eq!(created.len(), 1, "{routed:?}");
    assert!(
        matches!(created[0], Action::CreateRoute { link, destination, .. }
            if link == &LinkKey::new(seoul(), b.clone()) && destination.to_string() == "172.31.0.0/16"),
        "the first link in canonical order: {routed:?}"
    );
}

#[test]
fn a_route_through_a_duplicate_is_replaced_once_and_not_also_deleted() {
    let mut world = seed_tagged();
    converge(&mut world);
    let link = LinkKey::new(seoul(), osaka());
    // A second active connection of the link, with a smaller id: the one kept now.
    let mut duplicate = world.peerings[0].clone();
    duplicate.id = "pcx-00000000".parse().unwrap();
    world.peerings.push(duplicate);
    let routed = plan_for(&world, Role::Router, SEOUL, &Scope::sweep());
    assert_eq!(routed.len(), 2, "Seoul's two tables: {routed:?}");
    for action in &routed {
        assert!(
            matches!(action, Action::ReplaceRoute { link: l, peering, .. } if l == &link && peering.as_str() == "pcx-00000000"),
            "{routed:?}"
        );
    }
}

#[test]
fn a_connection_from_a_vpc_to_itself_is_one_link_in_its_status() {
    let mut world = seed_tagged();
    converge(&mut world);
    // Made by hand with tagpeer's tags, naming its own two (one) VPCs.
    let mut to_itself = world.peerings[0].clone();
    to_itself.id = "pcx-000000ff".parse().unwrap();
    to_itself.accepter = seoul();
    to_itself.tags.insert(intent::LINK.into(), LinkKey::new(seoul(), seoul()).to_string());
    world.peerings.push(to_itself);
    let a = assess(&world, &deployment());
    let writes = statuses(&world, &a, &region(SEOUL), &Scope::sweep(), &BTreeMap::new());
    let [Action::SetStatus { status: Some(line), .. }] = writes.as_slice() else { panic!("{writes:?}") };
    assert_eq!(line.matches("removing pcx-000000ff").count(), 1, "{line}");
}

// ------------------------------------------------------- a batch's one scope

#[test]
fn a_batch_scope_names_the_links_of_each_change_and_reaches_as_far_as_the_farthest() {
    let link = LinkKey::new(seoul(), osaka());
    let other = LinkKey::new(ep(SEOUL, "vpc-0000000c"), ep(OSAKA, "vpc-0000000d"));
    let third = LinkKey::new(ep(SEOUL, "vpc-0000000e"), ep(OSAKA, "vpc-0000000f"));
    let world = seed_tagged();
    let batch = Scope::union([Scope::link(link.clone()), Scope::tags_changed(vec![other.a.clone()])]).unwrap();
    assert!(batch.covers(&link, &world) && batch.covers(&other, &world));
    assert!(!batch.covers(&third, &world), "a link no change named is out of view");
    // A tag change reaches the account's other sides' options and frees room; a link's event does not.
    assert_eq!(
        (batch.requests, batch.routes, batch.options, batch.frees_room),
        (Reach::Account, Reach::Region, Reach::Account, true)
    );
    assert_eq!(batch.vpcs_named(), [link.a.clone(), link.b.clone(), other.a.clone()]);

    let doubled = Scope::union([Scope::link(link.clone()), Scope::link(link.clone())]).unwrap();
    assert_eq!(doubled, Scope::link(link.clone()), "an event delivered twice is one change");
    assert_eq!(Scope::union(Vec::new()), None);

    let with_sweep = Scope::union([Scope::ranges_changed(vec![seoul()]), Scope::sweep()]).unwrap();
    assert!(with_sweep.is_sweep(), "a sweep in the batch takes in every link");
    assert_eq!(with_sweep.routes, Reach::Account, "and still reaches as far as the range change asked");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// A batch of tag changes, one VPC each, plans exactly what one change
    /// of all those VPCs' tags plans: for every role, in every region.
    #[test]
    fn a_batch_of_tag_changes_plans_as_one_change_of_them_all(
        world in random_world(),
        picks in proptest::collection::vec(0usize..5, 1..5),
    ) {
        let vpcs: Vec<Endpoint> = picks.iter().filter_map(|&i| world.vpcs.get(i).map(|v| v.endpoint.clone())).collect();
        prop_assume!(!vpcs.is_empty());
        let batch = Scope::union(vpcs.iter().map(|v| Scope::tags_changed(vec![v.clone()]))).unwrap();
        let mut once = vpcs.clone();
        let mut seen = std::collections::BTreeSet::new();
        once.retain(|v| seen.insert(v.clone()));
        let together = Scope::tags_changed(once);
        for role in [Role::Requester, Role::Accepter, Role::Router] {
            for r in [SEOUL, OSAKA] {
                prop_assert_eq!(plan_for(&world, role, r, &batch), plan_for(&world, role, r, &together));
            }
        }
        let a = assess(&world, &deployment());
        for r in [SEOUL, OSAKA] {
            let none = BTreeMap::new();
            prop_assert_eq!(statuses(&world, &a, &region(r), &batch, &none), statuses(&world, &a, &region(r), &together, &none));
        }
    }

    /// A batch's scope has in view exactly the links some change of it has in view.
    #[test]
    fn a_batch_has_in_view_what_one_of_its_changes_has(world in random_world(), picks in proptest::collection::vec((0usize..5, 0u8..4), 1..5)) {
        let scopes: Vec<Scope> = picks
            .iter()
            .filter_map(|&(i, kind)| {
                let vpc = world.vpcs.get(i)?.endpoint.clone();
                let link = world.vpcs.iter().map(|v| v.endpoint.clone()).find(|o| o != &vpc).map(|o| LinkKey::new(vpc.clone(), o));
                Some(match kind {
                    0 => Scope::tags_changed(vec![vpc]),
                    1 => Scope::consent_changed(vpc),
                    2 => Scope::ranges_changed(vec![vpc]),
                    _ => Scope::link(link?),
                })
            })
            .collect();
        prop_assume!(!scopes.is_empty());
        let batch = Scope::union(scopes.clone()).unwrap();
        let a = assess(&world, &deployment());
        for key in a.links.keys() {
            prop_assert_eq!(batch.in_view(key, &world, &a), scopes.iter().any(|s| s.in_view(key, &world, &a)), "{}", key);
        }
    }
}

/// Under the quota of outstanding requests, links within one region go
/// first: AWS lists their request to the accepter at once, so they are
/// accepted, and free their room, soonest. Canonical order would put Seoul's
/// `a`'s link to Osaka before `d`'s to `e`.
#[test]
fn links_within_one_region_take_the_room_for_requests_first() {
    let mut d = deployment();
    d.quotas.outstanding_requests = 3;
    let (a, dd, e) = (ep(SEOUL, "vpc-0000000a"), ep(SEOUL, "vpc-0000000d"), ep(SEOUL, "vpc-0000000e"));
    let world = Builder::default()
        .vpc(&a, "10.0.0.0/16", &[(MESH, "g")])
        .vpc(&dd, "10.1.0.0/16", &[(MESH, "g")])
        .vpc(&e, "10.2.0.0/16", &[(MESH, "g")])
        .vpc(&osaka(), "172.31.0.0/16", &[(MESH, "g")])
        .build();
    let requested: Vec<LinkKey> =
        super::actions(&world, &assess(&world, &d), Role::Requester, &region(SEOUL), &Scope::sweep())
            .into_iter()
            .filter_map(|x| match x {
                Action::RequestPeering { link, .. } => Some(link),
                _ => None,
            })
            .collect();
    let within = [LinkKey::new(a.clone(), dd.clone()), LinkKey::new(a.clone(), e.clone()), LinkKey::new(dd, e)];
    assert_eq!(requested.len(), 3, "{requested:?}");
    assert!(requested.iter().all(|l| within.contains(l)), "the three within Seoul, not a's to Osaka: {requested:?}");
}
