// The lineage graph: laid out as a DAG by dagre, drawn as SVG, every node a link to its page.
//
// The server sends the graph as JSON (#lineage-data) beside the tables that list it for readers
// without JavaScript. Records are drawn with the activity between them (derived dataset →
// transform → parent; model → training → dataset); a wasDerivedFrom edge that an activity
// already explains is not drawn twice. Colours are SVG presentation attributes, so an exported
// SVG or PNG looks as the page does (the page's CSS only restyles them for a dark theme).

import { graphlib, layout } from "@dagrejs/dagre";

const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = {
  receipt: { fill: "#f3e8ff", stroke: "#7e22ce" },
  batch: { fill: "#e0f2fe", stroke: "#0369a1" },
  model: { fill: "#dcfce7", stroke: "#15803d" },
  training: { fill: "#f0fdf4", stroke: "#15803d" },
  dataset: { fill: "#fef9c3", stroke: "#a16207" },
  transform: { fill: "#fefce8", stroke: "#a16207" },
};
const REVOKED = { fill: "#fee2e2", stroke: "#b91c1c" };
const TAINTED_STROKE = "#c2410c";
const INK = "#1f2937";
const NODE_HEIGHT = 46;
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const MAX_PNG_SIDE = 16_384;
const MIN_READABLE_SCALE = 0.35; // below this a fitted graph is a texture, not a drawing

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

/** The edges to draw: every edge but a wasDerivedFrom that an activity in between explains. */
export function drawnEdges(graph) {
  const generatedBy = new Map();
  const used = new Set();
  for (const e of graph.edges) {
    if (e.relation === "wasGeneratedBy") generatedBy.set(e.source, e.target);
    if (e.relation === "used") used.add(`${e.source}\u0000${e.target}`);
  }
  return graph.edges.filter((e) => {
    if (e.relation !== "wasDerivedFrom") return true;
    const activity = generatedBy.get(e.source);
    return !(activity && used.has(`${activity}\u0000${e.target}`));
  });
}

const MONO = "ui-monospace, SFMono-Regular, Menlo, monospace";
const HEAD_FONT = `700 11px ${FONT}`;
const DETAIL_FONT = `11.5px ${MONO}`;
let measurer = null;

/** A text's width in a font as this browser draws it; never less than a per-character bound
 * (wide enough for the widest capitals), so a label fits whichever font the PNG is drawn in. */
function textWidth(text, font, perChar) {
  measurer ??= document.createElement("canvas").getContext("2d");
  let measured = 0;
  if (measurer) {
    measurer.font = font;
    measured = measurer.measureText(text).width;
  }
  return Math.max(measured * 1.1, perChar * text.length);
}

function isActivity(node) {
  return node.kind === "transform" || node.kind === "training";
}

function nodeText(node) {
  // "dataset 0x12345678 (3 rows)" → head "DATASET · TAINTED", detail "0x12345678 (3 rows)"
  const prefix = `${node.kind} `;
  const detail = node.label.startsWith(prefix) ? node.label.slice(prefix.length) : node.label;
  const status = node.revoked ? " · REVOKED" : node.tainted ? " · TAINTED" : "";
  const head = `${node.kind.toUpperCase()}${status}`;
  // a pill (an activity) keeps its text clear of its rounded ends
  const pad = isActivity(node) ? 20 : 10;
  const text = Math.max(textWidth(head, HEAD_FONT, 8.2), textWidth(detail, DETAIL_FONT, 7.2));
  return { head, detail, pad, width: Math.max(120, Math.ceil(text + 2 * pad)) };
}

