// charrec serve: the drawing page. Strokes are kept as lists of points so Undo can redraw the
// rest; while the drawing changes, the canvas is sent to /api/predict as a PNG, one request at a
// time (the newest drawing goes next, the ones in between are skipped). A chosen or dropped file
// is sent as it is, so its answer is the one `charrec predict FILE` gives.
"use strict";

const TOP_K = 5;
const LINE_WIDTH = 18; // in canvas pixels (the canvas is 280 wide): a pen stroke, not a hairline

const canvas = document.getElementById("canvas");
const context = canvas.getContext("2d");
const $ = (id) => document.getElementById(id);

const strokes = []; // each {points: [[x, y], ...]}
let current = null; // the stroke being drawn
let background = null; // an image chosen or dropped (an ImageBitmap), drawn under the strokes
let file = null; // that image's file, sent as is until something is drawn over it
let dirty = false; // the drawing changed since the last request was sent
let busy = false; // a request is in flight

function paper() {
  context.fillStyle = "#fff";
  context.fillRect(0, 0, canvas.width, canvas.height);
  if (background) {
    const scale = Math.min(canvas.width / background.width, canvas.height / background.height);
    const width = background.width * scale, height = background.height * scale;
    context.drawImage(background, (canvas.width - width) / 2, (canvas.height - height) / 2,
                      width, height);
  }
}

function drawSegment(points, from) {
  context.strokeStyle = "#000";
  context.fillStyle = "#000";
  context.lineWidth = LINE_WIDTH;
  context.lineCap = "round";
  context.lineJoin = "round";
  if (points.length === 1) { // a dot
    context.beginPath();
    context.arc(points[0][0], points[0][1], LINE_WIDTH / 2, 0, 2 * Math.PI);
    context.fill();
    return;
  }
  context.beginPath();
  context.moveTo(...points[Math.max(from - 1, 0)]);
  for (let index = Math.max(from, 1); index < points.length; index++) {
    context.lineTo(...points[index]);
  }
  context.stroke();
}

function redraw() {
  paper();
  for (const stroke of strokes) drawSegment(stroke.points, 0);
  $("hint").hidden = strokes.length > 0 || background !== null;
}

function position(event) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * canvas.width / box.width,
          (event.clientY - box.top) * canvas.height / box.height];
}

canvas.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  document.body.dataset.pointer = event.pointerType; // mouse, pen or touch
  current = {points: [position(event)]};
  strokes.push(current);
  file = null; // the canvas, with the image under the strokes, is what is read now
  $("hint").hidden = true;
  drawSegment(current.points, 0);
  changed();
});

canvas.addEventListener("pointermove", (event) => {
  if (!current) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  const from = current.points.length;
  for (const each of events.length ? events : [event]) current.points.push(position(each));
  drawSegment(current.points, from);
  changed();
});

for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    if (!current) return;
    current = null;
    changed();
  });
}

function undo() {
  if (!strokes.length) return;
  strokes.pop();
  current = null;
  redraw();
  changed();
}

function clear() {
  strokes.length = 0;
  current = null;
  background = null;
  file = null;
  redraw();
  changed();
}

async function useFile(chosen) {
  if (!chosen) return;
  strokes.length = 0;
  file = chosen;
  try {
    background = await createImageBitmap(chosen);
  } catch {
    background = null; // not an image the browser can show: the server will say what it is
  }
  redraw();
  $("hint").hidden = true;
  changed();
}

$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", clear);
$("file").addEventListener("change", (event) => {
  useFile(event.target.files[0]);
  event.target.value = ""; // choosing the same file again is a change too
});
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
  } else if (event.key === "Escape") {
    clear();
  }
});

const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  useFile(event.dataTransfer.files[0]);
});

// ------------------------------------------------------------------------------ asking charrec

function changed() {
  dirty = true;
  if (!busy) ask();
}

function canvasPng() {
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

async function ask() {
  dirty = false;
  if (!strokes.length && !file && !background) {
    show(null);
    return;
  }
  busy = true;
  document.body.dataset.state = "busy";
  try {
    let body;
    if (file) {
      body = new FormData();
      body.append("image", file, file.name);
    } else {
      body = await canvasPng();
    }
    const response = await fetch(`/api/predict?top_k=${TOP_K}`, {method: "POST", body});
    const answer = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
    if (!dirty) show(answer); // a newer drawing is on its way: its answer will be shown
  } catch (failure) {
    if (!dirty) show({error: `no answer from charrec (${failure.message})`});
  } finally {
    busy = false;
    if (dirty) {
      ask();
    } else {
      document.body.dataset.state = "idle";
    }
  }
}

function show(answer) {
  const chart = $("chart");
  chart.replaceChildren();
  $("warning").hidden = !(answer && answer.warning);
  $("warning").textContent = (answer && answer.warning) || "";
  $("error").hidden = !(answer && answer.error);
  $("error").textContent = (answer && answer.error) || "";
  const readable = answer && !answer.error;
  $("letter").textContent = readable ? answer.prediction : "";
  $("probability").textContent = readable ? percent(answer.probability) : "";
  if (readable) {
    $("model").textContent = answer.model;
    for (const entry of answer.top_k) chart.append(bar(entry));
  }
  document.body.dataset.answers = String(Number(document.body.dataset.answers) + 1);
}

function bar(entry) {
  const row = document.createElement("li");
  row.dataset.letter = entry.letter;
  row.dataset.probability = String(entry.probability);
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = entry.letter;
  const track = document.createElement("span");
  track.className = "track";
  const fill = document.createElement("span");
  fill.className = "bar";
  fill.style.width = `${(100 * entry.probability).toFixed(1)}%`;
  track.append(fill);
  const value = document.createElement("span");
  value.className = "value";
  value.textContent = percent(entry.probability);
  row.append(name, track, value);
  return row;
}

function percent(probability) {
  return `${(100 * probability).toFixed(1)}%`;
}

fetch("/api/model")
  .then((response) => response.json())
  .then((model) => { $("model").textContent = model.model; })
  .catch(() => { $("model").textContent = "unknown (no answer from /api/model)"; });
redraw();
