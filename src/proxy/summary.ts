// The 'association closed' line: duration, outcome, each link's counters and where the time went; and a
// warning when peers sent PDUs over the Maximum Length announced to them.

import type { Logger } from 'pino';
import type { AssociationOutcome } from '../events/events.js';
import type { MessageTracker } from '../dimse/tracker.js';
import { timeSplitSummary } from '../record/messages-csv.js';
import type { Link } from './link.js';

/** A link's counters as the summary line shows them. */
function linkFields(link: Link): Record<string, number> {
  const c = link.counters;
  return { bytesIn: c.bytesIn, pdusIn: c.pdusIn, bytesOut: c.bytesOut, pdusOut: c.pdusOut, violations: c.violations, largestPduIn: link.largestPduIn };
}

export function logClosed(log: Logger, durationMs: number, outcome: AssociationOutcome, reason: string | undefined, toScp: Link, toScu: Link, tracker: MessageTracker): void {
  log.info(closedLogFields(durationMs, outcome, reason, toScp, toScu, tracker), 'association closed');
  const up = toScp.counters.violations;
  const down = toScu.counters.violations;
  if (up + down > 0) log.warn({ toScp: up, toScu: down }, 'peers sent PDUs over the Maximum Length announced to them; repaired by re-fragmenting');
}

function closedLogFields(durationMs: number, outcome: AssociationOutcome, reason: string | undefined, toScp: Link, toScu: Link, tracker: MessageTracker): Record<string, unknown> {
  return {
    durationMs: Math.round(durationMs),
    outcome,
    reason,
    toScp: linkFields(toScp),
    toScu: linkFields(toScu),
    ...timeSplitSummary(tracker.totals, tracker.undecodable),
  };
}
