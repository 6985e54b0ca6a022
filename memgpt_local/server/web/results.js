// The memory-task results of a benchmark report (`memgpt-local bench report`), when the server
// was started with --report DIR: the summary table and the plots.

import { ApiError, call, getJson } from "./api.js";
import { byId, el, replaceChildren } from "./dom.js";

const COLUMNS = ["model", "task", "variant", "cases", "score", "stopped", "steps", "failed_steps", "wall_s"];

export async function showResults() {
  let report;
  try {
    report = await getJson("report/summary.json");
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    replaceChildren(byId("results-view"), el("p", { class: "muted" },
      "No report here: write one with `memgpt-local bench report RUN_DIR --out DIR` and start the server with `serve --report DIR`."));
    return;
  }
  const table = el("table", { class: "results" },
    el("thead", {}, el("tr", {}, COLUMNS.map((column) => el("th", {}, column.replace("_", " "))))),
    el("tbody", {}, report.summary.map((row) => el("tr", {},
      COLUMNS.map((column) => el("td", {}, formatCell(row[column])))))));
  const figures = await Promise.all(report.plots.map(plotFigure));
  replaceChildren(byId("results-view"), table, figures);
}

// A plot fetched with the API key (an <img> could not send it) and shown from a blob URL.
async function plotFigure(name) {
  const image = await (await call("GET", `report/${encodeURIComponent(name)}`)).blob();
  return el("figure", {}, el("img", { src: URL.createObjectURL(image), alt: name }),
    el("figcaption", {}, name));
}

function formatCell(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "number" && !Number.isInteger(value) ? value.toFixed(3) : String(value);
}
