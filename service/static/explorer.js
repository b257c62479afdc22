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
      ...state.radii.map((radius) => {
        const cell = element("td", sizes.has(radius) ? sizes.get(radius) : "–", "num");
        if (sizes.get(radius) === 0) {
          cell.classList.add("empty");
          cell.title = `no invariant function at radius ${formatRadius(radius)}: systematic absences`;
        }
        return cell;
      }),
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
      (size) =>
        new Option(
          `${formatRadius(size.radius)} (${size.n_basis ? `${size.n_basis} functions` : "none: absences"})`,
          size.radius,
        ),
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
  $("function-count").textContent = count ? `of 0–${count - 1}` : "none at this radius";
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
  if (count === 0) {
    setStatus($("plot-status"), emptyBasisNote(detail, chosenRadius), true);
    $("plot-canvas").dataset.state = "empty";
    return;
  }
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
  let features = state.plotCache.get(key);
  try {
    if (!features) {
      setBusy(true);
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
  } finally {
    if (isCurrent()) setBusy(false);
  }
  if (!isCurrent()) return;
  const values = new Float64Array(positions.length);
  for (let p = 0; p < positions.length; p++) values[p] = features[p * nBasis + index];
  const cell = cellOf(detail);
  const drawn = draw(values, size, u, v, axis, level, index, cell);
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
    cell: cell.source,
    ...drawn,
  };
  const zero = values.every((value) => Math.abs(value) < 1e-12);
  const caption =
    `function ${index} of ${detail.number} ${detail.symbol} (Hall ${hall}), present from radius ` +
    `${formatRadius(radius)} on · ${AXES[axis]} = ${level} · ${size} × ${size} points` +
    (zero ? " · zero everywhere on this slice: try another" : "");
  setStatus($("plot-status"), caption);
  $("plot-cell").textContent = describeCell(cell, drawn, u, v);
  $("plot-canvas").dataset.state = "drawn";
}

function setBusy(busy) {
  $("plot-canvas").dataset.state = busy ? "loading" : $("plot-canvas").dataset.state;
  $("plot-area").setAttribute("aria-busy", String(busy));
  $("plot-loading").hidden = !busy;
}

// The face drawn, in words: whose cell, its edge lengths and the angle between them.
function describeCell(cell, drawn, u, v) {
  const angle = `${drawn.geometry.angle.toFixed(1)}°`;
  if (cell.structure) {
    const [lu, lv] = [norm(cell.lattice[u]), norm(cell.lattice[v])];
    return (
      `drawn in the encoded structure's cell: ${"abc"[u]} = ${lu.toFixed(3)} Å, ${"abc"[v]} = ${lv.toFixed(3)} Å, ` +
      `angle ${angle}; atoms within ${NEAR_SLICE} Å of the slice: ${drawn.atoms.length}`
    );
  }
  return (
    `drawn in a representative ${cell.source} cell (angle between ${"abc"[u]} and ${"abc"[v]}: ${angle}); ` +
    "encode a structure of this setting to draw its own cell and atoms"
  );
}

// Why a setting has no function at a radius, and where its first one is.
function emptyBasisNote(detail, radius) {
  const sizes = detail.basis_sizes.slice().sort((a, b) => a.radius - b.radius);
  const first = sizes.find((size) => size.n_basis > 0);
  const where = first
    ? `the first radius with one is ${formatRadius(first.radius)} (${first.n_basis} functions)`
    : "no radius in the store has one";
  return (
    `${detail.number} ${detail.symbol} has no invariant function at radius ${formatRadius(radius)}: every ` +
    `orbit of frequencies up to that radius is a systematic absence; ${where}`
  );
}

function colourOf(t) {
  const x = Math.min(1, Math.max(0, t)) * (COLOURS.length - 1);
  const i = Math.min(COLOURS.length - 2, Math.floor(x));
  const f = x - i;
  const a = COLOURS[i];
  const b = COLOURS[i + 1];
  return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
}

// The layout of the canvas, in CSS pixels: the slice is drawn inside the square
// (left, top, side), as large as its shape allows, centred.
const LAYOUT = { left: 58, top: 34, side: 420, barGap: 34, barWidth: 18 };

