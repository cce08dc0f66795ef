import winston from 'winston';

/** JSON lines on stdout, one per event, with a timestamp. */
export function createAgentLogger(level: string = 'info', silent = false): winston.Logger {
  return winston.createLogger({
    level,
    silent,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { service: 'flocker-dataset-agent' },
    transports: [new winston.transports.Console()],
  });
}
