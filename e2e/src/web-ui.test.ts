/**
 * The web UI in a real browser (Debian's Chromium driven by playwright-core) against
 * `flocker ui` and a real two-host cluster: create, watch it mount, move it live,
 * see the API's refusals, release a lease, delete with confirmation; file systems,
 * snapshots and resize (issue 20): an xfs volume, a snapshot followed live from
 * "requested" to "ready", cloned onto the other host, outliving its volume, deleted;
 * a snapshot schedule the control service runs; a volume grown online.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { REPO_ROOT, startCluster, type Cluster } from './cluster';
import { CHROMIUM, ensureChromiumAndWebUi, startUi } from './webUiSupport';

jest.setTimeout(300_000);

const SCREENSHOT = join(REPO_ROOT, 'docs/web-ui.png');
const SNAPSHOTS_SCREENSHOT = join(REPO_ROOT, 'docs/web-ui-snapshots.png');

let cluster: Cluster;
let ui: ChildProcess | undefined;
let url: string;
let profile: string;
let context: BrowserContext;
let page: Page;

const row = (name: string) => page.locator(`tr[data-volume="${name}"]`);
const feed = () => page.locator('#feed');

beforeAll(async () => {
  ensureChromiumAndWebUi();
  cluster = await startCluster({ hosts: 2, withDocker: false });
  const started = await startUi(cluster.cliEnv());
  ui = started.child;
  url = started.url;
  profile = mkdtempSync(join(tmpdir(), 'flocker-ui-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(30_000);
});

afterAll(async () => {
  await context?.close();
  ui?.kill('SIGTERM');
  await cluster?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

describe('flocker ui in Chromium against a real cluster', () => {
  it('shows both nodes alive and the control service connected', async () => {
    await page.goto(url);
    await page.getByRole('heading', { name: 'Flocker' }).waitFor();
    for (const h of cluster.hosts)
      await page.locator(`tr[data-node="${h.layout.address}"]`).getByText('alive').waitFor();
    await page.getByRole('status').getByText('connected').waitFor();
    expect(await page.getByRole('heading', { name: /Nodes/ }).textContent()).toMatch(/2\/2 alive/);
  });

  it('creates a volume and shows it mounted, with the events in the feed', async () => {
    const [a] = cluster.hosts;
    await page.getByLabel('Name', { exact: true }).fill('webdata');
    await page.getByLabel('Size', { exact: true }).fill('128MiB');
    await page.getByLabel('Node', { exact: true }).selectOption({ label: a!.layout.address });
    await page.getByRole('button', { name: 'Create' }).click();
    await row('webdata').and(page.locator('[data-state="mounted"]')).waitFor();
    expect(await row('webdata').locator('.primary').textContent()).toBe(a!.layout.address);
    expect(await row('webdata').getByText('128 MiB', { exact: true }).count()).toBe(1);
    await feed().getByText(`Volume webdata created on ${a!.layout.address} (128 MiB)`).waitFor();
    await feed().getByText(`Volume webdata mounted on ${a!.layout.address}`).waitFor();
    expect(await page.getByLabel('Name', { exact: true }).inputValue()).toBe('');
  });

  it('shows the space used on each volume, growing as data is written (issue 21)', async () => {
    const [a] = cluster.hosts;
    const used = row('webdata').locator('[data-used]');
    await used.waitFor({ timeout: 30_000 });
    expect(await used.textContent()).toMatch(/ of 128 MiB$/);
    expect(await used.locator('meter').count()).toBe(1);
    const path = (await row('webdata').locator('.path').textContent())!;
    await a!.exec(['dd', 'if=/dev/urandom', `of=${path}/fill`, 'bs=1M', 'count=16', 'conv=fsync', 'status=none']);
    // Measured at most every 5 s by the agent, then reported and pushed to the page (the page's CSP forbids
    // waitForFunction's eval: poll the attribute).
    const deadline = Date.now() + 30_000;
    while (Number(await used.getAttribute('data-used')) < 16 * 1024 * 1024) {
      if (Date.now() > deadline) throw new Error(`used stayed at ${await used.getAttribute('data-used')} bytes`);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(await used.textContent()).toMatch(/^\s*1[67](\.\d+)? MiB of 128 MiB$/);
  });

  it('moves the volume to the other host and follows it live, without a reload', async () => {
    const [a, b] = cluster.hosts;
    // Every state and primary the row shows from now on, recorded in the page.
    // (In page scripts as strings: the e2e project compiles without the DOM library.)
    await page.evaluate(`(() => {
      window.seen = [];
      window.marker = true;
      const record = () => {
        const r = document.querySelector('tr[data-volume="webdata"]');
        const s = r?.getAttribute('data-state') + '@' + r?.querySelector('.primary')?.textContent;
        if (window.seen[window.seen.length - 1] !== s) window.seen.push(s);
      };
      new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    })()`);
    await page.getByLabel('Move webdata to').selectOption({ label: b!.layout.address });
    await page.getByRole('button', { name: 'Move webdata' }).click();
    await feed().getByText(`Volume webdata moving from ${a!.layout.address} to ${b!.layout.address}`).waitFor();
    await feed().getByText(`Volume webdata mounted on ${b!.layout.address}`).waitFor();
    await row('webdata').and(page.locator('[data-state="mounted"]')).waitFor();
    expect(await row('webdata').locator('.primary').textContent()).toBe(b!.layout.address);
    const seen = await page.evaluate<string[] | false>('window.marker === true && window.seen');
    expect(seen).toEqual(expect.arrayContaining([`mounted@${b!.layout.address}`]));
    expect(seen && seen[seen.length - 1]).toBe(`mounted@${b!.layout.address}`);
    const snapshot = await cluster.client.waitForCluster(undefined, 0);
    const holder = snapshot.nodes.find((n) => n.manifestations.some((m) => m.status === 'mounted'));
    expect(holder?.host).toBe(b!.layout.address);
  });

  it("shows the reason for bad input and the API's own refusal", async () => {
    await page.getByLabel('Name', { exact: true }).fill('tiny');
    await page.getByLabel('Size', { exact: true }).fill('1K');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.locator('#create-error').getByText('size "1K" is too small: at least 64 MiB.').waitFor();
    expect(await page.getByLabel('Size', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    expect(await row('tiny').count()).toBe(0);
    // Names follow the Docker plugin's rule (issue 17).
    await page.getByLabel('Name', { exact: true }).fill('bad name!');
    await page.getByLabel('Size', { exact: true }).fill('1GiB');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.locator('#create-error').getByText('"bad name!" is not a valid volume name', { exact: false }).waitFor();
    expect(await row('bad name!').count()).toBe(0);

    // A leased volume cannot move: the control service says so, the page shows its words.
    const [a, b] = cluster.hosts;
    const id = (await row('webdata').locator('.sub[title]').first().getAttribute('title'))!;
    await cluster.client.acquireLease({
      dataset_id: id,
      node_uuid: (await cluster.client.waitForCluster(undefined, 0)).nodes.find((n) => n.host === b!.layout.address)!
        .uuid,
      expires: null,
    });
    await row('webdata').getByText(`held by ${b!.layout.address}`).waitFor();
    await page.getByLabel('Move webdata to').selectOption({ label: a!.layout.address });
    await page.getByRole('button', { name: 'Move webdata' }).click();
    const banner = page.locator('#action-error');
    await banner.waitFor();
    expect(await banner.textContent()).toMatch(/lease/i);
    await page.getByLabel('Name', { exact: true }).fill('');
    await page.getByLabel('Size', { exact: true }).fill('1GiB');
    if (!existsSync(SCREENSHOT) || process.env.FLOCKER_UPDATE_SCREENSHOT === '1') {
      mkdirSync(join(REPO_ROOT, 'docs'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    }
  });

  it('releases the lease from the page, after a confirmation that says the volume is in use on a live host', async () => {
    const b = cluster.hosts[1]!;
    await page.getByRole('button', { name: 'Release the lease on webdata' }).click();
    const dialog = page.getByRole('dialog', { name: 'Release the lease on webdata?' });
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain(`webdata is in use on ${b.layout.address}`);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect(await cluster.client.listLeases()).toHaveLength(1);
    await page.getByRole('button', { name: 'Release the lease on webdata' }).click();
    await dialog.getByRole('button', { name: 'Release anyway' }).click();
    await feed().getByText('Lease on webdata released').waitFor();
    await row('webdata').getByRole('button', { name: 'Release the lease on webdata' }).waitFor({ state: 'detached' });
    expect(await cluster.client.listLeases()).toEqual([]);
  });

  it('fits a narrow phone screen without sideways scrolling', async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    await row('webdata').waitFor();
    const widths = await page.evaluate<{ scroll: number; client: number }>(
      '({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth })',
    );
    expect(widths.scroll).toBeLessThanOrEqual(widths.client);
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  it('deletes the volume only after confirmation', async () => {
    await page.getByRole('button', { name: 'Delete webdata' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete webdata?' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect((await cluster.client.listDatasets()).filter((d) => !d.deleted)).toHaveLength(1);

    await page.getByRole('button', { name: 'Delete webdata' }).click();
    await page.keyboard.press('Escape'); // the dialog is a real modal: Escape cancels too
    await dialog.waitFor({ state: 'hidden' });
    expect((await cluster.client.listDatasets()).filter((d) => !d.deleted)).toHaveLength(1);

    await page.getByRole('button', { name: 'Delete webdata' }).click();
    await dialog.getByRole('button', { name: 'Delete volume' }).click();
    await feed().getByText('Volume webdata deleted').waitFor();
    await row('webdata').waitFor({ state: 'detached' });
    expect((await cluster.client.listDatasets()).filter((d) => !d.deleted)).toEqual([]);
  });
});

describe('file systems and snapshots in the page (issue 20)', () => {
  const snapRow = (name: string) => page.locator(`tr[data-snapshot="${name}"]`);
  const datasetByName = async (name: string) =>
    (await cluster.client.listDatasets()).find((d) => !d.deleted && d.metadata['name'] === name);

  it('creates an xfs volume only at 300 MiB or more, and shows each volume its file system', async () => {
    const [a] = cluster.hosts;
    const create = async (name: string, size: string, filesystem: string) => {
      await page.getByLabel('Name', { exact: true }).fill(name);
      await page.getByLabel('Size', { exact: true }).fill(size);
      await page.getByLabel('Node', { exact: true }).selectOption({ label: a!.layout.address });
      await page.getByLabel('File system', { exact: true }).selectOption(filesystem);
      await page.getByRole('button', { name: 'Create' }).click();
    };
    await create('xfsdata', '256MiB', 'xfs');
    // Refused (400: the API's own rule); the form shows its words and marks the size.
    await page
      .locator('#create-error')
      .getByText(/xfs dataset needs at least .*300 MiB/)
      .waitFor();
    expect(await page.getByLabel('Size', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    expect(await row('xfsdata').count()).toBe(0);

    await create('xfsdata', '320MiB', 'xfs');
    await row('xfsdata').and(page.locator('[data-state="mounted"]')).waitFor({ timeout: 60_000 });
    // The snapshots below are of an ext4 volume: the hosts here share one kernel, and XFS refuses to mount a
    // clone while its source is mounted there (duplicate file system UUID) until the agent gives clones new UUIDs.
    await create('pgsnap', '128MiB', 'ext4');
    await row('pgsnap').and(page.locator('[data-state="mounted"]')).waitFor({ timeout: 60_000 });
    const fs = 'clusterhq:flocker:filesystem';
    for (const [name, type] of [
      ['xfsdata', 'xfs'],
      ['pgsnap', 'ext4'],
    ] as const) {
      expect(await row(name).locator('[data-filesystem]').textContent()).toBe(type);
      expect((await datasetByName(name))?.metadata).toEqual({ name, [fs]: type });
      // What the node really mounted.
      const path = (await row(name).locator('.path').textContent())!;
      expect((await a!.exec(['findmnt', '-n', '-o', 'FSTYPE', path])).stdout.trim()).toBe(type);
    }
  });

  it('takes a snapshot from the page and follows it live: "requested" while no agent takes it, then "ready"', async () => {
    const [a] = cluster.hosts;
    const path = (await row('pgsnap').locator('.path').textContent())!;
    await a!.exec(['sh', '-c', `echo before the snapshot > ${path}/first.txt`]);
    const toggle = page.getByRole('button', { name: /^Snapshots of pgsnap/ });
    await toggle.click();
    expect(await toggle.getAttribute('aria-expanded')).toBe('true');
    const panel = page.locator('tr[data-snapshots-of="pgsnap"]');
    await panel.getByText('No snapshots of pgsnap yet.').waitFor();

    // The source's agent is down: the control plane has the snapshot, no backend holds it yet.
    await a!.killAgent();
    await panel.getByLabel('Snapshot name').fill('nightly');
    await panel.getByRole('button', { name: 'Take snapshot of pgsnap' }).click();
    await snapRow('nightly').and(page.locator('[data-state="requested"]')).waitFor();
    expect(await panel.getByLabel('Snapshot name').inputValue()).toBe('');
    expect(await toggle.textContent()).toContain('(1)');
    expect((await cluster.client.listSnapshots()).map((s) => s.metadata['name'])).toEqual(['nightly']);
    await feed().getByText('Snapshot nightly of pgsnap requested').waitFor();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await snapRow('nightly').getAttribute('data-state')).toBe('requested');
    expect(await snapRow('nightly').locator('td[data-label="Size"]').textContent()).toBe('—');

    // Back, the agent takes it (file system frozen for the instant); the row follows without a reload.
    await page.evaluate(`(() => {
      window.snapSeen = [];
      const record = () => {
        const s = document.querySelector('tr[data-snapshot="nightly"]')?.getAttribute('data-state');
        if (s && window.snapSeen[window.snapSeen.length - 1] !== s) window.snapSeen.push(s);
      };
      record();
      new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true });
    })()`);
    await a!.startAgent();
    await snapRow('nightly').and(page.locator('[data-state="ready"]')).waitFor({ timeout: 60_000 });
    expect(await snapRow('nightly').locator('td[data-label="Size"]').textContent()).toBe('128 MiB');
    expect(await snapRow('nightly').locator('td[data-label="Taken"] time').textContent()).toMatch(/ago$/);
    await feed().getByText('Snapshot nightly of pgsnap taken (128 MiB)').waitFor();
    const seen = await page.evaluate<string[]>('window.snapSeen');
    expect(seen[0]).toBe('requested');
    expect(seen[seen.length - 1]).toBe('ready');
    expect(seen.filter((x) => !['requested', 'creating', 'ready'].includes(x))).toEqual([]);
    const held = await cluster.client.listSnapshotState();
    expect(held).toMatchObject([{ dataset_id: (await datasetByName('pgsnap'))!.dataset_id, status: 'ready' }]);

    // A second snapshot with the same name: the control service refuses (409), the banner says why.
    await panel.getByLabel('Snapshot name').fill('nightly');
    await panel.getByRole('button', { name: 'Take snapshot of pgsnap' }).click();
    const banner = page.locator('#action-error');
    await banner.waitFor();
    expect(await banner.textContent()).toMatch(/nightly/);
    expect(await cluster.client.listSnapshots()).toHaveLength(1);
    await page.getByRole('button', { name: 'Dismiss' }).click();
    // Written after the snapshot: the clone must not have it.
    await a!.exec(['sh', '-c', `echo after the snapshot > ${path}/second.txt`]);
  });

  it("clones the snapshot onto the other host, refusing a size below the snapshot's with the API's words", async () => {
    const b = cluster.hosts[1]!;
    await page.getByRole('button', { name: 'Clone snapshot nightly' }).click();
    const dialog = page.getByRole('dialog', { name: 'Clone snapshot nightly' });
    await dialog.waitFor();
    expect(await dialog.getByLabel('Volume size').getAttribute('placeholder')).toBe('128 MiB');
    await dialog.getByLabel('Volume name').fill('pgcopy');
    await dialog.getByLabel('Volume size').fill('64MiB');
    await dialog.getByLabel('On node').selectOption({ label: b.layout.address });
    await dialog.getByRole('button', { name: 'Clone', exact: true }).click();
    await dialog
      .locator('#clone-error')
      .getByText(/at least as big as its snapshot/)
      .waitFor();
    expect(await dialog.getByLabel('Volume size').getAttribute('aria-invalid')).toBe('true');
    expect(await datasetByName('pgcopy')).toBeUndefined();

    await dialog.getByLabel('Volume size').fill('');
    await dialog.getByRole('button', { name: 'Clone', exact: true }).click();
    await dialog.waitFor({ state: 'hidden' });
    await feed().getByText(`Volume pgcopy created on ${b.layout.address} (128 MiB) from snapshot nightly`).waitFor();
    await row('pgcopy').and(page.locator('[data-state="mounted"]')).waitFor({ timeout: 60_000 });
    expect(await row('pgcopy').locator('.primary').textContent()).toBe(b.layout.address);
    expect(await row('pgcopy').locator('[data-filesystem]').textContent()).toBe('ext4 · clone of nightly');
    const copy = (await datasetByName('pgcopy'))!;
    expect(copy.source_snapshot_id).toBe((await cluster.client.listSnapshots())[0]!.snapshot_id);
    expect(copy.metadata).toEqual({ name: 'pgcopy', 'clusterhq:flocker:filesystem': 'ext4' }); // the source's
    const path = (await row('pgcopy').locator('.path').textContent())!;
    expect((await b.exec(['ls', path])).stdout).not.toContain('second.txt');
    expect((await b.exec(['cat', `${path}/first.txt`])).stdout).toBe('before the snapshot\n');
  });

  it('keeps a snapshot listed after its volume is deleted, and deletes it only after confirmation', async () => {
    await page.getByRole('button', { name: 'Delete pgsnap' }).click();
    await page.getByRole('dialog', { name: 'Delete pgsnap?' }).getByRole('button', { name: 'Delete volume' }).click();
    const orphans = page.getByRole('table', { name: 'Snapshots of deleted volumes' });
    await orphans.locator('tr[data-snapshot="nightly"][data-state="ready"]').waitFor();
    expect(await orphans.locator('td[data-label="Volume"]').textContent()).toContain('deleted');

    await page.getByRole('button', { name: 'Delete snapshot nightly' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete snapshot nightly?' });
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain('Volumes cloned from it keep their data');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect((await cluster.client.listSnapshots()).filter((s) => s.deleted !== true)).toHaveLength(1);

    await page.getByRole('button', { name: 'Delete snapshot nightly' }).click();
    await dialog.getByRole('button', { name: 'Delete snapshot' }).click();
    await feed().getByText('Snapshot nightly of pgsnap deleted').waitFor();
    // Deleted in the configuration at once; gone from the page once no backend holds it.
    await snapRow('nightly').waitFor({ state: 'detached', timeout: 60_000 });
    expect(await cluster.client.listSnapshotState()).toEqual([]);
    expect((await cluster.client.listSnapshots()).filter((s) => s.deleted !== true)).toEqual([]);
    // The clone keeps its data.
    await row('pgcopy').and(page.locator('[data-state="mounted"]')).waitFor();
    const path = (await row('pgcopy').locator('.path').textContent())!;
    expect((await cluster.hosts[1]!.exec(['cat', `${path}/first.txt`])).stdout).toBe('before the snapshot\n');
  });

  it('sets a snapshot schedule from the page: refused below the minimum, then run by the control service, then removed', async () => {
    const SCHED = 'clusterhq:flocker:snapshot-schedule';
    await page.getByRole('button', { name: /^Snapshots of pgcopy/ }).click();
    const panel = page.locator('tr[data-snapshots-of="pgcopy"]');
    await panel.getByText('No snapshot schedule.').waitFor();
    const save = panel.getByRole('button', { name: 'Save schedule of pgcopy' });
    await panel.getByLabel('Snapshot schedule').fill('every 1m');
    await save.click();
    const banner = page.locator('#action-error');
    await banner.getByText(/more frequent than the minimum interval of 5m/).waitFor();
    expect((await datasetByName('pgcopy'))?.metadata[SCHED]).toBeUndefined();
    await page.getByRole('button', { name: 'Dismiss' }).click();

    await panel.getByLabel('Snapshot schedule').fill('hourly');
    await panel.getByLabel('Keep').fill('2');
    await save.click();
    // The current hour's slot is unserved: the control service asks for a snapshot at once, pgcopy's agent takes it.
    const taken = panel.locator('tr[data-snapshot^="pgcopy-"][data-state="ready"]');
    await taken.waitFor({ timeout: 60_000 });
    expect(await taken.locator('.tag').textContent()).toBe('scheduled');
    await panel
      .locator('[data-schedule="hourly"]')
      .getByText(/^Scheduled hourly, keeping the newest 2 \(1 now\); next at /)
      .waitFor();
    expect((await datasetByName('pgcopy'))?.metadata).toMatchObject({
      [SCHED]: 'hourly',
      'clusterhq:flocker:snapshot-keep': '2',
    });
    await feed()
      .getByText(/Snapshot pgcopy-\d{8}T\d{4}Z of pgcopy taken \(128 MiB\)/)
      .waitFor();

    if (!existsSync(SNAPSHOTS_SCREENSHOT) || process.env.FLOCKER_UPDATE_SCREENSHOT === '1')
      await page.screenshot({ path: SNAPSHOTS_SCREENSHOT, fullPage: true });
    // With snapshot panels open, a phone screen still needs no sideways scrolling.
    await page.setViewportSize({ width: 375, height: 800 });
    const widths = await page.evaluate<{ scroll: number; client: number }>(
      '({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth })',
    );
    expect(widths.scroll).toBeLessThanOrEqual(widths.client);
    await page.setViewportSize({ width: 1280, height: 860 });

    // Blank removes the schedule; the snapshot it took stays.
    await panel.getByLabel('Snapshot schedule').fill('');
    await save.click();
    await panel.getByText('No snapshot schedule.').waitFor();
    expect((await datasetByName('pgcopy'))?.metadata[SCHED]).toBeUndefined();
    expect(await panel.locator('tr[data-snapshot^="pgcopy-"]').count()).toBe(1);
  });

  it("grows a volume from the page, refusing a smaller size with the API's words, and follows the grow", async () => {
    const b = cluster.hosts[1]!;
    await page.getByRole('button', { name: 'Resize pgcopy' }).click();
    const dialog = page.getByRole('dialog', { name: 'Resize pgcopy' });
    await dialog.waitFor();
    await dialog.getByLabel('New size').fill('64MiB');
    await dialog.getByRole('button', { name: 'Resize', exact: true }).click();
    await dialog
      .locator('#resize-error')
      .getByText(/volumes do not shrink/)
      .waitFor();
    expect((await datasetByName('pgcopy'))?.maximum_size).toBe(128 * 1024 * 1024);

    await dialog.getByLabel('New size').fill('256MiB');
    await dialog.getByRole('button', { name: 'Resize', exact: true }).click();
    await dialog.waitFor({ state: 'hidden' });
    await feed().getByText('Volume pgcopy resizing from 128 MiB to 256 MiB').waitFor();
    await feed().getByText(`Volume pgcopy grown to 256 MiB on ${b.layout.address}`).waitFor({ timeout: 60_000 });
    await row('pgcopy').locator('.size').getByText('256 MiB').waitFor();
    expect(await row('pgcopy').locator('[data-resizing]').count()).toBe(0);
    const path = (await row('pgcopy').locator('.path').textContent())!;
    const device = (await b.exec(['findmnt', '-n', '-o', 'SOURCE', path])).stdout.trim();
    expect((await b.exec(['blockdev', '--getsize64', device])).stdout.trim()).toBe(String(256 * 1024 * 1024));
  });
});

/**
 * Issue 21: the page at a glance and at 1,000 volumes. The 1,000 are real datasets made through
 * the API, on host b with its dataset agent killed first (dead after the node timeout): the
 * control service, the UI server and the page hold and show all of them, and no agent spends
 * minutes creating 1,000 loopback volumes (the rows say "node … is not alive", which is true).
 */
