#!/usr/bin/env node
import { errorMessage } from '@flocker/runtime';
import { hideBin } from 'yargs/helpers';
import { buildCli } from './cli';
import { CliError, EXIT, jsonError } from './errors';
import { visibleText } from './format';
import { wantsJson } from './output';

const io = {
  out: (t: string) => process.stdout.write(`${t}\n`),
  err: (t: string) => process.stderr.write(`${t}\n`),
  interactive: Boolean(process.stderr.isTTY),
};
buildCli(hideBin(process.argv), io)
  .parseAsync()
  .catch((e: unknown) => {
    const argv = hideBin(process.argv);
    process.stderr.write(
      wantsJson(argv)
        ? `${jsonError(new CliError(EXIT.FAILURE, errorMessage(e), 'INTERNAL'))}\n`
        : `flocker: ${visibleText(errorMessage(e))}\n`,
    );
    process.exit(1);
  });
