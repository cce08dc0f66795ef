/**
 * Review FR19-1 (session 19): after a send whose outcome was ambiguous (resolve's re-sends, or the client's retry of an
 * attempt that may have reached etcd) answered "head moved", the store looked for proof that a copy of ours had
 * committed first; any failure to find it (head as of our log entry unreadable, compacted, or the entry folded into
 * a snapshot meanwhile) was taken for "another replica won", and the committer re-applied the request: a create
 * without dataset_id made a second dataset. Now only a proof of "not ours" is; else STORE_OUTCOME_UNKNOWN.
 */
import type { IKeyValue } from 'etcd3';
import { landedCopy } from './EtcdConfigurationStore';

const ENTRY = '{"prev":4,"record":{"version":5}}';
const ID = 'our-commit';
function kv(key: string, value: string, rev: number): IKeyValue {
  return {
    key: Buffer.from(`/p/${key}`),
    value: Buffer.from(value),
    create_revision: String(rev),
    mod_revision: String(rev),
    version: '1',
    lease: '0',
  };
}
const ours = kv('log/0000000000000005', ENTRY, 70);
const later = kv('log/0000000000000006', '{"prev":5,"record":{"version":6}}', 71);
const headAtFails = (): Promise<string> => Promise.reject(new Error('14 UNAVAILABLE: member catching up'));

describe('landedCopy', () => {
  it('our entry followed by another commit: ours when head as of it names our commit, else none', async () => {
    expect(await landedCopy([ours, later], 4, 6, ENTRY, ID, true, () => Promise.resolve(ID))).toBe(70);
    expect(await landedCopy([ours, later], 4, 6, ENTRY, ID, true, () => Promise.resolve('theirs'))).toBe('none');
  });

  it('head as of our entry unreadable (etcd flaky, or compacted): unknown, not "another replica won"', async () => {
    expect(await landedCopy([ours, later], 4, 6, ENTRY, ID, true, headAtFails)).toBe('unknown');
    expect(await landedCopy([ours, later], 4, 6, ENTRY, ID, true, () => Promise.resolve(undefined))).toBe('unknown');
  });

  it('the log after from folded into a snapshot before the answer: unknown', async () => {
    expect(await landedCopy([], 4, 9, ENTRY, ID, true, () => Promise.resolve(ID))).toBe('unknown');
  });

  it('proven not ours: another entry at from + 1, head never left from, or only one copy was sent', async () => {
    const theirs = kv('log/0000000000000005', '{"prev":4,"record":{"version":5,"x":1}}', 70);
    expect(await landedCopy([theirs], 4, 5, ENTRY, ID, true, headAtFails)).toBe('none');
    expect(await landedCopy([], 4, 4, ENTRY, ID, true, headAtFails)).toBe('none');
    expect(await landedCopy([], 4, 9, ENTRY, ID, false, headAtFails)).toBe('none');
  });
});
