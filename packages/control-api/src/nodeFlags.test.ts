import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CONTROL_ENV, CONTROL_NODE_FLAGS, controlShebang } from './nodeFlags';

describe('flocker-control node flags', () => {
  it('the #! line of the installed bin sets CONTROL_ENV and runs node with CONTROL_NODE_FLAGS (what the benchmark measures)', () => {
    const first = readFileSync(path.join(__dirname, 'main.js'), 'utf8').split('\n')[0];
    expect(first).toBe(controlShebang());
    expect(first).toContain('MALLOC_ARENA_MAX=2 node --max-semi-space-size=32');
  });

  it('env -S accepts the line: node starts with the flags and sees the variables', () => {
    const args = controlShebang().slice('#!/usr/bin/env -S '.length).split(' ');
    const nodeAt = args.indexOf('node');
    const out = execFileSync(
      '/usr/bin/env',
      [
        ...args.slice(0, nodeAt),
        process.execPath,
        ...CONTROL_NODE_FLAGS,
        '-e',
        'process.stdout.write(JSON.stringify({ env: process.env.MALLOC_ARENA_MAX, flags: process.execArgv }))',
      ],
      { encoding: 'utf8' },
    );
    const seen = JSON.parse(out) as { env: string; flags: string[] };
    expect(seen.env).toBe(CONTROL_ENV.MALLOC_ARENA_MAX);
    expect(seen.flags).toEqual(expect.arrayContaining([...CONTROL_NODE_FLAGS]));
  });
});
