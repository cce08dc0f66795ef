/**
 * A full disk under the file store, through HTTP: a create that could not be saved
 * answers 503 with a code and a description, none of them is acknowledged, the log
 * stays whole, and creates work again once there is space. And a full log output
 * (stderr on a full disk) does not stop the service.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FakeFullDisk } from '@flocker/api/testing';
import { FileConfigurationStore } from './ConfigurationStore';
import { registerNode } from './configuration';
import { controlArgv } from './testing/controlProcess';
import { startOnLoopback } from './testing/httpService';

const NODE = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

describe('control service on a full disk', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'flocker-full-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('answers 503 STORE_FULL with a description, acknowledges nothing it did not save, and recovers when space is freed', async () => {
    const disk = new FakeFullDisk();
    const store = new FileConfigurationStore(dir, { openFile: disk.open });
    await store.commit(registerNode(await store.load(), { uuid: NODE, host: '10.0.0.1' }));
    const svc = await startOnLoopback({ store });
    const created: string[] = [];
    const create = async (i: number): Promise<Response> => {
      const res = await fetch(`${svc.url}/v1/configuration/datasets`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ primary: NODE, metadata: { name: `v${i}` } }),
      });
      if (res.status === 201) created.push(((await res.clone().json()) as { dataset_id: string }).dataset_id);
      return res;
    };
    try {
      expect((await create(0)).status).toBe(201);
      disk.free = 150; // part of one record
      const answers: number[] = [];
      for (let i = 1; i <= 8; i++) {
        const res = await create(i);
        answers.push(res.status);
        if (res.status !== 201) {
          expect(res.status).toBe(503);
          const body = (await res.json()) as { code: string; description: string };
          expect(body.code).toBe('STORE_FULL');
          expect(body.description).toMatch(/no space left/);
        }
      }
      expect(answers.every((s) => s === 503)).toBe(true);
      // Nothing that failed is visible.
      const listed = (await (await fetch(`${svc.url}/v1/configuration/datasets`)).json()) as { dataset_id: string }[];
      expect(listed.map((d) => d.dataset_id).sort()).toEqual([...created].sort());
      disk.free = Infinity;
      expect((await create(9)).status).toBe(201);
    } finally {
      await svc.close();
    }
    // Restart: every acknowledged create, nothing else.
    const reloaded = await new FileConfigurationStore(dir).load();
    expect([...reloaded.datasets.keys()].sort()).toEqual([...created].sort());
  });

  it('keeps serving while its log output (stderr) is a full disk', async () => {
    // /dev/full fails every write with ENOSPC, as a log file on a full disk does.
    const full = openSync('/dev/full', 'w');
    const child = spawn(process.execPath, controlArgv(dir, '--log-level', 'debug'), {
      stdio: ['ignore', 'pipe', full],
    });
    closeSync(full);
    const stdout = child.stdout;
    if (stdout === null) throw new Error('no stdout');
    let exited: string | undefined;
    const exit = new Promise<void>((resolve) =>
      child.once('exit', (code, signal) => {
        exited = `${code ?? signal}`;
        resolve();
      }),
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const nl = out.indexOf('\n');
          if (nl >= 0) resolve((JSON.parse(out.slice(0, nl)) as { listening: string }).listening);
        });
        void exit.then(() => reject(new Error(`flocker-control exited (${exited})`)));
      });
      // Every one of these is logged (debug: rejected requests; error: none expected).
      for (let i = 0; i < 50; i++) {
        const res = await fetch(`${url}/v1/configuration/datasets/${NODE}`, { method: 'DELETE' });
        expect(res.status).toBe(404);
      }
      // A request that commits (and is logged as an error: the node is unknown, so 400 at debug).
      const created = await fetch(`${url}/v1/configuration/datasets`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ primary: NODE }),
      });
      expect(created.status).toBe(400);
      await new Promise((r) => setTimeout(r, 100));
      expect(exited).toBeUndefined();
    } finally {
      child.kill('SIGKILL');
      await exit;
    }
  });
});
