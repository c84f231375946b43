// Live mode: the microphone, transcribed while you speak, through /v1/realtime (OpenAI's
// realtime protocol). Words the server holds stable appear grey as you speak; each turn turns
// black, with its word times and speakers, once the server has transcribed it whole.
// Uses the page's options (language, speakers, API key) and its helpers in app.js.
"use strict";

const live = {
  socket: null,
  audio: null, // {context, stream, node}
  turns: new Map(), // item id -> {el, partial, final}
  order: [], // item ids, in the order their turns began
  pending: new Set(), // committed turns not yet transcribed
  stopping: false,
};

document.addEventListener("DOMContentLoaded", () => {
  $("live-start").addEventListener("click", () => startLive().catch(liveError));
  $("live-stop").addEventListener("click", () => stopLive().catch(liveError));
  for (const button of document.querySelectorAll(".live-downloads button")) {
    button.addEventListener("click", () => downloadLive(button.dataset.format));
  }
});

async function startLive() {
  if (!navigator.mediaDevices || !window.AudioWorkletNode) {
    throw new UserError("This browser cannot capture the microphone here (it needs HTTPS or localhost).");
  }
  hide("live-error");
  $("live-start").disabled = true;
  setLiveState("Asking for the microphone…");
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
  });
  const socket = await openSocket();
  const context = new AudioContext();
  await context.audioWorklet.addModule("/static/live-worklet.js");
  const node = new AudioWorkletNode(context, "pcm-capture");
  node.port.onmessage = (event) => {
    if (socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "input_audio_buffer.append", audio: base64(event.data) }));
    }
  };
  context.createMediaStreamSource(stream).connect(node);
  live.audio = { context, stream, node };
  live.stopping = false;
  $("live-stop").disabled = false;
  $("live-transcript").hidden = false;
  setLiveState("Listening — speak now");
}

function openSocket() {
  const key = $("api_key").value.trim();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let url = `${scheme}//${location.host}/v1/realtime?intent=transcription`;
  const protocols = ["realtime"];
  // Browsers cannot set headers on a WebSocket: the key rides as a subprotocol (or in the URL).
  if (key && /^[A-Za-z0-9._~!#$%&'*+^`|-]+$/.test(key)) protocols.push(`openai-insecure-api-key.${key}`);
  else if (key) url += `&api_key=${encodeURIComponent(key)}`;
  const socket = new WebSocket(url, protocols);
  live.socket = socket;
  socket.addEventListener("message", (message) => onLiveEvent(JSON.parse(message.data)));
  socket.addEventListener("close", (event) => onLiveClosed(event));
  return new Promise((resolve, reject) => {
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "session.update", session: liveSession() }));
      resolve(socket);
    });
    socket.addEventListener("error", () => reject(new UserError("The live service could not be reached.")));
  });
}

function liveSession() {
  const language = $("language").value.trim();
  return {
    type: "transcription",
    audio: {
      input: {
        format: { type: "audio/pcm", rate: 16000 },
        transcription: {
          model: $("model").value || "whisper-1",
          language: language || null,
          keywords: $("hotwords").value.split(",").map((word) => word.trim()).filter(Boolean),
          diarize: $("diarize").value === "true",
        },
        turn_detection: { type: "server_vad", threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 },
      },
    },
  };
}

async function stopLive() {
  $("live-stop").disabled = true;
  live.stopping = true;
  stopMicrophone();
  const socket = live.socket;
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "input_audio_buffer.commit" })); // the turn still open, if any
    setLiveState("Finishing the last words…");
    const deadline = Date.now() + 20000;
    await new Promise((resolve) => setTimeout(resolve, 300));
    while (live.pending.size && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    socket.close(1000, "done");
  }
  setLiveState(live.order.length ? "Stopped." : "Stopped: nothing was heard.");
  $("live-start").disabled = false;
}

function stopMicrophone() {
  if (!live.audio) return;
  live.audio.stream.getTracks().forEach((track) => track.stop());
  live.audio.node.port.onmessage = null;
  live.audio.context.close();
  live.audio = null;
}

