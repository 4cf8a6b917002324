// Open alerts per experiment, for the badge beside a run in the navigator and on the alerts page (docs/alerts.md).
// One small query; a server without alert fields (older) or a token that may not read them just shows no badges.

import { api } from "./api.js";
import { el } from "./dom.js";

const LEVELS = ["INFO", "WARNING", "ERROR", "CRITICAL"];

export const alertBadges = {
  open: new Map(),  // experiment id → {count, level (the worst)}

  async refresh() {
    let found = [];
    try {
      found = (await api.graphql(`{ alerts(open: true, limit: 1000) { experimentId level } }`)).alerts || [];
    } catch (error) {
      found = [];
    }
    const open = new Map();
    for (const a of found) {
      const seen = open.get(a.experimentId) || { count: 0, level: "INFO" };
      seen.count++;
      if (LEVELS.indexOf(a.level) > LEVELS.indexOf(seen.level)) seen.level = a.level;
      open.set(a.experimentId, seen);
    }
    this.open = open;
  },

  badge(experimentId) {
    const seen = this.open.get(experimentId);
    if (!seen) return null;
    return el("a", { href: `#/alerts?exp=${encodeURIComponent(experimentId)}`, class: `alert-badge alert-${seen.level}`,
      title: `${seen.count} open alert${seen.count > 1 ? "s" : ""}`, "data-alerts": seen.count }, `⚠ ${seen.count}`);
  },
};