// Atoms of the encoded structure are drawn when they lie this close to the slice (Angstrom).
const NEAR_SLICE = 1.0;

// Cell shapes drawn when no structure gives one: (a, b, c, alpha, beta, gamma), lengths
// relative, angles in degrees. Only the shape of a face matters for a picture.
const REPRESENTATIVE_CELLS = {
  triclinic: [1.0, 1.1, 1.2, 80, 95, 105],
  monoclinic: [1.0, 1.1, 1.2, 90, 105, 90], // unique axis b; moved for other unique axes
  orthorhombic: [1.0, 1.2, 1.4, 90, 90, 90],
  tetragonal: [1.0, 1.0, 1.4, 90, 90, 90],
  trigonal: [1.0, 1.0, 1.6, 90, 90, 120],
  hexagonal: [1.0, 1.0, 1.6, 90, 90, 120],
  rhombohedral: [1.0, 1.0, 1.0, 75, 75, 75],
  cubic: [1.0, 1.0, 1.0, 90, 90, 90],
};

// A few colours of the usual (CPK/Jmol) scheme; other elements get a grey.
const ELEMENT_COLOURS = {
  H: "#ffffff", C: "#909090", N: "#3050f8", O: "#ff0d0d", F: "#90e050", Na: "#ab5cf2", Mg: "#8aff00",
  Al: "#bfa6a6", Si: "#f0c8a0", P: "#ff8000", S: "#ffff30", Cl: "#1ff01f", K: "#8f40d4", Ca: "#3dff00",
  Ti: "#bfc2c7", Fe: "#e06633", Cu: "#c88033", Zn: "#7d80b0", Ga: "#c28f8f", As: "#bd80e3", Se: "#ffa100",
  Br: "#a62929", Sr: "#00ff00", Ba: "#00c900", Pb: "#575961", Li: "#cc80ff", Mn: "#9c7ac7", Co: "#f090a0",
  Ni: "#50d050", Zr: "#94e0e0", Mo: "#54b5b5", Ag: "#c0c0c0", Sn: "#668080", Te: "#d47a00", I: "#940094",
};

const radians = (degrees) => (degrees * Math.PI) / 180;
const dot = (p, q) => p[0] * q[0] + p[1] * q[1] + p[2] * q[2];
const cross = (p, q) => [p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0]];
const norm = (p) => Math.sqrt(dot(p, p));

// Rows a, b, c of a lattice with these parameters (a along x, b in the xy plane).
function latticeOf([a, b, c, alpha, beta, gamma]) {
  const [ca, cb, cg, sg] = [Math.cos(radians(alpha)), Math.cos(radians(beta)), Math.cos(radians(gamma)), Math.sin(radians(gamma))];
  const cy = (c * (ca - cb * cg)) / sg;
  return [
    [a, 0, 0],
    [b * cg, b * sg, 0],
    [c * cb, cy, Math.sqrt(Math.max(0, c * c - (c * cb) ** 2 - cy ** 2))],
  ];
}

// The unique axis of a monoclinic setting (0, 1, 2), from its choice ("b1", "-c2", ...).
function uniqueAxis(choice) {
  const letter = (choice || "b").replace("-", "")[0];
  return Math.max(0, "abc".indexOf(letter));
}

// The cell a setting is drawn in: the encoded structure's, when it is this setting, else a
// representative cell of its crystal system.
function cellOf(detail) {
  const structure = state.lastStructure;
  if (structure && structure.hall_number === detail.hall_number) {
    return { lattice: structure.standardized.lattice, structure, source: "structure" };
  }
  let system = detail.crystal_system;
  if (detail.choice === "R") system = "rhombohedral";
  let parameters = REPRESENTATIVE_CELLS[system].slice();
  if (system === "monoclinic") {
    const angles = [90, 90, 90];
    angles[uniqueAxis(detail.choice)] = 105;
    parameters = [...parameters.slice(0, 3), ...angles];
  }
  return { lattice: latticeOf(parameters), structure: null, source: system };
}

