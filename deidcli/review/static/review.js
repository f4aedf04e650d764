// The review page: step through the anonymized video, see what was hidden, correct it, sign it off.
// Every change is posted to the server at once, which saves it to the corrections file.
"use strict";

const COLOURS = { face: "#ff5252", body: "#40c4ff", plate: "#ffd740", vehicle: "#69f0ae", area: "#e040fb" };
const $ = (id) => document.getElementById(id);
let state = null;
let frame = 0;
let regions = [];
let drawing = false;
let drag = null;
let wanted = 0; // the frame asked for last: a slow answer for an older one is dropped

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const r = await fetch(path, options);
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function say(text, bad) {
  $("message").textContent = text;
  $("message").style.color = bad ? "#ff6b6b" : "#9ccc65";
}

async function refresh() {
  state = await api("/api/state");
  const v = state.video;
  $("name").textContent = `${v.anonymized} (from ${v.original})`;
  $("total").textContent = `of ${v.frames - 1}`;
  $("frameno").max = v.frames - 1;
  const a = state.approval;
  $("status").textContent = `${state.edit_count} correction(s)` +
    (a ? ` · approved by ${a.approved_by} at ${a.approved_at}` : " · not approved");
  document.body.dataset.approved = a ? "yes" : "no";
  document.body.dataset.edits = state.edit_count;
  $("stale").hidden = !state.stale;
  $("rerender").textContent = state.rerender;
  $("approve").disabled = state.stale;
  drawFlags();
  drawTracks();
  drawTimeline();
  await show(frame);
}

async function show(n) {
  const v = state.video;
  n = Math.max(0, Math.min(v.frames - 1, n));
  frame = n;
  wanted = n;
  $("frameno").value = n;
  $("time").textContent = v.fps ? `${(n / v.fps).toFixed(2)} s` : "";
  const img = $("frame");
  const loaded = new Promise((ok) => { img.onload = ok; img.onerror = ok; });
  img.src = `/frame.jpg?video=anonymized&n=${n}&v=${state.edit_count}`;
  if (!$("origstage").hidden) $("orig").src = `/frame.jpg?video=original&n=${n}`;
  const [r] = await Promise.all([api(`/api/regions?frame=${n}`), loaded]);
  if (wanted !== n) return;
  regions = r;
  drawOverlay();
  drawTimeline();
  document.body.dataset.frame = n; // the frame on screen, picture and outlines both (tests wait on it)
}

function scale() {
  const c = $("overlay");
  return c.width / state.video.width;
}

function drawOverlay() {
  const c = $("overlay");
  const img = $("frame");
  c.width = img.clientWidth;
  c.height = img.clientHeight;
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const s = scale();
  if ($("outlines").checked) {
    for (const r of regions) {
      const [x1, y1, x2, y2] = r.box;
      g.strokeStyle = r.removed ? "#9e9e9e" : COLOURS[r.target] || "#fff";
      g.setLineDash(r.removed ? [4, 4] : []);
      g.lineWidth = 2;
      g.strokeRect(x1 * s, y1 * s, (x2 - x1) * s, (y2 - y1) * s);
      g.fillStyle = g.strokeStyle;
      g.fillText(`${r.track_id}${r.removed ? " (out)" : ""}`, x1 * s + 2, Math.max(10, y1 * s - 3));
    }
  }
  if (drag) {
    g.setLineDash([]);
    g.strokeStyle = "#fff";
    g.strokeRect(drag.x0, drag.y0, drag.x1 - drag.x0, drag.y1 - drag.y0);
  }
}

function drawTimeline() {
  const c = $("timeline");
  const tracks = state.tracks.filter((t) => t.frames > 0);
  c.width = c.clientWidth;
  const lane = 6;
  c.height = Math.max(40, 12 + lane * tracks.length);
  const g = c.getContext("2d");
  const n = state.video.frames;
  const x = (f) => (f / Math.max(1, n - 1)) * (c.width - 1);
  g.clearRect(0, 0, c.width, c.height);
  for (const f of state.flags) {
    g.fillStyle = f.kind === "leak" ? "rgba(255,82,82,.6)" : "rgba(255,171,64,.35)";
    g.fillRect(x(f.frame), 0, Math.max(2, x(f.last ?? f.frame) - x(f.frame)), c.height);
  }
  tracks.forEach((t, i) => {
    g.globalAlpha = t.state === "deleted" || t.state === "kept" ? 0.3 : 1;
    g.fillStyle = COLOURS[t.target] || "#fff";
    g.fillRect(x(t.first), 8 + i * lane, Math.max(2, x(t.last) - x(t.first)), lane - 2);
  });
  g.globalAlpha = 1;
  g.fillStyle = "#fff";
  g.fillRect(x(frame) - 1, 0, 2, c.height);
}

function drawFlags() {
  const ol = $("flags");
  ol.replaceChildren();
  for (const f of state.flags.slice(0, 200)) {
    const li = document.createElement("li");
    li.className = f.kind;
    li.textContent = `frame ${f.frame}: ${f.why}`;
    li.onclick = () => show(f.frame);
    ol.append(li);
  }
  if (!state.flags.length) ol.innerHTML = "<li>nothing flagged</li>";
}

function button(label, title, action) {
  const b = document.createElement("button");
  b.textContent = label;
  b.title = title;
  b.onclick = (e) => { e.stopPropagation(); action(); };
  return b;
}

async function edit(body, done) {
  try {
    await api("/api/edit", body);
    say(done);
    await refresh();
  } catch (e) { say(e.message, true); }
}

