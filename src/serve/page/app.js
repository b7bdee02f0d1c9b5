// imgsim's page: search, browse, duplicates and status, over the JSON routes of
// `imgsim serve`. No framework, no build step: this file is compiled into the binary.
"use strict";

const $ = (sel) => document.querySelector(sel);
const session = document.querySelector('meta[name="imgsim-session"]').content;
const PAGE = 60;

const state = {
  models: [],
  model: "",
  mode: "browse", // browse | row | upload | words
  id: null,
  file: null,
  offset: 0,
  more: false,
  loading: false,
  items: [],
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

function toast(message, ms = 5000) {
  const t = $("#toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), ms);
}

// Every request: errors become a message; changes carry the session token.
async function api(path, { method = "GET", body, json } = {}) {
  const headers = {};
  if (method !== "GET") headers["x-imgsim-token"] = session;
  if (json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(json);
  }
  const response = await fetch(path, { method, body, headers, credentials: "same-origin" });
  const text = await response.text();
  let data = null;
  try { data = JSON.parse(text); } catch (_) { /* a plain-text refusal */ }
  if (!response.ok) throw new Error((data && data.error) || text || response.statusText);
  return data;
}

function params(extra = {}) {
  const p = new URLSearchParams({ model: state.model, ...extra });
  const where = $("#where").value.trim();
  if (where) p.set("where", where);
  return p;
}

function thumbUrl(item, size = 320) {
  return `/api/thumb?${new URLSearchParams({ model: state.model, id: item.id, size, v: item.v })}`;
}

function human(bytes) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (bytes >= 1000 && i < units.length - 1) { bytes /= 1000; i++; }
  return `${bytes.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// ---- search and results ----

async function runSearch(reset = true) {
  if (state.loading) return;
  state.loading = true;
  if (reset) {
    state.offset = 0;
    state.items = [];
    $("#results").replaceChildren();
  }
  const started = performance.now();
  try {
    const p = params({ offset: state.offset, limit: PAGE });
    let data;
    if (state.mode === "upload" && state.file) {
      data = await api(`/api/similar?${p}`, { method: "POST", body: state.file });
    } else if (state.mode === "row" && state.id) {
      p.set("id", state.id);
      data = await api(`/api/similar?${p}`);
    } else if (state.mode === "words" && $("#words").value.trim()) {
      p.set("q", $("#words").value.trim());
      data = await api(`/api/search?${p}`);
    } else {
      data = await api(`/api/rows?${p}`);
    }
    state.more = data.more;
    state.offset += data.items.length;
    state.items.push(...data.items);
    showItems(data.items);
    const took = Math.round(performance.now() - started);
    const what = { browse: "newest first", row: "most like the chosen image", upload: "most like the dropped image", words: "nearest the words" }[state.mode];
    $("#summary").textContent = `${state.items.length}${state.more ? "+" : ""} of ${data.indexed} indexed images, ${what} (${took} ms)`;
    $("#summary").dataset.ms = took;
    showChips();
  } catch (e) {
    $("#summary").textContent = "";
    toast(e.message);
  } finally {
    state.loading = false;
    document.body.dataset.ready = "1";
  }
}

function showItems(items) {
  const grid = $("#results");
  for (const item of items) {
    const score = item.score === null ? null : el("span", { class: "score", text: item.score.toFixed(3) });
    grid.append(el("div", { class: "card", "data-id": item.id, "data-name": item.name, onclick: () => openLarge(item) },
      el("img", { src: thumbUrl(item), alt: item.name, loading: "lazy" }),
      el("div", { class: "info" }, score, el("div", { class: "name", text: item.name, title: item.path }), el("div", { class: "dir", text: item.dir }))));
  }
}

// Quick filters from what is on screen: folders, extensions, tags.
function showChips() {
  const counts = new Map();
  const add = (term) => counts.set(term, (counts.get(term) || 0) + 1);
  const plain = /^[\w.-]+$/;
  for (const item of state.items) {
    const folder = item.dir.split(/[\\/]/).pop();
    if (plain.test(folder)) add(`dir:${folder}`);
    const dot = item.name.lastIndexOf(".");
    if (dot > 0) add(`ext:${item.name.slice(dot + 1).toLowerCase()}`);
    for (const tag of item.tags) if (plain.test(tag)) add(`tag:${tag}`);
  }
  const chips = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
  $("#chips").replaceChildren(...chips.map(([term, n]) => el("button", {
    class: "chip", type: "button", "data-term": term, text: `${term} (${n})`,
    onclick: () => {
      const where = $("#where").value.trim();
      $("#where").value = where ? `${where} AND ${term}` : term;
      runSearch();
    },
  })));
}

function setQueryImage(file) {
  state.file = file;
  state.mode = "upload";
  const img = $("#query-image");
  img.src = URL.createObjectURL(file);
  img.hidden = false;
  $("#drop-label").hidden = true;
  runSearch();
}

// ---- the large view ----

// The photo's own wall clock, with its zone where the file says it; a file time says so.
function takenText(taken) {
  const wall = new Date(taken.local_ns / 1e6).toISOString().replace("T", " ").slice(0, 19);
  if (taken.source === "file") return `${wall} (file time)`;
  if (taken.offset_min == null) return wall;
  const m = Math.abs(taken.offset_min);
  const sign = taken.offset_min >= 0 ? "+" : "-";
  return `${wall} (UTC${sign}${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")})`;
}

function openLarge(item) {
  const dialog = $("#large");
  $("#large-image").src = thumbUrl(item, 1600);
  $("#large-name").textContent = item.name;
  $("#large-path").textContent = item.path;
  const m = item.meta || {};
  const facts = [
    ["Size", `${item.width} × ${item.height}, ${human(item.size)}`],
    ["Format", m.format],
    ["Taken", m.taken ? takenText(m.taken) : null],
    ["Camera", [m.make, m.model].filter(Boolean).join(" ") || null],
    ["Lens", m.lens],
    ["Exposure", [m.focal_mm && `${m.focal_mm} mm`, m.exposure_s && (m.exposure_s < 1 ? `1/${Math.round(1 / m.exposure_s)} s` : `${m.exposure_s} s`), m.iso && `ISO ${m.iso}`].filter(Boolean).join(", ") || null],
    ["Place", m.gps ? `${m.gps.lat.toFixed(5)}, ${m.gps.lon.toFixed(5)}` : null],
    ["Tags", item.tags.join(", ") || null],
    ["Score", item.score === null ? null : item.score.toFixed(4)],
  ].filter(([, v]) => v);
  $("#large-meta").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  $("#large-similar").onclick = () => {
    dialog.close();
    state.mode = "row";
    state.id = item.id;
    state.file = null;
    $("#query-image").src = thumbUrl(item);
    $("#query-image").hidden = false;
    $("#drop-label").hidden = true;
    runSearch();
  };
  $("#large-reveal").onclick = async () => {
    try {
      const r = await api(`/api/reveal?${new URLSearchParams({ model: state.model, id: item.id, open: true })}`, { method: "POST" });
      toast(r.opened ? `opened ${r.folder}` : `in ${r.folder}`);
    } catch (e) { toast(e.message); }
  };
  dialog.showModal();
}

// ---- duplicates ----

async function loadDupes() {
  const p = new URLSearchParams({ model: state.model });
  const t = $("#threshold").value;
  if (t) p.set("threshold", t);
  $("#dupes-summary").textContent = "looking…";
  try {
    const data = await api(`/api/dupes?${p}`);
    $("#threshold").value = data.threshold;
    const n = data.groups.length;
    $("#dupes-summary").textContent = `${n} group${n === 1 ? "" : "s"} among ${data.images} images at cosine ≥ ${data.threshold}`;
    $("#groups").replaceChildren(...data.groups.map((g, i) => groupView(g, i, data.threshold)));
  } catch (e) {
    $("#dupes-summary").textContent = e.message;
  }
}

function groupView(group, index, threshold) {
  let keeper = group.members.find((m) => m.keep) || group.members[0];
  const thumb = (m) => m.item ? thumbUrl(m.item) : "";
  const diff = el("div", { class: "diff", title: "difference from the keeper: black where they agree (click another image to compare it)" },
    el("img", { src: thumb(keeper), alt: "" }), el("img", { src: thumb(group.members.find((m) => !m.keep) || keeper), alt: "" }),
    el("span", { class: "diff-label", text: "difference" }));
  const cards = new Map();
  // "Keep this": another member becomes the one kept (the suggestion is only a default).
  const choose = (m) => {
    keeper = m;
    for (const [id, card] of cards) {
      const kept = id === m.id;
      card.classList.toggle("keep", kept);
      card.querySelector(".badge").hidden = !kept;
      card.querySelector(".choose").hidden = kept || !card.dataset.indexed;
    }
    diff.children[0].src = thumb(m);
  };
  const members = group.members.map((m) => {
    const card = el("div", {
      class: `member${m.keep ? " keep" : ""}`, "data-id": m.id, "data-indexed": m.indexed ? "1" : "",
      onclick: () => { if (m.id !== keeper.id && m.item) diff.children[1].src = thumb(m); },
    },
    m.item ? el("img", { src: thumb(m), alt: m.path }) : el("div", { text: "(not indexed)" }),
    el("div", { class: "badge", text: "keep" }),
    el("div", { class: "path", text: m.path }),
    el("div", { class: "facts", text: `${m.width} × ${m.height}, ${human(m.size)}${m.score != null ? `, cosine ${m.score.toFixed(3)}` : ""}` }),
    group.removable ? el("button", { type: "button", class: "choose", text: "Keep this one",
      onclick: (e) => { e.stopPropagation(); choose(m); } }) : null);
    card.querySelector(".badge").hidden = !m.keep;
    const chooser = card.querySelector(".choose");
    if (chooser) chooser.hidden = m.keep || !m.indexed;
    cards.set(m.id, card);
    return card;
  });
  const ids = group.members.filter((m) => m.indexed).map((m) => m.id);
  const box = el("div", { class: "group", "data-group": index });
  const act = async (path, question) => {
    if (question && !confirm(question())) return;
    try {
      const r = await api(path, { method: "POST", json: { model: state.model, ids, threshold: Number(threshold), keep: keeper.id } });
      box.classList.add("done");
      box.querySelectorAll("button").forEach((b) => (b.disabled = true));
      if (r.steps) {
        const moved = r.steps.filter((s) => !s.skipped).length;
        toast(`${moved} moved to the trash; "Undo the last change" puts them back`);
      } else {
        toast("these images will not be grouped again");
      }
    } catch (e) { toast(e.message); }
  };
  const others = group.members.length - 1;
  const actions = el("div", { class: "actions" },
    group.removable ? el("button", { type: "button", class: "trash", text: others === 1 ? "Move the other to the trash" : `Move the ${others} others to the trash`,
      onclick: () => act("/api/dupes/trash", () => `Move ${others} file(s) to the trash and keep ${keeper.path}?`) }) : null,
    el("button", { type: "button", class: "ignore", text: "Not duplicates", onclick: () => act("/api/dupes/ignore") }));
  box.append(el("h3", { text: `${group.label}: ${group.members.length} images` }),
    el("div", { class: "members" }, ...members, diff), actions);
  return box;
}

// ---- status ----

async function loadStatus() {
  try {
    const s = await api("/api/status");
    const rows = [["Database", s.db]];
    for (const m of s.models) rows.push([m.name, `${m.rows} images${m.words ? ", words" : ""}`]);
    rows.push(["Daemon", s.daemon ? `${s.daemon.phase}, queue ${s.daemon.queue}` : "not running"]);
    if (s.daemon && s.daemon.last_error) rows.push(["Last error", s.daemon.last_error.message || JSON.stringify(s.daemon.last_error)]);
    rows.push(["Thumbnails", human(s.thumbs_bytes)]);
    $("#status").replaceChildren(el("dl", {}, ...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])));
    return s;
  } catch (e) {
    toast(e.message);
    return null;
  }
}

// ---- wiring ----

function showView(name) {
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.view === name);
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  if (name === "dupes" && !$("#groups").childElementCount) loadDupes();
  if (name === "status") loadStatus();
}

