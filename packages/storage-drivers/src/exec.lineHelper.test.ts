/**
 * LineHelper.close() beside requests (review s27 F11): lines sent before close() are answered by the helper being
 * ended; a request made once close() has begun goes to a new helper, never to the ended one's input (a write after
 * end, whose reply never comes).
 */
import { LineHelper } from './exec';

jest.setTimeout(30_000);

/** Answers each line with "<its pid> <the line>"; takes 0.3 s to exit at end of input. */
const ECHO = '$| = 1; while (my $l = <STDIN>) { chomp $l; print "$$ $l\\n"; } select(undef, undef, undef, 0.3);';

it('a request sent before close() is answered by the old helper, one made after by a new one', async () => {
  const helper = new LineHelper('echo helper', ['perl', '-e', ECHO]);
  const first = await helper.request('a');
  const [oldPid] = first.split(' ');
  const before = helper.request('b');
  const closing = helper.close();
  const after = helper.request('c');
  const [b, c] = await Promise.all([before, after]);
  await closing;
  expect(b).toBe(`${oldPid} b`);
  const [newPid, line] = c.split(' ');
  expect(line).toBe('c');
  expect(newPid).not.toBe(oldPid);
  // The new helper serves later requests until it is closed in turn.
  expect(await helper.request('d')).toBe(`${newPid} d`);
  await helper.close();
});
