// The experiments of one settings generation: one per route (its arms, --assign, --assign-seed, --guard).
// Built at start and at each reload from the routes' options; a route whose experiment did not change
// (same id, arms, assignment and seed) carries on the previous generation's blocks and guard records. A
// route without --assign-seed gets a seed drawn once (injected: the caller's random source) and keeps it
// across reloads that leave its experiment alone, so that its blocks can carry over.

import type { Arm } from './arms.js';
import { sameArms } from './arms.js';
import type { AssignMode } from './assigner.js';
import { Experiment } from './experiment.js';

/** What a route's experiment is built from (a subset of ProxyOptions, and the route's id). */
export interface ExperimentRoute {
  /** The route's id (logs, metrics); undefined = not known yet, never carried over. */
  id: string | undefined;
  arms: readonly Arm[];
  assign: AssignMode;
  assignSeed?: number | undefined;
  guard: boolean;
}

/** One route's experiment as the start-up or reload line describes it. */
export interface ExperimentDescription {
  route: string | undefined;
  arms: string[];
  assign: AssignMode;
  /** The seed in use: the one given, or the one drawn. */
  seed: number;
  seedGiven: boolean;
  guard: boolean;
  /** The previous generation's blocks and guard records go on. */
  carriedOver: boolean;
}

export class ExperimentGeneration {
  /** By route index, as the routes were given. */
  readonly experiments: readonly Experiment[];
  readonly descriptions: readonly ExperimentDescription[];
  private readonly byId: ReadonlyMap<string, Experiment>;

  constructor(routes: readonly ExperimentRoute[], randomSeed: () => number, previous?: ExperimentGeneration) {
    const experiments: Experiment[] = [];
    const descriptions: ExperimentDescription[] = [];
    const byId = new Map<string, Experiment>();
    for (const route of routes) {
      const before = route.id === undefined ? undefined : previous?.byId.get(route.id);
      const same = (seed: number): boolean =>
        before !== undefined && before.settings.assign === route.assign && before.settings.seed === seed && sameArms(before.settings.arms, route.arms);
      // No seed given: keep the one drawn before when the experiment is otherwise the same, else draw one.
      const seed = route.assignSeed ?? (before !== undefined && same(before.settings.seed) ? before.settings.seed : randomSeed());
      const experiment = new Experiment({ arms: route.arms, assign: route.assign, seed, guard: route.guard });
      const carriedOver = before !== undefined && same(seed) && experiment.continueFrom(before);
      experiments.push(experiment);
      if (route.id !== undefined) byId.set(route.id, experiment);
      descriptions.push({
        route: route.id,
        arms: route.arms.map((a) => a.label),
        assign: route.assign,
        seed,
        seedGiven: route.assignSeed !== undefined,
        guard: route.guard,
        carriedOver,
      });
    }
    this.experiments = experiments;
    this.descriptions = descriptions;
    this.byId = byId;
  }
}
