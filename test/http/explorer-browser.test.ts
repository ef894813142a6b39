/**
 * The API explorer (/docs, Swagger UI) in a real browser (Debian's chromium, headless, driven by
 * playwright-core): a user creates a session, pastes its token into "Authorize", and runs an op.
 * Without a `security` entry on each operation the explorer sends no token and the op answers 401.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { startServer, type TestServer } from '../helpers/server.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

let srv: TestServer;
let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (npm test installs it when run as root)`);
  srv = await startServer();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await srv?.close();
});

describe('the API explorer in a browser', () => {
  it('creates a session, authorizes with its token, and runs an op', async () => {
    const page = await browser.newPage();
    await page.goto(`${srv.url}/docs`);

    const create = page.locator('#operations-sessions-post_v1_sessions');
    await create.locator('.opblock-summary').click();
    await create.locator('button.try-out__btn').click();
    await create.locator('textarea.body-param__text').fill('{"seed": 1}');
    await create.locator('button.execute').click();
    const created = create.locator('.live-responses-table .response-col_description pre').first();
    await created.waitFor({ timeout: 20_000 });
    const session = JSON.parse(await created.innerText()) as { id: string; token: string };
    expect(session.token.length).toBeGreaterThan(20);

    await page.locator('.btn.authorize').first().click();
    const dialog = page.locator('.dialog-ux');
    await dialog.locator('input').first().fill(session.token);
    await dialog.locator('button.authorize').first().click();
    await dialog.locator('button.btn-done, button.close-modal').first().click();

    const ops = page.locator('#operations-ops-post_v1_sessions__sid__ops');
    await ops.locator('.opblock-summary').click();
    await ops.locator('button.try-out__btn').click();
    await ops.locator('input[placeholder="sid"]').fill(session.id);
    await ops.locator('textarea.body-param__text').fill('{"expr": "nd.array([1, 2, 3]).sum()"}');
    await ops.locator('button.execute').click();
    const status = ops.locator('.live-responses-table .response .response-col_status').first();
    await status.waitFor({ timeout: 20_000 });
    expect((await status.innerText()).trim()).toBe('200');
    const answer = JSON.parse(await ops.locator('.live-responses-table .response-col_description pre').first().innerText());
    expect(answer.result.data).toEqual([6]);
    expect(await ops.locator('.curl-command').first().innerText()).toContain(`Authorization: Bearer ${session.token}`);
    await page.close();
  }, 90_000);
});
