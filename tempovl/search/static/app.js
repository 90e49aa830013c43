// tempovl moment search page: plain JS, no build step. Talks to /api/health, /api/info, /api/search and
// the video routes (/api/videos/{n}, its thumbnail and captions.vtt).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  token: localStorage.getItem("tempovl-token") || "",
  health: null,
  query: "", // the query whose results are on the page
  current: null, // {moment, group, card}: what the player plays
  armed: false, // stop (or loop) at the current moment's end
  busy: false,
  pending: null, // a search asked for while another ran
};
const player = $("#player");

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

function withToken(url) {
  if (!state.token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(state.token)}`;
}

// fetch + JSON with the page's error handling: a server that cannot be reached, a token it needs, or its
// {"error": ...} message.
async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  let resp;
  try {
    resp = await fetch(path, { ...options, headers });
  } catch (err) {
    throw new Error(
      "Cannot reach the search server: it may be stopped or restarting (is `tempovl serve` running?). " +
        "Try again in a moment.",
    );
  }
  const body = await resp.json().catch(() => ({}));
  if (resp.status === 401) {
    showTokenForm();
    throw new Error("This server needs an API token: enter it above.");
  }
  if (!resp.ok) throw new Error(body.error || `the server answered HTTP ${resp.status}`);
  return body;
}

function showTokenForm() {
  $("#token-form").hidden = false;
  $("#token").focus();
}

// ---- empty state: the index's size, its encoder, example queries ----

async function loadIndexInfo() {
  try {
    state.health = await api("/api/health");
  } catch (err) {
    $("#index-size").textContent = "The index could not be read.";
    setStatus(err.message, true);
    return;
  }
  const h = state.health;
  const hours = h.hours >= 1 ? `${h.hours.toFixed(1)} hours` : `${Math.round(h.hours * 60)} minutes`;
  $("#index-size").textContent =
    `${h.videos.toLocaleString()} videos, ${h.frames.toLocaleString()} frames, ${hours} of video, ` +
    `indexed with the ${h.encoder} encoder.`;
  if (h.token_required && !state.token) {
    showTokenForm();
    return;
  }
  try {
    const info = await api("/api/info");
    const links = info.examples.map((text) => {
      const a = document.createElement("a");
      a.href = `?q=${encodeURIComponent(text)}`;
      a.className = "example";
      a.textContent = text;
      a.addEventListener("click", (e) => {
        e.preventDefault();
        $("#query").value = text;
        runSearch(text, true);
      });
      return a;
    });
    $("#examples").replaceChildren(...links);
    $("#examples-box").hidden = links.length === 0;
  } catch (err) {
    if (!state.query) setStatus(err.message, true);
  }
}

function showEmpty() {
  state.query = "";
  $("#empty").hidden = false;
  $("#nothing").hidden = true;
  $("#results").replaceChildren();
  setStatus("");
}

// ---- search: loading state, the query in the URL, results ----

function setLoading(on) {
  state.busy = on;
  const go = $("#go");
  go.disabled = on;
  go.textContent = on ? "Searching\u2026" : "Search";
  $("#results-box").setAttribute("aria-busy", on ? "true" : "false");
  document.body.classList.toggle("loading", on);
}

async function runSearch(query, push) {
  query = query.trim();
  if (!query) return setStatus("Type something to search for.", true);
  if (state.busy) {
    state.pending = { query, push }; // run once the current search is answered
    return;
  }
  if (push && new URLSearchParams(location.search).get("q") !== query) {
    history.pushState({ q: query }, "", `?q=${encodeURIComponent(query)}`);
  }
  const k = parseInt($("#k").value, 10) || 30;
  setLoading(true);
  setStatus(`Searching for \u201c${query}\u201d\u2026`);
  try {
    const body = await api("/api/search", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query, k }),
    });
    state.query = query;
    render(body);
  } catch (err) {
    $("#results").replaceChildren();
    $("#nothing").hidden = true;
    setStatus(err.message, true);
  } finally {
    setLoading(false);
    document.body.dataset.searches = (parseInt(document.body.dataset.searches, 10) || 0) + 1; // answered
  }
  const next = state.pending;
  state.pending = null;
  if (next) runSearch(next.query, next.push);
}

function render(body) {
  $("#empty").hidden = true;
  const results = $("#results");
  results.replaceChildren(...body.groups.map((g) => groupCard(g, body.threshold)));
  const moments = body.groups.reduce((n, g) => n + 1 + g.more.length, 0);
  const best = Math.max(0, ...body.groups.map((g) => g.relevance));
  const summary =
    `${body.groups.length} videos, ${moments} moments in ${Math.round(body.took_ms)} ms` +
    (body.groups.length ? ` (best match ${best} %)` : "");
  const nothing = body.relevant === false || body.groups.length === 0;
  $("#nothing").hidden = !nothing;
  results.hidden = nothing;
  if (nothing) {
    $("#nothing-why").textContent = body.groups.length
      ? `No video matches \u201c${body.query}\u201d well: the best match is ${best} %, below the ` +
        `${Math.round(100 * body.threshold)} % this index counts as relevant. Try other words, or ` +
        "describe what is said."
      : "The index has no videos to search.";
    $("#show-anyway").hidden = body.groups.length === 0;
    setStatus(`Nothing relevant for \u201c${body.query}\u201d: ${summary}`);
  } else {
    setStatus(summary);
  }
}

function relevanceBar(group, threshold) {
  const box = document.createElement("div");
  box.className = "relevance";
  const limit = threshold == null ? "" : ` Below ${Math.round(100 * threshold)} % counts as not relevant.`;
  box.title =
    `Match ${group.relevance} %: how close the query's meaning is to this video's best-matching ` +
    `moment (the cosine similarity of their embeddings \u00d7 100; 100 = the same meaning).${limit}`;
  const bar = document.createElement("div");
  bar.className = "bar";
  const fill = document.createElement("div");
  fill.className = "fill";
  fill.style.width = `${group.relevance}%`;
  bar.append(fill);
  if (threshold != null) {
    const tick = document.createElement("div");
    tick.className = "tick";
    tick.style.left = `${Math.round(100 * threshold)}%`;
    bar.append(tick);
  }
  const pct = document.createElement("span");
  pct.className = "pct";
  pct.textContent = `${group.relevance} % match`;
  box.append(bar, pct);
  return box;
}

function card(moment, group, threshold, isBest) {
  const el = document.createElement("article");
  el.className = isBest ? "card best" : "card";
  el.tabIndex = 0;
  el.dataset.video = group.video;
  el.dataset.videoIdx = group.video_idx;
  el.dataset.start = moment.start;
  el.dataset.end = moment.end;
  el.dataset.duration = moment.duration;

  const img = document.createElement("img");
  img.className = "thumb";
  img.alt = `frame at ${fmt((moment.start + moment.end) / 2)} of ${group.file}`;
  img.loading = "lazy";
  img.src = withToken(moment.thumbnail);

  const body = document.createElement("div");
  body.className = "card-body";
  const head = document.createElement("div");
  head.className = "card-head";
  const file = document.createElement("span");
  file.className = "file";
  file.textContent = group.file;
  const when = document.createElement("span");
  when.className = "when";
  when.textContent = `${fmt(moment.start)} \u2013 ${fmt(moment.end)}`;
  head.append(file, when);

  const line = document.createElement("p");
  line.className = "line";
  if (moment.line) {
    if (!moment.line.inside) line.classList.add("near");
    const t = document.createElement("span");
    t.className = "t";
    t.textContent = moment.line.inside ? fmt(moment.line.start) : `near ${fmt(moment.line.start)}`;
    const who = moment.line.speaker ? `${moment.line.speaker}: ` : "";
    line.append(t, document.createTextNode(`${who}${moment.line.text}`));
    const inside = moment.subtitles.filter((s) => s.end > moment.start && s.start < moment.end);
    if (inside.length > 1) {
      const more = document.createElement("span");
      more.className = "more-lines";
      more.textContent = ` +${inside.length - 1} more`;
      more.title = inside.map((s) => `${fmt(s.start)} ${s.text}`).join("\n");
      line.append(more);
    }
  } else {
    line.classList.add("near");
    line.textContent = "(no dialogue near this moment)";
  }

  const timeline = document.createElement("div");
  timeline.className = "timeline";
  timeline.title = `moment ${fmt(moment.start)} \u2013 ${fmt(moment.end)} of ${fmt(moment.duration)}`;
  const mark = document.createElement("div");
  mark.className = "moment";
  const dur = Math.max(moment.duration, 1e-6);
  mark.style.left = `${(100 * moment.start) / dur}%`;
  mark.style.width = `${(100 * (moment.end - moment.start)) / dur}%`;
  timeline.append(mark);

  body.append(head, line);
  if (isBest) body.append(relevanceBar(group, threshold));
  body.append(timeline);
  el.append(img, body);
  el.addEventListener("click", () => play(moment, group, el));
  return el;
}

function groupCard(group, threshold) {
  const box = document.createElement("section");
  box.className = "group";
  box.dataset.video = group.video;
  box.append(card(group.best, group, threshold, true));
  if (group.more.length) {
    const more = document.createElement("details");
    more.className = "more";
    const summary = document.createElement("summary");
    const n = group.more.length;
    summary.textContent = `More from this video (${n} moment${n > 1 ? "s" : ""})`;
    more.append(summary, ...group.more.map((m) => card(m, group, threshold, false)));
    box.append(more);
  }
  return box;
}

// ---- the player: captions, sound, stop or loop at the moment's end, the moment on the scrubber ----

function setCaptions(group) {
  player.querySelectorAll("track").forEach((t) => t.remove());
  const track = document.createElement("track");
  track.kind = "captions";
  track.label = "Subtitles";
  track.srclang = "en";
  track.src = withToken(group.captions);
  track.default = true;
  player.append(track);
  track.track.mode = "showing";
}

function startPlayback() {
  player.muted = false;
  const started = player.play();
  if (!started) return;
  started.then(
    () => {
      $("#tap-to-play").hidden = true;
    },
    (err) => {
      // autoplay rules: sound needs a click on the page; offer one (never mute to get round them)
      if (err && err.name === "NotAllowedError") $("#tap-to-play").hidden = false;
    },
  );
}

function play(moment, group, cardEl) {
  document.querySelectorAll(".card.playing").forEach((c) => c.classList.remove("playing"));
  cardEl.classList.add("playing");
  select(cardEl, false);
  state.current = { moment, group, card: cardEl };
  $("#player-box").classList.remove("idle");
  state.armed = true;
  $("#replay").disabled = false;
  $("#now-playing").textContent = `${group.file}  ${fmt(moment.start)} \u2013 ${fmt(moment.end)}`;
  const mark = $("#scrub-moment");
  const dur = Math.max(moment.duration, 1e-6);
  mark.style.left = `${(100 * moment.start) / dur}%`;
  mark.style.width = `${(100 * (moment.end - moment.start)) / dur}%`;
  mark.hidden = false;
  const seek = () => {
    player.currentTime = moment.start;
    startPlayback();
  };
  const src = new URL(withToken(group.url), location.href).href;
  if (player.src !== src) {
    player.src = src;
    setCaptions(group);
    player.addEventListener("loadedmetadata", seek, { once: true });
    player.load();
  } else if (player.readyState >= 1) {
    seek();
  } else {
    player.addEventListener("loadedmetadata", seek, { once: true });
  }
}

function replay() {
  const c = state.current;
  if (!c) return;
  state.armed = true;
  player.currentTime = c.moment.start;
  startPlayback();
}

function checkMomentEnd() {
  const c = state.current;
  if (!c || !state.armed || player.paused) return;
  if (player.currentTime >= c.moment.end - 0.05) {
    if ($("#loop").checked) {
      player.currentTime = c.moment.start;
    } else {
      player.pause();
      state.armed = false; // pressing play again goes on past the moment
    }
  }
}

function updateScrubber() {
  const c = state.current;
  const dur = Number.isFinite(player.duration) && player.duration > 0 ? player.duration : c && c.moment.duration;
  if (!dur) return;
  $("#scrub-head").style.left = `${(100 * player.currentTime) / dur}%`;
}

function tick() {
  checkMomentEnd();
  updateScrubber();
  if (!player.paused) requestAnimationFrame(tick);
}

player.addEventListener("play", () => requestAnimationFrame(tick));
player.addEventListener("timeupdate", () => {
  checkMomentEnd();
  updateScrubber();
});
player.addEventListener("seeking", () => {
  const c = state.current;
  // a seek outside the moment (the user's, on the native controls) ends the stop-at-end rule
  if (c && (player.currentTime < c.moment.start - 0.3 || player.currentTime > c.moment.end)) state.armed = false;
  updateScrubber();
});
$("#scrubber").addEventListener("click", (e) => {
  const c = state.current;
  if (!c) return;
  const box = e.currentTarget.getBoundingClientRect();
  const dur = Number.isFinite(player.duration) ? player.duration : c.moment.duration;
  player.currentTime = Math.max(0, Math.min(1, (e.clientX - box.left) / box.width)) * dur;
});
$("#replay").addEventListener("click", replay);
$("#tap-to-play").addEventListener("click", () => {
  const c = state.current;
  if (c && (player.currentTime < c.moment.start || player.currentTime >= c.moment.end)) replay();
  else startPlayback();
});

// ---- keyboard: / focuses the search, arrows move between results, Enter plays ----

function visibleCards() {
  if ($("#results").hidden) return [];
  return [...document.querySelectorAll("#results .card")].filter((c) => c.getClientRects().length > 0);
}

function select(cardEl, focus = true) {
  document.querySelectorAll(".card.selected").forEach((c) => c.classList.remove("selected"));
  cardEl.classList.add("selected");
  if (focus) {
    cardEl.focus();
    cardEl.scrollIntoView({ block: "nearest" });
  }
}

document.addEventListener("keydown", (e) => {
  const typing = e.target.matches("input, textarea, select");
  if (e.key === "/" && !typing) {
    e.preventDefault();
    $("#query").focus();
    $("#query").select();
    return;
  }
  if ((e.key === "ArrowDown" || e.key === "ArrowUp") && (!typing || e.target.id === "query")) {
    const cards = visibleCards();
    if (!cards.length) return;
    const at = cards.indexOf(document.activeElement);
    let next;
    if (at < 0) next = e.key === "ArrowDown" ? 0 : -1;
    else next = at + (e.key === "ArrowDown" ? 1 : -1);
    if (next < 0 || next >= cards.length) return;
    e.preventDefault();
    select(cards[next]);
    return;
  }
  if (e.key === "Enter" && e.target.classList && e.target.classList.contains("card")) {
    e.preventDefault();
    e.target.click();
  }
});

// ---- forms, history, start ----

$("#search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  runSearch($("#query").value, true);
});

$("#token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("#token").value;
  localStorage.setItem("tempovl-token", state.token);
  $("#token-form").hidden = true;
  setStatus("");
  loadIndexInfo();
  const q = $("#query").value.trim();
  if (q) runSearch(q, true);
});

$("#show-anyway").addEventListener("click", () => {
  $("#nothing").hidden = true;
  $("#results").hidden = false;
});

function searchFromUrl() {
  const q = new URLSearchParams(location.search).get("q") || "";
  $("#query").value = q;
  if (q) runSearch(q, false);
  else showEmpty();
}

window.addEventListener("popstate", searchFromUrl);
loadIndexInfo();
searchFromUrl();
