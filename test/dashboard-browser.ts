import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/**
 * Headless Chromium for the dashboard's end-to-end files (Debian's package, driven by
 * playwright-core; no browser download): launch, log in, screenshot + axe check. Any uncaught
 * page error is collected in `pageErrors` (a test asserts it is empty).
 */
export const CHROMIUM = '/usr/lib/chromium/chromium';
export const SHOTS = join(process.cwd(), 'test-results', 'dashboard');
export const haveChromium = existsSync(CHROMIUM);
export const chromiumSkip = !haveChromium && process.env.CI !== 'true' ? `Chromium not installed at ${CHROMIUM} (apt-get install chromium); set CI=true to make this a failure` : false;

const AXE_SOURCE = readFileSync(join(process.cwd(), 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

export interface Browser {
  ctx: BrowserContext;
  pageErrors: string[];
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  assert.ok(haveChromium, `Chromium is required with CI=true: ${CHROMIUM} is missing`);
  mkdirSync(SHOTS, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'lifeboat-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
    timezoneId: 'America/New_York',
    locale: 'en-US',
  });
  const pageErrors: string[] = [];
  ctx.on('page', (p) => {
    p.on('pageerror', (e) => pageErrors.push(`${p.url()}: ${e.message}`));
    p.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(`${p.url()}: ${m.text()}`);
    });
  });
  return {
    ctx,
    pageErrors,
    async close() {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** axe-core (WCAG 2 A/AA rules) over the DevTools protocol: no serious or critical violation. */
export async function a11y(page: Page, name: string): Promise<void> {
  if (!(await page.evaluate('typeof window.axe === "object"'))) await page.evaluate(AXE_SOURCE);
  const found = (await page.evaluate(`axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } }).then((r) =>
    r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => v.id + ': ' + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')))`)) as string[];
  assert.deepEqual(found, [], `accessibility of ${name}`);
}

/** A full-page screenshot into test-results/dashboard/<name>.png, then the axe check. */
export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  await a11y(page, name);
}

export async function logIn(page: Page, user: string, password: string, project: string): Promise<void> {
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByLabel('Project').fill(project);
  await page.getByRole('button', { name: 'Log in' }).click();
}