function modelChanged() {
  state.model = $("#model").value;
  const info = state.models.find((m) => m.name === state.model) || {};
  $("#words").hidden = !info.words;
  $("#threshold").value = info.dupes_threshold ?? "";
  $("#groups").replaceChildren();
  if (state.mode === "row") state.mode = "browse";
  runSearch();
}

async function start() {
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showView(b.dataset.view));
  $("#model").addEventListener("change", modelChanged);
  $("#query").addEventListener("submit", (e) => {
    e.preventDefault();
    if ($("#words").value.trim() && !$("#words").hidden) state.mode = "words";
    runSearch();
  });
  $("#clear").addEventListener("click", () => {
    state.mode = "browse"; state.file = null; state.id = null;
    $("#words").value = ""; $("#where").value = "";
    $("#query-image").hidden = true; $("#drop-label").hidden = false;
    runSearch();
  });
  $("#file").addEventListener("change", (e) => e.target.files[0] && setQueryImage(e.target.files[0]));
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files[0]) setQueryImage(e.dataTransfer.files[0]);
  });
  $("#large-close").addEventListener("click", () => $("#large").close());
  $("#dupes-form").addEventListener("submit", (e) => { e.preventDefault(); loadDupes(); });
  $("#undo").addEventListener("click", async () => {
    try {
      const r = await api("/api/dupes/undo", { method: "POST" });
      toast(r.journal ? `${r.steps.filter((s) => !s.skipped).length} put back` : "nothing to undo");
      loadDupes();
    } catch (e) { toast(e.message); }
  });
  $("#thumbs-clear").addEventListener("click", async () => {
    try { const r = await api("/api/thumbs/clear", { method: "POST" }); toast(`${human(r.freed)} freed`); loadStatus(); } catch (e) { toast(e.message); }
  });
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && state.more && !state.loading) runSearch(false);
  }).observe($("#more"));

  const s = await loadStatus();
  if (!s) return;
  state.models = s.models;
  $("#model").replaceChildren(...s.models.map((m) => el("option", { value: m.name, text: `${m.name} (${m.rows})` })));
  if (!s.models.length) {
    $("#summary").textContent = "Nothing is indexed yet: run `imgsim index DIR` first.";
    document.body.dataset.ready = "1";
    return;
  }
  modelChanged();
}

start();
