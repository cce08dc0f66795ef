// Jest's own order (slowest and failed first, from its cache), except that the real-Kubernetes
// e2e tests run last: on a machine without the Kubernetes build cache, scripts/test.sh builds it
// in the background (nice 19) while every other test runs, and the k8s tests wait for it there.
//
// --shard=i/n (scripts/test.sh's two e2e lanes): the files split by known seconds, longest first, to the emptier lane
// (scripts/jest-lanes.js, e2e/durations.json), not Jest's split by path hash (equal counts, unequal seconds). The
// Kubernetes files share a lane: the harness is one per machine (fixed ports, scripts/k8s/lib.sh; up.sh of one waits
// for the other's down, and two files using one state dir would take each other's harness down), and its apiserver,
// kubelets and containerd are the heaviest CPU of the suite.
const fs = require('fs');
const Sequencer = require('@jest/test-sequencer').default;
const { assignLanes, secondsOf, readTable } = require('./jest-lanes');

/** A file that runs scripts/k8s's harness (e2e/src/k8s-harness.ts, directly or through testing/k8sFaults). */
function usesKubernetes(file) {
  if (/[/\\]k8s-[^/\\]*\.test\.js$/.test(file)) return true;
  try {
    return /require\("\.\/(k8s-harness|testing\/k8sFaults)"\)/.test(fs.readFileSync(file, 'utf8'));
  } catch {
    return false;
  }
}

class KubernetesLast extends Sequencer {
  sort(tests) {
    const sorted = Array.from(super.sort(tests));
    const k8s = (t) => usesKubernetes(t.path);
    return [...sorted.filter((t) => !k8s(t)), ...sorted.filter(k8s)];
  }

  shard(tests, { shardIndex, shardCount }) {
    const table = readTable();
    const groupOf = new Map();
    for (const [group, files] of Object.entries(table.groups ?? {})) for (const f of files) groupOf.set(f, group);
    const items = tests.map((t) => {
      const base = t.path.split(/[/\\]/).pop();
      const group = usesKubernetes(t.path) ? 'kubernetes' : groupOf.get(base);
      return { id: t.path, seconds: secondsOf(table, base), ...(group === undefined ? {} : { group }) };
    });
    const mine = new Set(assignLanes(items, shardCount).lanes[shardIndex - 1]);
    return tests.filter((t) => mine.has(t.path));
  }
}

module.exports = KubernetesLast;
