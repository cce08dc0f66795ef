/**
 * The web UI (Debian's Chromium driven by playwright-core, `flocker ui`) on local storage (issue 24): two real
 * dataset agents on btrfs loop pools and a control service over mutual TLS (TwoLocalAgents). A volume in use on its
 * node (its lease held there, as a container's through the Docker plugin) cannot move plainly: the page shows the
 * control service's LEASE_HELD and offers "Move when released" (the API's when_released, the CLI's
 * `volumes move --when-released`); taken, the data is copied while the lease is held, the row shows the move
 * waiting for the release, and the move finishes once the lease is released. The option is also there beside Move
 * on a local volume. Needs root.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ClusterPki } from './cluster/pki';
import { btrfsPool, MiB, TwoLocalAgents } from './localTwoAgents';
import { CHROMIUM, ensureChromiumAndWebUi, startUi } from './webUiSupport';

jest.setTimeout(240_000);

describe('flocker ui on local storage (two btrfs agents)', () => {
  const bed = new TwoLocalAgents('flocker-e2e-web-ui-local-');
  let ui: ChildProcess | undefined;
  let url: string;
  let profile: string | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  const row = (name: string) => page.locator(`tr[data-volume="${name}"]`);

  beforeAll(async () => {
    ensureChromiumAndWebUi();
    await bed.startControl();
    await bed.addNodes('btrfs', btrfsPool);
    for (const n of bed.nodes) bed.start(n);
    await bed.waitBothReport();
    const pki = await ClusterPki.open(join(bed.dir, 'pki'));
    const started = await startUi({ ...(await pki.cliEnv('admin')), FLOCKER_CONTROL_URL: bed.control.url });
    ui = started.child;
    url = started.url;
    profile = mkdtempSync(join(tmpdir(), 'flocker-ui-local-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 860 },
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(30_000);
  });

  afterAll(async () => {
    await context?.close();
    ui?.kill('SIGTERM');
    if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
    await bed.close();
  });

  it('a move refused while its node holds the lease offers "Move when released", which finishes once released', async () => {
    const [a, b] = bed.ab;
    const d = await bed.admin.createDataset({ primary: a.uuid, maximum_size: 64 * MiB, metadata: { name: 'pg' } });
    await page.goto(url);
    await row('pg').and(page.locator('[data-state="mounted"]')).waitFor();
    // Shown beside Move on a local volume.
    await row('pg').getByRole('checkbox', { name: 'Move pg when released' }).waitFor();
    // In use on a (a container's lease, as the Docker plugin takes it).
    await bed.admin.acquireLease({ dataset_id: d.dataset_id, node_uuid: a.uuid, expires: null });
    await row('pg').getByText(`held by ${a.address}`).waitFor();

    await page.getByLabel('Move pg to').selectOption({ label: b.address });
    await page.getByRole('button', { name: 'Move pg', exact: true }).click();
    const result = row('pg').locator('[data-action-error]');
    await result.waitFor();
    expect(await result.textContent()).toMatch(/holds a lease on it/);
    expect((await bed.admin.listDatasets()).find((x) => x.dataset_id === d.dataset_id)?.primary).toBe(a.uuid);

    await row('pg')
      .getByRole('button', { name: `When released, move pg to ${b.address}` })
      .click();
    await result.waitFor({ state: 'detached' });
    // Copied while the lease is held, then waiting for the release, still mounted on a.
    await row('pg').locator('[data-local-move="waitingForRelease"]').waitFor({ timeout: 60_000 });
    expect((await bed.admin.listDatasets()).find((x) => x.dataset_id === d.dataset_id)?.primary).toBe(b.uuid);

    await bed.admin.releaseLease(d.dataset_id);
    await row('pg').and(page.locator('[data-state="mounted"]')).locator('.primary').getByText(b.address).waitFor({
      timeout: 60_000,
    });
    const mountedOn = (await bed.admin.waitForCluster(undefined, 0)).nodes
      .filter((n) => n.manifestations.some((m) => m.dataset_id === d.dataset_id && m.status === 'mounted'))
      .map((n) => n.host);
    expect(mountedOn).toEqual([b.address]);
  });
});
