// The arms of an experiment (--max-pdu 16KB,64KB,128KB): one Maximum Length each, told to the SCU in the
// A-ASSOCIATE-AC of the associations assigned to it. One value is one arm (today's meaning); none, no arm.

/** One arm: its place in the list, its label in records (the size as written) and the value it tells SCUs. */
export interface Arm {
  /** 0-based position in the list as written. */
  index: number;
  /** The size exactly as written ("16KB", "1MB", "65536"); a repeat gets "#2", "#3" ("16KB#2"). */
  label: string;
  /** The Maximum Length written into the A-ASSOCIATE-AC. */
  maxPdu: number;
}

/** The `arm` label value in metrics for an association without an arm (no --max-pdu at all). */
export const NO_ARM_METRIC_LABEL = 'none';

/** The items of a list as written: `16KB,64KB` (a flag, the environment) or `16KB/64KB` (a --route value). */
export function splitArmList(text: string): string[] {
  return text.split(/[,/]/).map((item) => item.trim());
}

/**
 * Arms from the sizes as written and their values (`written[i]` parses to `sizes[i]`). A value written a
 * second time is a second arm told the same (an A/A run); its label gets "#2", the third "#3".
 */
export function makeArms(written: readonly string[], sizes: readonly number[]): Arm[] {
  const seen = new Map<string, number>();
  return written.map((text, index) => {
    const label = text.trim();
    const n = (seen.get(label) ?? 0) + 1;
    seen.set(label, n);
    return { index, label: n === 1 ? label : `${label}#${n}`, maxPdu: sizes[index]! };
  });
}

/** The arm's label in CSV rows and log lines ('' without an arm). */
export function armCsvLabel(arm: Arm | undefined): string {
  return arm === undefined ? '' : arm.label;
}

/** The arm's label in metrics ("none" without an arm). */
export function armMetricLabel(arm: Arm | undefined): string {
  return arm === undefined ? NO_ARM_METRIC_LABEL : arm.label;
}

/** Same labels and values in the same order: an experiment that did not change (a reload keeps its blocks). */
export function sameArms(a: readonly Arm[], b: readonly Arm[]): boolean {
  return a.length === b.length && a.every((arm, i) => arm.label === b[i]!.label && arm.maxPdu === b[i]!.maxPdu);
}
