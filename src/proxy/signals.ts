// SIGINT and SIGTERM as the proxy's shutdown requests: the first starts a drain, the second aborts what is
// left. The handlers are installed at once (a signal that arrives while starting up still gets a clean
// shutdown) and stay installed until remove(), so a second signal is ours too (node's default would exit
// without flushing the CSV files).

export interface ShutdownSignals {
  /** Resolves with the first signal received (also one received before this was asked). */
  readonly first: Promise<NodeJS.Signals>;
  /** The second signal: already received, or the next one. Ask once the first has come. */
  second(): Promise<NodeJS.Signals>;
  /** Uninstall the handlers. */
  remove(): void;
}

export function catchShutdownSignals(): ShutdownSignals {
  const signals: NodeJS.Signals[] = [];
  let onSignal: ((signal: NodeJS.Signals) => void) | undefined;
  const handler = (signal: NodeJS.Signals): void => {
    signals.push(signal);
    onSignal?.(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
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
    remove: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
