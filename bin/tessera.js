#!/usr/bin/env node
// The `tessera` command (package.json "bin"): the compiled CLI (npm run build makes dist/).
import { main } from '../dist/src/cli/main.js';

await main();