// The slice `axis = level` of a cell on the canvas: origin O and the images A, B of its two
// cell edges u, v (canvas pixels, y down), scaled to fit the square of the layout; and the
// spacing of the lattice planes along `axis` (Angstrom for a real cell).
function sliceGeometry(lattice, axis, u, v) {
  const edgeU = lattice[u];
  const edgeV = lattice[v];
  const lengthU = norm(edgeU);
  const along = dot(edgeV, edgeU) / lengthU;
  const across = norm(cross(edgeU, edgeV)) / lengthU;
  const corners = [[0, 0], [lengthU, 0], [along, across], [lengthU + along, across]];
  const xs = corners.map((corner) => corner[0]);
  const width = Math.max(...xs) - Math.min(...xs);
  const scale = LAYOUT.side / Math.max(width, across);
  const origin = [
    LAYOUT.left + (LAYOUT.side - width * scale) / 2 - Math.min(...xs) * scale,
    LAYOUT.top + (LAYOUT.side + across * scale) / 2,
  ];
  const volume = Math.abs(dot(lattice[0], cross(lattice[1], lattice[2])));
  return {
    origin,
    a: [lengthU * scale, 0],
    b: [along * scale, -across * scale],
    spacing: volume / norm(cross(edgeU, edgeV)),
    angle: (Math.acos(Math.max(-1, Math.min(1, along / norm(edgeV)))) * 180) / Math.PI,
  };
}

const canvasPoint = (geometry, s, t) => [
  geometry.origin[0] + s * geometry.a[0] + t * geometry.b[0],
  geometry.origin[1] + s * geometry.a[1] + t * geometry.b[1],
];

// Fractional (s, t) of a canvas point: the inverse of canvasPoint.
function slicePoint(geometry, x, y) {
  const [ax, ay] = geometry.a;
  const [bx, by] = geometry.b;
  const [dx, dy] = [x - geometry.origin[0], y - geometry.origin[1]];
  const determinant = ax * by - ay * bx;
  return [(dx * by - dy * bx) / determinant, (ax * dy - ay * dx) / determinant];
}

// Atoms of a standardized structure within NEAR_SLICE of the slice, with their images on the
// cell's edges: [{element, s, t, distance}].
function atomsNearSlice(structure, geometry, axis, u, v, level) {
  const near = [];
  structure.standardized.positions.forEach((position, atom) => {
    let offset = position[axis] - level;
    offset -= Math.round(offset);
    const distance = Math.abs(offset) * geometry.spacing;
    if (distance > NEAR_SLICE) return;
    const s = position[u] - Math.floor(position[u]);
    const t = position[v] - Math.floor(position[v]);
    const element = symbolOf(structure.standardized.numbers[atom]);
    for (const ds of s < 1e-6 ? [0, 1] : [0]) {
      for (const dt of t < 1e-6 ? [0, 1] : [0]) near.push({ atom, element, s: s + ds, t: t + dt, distance });
    }
  });
  return near;
}

// Round tick values for a colour bar over [-bound, bound]: a step of 1, 2, 2.5 or 5 times a
// power of ten, and the bar's end rounded up to a multiple of it.
function colourBarTicks(bound) {
  const rough = bound / 2;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((candidate) => candidate >= rough * (1 - 1e-9));
  const end = Math.ceil(bound / step - 1e-9) * step;
  const ticks = [];
  for (let k = -Math.round(end / step); k <= Math.round(end / step); k++) ticks.push(Number((k * step).toPrecision(12)));
  return { end, ticks };
}

