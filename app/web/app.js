// The transcription page: upload (with its progress), the job's progress from its events,
// then a player with the transcript beside it. Plain browser JavaScript: no build step, no
// CDN, nothing loaded from anywhere but this service.
"use strict";

const LOW_CONFIDENCE = 0.5;
const SPEAKER_COLOURS = ["#1f5fbf", "#b34700", "#2e7d32", "#8e24aa", "#c62828", "#00796b", "#5d4037", "#37474f"];
const $ = (id) => document.getElementById(id);

const state = {
  file: null,
  mediaUrl: null,
  job: null,
  result: null,
  words: [], // {el, start, end}, in time order
  names: {}, // speaker label -> the name the user gave it
  activeWord: null,
  abort: null,
};

document.addEventListener("DOMContentLoaded", () => {
  const form = $("upload-form");
  const input = $("file");
  const zone = $("drop-zone");
  $("api_key").value = sessionStorage.getItem("apiKey") || "";
  listModels();
  $("api_key").addEventListener("change", listModels);
  $("add-known-speaker").addEventListener("click", addKnownSpeaker);

  input.addEventListener("change", () => chooseFile(input.files[0]));
  zone.tabIndex = 0;
  zone.setAttribute("role", "button");
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) chooseFile(event.dataTransfer.files[0]);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    start().catch(showError);
  });
  $("cancel").addEventListener("click", () => cancel().catch(showError));
  for (const button of document.querySelectorAll(".downloads button")) {
    button.addEventListener("click", () => download(button.dataset.format).catch(showError));
  }
  $("transcript").addEventListener("click", (event) => {
    const word = event.target.closest(".word");
    if (word) seek(Number(word.dataset.start));
  });
  $("transcript").addEventListener("keydown", (event) => {
    const word = event.target.closest(".word");
    if (word && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      seek(Number(word.dataset.start));
    }
  });
});

function chooseFile(file) {
  if (!file) return;
  state.file = file;
  $("file-name").textContent = `${file.name} (${formatBytes(file.size)})`;
  $("start").disabled = false;
  hide("error");
}

// -- talking to the service ---------------------------------------------------------------

function authHeaders() {
  const key = $("api_key").value.trim();
  sessionStorage.setItem("apiKey", key);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function formFields() {
  const data = new FormData();
  data.append("file", state.file, state.file.name);
  const fields = ["model", "language", "task", "diarize", "num_speakers", "min_speakers", "max_speakers"];
  for (const id of [...fields, "hotwords", "initial_prompt"]) {
    const value = $(id).value.trim();
    if (value) data.append(id, value);
  }
  data.append("word_timestamps", $("word_timestamps").checked ? "true" : "false");
  for (const row of document.querySelectorAll(".known-speaker")) {
    const name = row.querySelector(".known-name").value.trim();
    const clip = row.querySelector(".known-clip").files[0];
    if (!name && !clip) continue;
    if (!name || !clip) throw new UserError("Each known speaker needs both a name and a voice clip.");
    data.append("known_speaker_names[]", name);
    data.append("known_speaker_references[]", clip, clip.name);
  }
  return data;
}

const MAX_KNOWN_SPEAKERS = 8;

function addKnownSpeaker() {
  const rows = document.querySelectorAll(".known-speaker");
  const row = rows[0].cloneNode(true);
  for (const input of row.querySelectorAll("input")) input.value = "";
  rows[rows.length - 1].after(row);
  $("add-known-speaker").disabled = rows.length + 1 >= MAX_KNOWN_SPEAKERS;
  row.querySelector(".known-name").focus();
}

async function start() {
  hide("error");
  hide("result");
  $("start").disabled = true;
  showStatus("Uploading…", 0);
  try {
    const job = await upload(formFields());
    state.job = job;
    $("cancel").hidden = false;
    const finished = job.state === "succeeded" ? job : await follow(job);
    if (finished.state !== "succeeded") {
      throw new UserError(finished.state === "cancelled" ? "The transcription was cancelled." :
        `The transcription failed: ${finished.error || "no reason given"}`);
    }
    const reply = await api(`/v1/jobs/${finished.id}`);
    showResult((await reply.json()).result);
  } finally {
    $("cancel").hidden = true;
    $("start").disabled = !state.file;
  }
}

// XMLHttpRequest, not fetch: only it reports the upload's own progress.
function upload(data) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/jobs");
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) {
        showStatus(`Uploading… ${Math.round((100 * event.loaded) / event.total)} %`, event.loaded / event.total);
      }
    });
    request.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(request.responseText);
      } catch (_) {
        /* not JSON: described by its status */
      }
      if (request.status >= 200 && request.status < 300) resolve(body);
      else reject(new ApiError(request.status, body, request.getResponseHeader("Retry-After")));
    });
    request.addEventListener("error", () => reject(new UserError("The upload failed: the service could not be reached.")));
    request.send(data);
  });
}

