// The augmentation page: a control per option, the grid re-rendered (debounced) on every change,
// the engine's message beside a bad value, Keras beside a chosen cell, sweeps, YAML out and in, runs.
"use strict";

const state = {options: null, lastGrid: null, request: 0, chosen: null, timer: null};
const $ = (id) => document.getElementById(id);

function controlInput(c) {
  const id = `opt-${c.name}`;
  const changed = () => schedule();
  if (c.kind === "bool") return [el("input", {id, type: "checkbox", onchange: changed})];
  if (c.kind === "choice") {
    const select = el("select", {id, onchange: changed});
    for (const choice of c.choices) select.append(el("option", {value: String(choice)}, String(choice)));
    return [select];
  }
  if (c.kind === "text") return [el("input", {id, type: "text", oninput: changed, spellcheck: "false"})];
  if (c.kind === "number") {
    const number = el("input", {id, type: "number", step: c.step === null ? "any" : c.step, oninput: () => {
      if (number.value !== "" && !isNaN(Number(number.value))) slider.value = number.value;
      changed();
    }});
    const slider = el("input", {id: `${id}-slider`, type: "range", min: c.min, max: c.max, step: c.step || "any",
      oninput: () => { number.value = slider.value; changed(); }});
    return c.min === null || c.max === null || c.step === null ? [number] : [slider, number];
  }
  const pair = [0, 1].map((i) => el("input", {id: `${id}-${i}`, type: "number", step: c.step, min: c.min,
    oninput: changed}));
  if (c.kind === "pair") return pair;
  return [el("input", {id: `${id}-on`, type: "checkbox", onchange: changed, title: "on"}), ...pair];
}

function buildControls(options) {
  const groups = $("groups");
  for (const group of options.groups) {
    const box = el("details", {class: "group", open: group === "geometry" || group === "pixel", id: `group-${group}`},
      el("summary", {}, group));
    if (group === "extras") {
      for (const extra of options.extras) {
        const id = `extra-${extra.name}`;
        box.append(el("div", {class: "control", id: `control-${id}`},
          el("label", {}, el("input", {id: `${id}-on`, type: "checkbox", onchange: schedule}), " ",
            el("span", {class: "name"}, extra.name)),
          " p ", el("input", {id: `${id}-p`, type: "number", min: 0, max: 1, step: 0.05, value: extra.crop ? 1 : 0.5,
            oninput: schedule}),
          el("div", {class: "help"}, `albumentations parameters (JSON)${extra.needs_rgb ? "; needs RGB" : ""}`
            + `${extra.crop ? "; changes the size, p must be 1" : ""}`),
          el("textarea", {id: `${id}-params`, rows: 1, oninput: schedule, spellcheck: "false"},
            JSON.stringify(extra.default_params)),
          el("div", {class: "error", id: `error-${id}`})));
      }
    } else {
      for (const c of options.controls.filter((c) => c.group === group)) {
        box.append(el("div", {class: "control", id: `control-${c.name}`},
          el("div", {}, el("span", {class: "name"}, c.name)),
          ...controlInput(c),
          el("div", {class: "help"}, c.help),
          el("div", {class: "error", id: `error-${c.name}`})));
      }
    }
    groups.append(box);
  }
}

function setValues(values) {
  for (const c of state.options.controls) {
    const v = values[c.name];
    const id = `opt-${c.name}`;
    if (c.kind === "bool") $(id).checked = Boolean(v);
    else if (c.kind === "pair" || c.kind === "optional_pair") {
      const pair = v || [1.0, 1.0];
      if (c.kind === "optional_pair") $(`${id}-on`).checked = v !== null && v !== undefined;
      $(`${id}-0`).value = pair[0];
      $(`${id}-1`).value = pair[1];
    } else {
      $(id).value = v === null || v === undefined ? "" : String(v);
      if ($(`${id}-slider`)) $(`${id}-slider`).value = v;
    }
  }
  const on = new Map((values.extras || []).map((e) => [e.name, e]));
  for (const extra of state.options.extras) {
    const id = `extra-${extra.name}`;
    const given = on.get(extra.name);
    $(`${id}-on`).checked = Boolean(given);
    if (given) {
      $(`${id}-p`).value = given.p;
      $(`${id}-params`).value = JSON.stringify(given.params);
    }
  }
}

