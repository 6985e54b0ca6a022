// The chat: the conversation so far, and a message sent with its reply streamed as it comes,
// each step (thoughts, call, arguments, result) folded under it.

import { agentPath, events, getJson } from "./api.js";
import { byId, el, formatJson, when } from "./dom.js";

const HISTORY = 60; // messages shown when an agent is opened
const MEMORY_ENTRY = "memory"; // the function name recall gives the memory brought to a turn

function scrolled(node) {
  const transcript = byId("transcript");
  transcript.scrollTop = transcript.scrollHeight;
  return node;
}

function userBubble(text, at) {
  return el("div", { class: "bubble user" }, el("div", { class: "when" }, when(at)), text);
}

function agentBubble(text) {
  return el("div", { class: "bubble agent" }, text);
}

function folded(title, ...body) {
  return el("details", { class: "step" }, el("summary", {}, title), ...body);
}

function stepDetails(step) {
  const title = `${step.failed ? "failed step" : "step"}: ${step.function}`;
  return folded(title,
    step.thoughts ? el("p", { class: "thoughts" }, step.thoughts) : null,
    el("div", { class: "label" }, "arguments"), el("pre", {}, formatJson(step.arguments)),
    el("div", { class: "label" }, "result"), el("pre", {}, step.result),
    el("div", { class: "muted small" },
      `${step.stats.generated_tokens} tokens generated, ${step.stats.evaluated_tokens} evaluated` +
      (step.allowed ? ` · allowed: ${step.allowed.join(", ")}` : "")));
}

// Recall messages as the transcript shows them: users and replies as bubbles, the rest folded.
function historyNode(message) {
  if (message.role === "user") return userBubble(message.content, message.created_at);
  if (message.role === "function_call" && message.function_name === "send_message") {
    return agentBubble(message.function_args?.message ?? message.content);
  }
  if (message.role === "function_call") {
    return folded(`call: ${message.function_name || "(none)"}`, el("pre", {}, message.content));
  }
  if (message.role === "function_result") {
    const title = message.function_name === MEMORY_ENTRY ? "memory brought to the model"
      : `result: ${message.function_name || "(none)"}`;
    return folded(title, el("pre", {}, message.content));
  }
  return folded(`${message.role} message`, el("pre", {}, message.content));
}

export async function loadHistory(name, total) {
  const messages = await getJson(agentPath(name, "/messages"),
    { offset: Math.max(0, total - HISTORY), limit: HISTORY });
  const transcript = byId("transcript");
  transcript.replaceChildren(...messages.map(historyNode));
  if (total > HISTORY) transcript.prepend(el("p", { class: "muted small" }, `${total - HISTORY} earlier messages are in recall`));
  scrolled(transcript);
}

// Send a message and show the turn as its events come; resolves when the turn is done.
export async function sendMessage(name, text) {
  const transcript = byId("transcript");
  const turn = el("div", { class: "turn" });
  transcript.append(userBubble(text, new Date().toISOString()), turn);
  let bubble = null;
  for await (const { event, data } of events(agentPath(name, "/messages"), { text, stream: true })) {
    if (event === "memory") turn.append(folded("memory brought to the model", el("pre", {}, data.text)));
    else if (event === "reply") {
      bubble = bubble || turn.appendChild(el("div", { class: "bubble agent streaming" }));
      bubble.append(data.text);
    } else if (event === "withdraw") {
      bubble?.classList.add("withdrawn");
      bubble?.append(el("span", { class: "tag" }, "withdrawn: that reply failed and was not sent"));
      bubble = null;
    } else if (event === "step") {
      bubble = showStep(turn, bubble, data);
    } else if (event === "done" && data.stopped) {
      turn.append(el("p", { class: "muted small" }, `the turn stopped: ${data.stopped}`));
    } else if (event === "error") {
      throw new Error(data.error.message);
    }
    scrolled(turn);
  }
}

function showStep(turn, bubble, step) {
  if (!bubble && step.function === "send_message" && !step.failed && step.arguments?.message) {
    turn.append(agentBubble(step.arguments.message));
  }
  bubble?.classList.remove("streaming");
  turn.append(stepDetails(step));
  return null;
}
