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

export const Y_MODES = [["robust", "y: auto (robust)"], ["full", "y: full"], ["manual", "y: manual"]];

// A chart's own y-range control: "robust" (the default: a diverged run's values are left off so the others stay
// readable, lib/series.js robustRange), "full" (every value), or "manual" min–max (a side left empty follows the
// full range). onChange({mode, min, max}) on every change.
export function yRangeControl(onChange, yRange = { mode: "robust", min: null, max: null }) {
  const state = { ...yRange };
  const select = el("select", { class: "y-range", title: "y range" }, Y_MODES.map(([value, label]) => el("option", { value }, label)));
  select.value = state.mode;
  const bound = (key) => {
    const input = el("input", { type: "number", step: "any", class: `y-${key}`, placeholder: key, value: state[key] ?? "" });
    input.addEventListener("change", () => {
      state[key] = input.value === "" || !isFinite(Number(input.value)) ? null : Number(input.value);
      onChange({ ...state });
    });
    return input;
  };
  const low = bound("min"), high = bound("max");
  const manual = el("span", { class: "y-manual", hidden: state.mode !== "manual" }, low, "–", high);
  select.addEventListener("change", () => {
    state.mode = select.value;
    manual.hidden = state.mode !== "manual";
    onChange({ ...state });
  });
  return el("span", { class: "y-range-control" }, select, manual);
}
