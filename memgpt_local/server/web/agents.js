// The agents list: open, create, copy, delete (confirmed), import and export.

import { agentPath, call, download, getJson, sendJson } from "./api.js";
import { byId, el, guarded, replaceChildren, showNotice, when } from "./dom.js";

export async function loadAgents(current, open) {
  const agents = await getJson("agents");
  replaceChildren(byId("agent-list"), agents.map((agent) => agentItem(agent, current, open)));
  return agents;
}

function agentItem(agent, current, open) {
  const link = el("a", { href: `?agent=${encodeURIComponent(agent.name)}`, class: "agent-name",
    onclick: (event) => { event.preventDefault(); open(agent.name); } }, agent.name);
  const refresh = () => loadAgents(current, open);
  return el("li", { class: agent.name === current ? "current" : "", "data-agent": agent.name },
    link,
    el("div", { class: "muted small" }, `${agent.model} · ${agent.messages} messages · ${agent.passages} passages`),
    el("div", { class: "muted small" }, when(agent.updated_at)),
    el("div", { class: "row small" },
      el("button", { type: "button", class: "link", onclick: guarded(() => copyAgent(agent.name, refresh)) }, "copy"),
      el("button", { type: "button", class: "link", onclick: guarded(() => exportAgent(agent.name, "memgpt-local")) }, "export"),
      el("button", { type: "button", class: "link", onclick: guarded(() => exportAgent(agent.name, "af")) }, "export .af"),
      el("button", { type: "button", class: "link danger", onclick: guarded(() => deleteAgent(agent.name, current, open)) }, "delete")));
}

async function copyAgent(name, refresh) {
  const target = window.prompt(`Name of the copy of ${name}:`, `${name}-copy`);
  if (!target) return;
  await sendJson("POST", agentPath(name, "/copy"), { name: target });
  await refresh();
}

async function exportAgent(name, format) {
  const document_ = await getJson(agentPath(name, "/export"), { format });
  download(document_, `${name}.${format === "af" ? "af" : "json"}`);
}

function confirmed(text) {
  const dialog = byId("confirm-dialog");
  byId("confirm-text").textContent = text;
  return new Promise((resolve) => {
    const finish = (answer) => {
      byId("confirm-form").onsubmit = null;
      byId("confirm-no").onclick = null;
      dialog.close();
      resolve(answer);
    };
    byId("confirm-form").onsubmit = (event) => { event.preventDefault(); finish(true); };
    byId("confirm-no").onclick = () => finish(false);
    dialog.showModal();
  });
}

async function deleteAgent(name, current, open) {
  if (!(await confirmed(`Delete ${name} with all its memory? This cannot be undone.`))) return;
  await call("DELETE", agentPath(name));
  if (name === current) open(null);
  else await loadAgents(current, open);
}

async function jsonOf(file) {
  try {
    return JSON.parse(await file.text());
  } catch (error) {
    throw new Error(`${file.name} is not a JSON file: ${error.message}`);
  }
}

function blocksOf(text) {
  const blocks = {};
  for (const line of text.split("\n")) {
    const cut = line.indexOf(":");
    if (cut > 0) blocks[line.slice(0, cut).trim()] = { value: line.slice(cut + 1).trim() };
  }
  return blocks;
}

export function wireAgentForms(open) {
  byId("create-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    const form = event.target.elements;
    const body = { name: form.name.value.trim(), blocks: blocksOf(form.blocks.value) };
    for (const field of ["model", "persona", "human", "architecture"]) {
      if (form[field].value.trim()) body[field] = form[field].value;
    }
    if (form.n_ctx.value) body.n_ctx = Number(form.n_ctx.value);
    const agent = await sendJson("POST", "agents", body);
    event.target.reset();
    byId("create-agent").open = false;
    open(agent.name);
  }));
  byId("import-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    const form = event.target.elements;
    const file = form.file.files[0];
    const name = form.name.value.trim() || undefined;
    const letta = file.name.endsWith(".af");
    const made = await sendJson("POST", letta ? "agents/import/af" : "agents/import",
      await jsonOf(file), { name });
    event.target.reset();
    byId("import-agent").open = false;
    const agents = Array.isArray(made) ? made : [made];
    showNotice(agents.map((agent) => agent.summary || `Imported ${agent.name}.`).join(" "));
    open(agents[0].name);
  }));
}
