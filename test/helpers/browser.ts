// A page opened in a real browser: Debian's Chromium (/usr/bin/chromium, installed by
// scripts/ensure-test-deps.sh), driven by playwright-core, which never downloads a browser. Headless,
// no sandbox (root in containers), no GPU, a fresh profile, and every background service that would try to
// reach the network switched off, so that any request seen is one the page made.

import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';
import { PNG } from 'pngjs';

export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
];

/** Why the browser test cannot run, or undefined when Chromium is there. */
export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM)
    ? undefined
    : `${CHROMIUM} not found: the report's browser test needs Debian's chromium (apt-get install chromium; scripts/ensure-test-deps.sh installs it when run as root or with sudo)`;
}

export interface OpenedPage {
  page: Page;
  url: string;
  /** Console messages of type error, and uncaught page errors. */
  errors: string[];
  /** Every request the page made (URL), the page itself included. */
  requests: string[];
  close(): Promise<void>;
}

/** Open a local file in headless Chromium with a fresh profile under `tmpDir`, recording errors and requests. */
export async function openFile(file: string, tmpDir: string, viewport = { width: 1280, height: 800 }): Promise<OpenedPage> {
  const missing = chromiumMissing();
  if (missing) throw new Error(missing);
  const profile = await mkdtemp(path.join(tmpDir, 'chromium-profile-'));
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    timeout: 60_000,
  });
  const errors: string[] = [];
  const requests: string[] = [];
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
  context.on('request', (r) => requests.push(r.url()));
  const url = pathToFileURL(file).href;
  await page.goto(url, { waitUntil: 'load', timeout: 30_000 });
  return {
    page,
    url,
    errors,
    requests,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Distinct colours in a PNG (up to `cap`): a blank screenshot has one or two. */
export function distinctColours(png: Buffer, cap = 10_000): number {
  const img = PNG.sync.read(png);
  const seen = new Set<number>();
  for (let i = 0; i < img.data.length && seen.size < cap; i += 4) {
    seen.add(img.data.readUInt32BE(i));
  }
  return seen.size;
}
