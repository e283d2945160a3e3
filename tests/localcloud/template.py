"""The deployment template, read as CloudFormation reads it, for one region.

Loads `infra-template/template.yaml` (YAML with CloudFormation's short-form
intrinsics), resolves parameters, conditions and the intrinsic functions the
template uses (Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Equals, Fn::Not, Fn::And,
Fn::Or, Fn::Select, Fn::Split, Fn::Join, Condition), applies SAM's Globals to
the functions, and hands the local cloud what it deploys: the functions (with
their binary and environment) and the EventBridge rules (pattern or schedule,
targets).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

PARTITION = "aws"


class TemplateError(ValueError):
    """The template uses something this reader does not understand."""


class _Loader(yaml.SafeLoader):
    pass


def _intrinsic(name: str):
    full = name if name in ("Ref", "Condition") else f"Fn::{name}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {full: value}

    return construct


for _name in ("Ref", "Condition", "Sub", "GetAtt", "If", "Equals", "Not", "And", "Or", "Select", "Split", "Join",
              "FindInMap", "Base64", "GetAZs", "ImportValue"):
    _Loader.add_constructor(f"!{_name}", _intrinsic(_name))


def load(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


@dataclass
class Function:
    logical_id: str
    name: str
    binary: str
    environment: dict[str, str]
    timeout: float
    memory_mb: int
    concurrency: int | None


@dataclass
class Target:
    id: str
    # Exactly one of these.
    function: str | None = None  # a function's logical id
    bus_arn: str | None = None  # another event bus


@dataclass
class Rule:
    logical_id: str
    name: str
    pattern: dict | None
    schedule: str | None
    targets: list[Target] = field(default_factory=list)
    enabled: bool = True


@dataclass
class Stack:
    region: str
    account: str
    functions: dict[str, Function]
    rules: list[Rule]


class _Evaluator:
    def __init__(self, template: dict, region: str, account: str, params: dict[str, str], stack_name: str):
        self.t = template
        self.region, self.account, self.stack_name = region, account, stack_name
        self.params: dict[str, Any] = {}
        for name, spec in (template.get("Parameters") or {}).items():
            value = params.get(name, spec.get("Default"))
            if value is None:
                raise TemplateError(f"parameter {name} has no value and no default")
            if spec.get("Type", "String").startswith("List<") or spec.get("Type") == "CommaDelimitedList":
                value = [v for v in str(value).split(",")] if isinstance(value, str) else list(value)
            self.params[name] = value
        self.conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": PARTITION,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }.get(name)

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            if name in self._evaluating:
                raise TemplateError(f"condition {name} depends on itself")
            self._evaluating.add(name)
            spec = (self.t.get("Conditions") or {}).get(name)
            if spec is None:
                raise TemplateError(f"no condition {name}")
            self.conditions[name] = bool(self.eval(spec))
        return self.conditions[name]

    def resource_name(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}"

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.params:
            return self.params[name]
        resources = self.t.get("Resources") or {}
        if name in resources:
            kind = resources[name]["Type"]
            if kind == "AWS::IAM::ManagedPolicy":
                return f"arn:{PARTITION}:iam::{self.account}:policy/{self.resource_name(name)}"
            return self.resource_name(name)
        raise TemplateError(f"Ref to unknown {name}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resources = self.t.get("Resources") or {}
        if logical_id not in resources:
            raise TemplateError(f"GetAtt of unknown {logical_id}")
        kind = resources[logical_id]["Type"]
        name = self.resource_name(logical_id)
        if attribute != "Arn":
            raise TemplateError(f"GetAtt {logical_id}.{attribute} is not supported")
        service, path = {
            "AWS::Serverless::Function": ("lambda", f"function:{name}"),
            "AWS::Lambda::Function": ("lambda", f"function:{name}"),
            "AWS::IAM::Role": ("iam", f"role/{name}"),
            "AWS::Logs::LogGroup": ("logs", f"log-group:{name}:*"),
            "AWS::Events::Rule": ("events", f"rule/{name}"),
        }.get(kind, (None, None))
        if service is None:
            raise TemplateError(f"GetAtt {logical_id}.Arn of a {kind} is not supported")
        region = "" if service == "iam" else self.region
        return f"arn:{PARTITION}:{service}:{region}:{self.account}:{path}"

    def sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], {k: self.eval(v) for k, v in arg[1].items()})

        def replace(m: re.Match) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self.get_att(*name.split(".", 1)))
            value = self.ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def eval(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.eval(n) for n in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                value = self.ref(arg)
                return _NO_VALUE if value is None else value
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::If":
                name, yes, no = arg
                return self.eval(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                a, b = (self.eval(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.eval(arg[0])
            if key == "Fn::And":
                return all(self.eval(x) for x in arg)
            if key == "Fn::Or":
                return any(self.eval(x) for x in arg)
            if key == "Fn::Select":
                index, items = self.eval(arg[0]), self.eval(arg[1])
                return items[int(index)]
            if key == "Fn::Split":
                sep, text = arg[0], self.eval(arg[1])
                return text.split(sep)
            if key == "Fn::Join":
                sep, items = arg[0], self.eval(arg[1])
                return sep.join(str(i) for i in items)
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported")
        return {k: v for k, v in ((k, self.eval(v)) for k, v in node.items()) if v is not _NO_VALUE}


_NO_VALUE = object()


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def stack(template: dict, region: str, account: str, params: dict[str, str], stack_name: str = "tagpeer") -> Stack:
    """The functions and rules the template deploys in `region`."""
    ev = _Evaluator(template, region, account, params, stack_name)
    resources = template.get("Resources") or {}
    globals_fn = (template.get("Globals") or {}).get("Function") or {}

    def present(res: dict) -> bool:
        return "Condition" not in res or ev.condition(res["Condition"])

    functions: dict[str, Function] = {}
    for logical_id, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function" or not present(res):
            continue
        props = ev.eval(_merge(globals_fn, res.get("Properties") or {}))
        binary = ((res.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        if not binary:
            raise TemplateError(f"{logical_id} names no Metadata.BuildProperties.Binary")
        env = {k: str(v) for k, v in ((props.get("Environment") or {}).get("Variables") or {}).items()}
        functions[logical_id] = Function(
            logical_id=logical_id,
            name=props.get("FunctionName") or ev.resource_name(logical_id),
            binary=binary,
            environment=env,
            timeout=float(props.get("Timeout", 3)),
            memory_mb=int(props.get("MemorySize", 128)),
            concurrency=props.get("ReservedConcurrentExecutions"),
        )

    arn_to_function = {ev.get_att(fid, "Arn"): fid for fid in functions}
    rules: list[Rule] = []
    for logical_id, res in resources.items():
        if res.get("Type") != "AWS::Events::Rule" or not present(res):
            continue
        props = ev.eval(res.get("Properties") or {})
        bus = props.get("EventBusName", "default")
        if bus not in ("default", f"arn:{PARTITION}:events:{region}:{account}:event-bus/default"):
            raise TemplateError(f"{logical_id}: only the default bus is supported, not {bus}")
        pattern = props.get("EventPattern")
        if isinstance(pattern, str):
            pattern = json.loads(pattern)
        targets = []
        for t in props.get("Targets") or []:
            arn = t["Arn"]
            if arn in arn_to_function:
                targets.append(Target(id=t["Id"], function=arn_to_function[arn]))
            elif re.match(r"^arn:[^:]+:events:[^:]+:\d{12}:event-bus/", arn):
                targets.append(Target(id=t["Id"], bus_arn=arn))
            else:
                raise TemplateError(f"{logical_id}: target {arn} is neither a function of the template nor a bus")
        rules.append(
            Rule(
                logical_id=logical_id,
                name=props.get("Name") or ev.resource_name(logical_id),
                pattern=pattern,
                schedule=props.get("ScheduleExpression"),
                targets=targets,
                enabled=props.get("State", "ENABLED") == "ENABLED",
            )
        )
    return Stack(region=region, account=account, functions=functions, rules=rules)
