/**
 * LocalAgentBed's teardown against the kernel: what an agent ran (losetup, mount, btrfs...) does not outlive
 * it — else it may still hold a loop device or a mount of the pool the teardown then removes. Each agent here
 * starts a long-running child (a preload in the agent's own process) the way the agent starts its tools.
 * Needs root (the bed's loopback pool).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { firstLogTime } from './cluster/agentReport';
import { isAlive, pidsInProcessGroup, signalPids } from './cluster/processes';
import { LocalAgentBed } from './localAgents';

jest.setTimeout(60_000);

it("close ends every process of each agent's group: a child of a running agent and one of an agent killed before", async () => {
  const bed = await LocalAgentBed.start('flocker-e2e-bed-');
  const pidFile = join(bed.dir, 'children');
  const preload = join(bed.dir, 'child.js');
  // stdio ignored: the child holds none of the agent's pipes, like a tool left running by a killed agent.
  writeFileSync(
    preload,
    `const c = require('node:child_process').spawn('sleep', ['600'], { stdio: 'ignore' });
require('node:fs').appendFileSync(${JSON.stringify(pidFile)}, process.pid + ' ' + c.pid + '\\n');\n`,
  );
  /** [agent pid, its child's pid] per agent process started. */
  const started = (): [number, number][] =>
    existsSync(pidFile)
      ? readFileSync(pidFile, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split(' ').map(Number) as [number, number])
      : [];
  const children = (): number[] => started().map(([, child]) => child);
  let kids: number[] = []; // read before close, which removes the bed's directory
  let closing = false;
  try {
    const env = { NODE_OPTIONS: `--require ${preload}` };
    const a = bed.startAgent('a', env);
    const b = bed.startAgent('b', env);
    const groups = [a.proc.pid, b.proc.pid].filter((p) => p !== undefined);
    expect(groups).toHaveLength(2);
    await bed.waitFor('both agents to report', async () =>
      (await bed.client.listNodes()).length === 2 ? true : undefined,
    );
    expect(children().length).toBeGreaterThanOrEqual(2);
    // B killed by its pid alone (as a test's kill -9 does): its child lives on.
    b.proc.kill('SIGKILL');
    await b.exited;
    const orphans = started().filter(([agent, child]) => agent === b.proc.pid && isAlive(child));
    expect(orphans).toHaveLength(1);

    kids = children();
    closing = true;
    await bed.close();
    expect({ alive: kids.filter(isAlive) }).toEqual({ alive: [] });
    expect({ inGroups: groups.flatMap((g) => pidsInProcessGroup(g).filter(isAlive)) }).toEqual({ inGroups: [] });
  } finally {
    // On a failure (or the old teardown), the children go here rather than outliving the run.
    signalPids(kids.length > 0 ? kids : children(), 'SIGKILL');
    if (!closing) await bed.close();
  }
});

it('reported(): a restarted agent of a known node is waited for until the new process has reported; one that exits fails at once', async () => {
  const bed = await LocalAgentBed.start('flocker-e2e-bed-reported-');
  try {
    const first = await bed.startAgentReported('a');
    const uuid = bed.nodeUuid('a');
    first.proc.kill('SIGKILL');
    await first.exited;
    const again = bed.startAgent('a');
    // What a caller of startAgent could wait for before: true at once, the new process not yet started.
    expect((await bed.client.listNodes()).some((n) => n.uuid === uuid)).toBe(true);
    expect(await bed.reported(again)).toBe(uuid);
    const startedAt = firstLogTime(readFileSync(join(bed.dir, 'a.log')).subarray(again.logFrom).toString('utf8'));
    const node = (await bed.client.waitForCluster(undefined, 0)).nodes.find((n) => n.uuid === uuid);
    expect(startedAt).toBeDefined();
    expect(Date.parse(node?.last_seen ?? '')).toBeGreaterThanOrEqual(startedAt ?? Infinity);
    // A config the agent refuses: it exits, and reported() says so without waiting out its time.
    writeFileSync(bed.configPath('bad'), 'version: 1\nnot-a-key: true\n');
    const bad = bed.startAgent('bad');
    const t0 = Date.now();
    await expect(bed.reported(bad, 120_000)).rejects.toThrow(/agent bad \(pid \d+\) exited .* before it reported/);
    expect(Date.now() - t0).toBeLessThan(60_000);
  } finally {
    await bed.close();
  }
});