// The job's server-sent events, read with fetch (EventSource cannot send an API key).
async function follow(job) {
  showStatus(describeProgress(job), job.progress.fraction);
  state.abort = new AbortController();
  const reply = await api(`/v1/jobs/${job.id}/events`, { signal: state.abort.signal });
  const reader = reply.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let last = job;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return last;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const message = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = message.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (!data) continue;
      last = JSON.parse(data);
      showStatus(describeProgress(last), last.progress.fraction);
      if (["succeeded", "failed", "cancelled", "expired"].includes(last.state)) return last;
    }
  }
}

async function cancel() {
  if (!state.job) return;
  await api(`/v1/jobs/${state.job.id}/cancel`, { method: "POST" });
}

// The models this server may use (GET /v1/models), in the Model choice; the default stays first.
async function listModels() {
  const choice = $("model");
  let models;
  try {
    models = (await (await api("/v1/models")).json()).data;
  } catch (_) {
    return; // a key is needed first, or the server is starting: the default still works
  }
  const chosen = choice.value;
  choice.length = 1;
  for (const model of models) {
    if (model.id === "whisper-1") continue;
    if (model.default) {
      choice.options[0].text = `${model.id} (the default)`;
    } else {
      choice.add(new Option(model.state === "loaded" ? model.id : `${model.id} (loads on first use)`, model.id));
    }
  }
  choice.value = [...choice.options].some((option) => option.value === chosen) ? chosen : "";
}

async function api(path, options = {}) {
  const reply = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!reply.ok) {
    let body = null;
    try {
      body = await reply.json();
    } catch (_) {
      /* not JSON */
    }
    throw new ApiError(reply.status, body, reply.headers.get("Retry-After"));
  }
  return reply;
}

// -- errors in words --------------------------------------------------------------------------

class UserError extends Error {}

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const detail = body && body.error ? body.error.message : "";
    super(describeError(status, detail, retryAfter));
    this.status = status;
  }
}

function describeError(status, detail, retryAfter) {
  switch (status) {
    case 400:
      if (/decod|audio/i.test(detail)) return "This file does not look like audio or video that can be played. Try another format (MP3, WAV, M4A, MP4…).";
      return `The request was not understood: ${detail}`;
    case 401:
      return "This server needs an API key: open Options and enter it.";
    case 408:
      return "The upload was too slow and the server stopped waiting. Check your connection and try again.";
    case 413:
      return `The file is too large (or too long) for this server. ${detail}`;
    case 415:
      return "This file does not look like audio or video that can be played. Try another format (MP3, WAV, M4A, MP4…).";
    case 422:
      return `One of the options cannot be used: ${detail}`;
    case 429:
    case 503: {
      const wait = retryAfter ? ` Try again in ${retryAfter} seconds.` : " Try again shortly.";
      return `The service is busy or starting up.${wait}`;
    }
    case 507:
      return "The server has run out of space for uploads. Try again later.";
    default:
      return `Something went wrong on the server (${status}). ${detail}`;
  }
}