describe('the page at a glance and at 1,000 volumes (issue 21)', () => {
  const VIEWPORT = { width: 1280, height: 800 };
  const BULK = 1000;
  const bulkName = (i: number) => `bulk-${String(i).padStart(4, '0')}`;
  /** Whether an element's box lies within the viewport. */
  const inViewport = async (selector: string) =>
    page.evaluate<boolean>(
      `(() => { const r = document.querySelector(${JSON.stringify(selector)}).getBoundingClientRect();
        return r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth; })()`,
    );
  const figures: Record<string, number> = {};

  afterAll(() => {
    // The figures for the record (issue 21 asks for them).
    console.log(`web-ui at ${BULK} volumes: ${JSON.stringify(figures)}`);
  });

  it('shows every node at the top of a 1280×800 viewport, and the reason for an empty name at the field', async () => {
    await page.setViewportSize(VIEWPORT);
    await page.goto(url);
    for (const h of cluster.hosts) {
      await page.locator(`[data-node-summary="${h.layout.address}"]`).getByText('alive').waitFor();
      expect(await inViewport(`[data-node-summary="${h.layout.address}"]`)).toBe(true);
    }
    await page.getByLabel('Name', { exact: true }).fill('');
    await page.getByRole('button', { name: 'Create' }).click();
    const nameField = page.locator('.field').filter({ has: page.locator('#new-name') });
    expect(await nameField.locator('#create-error').textContent()).toBe('A volume needs a name.');
    expect(await page.getByLabel('Name', { exact: true }).getAttribute('aria-invalid')).toBe('true');
  });

  it(`lists ${BULK} volumes in a window of rows, within bounds, and says a refusal beside a row far down and in the viewport`, async () => {
    const [a, b] = cluster.hosts;
    const nodes = (await cluster.client.waitForCluster(undefined, 0)).nodes;
    const aUuid = nodes.find((n) => n.host === a!.layout.address)!.uuid;
    const bUuid = nodes.find((n) => n.host === b!.layout.address)!.uuid;
    await b!.killAgent('SIGKILL');
    await page.locator(`[data-node-summary="${b!.layout.address}"]`).getByText('dead').waitFor({ timeout: 60_000 });

    const t0 = Date.now();
    const queue = Array.from({ length: BULK }, (_, i) => i);
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = queue.shift(); i !== undefined; i = queue.shift())
          await cluster.client.createDataset({
            primary: bUuid,
            maximum_size: 64 * 1024 * 1024,
            metadata: { name: bulkName(i) },
          });
      }),
    );
    figures.create_ms = Date.now() - t0;

    // A fresh page: from navigation until the list shows its first rows of all the volumes.
    await page.goto(url);
    figures.first_rows_ms = Math.round(
      await page.evaluate<number>(`new Promise((resolve) => {
        const check = () => {
          const c = document.querySelector('[data-volume-count]');
          if (c && Number(c.getAttribute('data-volume-count')) >= ${BULK} && document.querySelector('tr[data-volume^="bulk-"]'))
            resolve(performance.now());
          else requestAnimationFrame(check);
        };
        check();
      })`),
    );
    const rendered = () => page.locator('tr[data-volume]').count();
    figures.rows_in_dom = await rendered();
    expect(figures.rows_in_dom).toBeLessThan(80);

    // Sizes and ages on one line each.
    const lines = await page.evaluate<number[]>(
      `[...document.querySelectorAll('tr[data-volume] .size, tr[data-volume] .age-text')].map((e) => e.getClientRects().length)`,
    );
    expect(lines.length).toBeGreaterThan(0);
    expect(new Set(lines)).toEqual(new Set([1]));

    // Scrolled to the bottom once: the list's last rows (no blank space after them) are there within one bound,
    // measured in the browser. Rows measured taller than estimated must not push them out of the viewport again
    // (a moving estimate for the unmeasured rows above did: the page stayed mid-list with no scroll event to fix it).
    figures.scroll_to_bottom_ms = Math.round(
      await page.evaluate<number>(`new Promise((resolve, reject) => {
        const t = performance.now();
        window.scrollTo(0, document.documentElement.scrollHeight);
        const check = () => {
          const lastRow = document.querySelector('tbody[data-windowed] > tr:last-child');
          if (lastRow && !lastRow.classList.contains('spacer')) resolve(performance.now() - t);
          else if (performance.now() - t > 20000) reject(new Error('the end of the list not rendered 20 s after scrolling to it'));
          else requestAnimationFrame(check);
        };
        requestAnimationFrame(check);
      })`),
    );
    // The last bulk volume is among them (the earlier tests' volumes sort after it, a few rows).
    await row(bulkName(BULK - 1)).waitFor();
    expect(await rendered()).toBeLessThan(80);

    // A refused action on that low row: its reason beside the row and as a toast, both in the viewport.
    const last = bulkName(BULK - 1);
    const lastId = (await cluster.client.listDatasets()).find((d) => d.metadata['name'] === last)!.dataset_id;
    await cluster.client.acquireLease({ dataset_id: lastId, node_uuid: aUuid, expires: null });
    await row(last).getByText(`held by ${a!.layout.address}`).waitFor();
    await row(last)
      .getByRole('button', { name: `Delete ${last}` })
      .click();
    await page
      .getByRole('dialog', { name: `Delete ${last}?` })
      .getByRole('button', { name: 'Delete volume' })
      .click();
    const beside = row(last).locator('[data-action-error]');
    await beside.waitFor();
    expect(await beside.textContent()).toMatch(/lease/i);
    expect(await inViewport(`tr[data-volume="${last}"] [data-action-error]`)).toBe(true);
    expect(await inViewport('#action-error')).toBe(true);
    expect(await page.locator('#action-error').textContent()).toMatch(/lease/i);

    // Search: one name out of 1,000, and by node.
    let t = Date.now();
    await page.getByLabel('Search volumes').fill(bulkName(500));
    await page
      .locator('tr[data-volume]')
      .first()
      .and(row(bulkName(500)))
      .waitFor();
    figures.search_ms = Date.now() - t;
    expect(await rendered()).toBe(1);
    t = Date.now();
    await page.getByLabel('Search volumes').fill(`node:${a!.layout.address} bulk-05`); // on b, no lease held by a: none
    await page.getByText(/No volume matches/).waitFor();
    await page.getByLabel('Search volumes').fill('');
    await page.locator('tbody[data-windowed]').waitFor();
    figures.search_clear_ms = Date.now() - t;
    expect(figures.first_rows_ms).toBeLessThan(8_000);
    expect(figures.scroll_to_bottom_ms).toBeLessThan(1_000);
    expect(figures.search_ms).toBeLessThan(3_000);
  });

  it('offers no Move where there is no other live node', async () => {
    const [a] = cluster.hosts;
    const aUuid = (await cluster.client.waitForCluster(undefined, 0)).nodes.find(
      (n) => n.host === a!.layout.address,
    )!.uuid;
    await cluster.client.createDataset({ primary: aUuid, maximum_size: 64 * 1024 * 1024, metadata: { name: 'solo' } });
    await page.getByLabel('Search volumes').fill('name:solo');
    await row('solo').waitFor();
    await row('solo').getByRole('button', { name: 'Delete solo' }).waitFor();
    expect(await row('solo').getByRole('button', { name: 'Move solo' }).count()).toBe(0);
    expect(await row('solo').getByText('no other live node').count()).toBe(0);
    // A bulk volume (on dead b) can still move to a: its Move is there.
    await page.getByLabel('Search volumes').fill(bulkName(1));
    await row(bulkName(1))
      .getByRole('button', { name: `Move ${bulkName(1)}` })
      .waitFor();
    await page.getByLabel('Search volumes').fill('');
  });

  it('says the control service is unreachable and marks the last known state stale, never "No volumes yet"', async () => {
    await cluster.killControl('SIGKILL');
    await page
      .locator('#volumes-stale')
      .getByText(/unreachable/)
      .waitFor();
    expect(await page.getByText('No volumes yet.').count()).toBe(0);
    expect(await page.locator('table.volumes.stale').count()).toBe(1);
    await cluster.startControl();
    await page.locator('#volumes-stale').waitFor({ state: 'detached' });
  });
});
