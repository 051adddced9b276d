/** The names of the shop's own functions (routes.js), as they appear in its flame graphs. */
import { createRequire } from 'node:module';

const routes = createRequire(__filename)('./routes.js') as Record<string, { name: string }>;

export const SHOP_FUNCTIONS: readonly string[] = Object.values(routes).map((f) => f.name);