function drawTracks() {
  const body = $("tracks").tBodies[0];
  body.replaceChildren();
  for (const t of state.tracks) {
    const tr = document.createElement("tr");
    tr.className = t.state;
    tr.dataset.track = t.track_id;
    const thumbs = document.createElement("td");
    for (const k of [0, 1, 2]) {
      if (!t.frames) break;
      const img = document.createElement("img");
      img.loading = "lazy";
      img.src = `/thumb.jpg?track=${t.track_id}&k=${k}&v=${state.edit_count}`; // a trim changes them
      img.title = `frame ${t.thumbs[k]}`;
      img.onclick = () => show(t.thumbs[k]);
      thumbs.append(img);
    }
    const who = document.createElement("td");
    who.innerHTML = `<b>${t.track_id}</b> ${t.target}<br>${t.method} · ${t.state}`;
    const span = document.createElement("td");
    span.textContent = !t.frames ? "none" : t.state === "added"
      ? `${t.first}–${t.last}: ${t.frames} carried from the box drawn`
      : `${t.first}–${t.last}: ${t.detected} found, ${t.filled} filled`;
    const acts = document.createElement("td");
    const id = t.track_id;
    if (t.state !== "untracked") acts.append(
      button("delete", "Not a face (or plate...): show it as it is", () => edit({ op: "delete", track_id: id }, `track ${id} deleted`)),
      button("keep", "A person who consented: leave them visible", () => edit({ op: "keep", track_id: id }, `track ${id} kept visible`)),
      button("start here", "The track starts at this frame", () => edit({ op: "trim", track_id: id, first: frame, last: t.last ?? frame }, `track ${id} starts at ${frame}`)),
      button("end here", "The track ends at this frame", () => edit({ op: "trim", track_id: id, first: t.first ?? 0, last: frame }, `track ${id} ends at ${frame}`)),
    );
    if (t.state !== "untracked") {
      const pick = document.createElement("select");
      pick.title = "This track's method";
      for (const m of state.methods[t.target] || []) pick.add(new Option(m, m, false, m === t.method));
      pick.onclick = (e) => e.stopPropagation();
      pick.onchange = () => edit({ op: "method", track_id: id, method: pick.value }, `track ${id}: ${pick.value}`);
      acts.append(pick);
    }
    tr.onclick = () => t.frames && show(t.first);
    tr.append(thumbs, who, span, acts);
    body.append(tr);
  }
}

function point(e) {
  const r = $("overlay").getBoundingClientRect();
  return [e.clientX - r.left, e.clientY - r.top];
}

function setDrawing(on) {
  drawing = on;
  $("draw").classList.toggle("on", on);
  $("overlay").classList.toggle("drawing", on);
  if (on) say("drag a box round what was missed");
}

$("overlay").addEventListener("mousedown", (e) => {
  if (!drawing) return;
  const [x, y] = point(e);
  drag = { x0: x, y0: y, x1: x, y1: y };
});
$("overlay").addEventListener("mousemove", (e) => {
  if (!drag) return;
  [drag.x1, drag.y1] = point(e);
  drawOverlay();
});
$("overlay").addEventListener("mouseup", async () => {
  if (!drag) return;
  const s = scale();
  const box = [Math.min(drag.x0, drag.x1) / s, Math.min(drag.y0, drag.y1) / s,
    Math.max(drag.x0, drag.x1) / s, Math.max(drag.y0, drag.y1) / s];
  drag = null;
  setDrawing(false);
  say("carrying the box through the video…");
  try {
    const t = await api("/api/add", { frame, box, target: $("target").value });
    say(`track ${t.track_id} added: frames ${t.first}–${t.last}`);
    await refresh();
  } catch (e) { say(e.message, true); drawOverlay(); }
});

$("draw").onclick = () => setDrawing(!drawing);
$("undo").onclick = async () => {
  try {
    const r = await api("/api/undo", {});
    say(r.undone ? `undone: ${r.undone.op} of track ${r.undone.track_id}` : "nothing to undo");
    await refresh();
  } catch (e) { say(e.message, true); }
};
$("approve").onclick = async () => {
  try {
    const r = await api("/api/approve", {});
    say(`approved by ${r.approved_by} (sha256 ${r.sha256.slice(0, 12)}…)`);
    await refresh();
  } catch (e) { say(e.message, true); }
};
$("prev").onclick = () => show(frame - 1);
$("next").onclick = () => show(frame + 1);
$("back10").onclick = () => show(frame - 10);
$("fwd10").onclick = () => show(frame + 10);
$("frameno").onchange = () => show(parseInt($("frameno").value, 10) || 0);
$("outlines").onchange = drawOverlay;
$("showorig").onchange = () => { $("origstage").hidden = !$("showorig").checked; show(frame); };
$("timeline").onclick = (e) => {
  const r = $("timeline").getBoundingClientRect();
  show(Math.round(((e.clientX - r.left) / r.width) * (state.video.frames - 1)));
};
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  const step = e.shiftKey ? 10 : 1;
  if (e.key === "ArrowRight") show(frame + step);
  else if (e.key === "ArrowLeft") show(frame - step);
  else if (e.key === "Home") show(0);
  else if (e.key === "End") show(state.video.frames - 1);
  else if (e.key === "o" || e.key === "O") { $("outlines").checked = !$("outlines").checked; drawOverlay(); }
  else if (e.key === "d" || e.key === "D") setDrawing(!drawing);
  else if (e.key === "Escape") { drag = null; setDrawing(false); drawOverlay(); }
  else return;
  e.preventDefault();
});
window.addEventListener("resize", () => { drawOverlay(); drawTimeline(); });
refresh().catch((e) => say(e.message, true));
