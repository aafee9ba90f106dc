// The catalog page of `featurestore serve`: entries, results (sortable, filterable), report link.
// Plain DOM code, no library and no network beyond this service, so it works offline.
// Store names are written with textContent only: a store's names are data, never markup.
"use strict";

const RESULT_COLUMNS = ["ckpt", "dataset", "setting", "variant", "metric", "test_metric",
  "param_name", "best_param", "n_train", "n_test", "created"];
const NUMERIC = new Set(["test_metric", "best_param", "n_train", "n_test"]);
const state = { results: [], sort: "", desc: false };

// The token travels in the fragment (#token=...), which browsers never send to a server,
// and is kept for this tab only.
function token() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("featurestore-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("featurestore-token");
}

async function getJSON(path) {
  const t = token();
  const r = await fetch(path, { headers: t ? { Authorization: "Bearer " + t } : {} });
  if (r.status === 401) {
    document.getElementById("token-form").hidden = false;
    throw new Error("this store needs a token");
  }
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function size(n) {
  if (n === null || n === undefined || n < 0) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function cell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? value : value.toFixed(4);
  if (typeof value === "object") return JSON.stringify(value);
  return value;
}

// Status, plus the integrity of the stored chunks when they are not checksum-verified.
function statusCell(e) {
  const damaged = e.integrity === "damaged";
  const td = el("td", damaged ? "damaged" : e.status, "status-" + (damaged ? "damaged" : e.status));
  if (e.integrity && e.integrity !== "verified" && !damaged) td.textContent += " (" + e.integrity + ")";
  if (e.reason) td.title = e.reason;
  if (damaged && e.reason) td.append(el("div", e.reason, "reason"));
  return td;
}

function renderEntries(entries) {
  const body = document.querySelector("#entries tbody");
  body.replaceChildren();
  for (const e of entries) {
    const tr = el("tr");
    tr.dataset.entry = e.ckpt + "/" + e.dataset;
    tr.append(el("td", e.ckpt), el("td", e.dataset),
      el("td", Object.entries(e.splits).map(([s, n]) => s + " " + n).join(", ")),
      el("td", e.n, "num"), el("td", e.d, "num"),
      statusCell(e), el("td", size(e.nbytes), "num"));
    const prov = el("td");
    const details = el("details");
    details.append(el("summary", "provenance"),
      el("pre", JSON.stringify(e.provenance || {}, null, 2)));
    prov.append(details);
    tr.append(prov);
    body.append(tr);
  }
  document.getElementById("entries-count").textContent = "(" + entries.length + ")";
}

function fillSelect(id, values, chosen) {
  const select = document.getElementById(id);
  for (const v of [...new Set(values)].sort()) {
    const o = el("option", v);
    o.value = v;
    select.append(o);
  }
  select.value = chosen && values.includes(chosen) ? chosen : "";
}

function filters() {
  return {
    dataset: document.getElementById("filter-dataset").value,
    setting: document.getElementById("filter-setting").value,
    ckpt: document.getElementById("filter-ckpt").value.trim(),
  };
}

function compare(a, b, key) {
  const x = a[key], y = b[key];
  if (x === y) return 0;
  if (x === null || x === undefined) return 1;
  if (y === null || y === undefined) return -1;
  if (NUMERIC.has(key) || (typeof x === "number" && typeof y === "number")) return x - y;
  return String(x).localeCompare(String(y));
}

function renderResults() {
  const f = filters();
  let rows = state.results.filter((r) =>
    (!f.dataset || r.dataset === f.dataset) && (!f.setting || r.setting === f.setting) &&
    (!f.ckpt || String(r.ckpt).includes(f.ckpt)));
  if (state.sort) {
    rows = rows.slice().sort((a, b) => compare(a, b, state.sort) * (state.desc ? -1 : 1));
  }
  const cols = RESULT_COLUMNS.filter((c) => state.results.some((r) => c in r));
  const head = document.querySelector("#results thead tr");
  head.replaceChildren();
  for (const c of cols) {
    const th = el("th", c, NUMERIC.has(c) ? "num" : "");
    th.dataset.column = c;
    if (c === state.sort) th.classList.add(state.desc ? "sorted-desc" : "sorted-asc");
    th.addEventListener("click", () => {
      state.desc = state.sort === c ? !state.desc : false;
      state.sort = c;
      update();
    });
    head.append(th);
  }
  const body = document.querySelector("#results tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = el("tr");
    tr.dataset.resultId = r.result_id;
    for (const c of cols) tr.append(el("td", cell(r[c]), NUMERIC.has(c) ? "num" : ""));
    body.append(tr);
  }
  document.getElementById("results-count").textContent =
    "(" + rows.length + " of " + state.results.length + ")";
}

// Filters and sort live in the address (?dataset=..&setting=..&ckpt=..&sort=..&desc=1).
function update() {
  const f = filters();
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  if (state.sort) q.set("sort", state.sort);
  if (state.desc) q.set("desc", "1");
  const search = q.toString();
  history.replaceState(null, "", location.pathname + (search ? "?" + search : ""));
  renderResults();
}

async function renderReport() {
  const span = document.getElementById("report-link");
  const r = await getJSON("/report");
  span.replaceChildren();
  if (r.url) {
    const a = el("a", "latest report");
    a.href = r.url;
    a.id = "latest-report";
    span.append(a, " (" + new Date(r.modified * 1000).toLocaleString() + ")");
  } else {
    span.textContent = "none yet (run `featurestore report`)";
  }
}

async function main() {
  const status = document.getElementById("status");
  document.getElementById("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("featurestore-token", document.getElementById("token").value);
    location.reload();
  });
  try {
    const [entries, results] = await Promise.all([getJSON("/entries?all=true"),
      getJSON("/results")]);
    renderEntries(entries);
    state.results = results;
    const q = new URLSearchParams(location.search);
    state.sort = RESULT_COLUMNS.includes(q.get("sort")) ? q.get("sort") : "";
    state.desc = q.get("desc") === "1";
    fillSelect("filter-dataset", results.map((r) => r.dataset), q.get("dataset"));
    fillSelect("filter-setting", results.map((r) => r.setting), q.get("setting"));
    document.getElementById("filter-ckpt").value = q.get("ckpt") || "";
    for (const id of ["filter-dataset", "filter-setting", "filter-ckpt"]) {
      document.getElementById(id).addEventListener("input", update);
    }
    update();
    await renderReport();
    status.textContent = entries.length + " entries, " + results.length + " results";
    document.body.dataset.ready = "1";
  } catch (err) {
    status.textContent = "error: " + err.message;
    status.className = "error";
    document.body.dataset.ready = "error";
  }
}

main();