function numberOrText(text) {
  // A number input's text as a number when it is one; otherwise as typed, so the engine names it.
  return text !== "" && !isNaN(Number(text)) ? Number(text) : text;
}

function readConfig() {
  const config = {};
  const clientErrors = {};
  for (const c of state.options.controls) {
    const id = `opt-${c.name}`;
    if (c.kind === "bool") config[c.name] = $(id).checked;
    else if (c.kind === "choice") config[c.name] = numberOrText($(id).value);
    else if (c.kind === "text") config[c.name] = $(id).value;
    else if (c.kind === "number") config[c.name] = numberOrText($(id).value);
    else {
      const pair = [numberOrText($(`${id}-0`).value), numberOrText($(`${id}-1`).value)];
      config[c.name] = c.kind === "optional_pair" && !$(`${id}-on`).checked ? null : pair;
    }
  }
  config.extras = [];
  for (const extra of state.options.extras) {
    const id = `extra-${extra.name}`;
    if (!$(`${id}-on`).checked) continue;
    let params = {};
    const text = $(`${id}-params`).value.trim();
    try {
      params = text ? JSON.parse(text) : {};
    } catch (err) {
      clientErrors[id] = `extras ${extra.name}: params must be JSON, such as {"blur_limit": [3, 7]} (${err.message})`;
    }
    config.extras.push({name: extra.name, params, p: numberOrText($(`${id}-p`).value)});
  }
  return {config, clientErrors};
}

function view() {
  return {
    source: $("source").value,
    seed: Number($("seed").value) || 0,
    epoch: Number($("epoch").value) || 0,
    samples: Number($("samples").value) || 8,
    copies: Number($("copies").value) || 8,
    max_cell: Number($("max-cell").value) || 128,
  };
}

function showErrors(errors, config) {
  document.querySelectorAll(".control .error").forEach((node) => { node.textContent = ""; });
  document.querySelectorAll(".invalid").forEach((node) => node.classList.remove("invalid"));
  $("error-config").textContent = "";
  const enabled = (config && config.extras) || [];
  for (const [field, message] of Object.entries(errors || {})) {
    let key = field;
    const extra = field.match(/^extras\.(\d+)$/);
    if (extra && enabled[Number(extra[1])]) key = `extra-${enabled[Number(extra[1])].name}`;
    const target = $(`error-${key}`) || $("error-config");
    target.textContent = target.textContent ? `${target.textContent}\n${message}` : message;
    const control = $(`control-${key}`);
    if (control) control.classList.add("invalid");
  }
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(renderGrid, 150);
}

async function renderGrid() {
  const {config, clientErrors} = readConfig();
  if (Object.keys(clientErrors).length) {
    showErrors(clientErrors, config);
    setStatus("config invalid: see the messages");
    return;
  }
  const request = ++state.request;
  setStatus("rendering…");
  try {
    const grid = await api("/api/grid", {...view(), config});
    if (request !== state.request) return; // a newer request is under way
    showErrors({}, config);
    $("error-view").textContent = "";
    state.lastGrid = grid;
    state.lastConfig = config;
    drawGrid(grid);
    setStatus(`rendered in ${grid.render_ms} ms on the server`);
    if (state.chosen) compareCell(state.chosen.row, state.chosen.col);
  } catch (err) {
    if (request !== state.request) return;
    if (err.data && err.data.errors) {
      showErrors(err.data.errors, config);
      setStatus("config invalid: see the messages");
    } else {
      // An extra the images cannot take ("extra 'hue' needs RGB images ...") is shown beside it.
      const extra = err.message.match(/^extra '(\w+)'/);
      const box = extra && $(`error-extra-${extra[1]}`);
      if (box) showErrors({[`extra-${extra[1]}`]: err.message}, config);
      else $("error-view").textContent = err.message;
      setStatus("not rendered");
    }
  }
}

