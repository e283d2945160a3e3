#!/usr/bin/env python3
"""Parse Graphviz DOT with pydot's parser and print the graph as JSON.

    dot_graph.py < graph.dot            one graph on stdin -> one JSON object on stdout
    dot_graph.py a.dot b.dot ...        each file -> one JSON line {"file", "ok", "graph"|"error"}

Exit 0 when everything parsed, 2 on a parse error (the error on stderr, or in
the file's line), 1 on a usage or internal error.

The JSON of one graph:

    {"type": "digraph"|"graph", "strict": bool, "id": str, "attrs": {graph attributes},
     "nodes":    [{"id", "label", <attribute>: value, ...}],
     "edges":    [{"from", "to", "label", "style", "color", <attribute>: value, ...}],
     "clusters": [{"id", "label", "nodes": [node ids], "clusters": [...], <attribute>: value}],
     "warnings": [str]}

Ids and values are unquoted ("a b" -> a b, \\" -> "); other backslash escapes
(\\n, \\l) are kept as written; an HTML-like value keeps its <...>. Attributes
are the effective ones: the node/edge defaults (`node [...]`, `edge [...]`) in
force where the node was first mentioned or the edge written, then the
statement's own. A node's label defaults to its id, an edge's label, style and
color to null. Nodes are in order of first mention, including nodes that only
appear as edge endpoints ("declared": false). A cluster is a subgraph whose id
starts with "cluster"; other subgraphs are transparent (their nodes belong to
the enclosing cluster). A cluster's "nodes" are its direct members (not those of
a nested cluster), in order of first mention in it.

On top of pydot's grammar this rejects what Graphviz rejects and pydot lets
through: trailing text after the graph, more than one graph, `->` in a `graph`
or `--` in a `digraph`, and an attribute without `= value`.
"""

from __future__ import annotations

import json
import sys

import pydot  # noqa: F401  (pydot.core is needed by dot_parser)
from pydot.dot_parser import HTML, GraphParser
from pyparsing import (
    Literal,
    ParseBaseException,
    QuotedString,
    cStyleComment,
    dblSlashComment,
    restOfLine,
)


class DotError(Exception):
    pass


def unquote(s):
    if s is None:
        return None
    s = str(s)
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        return s[1:-1].replace('\\"', '"')
    return s


def split_node_id(s):
    """'"a":"p":n' -> ('a', 'p:n'); the ':' inside quotes are not separators."""
    parts, cur, quoted, i = [], "", False, 0
    while i < len(s):
        c = s[i]
        if c == "\\" and quoted and i + 1 < len(s):
            cur += s[i : i + 2]
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        if c == ":" and not quoted and not cur.startswith("<"):
            parts.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    parts.append(cur)
    return unquote(parts[0]), (":".join(unquote(p) for p in parts[1:]) or None)


_EDGE_OPS = (
    cStyleComment
    | dblSlashComment
    | (Literal("#") + restOfLine)
    | QuotedString('"', esc_char="\\", multiline=True)
    | HTML()
    | Literal("--")("op")
    | Literal("->")("op")
)


def check_edge_ops(text, graph_type):
    wrong = "->" if graph_type == "graph" else "--"
    for toks, start, _end in _EDGE_OPS.scan_string(text):
        if toks.get("op") == wrong:
            line = text.count("\n", 0, start) + 1
            raise DotError(f"line {line}: edge operator {wrong!r} in a {graph_type}")


def sorted_children(obj_dict):
    items = []
    for key in ("nodes", "edges", "subgraphs"):
        for group in obj_dict.get(key, {}).values():
            items.extend(group)
    items.sort(key=lambda o: o.get("sequence") or 0)
    return items


def attrs_of(obj, what):
    out = {}
    for k, v in (obj.get("attributes") or {}).items():
        if v is None:
            raise DotError(f"attribute {unquote(k)!r} of {what} has no value")
        out[unquote(k)] = unquote(v)
    return out


def put(record, attrs, reserved):
    for k, v in attrs.items():
        record[("attr_" + k) if k in reserved else k] = v


