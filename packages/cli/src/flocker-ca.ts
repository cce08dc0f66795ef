#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { caCommands } from './ca/command';
import { EXIT } from './errors';
import { clientVersion } from './version';

// Usage errors exit 2, as with `flocker`; CA failures (files, keys) exit 1.
void caCommands(yargs(hideBin(process.argv)).scriptName('flocker-ca'))
  .help()
  .alias('h', 'help')
  .version(clientVersion())
  .fail((msg, err) => {
    if (err) throw err;
    process.stderr.write(`flocker-ca: ${msg}\nRun with --help for usage.\n`);
    process.exit(EXIT.USAGE);
  })
  .parseAsync();
