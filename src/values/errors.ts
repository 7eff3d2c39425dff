/** A bad flag, config value or environment value: reported as one line, exit status 2. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
