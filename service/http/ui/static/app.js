// The playground: every picture here is an answer of the API's own routes (POST /sample,
// /interpolate, /score, GET /models), asked with the bodies a client would send. Nothing is
// computed or drawn from numbers the API did not answer, and nothing is fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { config: null, models: {}, model: null, seq: 0, renders: 0, grid: null, body: null, timer: null, anim: null };
const GRID_PADDING = 2; // pixels between tiles of the API's PNG grids (service/core/encoding.py)

// --- talking to the API -------------------------------------------------------------------------

class ApiError extends Error {}

async function call(path, init) {
  const response = await fetch(path, { credentials: "same-origin", ...init });
  if (response.status === 401) {
    // The session cookie expired or the token changed: back to the form.
    window.location.assign("/ui/login");
    throw new ApiError("sign in again");
  }
  if (!response.ok) {
    let line = `${path}: HTTP ${response.status}`;
    try { line = (await response.json()).error || line; } catch (e) { /* not JSON */ }
    throw new ApiError(line);
  }
  return response;
}

const postJson = (path, body) => call(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function busy(on) {
  document.body.dataset.state = on ? "busy" : "ready";
  if (!on) document.body.dataset.renders = String(++state.renders);
}

// --- the request the controls describe ----------------------------------------------------------

const card = () => state.model.card;
const hasD = () => card().realness != null; // present exactly when there is a discriminator
const isImage = () => card().sample.kind === "image";
const isStyle = () => card().style != null; // a style-based model: mapping + synthesis, a w space
const takes = (field) => state.config.sample_fields.includes(field);
// The class picker's value as the API takes it: an index, "balanced", or undefined (drawn from the seed).
function chosenLabels() {
  if (!card().condition || !takes("labels") || $("label").value === "") return undefined;
  const v = $("label").value;
  return v === "balanced" ? v : Number(v);
}

function intValue(id, lo, hi) {
  const v = Math.round(Number($(id).value));
  if (!Number.isFinite(v) || v < lo || v > hi) throw new ApiError(`${id}: must be a whole number from ${lo} to ${hi}`);
  return v;
}

function sampleBody(format) {
  const body = { model: state.model.name, n: intValue("n", 1, state.config.max_n), seed: intValue("seed", 0, Number.MAX_SAFE_INTEGER), format };
  if (isStyle()) {
    const psi = Number($("psi").value);
    if (psi !== 1) body.truncation_psi = psi; // 1 is no truncation: the plain request
  } else if ($("truncate").checked) body.truncation = Number($("truncation").value);
  const labels = chosenLabels();
  if (labels !== undefined) body.labels = labels;
  const amount = Number($("amount").value);
  if ((state.model.directions || []).length && amount !== 0) body.edit = [{ direction: $("direction").value, amount }];
  if (hasD()) {
    if ($("use-min").checked) body.min_realness = Number($("min-realness").value);
    if ($("drs").checked) body.drs = true;
    if (format === "json" && $("scores").checked) body.scores = true;
  }
  return body;
}

const filtering = (body) => body.min_realness !== undefined || body.drs === true;

function curlLine(path, body, out) {
  const json = JSON.stringify(body).replace(/'/g, "'\\''");
  const auth = state.config.token_required ? ` -H "authorization: Bearer $GANSERVE_API_TOKEN"` : "";
  return `curl -s ${window.location.origin}${path}${auth} -H 'content-type: application/json' \\\n     -d '${json}' -o ${out}`;
}

// --- samples ------------------------------------------------------------------------------------

async function render() {
  const seq = ++state.seq;
  busy(true);
  try {
    if (card().condition && !takes("labels")) {
      // This API cannot be asked for a class: nothing to show (the note says why), nothing to ask.
      clearGrid();
      $("meta").textContent = "";
      $("curl").value = "";
      return;
    }
    if (isImage()) await renderGrid(seq);
    else await renderPlot(seq);
    if (seq === state.seq) showError("");
  } catch (e) {
    if (seq === state.seq) showError(e.message);
  } finally {
    if (seq === state.seq) busy(false);
  }
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(render, 120); // typing "123" asks once, not three times
}

async function renderGrid(seq) {
  const body = sampleBody("png");
  const jsonBody = sampleBody("json");
  let realness = null;
  let counts = null;
  if (jsonBody.scores || filtering(jsonBody)) {
    // Scores come only as JSON; a filter may keep nothing, which a PNG grid cannot show.
    const answer = await (await postJson("/sample", jsonBody)).json();
    if (seq !== state.seq) return;
    realness = answer.realness || null;
    counts = filtering(jsonBody) ? { drawn: answer.drawn, accepted: answer.samples.length, exhausted: Boolean(answer.exhausted) } : null;
    if (answer.samples.length === 0) {
      clearGrid();
      $("meta").textContent = `No sample passed the filter in ${answer.drawn} draws.`;
      showDraws(counts, body.n);
      setCurl("/sample", body, "grid.png");
      return;
    }
  }
  const response = await postJson("/sample", body);
  const blob = await response.blob();
  if (seq !== state.seq) return;
  const url = URL.createObjectURL(blob);
  await loaded($("grid"), url);
  if (state.grid) URL.revokeObjectURL(state.grid.url);
  state.grid = { url, blob, headers: response.headers };
  state.body = body;
  const accepted = Number(response.headers.get("X-Accepted") || body.n);
  drawOverlay(realness, accepted, $("grid").naturalWidth, $("grid").naturalHeight);
  showDraws(counts || headerCounts(response.headers), body.n);
  $("meta").textContent = `${response.headers.get("X-Model")} ${response.headers.get("X-Model-Version")}, seed ${response.headers.get("X-Seed")}, shape ${response.headers.get("X-Shape")}` +
    (response.headers.get("X-Labels") ? `, classes ${response.headers.get("X-Labels")}` : "");
  $("grid-wrap").hidden = false;
  $("plot").toggleAttribute("hidden", true); // an <svg> has no .hidden
  setCurl("/sample", body, "grid.png");
}

function headerCounts(headers) {
  return headers.get("X-Drawn") ? { drawn: Number(headers.get("X-Drawn")), accepted: Number(headers.get("X-Accepted")),
                                    exhausted: headers.get("X-Exhausted") === "True" || headers.get("X-Exhausted") === "true" } : null;
}

function showDraws(counts, n) {
  $("draws").textContent = counts ? `${counts.accepted} of ${n} asked for, from ${counts.drawn} draws` +
    (counts.exhausted ? " (the draw bound ran out)" : "") : "";
}

function loaded(img, url) {
  return new Promise((resolve, reject) => {
    img.onload = () => resolve();
    img.onerror = () => reject(new ApiError("the server's PNG did not load"));
    img.src = url;
  });
}

function clearGrid() {
  $("grid").removeAttribute("src");
  $("overlay").replaceChildren();
}

// Each tile's position in the API's grid, row by row, GRID_PADDING apart: the columns and rows are
// read from the grid's own size, so any layout the API chooses (nrow, a row per class) is followed.
function tileBoxes(k, W, H) {
  const [, h, w] = card().sample.shape;
  const cols = Math.max(1, Math.round((W - GRID_PADDING) / (w + GRID_PADDING)));
  return Array.from({ length: k }, (_, i) => {
    const r = Math.floor(i / cols), c = i % cols;
    return { left: (GRID_PADDING + c * (w + GRID_PADDING)) / W, top: (GRID_PADDING + r * (h + GRID_PADDING)) / H };
  });
}

function drawOverlay(realness, k, W, H) {
  const overlay = $("overlay");
  overlay.replaceChildren();
  if (!realness) return;
  tileBoxes(k, W, H).forEach((box, i) => {
    const tag = document.createElement("span");
    tag.className = "realness";
    tag.textContent = realness[i].toFixed(2);
    tag.style.left = `${(100 * box.left).toFixed(3)}%`;
    tag.style.top = `${(100 * box.top).toFixed(3)}%`;
    tag.style.background = realnessColour(realness[i]);
    overlay.append(tag);
  });
}

// --- vector models: a scatter over the data's modes ---------------------------------------------

function plotOptions(path) {
  return { dims: card().sample.shape[0], data: state.config.data_modes[card().dataset] || null, dataset: card().dataset, path };
}

async function renderPlot(seq) {
  const body = sampleBody("json");
  if (hasD()) body.scores = true; // the colours
  const response = await postJson("/sample", body);
  const answer = await response.json();
  if (seq !== state.seq) return;
  state.body = body;
  state.grid = null;
  drawScatter($("plot"), answer.samples, answer.realness, plotOptions(false));
  showDraws(filtering(body) ? { drawn: answer.drawn, accepted: answer.samples.length, exhausted: Boolean(answer.exhausted) } : null, body.n);
  $("meta").textContent = `${answer.model} ${answer.version}, seed ${answer.seed}, shape ${answer.shape.join("x")}` +
    (hasD() ? "; colour: D's realness, red 0 to green 1" : "");
  $("grid-wrap").hidden = true;
  $("plot").toggleAttribute("hidden", false); // an <svg> has no .hidden
  setCurl("/sample", body, "samples.json");
}

// --- the walk between two seeds ------------------------------------------------------------------

async function walk() {
  busy(true);
  try {
    const body = { model: state.model.name, seeds: [intValue("walk-a", 0, Number.MAX_SAFE_INTEGER), intValue("walk-b", 0, Number.MAX_SAFE_INTEGER)],
                   steps: intValue("walk-steps", 2, 64), method: $("walk-method").value, format: isImage() ? "png" : "json" };
    // A conditional model walks within one class (the graphs take the class as an integer).
    const labels = chosenLabels();
    if (typeof labels === "number" && state.config.interpolate_fields.includes("labels")) body.labels = labels;
    if (isStyle() && Number($("psi").value) !== 1) body.truncation_psi = Number($("psi").value); // the walk is in w
    if (isImage()) {
      body.nrow = body.steps;
      const blob = await (await postJson("/interpolate", body)).blob();
      const url = URL.createObjectURL(blob);
      await loaded($("strip"), url);
      $("strip").hidden = false;
      $("walk-plot").toggleAttribute("hidden", true); // an <svg> has no .hidden
      animate($("strip"), body.steps);
    } else {
      const answer = await (await postJson("/interpolate", body)).json();
      drawScatter($("walk-plot"), answer.samples, null, plotOptions(true));
      $("walk-plot").toggleAttribute("hidden", false); // an <svg> has no .hidden
      $("strip").hidden = true;
      stopAnimation();
    }
    showError("");
  } catch (e) {
    showError(e.message);
  } finally {
    busy(false);
  }
}

function stopAnimation() {
  clearInterval(state.anim);
  state.anim = null;
  $("anim").hidden = true;
  $("anim-play").hidden = true;
}

// Frames are the strip's own tiles, shown in turn (forth and back): no second request.
function animate(strip, steps) {
  stopAnimation();
  const [, h, w] = card().sample.shape;
  const canvas = $("anim");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const order = [...Array(steps).keys(), ...[...Array(steps).keys()].reverse().slice(1, -1)];
  let i = 0;
  const frame = () => {
    const t = order[i++ % order.length];
    ctx.drawImage(strip, GRID_PADDING + t * (w + GRID_PADDING), GRID_PADDING, w, h, 0, 0, w, h);
  };
  frame();
  state.anim = setInterval(frame, 160);
  canvas.hidden = false;
  $("anim-play").hidden = false;
  $("anim-play").textContent = "Pause";
  $("anim-play").onclick = () => {
    if (state.anim) { clearInterval(state.anim); state.anim = null; $("anim-play").textContent = "Play"; }
    else { state.anim = setInterval(frame, 160); $("anim-play").textContent = "Pause"; }
  };
}

// --- style mixing (style-based models) ----------------------------------------------------------

function seedList(id) {
  const seeds = $(id).value.split(",").map((s) => s.trim()).filter((s) => s !== "").map(Number);
  if (!seeds.length || seeds.length > 8 || seeds.some((s) => !Number.isInteger(s) || s < 0)) {
    throw new ApiError(`${id}: one to eight whole numbers >= 0, comma-separated`);
  }
  return seeds;
}

// One /sample per cell: seed `row` with `mix: {seed: col, from_layer}`; the first row and column
// are the seeds' own images. Every tile is an answer of the API, as curl would get it.
async function mixGrid() {
  busy(true);
  try {
    const rows = seedList("mix-rows"), cols = seedList("mix-cols");
    const layer = intValue("mix-layer", 0, card().style.num_ws - 1);
    const base = { model: state.model.name, n: 1, format: "png" };
    const labels = chosenLabels();
    if (typeof labels === "number") base.labels = labels;
    if (Number($("psi").value) !== 1) base.truncation_psi = Number($("psi").value);
    const cells = [null, ...cols.map((c) => ({ ...base, seed: c }))];
    for (const r of rows) {
      cells.push({ ...base, seed: r }, ...cols.map((c) => ({ ...base, seed: r, mix: { seed: c, from_layer: layer } })));
    }
    const urls = await Promise.all(cells.map(async (body) => body && URL.createObjectURL(await (await postJson("/sample", body)).blob())));
    const grid = $("mix-grid");
    grid.replaceChildren();
    grid.style.gridTemplateColumns = `repeat(${cols.length + 1}, auto)`;
    urls.forEach((url, i) => {
      const img = document.createElement("img");
      if (url) { img.src = url; img.dataset.body = JSON.stringify(cells[i]); img.alt = `mix ${i}`; }
      img.className = url ? "mix-tile" : "mix-corner";
      grid.append(img);
    });
    await Promise.all([...grid.querySelectorAll("img.mix-tile")].map((img) => img.decode()));
    showError("");
  } catch (e) {
    showError(e.message);
  } finally {
    busy(false);
  }
}

// --- inverting an uploaded image (models with an encoder) ------------------------------------------

async function invertUpload() {
  const file = $("invert-upload").files[0];
  if (!file) return;
  busy(true);
  try {
    const form = new FormData();
    form.append("file", file, file.name);
    // resize: a photo of any size is resized to the model's by the server, which says so.
    let query = `model=${encodeURIComponent(state.model.name)}&format=png&refine=32&resize=true`;
    const labels = chosenLabels(); // a conditional model inverts under the picked class
    if (typeof labels === "number") query += `&labels=${labels}`;
    const response = await call(`/invert?${query}`, { method: "POST", body: form });
    const url = URL.createObjectURL(await response.blob());
    await loaded($("invert-recon"), url);
    $("invert-original").src = URL.createObjectURL(file);
    $("invert-original").hidden = false;
    $("invert-recon").hidden = false;
    $("invert-recon").dataset.query = query;
    const resized = response.headers.get("X-Resized");
    $("invert-note").textContent =
      `mean squared error ${Number(response.headers.get("X-Error")).toFixed(5)} (E, then 32 candidates of the search)` +
      (resized ? `; resized ${resized.replace(/^[^:]*: /, "")}` : "");
    showError("");
  } catch (e) {
    showError(e.message);
  } finally {
    busy(false);
  }
}

// --- scoring uploaded images ---------------------------------------------------------------------

async function scoreUploads() {
  const files = [...$("upload").files];
  if (!files.length) return;
  busy(true);
  try {
    const form = new FormData();
    files.forEach((f) => form.append("file", f, f.name));
    let query = `model=${encodeURIComponent(state.model.name)}`;
    const labels = chosenLabels(); // D(x | c) of a conditional model: the picked class for every image
    if (labels !== undefined) query += `&labels=${encodeURIComponent(labels)}`;
    const answer = await (await call(`/score?${query}`, { method: "POST", body: form })).json();
    const list = $("score-list");
    list.replaceChildren();
    files.forEach((f, i) => {
      const item = document.createElement("li");
      const img = document.createElement("img");
      img.src = URL.createObjectURL(f);
      img.alt = f.name;
      const text = document.createElement("span");
      text.className = "score";
      text.textContent = `${f.name}: realness ${answer.realness[i].toFixed(4)}`;
      text.dataset.realness = String(answer.realness[i]);
      item.append(img, text);
      list.append(item);
    });
    showError("");
  } catch (e) {
    showError(e.message);
  } finally {
    busy(false);
  }
}

// --- downloads and curl ---------------------------------------------------------------------------

function setCurl(path, body, out) {
  $("curl").value = curlLine(path, body, out);
}

function save(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

async function download(format) {
  if (!state.body) return;
  const stem = `${state.model.name}-seed${state.body.seed}`;
  try {
    if (format === "png" && state.grid) return save(state.grid.blob, `${stem}.png`);
    const body = { ...state.body, format };
    if (format === "json" && hasD()) body.scores = true;
    if (format !== "json") delete body.scores;
    save(await (await postJson("/sample", body)).blob(), `${stem}.${format}`);
  } catch (e) {
    showError(e.message);
  }
}

async function copyCurl() {
  const text = $("curl").value;
  try {
    await navigator.clipboard.writeText(text); // needs a secure context (https or localhost)
  } catch (e) {
    $("curl").select();
    document.execCommand("copy");
  }
  $("copied").textContent = "copied";
  setTimeout(() => { $("copied").textContent = ""; }, 1500);
}

// --- the model and its card ------------------------------------------------------------------------

function showCard() {
  const c = card(), m = state.model;
  const rows = [
    ["dataset", c.dataset], ["version", m.version],
    ["runs on", `${m.provider} (${m.backend})`],
    ["sample", `${c.sample.kind} ${c.sample.shape.join("x")}, values in [${c.sample.value_range.map((v) => +v.toFixed(3)).join(", ")}]`],
    ["latent", `${c.latent.dim} ${c.latent.distribution}`],
  ];
  if (c.condition) rows.push(["classes", c.condition.names.join(", ")]);
  if (c.style) rows.push(["w space", `w_dim ${c.style.w_dim}, ${c.style.num_ws} layers (mapping + synthesis)`]);
  if (!hasD()) rows.push(["discriminator", "none (generator only)"]);
  if (c.training) rows.push(["made by", `training preset ${c.training.preset}, ${c.training.steps} steps`]);
  else if (c.source) rows.push(["made by", `packed from ${c.source.kind} (${c.source.tool})`]);
  for (const [name, metric] of Object.entries(c.metrics || {})) {
    rows.push([name, metric.stderr != null ? `${+metric.value.toFixed(4)} ± ${+metric.stderr.toFixed(4)}` : `${+metric.value.toFixed(4)}`]);
  }
  $("description").textContent = c.description;
  const dl = $("card");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    dl.append(Object.assign(document.createElement("dt"), { textContent: k }), Object.assign(document.createElement("dd"), { textContent: v }));
  }
}

function adaptControls() {
  const c = card();
  // Realness needs D; hide (and switch off) its controls for a generator-only model.
  $("realness-controls").hidden = !hasD();
  $("no-d-note").hidden = hasD();
  if (!hasD()) for (const id of ["scores", "use-min", "drs"]) $(id).checked = false;
  const canLabel = Boolean(c.condition) && takes("labels");
  $("label-row").hidden = !canLabel;
  $("label-note").hidden = !(c.condition && !canLabel);
  $("label-note").textContent = c.condition && !canLabel ? "A conditional model, but this server's API takes no class (labels) yet." : "";
  if (canLabel) {
    const select = $("label");
    select.replaceChildren(...c.condition.names.map((name, i) => new Option(`${i}: ${name}`, String(i))),
                           new Option("balanced (every class in turn)", "balanced"),
                           new Option("drawn from the seed", ""));
    select.value = "0";
  }
  // A style-based model truncates in w (psi) and mixes styles; a single graph truncates in z.
  $("z-truncation-row").hidden = isStyle();
  $("psi-row").hidden = !isStyle();
  $("mixing").hidden = !(isStyle() && isImage());
  $("mix-grid").replaceChildren();
  if (isStyle()) $("mix-layer").max = String(c.style.num_ws - 1);
  $("walk-method").value = isStyle() ? "lerp" : "slerp"; // style-based models are smooth in w along lines
  // Editing directions (directions.json) and inversion (encoder.onnx), where the model has them.
  const dirs = state.model.directions || [];
  $("edit-row").hidden = !dirs.length;
  $("direction").replaceChildren(...dirs.map((d) => new Option(d, d)));
  $("amount").value = "0";
  $("amount-value").textContent = "0";
  $("invert-section").hidden = !(state.model.encoder && isImage() && (!c.condition || takes("labels")));
  for (const id of ["invert-original", "invert-recon"]) $(id).hidden = true;
  $("invert-note").textContent = "";
  $("dl-png").hidden = !isImage();
  $("score-section").hidden = !(hasD() && isImage() && (!c.condition || canLabel));
  $("score-hint").textContent = isImage() ? `PNG images of ${c.sample.shape[2]}x${c.sample.shape[1]} pixels: D's realness of each.` : "";
  $("score-list").replaceChildren();
  $("strip").hidden = true;
  $("walk-plot").toggleAttribute("hidden", true); // an <svg> has no .hidden
  stopAnimation();
}

function chooseModel(name) {
  state.model = state.models[name];
  showCard();
  adaptControls();
}

async function start() {
  try {
    state.config = await (await call("/ui/config.json")).json();
    const listing = await (await call("/models")).json();
    const select = $("model");
    for (const m of listing.models) {
      if (m.status !== "ready") continue;
      state.models[m.name] = m;
      select.append(new Option(m.name, m.name));
    }
    if (!select.options.length) throw new ApiError("no model is ready on this server");
    select.value = state.models[listing.default_model] ? listing.default_model : select.options[0].value;
    $("server-note").textContent = listing.device;
    $("n").max = String(state.config.max_n);
    chooseModel(select.value);
    select.addEventListener("change", () => { chooseModel(select.value); render(); });
    for (const id of ["seed", "n", "truncation", "min-realness"]) $(id).addEventListener("input", schedule);
    $("psi").addEventListener("input", () => { $("psi-value").textContent = Number($("psi").value).toFixed(2); schedule(); });
    $("mix-go").addEventListener("click", mixGrid);
    $("amount").addEventListener("input", () => { $("amount-value").textContent = $("amount").value; schedule(); });
    $("direction").addEventListener("change", render);
    $("invert-upload").addEventListener("change", invertUpload);
    for (const id of ["truncate", "label", "scores", "use-min", "drs"]) $(id).addEventListener("change", render);
    $("new-seed").addEventListener("click", () => { $("seed").value = String(Math.floor(Math.random() * 2 ** 31)); render(); });
    $("walk-go").addEventListener("click", walk);
    $("upload").addEventListener("change", scoreUploads);
    $("dl-png").addEventListener("click", () => download("png"));
    $("dl-npy").addEventListener("click", () => download("npy"));
    $("dl-json").addEventListener("click", () => download("json"));
    $("copy-curl").addEventListener("click", copyCurl);
    await render();
  } catch (e) {
    showError(e.message);
    busy(false);
  }
}

start();
