// Drives weir serve's console in Debian's headless Chromium, as an operator would, and
// says what it saw: `node drive.mjs SCENARIO` with the server and tokens in the
// environment (tests/e2e/console.rs sets them and checks the API side). Each step prints
// `ok <step>`; a step that does not see what it should exits non-zero saying what it saw.
// Screenshots go to $WEIR_SHOTS.
import puppeteer from 'puppeteer-core';

const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const url = env('WEIR_URL');
const shots = env('WEIR_SHOTS');
const timeout = 30000;

const browser = await puppeteer.launch({
  executablePath: process.env.WEIR_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  // Root in a container has no user namespace for Chromium's sandbox.
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const page = await browser.newPage();
await page.setViewport({ width: 1366, height: 800 });
const problems = [];
const expected401 = process.argv[2] === 'refused';
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('response', (r) => {
  if (r.status() >= 400 && !(expected401 && r.status() === 401)) problems.push(`${r.status()} from ${r.request().method()} ${r.url()}`);
});
// A refused token's 401 is the browser's own console line in the scenario that expects it.
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  if (expected401 && m.text().includes('status of 401')) return;
  // The offline scenario's own: the server is gone.
  if (process.argv[2] === 'offline' && /ERR_CONNECTION_REFUSED|ERR_INCOMPLETE_CHUNKED_ENCODING/.test(m.text())) return;
  problems.push(`console error: ${m.text()}`);
});

function fail(message) {
  console.error(`FAILED: ${message}`);
  process.exitCode = 1;
  throw new Error(message);
}

async function signIn(token) {
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('#token', { visible: true, timeout });
  await page.type('#token', token);
  await page.click('#sign-in button[type=submit]');
}

async function text(selector) {
  return page.$eval(selector, (e) => e.textContent);
}

/** Waits until `check()` (run in the page) is true. */
async function until(what, check, ...args) {
  try {
    await page.waitForFunction(check, { timeout, polling: 100 }, ...args);
  } catch {
    const says = (await text('body')).slice(0, 2000);
    fail(`${what}: not seen within ${timeout} ms; the page says: ${says}\n${problems.join('\n')}`);
  }
}

const rows = () => page.$$eval('#pipelines tbody tr', (trs) => trs.map((tr) => tr.dataset.pipeline));

