// The toolbar every chart view shares: smoothing, log-y and the x axis (the maths behind them is lib/series.js).

import { el } from "./dom.js";

export const X_MODES = [["auto", "x: auto"], ["step", "x: step"], ["time", "x: wall time"], ["relative", "x: relative time"]];

export function defaultControls() {
  return { smoothing: 0, logY: false, xMode: "auto" };  // auto: step, or time for a series without steps
}

// One toolbar for a chart view; onChange(controls, what) gets the whole state and the key that changed.
export function controlsToolbar(controls, onChange) {
  const xSelect = el("select", { id: "x-axis" }, X_MODES.map(([value, label]) => el("option", { value }, label)));
  xSelect.value = controls.xMode;
  xSelect.addEventListener("change", () => { controls.xMode = xSelect.value; onChange(controls, "xMode"); });
  const value = el("span", { class: "muted", id: "smoothing-value" }, controls.smoothing.toFixed(2));
  const slider = el("input", { type: "range", id: "smoothing", min: "0", max: "0.99", step: "0.01", value: String(controls.smoothing),
                               title: "EMA smoothing (the raw line stays faint behind the smoothed one)" });
  slider.addEventListener("input", () => {
    controls.smoothing = Number(slider.value);
    value.textContent = controls.smoothing.toFixed(2);
    onChange(controls, "smoothing");
  });
  const logBox = el("input", { type: "checkbox", id: "log-y" });
  logBox.checked = controls.logY;
  logBox.addEventListener("change", () => { controls.logY = logBox.checked; onChange(controls, "logY"); });
  return el("span", { class: "chart-controls" }, xSelect,
    el("label", { class: "control" }, "smoothing ", slider, " ", value),
    el("label", { class: "control" }, logBox, " log y"));
}
