// basisdb explorer: a client of the service's JSON routes. It computes nothing but colours:
// every value it plots comes from POST /v1/encode, every structure answer from
// POST /v1/encode/structure. URLs are relative, so the page also works behind a path prefix.
"use strict";

// ---------------------------------------------------------------------------------------------
// Constants

// Numbers asked for in one encoding request (positions x basis functions). The service's own
// limit (--max-output-values, 4,000,000 by default) is higher; a smaller limit configured there
// gets a 413, and the page halves its requests until they fit.
const VALUES_PER_REQUEST = 1_000_000;
// Grids whose encoding would exceed this many numbers are refused by the page (the browser
// would parse hundreds of megabytes of JSON).
const MAX_PLOT_VALUES = 16_000_000;
// Feature columns shown in the atom table (all of them are in the CSV).
const FEATURE_COLUMNS = 10;

// ColorBrewer RdBu, reversed: negative values blue, zero white, positive values red.
const COLOURS = [
  [5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240], [247, 247, 247],
  [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31],
];

const AXES = ["x", "y", "z"];

const ELEMENTS = (
  "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr " +
  "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb " +
  "Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf " +
  "Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split(" ");

const ROCK_SALT_CIF = `data_NaCl
_cell_length_a 5.6402
_cell_length_b 5.6402
_cell_length_c 5.6402
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Na1 Na 0.0 0.0 0.0
Na2 Na 0.0 0.5 0.5
Na3 Na 0.5 0.0 0.5
Na4 Na 0.5 0.5 0.0
Cl1 Cl 0.5 0.5 0.5
Cl2 Cl 0.5 0.0 0.0
Cl3 Cl 0.0 0.5 0.0
Cl4 Cl 0.0 0.0 0.5
`;

// ---------------------------------------------------------------------------------------------
// State

const state = {
  radii: [], // radii in the store
  groups: [], // /v1/groups
  byNumber: new Map(),
  detail: null, // /v1/groups/{n}[?hall=]: the setting plotted
  lastPlot: null, // what the canvas shows (read by the tests)
  plotRequest: 0, // the newest plot request: older ones stop drawing
  plotCache: new Map(), // key -> Float64Array of (positions x n_basis) real features
  lastStructure: null, // the last /v1/encode/structure answer
};
window.basisExplorer = state;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// Talking to the service

class ServiceError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function describeDetail(body, status) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((issue) => `${(issue.loc || []).join(".")}: ${issue.msg}`).join("; ");
  }
  return `the service answered ${status}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// JSON from a route of the service; a 503 (busy) is retried after its Retry-After, a few times.
async function api(path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(path, { headers: { accept: "application/json" }, ...options });
    if (response.ok) return response.json();
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      /* not JSON */
    }
    if (response.status === 503 && attempt < 4) {
      const wait = Number(response.headers.get("retry-after")) || 1;
      await sleep(Math.min(wait, 5) * 1000);
      continue;
    }
    throw new ServiceError(response.status, describeDetail(body, response.status));
  }
}

function postJSON(path, payload) {
  return api(path, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(payload),
  });
}

function setStatus(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

// ---------------------------------------------------------------------------------------------
// Formatting

function formatNumber(value, digits = 4) {
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) < 1e-12) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1e4 || magnitude < 1e-3) return value.toExponential(digits - 1);
  return Number(value.toPrecision(digits)).toString();
}

function formatRadius(radius) {
  return String(radius); // JSON's 4.0 is the number 4: "4"
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

// ---------------------------------------------------------------------------------------------
// The store and the groups

async function loadStore() {
  const health = await api("v1/health");
  const store = health.store;
  state.radii = store.radii.slice().sort((a, b) => a - b);
  const verified = store.verification === "passed" ? "checksums verified" : "checksums not verified";
  $("store-line").textContent =
    `store ${store.fingerprint.slice(0, 12)}… · ${store.n_settings} settings · radii ` +
    `${state.radii.map(formatRadius).join(", ")} · basisdb ${store.basisdb_version} · ${verified}`;
  const options = state.radii.map((radius) => new Option(`r = ${formatRadius(radius)}`, radius));
  $("cif-radius").replaceChildren(...options);
  $("cif-radius").value = String(state.radii[Math.min(2, state.radii.length - 1)]);
}

async function loadGroups() {
  state.groups = await api("v1/groups");
  state.byNumber = new Map(state.groups.map((group) => [group.number, group]));
  const head = $("group-head");
  head.replaceChildren(
    element("th", "No.", "num"),
    element("th", "symbol"),
    element("th", "system"),
    element("th", "Hall", "num"),
    element("th", "ops", "num"),
    ...state.radii.map((radius) => {
      const cell = element("th", `r=${formatRadius(radius)}`, "num");
      cell.title = `number of basis functions at radius ${formatRadius(radius)}`;
      return cell;
    }),
  );
  const rows = state.groups.map((group) => {
    const row = document.createElement("tr");
    row.dataset.group = group.number;
    row.dataset.search = `${group.number} ${group.symbol} ${group.crystal_system} ${group.hall_symbol}`.toLowerCase();
    row.title = `Hall ${group.hall_number}: ${group.hall_symbol}`;
    const sizes = new Map(group.basis_sizes.map((size) => [size.radius, size.n_basis]));
    row.append(
      element("td", group.number, "num"),
      element("td", group.symbol, "symbol"),
      element("td", group.crystal_system, "system"),
      element("td", group.hall_number, "num"),
      element("td", group.n_operations, "num"),
      ...state.radii.map((radius) => element("td", sizes.has(radius) ? sizes.get(radius) : "–", "num")),
    );
    row.addEventListener("click", () => selectGroup(group.number, null));
    return row;
  });
  $("group-list").replaceChildren(...rows);
  setStatus($("group-status"), `${state.groups.length} groups`);
  $("group-table").dataset.loaded = "true";
}

function filterGroups() {
  const words = $("group-filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const row of $("group-list").rows) {
    const match = words.every((word) =>
      /^\d+$/.test(word) ? row.dataset.group === word : row.dataset.search.includes(word),
    );
    row.hidden = !match;
    shown += match;
  }
  setStatus($("group-status"), `${shown} of ${state.groups.length} groups`);
}

function highlightGroup(number) {
  for (const row of $("group-list").rows) {
    const selected = row.dataset.group === String(number);
    row.classList.toggle("selected", selected);
    if (selected) row.scrollIntoView({ block: "nearest" });
  }
}

// ---------------------------------------------------------------------------------------------
// One setting

async function selectGroup(number, hall) {
  $("group").value = number;
  $("hall").value = hall || "";
  highlightGroup(number);
  const query = hall ? `?hall=${hall}` : "";
  let detail;
  try {
    detail = await api(`v1/groups/${number}${query}`);
  } catch (error) {
    setStatus($("plot-status"), error.message, true);
    if (state.detail) {
      // The plot still shows the previous setting: so do the fields.
      $("group").value = state.detail.number;
      $("hall").value = state.detail.hall_number === defaultHall(state.detail.number) ? "" : state.detail.hall_number;
      highlightGroup(state.detail.number);
    }
    return;
  }
  state.detail = detail;
  $("hall").placeholder = String(detail.hall_number);
  const line = $("setting-line");
  line.replaceChildren(
    element("strong", `${detail.number} ${detail.symbol}`),
    ` · ${detail.crystal_system} · Hall ${detail.hall_number} (${detail.hall_symbol})` +
      `${detail.choice ? `, choice ${detail.choice}` : ""} · ${detail.n_operations} operations · ` +
      `${detail.metric} truncation`,
  );
  const radius = $("radius");
  const previous = Number(radius.value);
  radius.replaceChildren(
    ...detail.basis_sizes.map(
      (size) => new Option(`${formatRadius(size.radius)} (${size.n_basis} functions)`, size.radius),
    ),
  );
  const radii = detail.basis_sizes.map((size) => size.radius);
  radius.value = String(radii.includes(previous) ? previous : radii[Math.min(2, radii.length - 1)]);
  showVerification(detail);
  updateFunctionRange();
  schedulePlot();
}

function defaultHall(number) {
  const group = state.byNumber.get(number);
  return group ? group.hall_number : null;
}

function showVerification(detail) {
  const table = $("verification-table");
  const head = document.createElement("tr");
  for (const title of ["radius", "frequencies", "functions", "absent", "invariance error", "orthogonality error"]) {
    head.append(element("th", title, "num"));
  }
  const rows = detail.verification.map((figures) => {
    const row = document.createElement("tr");
    row.append(
      element("td", formatRadius(figures.radius), "num"),
      element("td", figures.n_frequencies, "num"),
      element("td", figures.n_basis, "num"),
      element("td", figures.n_absent, "num"),
      element("td", figures.invariance_error.toExponential(1), "num"),
      element("td", figures.orthogonality_error.toExponential(1), "num"),
    );
    return row;
  });
  const thead = document.createElement("thead");
  thead.append(head);
  const tbody = document.createElement("tbody");
  tbody.append(...rows);
  table.replaceChildren(thead, tbody);
}

function basisSize(radius) {
  const size = state.detail && state.detail.basis_sizes.find((entry) => entry.radius === radius);
  return size ? size.n_basis : 0;
}

function updateFunctionRange() {
  const count = basisSize(Number($("radius").value));
  const input = $("function");
  input.max = Math.max(0, count - 1);
  if (Number(input.value) > count - 1) input.value = Math.max(0, count - 1);
  $("function-count").textContent = `of 0–${count - 1}`;
}

// ---------------------------------------------------------------------------------------------
// The plot

let plotTimer = null;

function schedulePlot() {
  clearTimeout(plotTimer);
  plotTimer = setTimeout(plot, 120); // typing "12" in a field plots once
}

function gridPositions(size, axis, level) {
  // Pixel centres of a size x size grid over the slice `axis = level`; rows from the top
  // (largest v) down, so that the picture has v pointing up.
  const [u, v] = [0, 1, 2].filter((a) => a !== axis);
  const positions = [];
  for (let row = 0; row < size; row++) {
    for (let column = 0; column < size; column++) {
      const point = [0, 0, 0];
      point[axis] = level;
      point[u] = (column + 0.5) / size;
      point[v] = (size - row - 0.5) / size;
      positions.push(point);
    }
  }
  return { positions, u, v };
}

// Real features (positions x n_basis) of a setting at a radius, from POST /v1/encode, in as
// many requests as the limits need.
async function encodePositions(group, hall, radius, nBasis, positions, isCurrent) {
  const features = new Float64Array(positions.length * nBasis);
  let chunk = Math.max(1, Math.min(positions.length, Math.floor(VALUES_PER_REQUEST / nBasis)));
  for (let start = 0; start < positions.length; ) {
    if (!isCurrent()) return null;
    const part = positions.slice(start, start + chunk);
    const payload = { group, radius, positions: part, real: true };
    if (hall) payload.hall = hall;
    let answer;
    try {
      answer = await postJSON("v1/encode", payload);
    } catch (error) {
      if (error.status === 413 && chunk > 1) {
        chunk = Math.ceil(chunk / 2); // a service with lower limits: ask for less at a time
        continue;
      }
      throw error;
    }
    answer.real.forEach((row, i) => features.set(row, (start + i) * nBasis));
    start += part.length;
    setStatus($("plot-status"), `encoding… ${start} of ${positions.length} positions`);
  }
  return features;
}

async function plot() {
  const detail = state.detail;
  if (!detail) return;
  const request = ++state.plotRequest;
  const isCurrent = () => request === state.plotRequest;
  const chosenRadius = Number($("radius").value);
  const index = Number($("function").value);
  const count = basisSize(chosenRadius);
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    setStatus($("plot-status"), `choose a function from 0 to ${count - 1}`, true);
    return;
  }
  // Bases of smaller radii are prefixes of larger ones: function k is the same function at
  // every radius that has it, so it is fetched at the smallest such radius (fewest numbers).
  const sizes = detail.basis_sizes.slice().sort((a, b) => a.radius - b.radius);
  const { radius, n_basis: nBasis } = sizes.find((size) => size.n_basis > index);
  const axis = Number($("slice-axis").value);
  const level = Number($("slice-value").value);
  const size = Number($("grid-size").value);
  if (!Number.isFinite(level)) {
    setStatus($("plot-status"), "the slice needs a number between 0 and 1", true);
    return;
  }
  if (size * size * nBasis > MAX_PLOT_VALUES) {
    setStatus(
      $("plot-status"),
      `a ${size} × ${size} grid needs ${size * size} × ${nBasis} numbers; choose a smaller grid`,
      true,
    );
    return;
  }
  const hall = detail.hall_number;
  const { positions, u, v } = gridPositions(size, axis, level);
  const key = JSON.stringify([hall, radius, axis, level, size]);
  $("plot-canvas").dataset.state = "loading";
  let features = state.plotCache.get(key);
  try {
    if (!features) {
      setStatus($("plot-status"), "encoding…");
      features = await encodePositions(detail.number, hall, radius, nBasis, positions, isCurrent);
      if (!features) return;
      state.plotCache.clear(); // one grid kept: switching functions on it costs nothing
      state.plotCache.set(key, features);
    }
  } catch (error) {
    if (isCurrent()) {
      setStatus($("plot-status"), error.message, true);
      $("plot-canvas").dataset.state = "error";
    }
    return;
  }
  if (!isCurrent()) return;
  const values = new Float64Array(positions.length);
  for (let p = 0; p < positions.length; p++) values[p] = features[p * nBasis + index];
  state.lastPlot = {
    group: detail.number,
    hall,
    radius,
    index,
    size,
    axis,
    level,
    positions,
    values: Array.from(values),
  };
  draw(values, size, u, v, axis, level, index);
  const zero = values.every((value) => Math.abs(value) < 1e-12);
  const caption =
    `function ${index} of ${detail.number} ${detail.symbol} (Hall ${hall}), present from radius ` +
    `${formatRadius(radius)} on · ${AXES[axis]} = ${level} · ${size} × ${size} points` +
    (zero ? " · zero everywhere on this slice: try another" : "");
  setStatus($("plot-status"), caption);
  $("plot-canvas").dataset.state = "drawn";
}

function colourOf(t) {
  const x = Math.min(1, Math.max(0, t)) * (COLOURS.length - 1);
  const i = Math.min(COLOURS.length - 2, Math.floor(x));
  const f = x - i;
  const a = COLOURS[i];
  const b = COLOURS[i + 1];
  return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
}

// The layout of the canvas, in CSS pixels.
const LAYOUT = { left: 58, top: 34, side: 420, barGap: 34, barWidth: 18 };

function draw(values, size, u, v, axis, level, index) {
  const canvas = $("plot-canvas");
  const ratio = window.devicePixelRatio || 1;
  const width = 620;
  const height = 500;
  if (canvas.width !== width * ratio) {
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    canvas.style.width = `${width}px`;
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, width, height);

  let bound = 0;
  for (const value of values) bound = Math.max(bound, Math.abs(value));
  const scale = bound > 1e-12 ? bound : 1;

  // The heat map, one pixel per grid point, scaled up without smoothing.
  const image = new ImageData(size, size);
  values.forEach((value, p) => {
    const [r, g, b] = colourOf(0.5 + value / (2 * scale));
    image.data.set([r, g, b, 255], p * 4);
  });
  const offscreen = document.createElement("canvas");
  offscreen.width = size;
  offscreen.height = size;
  offscreen.getContext("2d").putImageData(image, 0, 0);
  const { left, top, side, barGap, barWidth } = LAYOUT;
  context.imageSmoothingEnabled = false;
  context.drawImage(offscreen, left, top, side, side);
  context.strokeStyle = "#5f6878";
  context.lineWidth = 1;
  context.strokeRect(left - 0.5, top - 0.5, side + 1, side + 1);

  context.fillStyle = "#1d2330";
  context.font = "600 13px system-ui, sans-serif";
  context.textAlign = "left";
  context.textBaseline = "alphabetic";
  context.fillText(`basis function ${index}, real, on ${AXES[axis]} = ${level}`, left, top - 12);
  if (bound <= 1e-12) {
    context.font = "13px system-ui, sans-serif";
    context.fillStyle = "#5f6878";
    context.textAlign = "center";
    context.fillText("zero everywhere on this slice", left + side / 2, top + side / 2);
  }

  // Axes: fractional coordinates of the conventional cell.
  context.font = "12px system-ui, sans-serif";
  context.fillStyle = "#394150";
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    const x = left + tick * side;
    const y = top + side - tick * side;
    context.beginPath();
    context.moveTo(x, top + side);
    context.lineTo(x, top + side + 5);
    context.moveTo(left, y);
    context.lineTo(left - 5, y);
    context.stroke();
    context.textAlign = "center";
    context.textBaseline = "top";
    context.fillText(String(tick), x, top + side + 8);
    context.textAlign = "right";
    context.textBaseline = "middle";
    context.fillText(String(tick), left - 8, y);
  }
  context.font = "italic 13px system-ui, sans-serif";
  context.textAlign = "center";
  context.textBaseline = "top";
  context.fillText(`${AXES[u]} (fractional)`, left + side / 2, top + side + 26);
  context.save();
  context.translate(16, top + side / 2);
  context.rotate(-Math.PI / 2);
  context.textBaseline = "middle";
  context.fillText(`${AXES[v]} (fractional)`, 0, 0);
  context.restore();

  // The colour bar: -max|value| (blue) to +max|value| (red), white at zero.
  const barLeft = left + side + barGap;
  const gradient = context.createLinearGradient(0, top + side, 0, top);
  COLOURS.forEach((colour, i) => gradient.addColorStop(i / (COLOURS.length - 1), `rgb(${colour.join(",")})`));
  context.fillStyle = gradient;
  context.fillRect(barLeft, top, barWidth, side);
  context.strokeRect(barLeft - 0.5, top - 0.5, barWidth + 1, side + 1);
  context.font = "12px system-ui, sans-serif";
  context.fillStyle = "#394150";
  context.textAlign = "left";
  context.textBaseline = "middle";
  for (const fraction of [-1, -0.5, 0, 0.5, 1]) {
    const y = top + side / 2 - (fraction * side) / 2;
    context.beginPath();
    context.moveTo(barLeft + barWidth, y);
    context.lineTo(barLeft + barWidth + 4, y);
    context.stroke();
    context.fillText(formatNumber(fraction * scale, 3), barLeft + barWidth + 7, y);
  }
  context.textAlign = "center";
  context.textBaseline = "alphabetic";
  context.fillText("value", barLeft + barWidth / 2, top - 12);
}

function readout(event) {
  const plotted = state.lastPlot;
  if (!plotted) return;
  const canvas = $("plot-canvas");
  const box = canvas.getBoundingClientRect();
  const scaleX = 620 / box.width;
  const x = (event.clientX - box.left) * scaleX - LAYOUT.left;
  const y = (event.clientY - box.top) * scaleX - LAYOUT.top;
  if (x < 0 || y < 0 || x >= LAYOUT.side || y >= LAYOUT.side) {
    $("plot-readout").textContent = "\u00a0";
    return;
  }
  const column = Math.floor((x / LAYOUT.side) * plotted.size);
  const row = Math.floor((y / LAYOUT.side) * plotted.size);
  const p = row * plotted.size + column;
  const point = plotted.positions[p].map((c) => c.toFixed(3)).join(", ");
  $("plot-readout").textContent = `(x, y, z) = (${point}): ${formatNumber(plotted.values[p], 6)}`;
}

// ---------------------------------------------------------------------------------------------
// A pasted structure

async function encodeStructure(event) {
  event.preventDefault();
  const text = $("cif-text").value;
  const status = $("cif-status");
  if (!text.trim()) {
    setStatus(status, "paste a CIF first (or load the rock-salt example)", true);
    return;
  }
  const button = $("cif-encode");
  button.disabled = true;
  setStatus(status, "standardizing and encoding…");
  try {
    const answer = await postJSON("v1/encode/structure", {
      cif: text,
      radius: Number($("cif-radius").value),
      symprec: Number($("cif-symprec").value),
      invariance: $("cif-invariance").value,
      real: true,
    });
    state.lastStructure = answer;
    showStructure(answer);
    setStatus(status, "");
  } catch (error) {
    $("cif-result").hidden = true;
    setStatus(status, error.message, true);
  } finally {
    button.disabled = false;
  }
}

function symbolOf(number) {
  return ELEMENTS[number - 1] || String(number);
}

function showStructure(answer) {
  const summary = $("cif-summary");
  const entries = [
    ["space group", `${answer.group} ${answer.international}`, "group-answer"],
    ["setting", `Hall ${answer.hall_number} (${answer.hall_symbol})`],
    [
      "atoms",
      `${answer.input_to_standardized.length} in the input, ${answer.standardized.numbers.length} in the ` +
        "standardized cell",
    ],
    [
      "features",
      `${answer.n_basis} per atom at radius ${formatRadius(answer.radius)}, real, averaged over ` +
        `${answer.n_frames} frame${answer.n_frames === 1 ? "" : "s"} (${answer.invariance})`,
    ],
  ];
  if (answer.inverted) entries.push(["note", "the mirror image of the input was standardized"]);
  if (answer.looser_group !== null) {
    entries.push(["warning", `at ten times symprec the group is ${answer.looser_group}`, "warning"]);
  }
  summary.replaceChildren(
    ...entries.flatMap(([term, description, className]) => [
      element("dt", term),
      element("dd", description, className),
    ]),
  );
  summary.querySelector(".group-answer").id = "cif-group";
  $("cif-group").dataset.group = answer.group;

  const features = answer.encodings.real;
  const shown = Math.min(FEATURE_COLUMNS, answer.n_basis);
  const head = document.createElement("tr");
  head.append(element("th", "atom", "num"), element("th", "element"), element("th", "Wyckoff"));
  head.append(element("th", "std. atom", "num"), element("th", "orbit", "num"));
  for (let k = 0; k < shown; k++) head.append(element("th", `f${k}`, "num"));
  if (shown < answer.n_basis) head.append(element("th", `… ${answer.n_basis - shown} more`));
  const rows = features.map((row, atom) => {
    const standard = answer.input_to_standardized[atom];
    const tr = document.createElement("tr");
    tr.append(
      element("td", atom, "num"),
      element("td", symbolOf(answer.standardized.numbers[standard])),
      element("td", answer.wyckoffs[standard]),
      element("td", standard, "num"),
      element("td", answer.equivalent_atoms[standard], "num"),
    );
    for (let k = 0; k < shown; k++) tr.append(element("td", formatNumber(row[k]), "num"));
    if (shown < answer.n_basis) tr.append(element("td", "…"));
    return tr;
  });
  const thead = document.createElement("thead");
  thead.append(head);
  const tbody = document.createElement("tbody");
  tbody.append(...rows);
  $("atom-table").replaceChildren(thead, tbody);
  $("cif-result").hidden = false;
}

function downloadFeatures() {
  const answer = state.lastStructure;
  if (!answer) return;
  const header = ["atom", "element", "wyckoff", ...Array.from({ length: answer.n_basis }, (_, k) => `f${k}`)];
  const lines = [header.join(",")];
  answer.encodings.real.forEach((row, atom) => {
    const standard = answer.input_to_standardized[atom];
    lines.push(
      [atom, symbolOf(answer.standardized.numbers[standard]), answer.wyckoffs[standard], ...row].join(","),
    );
  });
  const blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `features-${answer.group}-r${formatRadius(answer.radius)}.csv`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// ---------------------------------------------------------------------------------------------
// Wiring

function onControlsChanged(event) {
  if (event.target.id === "group" || event.target.id === "hall") {
    const number = Number($("group").value);
    const hall = Number($("hall").value) || null;
    if (Number.isInteger(number) && number >= 1 && number <= 230) selectGroup(number, hall);
    return;
  }
  if (event.target.id === "radius") updateFunctionRange();
  schedulePlot();
}

async function start() {
  $("group-filter").addEventListener("input", filterGroups);
  $("plot-controls").addEventListener("change", onControlsChanged);
  $("plot-controls").addEventListener("submit", (event) => event.preventDefault());
  $("function").addEventListener("input", schedulePlot);
  $("plot-canvas").addEventListener("mousemove", readout);
  $("cif-controls").addEventListener("submit", encodeStructure);
  $("cif-example").addEventListener("click", () => {
    $("cif-text").value = ROCK_SALT_CIF;
  });
  $("cif-download").addEventListener("click", downloadFeatures);
  $("cif-plot").addEventListener("click", () => {
    const answer = state.lastStructure;
    if (answer) selectGroup(answer.group, answer.hall_number);
  });
  try {
    await loadStore();
    await loadGroups();
  } catch (error) {
    setStatus($("group-status"), `cannot reach the service: ${error.message}`, true);
    $("store-line").textContent = "the service did not answer";
    return;
  }
  const fromAddress = Number(new URLSearchParams(window.location.search).get("group"));
  selectGroup(state.byNumber.has(fromAddress) ? fromAddress : 227, null);
}

document.addEventListener("DOMContentLoaded", start);
