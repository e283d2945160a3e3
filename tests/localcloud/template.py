"""The deployment template, read as CloudFormation reads it, for one region and account.

Loads `infra-template/template.yaml` (YAML with CloudFormation's short-form
intrinsics), resolves parameters (a `CommaDelimitedList` or `List<...>` one is a
list: "a, b" gives ["a", "b"], each member space-trimmed, and "" gives [""]),
conditions and the intrinsic functions the template uses (Ref, Fn::Sub,
Fn::GetAtt, Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Fn::Select, Fn::Split,
Fn::Join, Condition, and AWS::LanguageExtensions' Fn::Length and
Fn::ToJsonString), applies SAM's Globals to the functions, and hands the local
cloud what it deploys: the functions (with their binary and environment), the
EventBridge rules (pattern or schedule, targets, the role a target is sent
with), the default bus's resource policy (AWS::Events::EventBusPolicy), and the
SQS queues (AWS::SQS::Queue: name, ARN, visibility timeout, redrive policy),
their policies (AWS::SQS::QueuePolicy) and the Lambda event source mappings
that read them (AWS::Lambda::EventSourceMapping). A queue's `Ref` is its URL
and `Fn::GetAtt` gives its Arn, QueueName and QueueUrl, as CloudFormation's
do; a queue without QueueName is named STACK-LOGICALID (CloudFormation adds a
random suffix too).

`Transform` is one transform or a list of them, applied in order. With
AWS::LanguageExtensions listed (before AWS::Serverless-2016-10-31, which cannot
read what it expands), `Fn::ForEach::Name: [Identifier, Collection, {OutputKey:
OutputValue}]` is expanded in Conditions, Resources (their properties too) and
Outputs, nested loops included, before anything else is read (CloudFormation
Template Reference, "Fn::ForEach"): the collection is a list or a Ref to a list
parameter; for each of its values the fragment is copied with `${Identifier}`
replaced by the value, and `&{Identifier}` by the value without its
non-alphanumeric characters, in every key and every string, and `Ref:
Identifier` by the value; two outputs with one key are an error. Under it, too,
Fn::GetAtt's logical name may be an intrinsic (`!GetAtt [!Sub "Role${X}",
Arn]`).

The template's CloudWatch dashboard and alarms are ignored: the local cloud
evaluates no alarm and draws no dashboard (GET /_local/metrics shows what the
functions publish). `resources` evaluates them, as any other resource, for the
tests of the template alone.
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
    bus_arn: str | None = None  # a default bus: another region's, or another account's
    # An SNS topic (the alarm topic): the local cloud has no SNS, so a delivery to it is
    # recorded (GET /_local/events, outcome "published") and goes nowhere further.
    topic_arn: str | None = None
    queue: str | None = None  # an SQS queue of the stack: its logical id
    # RoleArn: the role EventBridge sends with (to a bus in another account, that role must be let
    # PutEvents on it).
    role_arn: str | None = None


@dataclass
class Rule:
    logical_id: str
    name: str
    pattern: dict | None
    schedule: str | None
    targets: list[Target] = field(default_factory=list)
    enabled: bool = True
    account: str = ""  # the account of the stack (and so of the bus) the rule is in


@dataclass
class BusPolicy:
    """A statement of the default bus's resource policy (AWS::Events::EventBusPolicy), as an IAM
    policy statement: its `Statement`, or the legacy Action/Principal/Condition made into one."""
    logical_id: str
    statement_id: str
    statement: dict


# SQS's defaults ("CreateQueue", Amazon SQS API Reference): a message is invisible for 30 s once
# received, and kept 4 days.
DEFAULT_VISIBILITY_TIMEOUT = 30
DEFAULT_RETENTION = 345600


@dataclass
class Queue:
    """An SQS standard queue of the stack (AWS::SQS::Queue)."""
    logical_id: str
    name: str
    arn: str  # arn:aws:sqs:REGION:ACCOUNT:NAME
    url: str  # what its Ref gives
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT  # seconds
    retention: int = DEFAULT_RETENTION  # MessageRetentionPeriod, seconds
    # RedrivePolicy: the dead-letter queue (its logical id) a message goes to once it has been
    # received `max_receive_count` times and not deleted; None: no dead-letter queue.
    dead_letter: str | None = None
    max_receive_count: int | None = None


@dataclass
class QueuePolicy:
    """An AWS::SQS::QueuePolicy: its statements, and the queues (logical ids) it is attached to."""
    logical_id: str
    queues: list[str]
    statements: list[dict]


# Lambda's defaults for an SQS event source ("Lambda parameters for Amazon SQS event source
# mappings", Lambda Developer Guide): 10 messages a batch, no batching window.
DEFAULT_BATCH_SIZE = 10


@dataclass
class EventSourceMapping:
    """An AWS::Lambda::EventSourceMapping that reads a queue of the stack."""
    logical_id: str
    queue: str  # the queue's logical id
    function: str  # the function's logical id
    batch_size: int = DEFAULT_BATCH_SIZE
    window_s: float = 0.0  # MaximumBatchingWindowInSeconds
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency; None: no limit of its own
    enabled: bool = True


@dataclass
class Stack:
    region: str
    account: str
    functions: dict[str, Function]
    rules: list[Rule]
    # The statements of this region's default bus's policy: who else may put events on it.
    bus_policies: list[BusPolicy] = field(default_factory=list)
    queues: dict[str, Queue] = field(default_factory=dict)  # by logical id
    queue_policies: list[QueuePolicy] = field(default_factory=list)
    mappings: list[EventSourceMapping] = field(default_factory=list)

    def queue_statements(self, logical_id: str) -> list[dict]:
        """The statements of every policy attached to the queue `logical_id`: its resource policy."""
        return [st for p in self.queue_policies if logical_id in p.queues for st in p.statements]


LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
SERVERLESS = "AWS::Serverless-2016-10-31"
_FOR_EACH = "Fn::ForEach::"
_LOOP_NAME = re.compile(r"^Fn::ForEach::[A-Za-z0-9]+$")


def transforms(template: dict) -> list[str]:
    """The template's transforms, in the order CloudFormation applies them: `Transform` is one
    transform or a list of them."""
    t = template.get("Transform")
    if t is None:
        return []
    items = t if isinstance(t, list) else [t]
    names = []
    for item in items:
        name = item.get("Name") if isinstance(item, dict) else item  # {Name: AWS::Include, Parameters: ...}
        if not isinstance(name, str):
            raise TemplateError(f"Transform {item!r} is not a transform's name")
        names.append(name)
    return names


def _uses_for_each(node: Any) -> bool:
    if isinstance(node, dict):
        return any((isinstance(k, str) and k.startswith(_FOR_EACH)) or _uses_for_each(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_uses_for_each(v) for v in node)
    return False


def _list_param(value: Any) -> list[str]:
    """A CommaDelimitedList's value: "a, b" gives ["a", "b"] (each member space-trimmed), "" gives [""]
    (CloudFormation User Guide, "Parameters": CommaDelimitedList)."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",")]
    return [str(v) for v in value]


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
                value = _list_param(value)
            self.params[name] = value
        self.conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()
        names = transforms(template)
        self.language_extensions = LANGUAGE_EXTENSIONS in names
        if self.language_extensions and SERVERLESS in names and names.index(SERVERLESS) < names.index(
                LANGUAGE_EXTENSIONS):
            raise TemplateError(f"Transform: {LANGUAGE_EXTENSIONS} must come before {SERVERLESS}, which cannot "
                                "read Fn::ForEach")
        if _uses_for_each(template) and not self.language_extensions:
            raise TemplateError(f"Fn::ForEach needs the {LANGUAGE_EXTENSIONS} transform")
        if self.language_extensions:
            self.t = self._language_extensions(template)

    # ------------------------------------------------ AWS::LanguageExtensions

    def _language_extensions(self, template: dict) -> dict:
        """The template with every Fn::ForEach of Conditions, Resources and Outputs expanded
        (Conditions first: a collection may be chosen by Fn::If)."""
        out = dict(template)
        for section in ("Conditions", "Resources", "Outputs"):
            if isinstance(out.get(section), dict):
                out[section] = self._expand(out[section], {})
                self.t = out
        for section, body in out.items():
            if section not in ("Conditions", "Resources", "Outputs") and _uses_for_each(body):
                raise TemplateError(f"Fn::ForEach cannot be used in {section}")
        return out

    @staticmethod
    def _substitute(text: str, bindings: dict[str, str]) -> str:
        for name, value in bindings.items():
            text = text.replace("${" + name + "}", value)
            text = text.replace("&{" + name + "}", re.sub(r"[^0-9A-Za-z]", "", value))
        return text

    def _expand(self, node: Any, bindings: dict[str, str]) -> Any:
        """`node` with its loops expanded and the loop identifiers of `bindings` replaced."""
        if isinstance(node, str):
            return self._substitute(node, bindings) if bindings else node
        if isinstance(node, list):
            return [self._expand(v, bindings) for v in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1 and isinstance(node.get("Ref"), str) and node["Ref"] in bindings:
            return bindings[node["Ref"]]
        out: dict = {}

        def add(key: str, value: Any) -> None:
            if key in out:
                raise TemplateError(f"Fn::ForEach makes {key} twice")
            out[key] = value

        for key, value in node.items():
            if not (isinstance(key, str) and key.startswith(_FOR_EACH)):
                add(self._substitute(key, bindings) if isinstance(key, str) and bindings else key,
                    self._expand(value, bindings))
                continue
            if not _LOOP_NAME.match(key):
                raise TemplateError(f"{key}: a loop's name is alphanumeric")
            if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
                    and isinstance(value[2], dict)):
                raise TemplateError(f"{key}: takes [Identifier, Collection, {{OutputKey: OutputValue}}]")
            identifier, collection, fragment = value
            items = self.eval(self._expand(collection, bindings))
            if not isinstance(items, list):
                raise TemplateError(f"{key}: the collection is not a list: {items!r}")
            for item in items:
                if isinstance(item, (dict, list)):
                    raise TemplateError(f"{key}: a collection's item must be a string, not {item!r}")
                item = _text(item)
                for k, v in self._expand(fragment, {**bindings, identifier: item}).items():
                    add(k, v)
        return out

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

    def queue_name(self, logical_id: str) -> str:
        """A queue's name: its QueueName, else STACK-LOGICALID."""
        props = (self.t.get("Resources") or {})[logical_id].get("Properties") or {}
        return str(self.eval(props["QueueName"])) if "QueueName" in props else self.resource_name(logical_id)

    def queue_url(self, logical_id: str) -> str:
        return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self.queue_name(logical_id)}"

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
            if kind == "AWS::SQS::Queue":  # a queue's Ref is its URL
                return self.queue_url(name)
            return self.resource_name(name)
        raise TemplateError(f"Ref to unknown {name}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resources = self.t.get("Resources") or {}
        if logical_id not in resources:
            raise TemplateError(f"GetAtt of unknown {logical_id}")
        kind = resources[logical_id]["Type"]
        name = self.resource_name(logical_id)
        if kind == "AWS::CloudWatch::Alarm":  # named by AlarmName when it has one
            name = str(self.eval((resources[logical_id].get("Properties") or {}).get("AlarmName") or name))
        if kind == "AWS::SQS::Queue":
            name = self.queue_name(logical_id)
            if attribute == "QueueName":
                return name
            if attribute == "QueueUrl":
                return self.queue_url(logical_id)
        if attribute != "Arn":
            raise TemplateError(f"GetAtt {logical_id}.{attribute} is not supported")
        service, path = {
            "AWS::Serverless::Function": ("lambda", f"function:{name}"),
            "AWS::Lambda::Function": ("lambda", f"function:{name}"),
            "AWS::IAM::Role": ("iam", f"role/{name}"),
            "AWS::Logs::LogGroup": ("logs", f"log-group:{name}:*"),
            "AWS::Events::Rule": ("events", f"rule/{name}"),
            "AWS::CloudWatch::Alarm": ("cloudwatch", f"alarm:{name}"),
            "AWS::SQS::Queue": ("sqs", name),
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
                if isinstance(logical_id, dict) or isinstance(attribute, dict):
                    if not self.language_extensions:
                        raise TemplateError(f"Fn::GetAtt of an intrinsic ({arg!r}) needs the "
                                            f"{LANGUAGE_EXTENSIONS} transform")
                    logical_id, attribute = str(self.eval(logical_id)), str(self.eval(attribute))
                return self.get_att(logical_id, attribute)
            if key in ("Fn::Length", "Fn::ToJsonString") and self.language_extensions:
                value = self.eval(arg)
                if key == "Fn::ToJsonString":
                    return json.dumps(value, separators=(",", ":"))
                if not isinstance(value, list):
                    raise TemplateError(f"Fn::Length of {value!r}, not a list")
                return len(value)
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


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def stack(template: dict, region: str, account: str, params: dict[str, str], stack_name: str = "tagpeer") -> Stack:
    """The functions, rules and default bus policy the template deploys in `region` and `account`."""
    ev = _Evaluator(template, region, account, params, stack_name)
    resources = ev.t.get("Resources") or {}
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
    queues = _queues(ev, resources, present)
    arn_to_queue = {q.arn: q.logical_id for q in queues.values()}
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
                targets.append(Target(id=t["Id"], function=arn_to_function[arn], role_arn=t.get("RoleArn")))
            elif arn in arn_to_queue:
                # No role: EventBridge sends to a queue under the queue's own policy.
                targets.append(Target(id=t["Id"], queue=arn_to_queue[arn], role_arn=t.get("RoleArn")))
            elif arn.startswith(f"arn:{PARTITION}:sqs:"):
                raise TemplateError(f"{logical_id}: target {arn} is not a queue of the stack")
            elif re.match(r"^arn:[^:]+:events:[^:]+:\d{12}:event-bus/default$", arn):
                targets.append(Target(id=t["Id"], bus_arn=arn, role_arn=t.get("RoleArn")))
            elif re.match(r"^arn:[^:]+:events:[^:]+:\d{12}:event-bus/", arn):
                raise TemplateError(f"{logical_id}: only default buses are supported as targets, not {arn}")
            elif m := re.match(r"^arn:[^:]+:sns:([^:]+):\d{12}:[^:]+$", arn):
                # "The targets you associate with a rule must be in the same Region as the rule"
                # (AWS re:Post Knowledge Center, "sns-not-getting-eventbridge-notification");
                # only an event bus may be another region's.
                if m.group(1) != region:
                    raise TemplateError(f"{logical_id}: topic {arn} is not in the rule's region {region}")
                targets.append(Target(id=t["Id"], topic_arn=arn))
            else:
                raise TemplateError(f"{logical_id}: target {arn} is neither a function nor a queue of the "
                                    "template, a bus nor an SNS topic")
        rules.append(
            Rule(
                logical_id=logical_id,
                name=props.get("Name") or ev.resource_name(logical_id),
                pattern=pattern,
                schedule=props.get("ScheduleExpression"),
                targets=targets,
                enabled=props.get("State", "ENABLED") == "ENABLED",
                account=account,
            )
        )
    return Stack(region=region, account=account, functions=functions, rules=rules,
                 bus_policies=_bus_policies(ev, resources, present), queues=queues,
                 queue_policies=_queue_policies(ev, resources, present, queues),
                 mappings=_mappings(ev, resources, present, queues, functions))


def _queues(ev: _Evaluator, resources: dict, present) -> dict[str, Queue]:
    """The stack's AWS::SQS::Queue resources, standard queues only. RedrivePolicy is an object or its
    JSON text; its deadLetterTargetArn must be a queue of the stack."""
    found: dict[str, Queue] = {}
    for logical_id, res in resources.items():
        if res.get("Type") != "AWS::SQS::Queue" or not present(res):
            continue
        props = ev.eval(res.get("Properties") or {})
        if _flag(props.get("FifoQueue"), False):
            raise TemplateError(f"{logical_id}: FIFO queues are not supported")
        found[logical_id] = Queue(
            logical_id=logical_id,
            name=ev.queue_name(logical_id),
            arn=ev.get_att(logical_id, "Arn"),
            url=ev.queue_url(logical_id),
            visibility_timeout=int(props.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT)),
            retention=int(props.get("MessageRetentionPeriod", DEFAULT_RETENTION)),
        )
        redrive = props.get("RedrivePolicy")
        if isinstance(redrive, str):
            redrive = json.loads(redrive)
        if redrive:
            found[logical_id].dead_letter = redrive.get("deadLetterTargetArn")
            found[logical_id].max_receive_count = int(redrive.get("maxReceiveCount", 0)) or None
    by_arn = {q.arn: q.logical_id for q in found.values()}
    for q in found.values():
        if q.dead_letter is not None:
            if q.dead_letter not in by_arn:
                raise TemplateError(f"{q.logical_id}: dead-letter queue {q.dead_letter} is not a queue of the stack")
            if q.max_receive_count is None:
                raise TemplateError(f"{q.logical_id}: a RedrivePolicy needs maxReceiveCount")
            q.dead_letter = by_arn[q.dead_letter]
    return found


def _queue_policies(ev: _Evaluator, resources: dict, present, queues: dict[str, Queue]) -> list[QueuePolicy]:
    """The stack's AWS::SQS::QueuePolicy resources: each one's statements and the queues (named by
    URL in `Queues`, as CloudFormation takes them) it is attached to."""
    by_url = {q.url: q.logical_id for q in queues.values()}
    found = []
    for logical_id, res in resources.items():
        if res.get("Type") != "AWS::SQS::QueuePolicy" or not present(res):
            continue
        props = ev.eval(res.get("Properties") or {})
        attached = []
        for url in props.get("Queues") or []:
            if url not in by_url:
                raise TemplateError(f"{logical_id}: {url} is not the URL of a queue of the stack")
            attached.append(by_url[url])
        body = (props.get("PolicyDocument") or {}).get("Statement") or []
        found.append(QueuePolicy(logical_id, attached, list(body) if isinstance(body, list) else [body]))
    return found


def _mappings(ev: _Evaluator, resources: dict, present, queues: dict[str, Queue],
              functions: dict[str, Function]) -> list[EventSourceMapping]:
    """The stack's AWS::Lambda::EventSourceMapping resources whose source is a queue of the stack;
    FunctionName is a function's name or ARN."""
    by_arn = {q.arn: q.logical_id for q in queues.values()}
    by_name = {f.name: f.logical_id for f in functions.values()}
    by_name.update({ev.get_att(f, "Arn"): f for f in functions})
    found = []
    for logical_id, res in resources.items():
        if res.get("Type") != "AWS::Lambda::EventSourceMapping" or not present(res):
            continue
        props = ev.eval(res.get("Properties") or {})
        source, function = props.get("EventSourceArn"), str(props.get("FunctionName"))
        if source not in by_arn:
            raise TemplateError(f"{logical_id}: only the stack's own SQS queues are supported as event sources, "
                                f"not {source}")
        if function not in by_name:
            raise TemplateError(f"{logical_id}: {function} is not a function of the template")
        if props.get("FunctionResponseTypes"):
            raise TemplateError(f"{logical_id}: FunctionResponseTypes (partial batch responses) is not supported")
        found.append(EventSourceMapping(
            logical_id=logical_id,
            queue=by_arn[source],
            function=by_name[function],
            batch_size=int(props.get("BatchSize", DEFAULT_BATCH_SIZE)),
            window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            max_concurrency=((props.get("ScalingConfig") or {}).get("MaximumConcurrency")),
            enabled=_flag(props.get("Enabled"), True),
        ))
    return found


def _bus_policies(ev: _Evaluator, resources: dict, present) -> list[BusPolicy]:
    """The stack's AWS::Events::EventBusPolicy statements, for its default bus. The legacy form
    (Action, Principal: an account id or "*", Condition: {Type, Key, Value}) is made the statement
    it stands for (AWS::Events::EventBusPolicy, CloudFormation User Guide)."""
    bus_arn = f"arn:{PARTITION}:events:{ev.region}:{ev.account}:event-bus/default"
    found = []
    for logical_id, res in resources.items():
        if res.get("Type") != "AWS::Events::EventBusPolicy" or not present(res):
            continue
        props = ev.eval(res.get("Properties") or {})
        bus = props.get("EventBusName", "default")
        if bus not in ("default", bus_arn):
            raise TemplateError(f"{logical_id}: only the default bus is supported, not {bus}")
        statement = props.get("Statement")
        if statement is None:
            principal = str(props.get("Principal", ""))
            statement = {"Effect": "Allow", "Action": props.get("Action", "events:PutEvents"), "Resource": bus_arn,
                         "Principal": "*" if principal == "*" else {"AWS": principal}}
            cond = props.get("Condition")
            if cond:
                statement["Condition"] = {cond.get("Type", "StringEquals"): {cond.get("Key"): cond.get("Value")}}
        if not isinstance(statement, dict):
            raise TemplateError(f"{logical_id}: Statement must be one statement")
        statement = dict(statement)
        statement.setdefault("Sid", props.get("StatementId", logical_id))
        found.append(BusPolicy(logical_id, str(props.get("StatementId", logical_id)), statement))
    return found


def outputs(template: dict, region: str, account: str, params: dict[str, str],
            stack_name: str = "tagpeer") -> dict[str, Any]:
    """The stack's Outputs (their Condition holds), by name, each's Value resolved."""
    ev = _Evaluator(template, region, account, params, stack_name)
    return {name: ev.eval(out.get("Value")) for name, out in (ev.t.get("Outputs") or {}).items()
            if "Condition" not in out or ev.condition(out["Condition"])}


def resources(template: dict, region: str, account: str, params: dict[str, str], kind: str,
              stack_name: str = "tagpeer") -> dict[str, dict]:
    """The resources of type `kind` the template creates in `region` (their Condition holds), by
    logical id, each's Properties resolved. For tests of what the local cloud does not run (the
    CloudWatch dashboard and alarms): the local cloud deploys only `stack`, `iam` and `trails`."""
    ev = _Evaluator(template, region, account, params, stack_name)
    return {logical_id: ev.eval(res.get("Properties") or {})
            for logical_id, res in (ev.t.get("Resources") or {}).items()
            if res.get("Type") == kind and ("Condition" not in res or ev.condition(res["Condition"]))}


# ------------------------------------------------------------------------ IAM
#
# For iam.py: the roles the template makes and the policy documents attached to
# each, resolved for one region and account as CloudFormation would create
# them, so that the local cloud evaluates the template's own policies.

# AWS managed policies a role of the template may attach, by ARN. Only what
# they grant that the local cloud can meet: AWSLambdaBasicExecutionRole grants
# CloudWatch Logs only ("AWSLambdaBasicExecutionRole", AWS Managed Policy
# Reference), which the local cloud does not serve.
AWS_MANAGED_POLICIES = {
    f"arn:{PARTITION}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                                      "logs:PutLogEvents"], "Resource": "*"}],
    },
}


