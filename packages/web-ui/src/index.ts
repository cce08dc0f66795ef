/** The web UI package: the shared view model, and where the built browser app is. */
import { join } from 'node:path';

export * from './model';

/** Directory of the built browser app (`npm run build -w @flocker/web-ui`). */
export const APP_DIR = join(__dirname, 'app');
