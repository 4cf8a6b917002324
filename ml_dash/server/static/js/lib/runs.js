// The runs of an experiment as segments of one history (docs/branches.md): each run begins at its branch step and
// shows its points up to the step a later run supersedes it from. The ranks of one distributed job are one segment.
// Pure: the experiment page's runs strip (experiment_runs.js) draws what these return.

// A job's status from its ranks': running while any rank runs, else the worst ending, else the first's.
const STATUS_ORDER = ["RUNNING", "CRASHED", "FAILED", "COMPLETED"];

function jobStatus(runs) {
  const statuses = runs.map((r) => r.status);
  return STATUS_ORDER.find((s) => statuses.includes(s)) || statuses[0] || null;
}

const minOf = (values) => {
  const known = values.filter((v) => v !== null && v !== undefined);
  return known.length ? Math.min(...known) : null;
};

// runs: the GraphQL Experiment.runs, in start order ({id, status, startedAt, branchStep, supersededFrom, jobId, rank}).
// Returns one segment per job, in the order the jobs started: {id, runs, ranks, status, startedAt, from, to, appends,
// superseded}. from: the step it begins at (null: the start of the history); to: the step from which a later run
// supersedes it (null: never); appends: a later run that supersedes nothing (append=True); superseded: none of its
// steps shows any more.
export function runSegments(runs) {
  const jobs = new Map();
  for (const run of runs || []) {
    const key = run.jobId ? `job:${run.jobId}` : `run:${run.id}`;
    if (!jobs.has(key)) jobs.set(key, []);
    jobs.get(key).push(run);
  }
  return [...jobs.values()].map((members, index) => {
    const from = minOf(members.map((r) => r.branchStep));
    const to = minOf(members.map((r) => r.supersededFrom));
    const ranked = [...members].sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0));
    return {
      id: ranked[0].id, runs: ranked, ranks: members.length, jobId: members[0].jobId || null,
      status: jobStatus(members), startedAt: minOf(members.map((r) => r.startedAt)),
      from, to, appends: index > 0 && from === null,
      superseded: to !== null && to <= (from ?? 0),
    };
  });
}

// The range of steps a segment still shows, in words.
export function shownRange(segment) {
  const { from, to } = segment;
  if (segment.superseded) return "fully superseded";
  if (from === null && to === null) return "every step";
  if (to === null) return `steps ≥ ${from}`;
  if (from === null) return `steps < ${to}`;
  return `${from} ≤ step < ${to}`;
}

// Where a segment begins, in words.
export function beginsAt(segment) {
  if (segment.appends) return "appends";
  return segment.from === null ? "start" : `step ${segment.from}`;
}

// The strip's bars: {left, width} in percent of a common step axis from 0 to a little past the last known step (a
// run still going on, or the last one, reaches the right edge). A segment that shows nothing gets a zero width.
export function stripGeometry(segments) {
  const known = segments.flatMap((s) => [s.from, s.to]).filter((v) => v !== null && isFinite(v));
  const top = Math.max(1, ...known) * 1.25;
  const at = (step) => Math.max(0, Math.min(100, (100 * step) / top));
  return segments.map((s) => {
    const left = at(s.from ?? 0);
    const right = s.to === null ? 100 : at(s.to);
    return { left, width: Math.max(0, right - left) };
  });
}

// The compare view's address for ids (with the metrics ticked): #/compare?ids=a,b&metric=m.
export function compareHref(ids, metrics = []) {
  const unique = [...new Set(ids.filter(Boolean))];
  return `#/compare?ids=${unique.map(encodeURIComponent).join(",")}${metrics.map((m) => `&metric=${encodeURIComponent(m)}`).join("")}`;
}

// The ids an overlay of a fork family shows: the parent (if any), this experiment, then its forks.
export function lineageIds(experimentId, lineage) {
  if (!lineage) return [experimentId];
  return [...(lineage.parent ? [lineage.parent.id] : []), experimentId, ...(lineage.children || []).map((c) => c.id)];
}

// Whether any point of the experiment is superseded (the charts' "show superseded" toggle is offered only then).
export const hasSuperseded = (runs) => (runs || []).some((r) => r.supersededFrom !== null && r.supersededFrom !== undefined);
