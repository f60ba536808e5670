// The review page: submit a scene job, follow its lines, play and compare, re-dub one line.
// It calls the public API only (/jobs, /jobs/{id}/segments, /artifacts/{id}).
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
let currentJob = null;
let originalUrl = null; // the uploaded video, played beside the dub

function token() {
  return $("#token").value.trim();
}

function headers(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.error || `${response.status} ${response.statusText}`);
  }
  return body;
}

// A file served by /artifacts: a plain URL, or a blob URL when a token must be sent.
async function artifactUrl(id) {
  if (!token()) return `/artifacts/${id}`;
  const response = await fetch(`/artifacts/${id}`, { headers: headers() });
  return URL.createObjectURL(await response.blob());
}

// Speakers named in the subtitles: SRT "SPEAKER: line" cues, or JSON "speaker" fields.
function speakersOf(text) {
  const found = new Set();
  const trimmed = text.trim();
  if (trimmed.startsWith("[") || trimmed.startsWith("{")) {
    try {
      const data = JSON.parse(trimmed);
      for (const item of Array.isArray(data) ? data : data.segments || []) {
        if (item && typeof item.speaker === "string") found.add(item.speaker.trim());
      }
    } catch (error) {
      showError("#form-error", `subtitles: not valid JSON (${error.message})`);
    }
    return [...found];
  }
  for (const block of text.replace(/\r/g, "").split(/\n\s*\n/)) {
    const lines = block.split("\n").filter((l) => l.trim());
    const body = lines.slice(2).join(" ");
    const match = body.match(/^\s*([^:\s][^:]{0,39}?)\s*:/);
    if (match) found.add(match[1].trim());
  }
  return [...found];
}

async function showVoices() {
  const file = $("#subtitles").files[0];
  const box = $("#voices");
  box.querySelectorAll(".voice").forEach((el) => el.remove());
  if (!file) return;
  const speakers = speakersOf(await file.text());
  $("#voices-hint").textContent = speakers.length
    ? "A wav of each speaker's voice (0.5 s or more):"
    : "No speakers found: start each line with 'SPEAKER: '.";
  for (const speaker of speakers) {
    const label = document.createElement("label");
    label.className = "voice";
    label.textContent = `${speaker} `;
    const input = document.createElement("input");
    input.type = "file";
    input.accept = "audio/*";
    input.required = true;
    input.name = `voice_${speaker}`;
    input.dataset.speaker = speaker;
    label.appendChild(input);
    box.appendChild(label);
  }
}

function showError(selector, message) {
  const el = $(selector);
  el.textContent = message;
  el.hidden = !message;
}

async function submitScene(event) {
  event.preventDefault();
  showError("#form-error", "");
  const form = new FormData();
  form.append("video", $("#video").files[0]);
  form.append("subtitles", $("#subtitles").files[0]);
  form.append("seed", $("#seed").value || "0");
  for (const input of document.querySelectorAll("#voices input[type=file]")) {
    if (input.files[0]) form.append(input.name, input.files[0]);
  }
  $("#submit").disabled = true;
  try {
    const job = await api("/jobs", { method: "POST", body: form });
    originalUrl = URL.createObjectURL($("#video").files[0]);
    await follow(job.id);
  } catch (error) {
    showError("#form-error", error.message);
  } finally {
    $("#submit").disabled = false;
  }
}

// Scenes made by `dubops data scene` under the server's allowed folders.
let examples = [];

async function loadExamples() {
  try {
    examples = (await api("/examples")).scenes || [];
  } catch (error) {
    examples = [];
  }
  const select = $("#example");
  select.textContent = "";
  for (const [i, scene] of examples.entries()) {
    const option = document.createElement("option");
    option.value = String(i);
    option.textContent = `${scene.name} (${Object.keys(scene.voice_uris).join(", ")})`;
    select.appendChild(option);
  }
  if (!examples.length) select.innerHTML = '<option value="">(none found)</option>';
  $("#dub-example").disabled = !examples.length;
}

async function dubExample() {
  const scene = examples[Number($("#example").value)];
  if (!scene) return;
  showError("#form-error", "");
  $("#dub-example").disabled = true;
  try {
    const { name, ...fields } = scene;
    const body = JSON.stringify({ ...fields, seed: Number($("#seed").value || 0) });
    const job = await api("/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body,
    });
    originalUrl = null; // the server's copy of the video plays beside the dub
    await follow(job.id);
  } catch (error) {
    showError("#form-error", error.message);
  } finally {
    $("#dub-example").disabled = false;
  }
}

