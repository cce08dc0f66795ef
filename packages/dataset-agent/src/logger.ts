import { performance } from 'node:perf_hooks';
import winston from 'winston';
import { safeLogStream } from '@flocker/api';

const LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type AgentLogLevel = (typeof LEVELS)[number];

/** A known log level, or undefined (unset or unknown values are ignored). */
export function logLevelOf(value: string | undefined): AgentLogLevel | undefined {
  return LEVELS.find((l) => l === value);
}

/** Sub-millisecond wall clock (epoch ms), to line up debug timings across processes. */
const hrTime = winston.format((info) => {
  info.t = (performance.timeOrigin + performance.now()).toFixed(2);
  return info;
});

/**
 * JSON lines on stdout, one per event, with a timestamp (and at debug level a sub-ms `t`).
 * A full disk under the log drops (and counts) lines; it never stops the agent.
 */
export function createAgentLogger(level: string = 'info', silent = false): winston.Logger {
  return winston.createLogger({
    level,
    silent,
    format: winston.format.combine(
      winston.format.timestamp(),
      ...(level === 'debug' ? [hrTime()] : []),
      winston.format.json(),
    ),
    defaultMeta: { service: 'flocker-dataset-agent' },
    transports: [new winston.transports.Stream({ stream: safeLogStream('stdout') })],
  });
}
