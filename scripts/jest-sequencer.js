// Jest's own order (slowest and failed first, from its cache), except that the real-Kubernetes
// e2e tests run last: on a machine without the Kubernetes build cache, scripts/test.sh builds it
// in the background (nice 19) while every other test runs, and the k8s tests wait for it there.
const Sequencer = require('@jest/test-sequencer').default;

class KubernetesLast extends Sequencer {
  sort(tests) {
    const sorted = Array.from(super.sort(tests));
    const k8s = (t) => /[/\\]k8s-[^/\\]*\.test\.js$/.test(t.path);
    return [...sorted.filter((t) => !k8s(t)), ...sorted.filter(k8s)];
  }
}

module.exports = KubernetesLast;
