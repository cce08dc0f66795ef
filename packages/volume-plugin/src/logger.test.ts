import * as path from 'node:path';
import { logToFullDisk } from '@flocker/runtime/testing';

describe('the plugin logger (createLogger)', () => {
  it('keeps the plugin running when its log output is a full disk (/dev/full: every write fails with ENOSPC)', () => {
    expect(logToFullDisk(path.join(__dirname, 'startVolumePlugin.js'), 'createLogger')).toEqual({
      status: 42,
      stderr: '',
    });
  });
});
