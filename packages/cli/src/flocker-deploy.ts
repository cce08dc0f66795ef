#!/usr/bin/env node
import { errorMessage } from '@flocker/runtime';
import { hideBin } from 'yargs/helpers';
import { buildDeployCli, defaultDeployIo } from './deploy/command';

buildDeployCli(hideBin(process.argv), defaultDeployIo)
  .parseAsync()
  .catch((e: unknown) => {
    process.stderr.write(`flocker-deploy: ${errorMessage(e)}\n`);
    process.exit(1);
  });
