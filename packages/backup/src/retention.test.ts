import { classifyS3Error } from './S3ObjectStore';
import { livePending, newestFirst, planGarbage, planRetention } from './retention';

const id = (stamp: string, snap = 's') => `vol/${stamp}-${snap}`;
const T0 = Date.UTC(2026, 0, 1);
const info = (key: string, ageMs: number) => ({ key, size: 10, lastModified: new Date(T0 - ageMs) });

describe('retention', () => {
  it('keeps the newest N, whatever the listing order', () => {
    const ids = [id('20260102T000000000Z'), id('20260103T000000000Z'), id('20260101T000000000Z')];
    expect(newestFirst(ids)).toEqual([ids[1], ids[0], ids[2]]);
    expect(planRetention(ids, 2)).toEqual({ keep: [ids[1], ids[0]], remove: [ids[2]] });
    expect(planRetention(ids, 5)).toEqual({ keep: [ids[1], ids[0], ids[2]], remove: [] });
  });

  it('never removes a protected backup, whatever its stamp (another node stamped a later one)', () => {
    const ids = [id('20260102T000000000Z'), id('20260103T000000000Z'), id('20260101T000000000Z')];
    expect(planRetention(ids, 1, [ids[2]!])).toEqual({ keep: [ids[1], ids[2]], remove: [ids[0]] });
    expect(planRetention(ids, 1, [ids[1]!])).toEqual({ keep: [ids[1]], remove: [ids[0], ids[2]] });
  });

  it('collects only unreferenced chunks older than the grace period', () => {
    const chunks = [
      info('chunks/aa/a', 10_000), // referenced
      info('chunks/bb/b', 10_000), // old, unreferenced
      info('chunks/cc/c', 10), // young, unreferenced
    ];
    expect(planGarbage(chunks, new Set(['chunks/aa/a']), T0, 1000)).toEqual({
      remove: ['chunks/bb/b'],
      referenced: 1,
      young: 1,
    });
  });

  it('counts a pending marker as a running backup only while it is refreshed', () => {
    const markers = [info('pending/v/1.json', 100), info('pending/v/2.json', 60_000)];
    expect(livePending(markers, T0, 30_000).map((m) => m.key)).toEqual(['pending/v/1.json']);
  });
});

describe('classifyS3Error', () => {
  const aws = (name: string, status?: number) =>
    Object.assign(new Error(name), { name, $metadata: status === undefined ? {} : { httpStatusCode: status } });
  it.each([
    [aws('NoSuchKey', 404), 'not-found'],
    [aws('NotFound', 404), 'not-found'],
    [aws('SlowDown', 503), 'retry'],
    [aws('InternalError', 500), 'retry'],
    [aws('Whatever', 502), 'retry'],
    [aws('TooManyRequestsException', 429), 'retry'],
    [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'retry'],
    [aws('AccessDenied', 403), 'denied'],
    [aws('NoSuchBucket', 404), 'denied'],
    [aws('InvalidArgument', 400), 'fatal'],
    [aws('CredentialsProviderError'), 'no-credentials'],
  ])('%s -> %s', (e, kind) => {
    expect(classifyS3Error(e)).toBe(kind);
  });
});
