import { classifyDockerError, isDue, keepFailures, nextRetryIn, recordFailure, type Failures } from './failures';

const T0 = Date.UTC(2026, 0, 1);
const policy = { initialMs: 1_000, maxMs: 60_000, jitter: false };
const what = {
  name: 'web',
  hash: 'h1',
  image: 'nope',
  code: 'IMAGE_NOT_FOUND' as const,
  message: 'No such image: nope',
};

describe('classifyDockerError', () => {
  test.each<[number | undefined, string, string]>([
    [404, 'No such image: nope:latest', 'IMAGE_NOT_FOUND'],
    [
      500,
      'driver failed programming external connectivity on endpoint web: Bind for 0.0.0.0:8080 failed: port is already allocated',
      'PORT_IN_USE',
    ],
    [500, 'Error starting userland proxy: listen tcp4 0.0.0.0:80: bind: address already in use', 'PORT_IN_USE'],
    [409, 'Conflict. The container name "/web" is already in use by container "abc".', 'NAME_IN_USE'],
    [500, "error while mounting volume '/flocker/x': VolumeDriver.Mount: dataset is moving", 'VOLUME_UNAVAILABLE'],
    [400, 'Minimum memory limit allowed is 6MB', 'INVALID_CONTAINER_SPEC'],
    [undefined, 'connect ENOENT /var/run/docker.sock', 'DOCKER_ERROR'],
    [500, 'something else', 'DOCKER_ERROR'],
  ])('%s %s → %s', (status, message, code) => {
    expect(classifyDockerError(status, message)).toBe(code);
  });
});

describe('failures', () => {
  test('attempts count up with the same spec; the retry waits 1, 2, 4 ... s, at most the maximum', () => {
    let f: Failures = new Map();
    const delays: number[] = [];
    let now = T0;
    for (let i = 0; i < 9; i++) {
      f = recordFailure(f, what, now, policy);
      const retryAt = f.get('web')?.retryAt ?? 0;
      delays.push(retryAt - now);
      expect(isDue(f, 'web', 'h1', retryAt - 1)).toBe(false);
      expect(isDue(f, 'web', 'h1', retryAt)).toBe(true);
      expect(nextRetryIn(f, now)).toBe(retryAt - now);
      now = retryAt;
    }
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    expect(f.get('web')?.error).toEqual({
      code: 'IMAGE_NOT_FOUND',
      message: 'No such image: nope',
      attempts: 9,
      since: new Date(T0).toISOString(),
    });
  });

  test('jittered delays stay within [ceiling/2, ceiling]', () => {
    const jittered = { ...policy, jitter: true };
    const low = recordFailure(new Map(), what, T0, jittered, () => 0).get('web')?.retryAt;
    const high = recordFailure(new Map(), what, T0, jittered, () => 0.999999).get('web')?.retryAt;
    expect(low).toBe(T0 + 500);
    expect(high).toBe(T0 + 1_000);
  });

  test('another spec is due at once and counts afresh; unwanted containers are forgotten', () => {
    let f: Failures = recordFailure(recordFailure(new Map(), what, T0, policy), what, T0 + 1_000, policy);
    expect(isDue(f, 'web', 'h2', T0 + 1_001)).toBe(true);
    f = recordFailure(f, { ...what, hash: 'h2', code: 'DOCKER_ERROR', message: 'x' }, T0 + 5_000, policy);
    expect(f.get('web')?.error).toMatchObject({
      attempts: 1,
      code: 'DOCKER_ERROR',
      since: new Date(T0 + 5_000).toISOString(),
    });
    expect(isDue(f, 'other', 'h', T0)).toBe(true);
    expect(keepFailures(f, new Set(['other'])).size).toBe(0);
    expect(nextRetryIn(new Map(), T0)).toBeUndefined();
  });
});
