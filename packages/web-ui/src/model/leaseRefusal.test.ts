/**
 * A move or delete the control service refused after asking the lease's holder (session 21's hand-over): the page
 * does not show the server's "Release the lease first." before the holder's why (closing-s21: the UI showed that
 * prefix), but what to do.
 */
import { leaseRefusalText } from './leaseRefusal';
import { A, D1 } from '../testing/fixtures';

const DELETE = `The dataset ${D1} cannot be deleted: node ${A} holds a lease on it.`;
const MOVE = `The dataset ${D1} cannot move: node ${A} holds a lease on it.`;
const DECLINED = "Its holder's Docker plugin declined to let go of it: a container on host-a uses it.";
const SILENT = 'Its holder was asked to let go of it and did not within 5 s (is the Docker plugin on host-a running?).';

describe('leaseRefusalText', () => {
  it('declined: why, and to stop that container; never "Release the lease first"', () => {
    const shown = leaseRefusalText({ code: 'LEASE_HELD', message: `${DELETE} Release the lease first. ${DECLINED}` });
    expect(shown).toBe(`${DELETE} ${DECLINED} Stop that container, then try again.`);
    expect(shown).not.toMatch(/Release the lease first/);
  });

  it('no answer: why, and to check that plugin (Release lease once nothing there uses it)', () => {
    expect(leaseRefusalText({ code: 'LEASE_HELD', message: `${MOVE} Release the lease first. ${SILENT}` })).toBe(
      `${MOVE} ${SILENT} Check that plugin, then try again; once no container there uses the volume, Release lease lets go of the lease.`,
    );
  });

  it('a local move that may go on when released keeps saying so, in the page’s words', () => {
    const message = `${MOVE} Release the lease first, or ask for the move with when_released: true (flocker volumes move --when-released): the data is copied while it stays in use, and the move finishes once it is released. ${DECLINED}`;
    expect(leaseRefusalText({ code: 'LEASE_HELD', message })).toBe(
      `${MOVE} ${DECLINED} Stop that container, then try again. Or move it when released: the data is copied while it stays in use, and the move finishes once it is released.`,
    );
  });

  it('a refusal without the holder asked, and any other code: as the server says it', () => {
    const plain = `${DELETE} Release the lease first.`;
    expect(leaseRefusalText({ code: 'LEASE_HELD', message: plain })).toBe(plain);
    expect(leaseRefusalText({ code: 'DATASET_SHRINK', message: `x ${DECLINED}` })).toBe(`x ${DECLINED}`);
  });
});
