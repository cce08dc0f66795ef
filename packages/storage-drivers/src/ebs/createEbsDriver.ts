import type * as EbsDriverModule from './EbsDriver';
import type { EbsDriver, EbsDriverOptions } from './EbsDriver';

/**
 * `new EbsDriver(options)`, loading the driver and the AWS SDK only now (a
 * plain require: this package is CommonJS). For the class itself import
 * `@flocker/storage-drivers/ebs`.
 */
export function createEbsDriver(options: EbsDriverOptions): EbsDriver {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { EbsDriver: Driver } = require('./EbsDriver') as typeof EbsDriverModule;
  return new Driver(options);
}
