// Prints README's configuration table from config.ts.
import { configTable } from '../config.js';

process.stdout.write(configTable() + '\n');
