/**
 * Session 24: refusedUnknownKey tells a control service one release behind (its strict body schema refusing a member
 * newer than it) from any other 400, for any key (move_here of a lease, unique_name of a create).
 */
import { FlockerApiError, refusedUnknownKey, refusedUnknownUniqueName } from './client';

const unknown = (...keys: string[]) => {
  const problem = `(body): Unrecognized key${keys.length > 1 ? 's' : ''}: ${keys.map((k) => `"${k}"`).join(', ')}`;
  return new FlockerApiError(400, 'INVALID_REQUEST', `The request is not valid: ${problem}`, [problem]);
};

describe('refusedUnknownKey', () => {
  it('names the key among those a service refused as unknown, alone or with others', () => {
    expect(refusedUnknownKey(unknown('move_here'), 'move_here')).toBe(true);
    expect(refusedUnknownKey(unknown('release_on_request', 'move_here'), 'move_here')).toBe(true);
    expect(refusedUnknownKey(unknown('move_here', 'release_on_request'), 'release_on_request')).toBe(true);
    expect(refusedUnknownUniqueName(unknown('unique_name'))).toBe(true);
  });

  it('not another key, a longer name, another status or code, or a value refused', () => {
    expect(refusedUnknownKey(unknown('release_on_request'), 'move_here')).toBe(false);
    expect(refusedUnknownKey(unknown('move_here_too'), 'move_here')).toBe(false);
    expect(
      refusedUnknownKey(new FlockerApiError(409, 'LEASE_HELD', '(body): Unrecognized key: "move_here"'), 'move_here'),
    ).toBe(false);
    const value = new FlockerApiError(
      400,
      'INVALID_REQUEST',
      'The request is not valid: move_here: Invalid input: expected true',
      ['move_here: Invalid input: expected true'],
    );
    expect(refusedUnknownKey(value, 'move_here')).toBe(false);
    expect(refusedUnknownKey(new Error('(body): Unrecognized key: "move_here"'), 'move_here')).toBe(false);
  });

  it('reads the description when the answer listed no single problems', () => {
    const bare = new FlockerApiError(
      400,
      'INVALID_REQUEST',
      'The request is not valid: (body): Unrecognized key: "move_here"',
    );
    expect(refusedUnknownKey(bare, 'move_here')).toBe(true);
  });
});
