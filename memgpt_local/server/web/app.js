// The page: the agents list, the open agent's chat and memory; ?agent=NAME opens one.

import { agentPath, askKey, getJson, sendJson } from "./api.js";
import { loadAgents, wireAgentForms } from "./agents.js";
import { loadHistory, sendMessage } from "./chat.js";
import { byId, guarded, showError } from "./dom.js";
import { showBlocks, showContext, wireMemoryForms } from "./memory.js";
import { showResults } from "./results.js";

const state = { agent: null, tab: "core" };

async function refreshPanels() {
  if (!state.agent) return;
  const agent = await getJson(agentPath(state.agent));
  byId("cannot-run").textContent = agent.cannot_run ? `Cannot run: ${agent.cannot_run}` : "";
  byId("cannot-run").hidden = !agent.cannot_run;
  byId("agent-architecture").value = agent.architecture;
  showBlocks(state.agent, agent, guarded(refreshPanels));
  if (state.tab === "context") await showContext(state.agent);
  await loadAgents(state.agent, openAgent);
  return agent;
}

const openAgent = guarded(async (name) => {
  state.agent = name;
  const url = new URL(window.location.href);
  if (name) url.searchParams.set("agent", name);
  else url.searchParams.delete("agent");
  window.history.replaceState(null, "", url);
  document.body.classList.toggle("has-agent", Boolean(name));
  byId("current-agent").textContent = name || "no agent open";
  byId("transcript").replaceChildren();
  byId("blocks").replaceChildren();
  byId("cannot-run").hidden = true;
  if (!name) {
    await loadAgents(null, openAgent);
    return;
  }
  const agent = await refreshPanels();
  await loadHistory(name, agent.recall_messages);
});

function selectTab(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === tab));
    byId(`tab-${button.dataset.tab}`).hidden = button.dataset.tab !== tab;
  }
  if (tab === "context" && state.agent) guarded(showContext)(state.agent);
  if (tab === "results") guarded(showResults)();
}

function wireChat() {
  const form = byId("send-form");
  const message = byId("message");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = message.value.trim();
    if (!text || !state.agent) return;
    byId("send-button").disabled = true;
    message.value = "";
    try {
      showError(null);
      await sendMessage(state.agent, text);
    } catch (error) {
      showError(error);
    } finally {
      byId("send-button").disabled = false;
      await guarded(refreshPanels)();
    }
  });
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

function start() {
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.addEventListener("click", () => selectTab(button.dataset.tab));
  }
  byId("key-button").addEventListener("click", async () => {
    if (await askKey()) openAgent(state.agent);
  });
  byId("context-refresh").addEventListener("click", () => guarded(showContext)(state.agent));
  byId("agent-architecture").addEventListener("change", guarded(async (event) => {
    await sendJson("PATCH", agentPath(state.agent), { architecture: event.target.value });
    await refreshPanels();
  }));
  wireAgentForms(openAgent);
  wireMemoryForms(() => state.agent, guarded(refreshPanels));
  wireChat();
  openAgent(new URL(window.location.href).searchParams.get("agent"));
}

start();
