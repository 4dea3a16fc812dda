// The dashboard in a real browser (run by tests/serve.rs): Debian's Chromium, driven by
// Playwright's core. Opens a sweep's page while the sweep trains, waits for the learning-curve
// chart to gain points without a reload, hovers a point, clicks a legend entry, opens a run's
// page, and takes a screenshot. Prints what it saw as one JSON line; exits non-zero on failure.
//   SIMSWEEP_URL, SIMSWEEP_SWEEP, SIMSWEEP_SHOT (PNG path), SIMSWEEP_CHROMIUM (browser path)
'use strict';
const { chromium } = require('playwright-core');

const url = process.env.SIMSWEEP_URL;
const sweep = process.env.SIMSWEEP_SWEEP;
const shot = process.env.SIMSWEEP_SHOT;

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.SIMSWEEP_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const out = { errors: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
    page.on('pageerror', e => out.errors.push(`pageerror: ${e.message}`));
    // A chart whose data is not there yet is answered 404/400 and says so in its card; the
    // browser logs each such answer, which is not an error of the page.
    out.http_errors = 0;
    page.on('console', m => {
      if (m.type() !== 'error') return;
      if (m.text().startsWith('Failed to load resource')) out.http_errors++;
      else out.errors.push(`console: ${m.text()}`);
    });
    const requests = [];
    page.on('request', r => requests.push(r.url()));
    await page.goto(`${url}#/sweep/${encodeURIComponent(sweep)}?metric=loss`);
    const curves = '#chart-curves svg';
    await page.waitForSelector(curves, { timeout: 60000 });
    const points = () => page.$eval(curves, s => +s.getAttribute('data-points'));
    out.points_first = await points();
    out.status_first = await page.$$eval('tr[data-run] .badge', b => b.map(x => x.textContent));
    // New points while the sweep trains, with no reload (the page polls the API).
    const t0 = Date.now();
    await page.waitForFunction(([sel, n]) => {
      const s = document.querySelector(sel);
      return s && +s.getAttribute('data-points') > n;
    }, [curves, out.points_first], { timeout: 90000, polling: 200 });
    out.points_later = await points();
    out.seconds_to_new_points = (Date.now() - t0) / 1000;
    out.navigations = requests.filter(u => !u.includes('/api/') && !u.includes('/assets/') && !u.endsWith('.svg')).length;
    // Hover: the tooltip names a series, a step and a value.
    const box = await page.$eval(`${curves} .panel rect.frame`, r => { const b = r.getBoundingClientRect(); return [b.x, b.y, b.width, b.height]; });
    let tip = '';
    for (let i = 1; i < 40 && !tip; i++) {
      await page.mouse.move(box[0] + box[2] * (i / 40), box[1] + box[3] * 0.5, { steps: 2 });
      for (let j = 0; j < 20 && !tip; j++) {
        await page.mouse.move(box[0] + box[2] * (i / 40), box[1] + box[3] * (j / 20));
        await page.waitForTimeout(20);
        tip = await page.$eval('#chart-curves .tip', t => t.style.display === 'block' ? t.textContent : '');
      }
    }
    out.tooltip = tip;
    // Nothing on the page reads as a JavaScript value instead of text.
    out.bad_text = await page.evaluate(() => (document.body.innerText.match(/\[object \w+\]|\bundefined\b|\bnull\b|\bNaN\b/g) || []));
    // The screenshot: the charts in view.
    await page.$eval('#chart-curves', e => e.scrollIntoView());
    await page.mouse.move(5, 5);
    await page.screenshot({ path: shot, fullPage: false });
    // Downloads: the chart as SVG and PNG, the run table as CSV.
    const grab = async (selector) => {
      const [d] = await Promise.all([page.waitForEvent('download', { timeout: 15000 }), page.click(selector)]);
      const path = `${shot}.${d.suggestedFilename()}`;
      await d.saveAs(path);
      return { name: d.suggestedFilename(), path };
    };
    out.downloads = [
      await grab('#chart-curves header button:nth-of-type(1)'),
      await grab('#chart-curves header button:nth-of-type(2)'),
      await grab('.table-tools button'),
    ];
    // A legend entry hides its series, and the URL keeps it.
    const before = await page.$$eval(`${curves} g.series`, g => g.length);
    const label = await page.$eval(`${curves} .legend-entry[cursor=pointer]`, e => e.getAttribute('data-label'));
    await page.click(`${curves} .legend-entry[data-label="${label}"]`);
    await page.waitForFunction(([sel, n]) => document.querySelectorAll(`${sel} g.series`).length < n, [curves, before], { timeout: 10000 });
    out.legend_label = label;
    out.series_before = before;
    out.series_after = await page.$$eval(`${curves} g.series`, g => g.length);
    out.hash_after_legend = decodeURIComponent(await page.evaluate(() => location.hash));
    // The other charts drew, or said why not.
    out.cards = await page.$$eval('section.card[data-kind]', cs => cs.map(c => ({
      kind: c.dataset.kind, svg: !!c.querySelector('svg'), message: c.querySelector('.chart-msg').textContent })));
    // Select a run in the table: its own curve is overlaid.
    const first = await page.$eval('tr[data-run]', r => r.dataset.run);
    await page.click(`tr[data-run="${first}"] input[type=checkbox]`);
    await page.waitForSelector(`${curves} path.overlay[data-run="${first}"]`, { timeout: 15000 });
    out.overlay = first;
    // The run's page.
    await page.click(`tr[data-run="${first}"] a`);
    await page.waitForSelector('.mini[data-metric="loss"] svg', { timeout: 20000 });
    out.run_page_title = await page.title();
    out.run_page_tables = await page.$$eval('section.card h2', h => h.map(x => x.textContent));
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
}

main().catch(e => { console.error(e && e.stack || String(e)); process.exit(1); });
