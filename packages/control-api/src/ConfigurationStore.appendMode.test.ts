import { constants } from 'node:fs';
import { LOG_APPEND_FLAGS, logAppendMode } from './ConfigurationStore';

// Review s28 F8: the log's records are durable when acknowledged on every platform, with O_DSYNC or without it.
describe('logAppendMode', () => {
  it('opens with O_DSYNC where the platform has it: the write itself is durable', () => {
    expect(logAppendMode({ O_RDWR: 2, O_DSYNC: 4096 })).toEqual({ flags: 2 | 4096, syncAfterWrite: false });
  });

  it('syncs after each write where the platform has no O_DSYNC', () => {
    expect(logAppendMode({ O_RDWR: 2 })).toEqual({ flags: 2, syncAfterWrite: true });
  });

  it('uses O_DSYNC on this host (Linux)', () => {
    expect(constants.O_DSYNC).toBeDefined();
    expect(LOG_APPEND_FLAGS & constants.O_DSYNC).toBe(constants.O_DSYNC);
  });
});