function layoutGraph(graph, edges) {
  const g = new graphlib.Graph({ multigraph: false });
  const large = graph.nodes.length > 300;
  g.setGraph({ rankdir: "TB", nodesep: large ? 14 : 28, ranksep: large ? 40 : 56, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of graph.nodes) {
    const { head, detail, pad, width } = nodeText(node);
    g.setNode(node.id, { width, height: NODE_HEIGHT, head, detail, pad });
  }
  for (const e of edges) g.setEdge(e.source, e.target);
  layout(g);
  return g;
}

function edgePath(points) {
  const [first, ...rest] = points;
  return `M${first.x.toFixed(1)},${first.y.toFixed(1)}${rest.map((p) => `L${p.x.toFixed(1)},${p.y.toFixed(1)}`).join("")}`;
}

function draw(graph, g, edges) {
  const { width, height } = g.graph();
  const root = svg("svg", {
    xmlns: SVG_NS,
    class: "lineage-svg",
    "font-family": FONT,
    "font-size": 12,
    "aria-labelledby": "graph-svg-title",
    "data-width": Math.ceil(width),
    "data-height": Math.ceil(height),
  });
  const title = svg("title", { id: "graph-svg-title" });
  title.textContent = `Lineage graph of ${graph.root}: ${graph.nodes.length} nodes`;
  root.append(title);
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M0,0L10,5L0,10z", fill: "#64748b" }));
  defs.append(marker);
  root.append(defs);
  const viewport = svg("g", { class: "viewport" });
  root.append(viewport);

  const edgeLayer = svg("g", { class: "edges", fill: "none", stroke: "#64748b", "stroke-width": 1.4 });
  for (const e of edges) {
    const laid = g.edge(e.source, e.target);
    if (!laid) continue;
    edgeLayer.append(
      svg("path", {
        class: `edge edge--${e.relation}`,
        d: edgePath(laid.points),
        "marker-end": "url(#arrow)",
        "data-source": e.source,
        "data-target": e.target,
        "data-relation": e.relation,
        ...(e.relation === "used" ? { "stroke-dasharray": "4 3" } : {}),
      }),
    );
  }
  viewport.append(edgeLayer);

  const nodeLayer = svg("g", { class: "nodes" });
  for (const node of graph.nodes) {
    const box = g.node(node.id);
    const colours = node.revoked ? REVOKED : PALETTE[node.kind] ?? PALETTE.dataset;
    const status = node.revoked ? "revoked" : node.tainted ? "tainted" : "standing";
    const link = svg("a", {
      href: node.href,
      class: `node node--${node.kind} is-${status}${node.id === graph.root ? " is-root" : ""}`,
      "data-id": node.id,
      "data-kind": node.kind,
      "data-status": status,
      transform: `translate(${(box.x - box.width / 2).toFixed(1)},${(box.y - box.height / 2).toFixed(1)})`,
    });
    const tip = svg("title");
    tip.textContent = `${node.label}${node.hash ? `\n${node.hash}` : ""}\n${status}${node.revoked_reason ? `: ${node.revoked_reason}` : ""}`;
    link.append(tip);
    link.append(
      svg("rect", {
        class: "node__box",
        width: box.width.toFixed(1),
        height: box.height,
        rx: isActivity(node) ? 22 : 6,
        fill: colours.fill,
        stroke: node.tainted && !node.revoked ? TAINTED_STROKE : colours.stroke,
        "stroke-width": node.id === graph.root ? 3 : node.tainted || node.revoked ? 2.2 : 1.2,
        ...(node.tainted && !node.revoked ? { "stroke-dasharray": "6 3" } : {}),
      }),
    );
    const head = svg("text", { class: "node__kind", x: box.pad, y: 18, fill: colours.stroke, "font-weight": 700, "font-size": 11 });
    head.textContent = box.head;
    const detail = svg("text", { class: "node__detail", x: box.pad, y: 35, fill: INK, "font-family": MONO, "font-size": 11.5 });
    detail.textContent = box.detail;
    link.append(head, detail);
    nodeLayer.append(link);
  }
  viewport.append(nodeLayer);
  return { root, viewport, width, height };
}

/** Pan and zoom by a transform on the viewport group; pointer, wheel and keyboard. */
class PanZoom {
  constructor(container, drawing) {
    this.container = container;
    this.drawing = drawing;
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    const svgNode = drawing.root;
    let drag = null;
    svgNode.addEventListener("pointerdown", (event) => {
      if (event.target.closest("a")) return;
      drag = { x: event.clientX - this.x, y: event.clientY - this.y, id: event.pointerId };
      svgNode.setPointerCapture(event.pointerId);
      container.classList.add("is-dragging");
    });
    svgNode.addEventListener("pointermove", (event) => {
      if (!drag) return;
      this.x = event.clientX - drag.x;
      this.y = event.clientY - drag.y;
      this.apply();
    });
    const end = () => {
      drag = null;
      container.classList.remove("is-dragging");
    };
    svgNode.addEventListener("pointerup", end);
    svgNode.addEventListener("pointercancel", end);
    svgNode.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const rect = svgNode.getBoundingClientRect();
        this.zoomAt(Math.exp(-event.deltaY * 0.0015), event.clientX - rect.left, event.clientY - rect.top);
      },
      { passive: false },
    );
    container.addEventListener("keydown", (event) => {
      if (event.target !== container) return;
      const step = 60;
      const keys = {
        "+": () => this.zoomBy(1.25),
        "=": () => this.zoomBy(1.25),
        "-": () => this.zoomBy(0.8),
        0: () => this.fit(),
        ArrowLeft: () => this.pan(step, 0),
        ArrowRight: () => this.pan(-step, 0),
        ArrowUp: () => this.pan(0, step),
        ArrowDown: () => this.pan(0, -step),
      };
      if (keys[event.key]) {
        event.preventDefault();
        keys[event.key]();
      }
    });
  }

  apply() {
    this.drawing.viewport.setAttribute("transform", `translate(${this.x.toFixed(1)},${this.y.toFixed(1)}) scale(${this.scale.toFixed(4)})`);
  }

  pan(dx, dy) {
    this.x += dx;
    this.y += dy;
    this.apply();
  }

  zoomAt(factor, cx, cy) {
    const scale = Math.min(4, Math.max(0.02, this.scale * factor));
    const real = scale / this.scale;
    this.x = cx - (cx - this.x) * real;
    this.y = cy - (cy - this.y) * real;
    this.scale = scale;
    this.apply();
  }

  zoomBy(factor) {
    const rect = this.drawing.root.getBoundingClientRect();
    this.zoomAt(factor, rect.width / 2, rect.height / 2);
  }

  fit() {
    const rect = this.drawing.root.getBoundingClientRect();
    const { width, height } = this.drawing;
    this.scale = Math.min(1.5, (rect.width - 16) / width, (rect.height - 16) / height);
    this.x = (rect.width - width * this.scale) / 2;
    this.y = Math.max(8, (rect.height - height * this.scale) / 2);
    this.apply();
  }

  /** Centre the view on a point of the drawing at a given scale. */
  centre(x, y, scale) {
    const rect = this.drawing.root.getBoundingClientRect();
    this.scale = scale;
    this.x = rect.width / 2 - x * scale;
    this.y = rect.height / 2 - y * scale;
    this.apply();
  }

  /** The first view: the whole graph when it can be read whole, else its root, readable. */
  start(rootBox) {
    this.fit();
    if (this.scale < MIN_READABLE_SCALE && rootBox) this.centre(rootBox.x, rootBox.y, 0.9);
  }
}

