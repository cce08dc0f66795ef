/**
 * Tests and the cluster harness leave the machine's Docker network as they found it
 * (issue 17): after the suite ran beside `./dev up`, the host's docker0 bridge was gone.
 * Needs root. When the machine has no docker0 (no system dockerd), a stand-in bridge of
 * that name is made for the test and removed afterwards.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startCluster } from './cluster';
import { DockerDaemon } from './docker/DockerDaemon';
import { exec } from './docker/exec';
import { DOCKER0, Docker0Guard, linkIndex } from './docker/hostNetwork';
import { removeTree } from './removeTree';

jest.setTimeout(240_000);

let standIn: number | undefined;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-hostnet-'));
  if (linkIndex(DOCKER0) === undefined) {
    await exec(['ip', 'link', 'add', DOCKER0, 'type', 'bridge']);
    standIn = linkIndex(DOCKER0);
  }
});

afterAll(async () => {
  // Only the stand-in this test made, and only if it is still that one.
  if (standIn !== undefined && linkIndex(DOCKER0) === standIn)
    await exec(['ip', 'link', 'del', DOCKER0], { check: false });
  removeTree(dir);
});

describe("the host's docker0 bridge", () => {
  it('survives a private test dockerd (started, used and stopped)', async () => {
    const guard = new Docker0Guard('a private test dockerd');
    expect(guard.before).toBeDefined();
    const dockerd = new DockerDaemon(path.join(dir, 'd'), '/flocker-e2e-hostnet');
    try {
      await dockerd.start();
      expect(linkIndex(DOCKER0)).toBe(guard.before);
      await dockerd.docker(['info', '--format', '{{.ID}}']);
    } finally {
      await dockerd.stop();
    }
    expect(linkIndex(DOCKER0)).toBe(guard.before);
    expect(() => guard.check()).not.toThrow();
  });

  it('survives a simulated cluster with dockerd on each host, up and down', async () => {
    const before = linkIndex(DOCKER0);
    const cluster = await startCluster({ hosts: 1, withDocker: true, withPlugin: false });
    let report;
    try {
      expect(linkIndex(DOCKER0)).toBe(before);
    } finally {
      report = await cluster.stop();
    }
    expect(report.errors).toEqual([]);
    expect(linkIndex(DOCKER0)).toBe(before);
    // The cluster's own link in the root netns is gone too.
    expect(fs.existsSync(`/sys/class/net/${cluster.layout.rootVeth}`)).toBe(false);
  });
});
