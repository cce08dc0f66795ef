#!/usr/bin/env node
import { hideBin } from 'yargs/helpers';
import { buildDeployCli, defaultDeployIo } from './deploy/command';

buildDeployCli(hideBin(process.argv), defaultDeployIo)
  .parseAsync()
  .catch((e: unknown) => {
    process.stderr.write(`flocker-deploy: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
