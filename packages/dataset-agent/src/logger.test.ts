import * as path from 'node:path';
import { logToFullDisk } from '@flocker/runtime/testing';

describe('createAgentLogger', () => {
  it('keeps the agent running when its log output is a full disk (/dev/full: every write fails with ENOSPC)', () => {
    expect(logToFullDisk(path.join(__dirname, 'logger.js'), 'createAgentLogger')).toEqual({ status: 42, stderr: '' });
  });
});
