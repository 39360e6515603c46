// The runs page: every run under the runs folder with its status (polled), per-epoch curves drawn as
// SVG from metrics.csv, the confusion matrix, and several runs' curves overlaid.
"use strict";

const COLORS = ["#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#374151"];
const CHARTS = [
  {title: "loss", series: [["loss", "train"], ["val_loss", "validation"]]},
  {title: "accuracy", series: [["accuracy", "train"], ["val_accuracy", "validation"]]},
  {title: "input wait (share of step time)", series: [["input_wait_fraction", "input wait"]]},
  {title: "images/s", series: [["images_per_second", "images/s"]]},
];
const page = {runs: [], comparisons: null, focus: decodeURIComponent(location.hash.slice(1)) || null, overlay: new Set(), timer: null};
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function chart(spec, curves) {
  // curves: [{name, color, columns}]; a dashed line for the second series (validation).
  const W = 360, H = 200, L = 46, R = 10, T = 10, B = 28;
  const lines = [];
  for (const run of curves) {
    spec.series.forEach(([key, label], i) => {
      const epochs = run.columns.epoch || [];
      const values = run.columns[key] || [];
      const points = epochs.map((e, j) => [e, values[j]]).filter(([e, v]) => e !== null && v !== null);
      if (points.length) lines.push({run, key, label, points, dashed: i > 0});
    });
  }
  const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, "data-chart": spec.title});
  if (!lines.length) {
    root.append(svg("text", {x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#5b6677"}, "no epochs yet"));
    return root;
  }
  const xs = lines.flatMap((l) => l.points.map((p) => p[0]));
  const ys = lines.flatMap((l) => l.points.map((p) => p[1]));
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const span = x0 === x1 ? `epoch ${x0}` : `epochs ${x0} to ${x1}`;
  if (x0 === x1) { x0 -= 0.5; x1 += 0.5; }
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  root.append(svg("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999"}));
  root.append(svg("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#999"}));
  for (const y of [y0, (y0 + y1) / 2, y1]) {
    root.append(svg("text", {x: L - 4, y: sy(y) + 4, "text-anchor": "end", "font-size": 10, fill: "#5b6677"},
      Math.abs(y) >= 100 ? Math.round(y).toLocaleString() : y.toFixed(3)));
  }
  root.append(svg("text", {x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle", "font-size": 10, fill: "#5b6677"},
    span));
  for (const line of lines) {
    const d = line.points.map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
    const path = svg("path", {d, fill: "none", stroke: line.run.color, "stroke-width": 2,
      "stroke-dasharray": line.dashed ? "5 3" : "none", "data-run": line.run.name, "data-series": line.key});
    path.append(svg("title", {}, `${line.run.name}: ${line.label}`));
    root.append(path);
    for (const [x, y] of line.points) {
      root.append(svg("circle", {cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: 2.5, fill: line.run.color}));
    }
  }
  return root;
}

async function showDetail() {
  const names = page.overlay.size ? [...page.overlay] : page.focus ? [page.focus] : [];
  if (!names.length) { $("detail").hidden = true; return; }
  const curves = [];
  for (const [i, name] of names.entries()) {
    try {
      const data = await api(`/api/runs/${name.split("/").map(encodeURIComponent).join("/")}/metrics`);
      curves.push({name, color: COLORS[i % COLORS.length], columns: data.columns, confusion: data.confusion});
    } catch (err) {
      curves.push({name, color: COLORS[i % COLORS.length], columns: {}, error: err.message});
    }
  }
  $("detail").hidden = false;
  $("detail-title").textContent = names.length > 1 ? `${names.length} runs overlaid` : `run ${names[0]}`;
  $("legend").replaceChildren(...curves.map((c) => el("span", {style: `color:${c.color}`},
    `■ ${c.name}${c.error ? ` (${c.error})` : ""}`)), el("span", {class: "info"}, "solid: train, dashed: validation"));
  $("charts").replaceChildren(...CHARTS.map((spec) => el("div", {class: "chart"}, el("h3", {}, spec.title), chart(spec, curves))));
  const one = names.length === 1 ? page.runs.find((r) => r.name === names[0]) : null;
  $("confusion-box").hidden = !(one && one.has_confusion);
  if (one && one.has_confusion) {
    const src = `/api/runs/${one.name.split("/").map(encodeURIComponent).join("/")}/confusion.png?t=${one.updated}`;
    if ($("confusion").getAttribute("src") !== src) $("confusion").src = src;
  }
  if (one && one.mode === "local") {
    const text = await api(`/api/runs/${one.name.split("/").map(encodeURIComponent).join("/")}/log`).catch(() => "");
    $("log-box").hidden = !text;
    $("run-log").textContent = text;
  } else {
    $("log-box").hidden = true;
  }
}

function drawTable() {
  const body = $("runs-body");
  body.replaceChildren();
  for (const run of page.runs) {
    const box = el("input", {type: "checkbox", checked: page.overlay.has(run.name),
      onclick: (e) => e.stopPropagation(),
      onchange: (e) => { if (e.target.checked) page.overlay.add(run.name); else page.overlay.delete(run.name); showDetail(); }});
    const row = el("tr", {"data-run": run.name, class: run.name === page.focus ? "chosen" : "",
      onclick: () => { page.focus = run.name; location.hash = encodeURIComponent(run.name); page.overlay.clear(); drawTable(); showDetail(); }},
      el("td", {}, box), el("td", {}, run.name),
      el("td", {class: `state-${run.status}`, "data-status": run.status}, run.status + (run.mode ? ` (${run.mode})` : "")),
      el("td", {}, `${run.epochs_done}${run.epochs_total ? ` of ${run.epochs_total}` : ""}`),
      el("td", {}, run.model || "–"), el("td", {}, run.dataset || "–"),
      el("td", {}, fmt(run.val_accuracy)), el("td", {}, fmt(run.test_accuracy)));
    body.append(row);
  }
  $("no-runs").hidden = page.runs.length > 0;
}

function drawComparisons(comparisons) {
  // One table per comparison (augmentation, best validation accuracy, test accuracy) and its curves.
  $("comparisons-box").hidden = !comparisons.length;
  $("comparisons").replaceChildren(...comparisons.map((c) => {
    const rows = c.rows.map((r) => el("tr", {"data-run": r.run},
      el("td", {}, r.variant), el("td", {}, fmt(r.val_accuracy)),
      el("td", {}, r.weights_epoch ? `${r.weights_epoch} of ${r.epochs}` : "–"),
      el("td", {}, fmt(r.test_accuracy)), el("td", {}, fmt(r.train_accuracy))));
    const overlay = el("button", {type: "button", onclick: () => {
      page.overlay = new Set(c.rows.map((r) => r.run)); page.focus = null; drawTable(); showDetail();
    }}, "overlay");
    const picture = c.has_curves
      ? el("img", {class: "curves", alt: `curves of ${c.name}`, src: `/api/comparisons/${encodeURIComponent(c.name)}/curves.png`})
      : el("span", {class: "info"}, "no curves yet");
    return el("div", {class: "comparison", "data-comparison": c.name},
      el("h3", {}, `${c.name}: ${c.model || "?"}, ${c.epochs || "?"} epochs on ${c.dataset || "?"} `), overlay,
      el("table", {class: "runs"},
        el("thead", {}, el("tr", {}, ...["augmentation", "val accuracy", "epoch", "test accuracy", "train accuracy"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows)),
      picture);
  }));
}

async function poll() {
  try {
    const data = await api("/api/runs");
    page.runs = data.runs;
    $("runs-dir").textContent = `under ${data.runs_dir}`;
    drawTable();
    const shown = JSON.stringify(data.comparisons);
    if (shown !== page.comparisons) { page.comparisons = shown; drawComparisons(data.comparisons); }
    await showDetail();
    setStatus(`updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    setStatus(`could not read the runs: ${err.message}`);
  }
  page.timer = setTimeout(poll, 2000);
}

poll();