function draw(values, size, u, v, axis, level, index, cell) {
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
  const { end: scale, ticks } = bound > 1e-12 ? colourBarTicks(bound) : { end: 1, ticks: [-1, 0, 1] };

  // The heat map, one pixel per grid point, mapped onto the slice's parallelogram without
  // smoothing: image column i, row j is the point (s, t) = ((i + 1/2)/size, 1 - (j + 1/2)/size).
  const image = new ImageData(size, size);
  values.forEach((value, p) => {
    const [r, g, b] = colourOf(0.5 + value / (2 * scale));
    image.data.set([r, g, b, 255], p * 4);
  });
  const offscreen = document.createElement("canvas");
  offscreen.width = size;
  offscreen.height = size;
  offscreen.getContext("2d").putImageData(image, 0, 0);
  const geometry = sliceGeometry(cell.lattice, axis, u, v);
  const corners = [canvasPoint(geometry, 0, 0), canvasPoint(geometry, 1, 0), canvasPoint(geometry, 1, 1), canvasPoint(geometry, 0, 1)];
  const [ox, oy] = corners[3];
  context.save();
  context.transform(geometry.a[0] / size, geometry.a[1] / size, -geometry.b[0] / size, -geometry.b[1] / size, ox, oy);
  context.imageSmoothingEnabled = false;
  context.drawImage(offscreen, 0, 0);
  context.restore();
  context.strokeStyle = "#5f6878";
  context.lineWidth = 1;
  context.beginPath();
  corners.forEach(([x, y], k) => (k ? context.lineTo(x, y) : context.moveTo(x, y)));
  context.closePath();
  context.stroke();

  context.fillStyle = "#1d2330";
  context.font = "600 13px system-ui, sans-serif";
  context.textAlign = "left";
  context.textBaseline = "alphabetic";
  context.fillText(`basis function ${index}, real, on ${AXES[axis]} = ${level}`, LAYOUT.left, LAYOUT.top - 12);
  if (bound <= 1e-12) {
    context.font = "13px system-ui, sans-serif";
    context.fillStyle = "#5f6878";
    context.textAlign = "center";
    const [cx, cy] = canvasPoint(geometry, 0.5, 0.5);
    context.fillText("zero everywhere on this slice", cx, cy);
  }

  // Ticks at quarters of the two cell edges: fractional coordinates of the conventional cell.
  context.font = "12px system-ui, sans-serif";
  context.fillStyle = "#394150";
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    const [x, y] = canvasPoint(geometry, tick, 0);
    context.beginPath();
    context.moveTo(x, y);
    context.lineTo(x, y + 5);
    context.stroke();
    context.textAlign = "center";
    context.textBaseline = "top";
    context.fillText(String(tick), x, y + 8);
    const [x2, y2] = canvasPoint(geometry, 0, tick);
    context.beginPath();
    context.moveTo(x2, y2);
    context.lineTo(x2 - 5, y2);
    context.stroke();
    context.textAlign = "right";
    context.textBaseline = "middle";
    context.fillText(String(tick), x2 - 8, y2);
  }
  context.font = "italic 13px system-ui, sans-serif";
  context.textAlign = "center";
  context.textBaseline = "top";
  const [bottomX, bottomY] = canvasPoint(geometry, 0.5, 0);
  context.fillText(`${AXES[u]} (fractional)`, bottomX, bottomY + 26);
  // The v label runs along the v edge, outside the face, never upside down.
  const [sideX, sideY] = canvasPoint(geometry, 0, 0.5);
  const edge = Math.hypot(geometry.b[0], geometry.b[1]);
  let normal = [geometry.b[1] / edge, -geometry.b[0] / edge];
  if (normal[0] * geometry.a[0] + normal[1] * geometry.a[1] > 0) normal = [-normal[0], -normal[1]];
  let angle = Math.atan2(geometry.b[1], geometry.b[0]);
  if (angle < -Math.PI / 2 - 1e-9) angle += Math.PI;
  context.save();
  context.translate(sideX + 44 * normal[0], sideY + 44 * normal[1]);
  context.rotate(angle);
  context.textBaseline = "middle";
  context.fillText(`${AXES[v]} (fractional)`, 0, 0);
  context.restore();

  // The atoms of the encoded structure near the slice: filled on it, fainter further off.
  const atoms = cell.structure ? atomsNearSlice(cell.structure, geometry, axis, u, v, level) : [];
  context.textAlign = "left";
  context.textBaseline = "bottom";
  context.font = "600 11px system-ui, sans-serif";
  for (const atom of atoms) {
    const [x, y] = canvasPoint(geometry, atom.s, atom.t);
    context.globalAlpha = 1 - (0.6 * atom.distance) / NEAR_SLICE;
    context.beginPath();
    context.arc(x, y, 7, 0, 2 * Math.PI);
    context.fillStyle = ELEMENT_COLOURS[atom.element] || "#b0b0b0";
    context.fill();
    context.strokeStyle = "#1d2330";
    context.lineWidth = 1.5;
    context.stroke();
    context.fillStyle = "#1d2330";
    context.fillText(atom.element, x + 7, y - 5);
  }
  context.globalAlpha = 1;
  context.lineWidth = 1;
  context.strokeStyle = "#5f6878";

  // The colour bar: -end (blue) to +end (red), white at zero, ticks at round values.
  const barLeft = LAYOUT.left + LAYOUT.side + LAYOUT.barGap;
  const { top, side, barWidth } = LAYOUT;
  const gradient = context.createLinearGradient(0, top + side, 0, top);
  COLOURS.forEach((colour, i) => gradient.addColorStop(i / (COLOURS.length - 1), `rgb(${colour.join(",")})`));
  context.fillStyle = gradient;
  context.fillRect(barLeft, top, barWidth, side);
  context.strokeRect(barLeft - 0.5, top - 0.5, barWidth + 1, side + 1);
  context.font = "12px system-ui, sans-serif";
  context.fillStyle = "#394150";
  context.textAlign = "left";
  context.textBaseline = "middle";
  for (const tick of ticks) {
    const y = top + side / 2 - (tick / scale) * (side / 2);
    context.beginPath();
    context.moveTo(barLeft + barWidth, y);
    context.lineTo(barLeft + barWidth + 4, y);
    context.stroke();
    context.fillText(String(tick), barLeft + barWidth + 7, y);
  }
  context.textAlign = "center";
  context.textBaseline = "alphabetic";
  context.fillText("value", barLeft + barWidth / 2, top - 12);
  return { geometry, corners, atoms, ticks, scale };
}

