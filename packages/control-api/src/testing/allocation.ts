/**
 * What a piece of code allocates, for tests that hold a hot path to a budget (issue 23: what the control service
 * allocates per create or per timer tick at 100,000 datasets sets how often it scavenges). V8's sampling heap
 * profiler, counting objects a GC already collected too: the bytes allocated, not the bytes left alive.
 */
import { Session } from 'node:inspector';

interface ProfileNode {
  callFrame: { functionName: string };
  selfSize: number;
  children: ProfileNode[];
}

function post<T>(session: Session, method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) =>
    session.post(method, params, (err, res) => (err !== null ? reject(err) : resolve(res as T))),
  );
}

/** Bytes allocated (sampled every ~1 KiB) in and under frames named `frame` while `fn` runs. */
export async function allocatedUnder(frame: string, fn: () => void): Promise<number> {
  const session = new Session();
  session.connect();
  try {
    await post(session, 'HeapProfiler.startSampling', {
      samplingInterval: 1024,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    fn();
    const { profile } = await post<{ profile: { head: ProfileNode } }>(session, 'HeapProfiler.stopSampling');
    const sum = (n: ProfileNode, under: boolean): number => {
      const inside = under || n.callFrame.functionName === frame;
      return (inside ? n.selfSize : 0) + n.children.reduce((s, c) => s + sum(c, inside), 0);
    };
    return sum(profile.head, false);
  } finally {
    session.disconnect();
  }
}