function drawGrid(grid) {
  const img = $("grid");
  const layout = grid.layout;
  // Small images are drawn larger by the browser (pixelated); large ones as sent.
  const zoom = Math.max(1, Math.floor(Math.min(96 / layout.cell_width, 96 / layout.cell_height)));
  img.style.width = `${layout.width * zoom}px`;
  img.src = grid.image;
  img.dataset.key = grid.image;
  const overlay = $("overlay");
  overlay.replaceChildren();
  const percent = (v, total) => `${(100 * v) / total}%`;
  for (const cell of grid.cells) {
    const x = layout.pad + cell.col * (layout.cell_width + layout.pad);
    const y = layout.pad + cell.row * (layout.cell_height + layout.pad);
    const box = el("div", {class: "cell", "data-row": cell.row, "data-col": cell.col,
      title: `${cell.caption}\n(epoch ${cell.epoch}, sample ${cell.index})`});
    Object.assign(box.style, {left: percent(x, layout.width), top: percent(y, layout.height),
      width: percent(layout.cell_width, layout.width), height: percent(layout.cell_height, layout.height)});
    box.addEventListener("mouseenter", () => showCell(cell));
    box.addEventListener("click", () => compareCell(cell.row, cell.col));
    overlay.append(box);
  }
  const info = grid.info;
  $("grid-note").textContent = `${grid.labels.length} of ${info.count.toLocaleString()} images, `
    + `${info.shape.join("x")}` + (grid.scale < 1 ? `, shown at ${Math.round(grid.scale * 100)}%` : "");
}

function showCell(cell) {
  const p = cell.params;
  const lines = [`sample ${cell.index} (${state.lastGrid.labels[cell.row]}), epoch ${cell.epoch}: ${cell.caption}`];
  const keys = ["theta", "tx", "ty", "shear", "zx", "zy", "flip_horizontal", "flip_vertical",
    "channel_shift_intensity", "brightness"];
  lines.push(keys.map((k) => `${k}=${typeof p[k] === "number" ? Number(p[k].toFixed(4)) : p[k]}`).join(" "));
  if (p.extras) lines.push(p.extras.map((e) => `${e.name}${e.applied ? "" : " (not applied)"}`).join(", "));
  $("cell-info").textContent = lines.join("\n");
}

async function compareCell(row, col) {
  state.chosen = {row, col};
  document.querySelectorAll("#overlay div").forEach((d) => d.classList.toggle("chosen",
    Number(d.dataset.row) === row && Number(d.dataset.col) === col));
  $("keras-box").hidden = false;
  $("keras-stats").textContent = "Keras is working… (the first comparison imports TensorFlow)";
  try {
    const result = await api("/api/keras", {...view(), config: state.lastConfig, row, col});
    const image = $("keras");
    image.src = result.image;
    // Three panels of the image's own size, small ones drawn larger (pixelated), the whole at most 900 px.
    const side = state.lastGrid.layout.cell_width / state.lastGrid.scale;
    const zoom = Math.max(1, Math.floor(200 / side));
    $("keras-wrap").style.width = `${Math.min(900, 3 * side * zoom + 8)}px`;
    image.style.width = "100%";
    $("keras-title").textContent = `sample ${result.index}, epoch ${result.epoch}`;
    $("heat-label").textContent = `|difference| (full heat at ${result.heat_full_scale} of 255)`;
    $("keras-stats").textContent = `mean |difference| ${result.mean.toFixed(3)}, 99th percentile `
      + `${result.p99.toFixed(3)}, largest ${result.max.toFixed(3)} (0-255 scale)`;
    $("keras-note").textContent = result.note;
  } catch (err) {
    $("keras-stats").textContent = err.message;
  }
}

async function runSweep() {
  const {config} = readConfig();
  $("sweep-note").textContent = "sweeping…";
  try {
    const result = await api("/api/sweep", {...view(), config, option: $("sweep-option").value,
      steps: Number($("sweep-steps").value) || 7});
    $("sweep").src = result.image;
    $("sweep").hidden = false;
    $("sweep-note").textContent = result.note;
  } catch (err) {
    $("sweep-note").textContent = err.message;
  }
}

