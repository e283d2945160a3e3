#!/usr/bin/env bash
# tools/graphcheck/selftest.sh [--update]: the real parsers on the samples.
#  - samples/NAME.mmd|dot parse (exit 0) to exactly samples/NAME.mmd.json|dot.json
#    (--update rewrites those files from the parsers' output);
#  - samples/broken/* all fail with exit 2 and a message, one call per file and
#    one call for them all (the FILE... mode);
#  - peering.mmd and peering.dot tell the same graph: node labels, links
#    (ends, label, style), account > region nesting.
set -uo pipefail
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
run=$here/run
py=${GRAPHCHECK_VENV:-$here/../../.venv-graphcheck}/bin/python
update=0
[ "${1:-}" = --update ] && update=1
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok    $*"; }
bad() { failed=$((failed + 1)); echo "FAIL  $*"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for f in "$here"/samples/*.mmd "$here"/samples/*.dot; do
	name=${f##*/}
	tool=mermaid; [ "${f##*.}" = dot ] && tool=dot
	if ! "$run" $tool <"$f" >"$tmp/out.json" 2>"$tmp/err"; then
		bad "$name: exit $? $(head -c 300 "$tmp/err")"
		continue
	fi
	if [ $update = 1 ]; then
		"$py" -m json.tool --indent 2 "$tmp/out.json" >"$f.json"
		ok "$name: wrote ${f##*/}.json"
	elif "$py" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' \
		"$tmp/out.json" "$f.json"; then
		ok "$name: parses to ${name}.json"
	else
		bad "$name: output differs from ${name}.json:"
		diff <("$py" -m json.tool --indent 2 "$tmp/out.json") "$f.json" | head -20
	fi
done

for f in "$here"/samples/broken/*; do
	name=broken/${f##*/}
	tool=mermaid; [ "${f##*.}" = dot ] && tool=dot
	"$run" $tool <"$f" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc = 2 ] && [ ! -s "$tmp/out" ] && [ -s "$tmp/err" ]; then
		ok "$name: rejected: $(head -n 1 "$tmp/err" | cut -c1-110)"
	else
		bad "$name: exit $rc (want 2), stdout $(head -c 200 "$tmp/out") stderr $(head -c 200 "$tmp/err")"
	fi
done

for tool in mermaid dot; do
	ext=mmd; [ $tool = dot ] && ext=dot
	files=("$here"/samples/broken/*.$ext)
	"$run" $tool "$here/samples/peering.$ext" "${files[@]}" >"$tmp/lines" 2>"$tmp/err"
	rc=$?
	if [ $rc = 2 ] && "$py" -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
want = [True] + [False] * (len(lines) - 1)
sys.exit(len(lines) != int(sys.argv[2]) + 1 or [l["ok"] for l in lines] != want
         or any(not l.get("error") for l in lines[1:]))' "$tmp/lines" "${#files[@]}"; then
		ok "$tool FILE... mode: peering.$ext ok, ${#files[@]} broken files each an error, exit 2"
	else
		bad "$tool FILE... mode: exit $rc, $(head -c 300 "$tmp/lines") $(head -c 200 "$tmp/err")"
	fi
done

# The two formats of one graph, compared through labels (their ids differ).
if "$run" mermaid <"$here/samples/peering.mmd" >"$tmp/m.json" && "$run" dot <"$here/samples/peering.dot" >"$tmp/d.json" &&
	"$py" - "$tmp/m.json" "$tmp/d.json" <<'EOF'; then
import json, sys
m, d = (json.load(open(p)) for p in sys.argv[1:])

def mermaid_view(g):
    label = {n["id"]: n["label"] for n in g["nodes"]}
    subs = {s["id"]: s for s in g["subgraphs"]}
    def tree(s):
        return (s["title"], sorted(label[n] for n in s["nodes"]),
                sorted(tree(subs[c]) for c in s["subgraphs"]))
    # --- open, -.-> dotted, ==> thick: what tagpeer means by active, pending, failed
    style = {"normal": "solid", "dotted": "dashed", "thick": "bold"}
    return (sorted(label.values()),
            sorted((label[e["from"]], label[e["to"]], e["label"], style[e["stroke"]]) for e in g["edges"]),
            sorted(tree(s) for s in g["subgraphs"] if s["parent"] is None))

def dot_view(g):
    label = {n["id"]: n["label"] for n in g["nodes"]}
    def tree(c):
        return (c["label"], sorted(label[n] for n in c["nodes"]), sorted(tree(x) for x in c["clusters"]))
    return (sorted(label.values()),
            sorted((label[e["from"]], label[e["to"]], e["label"], e["style"]) for e in g["edges"]),
            sorted(tree(c) for c in g["clusters"]))

a, b = mermaid_view(m), dot_view(d)
if a != b:
    print("mermaid:", a, "\ndot:    ", b)
    sys.exit(1)
EOF
	ok "peering.mmd and peering.dot: same nodes, links and account > region nesting"
else
	bad "peering.mmd and peering.dot tell different graphs"
fi

echo "graphcheck selftest: $passed passed, $failed failed"
[ $failed = 0 ]