/** A standalone SVG document of the whole graph, at scale 1. */
export function exportSvgText(drawing) {
  const copy = drawing.root.cloneNode(true);
  const margin = 16;
  const width = Math.ceil(drawing.width + 2 * margin);
  const height = Math.ceil(drawing.height + 2 * margin);
  copy.setAttribute("width", width);
  copy.setAttribute("height", height);
  copy.setAttribute("viewBox", `0 0 ${width} ${height}`);
  copy.removeAttribute("class");
  copy.querySelector(".viewport").setAttribute("transform", `translate(${margin},${margin})`);
  const background = svg("rect", { width, height, fill: "#ffffff" });
  copy.insertBefore(background, copy.querySelector(".viewport"));
  return `<?xml version="1.0" encoding="UTF-8"?>\n${new XMLSerializer().serializeToString(copy)}\n`;
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function exportPng(drawing, name) {
  const text = exportSvgText(drawing);
  const url = URL.createObjectURL(new Blob([text], { type: "image/svg+xml" }));
  try {
    const image = new Image();
    image.decoding = "async";
    image.src = url;
    await image.decode();
    const ratio = Math.min(2, MAX_PNG_SIDE / Math.max(image.width, image.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.floor(image.width * ratio));
    canvas.height = Math.max(1, Math.floor(image.height * ratio));
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    download(blob, name);
  } finally {
    URL.revokeObjectURL(url);
  }
}

function start() {
  const container = document.querySelector("[data-lineage]");
  const data = document.getElementById("lineage-data");
  if (!container || !data) return;
  const graph = JSON.parse(data.textContent);
  const started = performance.now();
  const edges = drawnEdges(graph);
  const laid = layoutGraph(graph, edges);
  const drawing = draw(graph, laid, edges);
  container.replaceChildren(drawing.root);
  const view = new PanZoom(container, drawing);
  view.start(laid.node(graph.root));
  container.dataset.ready = "true";
  container.dataset.layoutMs = String(Math.round(performance.now() - started));

  const base = `lineage-${graph.root.replace(/[^0-9a-zA-Z]+/g, "-").slice(0, 24)}`;
  const toolbar = document.querySelector("[data-graph-toolbar]");
  const actions = {
    fit: () => view.fit(),
    "zoom-in": () => view.zoomBy(1.25),
    "zoom-out": () => view.zoomBy(0.8),
    "export-svg": () => download(new Blob([exportSvgText(drawing)], { type: "image/svg+xml" }), `${base}.svg`),
    "export-png": () => exportPng(drawing, `${base}.png`),
  };
  toolbar.hidden = false;
  toolbar.addEventListener("click", (event) => {
    const action = event.target.closest("button")?.dataset.action;
    if (action) actions[action]();
  });
  window.addEventListener("resize", () => view.fit());
}

start();
