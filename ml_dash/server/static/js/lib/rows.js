// Pure helpers over experiments as rows: flattened parameters, table cells and their sort order, the parameters
// that vary, dotted-name groups, and the System panel's chart groups.
// No DOM, storage or network here (tests/dashboard/js/rows.test.mjs runs it under Node).

import { durationOf } from "./format.js";

// Nested parameters become dotted keys ("model.layers") so each one can be a column or a filter term.
export function flatten(object, prefix = "", out = {}) {
  if (object === null || typeof object !== "object" || Array.isArray(object)) {
    if (prefix) out[prefix] = object;
    return out;
  }
  for (const [key, value] of Object.entries(object)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length) flatten(value, path, out);
    else out[path] = value;
  }
  return out;
}

export const SUMMARY_STATS = ["last", "min", "max"];

// An experiment as the runs table reads it. Its metricSummary ([{name, last, min, max}], when the query asked for
// it) becomes `summary`, flat keys "<metric>.<stat>" ("train.loss.min"), so a metric's minimum or maximum over its
// whole series can be a column or a sort key like its last value.
export function prepareRow(e) {
  const summary = {};
  for (const m of e.metricSummary || []) for (const stat of SUMMARY_STATS) summary[`${m.name}.${stat}`] = m[stat] ?? null;
  return { ...e, flatParams: flatten(e.params || {}), lastMetrics: e.lastMetrics || {}, summary };
}

// The summary columns of metrics (last, min and max of each), for a column chooser: {key, label, kind}, key read by
// cellOf ("summary:loss.min").
export function summaryColumns(metrics) {
  return [...metrics].sort().flatMap((m) => SUMMARY_STATS.map((stat) => ({ key: `summary:${m}.${stat}`, label: `${m} (${stat})`, kind: "metric" })));
}

// The value of a table column ("status", "started", "duration", "param:lr", "metric:loss") for a prepared row.
export function cellOf(row, key, now = undefined) {
  if (key === "duration") return durationOf(row, now);
  if (key === "started") return row.startedAt;
  if (key.startsWith("param:")) return row.flatParams[key.slice(6)];
  if (key.startsWith("metric:")) return row.lastMetrics[key.slice(7)];
  if (key.startsWith("summary:")) return (row.summary || {})[key.slice(8)];
  return row[key];
}

const BUILTIN_COLUMNS = [
  { key: "status", label: "status" }, { key: "prefix", label: "prefix" }, { key: "started", label: "started" },
  { key: "duration", label: "duration" }, { key: "hostname", label: "hostname" }, { key: "tags", label: "tags" },
  { key: "notes", label: "notes" },
];

// The runs table's columns: the built-in ones, then one per parameter and one per metric key seen (known: {params,
// metrics} sets), each sorted. A column is {key, label, kind?}; its key is what cellOf() reads.
export function tableColumns({ params, metrics }) {
  return [...BUILTIN_COLUMNS, ...[...params].sort().map((k) => ({ key: `param:${k}`, label: k, kind: "param" })),
    ...[...metrics].sort().map((k) => ({ key: `metric:${k}`, label: k, kind: "metric" }))];
}

const isMissing = (v) => v === null || v === undefined || v === "";

// Sort order for table cells; empty cells always sink to the bottom, whichever the direction.
export function compareCells(a, b, descending) {
  if (isMissing(a) || isMissing(b)) return isMissing(a) - isMissing(b);
  const order = typeof a === "number" && typeof b === "number" ? a - b
    : String(a).localeCompare(String(b), undefined, { numeric: true });
  return descending ? -order : order;
}

// File paths and other names with numbers in them, in the order a person counts: epoch_5 before epoch_10.
const collator = new Intl.Collator(undefined, { numeric: true });
export const naturalCompare = (a, b) => collator.compare(a, b);

// Parameter keys whose value is not the same for every run (what a sweep varies); runs carry flatParams.
export function varyingKeys(runs) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.flatParams)))].sort();
  return keys.filter((k) => new Set(runs.map((r) => JSON.stringify(r.flatParams[k] ?? null))).size > 1);
}

// "train.loss", "train.acc" and "train/lr" (the transformers convention) share the group "train"; keys without a
// "." or "/" form the unnamed group "", which comes first.
// Returns [[group, keys]] with the groups sorted and each group's keys in their given order.
export function groupByPrefix(keys) {
  const groups = new Map();
  for (const key of keys) {
    const dot = key.search(/[./]/);
    const group = dot > 0 ? key.slice(0, dot) : "";
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(key);
  }
  return [...groups].sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b)));
}

// Runs grouped by one parameter's value, in order of first appearance: [{value, members: [index into rows]}].
export function groupByValue(rows, key) {
  const byValue = new Map();
  rows.forEach((row, i) => {
    const id = JSON.stringify(row.flatParams[key] ?? null);
    if (!byValue.has(id)) byValue.set(id, { value: JSON.parse(id), members: [] });
    byValue.get(id).members.push(i);
  });
  return [...byValue.values()];
}

export const SYSTEM_PREFIX = "system/";
// The System group's charts: the series (names without the prefix) each pattern takes, drawn together. A name no
// pattern takes gets a chart of its own, so a newer client's readings still show.
// One scale per chart: the machine's CPU % (all CPUs: 0-100) apart from the process's (100 per CPU it keeps busy),
// the process's resident memory apart from the machine's. Counts (integer: true) get whole-number ticks.
const SYSTEM_CHARTS = [
  ["Machine CPU % (all CPUs)", /^cpu_percent$/],
  ["Process CPU % (100 = one CPU)", /^process_cpu_percent$/],
  ["Process memory, RSS (MiB)", /^process_rss_mb$/],
  ["Machine memory (MiB)", /^memory_(used|available)_mb$/],
  ["Memory %", /^memory_percent$/],
  ["Disk I/O (MiB/s)", /^disk_(read|write)_mb_s$/],
  ["Network (MiB/s)", /^net_(recv|sent)_mb_s$/],
  ["Threads", /^process_threads$/, true],
  ["GPU utilisation %", /^gpu\.\d+\.utilization_percent$/],
  ["GPU memory %", /^gpu\.\d+\.memory_percent$/],
  ["GPU memory (MiB)", /^gpu\.\d+\.memory_used_mb$/],
  ["GPU temperature (°C)", /^gpu\.\d+\.temperature_c$/],
  ["GPU power (W)", /^gpu\.\d+\.power_w$/],
];

// [{title, names}] in SYSTEM_CHARTS order, then the names no pattern takes; names are given and kept with the prefix.
export function systemChartGroups(names) {
  const groups = SYSTEM_CHARTS.map(([title, , integer]) => (integer ? { title, names: [], integer } : { title, names: [] }));
  const others = [];
  for (const name of [...names].sort()) {
    const short = name.startsWith(SYSTEM_PREFIX) ? name.slice(SYSTEM_PREFIX.length) : name;
    const index = SYSTEM_CHARTS.findIndex(([, pattern]) => pattern.test(short));
    if (index >= 0) groups[index].names.push(name);
    else others.push({ title: short, names: [name] });
  }
  return [...groups.filter((g) => g.names.length), ...others];
}