try {
  switch (process.argv[2]) {
    case 'refused': {
      await signIn('not-a-token');
      await until('the refusal', () => document.getElementById('sign-in-error').textContent.includes('refused'));
      if (!(await page.$eval('#view', (e) => e.hidden))) fail('the view is shown without a valid token');
      if (await page.evaluate(() => sessionStorage.getItem('weir-token'))) fail('a refused token was kept');
      console.log('ok refused');
      break;
    }
    case 'tenant': {
      const mine = env('WEIR_MINE').split(',');
      const theirs = env('WEIR_THEIRS').split(',');
      await signIn(env('WEIR_TOKEN'));
      await until('my pipelines', (n) => document.querySelectorAll('#pipelines tbody tr').length === n, mine.length);
      const shown = await rows();
      if ([...shown].sort().join() !== [...mine].sort().join()) fail(`shows ${shown}, not ${mine}`);
      if (shown.some((n) => theirs.includes(n))) fail(`shows another tenant's pipeline: ${shown}`);
      // The token is in session storage only: not in the URL, not in a cookie.
      const leaked = await page.evaluate((t) => location.href.includes(t) || document.cookie.includes(t), env('WEIR_TOKEN'));
      if (leaked) fail('the token is in the URL or a cookie');
      const formShown = await page.$eval('#sign-in', (f) => getComputedStyle(f).display !== 'none');
      if (formShown) fail('the sign-in form is still shown after signing in');
      console.log('ok only mine');

      // Every field has a label, every button a name: usable without a mouse or eyes.
      const unlabelled = await page.$$eval('input, select', (all) => all.filter((e) => !e.hidden && e.labels.length === 0).map((e) => e.id));
      const nameless = await page.$$eval('button', (all) => all.filter((b) => !b.textContent.trim()).length);
      if (unlabelled.length || nameless) fail(`unlabelled fields ${unlabelled}, ${nameless} buttons without a name`);
      console.log('ok labels');

      // A running pipeline's counters move without a reload.
      const running = env('WEIR_RUNNING');
      const cell = `#pipelines tr[data-pipeline="${running}"] td[data-field="records_out"]`;
      const first = Number((await text(cell)).replaceAll(',', ''));
      await until(
        'the counter moving',
        (sel, was) => Number(document.querySelector(sel)?.textContent.replaceAll(',', '')) > was,
        cell,
        first,
      );
      await page.screenshot({ path: `${shots}/console-pipelines.png` });
      console.log('ok counters move');

      // Filtering by state.
      await page.select('#filter-state', 'failed');
      const failing = env('WEIR_FAILING');
      await until('the state filter', (n) => {
        const shown = [...document.querySelectorAll('#pipelines tbody tr')].map((tr) => tr.dataset.pipeline);
        return shown.length === 1 && shown[0] === n;
      }, failing);
      await page.select('#filter-state', '');
      console.log('ok filter');

      // A failing pipeline's page shows its error in full.
      await page.goto(`${url}/#/pipelines/${failing}`, { waitUntil: 'load' });
      await until('the last error', (want) => document.getElementById('last-error')?.textContent.includes(want), env('WEIR_ERROR'));
      await page.screenshot({ path: `${shots}/console-failed-pipeline.png`, fullPage: true });
      console.log('ok error shown');

      // A pipeline's dead letters, newest first, with their reasons.
      await page.goto(`${url}/#/pipelines/${env('WEIR_REJECTING')}`, { waitUntil: 'load' });
      await until('the dead letters', () => {
        const rows = [...document.querySelectorAll('#dead-letters tbody tr')];
        return rows.length === 10 && rows.every((r) => r.textContent.includes('multiple of three'));
      });
      // A reason is text: markup a plugin put in it is shown, never run.
      const ran = await page.evaluate(() => window.pwned !== undefined || document.querySelector('#dead-letters img') !== null);
      if (ran) fail('markup in a dead letter became part of the page');
      if (!(await text('#dead-letters tbody')).includes('<img src=x')) fail('the reason is not shown as text');
      console.log('ok dead letters');

      // Pause from the page; the test then asks the API.
      await page.goto(`${url}/#/pipelines/${running}`, { waitUntil: 'load' });
      await page.waitForSelector('#pause', { visible: true, timeout });
      await page.click('#pause');
      await until('paused', () => document.getElementById('state')?.textContent === 'paused');
      await until('the history', () => document.querySelector('main table tbody')?.textContent.includes('paused'));
      await page.screenshot({ path: `${shots}/console-pipeline.png`, fullPage: true });
      console.log('ok paused');
      break;
    }
    case 'offline': {
      // Signed in and live; the test then stops the server, and a banner must say so.
      await signIn(env('WEIR_TOKEN'));
      await until('live rows', () => document.querySelectorAll('#pipelines tbody tr').length > 0);
      if (!(await page.$eval('#offline', (b) => b.hidden))) fail('the banner shows while the server is up');
      console.log('ok live');
      await until('the offline banner', () => !document.getElementById('offline').hidden);
      await page.screenshot({ path: `${shots}/console-offline.png` });
      console.log('ok offline banner');
      break;
    }
    case 'admin': {
      await signIn(env('WEIR_ADMIN'));
      const tenants = env('WEIR_TENANTS').split(',');
      await until('the tenants', (n) => document.querySelectorAll('#tenants tbody tr').length === n, tenants.length);
      const shown = await page.$$eval('#tenants tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
      if ([...shown].sort().join() !== [...tenants].sort().join()) fail(`shows tenants ${shown}, not ${tenants}`);
      const used = await page.$$eval('#tenants tbody tr', (trs) => trs.map((tr) => tr.cells[1].textContent));
      if (!used.some((u) => /^[1-9]\d* of /.test(u))) fail(`no tenant shows its pipelines in use: ${used}`);
      await page.screenshot({ path: `${shots}/console-tenants.png` });
      console.log('ok tenants');
      break;
    }
    default:
      fail(`no scenario ${process.argv[2]}`);
  }
  if (problems.length) fail(problems.join('\n'));
} finally {
  await browser.close();
}