class Walker:
    def __init__(self):
        self.nodes = {}  # id -> {"declared": bool, "attrs": {...}}
        self.edges = []
        self.clusters = []
        self.warnings = []
        self.owner = {}  # node id -> cluster id that took it first
        self._cluster_stack = []

    def mention(self, nid, defaults, scope, attrs=None):
        node = self.nodes.get(nid)
        if node is None:
            node = self.nodes[nid] = {"declared": False, "attrs": dict(defaults["node"])}
        if attrs is not None:
            node["declared"] = True
            node["attrs"].update(attrs)
        for members in scope:
            if nid not in members:
                members.append(nid)
        return nid

    def endpoint_nodes(self, ep, defaults, scope):
        if isinstance(ep, str):
            nid, port = split_node_id(ep)
            self.mention(nid, defaults, scope)
            return [(nid, port)]
        # a subgraph as an endpoint: a -> {b c} is a -> b and a -> c
        inner = self.walk(ep, defaults, scope)
        return [(n, None) for n in inner]

    def walk(self, obj_dict, defaults, scope):
        """Walk one graph or subgraph body; returns the node ids mentioned in it."""
        defaults = {k: dict(v) for k, v in defaults.items()}
        here = []
        scope = scope + [here]
        for obj in sorted_children(obj_dict):
            kind = obj["type"]
            if kind == "node":
                name = obj["name"]
                if name in ("node", "edge", "graph"):
                    defaults[name].update(attrs_of(obj, f"the {name} defaults"))
                    continue
                nid, _port = split_node_id(name)
                self.mention(nid, defaults, scope, attrs_of(obj, f"node {nid!r}"))
            elif kind == "edge":
                src, dst = obj["points"]
                tails = self.endpoint_nodes(src, defaults, scope)
                heads = self.endpoint_nodes(dst, defaults, scope)
                attrs = dict(defaults["edge"])
                attrs.update(attrs_of(obj, "an edge"))
                for t, tport in tails:
                    for h, hport in heads:
                        edge = {"from": t, "to": h}
                        if tport:
                            edge["tailport"] = tport
                        if hport:
                            edge["headport"] = hport
                        edge["label"] = attrs.get("label")
                        edge["style"] = attrs.get("style")
                        edge["color"] = attrs.get("color")
                        put(edge, attrs, ("from", "to", "tailport", "headport"))
                        self.edges.append(edge)
            else:  # subgraph
                sid = unquote(obj.get("name") or "")
                if sid.startswith("cluster"):
                    self.cluster(obj, sid, defaults, scope)
                else:
                    self.walk(obj, defaults, scope)
        return here

    def cluster(self, obj, sid, defaults, scope):
        attrs = dict(defaults["graph"])
        graph_defaults = {}
        for child in sorted_children(obj):
            if child["type"] == "node" and child["name"] == "graph":
                graph_defaults.update(attrs_of(child, f"cluster {sid!r}"))
        attrs.update(graph_defaults)
        attrs.update(attrs_of(obj, f"cluster {sid!r}"))
        record = {"id": sid, "label": attrs.get("label"), "nodes": [], "clusters": []}
        put(record, attrs, ("id", "nodes", "clusters"))
        parent = self._cluster_stack[-1] if self._cluster_stack else None
        (parent["clusters"] if parent else self.clusters).append(record)
        self._cluster_stack.append(record)
        members = self.walk(obj, defaults, scope)
        self._cluster_stack.pop()
        inner = set()
        stack = list(record["clusters"])
        while stack:
            c = stack.pop()
            inner.update(c["_all"])
            stack.extend(c["clusters"])
        record["_all"] = members
        record["nodes"] = [n for n in members if n not in inner]
        for n in record["nodes"]:
            first = self.owner.setdefault(n, sid)
            if first != sid:
                self.warnings.append(
                    f"node {n!r} is in clusters {first!r} and {sid!r}: Graphviz draws it in one"
                )


def strip_private(clusters):
    for c in clusters:
        c.pop("_all", None)
        strip_private(c["clusters"])


def parse_dot(text):
    try:
        graphs = list(GraphParser.parser.parse_string(text, parse_all=True))
    except ParseBaseException as err:
        raise DotError(f"line {err.lineno}, column {err.column}: {err.msg}\n{err.line}") from None
    if len(graphs) != 1:
        raise DotError(f"expected one graph, found {len(graphs)}")
    g = graphs[0]
    top = g.obj_dict
    gtype = top["type"]
    check_edge_ops(text, gtype)
    w = Walker()
    defaults = {"node": {}, "edge": {}, "graph": {}}
    w.walk(top, defaults, [])
    graph_attrs = attrs_of(top, "the graph")
    for child in sorted_children(top):
        if child["type"] == "node" and child["name"] == "graph":
            graph_attrs.update(attrs_of(child, "the graph"))
    strip_private(w.clusters)
    nodes = []
    for nid, n in w.nodes.items():
        rec = {"id": nid, "label": n["attrs"].get("label", nid), "declared": n["declared"]}
        put(rec, n["attrs"], ("id", "declared"))
        nodes.append(rec)
    name = unquote(top.get("name") or "")
    return {
        "type": gtype,
        "strict": bool(top.get("strict")),
        "id": name,
        "attrs": graph_attrs,
        "nodes": nodes,
        "edges": w.edges,
        "clusters": w.clusters,
        "warnings": w.warnings,
    }


def main(argv):
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    if not argv:
        try:
            out = parse_dot(sys.stdin.read())
        except DotError as err:
            print(f"dot_graph: parse error: {err}", file=sys.stderr)
            return 2
        json.dump(out, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    status = 0
    for path in argv:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            line = {"file": path, "ok": True, "graph": parse_dot(text)}
        except DotError as err:
            line = {"file": path, "ok": False, "error": str(err)}
            status = 2
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
