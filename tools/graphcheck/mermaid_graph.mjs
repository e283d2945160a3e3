// Parse a Mermaid flowchart with Mermaid's own parser and print the graph as JSON.
//
//   node mermaid_graph.mjs < graph.mmd        one flowchart on stdin -> one JSON object
//   node mermaid_graph.mjs a.mmd b.mmd ...    each file -> one JSON line {"file", "ok", "graph"|"error"}
//
// Exit 0 when everything parsed, 2 on a parse error (Mermaid's message on
// stderr, or in the file's line), 1 on a usage or internal error.
//
// The text goes through mermaid.parse() (what Mermaid accepts before it draws:
// front matter, %%{init}%% directives, the diagram's grammar and the db's own
// checks, such as a linkStyle index past the last link), then through
// mermaidAPI.getDiagramFromText() for the flowchart db whose vertices, edges,
// subgraphs and classes are printed. Mermaid sanitizes labels with DOMPurify,
// which needs a DOM: jsdom gives it one (`window` only, set before Mermaid loads).
//
// The JSON of one flowchart:
//   {"type": "flowchart-v2", "direction": "LR",
//    "nodes": [{"id", "label", "labelType", "shape", "classes", "styles", "subgraph"}],
//    "edges": [{"id", "from", "to", "label", "labelType", "type", "stroke", "length",
//               "style", "interpolate", "classes"}],
//    "subgraphs": [{"id", "title", "labelType", "parent", "nodes", "subgraphs", "classes", "dir"}],
//    "classDefs": {"name": {"styles", "textStyles"}},
//    "linkStyleDefault": {"style", "interpolate"} | null,
//    "droppedMembers": [{"node", "keptBy", "droppedFrom"}],
//    "warnings": [str]}
// "label"/"title" are what a reader sees: Mermaid's entity codes (#quot; #35;)
// and the HTML entities DOMPurify writes (&amp; &lt;) decoded; tags it kept
// stay as DOMPurify serializes them (<br/> comes back as <br>, <script> is gone).
// A node only named in links has shape null and its id as label. An edge's
// "style" is its linkStyle (Mermaid appends fill:none), "type" its ends
// (arrow_open ---, arrow_point -->, arrow_circle --o, arrow_cross --x,
// double_arrow_point <-->), "stroke" its line (normal, dotted -.-, thick ===,
// invisible ~~~).
// "subgraphs" are in document order; "nodes" are a subgraph's direct member
// nodes, "subgraphs" its direct child subgraphs. "subgraph": true marks a
// vertex whose id is a subgraph's (a link to a subgraph). "droppedMembers" are
// nodes listed in two subgraphs (Mermaid keeps each in one); "warnings" says when
// the text is over Mermaid's maxTextSize (it parses, but Mermaid draws an error
// box instead). Over maxEdges (500) links, Mermaid's parse fails.
import { readFileSync } from 'node:fs';
import module from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
module.enableCompileCache?.(
  process.env.NODE_COMPILE_CACHE || join(here, 'node_modules', '.cache', 'node-compile-cache'),
);

const { JSDOM } = await import('jsdom');
const { window } = new JSDOM('');
globalThis.window = window; // DOMPurify's default instance looks for it when Mermaid loads
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false });

const textarea = window.document.createElement('textarea');
function decode(s) {
  if (s === undefined || s === null) return null;
  // Mermaid's placeholders for #...; entity codes (encodeEntities), then HTML entities.
  s = String(s).replace(/ﬂ°°/g, '&#').replace(/ﬂ°/g, '&').replace(/¶ß/g, ';');
  if (!s.includes('&')) return s;
  textarea.innerHTML = s; // RCDATA: entities decoded, tags kept as text
  return textarea.value;
}

class ParseError extends Error {}