function showError(error) {
  hide("status");
  const box = $("error");
  box.textContent = error instanceof UserError || error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`;
  box.hidden = false;
  $("start").disabled = !state.file;
}

// -- progress -----------------------------------------------------------------------------------

const STAGES = {
  decode: "Reading the file",
  vad: "Finding speech",
  language_detection: "Recognising the language",
  asr: "Transcribing",
  alignment: "Timing every word",
  diarization: "Telling speakers apart",
  done: "Finishing",
};

function describeProgress(job) {
  if (job.state === "queued") return "Waiting for a free worker…";
  const p = job.progress || {};
  let text = STAGES[p.stage] || "Working";
  text += ` — ${Math.round((p.fraction || 0) * 100)} %`;
  if (p.audio_seconds) text += ` of ${formatTime(p.audio_seconds)} of audio`;
  if (p.eta_s !== null && p.eta_s !== undefined && p.fraction < 1) text += `, about ${formatDuration(p.eta_s)} left`;
  return text;
}

function showStatus(text, fraction) {
  $("status").hidden = false;
  $("status-text").textContent = text;
  $("status-bar").value = fraction || 0;
}

// -- the result -----------------------------------------------------------------------------------

function showResult(result) {
  state.result = result;
  state.names = {};
  hide("status");
  $("result").hidden = false;
  renderMedia();
  renderSpeakers();
  renderTranscript();
  renderTimeline();
  const language = result.language ? `language ${result.language}` : "";
  const speakers = result.num_speakers ? `${result.num_speakers} speaker${result.num_speakers === 1 ? "" : "s"}` : "";
  $("summary").textContent = [formatTime(result.duration), language, speakers, `${result.word_segments.length} words`]
    .filter(Boolean).join(" · ");
  $("result").scrollIntoView({ behavior: "smooth", block: "start" });
}

function renderMedia() {
  if (state.mediaUrl) URL.revokeObjectURL(state.mediaUrl);
  state.mediaUrl = URL.createObjectURL(state.file);
  const video = state.file.type.startsWith("video/");
  const media = document.createElement(video ? "video" : "audio");
  media.id = "player";
  media.controls = true;
  media.preload = "metadata";
  media.src = state.mediaUrl;
  media.addEventListener("timeupdate", () => highlight(media.currentTime));
  media.addEventListener("seeked", () => highlight(media.currentTime));
  $("media-slot").replaceChildren(media);
}

function speakerLabels() {
  return Object.keys(state.result.speakers || {}).sort();
}

function colourOf(label) {
  const index = speakerLabels().indexOf(label);
  return index < 0 ? "#555" : SPEAKER_COLOURS[index % SPEAKER_COLOURS.length];
}

function nameOf(label) {
  return state.names[label] || label;
}

function renderSpeakers() {
  const box = $("speakers");
  box.querySelectorAll(".speaker").forEach((el) => el.remove());
  const labels = speakerLabels();
  box.hidden = labels.length === 0;
  for (const label of labels) {
    const row = document.createElement("label");
    row.className = "speaker";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colourOf(label);
    const input = document.createElement("input");
    input.value = label;
    input.dataset.speaker = label;
    input.setAttribute("aria-label", `Name for ${label}`);
    input.addEventListener("input", () => {
      state.names[label] = input.value.trim() || label;
      for (const el of document.querySelectorAll(`[data-speaker-label="${label}"]`)) el.textContent = nameOf(label);
      renderTimeline();
    });
    const talk = document.createElement("small");
    talk.textContent = formatTime(state.result.speakers[label].duration);
    row.append(swatch, input, talk);
    box.append(row);
  }
}

function renderTranscript() {
  const box = $("transcript");
  box.replaceChildren();
  state.words = [];
  let previousSpeaker;
  let paragraph = null;
  for (const segment of state.result.segments) {
    if (!paragraph || segment.speaker !== previousSpeaker) {
      paragraph = document.createElement("p");
      paragraph.className = "turn";
      if (segment.speaker) {
        paragraph.style.borderColor = colourOf(segment.speaker);
        const who = document.createElement("span");
        who.className = "who";
        who.dataset.speakerLabel = segment.speaker;
        who.style.color = colourOf(segment.speaker);
        who.textContent = nameOf(segment.speaker);
        paragraph.append(who);
      }
      const time = document.createElement("button");
      time.type = "button";
      time.className = "time";
      time.textContent = formatTime(segment.start);
      time.setAttribute("aria-label", `Play from ${formatTime(segment.start)}`);
      time.addEventListener("click", () => seek(segment.start));
      paragraph.append(time);
      box.append(paragraph);
      previousSpeaker = segment.speaker;
    }
    const words = segment.words.length ? segment.words : [{ word: segment.text, start: segment.start, end: segment.end, score: null }];
    for (const word of words) {
      const span = document.createElement("span");
      span.className = "word";
      span.textContent = word.word;
      span.dataset.start = word.start;
      span.dataset.end = word.end;
      span.tabIndex = -1;
      if (word.score !== null && word.score !== undefined && word.score < LOW_CONFIDENCE) {
        span.classList.add("unsure");
        span.title = `Low confidence (${Math.round(word.score * 100)} %)`;
      }
      paragraph.append(span, " ");
      state.words.push({ el: span, start: word.start, end: word.end });
    }
  }
}

function renderTimeline() {
  const box = $("timeline");
  box.replaceChildren();
  const turns = (state.result.diarization && state.result.diarization.turns) || [];
  const duration = state.result.duration || 1;
  box.hidden = turns.length === 0;
  const lanes = speakerLabels();
  box.style.setProperty("--lanes", Math.max(lanes.length, 1));
  for (const turn of turns) {
    const bar = document.createElement("span");
    bar.className = "turn-bar";
    bar.style.left = `${(100 * turn.start) / duration}%`;
    bar.style.width = `${Math.max((100 * (turn.end - turn.start)) / duration, 0.3)}%`;
    bar.style.top = `calc(${lanes.indexOf(turn.speaker)} * var(--lane-height))`;
    bar.style.background = colourOf(turn.speaker);
    bar.title = `${nameOf(turn.speaker)}: ${formatTime(turn.start)}–${formatTime(turn.end)}`;
    bar.addEventListener("click", () => seek(turn.start));
    box.append(bar);
  }
  const cursor = document.createElement("span");
  cursor.id = "cursor";
  cursor.className = "cursor";
  box.append(cursor);
}

function seek(seconds) {
  const player = $("player");
  if (!player) return;
  player.currentTime = seconds;
  highlight(seconds);
  player.play().catch(() => {
    /* autoplay refused: the position is still set */
  });
}

// The word being spoken: the last word that started at or before the player's time.
function highlight(time) {
  const words = state.words;
  let low = 0;
  let high = words.length - 1;
  let found = -1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (words[middle].start <= time + 0.01) {
      found = middle;
      low = middle + 1;
    } else high = middle - 1;
  }
  const current = found >= 0 && time <= words[found].end + 0.3 ? words[found].el : null;
  if (current !== state.activeWord) {
    if (state.activeWord) state.activeWord.classList.remove("active");
    if (current) {
      current.classList.add("active");
      const box = $("transcript");
      const top = current.offsetTop - box.offsetTop;
      if (top < box.scrollTop || top > box.scrollTop + box.clientHeight - 40) box.scrollTop = top - box.clientHeight / 3;
    }
    state.activeWord = current;
  }
  const cursor = $("cursor");
  if (cursor && state.result) cursor.style.left = `${(100 * time) / (state.result.duration || 1)}%`;
}

// -- downloads, with the speakers' new names ------------------------------------------------------

async function download(format) {
  const job = state.job;
  let text;
  if (format === "json") {
    text = JSON.stringify(renameInJson(state.result), null, 2);
  } else {
    const reply = await api(`/v1/jobs/${job.id}?format=${format}`);
    text = renameInText(await reply.text());
  }
  saveText(text, format, `${baseName(state.file.name)}.${format}`);
}

// Hands `text` to the browser as a download named `name` (also used by live.js).
function saveText(text, format, name) {
  const types = { json: "application/json", srt: "application/x-subrip", vtt: "text/vtt", txt: "text/plain", tsv: "text/tab-separated-values" };
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: types[format] }));
  link.download = name;
  document.body.append(link);
  link.click();
  setTimeout(() => {
    URL.revokeObjectURL(link.href);
    link.remove();
  }, 1000);
}

function renameInText(text) {
  return text.replace(/SPEAKER_\d+/g, (label) => nameOf(label));
}

function renameInJson(result) {
  const copy = JSON.parse(JSON.stringify(result));
  const rename = (item) => {
    if (item && item.speaker) item.speaker = nameOf(item.speaker);
  };
  copy.segments.forEach((s) => {
    rename(s);
    s.words.forEach(rename);
  });
  copy.word_segments.forEach(rename);
  copy.diarization.turns.forEach(rename);
  copy.speakers = Object.fromEntries(Object.entries(copy.speakers).map(([k, v]) => [nameOf(k), v]));
  return copy;
}

// -- small helpers ------------------------------------------------------------------------------------

function hide(id) {
  $(id).hidden = true;
}

function baseName(name) {
  return name.replace(/\.[^.]+$/, "") || "transcript";
}

function formatTime(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

function formatDuration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  return `${Math.round(seconds / 60)} min`;
}

function formatBytes(bytes) {
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
