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
  return skipDisabledLevels(
    winston.createLogger({
      level,
      silent,
      format: winston.format.combine(
        winston.format.timestamp(),
        ...(level === 'debug' ? [hrTime()] : []),
        winston.format.json(),
      ),
      defaultMeta: { service: 'flocker-dataset-agent' },
      transports: [new winston.transports.Stream({ stream: safeLogStream('stdout') })],
    }),
  );
}

/**
 * A call of a level the logger drops returns at once (issue 23, session 12): winston runs every call through its
 * format (timestamp, JSON) and streams before the transport drops it by level, ~7 µs a call here, and the agent
 * makes ~25 debug calls per create + delete and ~15 per move. Checked per call: a level changed later still counts.
 */
export function skipDisabledLevels(logger: winston.Logger): winston.Logger {
  for (const level of LEVELS) {
    const log = logger[level] as (this: winston.Logger, ...args: unknown[]) => winston.Logger;
    // Called on `this`, not bound to `logger`: a child (logger.child(meta), whose prototype is `logger`) writes
    // through its own write, which adds its metadata; called detached, on `logger`, as winston's methods allow.
    logger[level] = function (this: winston.Logger | undefined, ...args: unknown[]): winston.Logger {
      const self = this ?? logger;
      return self.isLevelEnabled(level) ? log.apply(self, args) : self;
    } as winston.LeveledLogMethod;
  }
  return logger;
}