async function exportYaml() {
  const {config} = readConfig();
  try {
    const text = await api("/api/export", {...view(), config});
    $("yaml-text").value = text;
    $("yaml-box").hidden = false;
    const link = $("download-yaml");
    if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([text], {type: "application/x-yaml"}));
    $("error-config").textContent = "";
  } catch (err) {
    if (err.data && err.data.errors) showErrors(err.data.errors, config);
    else $("error-config").textContent = err.message;
  }
}

async function importYaml(file) {
  try {
    const text = await file.text();
    const result = await api("/api/import", text, "application/x-yaml");
    setValues(result.config);
    $("error-config").textContent = "";
    schedule();
  } catch (err) {
    $("error-config").textContent = err.message;
  }
}

async function startRun() {
  const {config} = readConfig();
  $("error-run").textContent = "";
  $("run-message").textContent = "starting…";
  const body = {source: $("source").value, config, model: $("run-model").value,
    epochs: Number($("run-epochs").value) || 1, seed: Number($("seed").value) || 0};
  if ($("run-name").value.trim()) body.run_name = $("run-name").value.trim();
  if ($("run-max").value) body.max_train_samples = Number($("run-max").value);
  try {
    const result = await api("/api/runs", body);
    $("run-message").replaceChildren(`run ${result.run} started (${result.mode}): `,
      el("a", {href: `/runs#${encodeURIComponent(result.run)}`, id: "run-link"}, "watch it on the runs page"));
  } catch (err) {
    $("run-message").textContent = "";
    if (err.data && err.data.errors) showErrors(err.data.errors, config);
    $("error-run").textContent = err.message;
  }
}

async function showSource() {
  try {
    const result = await api(`/api/source?source=${encodeURIComponent($("source").value)}&samples=${view().samples}`);
    const info = result.info;
    const classes = info.classes.length ? `; classes: ${info.classes.slice(0, 20).join(", ")}`
      + (info.classes.length > 20 ? ", …" : "") : "";
    $("source-info").textContent = `${info.kind}: ${info.count.toLocaleString()} images of ${info.shape.join("x")}`
      + `${classes}${info.note ? `; ${info.note}` : ""}`;
    $("error-view").textContent = "";
  } catch (err) {
    $("source-info").textContent = "";
    $("error-view").textContent = err.message;
  }
}

async function start() {
  const options = await api("/api/options");
  state.options = options;
  buildControls(options);
  for (const size of options.max_cell) $("max-cell").append(el("option", {value: size, selected: size === 128}, `${size}px`));
  for (const name of options.sweepable) $("sweep-option").append(el("option", {value: name}, name));
  for (const name of options.models) $("run-model").append(el("option", {value: name}, name));
  $("launch-mode").textContent = options.launch_mode === "prefect"
    ? "as the train-model deployment" : "in a background process here";
  const sources = await api("/api/sources");
  for (const id of sources.sources) $("source").append(el("option", {value: id}, id));
  setValues(options.initial);
  for (const id of ["seed", "epoch", "samples", "copies", "max-cell"]) $(id).addEventListener("input", schedule);
  $("source").addEventListener("change", () => { state.chosen = null; showSource(); schedule(); });
  $("samples").addEventListener("change", showSource);
  $("export").addEventListener("click", exportYaml);
  $("import-file").addEventListener("change", (e) => { if (e.target.files[0]) importYaml(e.target.files[0]); e.target.value = ""; });
  $("reset").addEventListener("click", () => { setValues(options.defaults); schedule(); });
  $("copy-yaml").addEventListener("click", () => navigator.clipboard.writeText($("yaml-text").value));
  $("sweep-run").addEventListener("click", runSweep);
  $("start-run").addEventListener("click", startRun);
  await showSource();
  await renderGrid();
}

start().catch((err) => setStatus(`could not start: ${err.message}`));
