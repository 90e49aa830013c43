// tempovl moment search page: plain JS, no build step, talks to /api/search and /api/videos/{n}.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { token: localStorage.getItem("tempovl-token") || "" };

function fmt(t) {
  const m = Math.floor(t / 60);
  const s = (t - 60 * m).toFixed(1).padStart(4, "0");
  return `${m}:${s}`;
}

function setStatus(text, isError = false) {
  const el = $("#status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function videoUrl(hit) {
  return state.token ? `${hit.url}?access_token=${encodeURIComponent(state.token)}` : hit.url;
}

async function search(query, k) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const resp = await fetch("/api/search", { method: "POST", headers, body: JSON.stringify({ query, k }) });
  const body = await resp.json().catch(() => ({}));
  if (resp.status === 401) {
    $("#token-form").hidden = false;
    throw new Error("this server needs an API token: enter it above");
  }
  if (!resp.ok) throw new Error(body.error || `search failed (HTTP ${resp.status})`);
  return body;
}

// Play `hit` in the shared player from the moment's start: seek once the metadata is known.
function play(hit, card) {
  const player = $("#player");
  document.querySelectorAll(".card.playing").forEach((c) => c.classList.remove("playing"));
  card.classList.add("playing");
  $("#now-playing").textContent = `${hit.video}  ${fmt(hit.start)} - ${fmt(hit.end)}`;
  const seek = () => {
    player.currentTime = hit.start;
    player.play().catch(() => {});
  };
  const src = new URL(videoUrl(hit), location.href).href;
  if (player.src !== src) {
    player.src = src;
    player.addEventListener("loadedmetadata", seek, { once: true });
    player.load();
  } else if (player.readyState >= 1) {
    seek();
  } else {
    player.addEventListener("loadedmetadata", seek, { once: true });
  }
}

function card(hit) {
  const el = document.createElement("article");
  el.className = "card";
  el.tabIndex = 0;
  el.dataset.video = hit.video;
  el.dataset.start = hit.start;
  el.dataset.end = hit.end;

  const head = document.createElement("div");
  head.className = "card-head";
  const title = document.createElement("span");
  title.className = "video";
  title.textContent = `${hit.rank}. ${hit.video}  ${fmt(hit.start)} - ${fmt(hit.end)}`;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = hit.score.toFixed(3);
  head.append(title, score);

  const timeline = document.createElement("div");
  timeline.className = "timeline";
  timeline.title = `moment ${fmt(hit.start)} - ${fmt(hit.end)} of ${fmt(hit.duration)}`;
  const moment = document.createElement("div");
  moment.className = "moment";
  const dur = Math.max(hit.duration, 1e-6);
  moment.style.left = `${(100 * hit.start) / dur}%`;
  moment.style.width = `${(100 * (hit.end - hit.start)) / dur}%`;
  timeline.append(moment);

  const subs = document.createElement("ul");
  subs.className = "subs";
  for (const s of hit.subtitles) {
    const li = document.createElement("li");
    if (s.end > hit.start && s.start < hit.end) li.className = "inside";
    const t = document.createElement("span");
    t.className = "t";
    t.textContent = fmt(s.start);
    li.append(t, document.createTextNode(s.speaker ? `${s.speaker}: ${s.text}` : s.text));
    subs.append(li);
  }
  el.append(head, timeline, subs);
  el.addEventListener("click", () => play(hit, el));
  el.addEventListener("keydown", (e) => { if (e.key === "Enter") play(hit, el); });
  return el;
}

$("#search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const query = $("#query").value.trim();
  const k = parseInt($("#k").value, 10) || 10;
  if (!query) return setStatus("type something to search for", true);
  setStatus("searching...");
  const results = $("#results");
  try {
    const body = await search(query, k);
    results.replaceChildren(...body.hits.map(card));
    setStatus(`${body.hits.length} moments in ${body.took_ms} ms`);
  } catch (err) {
    results.replaceChildren();
    setStatus(err.message, true);
  }
});

$("#token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("#token").value;
  localStorage.setItem("tempovl-token", state.token);
  $("#token-form").hidden = true;
  $("#search-form").requestSubmit();
});
