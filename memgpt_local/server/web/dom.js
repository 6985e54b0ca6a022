// Building the page's elements. Every text goes in as text (a text node), never as HTML.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function replaceChildren(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

export function byId(id) {
  return document.getElementById(id);
}

export function showError(error) {
  const box = byId("error");
  if (!error) {
    box.hidden = true;
    return;
  }
  replaceChildren(box, error.message || String(error),
    el("button", { type: "button", class: "link", onclick: () => showError(null) }, "dismiss"));
  box.hidden = false;
}

export function showNotice(text) {
  const box = byId("notice");
  box.textContent = text || "";
  box.hidden = !text;
}

// Run an async handler, showing its error plainly instead of throwing.
export function guarded(handler) {
  return async (...args) => {
    try {
      showError(null);
      return await handler(...args);
    } catch (error) {
      showError(error);
      return undefined;
    }
  };
}

export function formatJson(value) {
  return JSON.stringify(value, null, 2);
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

// Prev/next buttons for a page of results; calls go(page).
export function pager(found, go) {
  if (found.pages <= 1) return el("p", { class: "muted" }, `${found.total} found`);
  return el("div", { class: "row pager" },
    el("button", { type: "button", disabled: found.page <= 1, onclick: () => go(found.page - 1) }, "Previous"),
    el("span", {}, `page ${found.page} of ${found.pages} (${found.total} found)`),
    el("button", { type: "button", disabled: found.page >= found.pages, onclick: () => go(found.page + 1) }, "Next"));
}
