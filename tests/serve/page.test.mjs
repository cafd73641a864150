// The chat page rsr-serve serves at /, in headless Chromium (run by client.sh page): it loads with
// the model's facts and manifest, a message typed and sent gets a reply streamed into the page,
// and a screenshot of the result is written for a person to look at.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const launch = () => chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

/* A page of the server at a viewport width, closed afterwards; body gets it and the page errors so far. */
async function onPage(width, body) {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width, height: 800 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await body(page, errors);
  } finally {
    await browser.close();
  }
}

test('the chat page loads, streams a reply and is photographed', async () => {
  await onPage(1200, async (page, errors) => {
    await page.goto(process.env.RSR_URL + '/');
    await page.waitForFunction(() => document.getElementById('model').textContent === 'small');
    assert.match(await page.textContent('#manifest'), /matrix/);
    assert.match(await page.textContent('#facts'), /BitNetForCausalLM/);
    await page.fill('#max', '24');
    await page.fill('#temp', '30'); // the test model's random weights: a high temperature gives varied text
    await page.fill('#input', 'Tell me about ternary models');
    await page.click('#send');
    await page.waitForSelector('.msg.user');
    // the reply is streamed into the assistant's bubble; the button comes back when it is done
    await page.waitForFunction(() => !document.getElementById('send').disabled &&
                                     document.querySelectorAll('.msg.assistant').length === 1, null,
                               { timeout: 20000 });
    const reply = await page.textContent('.msg.assistant');
    assert.equal(await page.locator('.msg.error').count(), 0, reply);
    // a system prompt goes first in the messages sent; Stop ends a reply (held on its way here, so
    // that Stop comes before the server could finish it) and leaves the page ready for the next
    await page.click('#sys-box summary');
    await page.fill('#system', 'Answer in one word.');
    let release;
    await page.route('**/v1/chat/completions', async (route) => {
      await new Promise((r) => { release = r; });
      await route.continue().catch(() => {}); // the page has aborted it by then
    });
    const sent = page.waitForRequest((r) => r.url().endsWith('/v1/chat/completions'));
    await page.fill('#input', 'And more?');
    await page.click('#send');
    const body = JSON.parse((await sent).postData());
    assert.deepEqual(body.messages[0], { role: 'system', content: 'Answer in one word.' });
    assert.equal(body.messages.length, 4); // the system message, the first exchange, this message
    await page.click('#stop');
    await page.waitForSelector('.msg.assistant .stopped', { timeout: 10000 });
    release();
    await page.unroute('**/v1/chat/completions');
    assert.ok(!(await page.isDisabled('#send')));
    assert.ok(await page.isHidden('#stop'));
    // the header's counters follow the server (/info, polled every 2 s): the generation speed is
    // the steps' (the idle seconds before the reply do not dilute it), so a reply makes it positive
    await page.waitForFunction(() => Number(document.getElementById('generated').textContent) > 0 &&
                                     Number(document.getElementById('tps').textContent) > 0, null,
                               { timeout: 10000 });
    await page.screenshot({ path: process.env.RSR_SCREENSHOT, fullPage: true });
    assert.deepEqual(errors, []);
  });
});