function onLiveClosed(event) {
  stopMicrophone();
  $("live-stop").disabled = true;
  $("live-start").disabled = false;
  if (!live.stopping && event.code !== 1000) setLiveState(`The live session ended (${event.reason || event.code}).`);
}

function onLiveEvent(event) {
  switch (event.type) {
    case "input_audio_buffer.speech_started":
      liveTurn(event.item_id, event.audio_start_ms / 1000);
      break;
    case "input_audio_buffer.committed":
      liveTurn(event.item_id);
      live.pending.add(event.item_id);
      break;
    case "conversation.item.input_audio_transcription.delta": {
      const turn = liveTurn(event.item_id);
      turn.partial.textContent += event.delta;
      break;
    }
    case "conversation.item.input_audio_transcription.completed":
      finishTurn(liveTurn(event.item_id), event);
      live.pending.delete(event.item_id);
      break;
    case "conversation.item.input_audio_transcription.failed":
      liveTurn(event.item_id).partial.textContent += " [not transcribed]";
      live.pending.delete(event.item_id);
      break;
    case "error":
      if (event.error.code !== "input_audio_buffer_commit_empty") liveError(new UserError(event.error.message));
      break;
    default:
      break;
  }
}

function liveTurn(item, start) {
  let turn = live.turns.get(item);
  if (!turn) {
    const el = document.createElement("p");
    el.className = "turn live-turn";
    el.dataset.item = item;
    const partial = document.createElement("span");
    partial.className = "partial";
    el.append(partial);
    $("live-transcript").append(el);
    turn = { el, partial, start: start || 0, final: null };
    live.turns.set(item, turn);
    live.order.push(item);
  }
  return turn;
}

function finishTurn(turn, event) {
  turn.final = { transcript: event.transcript, words: event.words || [], segments: event.segments || null };
  const el = turn.el;
  el.replaceChildren();
  const first = turn.final.words[0];
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = formatTime(first ? first.start : turn.start);
  el.append(time);
  let speaker = null;
  const words = turn.final.words.length ? turn.final.words : [{ word: event.transcript, speaker: null }];
  for (const word of words) {
    if (word.speaker && word.speaker !== speaker) {
      speaker = word.speaker;
      const who = document.createElement("span");
      who.className = "who";
      who.style.color = colourOf(speaker);
      who.textContent = speaker;
      el.append(who);
    }
    const span = document.createElement("span");
    span.className = "word final";
    span.textContent = word.word;
    if (word.probability !== null && word.probability !== undefined && word.probability < LOW_CONFIDENCE) span.classList.add("unsure");
    el.append(span, " ");
  }
  document.querySelector(".live-downloads").hidden = false;
}

function liveError(error) {
  const box = $("live-error");
  box.textContent = error instanceof UserError ? error.message : `Live transcription failed: ${error.message}`;
  box.hidden = false;
  if (!live.audio) $("live-start").disabled = false;
}

function setLiveState(text) {
  $("live-state").textContent = text;
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

// -- downloads of what was said ------------------------------------------------------------------

function finishedTurns() {
  return live.order.map((item) => live.turns.get(item)).filter((turn) => turn.final && turn.final.transcript);
}

function downloadLive(format) {
  const turns = finishedTurns();
  let text;
  if (format === "json") {
    text = JSON.stringify({ turns: turns.map((t) => t.final) }, null, 2);
  } else if (format === "srt") {
    text = turns
      .map((t, i) => {
        const words = t.final.words;
        const start = words.length ? words[0].start : t.start;
        const end = words.length ? words[words.length - 1].end : t.start;
        return `${i + 1}\n${srtTime(start)} --> ${srtTime(end)}\n${t.final.transcript}\n`;
      })
      .join("\n");
  } else {
    text = turns.map((t) => t.final.transcript).join("\n") + "\n";
  }
  saveText(text, format, `live-transcript.${format}`);
}

function srtTime(seconds) {
  const ms = Math.round(seconds * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(Math.floor(ms / 3600000))}:${pad(Math.floor(ms / 60000) % 60)}:${pad(Math.floor(ms / 1000) % 60)},${pad(ms % 1000, 3)}`;
}