@dataclass
class Role:
    logical_id: str
    name: str
    arn: str
    present: bool  # its Condition holds in this stack
    # (where the document comes from, the policy document), in the template's order.
    policies: list[tuple[str, dict]] = field(default_factory=list)
    # Managed policy ARNs that are neither the template's own nor in AWS_MANAGED_POLICIES.
    unknown_managed: list[str] = field(default_factory=list)
    # Its trust policy (AssumeRolePolicyDocument): who may assume it.
    trust: dict | None = None


@dataclass
class Iam:
    roles: dict[str, Role]
    function_roles: dict[str, str]  # function logical id -> role logical id


def iam(template: dict, region: str, account: str, params: dict[str, str], stack_name: str = "tagpeer") -> Iam:
    """The template's roles in `region` and `account`, each with every policy document attached to it:
    inline `Policies`, `ManagedPolicyArns` (the template's AWS::IAM::ManagedPolicy by !Ref, or an AWS
    managed policy), and AWS::IAM::ManagedPolicy / AWS::IAM::Policy resources that name the role in
    `Roles`. A function without `Role` gets the role SAM makes for it (AWSLambdaBasicExecutionRole and
    the function's own `Policies` documents)."""
    ev = _Evaluator(template, region, account, params, stack_name)
    resources = ev.t.get("Resources") or {}

    def present(res: dict) -> bool:
        return "Condition" not in res or ev.condition(res["Condition"])

    managed: dict[str, tuple[str, dict]] = {}  # ARN -> (logical id, document)
    for logical_id, res in resources.items():
        if res.get("Type") == "AWS::IAM::ManagedPolicy" and present(res):
            props = ev.eval(res.get("Properties") or {})
            managed[ev.ref(logical_id)] = (logical_id, props.get("PolicyDocument") or {})

    roles: dict[str, Role] = {}
    for logical_id, res in resources.items():
        if res.get("Type") != "AWS::IAM::Role":
            continue
        props = ev.eval(res.get("Properties") or {})
        name = props.get("RoleName") or ev.resource_name(logical_id)
        path = "/" + "/".join(x for x in str(props.get("Path", "/")).split("/") if x) + "/"
        path = "/" if path == "//" else path
        role = Role(logical_id, name, f"arn:{PARTITION}:iam::{account}:role{path}{name}", present(res),
                    trust=props.get("AssumeRolePolicyDocument"))
        for p in props.get("Policies") or []:
            role.policies.append((f"{logical_id}/{p.get('PolicyName', '?')}", p.get("PolicyDocument") or {}))
        for arn in props.get("ManagedPolicyArns") or []:
            if arn in managed:
                role.policies.append((managed[arn][0], managed[arn][1]))
            elif arn in AWS_MANAGED_POLICIES:
                role.policies.append((arn.rsplit("/", 1)[-1], AWS_MANAGED_POLICIES[arn]))
            else:
                role.unknown_managed.append(arn)
        roles[logical_id] = role

    # Policies that attach themselves to roles (`Roles`: role names, by !Ref).
    by_name = {r.name: r for r in roles.values()}
    for logical_id, res in resources.items():
        if res.get("Type") not in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy") or not present(res):
            continue
        props = ev.eval(res.get("Properties") or {})
        for name in props.get("Roles") or []:
            if name in by_name:
                by_name[name].policies.append((logical_id, props.get("PolicyDocument") or {}))

    function_roles: dict[str, str] = {}
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    for logical_id, res in resources.items():
        if res.get("Type") not in ("AWS::Serverless::Function", "AWS::Lambda::Function") or not present(res):
            continue
        raw = _merge(globals_fn, res.get("Properties") or {}).get("Role")
        if isinstance(raw, dict) and "Fn::GetAtt" in raw:
            target = raw["Fn::GetAtt"]
            target = target if isinstance(target, list) else target.split(".", 1)
            if isinstance(target[0], str) and target[0] in roles:
                function_roles[logical_id] = target[0]
                continue
        if raw is not None:
            arn = ev.eval(raw)
            match = next((r.logical_id for r in roles.values() if r.arn == arn), None)
            if match is None:
                raise TemplateError(f"{logical_id}: role {arn} is not a role of the template")
            function_roles[logical_id] = match
            continue
        # SAM's own role for a function without `Role` ("AWS::Serverless::Function", Policies).
        sam = Role(f"{logical_id}Role", ev.resource_name(f"{logical_id}Role"),
                   f"arn:{PARTITION}:iam::{account}:role/{ev.resource_name(logical_id + 'Role')}", True)
        basic = f"arn:{PARTITION}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        sam.policies.append(("AWSLambdaBasicExecutionRole", AWS_MANAGED_POLICIES[basic]))
        policies = ev.eval(res.get("Properties") or {}).get("Policies") or []
        for i, p in enumerate(policies if isinstance(policies, list) else [policies]):
            if isinstance(p, dict) and "Statement" in p:
                sam.policies.append((f"{logical_id}/Policies/{i}", p))
            elif isinstance(p, str) and p in managed:
                sam.policies.append(managed[p])
            elif isinstance(p, str) and p in AWS_MANAGED_POLICIES:
                sam.policies.append((p.rsplit("/", 1)[-1], AWS_MANAGED_POLICIES[p]))
            else:  # a SAM policy template or a managed policy this reader does not know
                sam.unknown_managed.append(json.dumps(p, default=str) if not isinstance(p, str) else p)
        roles[sam.logical_id] = sam
        function_roles[logical_id] = sam.logical_id
    return Iam(roles=roles, function_roles=function_roles)