// An error is shown as one (not as a reply), and the end of the context is said as such: a reply
// cut short by it (the server cuts max_tokens to what fits) and a conversation the server refuses
// for its length each bring a notice with "New conversation", which empties the log; a reply that
// ends at max tokens brings none. (The server's context is 512 positions; a "word " is 3 tokens.)
test('the chat page shows errors and the end of the context', async () => {
  await onPage(1200, async (page, errors) => {
    await page.goto(process.env.RSR_URL + '/');
    await page.waitForFunction(() => document.getElementById('model').textContent === 'small');
    const idle = () => page.waitForFunction(() => !document.getElementById('send').disabled, null, { timeout: 20000 });
    const say = async (text) => { await page.fill('#input', text); await page.click('#send'); await idle(); };
    const bubbles = () => page.evaluate(() => [...document.querySelectorAll('#log > *')].map((e) => e.className));

    await page.fill('#temp', '-1'); // the server's 400
    await say('hi');
    assert.match(await page.textContent('.msg.error'), /^Error: 'temperature' is -1; it must be in \[0, 100\]/);
    assert.deepEqual(await bubbles(), ['msg user', 'msg error']);
    const colour = (sel) => page.$eval(sel, (e) => getComputedStyle(e).backgroundColor);
    await page.fill('#temp', '0');
    await page.fill('#max', '4');
    await say('hi');
    assert.notEqual(await colour('.msg.error'), await colour('.msg.assistant'));
    assert.equal(await page.locator('.notice').count(), 0); // ended at max tokens
    // ... and says so at its end, with its length and generation speed under it
    assert.equal(await page.textContent('.msg.assistant .cut'), ' … (cut at max tokens, 4)');
    assert.match(await page.textContent('.msg.assistant .meta'), /^4 tokens · [0-9]+ tok\/s$/);

    await page.click('#reset');
    await page.fill('#max', '128');
    await say('word '.repeat(150)); // 465 tokens: 47 fit after them
    assert.deepEqual(await bubbles(), ['msg user', 'msg assistant', 'notice']);
    assert.match(await page.textContent('.notice'), /filled the model's context \(512 tokens\)/);
    assert.ok((await page.textContent('.msg.assistant')).length > 0);
    await page.click('.notice button');
    assert.deepEqual(await bubbles(), []);

    await say('word '.repeat(200)); // 615 tokens: refused
    assert.deepEqual(await bubbles(), ['msg user', 'msg error', 'notice']);
    assert.match(await page.textContent('.msg.error'), /the context of a sequence here is 512/);
    assert.match(await page.textContent('.notice'), /no longer fits the model's context \(512 tokens\)/);
    await page.screenshot({ path: process.env.RSR_SCREENSHOT.replace(/\.png$/, '-context.png'), fullPage: true });
    await page.click('.notice button');
    assert.deepEqual(await bubbles(), []);
    assert.deepEqual(errors, []);
  });
});

// A phone's width (420 px): nothing runs off the screen (Send and New conversation were cut off
// by the manifest's long lines widening the page), the manifest's lines wrap rather than hide,
// and an empty conversation says so where its messages will come.
test('the chat page fits a narrow screen', async () => {
  await onPage(420, async (page) => {
    await page.goto(process.env.RSR_URL + '/');
    await page.waitForFunction(() => /matrix/.test(document.getElementById('manifest').textContent));
    const fit = await page.evaluate(() => {
      const right = (id) => document.getElementById(id).getBoundingClientRect().right;
      const pre = document.getElementById('manifest');
      return { page: document.documentElement.scrollWidth, send: right('send'), reset: right('reset'),
               input: right('input'), clipped: pre.scrollWidth - pre.clientWidth,
               hint: getComputedStyle(document.getElementById('log'), '::before').content };
    });
    assert.ok(fit.page <= 420, `the page is ${fit.page} px wide`);
    for (const id of ['send', 'reset', 'input']) assert.ok(fit[id] <= 420, `#${id} ends at ${fit[id]} px`);
    assert.ok(fit.clipped <= 0, `the manifest's lines run ${fit.clipped} px past its box`);
    assert.match(fit.hint, /conversation appears here/);
    // the log is short while empty: the input sits under the hint, not at the foot of a tall blank
    const gap = await page.evaluate(() => document.getElementById('input').getBoundingClientRect().top -
                                          document.getElementById('log').getBoundingClientRect().top);
    assert.ok(gap < 250, `the input is ${gap} px below the empty log's top`);
    await page.screenshot({ path: process.env.RSR_SCREENSHOT.replace(/\.png$/, '-narrow.png'), fullPage: true });
  });
});
