// The signals the control plane answers. SIGINT and SIGTERM are shutdown requests: the first starts a drain,
// the second aborts what is left. SIGHUP is a reload request (re-read --config); node's default for it would
// kill the process at once, associations in flight included. The handlers are installed at once (a signal
// that arrives while starting up is not lost) and stay installed for the life of the process, so a second
// signal is ours too (node's default would exit without flushing the CSV files), and so is one that comes
// while the process exits.

export interface ControlSignals {
  /** Resolves with the first shutdown signal received (also one received before this was asked). */
  readonly first: Promise<NodeJS.Signals>;
  /** The second shutdown signal: already received, or the next one. Ask once the first has come. */
  second(): Promise<NodeJS.Signals>;
  /** Call `handler` on every SIGHUP from now on (SIGHUPs before this are ignored). */
  onReload(handler: () => void): void;
}

export function catchControlSignals(): ControlSignals {
  const signals: NodeJS.Signals[] = [];
  let onSignal: ((signal: NodeJS.Signals) => void) | undefined;
  let onHup: (() => void) | undefined;
  const handler = (signal: NodeJS.Signals): void => {
    signals.push(signal);
    onSignal?.(signal);
  };
  const hup = (): void => onHup?.();
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  process.on('SIGHUP', hup);
  const nextSignal = (): Promise<NodeJS.Signals> =>
    new Promise((resolve) => {
      onSignal = (signal) => {
        onSignal = undefined;
        resolve(signal);
      };
    });
  return {
    first: nextSignal(),
    second: () => (signals.length > 1 ? Promise.resolve(signals[1]!) : nextSignal()),
    onReload: (h) => (onHup = h),
  };
}
