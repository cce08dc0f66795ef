import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CONTROL_NODE_FLAGS } from './nodeFlags';

describe('flocker-control node flags', () => {
  it('the #! line of the installed bin runs node with CONTROL_NODE_FLAGS (what the benchmark measures)', () => {
    const first = readFileSync(path.join(__dirname, 'main.js'), 'utf8').split('\n')[0];
    expect(first).toBe(`#!/usr/bin/env -S node ${CONTROL_NODE_FLAGS.join(' ')}`);
  });
});