async function parseFlowchart(text) {
  let diagram;
  try {
    await mermaid.parse(text);
    diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
  } catch (err) {
    throw new ParseError(err?.message ?? String(err));
  }
  if (!String(diagram.type).startsWith('flowchart')) {
    throw new ParseError(`not a flowchart: ${diagram.type}`);
  }
  const db = diagram.db;
  const subGraphs = db.getSubGraphs();
  const subIds = new Set(subGraphs.map((sg) => sg.id));

  const nodes = [...db.getVertices().values()].map((v) => ({
    id: v.id,
    label: decode(v.text ?? v.id),
    labelType: v.labelType ?? null,
    shape: v.type ?? null,
    classes: [...(v.classes ?? [])],
    styles: [...(v.styles ?? [])],
    ...(subIds.has(v.id) ? { subgraph: true } : {}),
  }));

  const edgesRaw = db.getEdges();
  const edges = edgesRaw.map((e) => ({
    id: e.id ?? null,
    from: e.start,
    to: e.end,
    label: e.text ? decode(e.text) : null,
    labelType: e.labelType ?? null,
    type: e.type ?? null,
    stroke: e.stroke ?? null,
    length: e.length ?? null,
    style: e.style ? [...e.style] : null,
    interpolate: e.interpolate ?? null,
    classes: [...(e.classes ?? [])],
  }));

  // db.getSubGraphs() is in closing order (inner before outer); print them in
  // document order, each with its parent and direct children.
  const parent = new Map();
  for (const sg of subGraphs) {
    for (const m of sg.nodes) if (subIds.has(m) && m !== sg.id) parent.set(m, sg.id);
  }
  const byId = new Map(subGraphs.map((sg) => [sg.id, sg]));
  const ordered = [];
  const visit = (sg) => {
    ordered.push({
      id: sg.id,
      title: decode(sg.title),
      labelType: sg.labelType ?? null,
      parent: parent.get(sg.id) ?? null,
      nodes: sg.nodes.filter((m) => !subIds.has(m)),
      subgraphs: sg.nodes.filter((m) => subIds.has(m) && m !== sg.id),
      classes: [...(sg.classes ?? [])],
      dir: sg.dir ?? null,
    });
    for (const m of sg.nodes) if (subIds.has(m) && parent.get(m) === sg.id) visit(byId.get(m));
  };
  for (const sg of subGraphs) if (!parent.has(sg.id)) visit(sg);

  const classDefs = {};
  for (const [name, c] of db.getClasses()) {
    classDefs[name] = { styles: [...(c.styles ?? [])], textStyles: [...(c.textStyles ?? [])] };
  }
  const linkStyleDefault =
    edgesRaw.defaultStyle || edgesRaw.defaultInterpolate
      ? { style: edgesRaw.defaultStyle ?? null, interpolate: edgesRaw.defaultInterpolate ?? null }
      : null;

  const warnings = [];
  const maxTextSize = mermaid.mermaidAPI.getConfig().maxTextSize ?? 50000;
  if (text.length > maxTextSize) {
    warnings.push(`${text.length} characters, over maxTextSize ${maxTextSize}: Mermaid draws "Maximum text size in diagram exceeded"`);
  }
  return {
    type: diagram.type,
    direction: db.getDirection() ?? null,
    nodes,
    edges,
    subgraphs: ordered,
    classDefs,
    linkStyleDefault,
    droppedMembers: [...(db.droppedSubGraphMembers ?? [])],
    warnings,
  };
}

const args = process.argv.slice(2);
if (args.includes('-h') || args.includes('--help')) {
  console.log('usage: mermaid_graph.mjs < FILE | mermaid_graph.mjs FILE...');
  process.exit(0);
}
if (args.length === 0) {
  try {
    console.log(JSON.stringify(await parseFlowchart(readFileSync(0, 'utf8'))));
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    console.error(`mermaid_graph: parse error: ${err.message}`);
    process.exit(2);
  }
} else {
  let status = 0;
  for (const file of args) {
    let line;
    try {
      line = { file, ok: true, graph: await parseFlowchart(readFileSync(file, 'utf8')) };
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      line = { file, ok: false, error: err.message };
      status = 2;
    }
    console.log(JSON.stringify(line));
  }
  process.exit(status);
}
