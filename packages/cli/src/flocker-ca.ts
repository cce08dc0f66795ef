#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { caCommands } from './ca/command';
import { EXIT } from './errors';
import { refuseMissingValues } from './requireValues';
import { clientVersion } from './version';

// Usage errors exit 2, as with `flocker`; CA failures (files, keys) exit 1.
const args = hideBin(process.argv);
const usage = (why: string): never => {
  process.stderr.write(`flocker-ca: ${why}\nRun with --help for usage.\n`);
  process.exit(EXIT.USAGE);
};
void caCommands(yargs(args).scriptName('flocker-ca'))
  .middleware(refuseMissingValues(args, usage), true)
  .help()
  .alias('h', 'help')
  .version(clientVersion())
  .fail((msg, err) => {
    if (err) throw err;
    usage(msg);
  })
  .parseAsync();
