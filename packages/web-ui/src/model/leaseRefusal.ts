/**
 * A LEASE_HELD refusal as the page shows it. The control service's refusal of a move or delete says "Release the
 * lease first."; when it asked the holder of a lease let go of on request (session 21's hand-over), it adds why the
 * holder kept it. Releasing is then not the way: a container there uses the volume (its plugin declined), or the
 * plugin did not answer; the page says what is, in its own words. Pure.
 */
const ASKED = /Its holder(?:'s Docker plugin declined| was asked)[\s\S]*$/;
const RELEASE_FIRST = /\s*Release the lease first\b[\s\S]*$/;

export function leaseRefusalText(e: { code: string; message: string }): string {
  if (e.code !== 'LEASE_HELD') return e.message;
  const asked = ASKED.exec(e.message);
  if (asked === null) return e.message;
  const why = asked[0].trim();
  const before = e.message.slice(0, asked.index);
  const head = before.replace(RELEASE_FIRST, '').trim();
  const advice = why.includes('declined')
    ? 'Stop that container, then try again.'
    : 'Check that plugin, then try again; once no container there uses the volume, Release lease lets go of the lease.';
  // The page offers "Move when released" for such a refusal (offersWhenReleased reads the server's own words).
  const whenReleased = /\bwhen_released: true\b/.test(before)
    ? ' Or move it when released: the data is copied while it stays in use, and the move finishes once it is released.'
    : '';
  return `${head} ${why} ${advice}${whenReleased}`;
}