# --------------------------------------------------------------- CloudTrail
#
# For awsevents.py: the trails the template makes in a stack, as CloudTrail
# would run them. "AWS API Call via CloudTrail" reaches EventBridge only while
# a trail with logging on records the call (EventBridge User Guide, "Events
# from AWS services": "To record events with a detail-type value of AWS API
# Call via CloudTrail, a CloudTrail trail with logging enabled is required";
# awsdocs/amazon-eventbridge-user-guide, doc_source/eb-service-event.md).


@dataclass
class Trail:
    logical_id: str
    name: str
    region: str  # the trail's home region: the stack's
    multi_region: bool  # IsMultiRegionTrail: it records every region of the account
    logging: bool  # IsLogging
    # It records write management events: EventSelectors (default: all management events,
    # ReadWriteType All) or AdvancedEventSelectors that keep eventCategory Management with
    # readOnly not only true. (AWS::CloudTrail::Trail, CloudFormation User Guide; CloudTrail
    # User Guide, "Logging management events".)
    writes: bool

    def covers(self, region: str) -> bool:
        """Whether a write call made in `region` (of this trail's account) is recorded."""
        return self.logging and self.writes and (self.multi_region or region == self.region)


def _flag(value: Any, default: bool) -> bool:
    if value is None or value is _NO_VALUE:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _records_writes(props: dict) -> bool:
    advanced = props.get("AdvancedEventSelectors")
    if advanced:
        for selector in advanced:
            fields = {f.get("Field"): f for f in selector.get("FieldSelectors") or []}
            category = fields.get("eventCategory") or {}
            if "Management" not in (category.get("Equals") or []):
                continue
            read_only = fields.get("readOnly") or {}
            if [str(v).lower() for v in read_only.get("Equals") or []] == ["true"]:
                continue
            return True
        return False
    selectors = props.get("EventSelectors")
    if not selectors:
        return True  # a trail without selectors logs every management event
    return any(_flag(s.get("IncludeManagementEvents"), True) and s.get("ReadWriteType", "All") in ("All", "WriteOnly")
               for s in selectors)


def trails(template: dict, region: str, account: str, params: dict[str, str], stack_name: str = "tagpeer") -> list[Trail]:
    """The AWS::CloudTrail::Trail resources the template creates in `region` (their Condition holds), with the
    properties that decide what they record. Only those properties are evaluated (the trail's bucket and key
    are CloudFormation's business)."""
    ev = _Evaluator(template, region, account, params, stack_name)
    found = []
    for logical_id, res in (ev.t.get("Resources") or {}).items():
        if res.get("Type") != "AWS::CloudTrail::Trail":
            continue
        if "Condition" in res and not ev.condition(res["Condition"]):
            continue
        raw = res.get("Properties") or {}
        props = {k: ev.eval(raw[k]) for k in ("TrailName", "IsLogging", "IsMultiRegionTrail", "EventSelectors",
                                                "AdvancedEventSelectors") if k in raw}
        found.append(Trail(
            logical_id=logical_id,
            name=str(props.get("TrailName") or ev.resource_name(logical_id)),
            region=region,
            multi_region=_flag(props.get("IsMultiRegionTrail"), False),
            logging=_flag(props.get("IsLogging"), False),  # required by CloudFormation; absent: not logging
            writes=_records_writes(props),
        ))
    return found
