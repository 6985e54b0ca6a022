// The memory panel: core-memory blocks edited in place, archival search, insert and upload,
// recall search by text or dates, and the context window as the next prompt is made up.

import { agentPath, getJson, sendJson, upload } from "./api.js";
import { byId, el, guarded, pager, replaceChildren, when } from "./dom.js";

export function showBlocks(name, agent, changed) {
  const blocks = Object.entries(agent.core_memory).map(([label, block]) =>
    blockEditor(name, label, block, changed));
  replaceChildren(byId("blocks"), blocks);
}

function blockEditor(name, label, block, changed) {
  const used = el("span", { class: "used" });
  const text = el("textarea", { rows: 5, "data-block": label, maxlength: block.limit });
  text.value = block.value;
  const count = () => { used.textContent = `${text.value.length} / ${block.limit} characters`; };
  text.addEventListener("input", count);
  count();
  const save = el("button", { type: "submit" }, "Save");
  const form = el("form", { class: "block", "data-label": label },
    el("div", { class: "row" }, el("strong", {}, label), used,
      block.read_only ? el("span", { class: "tag", title: "The agent cannot change it; you can." }, "read-only") : null),
    block.description ? el("p", { class: "muted small" }, block.description) : null,
    text, save);
  form.addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    await sendJson("PUT", agentPath(name, `/core-memory/${encodeURIComponent(label)}`), { value: text.value });
    await changed();
  }));
  return form;
}

function passageItem(passage) {
  return el("li", {}, el("div", {}, passage.content),
    el("div", { class: "muted small" }, [passage.source, when(passage.created_at)].filter(Boolean).join(" · ")));
}

function messageLine(message) {
  const who = message.function_name ? `${message.role} ${message.function_name}` : message.role;
  const text = message.function_name === "send_message" ? message.function_args?.message ?? message.content : message.content;
  return el("div", {}, el("span", { class: "muted small" }, `[${when(message.created_at)}] ${who}: `), text);
}

function recallItem(message) {
  return el("li", {}, messageLine(message),
    message.next ? el("div", { class: "then" }, el("span", { class: "label" }, "then "), messageLine(message.next)) : null);
}

export function wireMemoryForms(current, changed) {
  const searchArchival = guarded(async (page = 1) => {
    const query = byId("archival-search").elements.query.value;
    const found = await getJson(agentPath(current(), "/archival"), { query, page });
    replaceChildren(byId("archival-results"), el("ul", { class: "hits" }, found.items.map(passageItem)),
      pager(found, searchArchival));
  });
  byId("archival-search").addEventListener("submit", (event) => { event.preventDefault(); searchArchival(1); });
  byId("archival-insert").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    await sendJson("POST", agentPath(current(), "/archival"), { text: event.target.elements.text.value });
    event.target.reset();
    await changed();
  }));
  byId("upload-form").addEventListener("submit", guarded(uploadDocuments(current, changed)));
  const searchRecall = guarded(async (page = 1) => {
    const form = byId("recall-search").elements;
    const params = form.query.value.trim() ? { query: form.query.value }
      : { start: form.start.value, end: form.end.value };
    const found = await getJson(agentPath(current(), "/recall"), { ...params, page });
    replaceChildren(byId("recall-results"), el("ul", { class: "hits" }, found.items.map(recallItem)),
      pager(found, searchRecall));
  });
  byId("recall-search").addEventListener("submit", (event) => { event.preventDefault(); searchRecall(1); });
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function uploadDocuments(current, changed) {
  return async (event) => {
    event.preventDefault();
    const progress = byId("upload-progress");
    const data = new FormData();
    for (const file of event.target.elements.files.files) data.append("files", file);
    progress.hidden = false;
    progress.value = 0;
    try {
      const result = await upload(agentPath(current(), "/documents"), data,
        (share) => { progress.value = Math.round(100 * share); });
      const failed = Object.entries(result.failed || {}).map(([file, why]) => `${file}: ${why}`);
      byId("upload-result").textContent = `${plural(result.passages, "passage")} from ${plural(result.files, "file")}` +
        (failed.length ? `; not loaded: ${failed.join("; ")}` : "");
      event.target.reset();
      await changed();
    } finally {
      progress.hidden = true;
    }
  };
}

const PART_NAMES = { instructions: "instructions", core_memory: "core memory", summary: "summary", queue: "messages" };

export async function showContext(name) {
  const context = await getJson(agentPath(name, "/context"));
  const parts = [...Object.entries(context.parts), ["reply_reserve", context.reply_reserve], ["free", context.free]];
  const bar = el("div", { class: "context-bar", role: "img", "aria-label": "the context window" },
    parts.map(([part, tokens]) => {
      const segment = el("span", { class: `segment ${part}`, title: `${PART_NAMES[part] || part.replace("_", " ")}: ${tokens}` });
      segment.style.flexGrow = String(tokens);
      return segment;
    }),
    [["warning", context.warning_tokens], ["flush", context.flush_tokens]].map(([what, tokens]) => {
      const marker = el("span", { class: `marker ${what}`, title: `${what} at ${tokens} tokens` });
      marker.style.left = `${(100 * tokens) / context.window}%`;
      return marker;
    }));
  const rows = parts.map(([part, tokens]) => el("tr", { "data-part": part },
    el("th", {}, el("span", { class: `swatch ${part}` }), PART_NAMES[part] || part.replace("_", " ")),
    el("td", {}, String(tokens))));
  const cache = context.kv_cache;
  replaceChildren(byId("context-view"), bar,
    el("table", { class: "context-table" }, el("tbody", {}, rows,
      el("tr", { "data-part": "prompt_tokens" }, el("th", {}, "prompt"), el("td", {}, String(context.prompt_tokens))),
      el("tr", { "data-part": "window" }, el("th", {}, "window"), el("td", {}, String(context.window))),
      el("tr", { "data-part": "warning_tokens" }, el("th", {}, "memory-pressure warning past"), el("td", {}, String(context.warning_tokens))),
      el("tr", { "data-part": "flush_tokens" }, el("th", {}, "flush (summarise) past"), el("td", {}, String(context.flush_tokens))))),
    el("p", { class: "small" }, `${context.queue_messages} messages in context. KV cache: `,
      cache.held_tokens === null ? "held by the inference server" : `${cache.held_tokens} of the prompt's tokens held now`,
      `; static prefix (${cache.prefix_tokens} tokens): ${cache.prefix}; this agent's context snapshot: ${cache.context_snapshot}.`));
}
