#!/usr/bin/env node
import { errorMessage } from '@flocker/runtime';
import { hideBin } from 'yargs/helpers';
import { buildCli } from './cli';

const io = {
  out: (t: string) => process.stdout.write(`${t}\n`),
  err: (t: string) => process.stderr.write(`${t}\n`),
  interactive: Boolean(process.stderr.isTTY),
};
buildCli(hideBin(process.argv), io)
  .parseAsync()
  .catch((e: unknown) => {
    process.stderr.write(`flocker: ${errorMessage(e)}\n`);
    process.exit(1);
  });