function readout(event) {
  const plotted = state.lastPlot;
  if (!plotted) return;
  const canvas = $("plot-canvas");
  const box = canvas.getBoundingClientRect();
  const scaleX = 620 / box.width;
  const [s, t] = slicePoint(plotted.geometry, (event.clientX - box.left) * scaleX, (event.clientY - box.top) * scaleX);
  if (!(s >= 0 && t >= 0 && s < 1 && t < 1)) {
    $("plot-readout").textContent = "\u00a0";
    return;
  }
  const column = Math.floor(s * plotted.size);
  const row = plotted.size - 1 - Math.floor(t * plotted.size);
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
  if (answer.n_basis === 0) {
    const detail = state.detail && state.detail.hall_number === answer.hall_number ? state.detail : null;
    entries.push([
      "note",
      detail
        ? emptyBasisNote(detail, answer.radius)
        : `no invariant function at radius ${formatRadius(answer.radius)} (systematic absences): choose a larger radius`,
      "warning",
    ]);
  }
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

  // Every atom and every feature: the table scrolls both ways, its first two columns and its
  // header staying in view.
  const features = answer.encodings.real;
  const head = document.createElement("tr");
  head.append(element("th", "atom", "num sticky"), element("th", "element", "sticky second"), element("th", "Wyckoff"));
  head.append(element("th", "std. atom", "num"), element("th", "orbit", "num"));
  for (let k = 0; k < answer.n_basis; k++) head.append(element("th", `f${k}`, "num"));
  if (answer.n_basis === 0) head.append(element("th", "features"));
  const rows = features.map((row, atom) => {
    const standard = answer.input_to_standardized[atom];
    const tr = document.createElement("tr");
    tr.append(
      element("td", atom, "num sticky"),
      element("td", symbolOf(answer.standardized.numbers[standard]), "sticky second"),
      element("td", answer.wyckoffs[standard]),
      element("td", standard, "num"),
      element("td", answer.equivalent_atoms[standard], "num"),
    );
    for (let k = 0; k < answer.n_basis; k++) tr.append(element("td", formatNumber(row[k]), "num"));
    if (answer.n_basis === 0) tr.append(element("td", "none at this radius", "muted"));
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
