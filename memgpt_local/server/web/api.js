// The server's public HTTP API, addressed relative to the page (so a path prefix works), with
// the API key asked for once and sent as a bearer header, never in a URL.

const KEY_ITEM = "memgpt-local-key";
const BASE = new URL(".", document.baseURI);

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function apiUrl(path, params = {}) {
  const url = new URL(path, BASE);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

export function agentPath(name, rest = "") {
  return `agents/${encodeURIComponent(name)}${rest}`;
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_ITEM);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// Ask for the key in the page's dialog; resolves true when one was given.
export function askKey() {
  const dialog = document.getElementById("key-dialog");
  const form = document.getElementById("key-form");
  form.reset();
  return new Promise((resolve) => {
    const done = (given) => {
      form.removeEventListener("submit", submit);
      document.getElementById("key-cancel").removeEventListener("click", cancel);
      dialog.close();
      resolve(given);
    };
    const submit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY_ITEM, form.elements.key.value.trim());
      done(true);
    };
    const cancel = () => done(false);
    form.addEventListener("submit", submit);
    document.getElementById("key-cancel").addEventListener("click", cancel);
    dialog.showModal();
  });
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return new ApiError(response.status, body.error?.message || response.statusText);
  } catch {
    return new ApiError(response.status, `${response.status} ${response.statusText}`);
  }
}

// A fetch that asks for the key on 401 and retries; raises ApiError on any other failure.
export async function call(method, path, { json, params, body } = {}) {
  for (;;) {
    const headers = authHeaders();
    let payload = body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(json);
    }
    const response = await fetch(apiUrl(path, params), { method, headers, body: payload });
    if (response.status === 401 && (await askKey())) continue;
    if (!response.ok) throw await errorOf(response);
    return response;
  }
}

export async function getJson(path, params) {
  return (await call("GET", path, { params })).json();
}

export async function sendJson(method, path, json, params) {
  const response = await call(method, path, { json, params });
  return response.status === 204 ? null : response.json();
}

// Server-sent events of a POST, as {event, data} objects, as they arrive.
export async function* events(path, json) {
  const response = await call("POST", path, { json });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      yield parseEvent(block);
    }
  }
}

function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  return { event, data: JSON.parse(data.join("\n") || "null") };
}

// A multipart upload with progress (fetch reports none): resolves with the JSON answer.
export function upload(path, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", apiUrl(path));
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", async () => {
      const response = new Response(request.responseText, { status: request.status });
      if (request.status === 401 && (await askKey())) {
        upload(path, formData, onProgress).then(resolve, reject);
      } else if (request.status >= 400) reject(await errorOf(response));
      else resolve(JSON.parse(request.responseText));
    });
    request.addEventListener("error", () => reject(new ApiError(0, "The upload failed: the server did not answer.")));
    request.send(formData);
  });
}

// Save a JSON document as a file the browser downloads.
export function download(document_, filename) {
  const blob = new Blob([JSON.stringify(document_, null, 1)], { type: "application/json" });
  const link = Object.assign(window.document.createElement("a"), {
    href: URL.createObjectURL(blob), download: filename,
  });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}
