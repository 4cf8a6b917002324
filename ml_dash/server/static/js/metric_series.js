// Reads what a MetricChart draws: its series' min/max buckets for the step range in view (one aliased query per
// chart, or one seriesBatch for many runs of one metric) and the (step, time) anchors of the wall-time axes.

import { api } from "./api.js";
import { loadPlotly } from "./charts.js";
import { anchorsOf, bucketsFor } from "./lib/series.js";
import { decodeEnvelope } from "./lib/typed_arrays.js";

// series: [{experimentId, metric, superseded}] (superseded: the points later runs replaced, docs/branches.md). Returns {answers, stepTimes} (stepTimes null: keep the chart's).
export function readSeries(series, { maxPoints, stepRange, withTimes, haveAnchors }) {
  // Many runs' same metric (compare): one seriesBatch request, however many runs (aliases stopped near 65).
  if (series.length > 1 && series.every((s) => s.metric === series[0].metric && !s.superseded)) {
    return readBatch(series, { maxPoints, stepRange, withTimes, haveAnchors });
  }
  const varDefs = ["$maxPoints: Int", "$stepMin: Float", "$stepMax: Float"];
  const fields = [];
  const variables = { maxPoints, stepMin: null, stepMax: null };
  if (stepRange) [variables.stepMin, variables.stepMax] = stepRange;
  series.forEach((s, i) => {
    varDefs.push(`$e${i}: ID!`, `$m${i}: String!`);
    variables[`e${i}`] = s.experimentId;
    variables[`m${i}`] = s.metric;
    fields.push(`s${i}: experiment(id: $e${i}) { metric(name: $m${i}, maxPoints: $maxPoints, stepMin: $stepMin, stepMax: $stepMax${s.superseded ? ", superseded: true" : ""}) { count steps values min max } }`);
  });
  return Promise.all([
    api.graphql(`query Series(${varDefs.join(", ")}) { ${fields.join(" ")} }`, variables),
    withTimes ? readStepTimes(series) : null,
  ]).then(([data, stepTimes]) => ({ answers: series.map((_, i) => data[`s${i}`] && data[`s${i}`].metric), stepTimes }));
}

async function readBatch(series, { maxPoints, stepRange, withTimes, haveAnchors }) {
  const [stepMin, stepMax] = stepRange || [null, null];
  const data = await api.graphql(`query SeriesBatch($ids: [ID!]!, $name: String!, $n: Int, $x: String, $stepMin: Float, $stepMax: Float) {
      seriesBatch(experimentIds: $ids, name: $name, maxPoints: $n, x: $x, stepMin: $stepMin, stepMax: $stepMax, encoding: "base64") {
        count steps values min max ${withTimes ? "times" : ""} } }`,
  { ids: series.map((s) => s.experimentId), name: series[0].metric, n: bucketsFor(series.length, maxPoints, withTimes),
    x: withTimes ? "time" : "step", stepMin, stepMax });
  const answers = data.seriesBatch.map(decodeEnvelope);
  // The answer's own (step, time) pairs are the time axis' anchors; a zoomed answer keeps the whole run's ones.
  const fresh = withTimes && (!stepRange || !haveAnchors);
  return { answers, stepTimes: fresh ? answers.map((m) => anchorsOf(m || {})) : null };
}

// Series answers carry steps only; a few thousand (step, time) anchors place every point on a wall-time axis.
function readStepTimes(series) {
  return Promise.all(series.map((s) => api.rest(
    `/experiments/${encodeURIComponent(s.experimentId)}/step-times?name=${encodeURIComponent(s.metric)}&max_points=2000`)
    .catch(() => ({ steps: [], timestamps: [] }))));
}

// Keeps a MetricChart fed: load() reads for the chart's current range and axis and hands the answer over (a newer
// load supersedes an older one still in flight); the chart's zoom and axis changes call load() again.
export function feedChart(chart, onError = console.error) {
  let number = 0;
  const load = async () => {
    const mine = ++number;
    // The requests leave first (in this same task); only then may plotly start evaluating.
    const [answer] = await Promise.all([
      readSeries(chart.series, { maxPoints: chart.pixelWidth(), stepRange: chart.stepRange, withTimes: chart.xMode !== "step",
                                 haveAnchors: chart.stepTimes.length > 0 }),
      loadPlotly(),
    ]);
    if (mine === number) chart.setData(answer.answers, answer.stepTimes);
  };
  chart.onNeedData = () => load().catch(onError);
  return load;
}
