/**
 * The e2e tests' Jest environment: Node's, which also records each failed test (or hook) in the test's global, so the
 * cluster bed can keep the logs of a failing run before its teardown removes them (failedLogs.ts). A flake seen once
 * in CI is otherwise gone with its evidence (session 25: review-f-control-restart-dead-host).
 */
import * as path from 'node:path';
import type { EnvironmentContext, JestEnvironmentConfig } from '@jest/environment';
import type { Circus } from '@jest/types';
import NodeEnvironment from 'jest-environment-node';
import { FAILURES_GLOBAL, type FailureRecord } from '../cluster/failedLogs';

function testName(test: Circus.TestEntry | undefined): string {
  const names: string[] = [];
  for (let t: Circus.TestEntry | Circus.DescribeBlock | undefined = test; t !== undefined; t = t.parent)
    if (t.name !== 'ROOT_DESCRIBE_BLOCK') names.unshift(t.name);
  return names.join(' ');
}

export default class FailureEnvironment extends NodeEnvironment {
  private readonly record: FailureRecord;

  constructor(config: JestEnvironmentConfig, context: EnvironmentContext) {
    super(config, context);
    this.record = { file: path.basename(context.testPath).replace(/\.test\.js$/, ''), failures: [] };
    (this.global as Record<string, unknown>)[FAILURES_GLOBAL] = this.record;
  }

  handleTestEvent(event: Circus.Event): void {
    if (event.name === 'test_fn_failure') this.record.failures.push(testName(event.test));
    else if (event.name === 'hook_failure')
      this.record.failures.push(`${event.hook.type}${event.test !== undefined ? ` of ${testName(event.test)}` : ''}`);
  }
}