// Poll a job until it ends, showing each line's state; then show its result.
async function follow(jobId) {
  currentJob = jobId;
  $("#progress-section").hidden = false;
  $("#job-id").textContent = jobId;
  showError("#job-error", "");
  for (;;) {
    const job = await api(`/jobs/${jobId}`);
    $("#job-state").textContent = job.state;
    $("#job-stage").textContent = job.stage ? `(${job.stage})` : "";
    $("#job-progress").value = job.progress || 0;
    const lines = await api(`/jobs/${jobId}/segments`);
    renderStates(lines.lines || {});
    if (job.state === "succeeded") {
      await showResult(await api(`/jobs/${jobId}/result`));
      return;
    }
    if (job.state === "failed" || job.state === "cancelled") {
      showError("#job-error", `${job.state}: ${job.error || ""}`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
}

function renderStates(states) {
  const list = $("#line-states");
  list.textContent = "";
  for (const [number, state] of Object.entries(states)) {
    const item = document.createElement("li");
    item.className = state;
    item.textContent = `${number}: ${state}`;
    list.appendChild(item);
  }
}

function time(seconds) {
  const m = Math.floor(seconds / 60);
  const s = (seconds % 60).toFixed(2).padStart(5, "0");
  return `${m}:${s}`;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

async function showResult(result) {
  $("#result-section").hidden = false;
  const dubUrl = await artifactUrl(result.artifacts.mp4);
  $("#dubbed").src = dubUrl;
  $("#original").src = originalUrl || (await artifactUrl(result.artifacts.video));
  $("#download").href = dubUrl;
  $("#summary").textContent =
    `${result.segments.length} lines, ${result.dubbed} dubbed, ${result.cached} from the cache, ` +
    `${result.seconds.total.toFixed(1)} s`;
  const body = $("#segments tbody");
  body.textContent = "";
  for (const line of result.segments) {
    const row = document.createElement("tr");
    row.dataset.number = line.number;
    if (line.cached) row.classList.add("cached");
    cell(row, String(line.number));
    cell(row, `${time(line.start)}–${time(line.end)}`);
    cell(row, line.speaker);
    cell(row, line.text);
    const c = line.conclusion || {};
    cell(row, [c.scene_type, c.gender, c.age, c.emotion].filter(Boolean).join(", "));
    const why = cell(row, "");
    const details = document.createElement("details");
    details.innerHTML = "<summary>reasoning</summary>";
    const text = document.createElement("p");
    text.textContent = line.reasoning_text || "(none)";
    details.appendChild(text);
    why.appendChild(details);
    const hits = Object.entries(line.footage || {}).map(
      ([kind, found]) => `${kind}: ${(found[0] || {}).clip_id || "-"}`,
    );
    cell(row, hits.join("; "));
    const s = line.seconds || {};
    cell(row, ["reason", "generate", "vocode"].map((k) => `${k} ${(s[k] || 0).toFixed(2)}`).join(", "));
    const listen = cell(row, "");
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = await artifactUrl(line.artifacts.wav);
    listen.appendChild(audio);
    const action = cell(row, "");
    const button = document.createElement("button");
    button.className = "redub";
    button.textContent = "Re-dub";
    button.addEventListener("click", () => openRedub(row, line));
    action.appendChild(button);
    body.appendChild(row);
  }
}

function openRedub(row, line) {
  document.querySelectorAll(".redub-row").forEach((el) => el.remove());
  const fragment = $("#redub-template").content.cloneNode(true);
  const form = $(".redub-form", fragment);
  $(".redub-text", fragment).value = line.text;
  $(".redub-emotion", fragment).value = (line.overrides || {}).emotion || "";
  $(".redub-seed", fragment).value = "";
  $(".redub-cancel", fragment).addEventListener("click", () => form.closest("tr").remove());
  form.addEventListener("submit", (event) => redub(event, line));
  row.after(fragment);
}

async function redub(event, line) {
  event.preventDefault();
  const form = event.target;
  const changes = {};
  const text = form.text.value.trim();
  if (text && text !== line.text) changes.text = text;
  if (form.emotion.value) changes.emotion = form.emotion.value;
  if (form.seed.value !== "") changes.seed = form.seed.value;
  if (!Object.keys(changes).length) changes.seed = String((line.seed || 0) + 1);
  $(".redub-go", form).disabled = true;
  try {
    const job = await api(`/jobs/${currentJob}/segments/${line.number}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(changes),
    });
    form.closest("tr").remove();
    await follow(job.id);
  } catch (error) {
    showError("#job-error", error.message);
    $(".redub-go", form).disabled = false;
  }
}

$("#subtitles").addEventListener("change", showVoices);
$("#scene-form").addEventListener("submit", submitScene);
$("#dub-example").addEventListener("click", dubExample);
$("#token").addEventListener("change", loadExamples);
loadExamples();
