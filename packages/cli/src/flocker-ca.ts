#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { caCommands } from './ca/command';

void caCommands(yargs(hideBin(process.argv)).scriptName('flocker-ca'))
  .help()
  .version(false)
  .parseAsync();
